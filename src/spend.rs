//! Spend: what the AI gateways of a namespace counted in their shared store (Redis), read for an
//! AgentPolicy's `status.spend` and for `cairn spend`.
//!
//! Nothing here names a key by itself: budget counters are [`policy::budget_key`] +
//! [`policy::budget_window_key`] (what the gateways charge), under the namespace prefix and in
//! the layout of [`crate::gateway::store`], which also reads the spend records. The budgets and
//! subjects are those of the AI gateways' compiled policy configs — what the gateways enforce.
//!
//! A namespace can have several AI gateways: each counts in its own store, so the spend is the
//! sum over the distinct stores (gateways that name the same Redis URL and password share one).
//! An AI gateway without `spec.store.redis` counts in the memory of each of its pods, which
//! nothing outside can read: [`Stores::memory`] names them so that an answer can say so.

use crate::compile::Output;
use crate::config::{BudgetScope, BudgetWindow, CompiledGateway, Layer, StoreConfig};
use crate::gateway::store::{SpendLine, Store, namespace_prefix, redis_password};
use crate::policy;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why spend cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpendError {
    /// No AI gateway of the namespace names a shared store.
    #[error(
        "no AIGateway in namespace {namespace:?} names a shared store (spec.store.redis){memory}: spend is counted in each gateway pod's memory, which nothing outside the pod can read"
    )]
    NoSharedStore {
        /// The namespace.
        namespace: String,
        /// `; X and Y count in memory`, or empty.
        memory: String,
    },
    /// A store's URL or password is unusable.
    #[error("AIGateway {gateway:?}: {detail}")]
    Config {
        /// The gateway.
        gateway: String,
        /// What is wrong.
        detail: String,
    },
    /// A store did not answer.
    #[error("{0}")]
    Unavailable(String),
    /// `--agent` names no Agent the gateways know and nothing was spent under that name.
    #[error("no Agent named {name:?} in namespace {namespace:?} and no spend recorded for it in {window}")]
    UnknownAgent {
        /// The name asked for.
        name: String,
        /// The namespace.
        namespace: String,
        /// The window.
        window: String,
    },
    /// `--window` is not a window.
    #[error(
        "window {0:?} is not a window: use 2026-12 (a month), 2026-W49 (an ISO week) or 2026-12-03 (a day)"
    )]
    BadWindow(String),
}

impl SpendError {
    /// Low-cardinality name, for metrics and condition reasons.
    pub fn category(&self) -> &'static str {
        match self {
            SpendError::NoSharedStore { .. } => "no_shared_store",
            SpendError::Config { .. } => "store_config",
            SpendError::Unavailable(_) => "store_unavailable",
            SpendError::UnknownAgent { .. } => "unknown_agent",
            SpendError::BadWindow(_) => "bad_window",
        }
    }

    /// PascalCase reason for a condition.
    pub fn reason(&self) -> &'static str {
        match self {
            SpendError::NoSharedStore { .. } => "NoSharedStore",
            SpendError::Config { .. } => "StoreConfigInvalid",
            SpendError::Unavailable(_) => "StoreUnavailable",
            SpendError::UnknownAgent { .. } => "UnknownAgent",
            SpendError::BadWindow(_) => "BadWindow",
        }
    }
}

/// One shared store and the AI gateways that count in it.
#[derive(Clone)]
pub struct SharedStore {
    /// `redis://…` (no password).
    pub url: String,
    /// Gateways counting there, sorted.
    pub gateways: Vec<String>,
    store: Store,
}

/// The stores the AI gateways of one namespace count in.
#[derive(Clone, Default)]
pub struct Stores {
    /// Key prefix of the namespace.
    pub prefix: String,
    /// Shared stores, by URL.
    pub redis: Vec<SharedStore>,
    /// AI gateways counting in memory, sorted.
    pub memory: Vec<String>,
}

/// Redis connections by URL and password, kept between reads (the gateways' own registry of
/// stores, so the same URL and password is one connection).
#[derive(Default)]
pub struct Connections(crate::gateway::store::Stores);

