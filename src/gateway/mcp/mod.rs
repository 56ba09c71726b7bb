//! Layer 2: the MCP gateway — one streamable-HTTP endpoint over many MCP servers, both protocol
//! eras, per-caller tool access, audit, and the stdio bridge.
//!
//! * [`http`]: the front (checks, eras, sessions, SSE) and Protected Resource Metadata;
//! * [`dispatch`]: the methods — fan-out, merged lists with prefixes, routed calls, policy;
//! * [`session`]: sealed session ids, so any replica serves any session;
//! * [`upstream`]: backends over streamable HTTP or stdio; [`stdio`]: child processes;
//! * [`protocol`] and [`jsonrpc`]: the wire rules; [`audit`]: audit lines and metrics;
//! * [`bridge`]: `cairn mcp-bridge`; [`runtime`]: one config version ready to serve.

pub mod audit;
pub mod bridge;
pub mod dispatch;
pub mod http;
pub mod jsonrpc;
pub mod protocol;
pub mod runtime;
pub mod session;
pub mod stdio;
pub mod upstream;

pub use http::{handle, serve};
pub use runtime::McpRuntime;
