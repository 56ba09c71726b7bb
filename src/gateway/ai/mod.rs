//! Layer 1: the AI (LLM) gateway.

pub mod sse;
pub mod usage;
