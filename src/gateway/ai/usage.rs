//! Token usage: reading it from provider bodies and stream events, estimating it when a provider
//! gives none, and pricing it.
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
//! drift. Estimation uses `tiktoken-rs`: `cl100k_base` for the GPT-3.5/GPT-4 (non-`o`) family and
//! the older embedding models, `o200k_base` for everything else (GPT-4o and later, and models of
//! other providers, which have no public local tokenizer — an approximation, hence `estimated`).

use crate::config::PriceConfig;
use serde_json::Value;
use std::borrow::Cow;

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

fn u(v: &Value, key: &str) -> Option<u64> {
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

/// Usage of an OpenAI response body or stream event: the top-level `usage` (Chat Completions,
/// Embeddings, Responses, a final `include_usage` chunk) or `response.usage` (the Responses API's
/// `response.completed` / `response.incomplete` / `response.failed` events). A `null` usage (every
/// chunk but the last one) gives `None`.
pub fn from_openai_body(body: &Value) -> Option<Usage> {
    if let Some(usage) = body.get("usage").and_then(from_openai_usage) {
        return Some(usage);
    }
    body.get("response").and_then(|r| r.get("usage")).and_then(from_openai_usage)
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

/// Usage of an Anthropic Messages response body (`usage` at the top level).
pub fn from_anthropic_body(body: &Value) -> Option<Usage> {
    body.get("usage").and_then(from_anthropic_usage)
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

/// The wire family of a stream, for [`StreamUsage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// Chat Completions chunks (`data: {chat.completion.chunk}` … `data: [DONE]`).
    OpenAiChat,
    /// Responses API events (`response.output_text.delta` … `response.completed`).
    OpenAiResponses,
    /// Anthropic Messages events (`message_start` … `message_stop`).
    Anthropic,
}

/// Collects usage from a stream as it passes, event by event, and keeps just enough of the
/// generated text to estimate output tokens if the stream ends without a usage report (the
/// provider omits it, or the stream breaks).
///
/// Anthropic: input figures come from `message_start.message.usage`; `message_delta.usage` is
/// **cumulative**, so the last one wins (never summed). OpenAI chat: the chunk carrying a non-null
/// `usage` (the `include_usage` chunk). Responses: `response.usage` of the terminal event.
#[derive(Debug)]
pub struct StreamUsage {
    kind: StreamKind,
    model: String,
    reported: Option<Usage>,
    /// Anthropic: the message_start usage, merged with later message_delta figures.
    anthropic: AnthropicAcc,
    /// Generated text not yet counted.
    pending_text: String,
    /// Output tokens of text already counted.
    counted_output: u64,
}

#[derive(Debug, Default)]
struct AnthropicAcc {
    seen: bool,
    /// A `message_delta` reported output tokens: the figure is final.
    output_final: bool,
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
}

/// What the stream relay needs to know of one Chat Completions chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatChunk {
    /// A usage report with no choices: the extra chunk `stream_options.include_usage` asks for.
    pub usage_only: bool,
}

// The fields of a Chat Completions chunk the gateway reads, borrowed from the event's data (a
// string without escapes costs no allocation); every other field is skipped unparsed.
#[derive(serde::Deserialize)]
struct RawChunk<'a> {
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default, borrow)]
    choices: Option<Vec<RawChoice<'a>>>,
}

#[derive(serde::Deserialize)]
struct RawChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<RawDelta<'a>>,
}

#[derive(serde::Deserialize)]
struct RawDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<RawToolCall<'a>>>,
}

#[derive(serde::Deserialize)]
struct RawToolCall<'a> {
    #[serde(default, borrow)]
    function: Option<RawFunction<'a>>,
}

#[derive(serde::Deserialize)]
struct RawFunction<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// Text kept before counting it, bounding the memory a long stream holds.
const PENDING_TEXT_LIMIT: usize = 16 * 1024;

impl StreamUsage {
    /// A collector for a stream of `kind` from `model` (the model picks the tokenizer).
    pub fn new(kind: StreamKind, model: &str) -> Self {
        StreamUsage {
            kind,
            model: model.to_owned(),
            reported: None,
            anthropic: AnthropicAcc::default(),
            pending_text: String::new(),
            counted_output: 0,
        }
    }

