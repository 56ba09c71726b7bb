//! What both directions of translation share: the refusal of what cannot be translated, the
//! API names it quotes, and the mapping of stop reasons, usage and tool calls.

use crate::gateway::ai::usage::Usage;
use serde_json::{Value, json};

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

pub(super) fn invalid(msg: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(msg.into())
}

pub(super) fn unsupported(what: impl Into<String>, target: &'static str) -> TranslateError {
    TranslateError::Unsupported { what: what.into(), target }
}

pub(super) const ANTHROPIC: &str = "Anthropic Messages";
pub(super) const OPENAI: &str = "OpenAI Chat Completions";

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

/// An Anthropic `tool_use` block as an OpenAI `tool_calls` entry, its `input` as the
/// `arguments` string (assistant messages of a request, and whole responses).
pub(super) fn tool_use_to_call(block: &Value) -> Value {
    json!({
        "id": block.get("id").cloned().unwrap_or(json!("")),
        "type": "function",
        "function": {
            "name": block.get("name").cloned().unwrap_or(json!("")),
            "arguments": block.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
        },
    })
}

pub(super) fn text_of_parts(content: &Value, what: &str) -> Result<String, TranslateError> {
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