impl Connections {
    fn get(
        &mut self,
        gateway: &str,
        cfg: &StoreConfig,
        url: &str,
        password: Option<&str>,
    ) -> Result<Store, String> {
        let cfg = StoreConfig { redis_url: url.to_string(), ..cfg.clone() };
        self.0.store(gateway, Some(&cfg), password).map(|(s, _)| s).map_err(|e| e.0)
    }
}

fn ai_gateways<'a>(output: &'a Output, ns: &'a str) -> impl Iterator<Item = &'a CompiledGateway> + 'a {
    output
        .gateways
        .iter()
        .filter(move |g| g.config.gateway.namespace == ns && g.config.gateway.layer == Layer::Ai)
}

impl Stores {
    /// The stores of the AI gateways of `ns` in `output`; `url_override` replaces every Redis
    /// URL (`cairn spend --store-url`, through a port-forward).
    pub fn of(
        output: &Output,
        ns: &str,
        connections: &mut Connections,
        url_override: Option<&str>,
    ) -> Result<Stores, SpendError> {
        let mut out = Stores { prefix: namespace_prefix(ns), ..Default::default() };
        for g in ai_gateways(output, ns) {
            let name = g.config.gateway.name.clone();
            let Some(cfg) = &g.config.store else {
                out.memory.push(name);
                continue;
            };
            let password = redis_password(&g.config, &g.credentials)
                .map_err(|e| SpendError::Config { gateway: name.clone(), detail: e.to_string() })?;
            let url = url_override.unwrap_or(&cfg.redis_url);
            let store = connections
                .get(&name, cfg, url, password)
                .map_err(|detail| SpendError::Config { gateway: name.clone(), detail })?;
            match out.redis.iter_mut().find(|s| s.url == url && same_store(&s.store, &store)) {
                Some(s) => s.gateways.push(name),
                None => out.redis.push(SharedStore { url: url.to_string(), gateways: vec![name], store }),
            }
        }
        out.memory.sort();
        Ok(out)
    }

    /// An error when no store can be read.
    pub fn require_shared(&self, ns: &str) -> Result<(), SpendError> {
        if !self.redis.is_empty() {
            return Ok(());
        }
        let memory = if self.memory.is_empty() {
            String::new()
        } else {
            format!(
                "; {} count{} in memory",
                self.memory.join(", "),
                if self.memory.len() == 1 { "s" } else { "" }
            )
        };
        Err(SpendError::NoSharedStore { namespace: ns.to_string(), memory })
    }

    /// Each counter's value summed over the shared stores, in `keys`' order.
    pub async fn budget_spends(&self, keys: &[String]) -> Result<Vec<u64>, SpendError> {
        let mut sum = vec![0u64; keys.len()];
        for s in &self.redis {
            let v =
                s.store.budget_spends(&self.prefix, keys).await.map_err(|e| SpendError::Unavailable(e.0))?;
            for (t, x) in sum.iter_mut().zip(v) {
                *t = t.saturating_add(x);
            }
        }
        Ok(sum)
    }

    /// The spend records of `window` over the shared stores, merged and sorted.
    pub async fn spend_report(&self, window: &str) -> Result<Vec<SpendLine>, SpendError> {
        let mut merged: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for s in &self.redis {
            for l in
                s.store.spend_report(&self.prefix, window).await.map_err(|e| SpendError::Unavailable(e.0))?
            {
                *merged.entry((l.gateway, l.subject, l.model)).or_default() += l.micros;
            }
        }
        Ok(merged
            .into_iter()
            .map(|((gateway, subject, model), micros)| SpendLine { gateway, subject, model, micros })
            .collect())
    }
}

