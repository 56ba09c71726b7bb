//! Translation between OpenAI Chat Completions and Anthropic Messages: requests, responses,
//! stream events and errors, both ways. Pure functions over `serde_json::Value`.
//!
//! Names: "chat" is OpenAI Chat Completions (`/v1/chat/completions`), "messages" is Anthropic
//! Messages (`/v1/messages`).
//!
//! # Mapping
//! | OpenAI chat | Anthropic messages |
//! |---|---|
//! | `system` / `developer` messages (anywhere) | top-level `system` (a string, or text blocks when there are several or they carry `cache_control`) |
//! | `user` content string / `text` parts | `user` content string / `text` blocks |
//! | `image_url` with a `data:<type>;base64,` URL | `image` with a `base64` source |
//! | `image_url` with an `http(s)` URL | `image` with a `url` source |
//! | `file` part with a base64 PDF `file_data` | `document` with a `base64` source |
//! | `assistant` `content` + `tool_calls` | `assistant` `text` + `tool_use` blocks (`arguments` JSON string ⇄ `input` object) |
//! | `tool` messages | `tool_result` blocks at the start of the next `user` message |
//! | `tools[].function {name, description, parameters}` | `tools[] {name, description, input_schema}` |
//! | `tool_choice` `none` / `auto` / `required` / `{function:{name}}` | `{type: none / auto / any / tool}` |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use: true` |
//! | `max_completion_tokens` or `max_tokens` | `max_tokens` (required there: [`DEFAULT_MAX_TOKENS`] when absent) |
//! | `stop` (string or list) | `stop_sequences` |
//! | `temperature`, `top_p` | same (temperature clamped to Anthropic's 0–1) |
//! | `user` | `metadata.user_id` |
//! | `finish_reason` `stop` / `length` / `tool_calls` / `content_filter` | `stop_reason` `end_turn` (or `stop_sequence`, `pause_turn`) / `max_tokens` / `tool_use` / `refusal` |
//! | `usage.prompt_tokens` (cached included), `prompt_tokens_details.cached_tokens`, `completion_tokens` | `input_tokens` (cache excluded) + `cache_read_input_tokens` + `cache_creation_input_tokens`, `output_tokens` |
//! | error `{"error":{"message","type","param","code"}}` | `{"type":"error","error":{"type","message"}}`, same status except 529 → 503 |
//!
//! Fields with the same meaning under the same name on the other side pass through
//! (`cache_control` on content parts and tools, and the Anthropic-only request fields `top_k`,
//! `thinking` and `metadata.user_id`, which some OpenAI-compatible clients send on purpose, from
//! OpenAI to Anthropic). `reasoning_effort` becomes `thinking` with a budget of 1024 (minimal,
//! low), 4096 (medium) or 16384 (high) tokens, `max_tokens` raised above the budget, and
//! `temperature`, `top_p` and `top_k` dropped (Anthropic refuses them with thinking).
//!
//! # Lossy conversions
//! - OpenAI → Anthropic: `system` messages after the first turn are moved to the top-level
//!   `system`; message `name`s, `n` > 1 (refused), `logprobs`, `seed`, `frequency_penalty`,
//!   `presence_penalty`, `logit_bias`, `response_format` and `image_url.detail` are dropped;
//!   `temperature` above 1 is clamped to 1; consecutive messages of one role are merged (Anthropic
//!   needs alternation); audio parts and non-function tools are refused.
//! - Anthropic → OpenAI: `top_k`, `thinking` and every `cache_control` (OpenAI caches prompts
//!   by itself and refuses unknown fields) are dropped; `thinking` and `redacted_thinking`
//!   blocks in assistant turns are dropped; `tool_result.is_error` is dropped and images inside a
//!   `tool_result` are dropped (OpenAI tool messages carry text only); server tools (web search,
//!   code execution, …) and `file`-source images are refused; `metadata` other than `user_id` is
//!   dropped. `max_tokens` becomes `max_completion_tokens` for o-series and GPT-5 models (which
//!   refuse `max_tokens`) and `max_tokens` otherwise.
//! - Responses: only the first choice of an OpenAI response is translated; an Anthropic
//!   `stop_sequence` is not recoverable from OpenAI's `stop`; Anthropic `thinking` text becomes
//!   `reasoning_content` (the field OpenAI-compatible servers use) and citations are dropped;
//!   `cache_creation_input_tokens` counts as ordinary prompt tokens on the OpenAI side and an
//!   OpenAI response never reports cache writes.

use super::usage::{Usage, from_anthropic_usage, from_openai_usage};
use crate::gateway::sse::SseEvent;
use serde_json::{Map, Value, json};

