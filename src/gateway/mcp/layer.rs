//! The MCP layer as the core serves it: what it keeps for the process (per-gateway session
//! state, stdio children and pooled backend sessions; its metrics), how it builds a config
//! version, and its request path ([`super::front::handle`]).

use super::audit::McpMetrics;
use super::front::handle as front;
use super::runtime::{GatewayStates, McpRuntime};
use crate::config::{CompiledGateway, Layer as Kind};
use crate::gateway::core::Core;
use crate::gateway::layer::{BuildError, Layer};
use crate::gateway::response::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use std::future::Future;
use std::sync::Arc;

/// Layer 2, for one process.
pub struct McpLayer {
    core: Arc<Core>,
    states: GatewayStates,
    metrics: McpMetrics,
}

impl McpLayer {
    /// The layer, its metrics registered in the core's registry.
    pub fn new(core: &Arc<Core>) -> McpLayer {
        McpLayer {
            core: core.clone(),
            states: GatewayStates::default(),
            metrics: core.metrics.register(|r| McpMetrics::new(r, core.metrics.denials.clone())),
        }
    }
}

impl Layer for McpLayer {
    type Runtime = McpRuntime;
    const KIND: Kind = Kind::Mcp;

    fn build(&self, gw: &CompiledGateway) -> Result<McpRuntime, BuildError> {
        BuildError::check_layer::<Self>(gw)?;
        McpRuntime::build(gw, &self.core, &self.states, &self.metrics)
    }

    fn handle(
        rt: Arc<McpRuntime>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static {
        front(rt, req)
    }
}
