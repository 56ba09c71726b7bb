//! The agent layer's metrics, registered in the process registry when the layer is created.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `cairn_agent_requests_total` | counter | gateway, agent, method, subject, outcome |
//! | `cairn_agent_request_duration_seconds` | histogram | gateway, agent, method, subject, outcome |
//!
//! `subject` is the caller only when the gateway sets `telemetry.subjectLabels` (empty
//! otherwise).

use crate::gateway::metrics::Denials;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;

/// Labels of one call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabels {
    /// Gateway `namespace/name`.
    pub gateway: Arc<str>,
    /// Agent called (empty when unknown).
    pub agent: Arc<str>,
    /// A2A 1.0 method name, `card` or `directory`.
    pub method: &'static str,
    /// Caller.
    pub subject: Arc<str>,
    /// Outcome category.
    pub outcome: &'static str,
}

/// The agent layer's metrics, registered in the process registry when the layer is created
/// (clones share the series).
#[derive(Clone)]
pub struct AgentMetrics {
    /// Calls.
    pub requests: Family<AgentLabels, Counter>,
    /// Call duration (to the last byte for streams).
    pub duration: Family<AgentLabels, Histogram, fn() -> Histogram>,
    /// The core's denial counter.
    pub denials: Denials,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

impl AgentMetrics {
    /// Creates and registers the families.
    pub fn new(registry: &mut Registry, denials: Denials) -> AgentMetrics {
        let requests = Family::<AgentLabels, Counter>::default();
        let duration = Family::<AgentLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "cairn_agent_requests",
            "Agent gateway calls, by agent, method and outcome",
            requests.clone(),
        );
        registry.register_with_unit(
            "cairn_agent_request_duration",
            "Agent gateway call duration, to the last byte of streams",
            Unit::Seconds,
            duration.clone(),
        );
        AgentMetrics { requests, duration, denials }
    }
}
