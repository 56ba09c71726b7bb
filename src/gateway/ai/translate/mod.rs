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

//!
//! # Files
//! [`request`] (requests both ways), [`response`] (whole responses), [`stream`] (event streams),
//! [`error`] (error bodies and types), [`mapping`] (stop reasons, usage, the refusal type).

pub mod error;
pub mod mapping;
pub mod request;
pub mod response;
pub mod stream;

pub use error::*;
pub use mapping::{
    TranslateError, anthropic_stop_to_openai, openai_finish_to_anthropic, usage_to_anthropic, usage_to_openai,
};
pub use request::{DEFAULT_MAX_TOKENS, chat_to_messages_request, messages_to_chat_request};
pub use response::{chat_to_messages_response, messages_to_chat_response};
pub use stream::{ChatToMessagesStream, MessagesToChatStream, status_of_anthropic_type};

#[cfg(test)]
mod tests;