fn same_store(a: &Store, b: &Store) -> bool {
    match (a, b) {
        (Store::Redis(x), Store::Redis(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

/// One budget counter of one policy in its current window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetCounter {
    /// The AgentPolicy.
    pub policy: String,
    /// The budget's index in its `spec.budgets`.
    pub budget: usize,
    /// The subject of a per-subject budget; `None` for a shared one.
    pub subject: Option<String>,
    /// The window's key (`2026-12`).
    pub window: String,
    /// The counter's key, as the gateways charge it.
    pub key: String,
    /// The budget in micro-dollars.
    pub limit_micros: u64,
}

/// Every budget counter of the policies the AI gateways of `ns` enforce, in the windows that
/// contain `now`, by policy and budget, subjects sorted.
pub fn budget_counters(output: &Output, ns: &str, now: u64) -> Vec<BudgetCounter> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for g in ai_gateways(output, ns) {
        for p in &g.config.policy.policies {
            if !seen.insert(p.name.clone()) {
                continue;
            }
            for (i, b) in p.budgets.iter().enumerate() {
                let subjects: Vec<Option<&str>> = match b.scope {
                    BudgetScope::Shared => vec![None],
                    BudgetScope::PerSubject => p.subjects.iter().map(|s| Some(s.as_str())).collect(),
                };
                for s in subjects {
                    out.push(BudgetCounter {
                        policy: p.name.clone(),
                        budget: i,
                        subject: s.map(str::to_string),
                        window: policy::window_key(b.window, now),
                        key: policy::budget_window_key(
                            &policy::budget_key(b, s.unwrap_or_default()),
                            b.window,
                            now,
                        ),
                        limit_micros: micros_of(b.amount_usd),
                    });
                }
            }
        }
    }
    out
}

/// What `cairn spend` answers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The namespace.
    pub namespace: String,
    /// The window (`2026-12`, `2026-W49`, `2026-12-03`).
    pub window: String,
    /// The shared stores read, with the AI gateways counting in each.
    pub stores: Vec<String>,
    /// AI gateways counting in memory: their spend is not included.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub memory: Vec<String>,
    /// Spend per gateway, agent and model.
    pub spend: Vec<ReportLine>,
    /// The sum of `spend`.
    #[serde(rename = "totalUSD")]
    pub total_usd: String,
    /// The budgets in this window, for the agent if one is asked about.
    pub budgets: Vec<ReportBudget>,
}

/// Spend of one agent on one model through one gateway.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportLine {
    /// The AIGateway.
    pub gateway: String,
    /// The Agent (or `anonymous`).
    pub agent: String,
    /// The model requested.
    pub model: String,
    /// Dollars, exact.
    #[serde(rename = "usd")]
    pub usd: String,
}

/// A budget against its limit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportBudget {
    /// The AgentPolicy.
    pub policy: String,
    /// Index in its `spec.budgets`.
    pub budget: usize,
    /// The subject of a per-subject budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Dollars spent.
    #[serde(rename = "usedUSD")]
    pub used_usd: String,
    /// The budget.
    #[serde(rename = "limitUSD")]
    pub limit_usd: String,
}

