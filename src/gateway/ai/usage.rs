//! Token usage: reading it from provider bodies and pricing it. Metering a stream is
//! [`super::meter`], counting tokens locally when a provider reports none [`super::tokens`].
//!
//! One normalised figure, [`Usage`], whatever the provider:
//! - `input` counts **all** input tokens, cached ones included (OpenAI's `prompt_tokens`
//!   convention). Anthropic reports `input_tokens` *excluding* cache reads and writes, so for
//!   Anthropic `input = input_tokens + cache_read_input_tokens + cache_creation_input_tokens`.
//! - `cached_input` is the part of `input` served from the provider's prompt cache (OpenAI
//!   `prompt_tokens_details.cached_tokens` / `input_tokens_details.cached_tokens`, Anthropic
//!   `cache_read_input_tokens`); it is priced at the cached-input price. Anthropic cache
//!   *writes* are priced as ordinary input (the price contract has no cache-write price).
//! - `output` counts generated tokens (reasoning tokens included, as providers bill them).
//! - `estimated` is true when any part was counted locally with a tokenizer instead of reported.
//!
//! Costs are integer micro-dollars ([`cost_micro_usd`]) so that sums over many requests do not
//! drift.

use crate::config::PriceConfig;
use serde_json::Value;

/// Normalised token usage of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// All input tokens, cached included.
    pub input: u64,
    /// Input tokens read from the provider's cache (a subset of `input`).
    pub cached_input: u64,
    /// Output tokens.
    pub output: u64,
    /// Counted locally rather than reported by the provider.
    pub estimated: bool,
}

impl Usage {
    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input + self.output
    }

    /// Input tokens not served from the cache.
    pub fn uncached_input(&self) -> u64 {
        self.input.saturating_sub(self.cached_input)
    }
}

/// The unsigned integer under `key` of an object.
pub(super) fn u(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// Reads an OpenAI `usage` object of any endpoint: Chat Completions (`prompt_tokens`,
/// `completion_tokens`, `prompt_tokens_details.cached_tokens`), Embeddings (`prompt_tokens`,
/// `total_tokens`) or Responses (`input_tokens`, `output_tokens`,
/// `input_tokens_details.cached_tokens`). `None` when it is not such an object.
pub fn from_openai_usage(usage: &Value) -> Option<Usage> {
    if !usage.is_object() {
        return None;
    }
    if let Some(prompt) = u(usage, "prompt_tokens") {
        let output = u(usage, "completion_tokens")
            .unwrap_or_else(|| u(usage, "total_tokens").map_or(0, |t| t.saturating_sub(prompt)));
        let cached = usage.get("prompt_tokens_details").and_then(|d| u(d, "cached_tokens")).unwrap_or(0);
        return Some(Usage { input: prompt, cached_input: cached.min(prompt), output, estimated: false });
    }
    if let Some(input) = u(usage, "input_tokens") {
        let output = u(usage, "output_tokens").unwrap_or(0);
        let cached = usage.get("input_tokens_details").and_then(|d| u(d, "cached_tokens")).unwrap_or(0);
        return Some(Usage { input, cached_input: cached.min(input), output, estimated: false });
    }
    None
}

/// Reads an Anthropic `usage` object (`input_tokens`, `cache_read_input_tokens`,
/// `cache_creation_input_tokens`, `output_tokens`), normalised as described in the module doc.
pub fn from_anthropic_usage(usage: &Value) -> Option<Usage> {
    if !usage.is_object() {
        return None;
    }
    let input = u(usage, "input_tokens");
    let output = u(usage, "output_tokens");
    if input.is_none() && output.is_none() {
        return None;
    }
    let read = u(usage, "cache_read_input_tokens").unwrap_or(0);
    let write = u(usage, "cache_creation_input_tokens").unwrap_or(0);
    Some(Usage {
        input: input.unwrap_or(0) + read + write,
        cached_input: read,
        output: output.unwrap_or(0),
        estimated: false,
    })
}

/// Usage of a whole (non-streamed) answer body: its top-level `usage` object, read as OpenAI's
/// or (`anthropic`) Anthropic's. Only that object is built; the rest of the body is checked to be
/// JSON and skipped, so a large answer costs no allocation. `Err` when the body is not JSON.
pub fn answer_usage(body: &[u8], anthropic: bool) -> Result<Option<Usage>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        usage: Option<Value>,
    }
    let usage = match serde_json::from_slice::<Head>(body) {
        Ok(h) => h.usage,
        // Not an object, or `usage` given twice (the last one counts, as in a parsed document).
        Err(_) => serde_json::from_slice::<Value>(body)?.get_mut("usage").map(Value::take),
    };
    let read = if anthropic { from_anthropic_usage } else { from_openai_usage };
    Ok(usage.as_ref().and_then(read))
}

/// A price per million tokens as integer micro-dollars per million tokens (USD 0.15 → 150 000),
/// rounded to the nearest; negative or non-finite prices count as 0.
pub fn micro_usd_per_million(price_usd: f64) -> u64 {
    if price_usd.is_finite() && price_usd > 0.0 { (price_usd * 1e6).round() as u64 } else { 0 }
}

/// Cost of `usage` at `price`, in micro-dollars (millionths of a USD), rounded to the nearest.
/// Uncached input at the input price, cached input at the cached-input price, output at the output
/// price. Computed in integers: `tokens × µUSD-per-million / 10⁶`.
pub fn cost_micro_usd(usage: &Usage, price: &PriceConfig) -> u64 {
    let pico = usage.uncached_input() as u128 * micro_usd_per_million(price.input_per_million) as u128
        + usage.cached_input as u128 * micro_usd_per_million(price.cached_input_per_million) as u128
        + usage.output as u128 * micro_usd_per_million(price.output_per_million) as u128;
    // pico is in µUSD × 10⁶ (tokens × µUSD/Mtok); round to the nearest µUSD.
    let micro = (pico + 500_000) / 1_000_000;
    u64::try_from(micro).unwrap_or(u64::MAX)
}