/// `max_tokens` sent to Anthropic when an OpenAI request has none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// A request that cannot be translated; the caller's fault (400 `invalid_request_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The request uses something the target API has no equivalent for.
    #[error("{what} is not supported by this model's provider API ({target})")]
    Unsupported {
        /// What was used.
        what: String,
        /// The target API.
        target: &'static str,
    },
}

fn invalid(msg: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(msg.into())
}

fn unsupported(what: impl Into<String>, target: &'static str) -> TranslateError {
    TranslateError::Unsupported { what: what.into(), target }
}

const ANTHROPIC: &str = "Anthropic Messages";
const OPENAI: &str = "OpenAI Chat Completions";

// ------------------------------------------------------------------------------------------------
// Stop reasons and usage
// ------------------------------------------------------------------------------------------------

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn anthropic_stop_to_openai(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub fn openai_finish_to_anthropic(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// A [`Usage`] as an OpenAI Chat Completions `usage` object.
pub fn usage_to_openai(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.input + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cached_input},
    })
}

/// A [`Usage`] as an Anthropic `usage` object (cache writes are unknown and reported as 0).
pub fn usage_to_anthropic(u: &Usage) -> Value {
    json!({
        "input_tokens": u.uncached_input(),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": u.cached_input,
        "output_tokens": u.output,
    })
}

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

/// The OpenAI error `type` the gateway uses for a status.
pub fn openai_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

/// The Anthropic error `type` for a status.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// An OpenAI error body: `{"error":{"message","type","param":null,"code"}}`.
pub fn openai_error(status: u16, message: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": openai_error_type(status), "param": null, "code": code}})
}

/// An Anthropic error body: `{"type":"error","error":{"type","message"}}`.
pub fn anthropic_error(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": anthropic_error_type(status), "message": message}})
}

/// Extracts a human message from any provider's error body: OpenAI `error.message`, Anthropic
/// `error.message`, Gemini's `[{"error":…}]`, `{"error":"text"}`, FastAPI's `detail`, or the raw
/// text (truncated to 500 bytes) when the body is not JSON.
pub fn error_message(body: &[u8]) -> String {
    fn from_value(v: &Value) -> Option<String> {
        match v {
            Value::Array(a) => a.first().and_then(from_value),
            Value::Object(o) => {
                if let Some(e) = o.get("error") {
                    match e {
                        Value::String(s) => return Some(s.clone()),
                        Value::Object(eo) => {
                            if let Some(m) = eo.get("message").and_then(Value::as_str) {
                                return Some(m.to_owned());
                            }
                        }
                        _ => {}
                    }
                }
                for k in ["message", "detail"] {
                    match o.get(k) {
                        Some(Value::String(s)) => return Some(s.clone()),
                        Some(other @ (Value::Array(_) | Value::Object(_))) => return Some(other.to_string()),
                        _ => {}
                    }
                }
                None
            }
            _ => None,
        }
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body)
        && let Some(m) = from_value(&v)
    {
        return m;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "upstream returned an empty error body".to_owned();
    }
    let mut end = text.len().min(500);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// An Anthropic upstream error (status and body) as the OpenAI error a chat client expects.
/// 529 (overloaded) becomes 503, which OpenAI clients know; the Anthropic error type becomes
/// the `code`.
pub fn anthropic_error_to_openai(status: u16, body: &[u8]) -> (u16, Value) {
    let status = if status == 529 { 503 } else { status };
    let ant_type = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.get("type")).and_then(Value::as_str).map(str::to_owned));
    let mut err = openai_error(status, &error_message(body), None);
    if let Some(t) = ant_type {
        err["error"]["code"] = Value::String(t);
    }
    (status, err)
}

/// An OpenAI upstream error (status and body) as the Anthropic error a messages client expects.
pub fn openai_error_to_anthropic(status: u16, body: &[u8]) -> (u16, Value) {
    (status, anthropic_error(status, &error_message(body)))
}

// ------------------------------------------------------------------------------------------------
// Requests: OpenAI chat → Anthropic messages
// ------------------------------------------------------------------------------------------------

/// Parses a `data:<media type>;base64,<data>` URL.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, data))
}

fn text_of_parts(content: &Value, what: &str) -> Result<String, TranslateError> {
    match content {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") | Some("input_text") | Some("output_text") => {
                        out.push_str(p.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    Some("refusal") => out.push_str(p.get("refusal").and_then(Value::as_str).unwrap_or("")),
                    other => {
                        return Err(unsupported(
                            format!("content part {:?} in {what}", other.unwrap_or("")),
                            ANTHROPIC,
                        ));
                    }
                }
            }
            Ok(out)
        }
        _ => Err(invalid(format!("{what} content must be a string or an array of parts"))),
    }
}

fn copy_cache_control(from: &Value, to: &mut Value) {
    if let Some(cc) = from.get("cache_control") {
        to["cache_control"] = cc.clone();
    }
}

