//! The Echo backend (`provider: Echo`): answers in process, deterministically, without calling
//! anyone — for trying routes, limits, budgets and policies offline and for free (like LiteLLM's
//! mock responses). It goes through the same routing, policy, limits, accounting and metrics path
//! as every other backend; only the upstream HTTP call is replaced.
//!
//! * chat completions: the answer is `echo: <text of the last user message>`; with `stream: true`
//!   it arrives as one SSE chunk per word, then the usage chunk when `stream_options.include_usage`
//!   is set, then `[DONE]`.
//! * embeddings: one vector per input, derived from a hash of the text (`dimensions`, default 8).
//! * usage: real token counts of the prompt and the answer ([`super::usage::count_tokens`]).

use super::exchange::{UpBody, UpResponse};
use super::op::Op;
use super::usage::{count_tokens, estimate_request_tokens};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;

/// The Echo backend's answer to one upstream request body.
pub fn respond(op: Op, body: &[u8]) -> UpResponse {
    let req: serde_json::Map<String, Value> = serde_json::from_slice(body).unwrap_or_default();
    let model = req.get("model").and_then(Value::as_str).unwrap_or("echo").to_string();
    let id = format!("echo-{}", &hex::encode(Sha256::digest(body))[..16]);
    match op {
        Op::Embeddings => json_response(embeddings(&req, &model)),
        Op::Chat => {
            let answer = format!("echo: {}", last_user_text(&req));
            let prompt_tokens = estimate_request_tokens(&model, &Value::Object(req.clone()));
            let completion_tokens = count_tokens(&model, &answer);
            let usage = json!({
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            });
            if req.get("stream").and_then(Value::as_bool) == Some(true) {
                let include_usage =
                    req.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool)
                        == Some(true);
                stream_response(&id, &model, &answer, usage, include_usage)
            } else {
                json_response(json!({
                    "id": id, "object": "chat.completion", "created": 0, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                 "finish_reason": "stop", "logprobs": null}],
                    "usage": usage,
                }))
            }
        }
        Op::Responses | Op::Messages => {
            let e = json!({"error": {"message": format!("the Echo backend does not serve {}", op.as_str()),
                                     "type": "invalid_request_error", "param": null, "code": null}});
            let mut r = json_response(e);
            r.status = StatusCode::BAD_REQUEST;
            r
        }
    }
}

fn json_response(v: Value) -> UpResponse {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    UpResponse {
        status: StatusCode::OK,
        headers,
        body: UpBody::Echo(VecDeque::from([Bytes::from(v.to_string())])),
    }
}

fn stream_response(id: &str, model: &str, answer: &str, usage: Value, include_usage: bool) -> UpResponse {
    let chunk = |delta: Value, finish: Value| {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut chunks = VecDeque::new();
    chunks.push_back(chunk(json!({"role": "assistant", "content": ""}), Value::Null));
    let mut first = true;
    for word in answer.split(' ') {
        let piece = if first { word.to_string() } else { format!(" {word}") };
        first = false;
        chunks.push_back(chunk(json!({"content": piece}), Value::Null));
    }
    chunks.push_back(chunk(json!({}), json!("stop")));
    if include_usage {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                       "choices": [], "usage": usage});
        chunks.push_back(Bytes::from(format!("data: {c}\n\n")));
    }
    chunks.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    UpResponse { status: StatusCode::OK, headers, body: UpBody::Echo(chunks) }
}

/// Text of the last user message (string content or text parts).
fn last_user_text(req: &serde_json::Map<String, Value>) -> String {
    let Some(Value::Array(msgs)) = req.get("messages") else { return String::new() };
    let Some(m) = msgs.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")) else {
        return String::new();
    };
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
        }
        _ => String::new(),
    }
}

fn embeddings(req: &serde_json::Map<String, Value>, model: &str) -> Value {
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => vec![],
    };
    let dims = req.get("dimensions").and_then(Value::as_u64).unwrap_or(8).clamp(1, 4096) as usize;
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            tokens += count_tokens(model, text);
            let mut v = Vec::with_capacity(dims);
            let mut block = Sha256::digest(text.as_bytes());
            while v.len() < dims {
                for pair in block.chunks(2) {
                    if v.len() == dims {
                        break;
                    }
                    let x = u16::from_be_bytes([pair[0], pair[1]]);
                    v.push(json!((f64::from(x) / 32767.5) - 1.0));
                }
                block = Sha256::digest(block);
            }
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    json!({"object": "list", "data": data, "model": model,
           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
}
