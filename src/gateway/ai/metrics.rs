//! The AI layer's Prometheus metrics, registered in the process's registry when the layer is
//! created. The two histograms of the OpenTelemetry GenAI semantic conventions keep their names
//! and units in Prometheus form (dots become underscores, seconds become a suffix; the unit
//! `{token}` has none), with the conventions' attributes as labels:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `gen_ai_client_token_usage` | histogram (tokens) | gateway, route, backend, subject, `gen_ai_operation_name`, `gen_ai_provider_name`, `gen_ai_request_model`, `gen_ai_response_model`, `gen_ai_token_type` (`input`, `output`, `cached_input`), estimated |
//! | `gen_ai_client_operation_duration_seconds` | histogram | gateway, route, backend, subject, `gen_ai_operation_name`, `gen_ai_provider_name`, `gen_ai_request_model`, `error_type` |
//! | `gen_ai_server_time_to_first_token_seconds` | histogram | gateway, route, backend, `gen_ai_request_model` |
//! | `gen_ai_server_time_per_output_token_seconds` | histogram | gateway, route, backend, `gen_ai_request_model` |
//! | `cairn_ai_requests_total` | counter | gateway, route, backend, `gen_ai_request_model`, subject, outcome |
//! | `cairn_ai_cost_usd_total` | counter | gateway, route, backend, `gen_ai_request_model`, subject |
//! | `cairn_policy_spend_usd_total` | counter | gateway, policy |
//! | `cairn_ai_upstream_attempts_total` | counter | gateway, backend, result |
//!
//! `outcome` is a low-cardinality category (`ok`, `unauthorized`, `forbidden`, `rate_limited`,
//! `over_budget`, `upstream_error`, …), and `error_type` the same category on failures (empty on
//! success, as the conventions leave `error.type` unset). `subject` is the Agent name only when
//! the gateway sets `telemetry.subjectLabels`, empty otherwise, so the series count does not grow
//! with the number of Agents (docs/telemetry.md). Spend by policy counts a request's cost once
//! for each AgentPolicy that names its caller (`policy` empty for callers allowed by the default
//! action). Label values are shared strings (`Arc<str>`, `&'static str`): building a label set
//! per request copies no string.

use crate::gateway::metrics::Denials;
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
    pub gen_ai_request_model: Arc<str>,
    /// Caller.
    pub subject: Arc<str>,
    /// Outcome category.
    pub outcome: &'static str,
}

/// The GenAI conventions' attributes of an operation, as labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GenAiLabels {
    /// Gateway.
    pub gateway: Arc<str>,
    /// Route.
    pub route: Arc<str>,
    /// Backend.
    pub backend: Arc<str>,
    /// Caller (empty unless `subjectLabels`).
    pub subject: Arc<str>,
    /// `chat` or `embeddings`.
    pub gen_ai_operation_name: &'static str,
    /// The backend's provider (`openai`, `anthropic`, …).
    pub gen_ai_provider_name: &'static str,
    /// Model requested.
    pub gen_ai_request_model: Arc<str>,
}

/// Labels of an operation's duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// The operation.
    #[prometheus(flatten)]
    pub op: GenAiLabels,
    /// Outcome category on failure, empty on success.
    pub error_type: &'static str,
}

/// Labels of token counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// The operation.
    #[prometheus(flatten)]
    pub op: GenAiLabels,
    /// Model sent upstream.
    pub gen_ai_response_model: Arc<str>,
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
    pub gen_ai_request_model: Arc<str>,
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
    pub gen_ai_request_model: Arc<str>,
}

/// Labels of spend by policy.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SpendLabels {
    /// Gateway.
    pub gateway: Arc<str>,
    /// AgentPolicy naming the caller (empty: allowed by the default action).
    pub policy: Arc<str>,
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

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

fn token_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 12))
}

fn fast_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The AI layer's families (clones share the series).
#[derive(Clone)]
pub struct AiMetrics {
    /// Tokens per request.
    pub tokens: Hist<TokenLabels>,
    /// Operation duration.
    pub duration: Hist<OperationLabels>,
    /// Time to first token (streams).
    pub ttft: Hist<TimingLabels>,
    /// Time per output token after the first.
    pub tpot: Hist<TimingLabels>,
    /// Requests.
    pub requests: Family<RequestLabels, Counter>,
    /// Cost.
    pub cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    /// Upstream attempts.
    pub attempts: Family<AttemptLabels, Counter>,
    /// Spend by policy.
    pub spend: Family<SpendLabels, Counter<f64, AtomicU64>>,
    /// The core's denial counter.
    pub denials: Denials,
}

impl AiMetrics {
    /// Creates and registers the families.
    pub fn new(registry: &mut Registry, denials: Denials) -> Self {
        let tokens = Hist::<TokenLabels>::new_with_constructor(token_histogram as fn() -> Histogram);
        let duration = Hist::<OperationLabels>::new_with_constructor(seconds_histogram as fn() -> Histogram);
        let ttft = Hist::<TimingLabels>::new_with_constructor(seconds_histogram as fn() -> Histogram);
        let tpot = Hist::<TimingLabels>::new_with_constructor(fast_histogram as fn() -> Histogram);
        let requests = Family::<RequestLabels, Counter>::default();
        let cost = Family::<CostLabels, Counter<f64, AtomicU64>>::default();
        let attempts = Family::<AttemptLabels, Counter>::default();
        let spend = Family::<SpendLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "gen_ai_client_token_usage",
            "Number of input and output tokens used, per operation",
            tokens.clone(),
        );
        registry.register_with_unit(
            "gen_ai_client_operation_duration",
            "GenAI operation duration, from receiving the request to its last byte",
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
        registry.register(
            "cairn_policy_spend_usd",
            "Spend in USD, counted for each AgentPolicy naming the caller",
            spend.clone(),
        );
        AiMetrics { tokens, duration, ttft, tpot, requests, cost, attempts, spend, denials }
    }
}