/// OpenAI user/assistant content → Anthropic content blocks.
fn chat_content_to_blocks(content: &Value, role: &str) -> Result<Vec<Value>, TranslateError> {
    match content {
        Value::Null => Ok(vec![]),
        Value::String(s) if s.is_empty() => Ok(vec![]),
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for p in parts {
                let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
                let mut block = match ty {
                    "text" | "refusal" => {
                        let t = p.get(ty).and_then(Value::as_str).unwrap_or("");
                        if t.is_empty() {
                            continue;
                        }
                        json!({"type": "text", "text": t})
                    }
                    "image_url" => {
                        let url = p
                            .get("image_url")
                            .and_then(|i| i.get("url").or(Some(i)))
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid("image_url part without a url"))?;
                        if let Some((media, data)) = parse_data_url(url) {
                            json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
                        } else if url.starts_with("https://") || url.starts_with("http://") {
                            json!({"type": "image", "source": {"type": "url", "url": url}})
                        } else {
                            return Err(unsupported(
                                "an image URL that is neither http(s) nor a base64 data URL",
                                ANTHROPIC,
                            ));
                        }
                    }
                    "file" => {
                        let f = p.get("file").unwrap_or(&Value::Null);
                        match f.get("file_data").and_then(Value::as_str).and_then(parse_data_url) {
                            Some((media, data)) => {
                                let mut b = json!({"type": "document", "source": {"type": "base64", "media_type": media, "data": data}});
                                if let Some(name) = f.get("filename").and_then(Value::as_str) {
                                    b["title"] = json!(name);
                                }
                                b
                            }
                            None => {
                                return Err(unsupported("a file part without base64 file_data", ANTHROPIC));
                            }
                        }
                    }
                    other => {
                        return Err(unsupported(
                            format!("content part type {other:?} in a {role} message"),
                            ANTHROPIC,
                        ));
                    }
                };
                copy_cache_control(p, &mut block);
                blocks.push(block);
            }
            Ok(blocks)
        }
        _ => Err(invalid(format!("{role} message content must be a string or an array of parts"))),
    }
}

