//! Usage in one shape for every provider, its price, and local token counting for when a
//! provider reports no usage (a broken stream, a client that went away, a server that omits it).

use crate::config::AiModelConfig;

/// Tokens of one request, normalised: `input` includes cached input (OpenAI's convention; an
/// Anthropic `input_tokens` plus its cache reads and writes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// All input tokens.
    pub input: u64,
    /// Of which served from the provider's prompt cache.
    pub cached_input: u64,
    /// Output tokens.
    pub output: u64,
    /// Counted by the gateway (tiktoken `o200k_base`) rather than reported by the provider.
    pub estimated: bool,
}

impl Usage {
    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }

    /// From an OpenAI `usage` object (chat, embeddings) or a Responses API `usage`.
    pub fn from_openai(u: &serde_json::Value) -> Option<Usage> {
        let n = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_u64);
        let input = n(u.get("prompt_tokens")).or_else(|| n(u.get("input_tokens")))?;
        let output = n(u.get("completion_tokens")).or_else(|| n(u.get("output_tokens"))).unwrap_or(0);
        let cached = n(u.pointer("/prompt_tokens_details/cached_tokens"))
            .or_else(|| n(u.pointer("/input_tokens_details/cached_tokens")))
            .unwrap_or(0);
        Some(Usage { input, cached_input: cached.min(input), output, estimated: false })
    }

    /// From an Anthropic `usage` object.
    pub fn from_anthropic(u: &serde_json::Value) -> Option<Usage> {
        let n = |k: &str| u.get(k).and_then(serde_json::Value::as_u64);
        let base = n("input_tokens");
        let output = n("output_tokens");
        if base.is_none() && output.is_none() {
            return None;
        }
        let read = n("cache_read_input_tokens").unwrap_or(0);
        let write = n("cache_creation_input_tokens").unwrap_or(0);
        Some(Usage {
            input: base.unwrap_or(0) + read + write,
            cached_input: read,
            output: output.unwrap_or(0),
            estimated: false,
        })
    }
}

/// The price of `usage` in micro-dollars (USD per million tokens × tokens = micro-USD), rounded
/// up; zero for an unpriced model.
pub fn cost_micros(model: Option<&AiModelConfig>, usage: &Usage) -> u64 {
    let Some(price) = model.and_then(|m| m.price.as_ref()) else { return 0 };
    let uncached = usage.input.saturating_sub(usage.cached_input) as f64;
    let micros = uncached * price.input_per_million
        + usage.cached_input as f64 * price.cached_input_per_million
        + usage.output as f64 * price.output_per_million;
    if micros.is_finite() && micros > 0.0 { micros.ceil() as u64 } else { 0 }
}

/// Tokens in `text` by OpenAI's `o200k_base` encoding (GPT-4o family); an estimate for other
/// providers' tokenizers.
pub fn count_tokens(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len() as u64
}

/// Every text of a request's prompt: chat `messages[].content` (strings and text parts), Anthropic
/// `system`, Responses `input`/`instructions`, embeddings `input`.
pub fn prompt_text(body: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut out = String::new();
    for key in ["system", "instructions", "input", "prompt"] {
        if let Some(v) = body.get(key) {
            collect_text(v, &mut out);
        }
    }
    if let Some(serde_json::Value::Array(msgs)) = body.get("messages") {
        for m in msgs {
            if let Some(c) = m.get("content") {
                collect_text(c, &mut out);
            }
        }
    }
    out
}

fn collect_text(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::String(s) => {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(s);
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_text(i, out)),
        serde_json::Value::Object(o) => {
            if let Some(t) = o.get("text") {
                collect_text(t, out);
            } else if let Some(c) = o.get("content") {
                collect_text(c, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelKind, PriceConfig};

    #[test]
    fn cost_prices_cached_input_separately_in_micro_dollars() {
        let m = AiModelConfig {
            name: "m".into(),
            kind: ModelKind::Chat,
            price: Some(PriceConfig { input_per_million: 0.15, cached_input_per_million: 0.075, output_per_million: 0.6 }),
        };
        let u = Usage { input: 1000, cached_input: 400, output: 100, estimated: false };
        // 600 × 0.15 + 400 × 0.075 + 100 × 0.6 = 90 + 30 + 60 µ$
        assert_eq!(cost_micros(Some(&m), &u), 180);
        assert_eq!(cost_micros(None, &u), 0);
    }

    #[test]
    fn usage_normalises_anthropic_cache_tokens_into_input() {
        let u = Usage::from_anthropic(&serde_json::json!({
            "input_tokens": 10, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 2, "output_tokens": 7
        }))
        .unwrap();
        assert_eq!(u, Usage { input: 17, cached_input: 5, output: 7, estimated: false });
        let o = Usage::from_openai(&serde_json::json!({
            "prompt_tokens": 9, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}
        }))
        .unwrap();
        assert_eq!(o, Usage { input: 9, cached_input: 4, output: 3, estimated: false });
    }

    #[test]
    fn counts_tokens_with_o200k() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("hello world"), 2);
    }
}
