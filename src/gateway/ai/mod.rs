//! Layer 1: the AI (LLM) gateway.

pub mod sse;
pub mod usage;
pub mod translate;
pub mod pii;
pub mod guardrails;
pub mod cache;
