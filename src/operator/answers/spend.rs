//! An AgentPolicy's spend against its budgets, read from the shared store of the namespace's AI
//! gateways ([`crate::spend`], the keys the gateways charge).
//!
//! One task per namespace whose policies have budgets reads every budget counter of the
//! namespace in one round trip per store, every [`SPEND_INTERVAL`], and queues the reconcile of
//! each policy whose figures changed. A store that does not answer makes the policy's spend
//! `unknown` with the reason in `SpendKnown=False`; nothing else waits for it.
//!
//! In status: one entry per shared budget, and per subject for a per-subject budget — the
//! [`MAX_SPEND_SUBJECTS`] that spent most; `spendOmitted` counts the others and sums what they
//! spent. `spendSummary` is the budget nearest its limit (`12.40/50 USD`).

use super::{Cache, FETCH_TIMEOUT, Hooks, Problem, Tasks, push};
use crate::api::{AgentPolicy, BudgetSpend, ObjectRef, SpendOmitted};
use crate::compile::Output;
use crate::operator::status::cond::Cond;
use crate::spend::{BudgetCounter, Connections, SpendError, Stores, budget_counters, limit, usd};
use kube::ResourceExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How often the store is read.
pub const SPEND_INTERVAL: Duration = Duration::from_secs(5);
/// Subjects of a per-subject budget listed in status.
pub const MAX_SPEND_SUBJECTS: usize = 10;

/// What was read for one policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicySpend {
    /// Each counter and its value (`None`: unknown).
    pub counters: Vec<(BudgetCounter, Option<u64>)>,
    /// Why the values are unknown.
    pub problem: Option<Problem>,
    /// The stores read (URLs) and the gateways counting in memory.
    pub stores: Vec<String>,
    /// AI gateways that count in memory (their spend is not in the figures).
    pub memory: Vec<String>,
}

/// Spend of every policy of a scope.
pub struct SpendWatch {
    hooks: Hooks,
    tasks: Tasks<()>,
    seen: Arc<Cache<PolicySpend>>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl SpendWatch {
    /// For the policies of `hooks.index`.
    pub fn new(hooks: Hooks) -> Self {
        SpendWatch { hooks, tasks: Tasks::new(), seen: Arc::new(Cache::new()) }
    }

    /// Adds `spend`, `spendOmitted`, `spendSummary` and `SpendKnown` to the status of `policy`.
    pub fn augment(&self, policy: &AgentPolicy, compiled: &Output, desired: &mut Value) {
        if policy.spec.budgets.is_empty() {
            return;
        }
        let ns = policy.namespace().unwrap_or_default();
        let r = ObjectRef::new("AgentPolicy", &ns, &policy.name_any());
        let cond = if budget_counters(compiled, &ns, unix_now()).iter().all(|c| c.policy != r.name) {
            Some(Cond::new(
                "SpendKnown",
                false,
                "NotEnforced",
                "No AIGateway of the namespace enforces this policy's budgets, so nothing is counted against them",
            ))
        } else {
            let (hooks, seen) = (self.hooks.clone(), self.seen.clone());
            let task = ObjectRef::new("Namespace", &ns, "");
            let ns2 = ns.clone();
            self.tasks.ensure(&task, (), move |_| run(hooks, seen, ns2));
            match self.seen.get(&r) {
                Some(s) => Some(write(&s, desired)),
                None => {
                    keep_stored(policy, desired);
                    None
                }
            }
        };
        if let Some(c) = cond {
            push(desired, c);
        }
    }
}

/// Until the store is first read (after a restart, or a new leader), the spend status stays as
/// it was: a read that finds the same figures then changes nothing.
fn keep_stored(policy: &AgentPolicy, desired: &mut Value) {
    let Some(st) = &policy.status else { return };
    let Ok(Value::Object(stored)) = serde_json::to_value(st) else { return };
    let status = desired.as_object_mut().expect("status is an object");
    for f in ["spend", "spendOmitted", "spendSummary"] {
        if let Some(v) = stored.get(f) {
            status.insert(f.into(), v.clone());
        }
    }
    if let Some(c) = st.conditions.iter().find(|c| c.type_ == "SpendKnown") {
        push(desired, Cond::new("SpendKnown", c.status == "True", &c.reason, c.message.clone()));
    }
}

/// The status fields of `s`; returns its `SpendKnown` condition.
fn write(s: &PolicySpend, desired: &mut Value) -> Cond {
    let status = desired.as_object_mut().expect("status is an object");
    let mut by_budget: BTreeMap<usize, Vec<&(BudgetCounter, Option<u64>)>> = BTreeMap::new();
    for c in &s.counters {
        by_budget.entry(c.0.budget).or_default().push(c);
    }
    let mut spend = Vec::new();
    let mut omitted = Vec::new();
    // (used / limit, summary) of the budget nearest its limit.
    let mut nearest: Option<(f64, String)> = None;
    for (budget, mut list) in by_budget {
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.subject.cmp(&b.0.subject)));
        let rest = list.split_off(list.len().min(MAX_SPEND_SUBJECTS));
        for (c, used) in &list {
            let ratio = used.map_or(-1.0, |u| u as f64 / c.limit_micros.max(1) as f64);
            if nearest.as_ref().is_none_or(|(r, _)| ratio > *r) {
                let shown = used.map_or_else(|| "unknown".to_string(), usd);
                nearest = Some((ratio, format!("{shown}/{} USD", limit(c.limit_micros))));
            }
            spend.push(BudgetSpend {
                budget: i32::try_from(budget).unwrap_or(i32::MAX),
                window: c.window.clone(),
                subject: c.subject.clone(),
                used_usd: used.map_or_else(|| "unknown".to_string(), usd),
                limit_usd: limit(c.limit_micros),
            });
        }
        if !rest.is_empty() {
            let known = rest.iter().all(|(_, u)| u.is_some());
            let sum: u64 = rest.iter().filter_map(|(_, u)| *u).sum();
            omitted.push(SpendOmitted {
                budget: i32::try_from(budget).unwrap_or(i32::MAX),
                subjects: i32::try_from(rest.len()).unwrap_or(i32::MAX),
                used_usd: if known { usd(sum) } else { "unknown".into() },
            });
        }
    }
    status.insert("spend".into(), json!(spend));
    if !omitted.is_empty() {
        status.insert("spendOmitted".into(), json!(omitted));
    }
    if let Some((_, summary)) = nearest {
        status.insert("spendSummary".into(), json!(summary));
    }
    match &s.problem {
        Some(p) => Cond::new("SpendKnown", false, &p.reason, p.message.clone()),
        None => {
            let mut m = format!("Read from {}", s.stores.join(", "));
            if !s.memory.is_empty() {
                m.push_str(&format!(
                    "; AIGateway {} counts in memory, which is not included",
                    s.memory.join(", ")
                ));
            }
            Cond::new("SpendKnown", true, "Read", m)
        }
    }
}

