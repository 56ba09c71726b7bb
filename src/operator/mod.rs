//! `cairn operator`: turns the eight Cairn kinds into running, configured gateways.
//!
//! A reconcile flows through one module per stage: index (reads) → compile (pure, shared with
//! local mode) → render (pure) → apply (server-side apply, one field manager) → status.

pub mod keys;
pub mod rbac;
pub mod render;

use crate::api::{GatewayCommon, Object};
use crate::config::Layer;

/// The layer and shared spec of a gateway object; `None` for the other kinds.
pub fn gateway_spec(obj: &Object) -> Option<(Layer, &GatewayCommon)> {
    match obj {
        Object::AIGateway(g) => Some((Layer::Ai, &g.spec.common)),
        Object::MCPGateway(g) => Some((Layer::Mcp, &g.spec.common)),
        Object::AgentGateway(g) => Some((Layer::Agent, &g.spec.common)),
        _ => None,
    }
}
