//! Counting tokens locally, for providers that report no usage (and the Echo backend): the
//! `tiktoken-rs` tokenizer of a model's family — `cl100k_base` for the GPT-3.5/GPT-4 (non-`o`)
//! family and the older embedding models, `o200k_base` for everything else (GPT-4o and later,
//! and models of other providers, which have no public local tokenizer: an approximation, hence
//! `estimated`) — loaded on first use, and an estimate of a request's prompt.

use serde_json::Value;

/// The tokenizer used for a model (see the module doc).
pub fn tokenizer_for(model: &str) -> &'static tiktoken_rs::CoreBPE {
    let m = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
    let old = (m.starts_with("gpt-4")
        && !m.starts_with("gpt-4o")
        && !m.starts_with("gpt-4.")
        && !m.starts_with("gpt-4-o"))
        || m.starts_with("gpt-3.5")
        || m.starts_with("gpt-35")
        || m.starts_with("text-embedding-ada")
        || m.starts_with("text-embedding-3");
    if old { tiktoken_rs::cl100k_base_singleton() } else { tiktoken_rs::o200k_base_singleton() }
}

/// Number of tokens of `text` with the model's tokenizer (special tokens counted as text).
pub fn count_tokens(model: &str, text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tokenizer_for(model).encode_ordinary(text).len() as u64
}

/// Tokens OpenAI adds per chat message (role and separators), after its published counting recipe.
const PER_MESSAGE: u64 = 3;
/// Tokens priming the assistant's reply.
const REPLY_PRIMING: u64 = 3;

/// Estimates the input tokens of a request body of any supported API: Chat Completions
/// (`messages`, `tools`), Anthropic Messages (`system`, `messages`, `tools`), Embeddings (`input`:
/// a string, strings, or token arrays counted by length) and Responses (`instructions`, `input`).
/// Only text is counted; images and files are not (their cost is provider-specific), which
/// undercounts image requests.
pub fn estimate_request_tokens(model: &str, body: &Value) -> u64 {
    let bpe = tokenizer_for(model);
    let count = |s: &str| if s.is_empty() { 0 } else { bpe.encode_ordinary(s).len() as u64 };
    let mut total = 0u64;
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        total += REPLY_PRIMING;
        for m in messages {
            total += PER_MESSAGE;
            let mut texts = Vec::new();
            collect_text(m.get("content").unwrap_or(&Value::Null), &mut texts);
            if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                for c in calls {
                    collect_text(c.get("function").unwrap_or(&Value::Null), &mut texts);
                }
            }
            if let Some(r) = m.get("role").and_then(Value::as_str) {
                texts.push(r);
            }
            total += texts.iter().map(|t| count(t)).sum::<u64>();
        }
    }
    if let Some(system) = body.get("system") {
        let mut texts = Vec::new();
        collect_text(system, &mut texts);
        total += texts.iter().map(|t| count(t)).sum::<u64>();
    }
    if let Some(tools) = body.get("tools").filter(|t| t.is_array()) {
        total += count(&tools.to_string());
    }
    if let Some(instr) = body.get("instructions").and_then(Value::as_str) {
        total += count(instr);
    }
    match body.get("input") {
        Some(Value::String(s)) => total += count(s),
        Some(Value::Array(items)) => {
            for it in items {
                match it {
                    Value::String(s) => total += count(s),
                    Value::Number(_) => total += 1,
                    Value::Array(toks) if toks.iter().all(Value::is_number) => total += toks.len() as u64,
                    other => {
                        let mut texts = Vec::new();
                        collect_text(other.get("content").unwrap_or(other), &mut texts);
                        total += PER_MESSAGE + texts.iter().map(|t| count(t)).sum::<u64>();
                    }
                }
            }
        }
        _ => {}
    }
    total
}

/// Collects the text of a content value: a string, an array of parts (`text`, `input_text`,
/// `output_text`, `tool_result` with nested content, `tool_use` input), or a function call.
fn collect_text<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(parts) => {
            for p in parts {
                collect_text(p, out);
            }
        }
        Value::Object(o) => {
            for k in ["text", "name", "arguments", "thinking"] {
                if let Some(Value::String(s)) = o.get(k) {
                    out.push(s);
                }
            }
            if let Some(c) = o.get("content") {
                collect_text(c, out);
            }
            if let Some(input) = o.get("input").filter(|i| i.is_object()) {
                collect_json_strings(input, out);
            }
        }
        _ => {}
    }
}

fn collect_json_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| collect_json_strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k);
            collect_json_strings(x, out)
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokenizer_choice_by_model_family() {
        let o200k = tiktoken_rs::o200k_base_singleton() as *const _;
        let cl100k = tiktoken_rs::cl100k_base_singleton() as *const _;
        for m in ["gpt-4o-mini", "gpt-4.1", "gpt-5", "o3-mini", "claude-sonnet-4", "unknown", "openai/gpt-4o"]
        {
            assert_eq!(tokenizer_for(m) as *const _, o200k, "{m}");
        }
        for m in ["gpt-4", "gpt-4-turbo", "gpt-3.5-turbo", "text-embedding-3-small", "text-embedding-ada-002"]
        {
            assert_eq!(tokenizer_for(m) as *const _, cl100k, "{m}");
        }
        assert_eq!(count_tokens("gpt-4o", "hello world"), 2);
        assert_eq!(count_tokens("gpt-4o", ""), 0);
    }

    #[test]
    fn request_estimates_cover_every_api() {
        let chat = json!({"model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hello world"}]}]});
        let chat_est = estimate_request_tokens("gpt-4o", &chat);
        // 3 priming + 2×3 per message + roles (1 each) + "Be brief." (3) + "hello world" (2)
        assert_eq!(chat_est, 3 + 6 + 2 + count_tokens("gpt-4o", "Be brief.") + 2);
        let anth = json!({"system": "Be brief.", "messages": [{"role": "user", "content": "hello world"}]});
        assert_eq!(estimate_request_tokens("claude", &anth), 3 + 3 + 1 + count_tokens("x", "Be brief.") + 2);
        assert_eq!(estimate_request_tokens("text-embedding-3-small", &json!({"input": "hello world"})), 2);
        assert_eq!(
            estimate_request_tokens("text-embedding-3-small", &json!({"input": ["hello world", "hello"]})),
            3
        );
        assert_eq!(estimate_request_tokens("x", &json!({"input": [[1, 2, 3], [4]]})), 4);
        let resp = json!({"instructions": "Be brief.", "input": "hello world"});
        assert_eq!(estimate_request_tokens("gpt-4o", &resp), count_tokens("gpt-4o", "Be brief.") + 2);
        let with_tools =
            json!({"messages": [], "tools": [{"type": "function", "function": {"name": "get_weather"}}]});
        assert!(estimate_request_tokens("gpt-4o", &with_tools) > 3);
    }
}
