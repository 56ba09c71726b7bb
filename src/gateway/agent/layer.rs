//! The agent layer as the core serves it: its process-wide state ([`AgentShared`]), how it
//! builds a config version, and its request path ([`super::front::handle`]).

use super::front;
use super::metrics::AgentMetrics;
use super::runtime::AgentRuntime;
use super::shared::AgentShared;
use crate::config::{CompiledGateway, Layer as Kind};
use crate::gateway::core::Core;
use crate::gateway::layer::{BuildError, Layer};
use crate::gateway::response::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use std::future::Future;
use std::sync::Arc;

/// Layer 3, for one process.
pub struct AgentLayer {
    core: Arc<Core>,
    shared: Arc<AgentShared>,
}

impl AgentLayer {
    /// The layer, its metrics registered in the core's registry.
    pub fn new(core: &Arc<Core>) -> AgentLayer {
        let metrics = core.metrics.register(|r| AgentMetrics::new(r, core.metrics.denials.clone()));
        AgentLayer { core: core.clone(), shared: Arc::new(AgentShared::new(metrics)) }
    }
}

impl Layer for AgentLayer {
    type Runtime = AgentRuntime;
    const KIND: Kind = Kind::Agent;

    fn build(&self, gw: &CompiledGateway) -> Result<AgentRuntime, BuildError> {
        BuildError::check_layer::<Self>(gw)?;
        AgentRuntime::build(gw, &self.core, &self.shared)
    }

    fn handle(
        rt: Arc<AgentRuntime>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static {
        front::handle(rt, req)
    }
}
