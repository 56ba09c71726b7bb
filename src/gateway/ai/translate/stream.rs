//! Streams, both ways: Anthropic Messages events → OpenAI `chat.completion.chunk`s, and OpenAI
//! chunks → Anthropic events, each event translated as it arrives.

use super::error::openai_error_type;
use super::mapping::{
    anthropic_stop_to_openai, openai_finish_to_anthropic, usage_to_anthropic, usage_to_openai,
};
use crate::gateway::ai::usage::{Usage, from_anthropic_usage, from_openai_usage};
use crate::gateway::sse::SseEvent;
use serde_json::{Map, Value, json};

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
