//! The process's Prometheus registry and the core's own metrics. Every gateway the process
//! serves reports into this one registry, labelled by `gateway`; each layer registers its own
//! families here when it is created (`ai::metrics`, `mcp::audit`, `agent::audit`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `cairn_store_errors_total` | counter | gateway, store (`memory`, `redis`) |
//! | `cairn_config_reloads_total` | counter | gateway, result (`ok`, `refused`) |
//! | `cairn_config_info` | gauge, 1 for the config in service | gateway, layer, hash |
//! | `cairn_policy_denials_total` | counter | gateway, layer, reason |
//! | `cairn_subject_info` | gauge, 1 per known Agent, only with `telemetry.subjectLabels` | gateway, subject, team |
//!
//! A denial's `reason` is the policy's (`default-deny`, `not-granted`, `skill-not-granted`,
//! `skill-unknown`), a limit's or budget's (`rate_limited`, `over_budget`), the store's
//! (`store_unavailable`) or the caller's identity (`unauthenticated`): a fixed set.
//!
//! Label values of the families counted per request are shared strings (`Arc<str>`,
//! `&'static str`): building a label set per request copies no string.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};

/// Labels of store failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    /// Gateway `namespace/name`.
    pub gateway: String,
    /// `memory` or `redis`.
    pub store: &'static str,
}

/// Labels of config reloads.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// Gateway `namespace/name`.
    pub gateway: String,
    /// `ok` or `refused`.
    pub result: &'static str,
}

/// Labels of the config in service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigLabels {
    /// Gateway `namespace/name`.
    pub gateway: String,
    /// `ai`, `mcp` or `agent`.
    pub layer: &'static str,
    /// SHA-256 of the config's JSON (the `configHash` of its manifest in cluster mode).
    pub hash: String,
}

/// Labels of policy denials.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenialLabels {
    /// Gateway `namespace/name`.
    pub gateway: Arc<str>,
    /// `ai`, `mcp` or `agent`.
    pub layer: &'static str,
    /// Why (a fixed set, see the module's table).
    pub reason: &'static str,
}

/// Labels of a known subject: its team (the Agent's `team` label), to group per-subject series
/// by team (`* on (gateway, subject) group_left (team) cairn_subject_info`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubjectLabels {
    /// Gateway `namespace/name`.
    pub gateway: String,
    /// Agent name.
    pub subject: String,
    /// Its `team` label (empty without one).
    pub team: String,
}

/// Requests the policy (or identity, limits, budgets) refused.
pub type Denials = Family<DenialLabels, Counter>;

/// The registry and the core's families.
pub struct Metrics {
    /// Locked only to register a family (at start-up) and to encode (per scrape).
    registry: Mutex<Registry>,
    /// Failed store operations.
    pub store_errors: Family<StoreLabels, Counter>,
    /// Config reloads by result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// The config in service (one series per gateway).
    pub config: Family<ConfigLabels, Gauge>,
    /// Refusals by reason.
    pub denials: Denials,
    /// Known subjects and their teams.
    pub subjects: Family<SubjectLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the core's families.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let store_errors = Family::<StoreLabels, Counter>::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        let config = Family::<ConfigLabels, Gauge>::default();
        registry.register("cairn_store_errors", "Limits-store operations that failed", store_errors.clone());
        registry.register("cairn_config_reloads", "Config reloads, by result", reloads.clone());
        registry.register(
            "cairn_config_info",
            "The config each gateway serves (1), by its hash",
            config.clone(),
        );
        let denials = Denials::default();
        registry.register("cairn_policy_denials", "Requests refused, by layer and reason", denials.clone());
        let subjects = Family::<SubjectLabels, Gauge>::default();
        registry.register(
            "cairn_subject_info",
            "The Agents a gateway knows (1), with their team label, when it labels metrics by subject",
            subjects.clone(),
        );
        Metrics { registry: Mutex::new(registry), store_errors, reloads, config, denials, subjects }
    }

    /// Registers a layer's families: `f` gets the registry and returns the handles it keeps.
    pub fn register<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self.registry.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}