/// A micro-dollar amount as USD (for metrics and display).
pub fn micro_usd_to_usd(micro: u64) -> f64 {
    micro as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::ai::meter::{StreamKind, StreamUsage};
    use serde_json::json;

    #[test]
    fn openai_chat_usage_with_cached_tokens() {
        let body = json!({"usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 60}}});
        assert_eq!(
            answer_usage(body.to_string().as_bytes(), false).unwrap(),
            Some(Usage { input: 100, cached_input: 60, output: 20, estimated: false })
        );
    }

    #[test]
    fn openai_embeddings_usage_has_no_output() {
        let body = json!({"object": "list", "usage": {"prompt_tokens": 8, "total_tokens": 8}});
        assert_eq!(
            answer_usage(body.to_string().as_bytes(), false).unwrap(),
            Some(Usage { input: 8, cached_input: 0, output: 0, estimated: false })
        );
    }

    #[test]
    fn openai_responses_usage_body_and_terminal_event() {
        let usage = json!({"input_tokens": 30, "input_tokens_details": {"cached_tokens": 10}, "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 35});
        let want = Some(Usage { input: 30, cached_input: 10, output: 5, estimated: false });
        let body = json!({"object": "response", "usage": usage});
        assert_eq!(answer_usage(body.to_string().as_bytes(), false).unwrap(), want);
        let mut s = StreamUsage::new(StreamKind::OpenAiResponses, "gpt-4o");
        s.observe(
            Some("response.completed"),
            &json!({"type": "response.completed", "response": {"usage": usage}}),
        );
        assert_eq!(Some(s.usage(0)), want);
    }

    #[test]
    fn null_usage_of_intermediate_chunks_is_none() {
        assert_eq!(answer_usage(br#"{"choices": [], "usage": null}"#, false).unwrap(), None);
        assert_eq!(answer_usage(br#"{"choices": []}"#, false).unwrap(), None);
        assert_eq!(answer_usage(br#"{"usage": {}}"#, true).unwrap(), None);
    }

    #[test]
    fn anthropic_usage_adds_cache_reads_and_writes_to_input() {
        let body = json!({"usage": {"input_tokens": 10, "cache_read_input_tokens": 50, "cache_creation_input_tokens": 7, "output_tokens": 3}});
        assert_eq!(
            answer_usage(body.to_string().as_bytes(), true).unwrap(),
            Some(Usage { input: 67, cached_input: 50, output: 3, estimated: false })
        );
    }

    fn price(i: f64, c: f64, o: f64) -> PriceConfig {
        PriceConfig { input_per_million: i, cached_input_per_million: c, output_per_million: o }
    }

    #[test]
    fn cost_in_integer_micro_dollars() {
        // gpt-4o-mini: 1M uncached input = $0.15, 1M output = $0.60.
        let p = price(0.15, 0.075, 0.60);
        let u = Usage { input: 1_000_000, cached_input: 0, output: 1_000_000, estimated: false };
        assert_eq!(cost_micro_usd(&u, &p), 750_000);
        // Cached tokens are billed at the cached price: 600k cached of 1M input.
        let u = Usage { input: 1_000_000, cached_input: 600_000, output: 0, estimated: false };
        assert_eq!(cost_micro_usd(&u, &p), 60_000 + 45_000);
        // Small requests round to the nearest micro-dollar: 10 tokens × 0.15 µ$ = 1.5 → 2.
        let u = Usage { input: 10, cached_input: 0, output: 0, estimated: false };
        assert_eq!(cost_micro_usd(&u, &p), 2);
        // No float drift: 0.1 + 0.2 style prices sum exactly.
        let p = price(0.1, 0.0, 0.2);
        let u = Usage { input: 3_000_000, cached_input: 0, output: 3_000_000, estimated: false };
        assert_eq!(cost_micro_usd(&u, &p), 900_000);
        assert_eq!(micro_usd_per_million(-1.0), 0);
        assert_eq!(micro_usd_per_million(f64::NAN), 0);
        assert_eq!(micro_usd_to_usd(1_500_000), 1.5);
    }

    #[test]
    fn usage_of_a_whole_answer_without_building_it() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"hi \u00e9"}}],"usage":{"prompt_tokens":7,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":3}}}"#;
        let want = Usage { input: 7, cached_input: 3, output: 2, estimated: false };
        assert_eq!(answer_usage(body, false).unwrap(), Some(want));
        let body =
            br#"{"usage":{"input_tokens":5,"cache_read_input_tokens":4,"output_tokens":1},"content":[]}"#;
        let want = Usage { input: 9, cached_input: 4, output: 1, estimated: false };
        assert_eq!(answer_usage(body, true).unwrap(), Some(want));
        assert_eq!(answer_usage(br#"{"choices":[]}"#, false).unwrap(), None);
        assert_eq!(answer_usage(br#"{"usage":null}"#, false).unwrap(), None);
        // The last of two `usage` keys counts, as in a parsed document; a non-object has none.
        let twice = br#"{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2,"completion_tokens":0}}"#;
        assert_eq!(answer_usage(twice, false).unwrap().map(|u| u.input), Some(2));
        assert_eq!(answer_usage(b"[1,2]", false).unwrap(), None);
        assert!(answer_usage(b"<html>", false).is_err());
        assert!(answer_usage(br#"{"usage":{}"#, false).is_err());
    }
}
