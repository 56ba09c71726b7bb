//! Admission: may this caller make this call now? One path for the three layers: the policy
//! decides ([`check`]: the grant, its limits and, for models, its budgets), then the store counts
//! the call against the limits and checks the blocking budgets ([`Grant::count`]). [`admit`] is
//! both in one. The AI layer runs the two steps apart, choosing its route and applying request
//! guardrails between them, so a request refused for its route or content is not counted.
//!
//! **A failing store** (Redis down) follows one rule, the gateway's `failureMode`: `Closed`
//! refuses the call ([`Refusal::StoreUnavailable`]), `Open` serves it under the limits and
//! budgets counted in the gateway process itself ([`StoreHandle::local`]: per replica, from what
//! it served while the store failed) until the store answers again. Either way the failure is
//! counted in `cairn_store_errors_total` and logged. What a served call used is charged to the
//! store when it answers again (the Redis store keeps the charges it could not make). The memory
//! store cannot fail.
//!
//! | policy | store | admission |
//! |---|---|---|
//! | denies | – | [`Refusal::Forbidden`], store not asked |
//! | allows, no limits or blocking budgets | – | admitted, store not asked |
//! | allows | under every limit and budget | admitted, counted |
//! | allows | a limit reached | [`Refusal::RateLimited`], nothing counted |
//! | allows | a blocking budget spent | [`Refusal::OverBudget`], nothing counted |
//! | allows | fails, `failureMode: Closed` | [`Refusal::StoreUnavailable`], error counted |
//! | allows | fails, `failureMode: Open` | as the rows above, counted in the process; error counted |
//!
//! Each layer answers a [`Refusal`] in its protocol's format (its `error` module).

use crate::config::{BudgetAction, Layer};
use crate::gateway::clock::unix_now;
use crate::gateway::metrics::{DenialLabels, Denials};
use crate::gateway::store::{Admission, BudgetReq, LimitReq, StoreError, StoreHandle};
use crate::gateway::telemetry::span;
use crate::policy::{Decision, Denied, PolicyIndex, Target, window_end};
use std::sync::Arc;

/// Why a call is refused.
#[derive(Debug)]
pub enum Refusal<'a> {
    /// The policy does not grant it.
    Forbidden(Denied<'a>),
    /// A request or token limit is reached for the current window.
    RateLimited {
        /// The limit's counter key.
        key: String,
        /// `requests` or `tokens`.
        what: &'static str,
        /// The limit.
        limit: u64,
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// A blocking budget is spent for its window.
    OverBudget {
        /// The budget's counter key.
        key: String,
    },
    /// The store failed and the gateway fails closed.
    StoreUnavailable(StoreError),
}

/// What a caller refused for a failing store is told, in every layer's error format: the store's
/// error and what failing closed means for the caller.
pub fn store_unavailable_message(e: &StoreError) -> String {
    format!("{e}; this gateway fails closed, so requests are refused until the store is back")
}

impl Refusal<'_> {
    /// Why, for `cairn_policy_denials_total` and the request's span: the policy's reason for a
    /// refusal of the policy ([`crate::policy::DenyReason::category`]), the category otherwise.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Forbidden(d) => d.reason.category(),
            r => r.category(),
        }
    }

    /// Low-cardinality name for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Refusal::Forbidden(_) => "forbidden",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::OverBudget { .. } => "over_budget",
            Refusal::StoreUnavailable(_) => "store_unavailable",
        }
    }
}

/// What the policy grants a call: the limits and budgets it counts against.
#[derive(Debug, Default)]
pub struct Grant {
    /// Allowed by the gateway's `defaultAction: Allow` (no policy names the caller).
    pub by_default: bool,
    /// Request and token limits of the grants that allow the call.
    pub limits: Vec<LimitReq>,
    /// Budgets (model calls only), keyed by their current window.
    pub budgets: Vec<BudgetReq>,
}

/// An admitted call: what to charge once it is done.
#[derive(Debug, Default)]
pub struct Admitted {
    /// The limits it counts against (tokens are charged after the answer).
    pub limits: Vec<LimitReq>,
    /// The budgets its cost is charged to.
    pub budgets: Vec<BudgetReq>,
    /// Allowed by the gateway's `defaultAction: Allow`.
    pub by_default: bool,
}

