//! The gateway data planes: one core and three layers as peers (docs/architecture.md).
//!
//! The core serves any layer and names none: [`core`] (what a process shares: metrics, the HTTP
//! client, JWKS, stores, the environment, status), [`layer`] (the trait a layer implements),
//! [`supervisor`] (the config holder: start, swap atomically, stop), [`source`] (configs from
//! files or the Kubernetes API), [`server`] (the listener), [`admin`] (`/metrics`, `/healthz`,
//! `/readyz`, `/config`), [`admission`] (policy, limits and budgets, one path), [`limits`] (request
//! size limits: body, headers, JSON depth), [`identity`]
//! (who is calling), [`origin`] (the `Origin` check), [`egress`] (the egress rule where the
//! gateway connects, and for URLs that arrive at run time), [`store`] (counters in memory or Redis),
//! [`sse`] and [`jsonrpc`] (the wire pieces two layers share), [`http_client`], [`response`], [`metrics`],
//! [`telemetry`] (traces: the tracer provider, the request and upstream spans, W3C propagation,
//! OTLP export), [`log`] and [`clock`].
//!
//! The layers use the core and never each other: [`ai`] (LLM calls), [`mcp`] (tool servers),
//! [`agent`] (A2A). The gateway sees only [`crate::config`] and [`crate::policy`]; a test
//! (`tests/architecture.rs`) keeps it so.

pub mod admin;
pub mod admission;
pub mod agent;
pub mod ai;
pub mod clock;
pub mod core;
pub mod egress;
pub mod http_client;
pub mod identity;
pub mod jsonrpc;
pub mod layer;
pub mod limits;
pub mod log;
pub mod mcp;
pub mod metrics;
pub mod origin;
pub mod response;
pub mod server;
pub mod source;
pub mod sse;
pub mod store;
pub mod supervisor;
pub mod telemetry;