/// What the namespace's AI gateways recorded in `window` (default: this month), for `agent` if
/// given, with the budgets whose window that is; `url_override` replaces the stores' URL.
pub async fn report(
    output: &Output,
    ns: &str,
    agent: Option<&str>,
    window: Option<&str>,
    url_override: Option<&str>,
    now: u64,
) -> Result<Report, SpendError> {
    let window = parse_window(window, now)?;
    let stores = Stores::of(output, ns, &mut Connections::default(), url_override)?;
    stores.require_shared(ns)?;
    let lines: Vec<SpendLine> = stores
        .spend_report(&window)
        .await?
        .into_iter()
        .filter(|l| agent.is_none_or(|a| l.subject == a))
        .collect();
    if let Some(a) = agent {
        let known = ai_gateways(output, ns).any(|g| g.config.policy.subjects.iter().any(|s| s.name == a));
        if !known && lines.is_empty() {
            return Err(SpendError::UnknownAgent { name: a.into(), namespace: ns.into(), window });
        }
    }
    let naming: std::collections::BTreeSet<&str> = ai_gateways(output, ns)
        .flat_map(|g| &g.config.policy.policies)
        .filter(|p| agent.is_none_or(|a| p.subjects.iter().any(|s| s == a)))
        .map(|p| p.name.as_str())
        .collect();
    let counters: Vec<BudgetCounter> = budget_counters(output, ns, now)
        .into_iter()
        .filter(|c| c.window == window && naming.contains(c.policy.as_str()))
        .filter(|c| agent.is_none() || c.subject.is_none() || c.subject.as_deref() == agent)
        .collect();
    let keys: Vec<String> = counters.iter().map(|c| c.key.clone()).collect();
    let used = stores.budget_spends(&keys).await?;
    let total: u64 = lines.iter().map(|l| l.micros).sum();
    Ok(Report {
        namespace: ns.to_string(),
        window,
        stores: stores
            .redis
            .iter()
            .map(|s| format!("{} (AIGateway {})", s.url, s.gateways.join(", ")))
            .collect(),
        memory: stores.memory.clone(),
        spend: lines
            .into_iter()
            .map(|l| ReportLine { gateway: l.gateway, agent: l.subject, model: l.model, usd: usd(l.micros) })
            .collect(),
        total_usd: usd(total),
        budgets: counters
            .into_iter()
            .zip(used)
            .map(|(c, u)| ReportBudget {
                policy: c.policy,
                budget: c.budget,
                subject: c.subject,
                used_usd: usd(u),
                limit_usd: limit(c.limit_micros),
            })
            .collect(),
    })
}

/// Dollars as micro-dollars (what the counters hold).
pub fn micros_of(usd: f64) -> u64 {
    (usd.max(0.0) * 1e6).round() as u64
}

/// Micro-dollars as an exact decimal string with at least two decimals: `12.40`, `0.000125`.
pub fn usd(micros: u64) -> String {
    let whole = micros / 1_000_000;
    let frac = format!("{:06}", micros % 1_000_000);
    let frac = frac.trim_end_matches('0');
    format!("{whole}.{frac:0<2}")
}

/// A budget's amount: whole dollars without decimals (`50`), else as [`usd`] (`12.50`).
pub fn limit(micros: u64) -> String {
    if micros.is_multiple_of(1_000_000) { (micros / 1_000_000).to_string() } else { usd(micros) }
}

