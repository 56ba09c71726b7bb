//! Whole (non-streamed) responses, both ways.

use super::mapping::{
    anthropic_stop_to_openai, openai_finish_to_anthropic, text_of_parts, tool_use_to_call,
    usage_to_anthropic, usage_to_openai,
};
use crate::gateway::ai::usage::{from_anthropic_usage, from_openai_usage};
use serde_json::{Value, json};

/// Translates an Anthropic Messages response into an OpenAI `chat.completion`. `created` is the
/// Unix time to stamp (the caller's clock).
pub fn messages_to_chat_response(resp: &Value, created: u64) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    if let Some(blocks) = resp.get("content").and_then(Value::as_array) {
        for b in blocks {
            match b.get("type").and_then(Value::as_str).unwrap_or("") {
                "text" => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
                "thinking" => reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or("")),
                "tool_use" => calls.push(tool_use_to_call(b)),
                _ => {}
            }
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    let finish =
        resp.get("stop_reason").and_then(Value::as_str).map(anthropic_stop_to_openai).unwrap_or("stop");
    let usage = resp.get("usage").and_then(from_anthropic_usage).unwrap_or_default();
    json!({
        "id": resp.get("id").cloned().unwrap_or(json!("")),
        "object": "chat.completion",
        "created": created,
        "model": resp.get("model").cloned().unwrap_or(json!("")),
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage_to_openai(&usage),
    })
}

/// Translates an OpenAI `chat.completion` into an Anthropic Messages response (first choice).
pub fn chat_to_messages_response(resp: &Value) -> Value {
    let choice = resp.get("choices").and_then(|c| c.get(0)).unwrap_or(&Value::Null);
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    let text = match msg.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(parts @ Value::Array(_)) => text_of_parts(parts, "response").unwrap_or_default(),
        _ => String::new(),
    };
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    } else if let Some(r) = msg.get("refusal").and_then(Value::as_str) {
        content.push(json!({"type": "text", "text": r}));
    }
    if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
        for c in calls {
            let f = c.get("function").unwrap_or(&Value::Null);
            let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
            let input = serde_json::from_str::<Value>(args)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({}));
            content.push(json!({
                "type": "tool_use",
                "id": c.get("id").cloned().unwrap_or(json!("")),
                "name": f.get("name").cloned().unwrap_or(json!("")),
                "input": input,
            }));
        }
    }
    let stop = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(openai_finish_to_anthropic)
        .unwrap_or("end_turn");
    let usage = resp.get("usage").and_then(from_openai_usage).unwrap_or_default();
    json!({
        "id": resp.get("id").cloned().unwrap_or(json!("")),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model").cloned().unwrap_or(json!("")),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": usage_to_anthropic(&usage),
    })
}
