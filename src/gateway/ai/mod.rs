//! Layer 1: the AI (LLM) gateway.
//!
//! Front ends: OpenAI's `POST /v1/chat/completions` (stream and not), `POST /v1/embeddings`,
//! `GET /v1/models`, `POST /v1/responses` (passed through to OpenAI-type backends), and
//! Anthropic's `POST /v1/messages` (passed through to Anthropic backends). [`proxy::handle`] is
//! the request path; [`state::AiRuntime`] one config version ready to serve.

pub mod cache;
pub mod echo;
pub mod error;
pub mod guardrails;
pub mod pii;
pub mod proxy;
pub mod routing;
pub mod sse;
pub mod state;
pub mod translate;
pub mod upstream;
pub mod usage;