/// The window key `--window` names, checked: `2026-12`, `2026-W49` or `2026-12-03`; with none,
/// the month that contains `now`.
pub fn parse_window(window: Option<&str>, now: u64) -> Result<String, SpendError> {
    let Some(w) = window else { return Ok(policy::window_key(BudgetWindow::Month, now)) };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match w.split('-').collect::<Vec<_>>().as_slice() {
        [y, m] if digits(y, 4) && digits(m, 2) => (1..=12).contains(&m.parse::<u8>().unwrap_or(0)),
        [y, w] if digits(y, 4) && w.starts_with('W') && digits(&w[1..], 2) => {
            (1..=53).contains(&w[1..].parse::<u8>().unwrap_or(0))
        }
        [y, m, d] if digits(y, 4) && digits(m, 2) && digits(d, 2) => {
            (1..=12).contains(&m.parse::<u8>().unwrap_or(0))
                && (1..=31).contains(&d.parse::<u8>().unwrap_or(0))
        }
        _ => false,
    };
    if ok { Ok(w.to_string()) } else { Err(SpendError::BadWindow(w.to_string())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_exact_decimals_with_two_places_at_least() {
        assert_eq!(usd(0), "0.00");
        assert_eq!(usd(12_400_000), "12.40");
        assert_eq!(usd(125), "0.000125");
        assert_eq!(usd(1_234_567), "1.234567");
        assert_eq!(usd(10_000), "0.01");
        assert_eq!(limit(50_000_000), "50");
        assert_eq!(limit(12_500_000), "12.50");
        assert_eq!(micros_of(0.01), 10_000);
        assert_eq!(micros_of(50.0), 50_000_000);
    }

    #[test]
    fn windows_are_months_weeks_or_days() {
        // 2026-11-24 13:45:10 UTC
        assert_eq!(parse_window(None, 1_795_527_910).unwrap(), "2026-11");
        for ok in ["2026-12", "2026-W49", "2026-W01", "2026-12-03"] {
            assert_eq!(parse_window(Some(ok), 0).unwrap(), ok);
        }
        for bad in
            ["2026", "2026-13", "2026-W54", "2026-12-32", "26-12", "2026-1", "2026-12-03T00", "december"]
        {
            let e = parse_window(Some(bad), 0).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "window {bad:?} is not a window: use 2026-12 (a month), 2026-W49 (an ISO week) or 2026-12-03 (a day)"
                )
            );
        }
    }

    fn output(gateways: &[(&str, &str)]) -> Output {
        let yaml: String = gateways
            .iter()
            .map(|(name, url)| {
                format!(
                    "---\napiVersion: cairn.dev/v1alpha1\nkind: AIGateway\nmetadata: {{name: {name}}}\nspec: {{listener: {{port: 8080}}, store: {{redis: {{url: \"{url}\"}}}}}}\n"
                )
            })
            .collect();
        let m = crate::manifest::load_str("t.yaml", &yaml, &Default::default()).unwrap();
        crate::workspace::compile_manifests(
            &m,
            &crate::compile::Mode::Cluster { domain: "cluster.local".into() },
        )
    }

    #[test]
    fn a_store_url_that_is_not_one_names_the_gateway() {
        let out = output(&[("llm", "redis://127.0.0.1:99999")]);
        let e =
            Stores::of(&out, "default", &mut Connections::default(), None).err().expect("an unusable URL");
        assert_eq!(e.reason(), "StoreConfigInvalid");
        assert!(e.to_string().starts_with("AIGateway \"llm\": redis URL \"redis://127.0.0.1:99999\""), "{e}");
    }

    #[tokio::test]
    async fn gateways_naming_the_same_store_count_once_and_a_store_down_is_unavailable() {
        let mut c = Connections::default();
        let out = output(&[
            ("a", "redis://127.0.0.1:1"),
            ("b", "redis://127.0.0.1:1"),
            ("c", "redis://127.0.0.1:2"),
        ]);
        let st = Stores::of(&out, "default", &mut c, None).unwrap();
        let urls: Vec<(&str, Vec<String>)> =
            st.redis.iter().map(|s| (s.url.as_str(), s.gateways.clone())).collect();
        assert_eq!(
            urls,
            [
                ("redis://127.0.0.1:1", vec!["a".to_string(), "b".into()]),
                ("redis://127.0.0.1:2", vec!["c".into()])
            ]
        );
        assert_eq!(st.prefix, "cairn:default:");
        let over = Stores::of(&out, "default", &mut c, Some("redis://127.0.0.1:3")).unwrap();
        assert_eq!(over.redis.len(), 1, "one URL for all");
        let e = st.budget_spends(&["k".into()]).await.unwrap_err();
        assert_eq!(e.reason(), "StoreUnavailable");
        assert!(e.to_string().starts_with("redis redis://127.0.0.1:1: "), "{e}");
    }

    #[test]
    fn no_shared_store_says_which_gateways_count_in_memory() {
        let none = Stores { memory: vec!["llm".into()], ..Default::default() };
        assert_eq!(
            none.require_shared("team").unwrap_err().to_string(),
            "no AIGateway in namespace \"team\" names a shared store (spec.store.redis); llm counts in memory: \
             spend is counted in each gateway pod's memory, which nothing outside the pod can read"
        );
        let empty = Stores::default();
        assert_eq!(
            empty.require_shared("x").unwrap_err().to_string(),
            "no AIGateway in namespace \"x\" names a shared store (spec.store.redis): spend is counted in each \
             gateway pod's memory, which nothing outside the pod can read"
        );
    }
}