    /// Looks at one event's parsed data (`event` is the SSE event name, if any; Anthropic and the
    /// Responses API also carry it as `type` in the data).
    pub fn observe(&mut self, event: Option<&str>, data: &Value) {
        match self.kind {
            StreamKind::OpenAiChat => {
                if let Some(usage) = data.get("usage").and_then(from_openai_usage) {
                    self.reported = Some(usage);
                }
                if let Some(choices) = data.get("choices").and_then(Value::as_array) {
                    for c in choices {
                        let Some(delta) = c.get("delta") else { continue };
                        if let Some(t) = delta.get("content").and_then(Value::as_str) {
                            self.add_text(t);
                        }
                        if let Some(t) = delta.get("reasoning_content").and_then(Value::as_str) {
                            self.add_text(t);
                        }
                        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                            for call in calls {
                                if let Some(f) = call.get("function") {
                                    if let Some(n) = f.get("name").and_then(Value::as_str) {
                                        self.add_text(n);
                                    }
                                    if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                                        self.add_text(a);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            StreamKind::OpenAiResponses => {
                let ty = event.or_else(|| data.get("type").and_then(Value::as_str)).unwrap_or("");
                if ty.ends_with(".delta") {
                    if let Some(t) = data.get("delta").and_then(Value::as_str) {
                        self.add_text(t);
                    }
                } else if let Some(usage) =
                    data.get("response").and_then(|r| r.get("usage")).and_then(from_openai_usage)
                {
                    self.reported = Some(usage);
                }
            }
            StreamKind::Anthropic => {
                let ty = event.or_else(|| data.get("type").and_then(Value::as_str)).unwrap_or("");
                match ty {
                    "message_start" => {
                        if let Some(usage) = data.get("message").and_then(|m| m.get("usage")) {
                            self.merge_anthropic(usage);
                        }
                    }
                    "message_delta" => {
                        if let Some(usage) = data.get("usage") {
                            self.merge_anthropic(usage);
                            if usage.get("output_tokens").is_some_and(Value::is_u64) {
                                self.anthropic.output_final = true;
                            }
                        }
                    }
                    "content_block_start" => {
                        if let Some(b) = data.get("content_block") {
                            for k in ["text", "thinking", "name"] {
                                if let Some(t) = b.get(k).and_then(Value::as_str) {
                                    self.add_text(t);
                                }
                            }
                        }
                    }
                    "content_block_delta" => {
                        if let Some(d) = data.get("delta") {
                            for k in ["text", "partial_json", "thinking"] {
                                if let Some(t) = d.get(k).and_then(Value::as_str) {
                                    self.add_text(t);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Looks at one Chat Completions chunk given as its raw data, reading only what the gateway
    /// needs: the usage and the generated text (the text is kept only until a usage report makes
    /// an estimate needless). Returns what the relay needs to know of the chunk, or `None` when
    /// the data is not JSON (the chunk is then neither counted nor hidden). Chunks of an unusual
    /// shape (a field of an unexpected type, a key given twice) are read through a full parse with
    /// the same result as [`StreamUsage::observe`].
    pub fn observe_chat_chunk(&mut self, data: &str) -> Option<ChatChunk> {
        let chunk = match serde_json::from_str::<RawChunk<'_>>(data) {
            Ok(c) => c,
            Err(_) => {
                let v: Value = serde_json::from_str(data).ok()?;
                self.observe(None, &v);
                let usage_only = v.get("usage").is_some_and(Value::is_object)
                    && v.get("choices").and_then(Value::as_array).is_some_and(|c| c.is_empty());
                return Some(ChatChunk { usage_only });
            }
        };
        let usage_only = chunk.usage.as_ref().is_some_and(Value::is_object)
            && chunk.choices.as_ref().is_some_and(Vec::is_empty);
        if let Some(usage) = chunk.usage.as_ref().and_then(from_openai_usage) {
            self.reported = Some(usage);
        }
        if self.reported.is_none() {
            for delta in chunk.choices.iter().flatten().filter_map(|c| c.delta.as_ref()) {
                for t in [&delta.content, &delta.reasoning_content].into_iter().flatten() {
                    self.add_text(t);
                }
                for f in delta.tool_calls.iter().flatten().filter_map(|c| c.function.as_ref()) {
                    for t in [&f.name, &f.arguments].into_iter().flatten() {
                        self.add_text(t);
                    }
                }
            }
        }
        Some(ChatChunk { usage_only })
    }

    fn merge_anthropic(&mut self, usage: &Value) {
        let a = &mut self.anthropic;
        a.seen = true;
        // Cumulative figures: the latest report of each field replaces the earlier one.
        if let Some(v) = u(usage, "input_tokens") {
            a.input = v;
        }
        if let Some(v) = u(usage, "cache_read_input_tokens") {
            a.cache_read = v;
        }
        if let Some(v) = u(usage, "cache_creation_input_tokens") {
            a.cache_write = v;
        }
        if let Some(v) = u(usage, "output_tokens") {
            a.output = v;
        }
    }

    fn add_text(&mut self, t: &str) {
        self.pending_text.push_str(t);
        if self.pending_text.len() > PENDING_TEXT_LIMIT {
            // Count up to the last whitespace so that a word is not split between two counts.
            let cut = self
                .pending_text
                .rfind(char::is_whitespace)
                .filter(|&i| i > 0)
                .unwrap_or(self.pending_text.len());
            self.counted_output += count_tokens(&self.model, &self.pending_text[..cut]);
            self.pending_text.drain(..cut);
        }
    }

    /// The wire family this collector reads.
    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    /// Whether the provider reported output usage (so no estimate is needed).
    pub fn reported(&self) -> bool {
        match self.kind {
            StreamKind::Anthropic => self.anthropic.seen,
            _ => self.reported.is_some(),
        }
    }

    /// The usage so far. Reported figures when the provider gave them; otherwise output counted
    /// from the text seen and input from `estimated_input` (e.g. [`estimate_request_tokens`]),
    /// marked estimated. Anthropic streams always report input in `message_start`; the output of
    /// a `message_delta` is final; if the stream broke before one, the output figure is the larger
    /// of `message_start`'s and the count, marked estimated when the count is larger.
    pub fn usage(&self, estimated_input: u64) -> Usage {
        match self.kind {
            StreamKind::Anthropic if self.anthropic.seen => {
                let a = &self.anthropic;
                let counted = self.counted_output();
                let (output, estimated) =
                    if a.output_final || a.output >= counted { (a.output, false) } else { (counted, true) };
                Usage {
                    input: a.input + a.cache_read + a.cache_write,
                    cached_input: a.cache_read,
                    output,
                    estimated,
                }
            }
            _ => match self.reported {
                Some(u) => u,
                None => Usage {
                    input: estimated_input,
                    cached_input: 0,
                    output: self.counted_output(),
                    estimated: true,
                },
            },
        }
    }

    fn counted_output(&self) -> u64 {
        self.counted_output + count_tokens(&self.model, &self.pending_text)
    }
}

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

/// Makes an OpenAI Chat Completions streaming request report usage: sets
/// `stream_options.include_usage = true` when `stream` is true. Returns whether the **client**
/// asked for usage itself; when it did not, the gateway must hide the extra final chunk from it
/// (see [`is_usage_only_chunk`]). A non-streaming request is left alone and returns true.
pub fn inject_include_usage(body: &mut Value) -> bool {
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return true;
    }
    let asked = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !asked && let Some(obj) = body.as_object_mut() {
        let opts = obj.entry("stream_options").or_insert_with(|| Value::Object(Default::default()));
        if !opts.is_object() {
            *opts = Value::Object(Default::default());
        }
        if let Some(o) = opts.as_object_mut() {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    }
    asked
}

/// Whether a chat chunk is the usage-only final chunk (`choices: []` with a usage object), the one
/// to hide from a client that did not ask for usage.
pub fn is_usage_only_chunk(chunk: &Value) -> bool {
    chunk.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty)
        && chunk.get("usage").is_some_and(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_chat_usage_with_cached_tokens() {
        let body = json!({"usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 60}}});
        assert_eq!(
            from_openai_body(&body),
            Some(Usage { input: 100, cached_input: 60, output: 20, estimated: false })
        );
    }

    #[test]
    fn openai_embeddings_usage_has_no_output() {
        let body = json!({"object": "list", "usage": {"prompt_tokens": 8, "total_tokens": 8}});
        assert_eq!(
            from_openai_body(&body),
            Some(Usage { input: 8, cached_input: 0, output: 0, estimated: false })
        );
    }

    #[test]
    fn openai_responses_usage_body_and_terminal_event() {
        let usage = json!({"input_tokens": 30, "input_tokens_details": {"cached_tokens": 10}, "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 35});
        let want = Some(Usage { input: 30, cached_input: 10, output: 5, estimated: false });
        assert_eq!(from_openai_body(&json!({"object": "response", "usage": usage})), want);
        assert_eq!(
            from_openai_body(&json!({"type": "response.completed", "response": {"usage": usage}})),
            want
        );
    }

    #[test]
    fn null_usage_of_intermediate_chunks_is_none() {
        assert_eq!(from_openai_body(&json!({"choices": [], "usage": null})), None);
        assert_eq!(from_openai_body(&json!({"choices": []})), None);
        assert_eq!(from_anthropic_body(&json!({"usage": {}})), None);
    }

    #[test]
    fn anthropic_usage_adds_cache_reads_and_writes_to_input() {
        let body = json!({"usage": {"input_tokens": 10, "cache_read_input_tokens": 50, "cache_creation_input_tokens": 7, "output_tokens": 3}});
        assert_eq!(
            from_anthropic_body(&body),
            Some(Usage { input: 67, cached_input: 50, output: 3, estimated: false })
        );
    }

    #[test]
    fn anthropic_stream_takes_the_last_cumulative_delta() {
        let mut s = StreamUsage::new(StreamKind::Anthropic, "claude-haiku-4-5");
        s.observe(Some("message_start"), &json!({"type": "message_start", "message": {"usage":
            {"input_tokens": 25, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 0, "output_tokens": 1}}}));
        s.observe(
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}}),
        );
        s.observe(Some("message_delta"), &json!({"type": "message_delta", "usage": {"output_tokens": 10}}));
        s.observe(Some("message_delta"), &json!({"type": "message_delta", "usage": {"output_tokens": 15}}));
        assert!(s.reported());
        assert_eq!(s.usage(999), Usage { input: 30, cached_input: 5, output: 15, estimated: false });
        // A final figure below the local count still wins: the provider's tokenizer is the truth.
        let mut s = StreamUsage::new(StreamKind::Anthropic, "claude");
        s.observe(
            None,
            &json!({"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}}),
        );
        s.observe(None, &json!({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "one two three four five"}}));
        s.observe(None, &json!({"type": "message_delta", "usage": {"output_tokens": 2}}));
        assert_eq!(s.usage(0), Usage { input: 3, cached_input: 0, output: 2, estimated: false });
    }

    #[test]
    fn anthropic_stream_broken_before_message_delta_estimates_output() {
        let mut s = StreamUsage::new(StreamKind::Anthropic, "claude");
        s.observe(
            None,
            &json!({"type": "message_start", "message": {"usage": {"input_tokens": 25, "output_tokens": 1}}}),
        );
        s.observe(None, &json!({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "one two three four five six"}}));
        let u = s.usage(0);
        assert_eq!(u.input, 25);
        assert!(u.output >= 6, "{u:?}");
        assert!(u.estimated);
    }

    #[test]
    fn openai_stream_with_usage_chunk() {
        let mut s = StreamUsage::new(StreamKind::OpenAiChat, "gpt-4o-mini");
        s.observe(None, &json!({"choices": [{"index": 0, "delta": {"content": "Hello"}}], "usage": null}));
        assert!(!s.reported());
        s.observe(None, &json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}));
        assert!(s.reported());
        assert_eq!(s.usage(100), Usage { input: 9, cached_input: 0, output: 2, estimated: false });
    }

    #[test]
    fn openai_stream_without_usage_is_counted_and_marked_estimated() {
        let mut s = StreamUsage::new(StreamKind::OpenAiChat, "gpt-4o");
        for w in ["Hello", " world", ",", " how", " are", " you", "?"] {
            s.observe(None, &json!({"choices": [{"index": 0, "delta": {"content": w}}]}));
        }
        s.observe(None, &json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]}}]}));
        let u = s.usage(42);
        assert_eq!(u.input, 42);
        assert_eq!(u.output, count_tokens("gpt-4o", "Hello world, how are you?f{}"));
        assert!(u.estimated);
    }

    #[test]
    fn chat_chunk_reader_counts_what_a_full_parse_counts() {
        let chunks = [
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}],"usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo \"w\u00f6rld\"\n","reasoning_content":"hm"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            // Unusual shapes take the full parse: a number as content, `usage` given twice.
            r#"{"choices":[{"delta":{"content":7}},{"delta":{"content":"x"}}]}"#,
            r#"{"usage":{"prompt_tokens":1},"usage":null,"choices":[{"delta":{"content":"y"}}]}"#,
        ];
        let mut typed = StreamUsage::new(StreamKind::OpenAiChat, "gpt-4o");
        let mut full = StreamUsage::new(StreamKind::OpenAiChat, "gpt-4o");
        for c in chunks {
            assert_eq!(typed.observe_chat_chunk(c), Some(ChatChunk { usage_only: false }), "{c}");
            full.observe(None, &serde_json::from_str(c).unwrap());
        }
        assert_eq!(typed.pending_text, full.pending_text);
        assert_eq!(typed.pending_text, "Hello \"w\u{f6}rld\"\nhmf{\"a\":1}xy");
        assert!(!typed.reported());
        assert_eq!(typed.usage(3), full.usage(3));
    }

    #[test]
    fn chat_chunk_reader_spots_the_usage_only_chunk() {
        let mut s = StreamUsage::new(StreamKind::OpenAiChat, "gpt-4o");
        let last = r#"{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        assert_eq!(s.observe_chat_chunk(last), Some(ChatChunk { usage_only: true }));
        assert_eq!(s.usage(100), Usage { input: 9, cached_input: 4, output: 2, estimated: false });
        // Usage next to choices, or no usage object at all, is not the extra chunk.
        let both =
            r#"{"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
        assert_eq!(s.observe_chat_chunk(both), Some(ChatChunk { usage_only: false }));
        assert_eq!(
            s.observe_chat_chunk(r#"{"choices":[],"usage":null}"#),
            Some(ChatChunk { usage_only: false })
        );
        assert_eq!(
            s.observe_chat_chunk(r#"{"choices":[],"usage":5}"#),
            Some(ChatChunk { usage_only: false })
        );
        // Text after the report is not kept: no estimate will be made.
        assert!(s.pending_text.is_empty());
    }

    #[test]
    fn chat_chunk_reader_ignores_what_is_not_json() {
        let mut s = StreamUsage::new(StreamKind::OpenAiChat, "gpt-4o");
        for bad in ["[DONE]", "", r#"{"choices":[{"delta":{"content":"cut"#, "not json"] {
            assert_eq!(s.observe_chat_chunk(bad), None, "{bad}");
        }
        assert!(!s.reported());
        assert_eq!(s.usage(5), Usage { input: 5, cached_input: 0, output: 0, estimated: true });
    }

    #[test]
    fn long_streams_are_counted_in_bounded_pieces() {
        let mut s = StreamUsage::new(StreamKind::OpenAiChat, "gpt-4o");
        let word = "lorem ipsum dolor sit amet ";
        let mut all = String::new();
        for _ in 0..3000 {
            s.observe(None, &json!({"choices": [{"delta": {"content": word}}]}));
            all.push_str(word);
        }
        assert!(s.pending_text.len() <= PENDING_TEXT_LIMIT + word.len());
        let counted = s.usage(0).output;
        let exact = count_tokens("gpt-4o", &all);
        assert!(counted.abs_diff(exact) <= exact / 100, "{counted} vs {exact}");
    }

    #[test]
    fn responses_stream_usage_from_completed_event() {
        let mut s = StreamUsage::new(StreamKind::OpenAiResponses, "gpt-4o");
        s.observe(
            Some("response.output_text.delta"),
            &json!({"type": "response.output_text.delta", "delta": "Hi"}),
        );
        assert_eq!(s.usage(5), Usage { input: 5, cached_input: 0, output: 1, estimated: true });
        s.observe(Some("response.completed"), &json!({"type": "response.completed", "response": {"usage": {"input_tokens": 7, "output_tokens": 1}}}));
        assert_eq!(s.usage(5), Usage { input: 7, cached_input: 0, output: 1, estimated: false });
    }

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

    #[test]
    fn include_usage_injection_reports_what_the_client_asked() {
        let mut b = json!({"model": "m", "stream": true});
        assert!(!inject_include_usage(&mut b));
        assert_eq!(b["stream_options"], json!({"include_usage": true}));
        let mut b = json!({"stream": true, "stream_options": {"include_usage": true}});
        assert!(inject_include_usage(&mut b));
        let mut b = json!({"stream": true, "stream_options": {"include_usage": false, "x": 1}});
        assert!(!inject_include_usage(&mut b));
        assert_eq!(b["stream_options"], json!({"include_usage": true, "x": 1}));
        let mut b = json!({"stream": false});
        assert!(inject_include_usage(&mut b));
        assert!(b.get("stream_options").is_none());
        assert!(is_usage_only_chunk(&json!({"choices": [], "usage": {"prompt_tokens": 1}})));
        assert!(!is_usage_only_chunk(&json!({"choices": [{"delta": {}}], "usage": {"prompt_tokens": 1}})));
        assert!(!is_usage_only_chunk(&json!({"choices": [], "usage": null})));
    }
}
