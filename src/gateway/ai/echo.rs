//! The Echo backend (`provider: Echo`): answers in process, deterministically, without calling
//! anyone — for trying routes, limits, budgets and policies offline and for free (like LiteLLM's
//! mock responses). It goes through the same routing, policy, limits, accounting and metrics path
//! as every other backend; only the upstream HTTP call is replaced.
//!
//! * chat completions: the answer is `echo: <text of the last user message>`; with `stream: true`
//!   it arrives as one SSE chunk per word, then the usage chunk when `stream_options.include_usage`
//!   is set, then `[DONE]`.
//! * responses (`/v1/responses`): a `response` whose one output message says
//!   `echo: <text of the last user input>`; with `stream: true` the Responses API's events
//!   (`response.created` … one `response.output_text.delta` per word … `response.completed`
//!   carrying the usage).
//! * embeddings: one vector per input, derived from a hash of the text (`dimensions`, default 8).
//! * usage: real token counts of the prompt and the answer ([`super::tokens::count_tokens`]).

use super::exchange::{UpBody, UpResponse};
use super::op::Op;
use super::tokens::{count_tokens, estimate_request_tokens};
use crate::gateway::sse;
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
        Op::Responses => {
            let answer = format!("echo: {}", last_input_text(&req));
            let input_tokens = estimate_request_tokens(&model, &Value::Object(req.clone()));
            let output_tokens = count_tokens(&model, &answer);
            let usage = json!({
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            });
            let resp_id = format!("resp_{}", &id[5..]);
            if req.get("stream").and_then(Value::as_bool) == Some(true) {
                responses_stream(&resp_id, &model, &answer, usage)
            } else {
                json_response(response_object(&resp_id, &model, "completed", Some(&answer), usage))
            }
        }
        // Never reached: messages go to OpenAI-type backends as chat (`upstream::upstream_op`).
        Op::Messages => {
            let e = json!({"error": {"message": format!("the Echo backend does not serve {}", op.as_str()),
                                     "type": "invalid_request_error", "param": null, "code": null}});
            let mut r = json_response(e);
            r.status = StatusCode::BAD_REQUEST;
            r
        }
    }
}

/// A Responses API `response` object; `answer` `None` while it is in progress (no output yet).
fn response_object(id: &str, model: &str, status: &str, answer: Option<&str>, usage: Value) -> Value {
    let output: Vec<Value> = answer.map(|a| message_item(id, "completed", Some(a))).into_iter().collect();
    json!({
        "id": id, "object": "response", "created_at": 0, "status": status, "model": model,
        "output": output, "usage": if answer.is_some() { usage } else { Value::Null },
        "error": null, "incomplete_details": null, "instructions": null, "metadata": {},
        "parallel_tool_calls": true, "temperature": 1.0, "top_p": 1.0, "tool_choice": "auto",
        "tools": [], "text": {"format": {"type": "text"}},
    })
}

/// The assistant message output item, its text part done when `text` is given.
fn message_item(resp_id: &str, status: &str, text: Option<&str>) -> Value {
    let content: Vec<Value> = text.map(output_text).into_iter().collect();
    json!({"type": "message", "id": format!("msg_{}", &resp_id[5..]), "status": status,
           "role": "assistant", "content": content})
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A streamed Responses answer: the events the API sends for one text message (created,
/// in_progress, output item and content part added, one text delta per word, the done events,
/// completed with the usage), each with its `sequence_number`.
fn responses_stream(id: &str, model: &str, answer: &str, usage: Value) -> UpResponse {
    let item_id = format!("msg_{}", &id[5..]);
    let mut events = vec![
        json!({"type": "response.created", "response": response_object(id, model, "in_progress", None, Value::Null)}),
        json!({"type": "response.in_progress", "response": response_object(id, model, "in_progress", None, Value::Null)}),
        json!({"type": "response.output_item.added", "output_index": 0, "item": message_item(id, "in_progress", None)}),
        json!({"type": "response.content_part.added", "item_id": item_id, "output_index": 0, "content_index": 0,
               "part": output_text("")}),
    ];
    for (i, word) in answer.split(' ').enumerate() {
        let delta = if i == 0 { word.to_string() } else { format!(" {word}") };
        events.push(json!({"type": "response.output_text.delta", "item_id": item_id, "output_index": 0,
                           "content_index": 0, "delta": delta, "logprobs": []}));
    }
    events.extend([
        json!({"type": "response.output_text.done", "item_id": item_id, "output_index": 0, "content_index": 0,
               "text": answer, "logprobs": []}),
        json!({"type": "response.content_part.done", "item_id": item_id, "output_index": 0, "content_index": 0,
               "part": output_text(answer)}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": message_item(id, "completed", Some(answer))}),
        json!({"type": "response.completed", "response": response_object(id, model, "completed", Some(answer), usage)}),
    ]);
    let chunks = events
        .into_iter()
        .enumerate()
        .map(|(n, mut e)| {
            e["sequence_number"] = n.into();
            let ty = e["type"].as_str().unwrap_or_default().to_string();
            sse::encode_named(&ty, &e.to_string())
        })
        .collect();
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    UpResponse { status: StatusCode::OK, headers, body: UpBody::Echo(chunks) }
}

/// Text of the last user input of a Responses request: `input` as a string, or the last user
/// message of an `input` list (string content or `input_text` parts).
fn last_input_text(req: &serde_json::Map<String, Value>) -> String {
    match req.get("input") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => String::new(),
            })
            .unwrap_or_default(),
        _ => String::new(),
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
        sse::encode_data(&c.to_string())
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
        chunks.push_back(sse::encode_data(&c.to_string()));
    }
    chunks.push_back(sse::encode_done());
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