/// Translates an OpenAI Chat Completions request into an Anthropic Messages request.
pub fn chat_to_messages_request(req: &Value) -> Result<Value, TranslateError> {
    let obj = req.as_object().ok_or_else(|| invalid("request body must be a JSON object"))?;
    let model = obj.get("model").and_then(Value::as_str).ok_or_else(|| invalid("missing `model`"))?;
    let messages =
        obj.get("messages").and_then(Value::as_array).ok_or_else(|| invalid("missing `messages`"))?;
    if let Some(n) = obj.get("n").and_then(Value::as_u64)
        && n > 1
    {
        return Err(unsupported("n > 1", ANTHROPIC));
    }

    let mut system: Vec<Value> = Vec::new();
    let mut out_msgs: Vec<Value> = Vec::new();
    // Appends blocks to the last message when it has the same role (Anthropic wants alternation).
    fn push(out: &mut Vec<Value>, role: &str, mut blocks: Vec<Value>, tool_results_first: bool) {
        if blocks.is_empty() {
            return;
        }
        if let Some(last) = out.last_mut()
            && last["role"] == role
            && let Some(arr) = last["content"].as_array_mut()
        {
            if tool_results_first {
                // tool_result blocks must precede other content of the user turn.
                let at = arr.iter().take_while(|b| b["type"] == "tool_result").count();
                for (i, b) in blocks.drain(..).enumerate() {
                    arr.insert(at + i, b);
                }
            } else {
                arr.append(&mut blocks);
            }
            return;
        }
        out.push(json!({"role": role, "content": blocks}));
    }

    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("messages[{i}] has no role")))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => match content {
                Value::String(s) => {
                    if !s.is_empty() {
                        system.push(json!({"type": "text", "text": s}));
                    }
                }
                Value::Array(parts) => {
                    for p in parts {
                        let t = p.get("text").and_then(Value::as_str).unwrap_or("");
                        if t.is_empty() {
                            continue;
                        }
                        let mut b = json!({"type": "text", "text": t});
                        copy_cache_control(p, &mut b);
                        system.push(b);
                    }
                }
                Value::Null => {}
                _ => return Err(invalid(format!("messages[{i}].content must be a string or an array"))),
            },
            "user" => {
                let blocks = chat_content_to_blocks(content, "user")?;
                push(&mut out_msgs, "user", blocks, false);
            }
            "assistant" => {
                let mut blocks = chat_content_to_blocks(content, "assistant")?;
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    for c in calls {
                        let f = c.get("function").ok_or_else(|| {
                            invalid(format!("messages[{i}].tool_calls entry without function"))
                        })?;
                        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("");
                        let input: Value = if args.trim().is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str(args).map_err(|_| {
                                invalid(format!(
                                    "messages[{i}].tool_calls: function arguments are not valid JSON"
                                ))
                            })?
                        };
                        blocks.push(json!({
                            "type": "tool_use",
                            "id": c.get("id").and_then(Value::as_str).unwrap_or(""),
                            "name": f.get("name").and_then(Value::as_str).unwrap_or(""),
                            "input": input,
                        }));
                    }
                }
                push(&mut out_msgs, "assistant", blocks, false);
            }
            "tool" | "function" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("messages[{i}] (tool) has no tool_call_id")))?;
                let text = text_of_parts(content, "a tool message")?;
                let block = json!({"type": "tool_result", "tool_use_id": id, "content": text});
                push(&mut out_msgs, "user", vec![block], true);
            }
            other => return Err(invalid(format!("messages[{i}] has unknown role {other:?}"))),
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let max = obj
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| obj.get("max_tokens").and_then(Value::as_u64))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), json!(max));
    if !system.is_empty() {
        let plain = system.iter().all(|b| b.get("cache_control").is_none());
        if plain {
            let joined: Vec<&str> = system.iter().filter_map(|b| b["text"].as_str()).collect();
            out.insert("system".into(), json!(joined.join("\n\n")));
        } else {
            out.insert("system".into(), Value::Array(system));
        }
    }
    out.insert("messages".into(), Value::Array(out_msgs));
    if let Some(t) = obj.get("temperature").and_then(Value::as_f64) {
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = obj.get("top_p").filter(|v| v.is_number()) {
        out.insert("top_p".into(), p.clone());
    }
    match obj.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(s) = obj.get("stream").filter(|v| v.is_boolean()) {
        out.insert("stream".into(), s.clone());
    }
    // Tools.
    let tools_present = if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        let mut out_tools = Vec::with_capacity(tools.len());
        for t in tools {
            if t.get("type").and_then(Value::as_str).unwrap_or("function") != "function" {
                return Err(unsupported(format!("tool type {:?}", t["type"]), ANTHROPIC));
            }
            let f = t.get("function").ok_or_else(|| invalid("tool without function"))?;
            let mut nt = json!({
                "name": f.get("name").and_then(Value::as_str).ok_or_else(|| invalid("tool function without name"))?,
                "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
            if let Some(d) = f.get("description") {
                nt["description"] = d.clone();
            }
            copy_cache_control(t, &mut nt);
            out_tools.push(nt);
        }
        let present = !out_tools.is_empty();
        if present {
            out.insert("tools".into(), Value::Array(out_tools));
        }
        present
    } else {
        false
    };
    let mut choice = match obj.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "none" => Some(json!({"type": "none"})),
            "auto" => Some(json!({"type": "auto"})),
            "required" => Some(json!({"type": "any"})),
            other => return Err(invalid(format!("unknown tool_choice {other:?}"))),
        },
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice object without function.name"))?;
            Some(json!({"type": "tool", "name": name}))
        }
        Some(_) => return Err(invalid("tool_choice must be a string or an object")),
    };
    if obj.get("parallel_tool_calls") == Some(&Value::Bool(false)) && tools_present {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    if let Some(c) = choice
        && tools_present
    {
        out.insert("tool_choice".into(), c);
    }
    // Metadata and Anthropic-native fields.
    let mut metadata = obj.get("metadata").filter(|m| m.is_object()).cloned();
    if let Some(user) = obj.get("user").and_then(Value::as_str) {
        metadata.get_or_insert_with(|| json!({}))["user_id"] = json!(user);
    }
    if let Some(md) = metadata {
        // Anthropic accepts only user_id in metadata.
        if let Some(uid) = md.get("user_id") {
            out.insert("metadata".into(), json!({"user_id": uid}));
        }
    }
    for k in ["top_k", "thinking"] {
        if let Some(v) = obj.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if !out.contains_key("thinking")
        && let Some(effort) = obj.get("reasoning_effort").and_then(Value::as_str)
    {
        let budget = match effort {
            "minimal" | "low" => 1024,
            "medium" => 4096,
            _ => 16384,
        };
        out.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": budget}));
        if max <= budget {
            out.insert("max_tokens".into(), json!(budget + DEFAULT_MAX_TOKENS));
        }
        // Anthropic refuses temperature, top_p below 0.95 and top_k with thinking.
        out.remove("temperature");
        out.remove("top_p");
        out.remove("top_k");
    }
    Ok(Value::Object(out))
}

// ------------------------------------------------------------------------------------------------
// Requests: Anthropic messages → OpenAI chat
// ------------------------------------------------------------------------------------------------

fn anthropic_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            texts.join("\n")
        }
        _ => String::new(),
    }
}