/// Reads the budget counters of namespace `ns` until no policy there has budgets, or this
/// replica stops leading.
async fn run(hooks: Hooks, seen: Arc<Cache<PolicySpend>>, ns: String) {
    let mut connections = Connections::default();
    let mut known: Vec<ObjectRef> = Vec::new();
    loop {
        if !hooks.leader.is_leader() {
            return;
        }
        let mut by_policy: BTreeMap<String, Vec<BudgetCounter>> = BTreeMap::new();
        let mut stores = None;
        (hooks.with_compile)(&ns, &mut |out| {
            for c in budget_counters(out, &ns, unix_now()) {
                by_policy.entry(c.policy.clone()).or_default().push(c);
            }
            stores = Some(Stores::of(out, &ns, &mut connections, None));
        });
        let (read, urls, memory) = match stores {
            None => (Ok(Vec::new()), Vec::new(), Vec::new()),
            Some(Err(e)) => (Err(e), Vec::new(), Vec::new()),
            Some(Ok(st)) => {
                let keys: Vec<String> = by_policy.values().flatten().map(|c| c.key.clone()).collect();
                let read = match st.require_shared(&ns) {
                    Err(e) => Err(e),
                    Ok(()) => tokio::time::timeout(FETCH_TIMEOUT, st.budget_spends(&keys))
                        .await
                        .unwrap_or_else(|_| {
                            Err(SpendError::Unavailable(format!(
                                "the shared store did not answer within {}s",
                                FETCH_TIMEOUT.as_secs()
                            )))
                        }),
                };
                let urls = st
                    .redis
                    .iter()
                    .map(|s| format!("{} (AIGateway {})", s.url, s.gateways.join(", ")))
                    .collect();
                (read, urls, st.memory.clone())
            }
        };
        let (mut values, problem) = match read {
            Ok(v) => (Some(v.into_iter()), None),
            Err(e) => (None, Some(Problem::new(e.reason(), format!("Spend is unknown: {e}")))),
        };
        if let Some(p) = &problem {
            tracing::debug!(namespace = %ns, reason = %p.reason, error = %p.message, "reading spend failed");
        }
        let mut now_known = Vec::new();
        for (policy, list) in &by_policy {
            let r = ObjectRef::new("AgentPolicy", &ns, policy);
            let counters: Vec<(BudgetCounter, Option<u64>)> =
                list.iter().map(|c| (c.clone(), values.as_mut().and_then(Iterator::next))).collect();
            let changed = seen.update(&r, |s| {
                s.counters = counters;
                s.problem = problem.clone();
                s.stores = urls.clone();
                s.memory = memory.clone();
            });
            if changed {
                hooks.poke(&r);
            }
            now_known.push(r);
        }
        for gone in known.iter().filter(|r| !now_known.contains(r)) {
            seen.remove(gone);
            hooks.poke(gone);
        }
        known = now_known;
        if known.is_empty() {
            return;
        }
        tokio::time::sleep(SPEND_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(budget: usize, subject: Option<&str>, limit_micros: u64) -> BudgetCounter {
        BudgetCounter {
            policy: "p".into(),
            budget,
            subject: subject.map(str::to_string),
            window: "2026-12".into(),
            key: format!("k{budget}{subject:?}"),
            limit_micros,
        }
    }

    fn status(s: &PolicySpend) -> (Value, Cond) {
        let mut desired = json!({"conditions": []});
        let cond = write(s, &mut desired);
        (desired, cond)
    }

    #[test]
    fn a_per_subject_budget_lists_the_subjects_that_spent_most_and_counts_the_rest() {
        // Budget 0: $50 per subject, 14 subjects spending 1..=14 dollars; budget 1: $100 shared.
        let mut counters: Vec<_> = (1..=14u64)
            .map(|i| (counter(0, Some(&format!("a{i:02}")), 50_000_000), Some(i * 1_000_000)))
            .collect();
        counters.push((counter(1, None, 100_000_000), Some(105_000_000)));
        let s = PolicySpend {
            counters,
            stores: vec!["redis://r:6379 (AIGateway llm)".into()],
            ..Default::default()
        };
        let (st, cond) = status(&s);
        let spend = st["spend"].as_array().unwrap();
        let subjects: Vec<&str> = spend.iter().filter_map(|e| e["subject"].as_str()).collect();
        assert_eq!(subjects, ["a14", "a13", "a12", "a11", "a10", "a09", "a08", "a07", "a06", "a05"]);
        assert_eq!(
            spend[0],
            json!({"budget": 0, "window": "2026-12", "subject": "a14", "usedUSD": "14.00", "limitUSD": "50"})
        );
        assert_eq!(
            spend[10],
            json!({"budget": 1, "window": "2026-12", "usedUSD": "105.00", "limitUSD": "100"})
        );
        // a01..a04 spent 1 + 2 + 3 + 4 dollars.
        assert_eq!(st["spendOmitted"], json!([{"budget": 0, "subjects": 4, "usedUSD": "10.00"}]));
        assert_eq!(st["spendSummary"], "105.00/100 USD", "the budget nearest (past) its limit");
        assert_eq!(cond.to_json()["message"], "Read from redis://r:6379 (AIGateway llm)");
    }

    #[test]
    fn a_store_that_does_not_answer_makes_every_figure_unknown_with_the_reason() {
        let counters = (0..12).map(|i| (counter(0, Some(&format!("a{i:02}")), 5_000_000), None)).collect();
        let problem =
            Some(Problem::new("StoreUnavailable", "Spend is unknown: redis redis://r:6379: refused"));
        let s = PolicySpend { counters, problem, ..Default::default() };
        let (st, cond) = status(&s);
        assert!(st["spend"].as_array().unwrap().iter().all(|e| e["usedUSD"] == "unknown"));
        assert_eq!(st["spendOmitted"], json!([{"budget": 0, "subjects": 2, "usedUSD": "unknown"}]));
        assert_eq!(st["spendSummary"], "unknown/5 USD");
        let c = cond.to_json();
        assert_eq!((c["status"].as_str(), c["reason"].as_str()), (Some("False"), Some("StoreUnavailable")));
        assert_eq!(c["message"], "Spend is unknown: redis redis://r:6379: refused");
    }

    #[test]
    fn gateways_counting_in_memory_are_named_as_not_included() {
        let s = PolicySpend {
            counters: vec![(counter(0, None, 1_000_000), Some(0))],
            stores: vec!["redis://r:6379 (AIGateway llm)".into()],
            memory: vec!["edge".into()],
            ..Default::default()
        };
        let (st, cond) = status(&s);
        assert_eq!(st["spendSummary"], "0.00/1 USD");
        assert_eq!(
            cond.to_json()["message"],
            "Read from redis://r:6379 (AIGateway llm); AIGateway edge counts in memory, which is not included"
        );
    }
}
