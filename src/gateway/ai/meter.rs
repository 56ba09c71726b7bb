//! Metering a streamed answer: the usage a provider reports in its events (Chat Completions'
//! usage chunk, the Responses API's terminal event, Anthropic's cumulative `message_delta`), or,
//! when it reports none, the text of the stream counted with the tokenizer in bounded pieces.

use super::tokens::count_tokens;
use super::usage::{Usage, from_openai_usage, u};
use serde_json::Value;
use std::borrow::Cow;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
