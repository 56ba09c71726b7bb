//! Errors between the two APIs: each side's error body and type for a status, a human message
//! from any provider's error body, and an upstream error in the caller's format.

use serde_json::{Value, json};

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
