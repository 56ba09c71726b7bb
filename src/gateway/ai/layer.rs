//! The AI layer as the core serves it: what it keeps for the process (its metrics, backend
//! health and retry budgets), how it builds a config version, and its request path
//! ([`super::front::handle`]).

use super::front;
use super::health::Health;
use super::metrics::AiMetrics;
use super::runtime::AiRuntime;
use crate::config::{CompiledGateway, Layer as Kind};
use crate::gateway::core::Core;
use crate::gateway::layer::{BuildError, Layer};
use crate::gateway::response::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use std::future::Future;
use std::sync::Arc;

/// Layer 1, for one process. The tokenizer used for usage estimates (≈ 45 MiB) is loaded on
/// first use, not here: providers report usage, so most gateways never need it, and an idle
/// gateway stays small.
pub struct AiLayer {
    core: Arc<Core>,
    metrics: AiMetrics,
    health: Arc<Health>,
}

impl AiLayer {
    /// The layer, its metrics registered in the core's registry.
    pub fn new(core: &Arc<Core>) -> AiLayer {
        let denials = core.metrics.denials.clone();
        AiLayer {
            core: core.clone(),
            metrics: core.metrics.register(|r| AiMetrics::new(r, denials)),
            health: Arc::default(),
        }
    }
}

impl Layer for AiLayer {
    type Runtime = AiRuntime;
    const KIND: Kind = Kind::Ai;

    fn build(&self, gw: &CompiledGateway) -> Result<AiRuntime, BuildError> {
        BuildError::check_layer::<Self>(gw)?;
        AiRuntime::build(gw, &self.core, &self.metrics, &self.health)
    }

    fn handle(
        rt: Arc<AiRuntime>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static {
        front::handle(rt, req)
    }
}
