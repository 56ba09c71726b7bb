//! Prometheus metrics, one registry per process (every gateway served by the process reports
//! into it, labelled by `gateway`). Names follow the OpenTelemetry GenAI semantic conventions as
//! exported to Prometheus (dots become underscores, the unit becomes a suffix):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `gen_ai_client_token_usage` | histogram (tokens) | gateway, route, backend, model, subject, `gen_ai_token_type` (`input`, `output`, `cached_input`), estimated |
//! | `gen_ai_server_request_duration_seconds` | histogram | gateway, route, backend, model, subject, outcome |
//! | `gen_ai_server_time_to_first_token_seconds` | histogram | gateway, route, backend, model |
//! | `gen_ai_server_time_per_output_token_seconds` | histogram | gateway, route, backend, model |
//! | `cairn_ai_requests_total` | counter | gateway, route, backend, model, subject, outcome |
//! | `cairn_ai_cost_usd_total` | counter | gateway, route, backend, model, subject |
//! | `cairn_ai_upstream_attempts_total` | counter | gateway, backend, result |
//! | `cairn_store_errors_total` | counter | gateway, store |
//! | `cairn_config_reloads_total` | counter | gateway, result |
//!
//! Label values are shared strings (`Arc<str>`, `&'static str`): building a label set per request
//! copies no string.
//!
//! `outcome` is a low-cardinality category (`ok`, `unauthorized`, `forbidden`, `rate_limited`,
//! `over_budget`, `upstream_error`, …); `subject` is the Agent name (bounded by the config).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Labels of a served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Gateway `namespace/name`.
    pub gateway: Arc<str>,
    /// AIRoute name (empty when no route was chosen).
    pub route: Arc<str>,
    /// Backend that answered (empty when none did).
    pub backend: Arc<str>,
    /// Model the client requested.
    pub model: Arc<str>,
    /// Caller.
    pub subject: Arc<str>,
    /// Outcome category.
    pub outcome: &'static str,
}

/// Labels of token counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// Gateway.
    pub gateway: Arc<str>,
    /// Route.
    pub route: Arc<str>,
    /// Backend.
    pub backend: Arc<str>,
    /// Model requested.
    pub model: Arc<str>,
    /// Caller.
    pub subject: Arc<str>,
    /// `input`, `output` or `cached_input`.
    pub gen_ai_token_type: &'static str,
    /// `true` when counted locally because the provider reported no usage.
    pub estimated: &'static str,
}

/// Labels of cost.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    /// Gateway.
    pub gateway: Arc<str>,
    /// Route.
    pub route: Arc<str>,
    /// Backend.
    pub backend: Arc<str>,
    /// Model requested.
    pub model: Arc<str>,
    /// Caller.
    pub subject: Arc<str>,
}

/// Labels of timing per backend.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TimingLabels {
    /// Gateway.
    pub gateway: Arc<str>,
    /// Route.
    pub route: Arc<str>,
    /// Backend.
    pub backend: Arc<str>,
    /// Model requested.
    pub model: Arc<str>,
}

/// Labels of one upstream attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// Gateway.
    pub gateway: Arc<str>,
    /// Backend.
    pub backend: Arc<str>,
    /// `ok`, `rate_limited`, `server_error`, `client_error`, `connect_error`, `timeout`, `ejected`.
    pub result: &'static str,
}

/// Labels with gateway and one more value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayLabels {
    /// Gateway.
    pub gateway: String,
    /// Store kind, or reload result.
    pub kind: String,
}

type Hist = Family<RequestLabels, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

fn token_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 12))
}

fn fast_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Tokens per request.
    pub tokens: Family<TokenLabels, Histogram, fn() -> Histogram>,
    /// Request duration.
    pub duration: Hist,
    /// Time to first token (streams).
    pub ttft: Family<TimingLabels, Histogram, fn() -> Histogram>,
    /// Time per output token after the first.
    pub tpot: Family<TimingLabels, Histogram, fn() -> Histogram>,
    /// Requests.
    pub requests: Family<RequestLabels, Counter>,
    /// Cost.
    pub cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    /// Upstream attempts.
    pub attempts: Family<AttemptLabels, Counter>,
    /// Store failures.
    pub store_errors: Family<GatewayLabels, Counter>,
    /// Config reloads.
    pub reloads: Family<GatewayLabels, Counter>,
    /// The agent layer's metrics.
    pub agent: crate::gateway::agent::proxy::AgentMetrics,
    /// The MCP layer's metrics.
    pub mcp: crate::gateway::mcp::audit::McpMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let tokens = Family::<TokenLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            token_histogram as fn() -> Histogram,
        );
        let duration = Hist::new_with_constructor(seconds_histogram as fn() -> Histogram);
        let ttft = Family::<TimingLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        let tpot = Family::<TimingLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            fast_histogram as fn() -> Histogram,
        );
        let requests = Family::<RequestLabels, Counter>::default();
        let cost = Family::<CostLabels, Counter<f64, AtomicU64>>::default();
        let attempts = Family::<AttemptLabels, Counter>::default();
        let store_errors = Family::<GatewayLabels, Counter>::default();
        let reloads = Family::<GatewayLabels, Counter>::default();
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens used per request, by token type",
            tokens.clone(),
        );
        registry.register_with_unit(
            "gen_ai_server_request_duration",
            "Time from receiving a request to its last byte",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register_with_unit(
            "gen_ai_server_time_to_first_token",
            "Time from receiving a streaming request to its first content chunk",
            Unit::Seconds,
            ttft.clone(),
        );
        registry.register_with_unit(
            "gen_ai_server_time_per_output_token",
            "Time per output token after the first",
            Unit::Seconds,
            tpot.clone(),
        );
        registry.register("cairn_ai_requests", "AI gateway requests, by outcome", requests.clone());
        registry.register("cairn_ai_cost_usd", "Spend in USD priced from backend prices", cost.clone());
        registry.register("cairn_ai_upstream_attempts", "Upstream attempts, by result", attempts.clone());
        registry.register("cairn_store_errors", "Limits-store operations that failed", store_errors.clone());
        registry.register("cairn_config_reloads", "Config reloads, by result", reloads.clone());
        let agent = crate::gateway::agent::proxy::AgentMetrics::new(&mut registry);
        let mcp = crate::gateway::mcp::audit::McpMetrics::new(&mut registry);
        Metrics {
            registry,
            agent,
            mcp,
            tokens,
            duration,
            ttft,
            tpot,
            requests,
            cost,
            attempts,
            store_errors,
            reloads,
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
