//! Which rule serves a request and in which order its backends are tried.
//!
//! **Rule choice.** A rule fits when one of its matches names the requested model (exactly, or as
//! a glob) and every header the match requires is present with that exact value. Rules with an
//! exact fitting match win over rules that fit only by glob; within each class the config's order
//! (route name, then rule index) decides.
//!
//! **Attempt order.** Targets are grouped by priority (0 first). Within a group the first target is
//! a weighted random choice among the targets that are not ejected; the rest follow in weighted
//! random order. When every target of the rule is ejected, ejection is ignored (trying a resting
//! backend beats refusing outright).
//!
//! **Retries and fallback.** An attempt that fails with one of the rule's `fallbackOn` conditions
//! (429, 5xx, connect error, timeout) is retried within its group while the rule's `retries.attempts`
//! allow and the gateway's retry budget has a token; then the next priority group gets its turn
//! (falling back is not a retry and needs no budget). Any other outcome — a success, or the
//! caller's own 4xx — is final and returned as it is.

use super::backend::BackendRt;
use super::cache::ResponseCache;
use super::guardrails::Guardrails;
use super::health::Health;
use super::op::{Op, serves};
use crate::config::{AiRuleConfig, FallbackOn};
use crate::gateway::layer::BuildError;
use crate::policy::{glob_match, is_glob};
use http::HeaderMap;
use std::collections::HashMap;
use std::sync::Arc;

/// A rule with its targets resolved and grouped.
pub struct RuleRt {
    /// The rule.
    pub cfg: AiRuleConfig,
    /// Its route's name (for records and metrics).
    pub route: Arc<str>,
    /// Its name.
    pub name: Arc<str>,
    /// Targets grouped by priority, ascending: (backend, upstream model override, weight).
    pub groups: Vec<Vec<TargetRt>>,
    /// Request guardrails.
    pub request_guardrails: Guardrails,
    /// Response guardrails (shared with the stream relays).
    pub response_guardrails: Arc<Guardrails>,
    /// Exact-match response cache (per config version: a reload starts it empty).
    pub cache: Option<Arc<ResponseCache>>,
}

/// A target of a rule.
#[derive(Clone)]
pub struct TargetRt {
    /// Backend.
    pub backend: Arc<BackendRt>,
    /// Upstream model name; `None` passes the requested one.
    pub model: Option<String>,
    /// Weight.
    pub weight: u32,
}

impl RuleRt {
    /// Resolves a rule's targets against the config's backends.
    pub fn new(cfg: AiRuleConfig, backends: &HashMap<String, Arc<BackendRt>>) -> Result<RuleRt, BuildError> {
        let name = format!("rule {}/{}", cfg.route, cfg.name);
        let mut by_priority: std::collections::BTreeMap<u32, Vec<TargetRt>> = Default::default();
        for t in &cfg.targets {
            let backend = backends.get(&t.backend).ok_or_else(|| {
                BuildError::invalid(&name, format!("backend {:?} is not in the config", t.backend))
            })?;
            by_priority.entry(t.priority).or_default().push(TargetRt {
                backend: backend.clone(),
                model: t.model.clone(),
                weight: t.weight,
            });
        }
        let request_guardrails = Guardrails::new(&cfg.request_guardrails)
            .map_err(|e| BuildError::invalid(&name, e.to_string()))?;
        let response_guardrails = Arc::new(
            Guardrails::new(&cfg.response_guardrails)
                .map_err(|e| BuildError::invalid(&name, e.to_string()))?,
        );
        let cache = cfg.cache.as_ref().map(|c| Arc::new(ResponseCache::from_config(c)));
        Ok(RuleRt {
            route: cfg.route.as_str().into(),
            name: cfg.name.as_str().into(),
            cfg,
            groups: by_priority.into_values().collect(),
            request_guardrails,
            response_guardrails,
            cache,
        })
    }

    /// Whether a match of this rule fits, and whether exactly (`Some(true)`) or by glob.
    fn fits(&self, model: &str, headers: &HeaderMap) -> Option<bool> {
        let mut best = None;
        for m in &self.cfg.matches {
            let headers_ok = m.headers.iter().all(|h| {
                headers.get(h.name.as_str()).and_then(|v| v.to_str().ok()) == Some(h.value.as_str())
            });
            if !headers_ok {
                continue;
            }
            if !is_glob(&m.model) && m.model == model {
                return Some(true);
            }
            if is_glob(&m.model) && glob_match(&m.model, model) {
                best = Some(false);
            }
        }
        best
    }

    /// Whether a fallback condition is configured.
    pub fn falls_back_on(&self, c: FallbackOn) -> bool {
        self.cfg.fallback_on.contains(&c)
    }
}

/// The rule serving `model` with these headers.
pub fn find_rule<'a>(rules: &'a [RuleRt], model: &str, headers: &HeaderMap) -> Option<&'a RuleRt> {
    let mut glob = None;
    for r in rules {
        match r.fits(model, headers) {
            Some(true) => return Some(r),
            Some(false) if glob.is_none() => glob = Some(r),
            _ => {}
        }
    }
    glob
}

/// The exact model names a rule serves (for `GET /v1/models`).
pub fn exact_models(rule: &RuleRt) -> impl Iterator<Item = &str> {
    rule.cfg.matches.iter().map(|m| m.model.as_str()).filter(|m| !is_glob(m))
}

/// The attempt order of one priority group, for one request: weighted random without
/// replacement, ejected targets last (and only when every target of the rule is ejected).
pub fn order_group(group: &[TargetRt], op: Op, health: &Health, all_ejected: bool) -> Vec<TargetRt> {
    let mut pool: Vec<&TargetRt> = group
        .iter()
        .filter(|t| serves(t.backend.provider, op))
        .filter(|t| all_ejected || !health.is_ejected(&t.backend.health_key))
        .filter(|t| t.weight > 0)
        .collect();
    let mut out = Vec::with_capacity(pool.len());
    while !pool.is_empty() {
        let total: u64 = pool.iter().map(|t| u64::from(t.weight)).sum();
        let mut pick = rand::random_range(0..total.max(1));
        let mut idx = 0;
        for (i, t) in pool.iter().enumerate() {
            if pick < u64::from(t.weight) {
                idx = i;
                break;
            }
            pick -= u64::from(t.weight);
        }
        out.push(pool.swap_remove(idx).clone());
    }
    out
}

/// Whether every target of the rule that can serve `op` is ejected.
pub fn all_ejected(rule: &RuleRt, op: Op, health: &Health) -> bool {
    rule.groups
        .iter()
        .flatten()
        .filter(|t| serves(t.backend.provider, op))
        .all(|t| health.is_ejected(&t.backend.health_key))
}
