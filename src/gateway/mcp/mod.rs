//! Layer 2: the MCP gateway — one streamable-HTTP endpoint (`/mcp`) over many MCP servers, both
//! protocol eras, per-caller tool access, audit, and the stdio bridge.
//!
//! * [`front`]: the endpoint (path, `Origin`, caller, body, era), routing a request to its era:
//!   [`session_era`] (`initialize`, session checks, batches, `DELETE`), [`standalone`] (`GET`:
//!   the standalone stream, `Last-Event-ID` replay) or [`stateless`] (2026-07-28,
//!   `subscriptions/listen`); [`oauth`]: Protected Resource Metadata and the 401;
//! * [`ctx`] (a request's context, reaching a server), [`dispatch`] (the methods), [`fanout`]
//!   (`initialize` fanned out, pooled sessions), [`lists`] (merged, paged lists with prefixes),
//!   [`call`] (`tools/call`: policy and rate limits, audit, routing), [`names`] (prefixes, and
//!   server→client requests routed back by rewritten ids); [`answer`] and [`reply`]: the answer
//!   as JSON or SSE;
//! * [`session`]: sealed session ids (ChaCha20-Poly1305 under the bundle's `SESSION_KEY`), so any
//!   replica serves any session;
//! * [`events`]: SSE event ids and the replay buffer behind `Last-Event-ID` resumption;
//! * [`streams`]: the backends' standalone streams of a session, opened when it starts and
//!   buffered until the client listens, so no server→client message is lost;
//! * [`upstream`]: backends over streamable HTTP or stdio, both eras; [`http_backend`]: one POST
//!   and its answer (JSON or SSE); [`replies`]: what an exchange gives, or why it failed;
//!   [`stdio`]: child processes (per session or shared, restarted, idle ones reaped);
//! * [`protocol`] and the gateway's [`crate::gateway::jsonrpc`]: the wire rules; [`wire`]: the borrowed views that carry a
//!   plain `tools/call` and its answer through as bytes; [`audit`]: audit lines and metrics;
//! * [`bridge`]: `cairn mcp-bridge`; [`runtime`]: one config version ready to serve; [`layer`]:
//!   what the core serves.
//!
//! How the eras meet: each HTTP backend's era is detected once (`server/discover`, see
//! [`upstream`]); session-era and dual-era backends are spoken to in the session era, backends
//! that speak only 2026-07-28 statelessly. A session-era client gets one backend session per
//! session-era server, sealed into its own session id. A stateless (2026-07-28) client is served
//! over backend sessions pooled per replica and shared by such clients (backends see the
//! gateway's credentials, never a client's, so they cannot tell callers apart anyway);
//! `subscriptions/listen` opens backend sessions of its own for its stream and subscribes the
//! resources it names there.
//!
//! Resumability (session era): every SSE event has an id and is recorded in the gateway's store
//! first, so `GET` with `Last-Event-ID` resumes a stream on any replica ([`events`]).
//!
//! Lists: every backend page is followed, the merged list is served in pages of
//! [`runtime::PAGE_SIZE`] under sealed cursors (each page fetches the backends' lists again).
//!
//! Not done yet: a shared (Redis) record of session activity, so idle expiry is per replica;
//! towards modern backends, `Mcp-Param-*` headers for tool parameters marked `x-mcp-header`,
//! cancellation of a session-era client's request (`notifications/cancelled` is not sent; the
//! stream closes only when nobody waits) and resource subscriptions (2026-07-28 has no
//! `resources/subscribe`; updates would come from `resourceSubscriptions` on its listen stream).

pub mod answer;
pub mod audit;
pub mod bridge;
pub mod call;
pub mod ctx;
pub mod dispatch;
pub mod events;
pub mod fanout;
pub mod front;
pub mod http_backend;
pub mod layer;
pub mod lists;
pub mod names;
pub mod oauth;
pub mod protocol;
pub mod replies;
pub mod reply;
pub mod runtime;
pub mod session;
pub mod session_era;
pub mod standalone;
pub mod stateless;
pub mod stdio;
pub mod streams;
pub mod upstream;
pub mod wire;

pub use front::handle;
pub use layer::McpLayer;
pub use runtime::McpRuntime;