/// The policy's decision on `subject` calling `target`. Model calls count requests and tokens
/// and carry the caller's budgets; tool and agent calls count requests.
pub fn check<'a>(
    subject: &'a str,
    target: Target<'a>,
    policy: &'a PolicyIndex,
) -> Result<Grant, Refusal<'a>> {
    let allowed = match policy.check(subject, target) {
        Decision::Deny(d) => return Err(Refusal::Forbidden(d)),
        Decision::Allow(a) => a,
    };
    let model = matches!(target, Target::Model(_));
    let limits = allowed
        .limits()
        .filter(|l| l.limits.requests_per_minute.is_some() || (model && l.limits.tokens_per_minute.is_some()))
        .map(|l| LimitReq {
            key: l.key.to_string(),
            rpm: l.limits.requests_per_minute,
            tpm: if model { l.limits.tokens_per_minute } else { None },
        })
        .collect();
    let now = unix_now();
    let budgets = allowed
        .budgets()
        .map(|b| BudgetReq {
            key: b.counter(now),
            limit_micros: (b.budget.amount_usd.max(0.0) * 1e6).round() as u64,
            block: b.budget.action == BudgetAction::Block,
            expires_at: window_end(b.budget.window, now),
        })
        .collect();
    Ok(Grant { by_default: allowed.by_default(), limits, budgets })
}

impl Grant {
    /// Counts the call in `store`: refused when a limit is reached or a blocking budget spent;
    /// a failing store is answered by its failure mode (see the module's table).
    pub async fn count<'a>(self, store: &StoreHandle) -> Result<Admitted, Refusal<'a>> {
        let Grant { by_default, limits, budgets } = self;
        let now = unix_now();
        let admission = match store.store.admit(&store.prefix, now, &limits, &budgets).await {
            Ok(a) => a,
            Err(e) => {
                store.failed();
                if store.fails_closed() {
                    tracing::warn!(gateway = %store.gateway, error = %e, "limits store unavailable; failing closed");
                    return Err(Refusal::StoreUnavailable(e));
                }
                tracing::warn!(
                    gateway = %store.gateway, error = %e,
                    "limits store unavailable; failing open: counting in this process until it answers"
                );
                store
                    .local
                    .admit(&store.prefix, now, &limits, &budgets)
                    .await
                    .map_err(Refusal::StoreUnavailable)?
            }
        };
        match admission {
            Admission::Allowed => Ok(Admitted { limits, budgets, by_default }),
            Admission::RateLimited { key, what, limit, retry_after } => {
                Err(Refusal::RateLimited { key, what, limit, retry_after })
            }
            Admission::OverBudget { key } => Err(Refusal::OverBudget { key }),
        }
    }
}

/// Admits `subject` calling `target`: the policy, then the store ([`check`], then
/// [`Grant::count`]).
pub async fn admit<'a>(
    subject: &'a str,
    target: Target<'a>,
    policy: &'a PolicyIndex,
    store: &StoreHandle,
) -> Result<Admitted, Refusal<'a>> {
    check(subject, target, policy)?.count(store).await
}

/// Records the verdict of admission on the request's span: `allow` (`granted`, or
/// `default-allow` when `Ok(true)`: allowed by `defaultAction: Allow`) or `deny` with the
/// refusal's reason, which is also counted in `cairn_policy_denials_total`. Every layer calls it
/// where its admission ends.
pub fn record(
    verdict: Result<bool, &Refusal<'_>>,
    span: &tracing::Span,
    denials: &Denials,
    gateway: &Arc<str>,
    layer: Layer,
) {
    match verdict {
        Ok(by_default) => span::decision(span, true, if by_default { "default-allow" } else { "granted" }),
        Err(r) => refused(r.reason(), span, denials, gateway, layer),
    }
}