fn anthropic_image_to_part(block: &Value) -> Result<Value, TranslateError> {
    let src = block.get("source").ok_or_else(|| invalid("image block without source"))?;
    match src.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = src.get("media_type").and_then(Value::as_str).unwrap_or("image/png");
            let data = src.get("data").and_then(Value::as_str).unwrap_or("");
            Ok(json!({"type": "image_url", "image_url": {"url": format!("data:{media};base64,{data}")}}))
        }
        Some("url") => Ok(
            json!({"type": "image_url", "image_url": {"url": src.get("url").cloned().unwrap_or(Value::Null)}}),
        ),
        other => Err(unsupported(format!("image source {:?}", other.unwrap_or("")), OPENAI)),
    }
}

fn uses_max_completion_tokens(model: &str) -> bool {
    let m = model.rsplit('/').next().unwrap_or(model);
    m.starts_with("o1") || m.starts_with("o3") || m.starts_with("o4") || m.starts_with("gpt-5")
}

/// Translates an Anthropic Messages request into an OpenAI Chat Completions request. A streaming
/// request asks the provider for usage (`stream_options.include_usage`), which the Anthropic
/// stream needs for its final `message_delta`.
pub fn messages_to_chat_request(req: &Value) -> Result<Value, TranslateError> {
    let obj = req.as_object().ok_or_else(|| invalid("request body must be a JSON object"))?;
    let model = obj.get("model").and_then(Value::as_str).ok_or_else(|| invalid("missing `model`"))?;
    let messages =
        obj.get("messages").and_then(Value::as_array).ok_or_else(|| invalid("missing `messages`"))?;
    let mut out_msgs = Vec::with_capacity(messages.len() + 1);
    if let Some(system) = obj.get("system") {
        let text = anthropic_text(system);
        if !text.is_empty() {
            out_msgs.push(json!({"role": "system", "content": text}));
        }
    }
    for (i, m) in messages.iter().enumerate() {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("messages.{i}: missing role")))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        match (role, content) {
            ("user" | "assistant", Value::String(s)) => out_msgs.push(json!({"role": role, "content": s})),
            ("user", Value::Array(blocks)) => {
                let mut parts = Vec::new();
                for b in blocks {
                    match b.get("type").and_then(Value::as_str).unwrap_or("") {
                        "text" => parts.push(
                            json!({"type": "text", "text": b.get("text").cloned().unwrap_or(json!(""))}),
                        ),
                        "image" => parts.push(anthropic_image_to_part(b)?),
                        "document" => {
                            let src = b.get("source").unwrap_or(&Value::Null);
                            match src.get("type").and_then(Value::as_str) {
                                Some("base64") => {
                                    let media = src.get("media_type").and_then(Value::as_str).unwrap_or("application/pdf");
                                    let data = src.get("data").and_then(Value::as_str).unwrap_or("");
                                    let mut file = json!({"file_data": format!("data:{media};base64,{data}")});
                                    if let Some(t) = b.get("title").and_then(Value::as_str) {
                                        file["filename"] = json!(t);
                                    }
                                    parts.push(json!({"type": "file", "file": file}));
                                }
                                Some("text") => parts.push(json!({"type": "text", "text": src.get("data").cloned().unwrap_or(json!(""))})),
                                other => return Err(unsupported(format!("document source {:?}", other.unwrap_or("")), OPENAI)),
                            }
                        }
                        "tool_result" => {
                            // OpenAI wants tool results as separate messages right after the
                            // assistant turn: flush them before the user's other parts.
                            let id = b.get("tool_use_id").and_then(Value::as_str).unwrap_or("");
                            let text = anthropic_text(b.get("content").unwrap_or(&Value::Null));
                            out_msgs.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
                        }
                        other => {
                            return Err(unsupported(
                                format!("content block {other:?} in a user message"),
                                OPENAI,
                            ));
                        }
                    }
                }
                if !parts.is_empty() {
                    if parts.len() == 1 && parts[0]["type"] == "text" {
                        out_msgs.push(json!({"role": "user", "content": parts[0]["text"].clone()}));
                    } else {
                        out_msgs.push(json!({"role": "user", "content": parts}));
                    }
                }
            }
            ("assistant", Value::Array(blocks)) => {
                let mut text = String::new();
                let mut calls = Vec::new();
                for b in blocks {
                    match b.get("type").and_then(Value::as_str).unwrap_or("") {
                        "text" => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
                        "tool_use" => calls.push(json!({
                            "id": b.get("id").cloned().unwrap_or(json!("")),
                            "type": "function",
                            "function": {
                                "name": b.get("name").cloned().unwrap_or(json!("")),
                                "arguments": b.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                            },
                        })),
                        "thinking" | "redacted_thinking" => {}
                        other => {
                            return Err(unsupported(
                                format!("content block {other:?} in an assistant message"),
                                OPENAI,
                            ));
                        }
                    }
                }
                let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                out_msgs.push(msg);
            }
            (r, _) => return Err(invalid(format!("messages.{i}: unsupported role {r:?} or content"))),
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(out_msgs));
    if let Some(max) = obj.get("max_tokens").filter(|v| v.is_u64()) {
        let key = if uses_max_completion_tokens(model) { "max_completion_tokens" } else { "max_tokens" };
        out.insert(key.into(), max.clone());
    }
    for k in ["temperature", "top_p"] {
        if let Some(v) = obj.get(k).filter(|v| v.is_number()) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(stops) = obj.get("stop_sequences").and_then(Value::as_array)
        && !stops.is_empty()
    {
        out.insert("stop".into(), Value::Array(stops.clone()));
    }
    if obj.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let mut tools_present = false;
    if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        let mut out_tools = Vec::with_capacity(tools.len());
        for t in tools {
            if let Some(ty) = t.get("type").and_then(Value::as_str)
                && ty != "custom"
            {
                return Err(unsupported(format!("server tool {ty:?}"), OPENAI));
            }
            let mut f = json!({
                "name": t.get("name").and_then(Value::as_str).ok_or_else(|| invalid("tool without name"))?,
                "parameters": t.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
            if let Some(d) = t.get("description") {
                f["description"] = d.clone();
            }
            out_tools.push(json!({"type": "function", "function": f}));
        }
        tools_present = !out_tools.is_empty();
        if tools_present {
            out.insert("tools".into(), Value::Array(out_tools));
        }
    }
    if let Some(tc) = obj.get("tool_choice").filter(|_| tools_present) {
        let choice = match tc.get("type").and_then(Value::as_str) {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => {
                json!({"type": "function", "function": {"name": tc.get("name").cloned().unwrap_or(json!(""))}})
            }
            other => return Err(invalid(format!("unknown tool_choice type {:?}", other.unwrap_or("")))),
        };
        out.insert("tool_choice".into(), choice);
        if tc.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
            out.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    if let Some(uid) = obj.get("metadata").and_then(|m| m.get("user_id")).and_then(Value::as_str) {
        out.insert("user".into(), json!(uid));
    }
    Ok(Value::Object(out))
}

// ------------------------------------------------------------------------------------------------
// Responses
// ------------------------------------------------------------------------------------------------

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
                "tool_use" => calls.push(json!({
                    "id": b.get("id").cloned().unwrap_or(json!("")),
                    "type": "function",
                    "function": {
                        "name": b.get("name").cloned().unwrap_or(json!("")),
                        "arguments": b.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                    },
                })),
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

// ------------------------------------------------------------------------------------------------
// Streams: Anthropic events → OpenAI chunks
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum BlockKind {
    Text,
    Thinking,
    Tool(usize),
    Other,
}

/// Turns an Anthropic Messages event stream into OpenAI `chat.completion.chunk` events, one event
/// at a time. Feed every upstream event to [`MessagesToChatStream::on_event`] and send what it
/// returns; after `message_stop` it has emitted the usage chunk (when the client asked for it) and
/// `data: [DONE]`.
#[derive(Debug)]
pub struct MessagesToChatStream {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    blocks: Vec<(u64, BlockKind)>,
    next_tool: usize,
    anthropic_usage: Map<String, Value>,
    finish: Option<&'static str>,
    done: bool,
}

impl MessagesToChatStream {
    /// `model` names the model in chunks until `message_start` says otherwise; `include_usage` is
    /// whether the client asked for the usage chunk (`stream_options.include_usage`).
    pub fn new(model: &str, created: u64, include_usage: bool) -> Self {
        MessagesToChatStream {
            id: String::new(),
            model: model.to_owned(),
            created,
            include_usage,
            blocks: Vec::new(),
            next_tool: 0,
            anthropic_usage: Map::new(),
            finish: None,
            done: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> SseEvent {
        let c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        SseEvent::data(c.to_string())
    }

    fn kind(&self, index: u64) -> BlockKind {
        self.blocks.iter().rev().find(|(i, _)| *i == index).map(|(_, k)| *k).unwrap_or(BlockKind::Other)
    }

    /// The usage reported so far (input from `message_start`, output from the last
    /// `message_delta`).
    pub fn usage(&self) -> Usage {
        from_anthropic_usage(&Value::Object(self.anthropic_usage.clone())).unwrap_or_default()
    }

    /// Whether the stream ended properly (`message_stop` or an error event).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Translates one upstream event (its SSE `event` name and its data). Unparseable data and
    /// unknown events produce nothing.
    pub fn on_event(&mut self, event: Option<&str>, data: &str) -> Vec<SseEvent> {
        if self.done {
            return vec![];
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else { return vec![] };
        let ty = event.or_else(|| v.get("type").and_then(Value::as_str)).unwrap_or("").to_owned();
        let mut out = Vec::new();
        match ty.as_str() {
            "message_start" => {
                let m = v.get("message").unwrap_or(&Value::Null);
                if let Some(id) = m.get("id").and_then(Value::as_str) {
                    self.id = id.to_owned();
                }
                if let Some(model) = m.get("model").and_then(Value::as_str) {
                    self.model = model.to_owned();
                }
                if let Some(u) = m.get("usage").and_then(Value::as_object) {
                    self.anthropic_usage.extend(u.clone());
                }
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let b = v.get("content_block").unwrap_or(&Value::Null);
                match b.get("type").and_then(Value::as_str).unwrap_or("") {
                    "text" => {
                        self.blocks.push((index, BlockKind::Text));
                        if let Some(t) = b.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                            out.push(self.chunk(json!({"content": t}), None));
                        }
                    }
                    "thinking" => self.blocks.push((index, BlockKind::Thinking)),
                    "tool_use" => {
                        let k = self.next_tool;
                        self.next_tool += 1;
                        self.blocks.push((index, BlockKind::Tool(k)));
                        let call = json!({
                            "index": k,
                            "id": b.get("id").cloned().unwrap_or(json!("")),
                            "type": "function",
                            "function": {"name": b.get("name").cloned().unwrap_or(json!("")), "arguments": ""},
                        });
                        out.push(self.chunk(json!({"tool_calls": [call]}), None));
                    }
                    _ => self.blocks.push((index, BlockKind::Other)),
                }
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = v.get("delta").unwrap_or(&Value::Null);
                match (self.kind(index), d.get("type").and_then(Value::as_str).unwrap_or("")) {
                    (BlockKind::Text, "text_delta") => {
                        let t = d.get("text").and_then(Value::as_str).unwrap_or("");
                        out.push(self.chunk(json!({"content": t}), None));
                    }
                    (BlockKind::Thinking, "thinking_delta") => {
                        let t = d.get("thinking").and_then(Value::as_str).unwrap_or("");
                        out.push(self.chunk(json!({"reasoning_content": t}), None));
                    }
                    (BlockKind::Tool(k), "input_json_delta") => {
                        let p = d.get("partial_json").and_then(Value::as_str).unwrap_or("");
                        if !p.is_empty() {
                            out.push(self.chunk(
                                json!({"tool_calls": [{"index": k, "function": {"arguments": p}}]}),
                                None,
                            ));
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage").and_then(Value::as_object) {
                    // Cumulative: the latest value of each field replaces the earlier one.
                    for (k, x) in u {
                        if !x.is_null() {
                            self.anthropic_usage.insert(k.clone(), x.clone());
                        }
                    }
                }
                if let Some(r) = v.get("delta").and_then(|d| d.get("stop_reason")).and_then(Value::as_str) {
                    let f = anthropic_stop_to_openai(r);
                    self.finish = Some(f);
                    out.push(self.chunk(json!({}), Some(f)));
                }
            }
            "message_stop" => {
                if self.finish.is_none() {
                    out.push(self.chunk(json!({}), Some("stop")));
                }
                if self.include_usage {
                    let c = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage_to_openai(&self.usage()),
                    });
                    out.push(SseEvent::data(c.to_string()));
                }
                out.push(SseEvent::data("[DONE]"));
                self.done = true;
            }
            "error" => {
                let e = v.get("error").unwrap_or(&Value::Null);
                let ant_type = e.get("type").and_then(Value::as_str).unwrap_or("api_error");
                let msg = e.get("message").and_then(Value::as_str).unwrap_or("upstream stream error");
                let body = json!({"error": {"message": msg, "type": openai_error_type(status_of_anthropic_type(ant_type)), "param": null, "code": ant_type}});
                out.push(SseEvent::data(body.to_string()));
                self.done = true;
            }
            _ => {} // ping, content_block_stop, unknown
        }
        out
    }
}

/// The HTTP status an Anthropic error type stands for.
pub fn status_of_anthropic_type(t: &str) -> u16 {
    match t {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

// ------------------------------------------------------------------------------------------------
// Streams: OpenAI chunks → Anthropic events
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    None,
    Text,
    Tool(u64),
}

/// Turns an OpenAI Chat Completions stream (requested with `include_usage`, as
/// [`messages_to_chat_request`] does) into Anthropic Messages events. Feed every upstream event's
/// data to [`ChatToMessagesStream::on_data`]; at `data: [DONE]` it closes the message
/// (`content_block_stop`, `message_delta` with the stop reason and usage, `message_stop`). If the
/// upstream body ends without `[DONE]`, call [`ChatToMessagesStream::finish`].
#[derive(Debug)]
pub struct ChatToMessagesStream {
    model: String,
    input_tokens_hint: u64,
    started: bool,
    open: Open,
    next_block: u64,
    finish: Option<&'static str>,
    usage: Option<Usage>,
    done: bool,
}

impl ChatToMessagesStream {
    /// `model` names the model in `message_start`; `input_tokens_hint` is reported there as
    /// `input_tokens` (OpenAI reports usage only at the end; the final `message_delta` carries the
    /// real figures).
    pub fn new(model: &str, input_tokens_hint: u64) -> Self {
        ChatToMessagesStream {
            model: model.to_owned(),
            input_tokens_hint,
            started: false,
            open: Open::None,
            next_block: 0,
            finish: None,
            usage: None,
            done: false,
        }
    }

    /// The usage reported by the upstream, if its final chunk has arrived.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Whether the message was closed (or ended with an error event).
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn ev(name: &str, data: Value) -> SseEvent {
        SseEvent::named(name, data.to_string())
    }

    fn start(&mut self, id: &str, out: &mut Vec<SseEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(Self::ev(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": self.input_tokens_hint, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0},
            }}),
        ));
    }

    fn close_block(&mut self, out: &mut Vec<SseEvent>) {
        if self.open != Open::None {
            out.push(Self::ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": self.next_block - 1}),
            ));
            self.open = Open::None;
        }
    }

    fn open_block(&mut self, open: Open, block: Value, out: &mut Vec<SseEvent>) {
        self.close_block(out);
        out.push(Self::ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": self.next_block, "content_block": block}),
        ));
        self.next_block += 1;
        self.open = open;
    }

    /// Translates one upstream event's data (a chunk JSON, `[DONE]`, or an error object).
    pub fn on_data(&mut self, data: &str) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        if data.trim() == "[DONE]" {
            return self.close();
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else { return out };
        if let Some(e) = v.get("error") {
            let msg =
                e.get("message").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| e.to_string());
            out.push(Self::ev(
                "error",
                json!({"type": "error", "error": {"type": "api_error", "message": msg}}),
            ));
            self.done = true;
            return out;
        }
        let id = v.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
        if let Some(u) = v.get("usage").and_then(from_openai_usage) {
            self.usage = Some(u);
        }
        let choice = v.get("choices").and_then(|c| c.get(0));
        let Some(choice) = choice else {
            // The usage-only chunk, or a chunk without choices.
            if !self.started && self.usage.is_none() {
                return out;
            }
            self.start(&id, &mut out);
            return out;
        };
        self.start(&id, &mut out);
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(t) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            if self.open != Open::Text {
                self.open_block(Open::Text, json!({"type": "text", "text": ""}), &mut out);
            }
            out.push(Self::ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": self.next_block - 1, "delta": {"type": "text_delta", "text": t}}),
            ));
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for (pos, c) in calls.iter().enumerate() {
                let k = c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
                let f = c.get("function").unwrap_or(&Value::Null);
                if self.open != Open::Tool(k) {
                    let call_id = c
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("toolu_{k}"));
                    let name = f.get("name").and_then(Value::as_str).unwrap_or("");
                    self.open_block(
                        Open::Tool(k),
                        json!({"type": "tool_use", "id": call_id, "name": name, "input": {}}),
                        &mut out,
                    );
                }
                if let Some(args) = f.get("arguments").and_then(Value::as_str).filter(|a| !a.is_empty()) {
                    out.push(Self::ev(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": self.next_block - 1, "delta": {"type": "input_json_delta", "partial_json": args}}),
                    ));
                }
            }
        }
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(openai_finish_to_anthropic(f));
        }
        out
    }

    fn close(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        self.start("", &mut out);
        self.close_block(&mut out);
        let mut usage = match self.usage {
            Some(u) => usage_to_anthropic(&u),
            None => json!({"output_tokens": 0}),
        };
        if self.usage.is_none() {
            usage["input_tokens"] = json!(self.input_tokens_hint);
        }
        out.push(Self::ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": self.finish.unwrap_or("end_turn"), "stop_sequence": null}, "usage": usage}),
        ));
        out.push(Self::ev("message_stop", json!({"type": "message_stop"})));
        self.done = true;
        out
    }

    /// The upstream body ended. If the message was already closed this returns nothing; if a
    /// finish reason arrived but `[DONE]` did not, the message is closed normally; otherwise the
    /// stream broke and an Anthropic `error` event is returned.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        if self.done {
            return vec![];
        }
        if self.finish.is_some() {
            return self.close();
        }
        self.done = true;
        vec![Self::ev(
            "error",
            json!({"type": "error", "error": {"type": "api_error", "message": "the upstream stream ended before the response was complete"}}),
        )]
    }
}

#[cfg(test)]
mod tests;