/// Records a refusal for `reason` (one of the fixed set of `cairn_policy_denials_total`) on the
/// span and in the counter: what a layer calls for a caller refused before admission
/// (`unauthenticated`).
pub fn refused(
    reason: &'static str,
    span: &tracing::Span,
    denials: &Denials,
    gateway: &Arc<str>,
    layer: Layer,
) {
    span::decision(span, false, reason);
    denials.get_or_create(&DenialLabels { gateway: gateway.clone(), layer: layer.as_str(), reason }).inc();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Credentials, GatewayConfig};
    use crate::gateway::core::{Core, Env};
    use serde_json::json;

    /// A gateway config whose policy grants `bot` the model `m` (2 requests a minute, a blocking
    /// budget of `budget` USD) and the tool `gh__search` (1 request a minute); `store` is its
    /// store section.
    fn config(store: serde_json::Value, budget: f64) -> GatewayConfig {
        let mut v = json!({
            "version": 1,
            "gateway": {"namespace": "ns", "name": "gw", "layer": "ai"},
            "listener": {"port": 1, "maxRequestBytes": 1024},
            "auth": {"allowAnonymous": false, "virtualKeySalt": "00"},
            "telemetry": {"accessLog": false},
            "policy": {
                "defaultAction": "deny",
                "subjects": [{"name": "bot", "identities": []}],
                "policies": [{
                    "name": "p", "subjects": ["bot"],
                    "models": [{"id": "p/models/0", "pattern": "m", "limits": {"requestsPerMinute": 2}}],
                    "tools": [{"id": "p/tools/0", "server": "gh", "tools": ["search"], "limits": {"requestsPerMinute": 1}}],
                    "budgets": [{"id": "p/budgets/0", "amountUsd": budget, "window": "month", "scope": "perSubject", "action": "block"}]
                }]
            }
        });
        if !store.is_null() {
            v["store"] = store;
        }
        serde_json::from_value(v).expect("a valid test config")
    }

    fn handle(core: &Core, cfg: &GatewayConfig) -> StoreHandle {
        core.store_for(cfg, &Credentials::default()).unwrap()
    }

    fn errors(core: &Core) -> bool {
        core.metrics.encode().contains("cairn_store_errors_total{gateway=\"ns/gw\",store=\"redis\"} 1")
    }

    #[tokio::test]
    async fn the_case_table() {
        let core = Core::new(Env::from_process());
        let cfg = config(serde_json::Value::Null, 1.0);
        let policy = PolicyIndex::new(&cfg.policy);
        let store = handle(&core, &cfg);
        let model = Target::Model("m");

        // The policy denies: the store is not asked.
        let e = admit("stranger", model, &policy, &store).await.unwrap_err();
        assert!(matches!(e, Refusal::Forbidden(_)), "{e:?}");
        assert_eq!(e.category(), "forbidden");

        // Allowed and under the limit: counted, with the caller's budget for the current month.
        let a = admit("bot", model, &policy, &store).await.unwrap();
        assert_eq!(a.limits.iter().map(|l| (l.rpm, l.tpm)).collect::<Vec<_>>(), [(Some(2), None)]);
        assert_eq!(a.budgets.len(), 1);
        assert!(a.budgets[0].block && a.budgets[0].limit_micros == 1_000_000, "{:?}", a.budgets);
        admit("bot", model, &policy, &store).await.unwrap();

        // The limit reached: refused, nothing counted.
        match admit("bot", model, &policy, &store).await.unwrap_err() {
            Refusal::RateLimited { what, limit, .. } => assert_eq!((what, limit), ("requests", 2)),
            e => panic!("expected a rate limit, got {e:?}"),
        }

        // A tool call counts requests only, and carries no budget.
        let t = check("bot", Target::Tool { server: "gh", tool: "search" }, &policy).unwrap();
        assert!(t.budgets.is_empty());
        assert_eq!(t.limits.iter().map(|l| (l.rpm, l.tpm)).collect::<Vec<_>>(), [(Some(1), None)]);

        // A blocking budget spent: refused.
        let (fresh, spent) = (Core::new(Env::from_process()), config(serde_json::Value::Null, 0.0));
        let (policy0, store0) = (PolicyIndex::new(&spent.policy), handle(&fresh, &spent));
        let e = admit("bot", model, &policy0, &store0).await.unwrap_err();
        assert!(matches!(e, Refusal::OverBudget { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn a_failing_store_follows_the_failure_mode_and_is_counted() {
        // Nothing listens on port 1: every operation fails.
        for (mode, refused) in [("closed", true), ("open", false)] {
            let core = Core::new(Env::from_process());
            let cfg = config(json!({"redisUrl": "redis://127.0.0.1:1", "failureMode": mode}), 1.0);
            let policy = PolicyIndex::new(&cfg.policy);
            let store = handle(&core, &cfg);
            let r = admit("bot", Target::Model("m"), &policy, &store).await;
            match (r, refused) {
                (Err(Refusal::StoreUnavailable(e)), true) => {
                    assert!(e.to_string().starts_with("limits store unavailable"), "{e}")
                }
                (Ok(a), false) => assert_eq!(a.limits.len(), 1, "served open, under its limits"),
                (r, _) => panic!("{mode}: unexpected {r:?}"),
            }
            assert!(errors(&core), "{mode}: the failure is counted:\n{}", core.metrics.encode());
            if !refused {
                // Failing open counts in the process: the limit (2 a minute) still holds.
                admit("bot", Target::Model("m"), &policy, &store).await.unwrap();
                match admit("bot", Target::Model("m"), &policy, &store).await.unwrap_err() {
                    Refusal::RateLimited { what, limit, .. } => assert_eq!((what, limit), ("requests", 2)),
                    e => panic!("expected the local limit, got {e:?}"),
                }
            }
        }
    }
}
