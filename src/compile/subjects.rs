//! Agents and AgentPolicies of each namespace, resolved once for all gateways of the namespace.

use super::{Diags, Index, Reason};
use crate::api::{self, Object, ObjectRef};
use crate::config::{
    AgentGrantConfig, BudgetConfig, LimitsConfig, ModelGrantConfig, PolicyRules, ToolGrantConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, BTreeSet};

/// A way an agent proves who it is, before hashing (virtual keys are hashed per gateway salt).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RawIdentity {
    ServiceAccount { namespace: String, name: String },
    Jwt { issuer: String, subject: String },
    VirtualKey { key: String },
}

/// The Agent label whose value is the Agent's team in metrics (`cairn_subject_info`).
pub const TEAM_LABEL: &str = "team";

/// One namespace's callers and policies.
#[derive(Default)]
pub(crate) struct Namespace {
    /// Agent name → identities, sorted by name.
    pub(crate) subjects: BTreeMap<String, Vec<RawIdentity>>,
    /// Agent name → the value of its [`TEAM_LABEL`] label, for Agents that have one.
    pub(crate) teams: BTreeMap<String, String>,
    /// Resolved policies, sorted by name.
    pub(crate) policies: Vec<PolicyRules>,
}

pub(crate) struct Resolved {
    pub(crate) namespaces: BTreeMap<String, Namespace>,
    pub(crate) effective: BTreeMap<ObjectRef, api::EffectiveGrants>,
}

/// Shortest virtual key accepted: shorter keys are guessable.
pub(crate) const MIN_VIRTUAL_KEY_LEN: usize = 16;

pub(crate) fn resolve(index: &Index<'_>, diags: &mut Diags) -> Resolved {
    let mut namespaces: BTreeMap<String, Namespace> = BTreeMap::new();
    // Which agent owns each virtual key (to refuse one key used by two agents).
    let mut key_owner: BTreeMap<(String, String), String> = BTreeMap::new();
    for obj in index.all() {
        let Object::Agent(agent) = obj else { continue };
        if obj.name() == crate::policy::ANONYMOUS {
            diags.push(
                obj,
                "metadata.name",
                Reason::Invalid,
                format!(
                    "the name {:?} is reserved for callers without credentials; rename the Agent",
                    crate::policy::ANONYMOUS
                ),
            );
            continue;
        }
        let ns = obj.namespace().to_string();
        let mut ids = Vec::new();
        let identity = &agent.spec.identity;
        if let Some(sa) = &identity.service_account {
            ids.push(RawIdentity::ServiceAccount {
                namespace: sa.namespace.clone().unwrap_or_else(|| ns.clone()),
                name: sa.name.clone(),
            });
        }
        for j in &identity.jwt {
            ids.push(RawIdentity::Jwt { issuer: j.issuer.clone(), subject: j.subject.clone() });
        }
        for (i, vk) in identity.virtual_keys.iter().enumerate() {
            let field = format!("spec.identity.virtualKeys[{i}].secretRef");
            match index.secret_value(&ns, &vk.secret_ref) {
                Err(e) => diags.push(obj, field, Reason::RefNotFound, e.to_string()),
                Ok(key) if key.trim().chars().count() < MIN_VIRTUAL_KEY_LEN => diags.push(
                    obj,
                    field,
                    Reason::Invalid,
                    format!(
                        "virtual key in Secret {:?} key {:?} is shorter than {MIN_VIRTUAL_KEY_LEN} characters",
                        vk.secret_ref.name, vk.secret_ref.key
                    ),
                ),
                Ok(key) => {
                    let key = key.trim().to_string();
                    match key_owner.get(&(ns.clone(), key.clone())) {
                        Some(owner) if owner != obj.name() => diags.push(
                            obj,
                            field,
                            Reason::Conflict,
                            format!("the same virtual key is already the identity of Agent {owner:?}"),
                        ),
                        _ => {
                            key_owner.insert((ns.clone(), key.clone()), obj.name().to_string());
                            ids.push(RawIdentity::VirtualKey { key });
                        }
                    }
                }
            }
        }
        ids.sort();
        ids.dedup();
        let entry = namespaces.entry(ns).or_default();
        if let Some(team) = agent.metadata.labels.as_ref().and_then(|l| l.get(TEAM_LABEL)) {
            entry.teams.insert(obj.name().to_string(), team.clone());
        }
        entry.subjects.insert(obj.name().to_string(), ids);
    }

    let mut effective = BTreeMap::new();
    for obj in index.all() {
        let Object::AgentPolicy(policy) = obj else { continue };
        let ns = obj.namespace();
        let (rules, grants) = resolve_policy(index, obj, policy, diags);
        effective.insert(obj.object_ref(), grants);
        namespaces.entry(ns.to_string()).or_default().policies.push(rules);
    }
    for n in namespaces.values_mut() {
        n.policies.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Resolved { namespaces, effective }
}

fn limits(l: &Option<api::Limits>) -> Option<LimitsConfig> {
    l.as_ref().map(|l| LimitsConfig {
        requests_per_minute: l.requests_per_minute.and_then(|v| u64::try_from(v).ok()),
        tokens_per_minute: l.tokens_per_minute.and_then(|v| u64::try_from(v).ok()),
    })
}

fn resolve_policy(
    index: &Index<'_>,
    obj: &Object,
    policy: &api::AgentPolicy,
    diags: &mut Diags,
) -> (PolicyRules, api::EffectiveGrants) {
    let ns = obj.namespace();
    let spec = &policy.spec;
    let mut subjects = BTreeSet::new();
    for (i, name) in spec.subjects.agents.iter().enumerate() {
        if index.get("Agent", ns, name).is_some() {
            subjects.insert(name.clone());
        } else {
            diags.push(
                obj,
                format!("spec.subjects.agents[{i}]"),
                Reason::RefNotFound,
                format!("Agent {name:?} not found in namespace {ns:?}"),
            );
        }
    }
    if let Some(sel) = &spec.subjects.selector {
        match selector_matcher(sel) {
            Ok(matches) => {
                for o in index.in_namespace(ns) {
                    if let Object::Agent(a) = o
                        && matches(a.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
                    {
                        subjects.insert(o.name().to_string());
                    }
                }
            }
            Err(e) => diags.push(obj, "spec.subjects.selector", Reason::Invalid, e.to_string()),
        }
    }

    let models: Vec<ModelGrantConfig> = spec
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| ModelGrantConfig {
            id: format!("{}/models/{i}", obj.name()),
            pattern: m.match_.clone(),
            limits: limits(&m.limits),
        })
        .collect();

    let mut tools = Vec::new();
    for (i, t) in spec.tools.iter().enumerate() {
        match index.get("MCPServer", ns, &t.server) {
            Some(Object::MCPServer(s)) => tools.push(ToolGrantConfig {
                id: format!("{}/tools/{i}", obj.name()),
                server: t.server.clone(),
                prefix: s.spec.prefix.clone().unwrap_or_else(|| t.server.clone()),
                tools: t.tools.clone(),
                limits: limits(&t.limits),
            }),
            _ => diags.push(
                obj,
                format!("spec.tools[{i}].server"),
                Reason::RefNotFound,
                format!("MCPServer {:?} not found in namespace {ns:?}", t.server),
            ),
        }
    }

    let mut agents = Vec::new();
    for (i, g) in spec.agents.iter().enumerate() {
        match index.get("Agent", ns, &g.name) {
            Some(Object::Agent(a)) if a.spec.a2a.is_some() => agents.push(AgentGrantConfig {
                id: format!("{}/agents/{i}", obj.name()),
                agent: g.name.clone(),
                skills: g.skills.clone(),
                limits: limits(&g.limits),
            }),
            Some(_) => diags.push(
                obj,
                format!("spec.agents[{i}].name"),
                Reason::Invalid,
                format!("Agent {:?} serves no A2A endpoint (spec.a2a), so it cannot be called", g.name),
            ),
            None => diags.push(
                obj,
                format!("spec.agents[{i}].name"),
                Reason::RefNotFound,
                format!("Agent {:?} not found in namespace {ns:?}", g.name),
            ),
        }
    }

    let budgets = spec
        .budgets
        .iter()
        .enumerate()
        .map(|(i, b)| BudgetConfig {
            id: format!("{}/budgets/{i}", obj.name()),
            amount_usd: b.amount_usd,
            window: match b.window {
                api::BudgetWindow::Day => crate::config::BudgetWindow::Day,
                api::BudgetWindow::Week => crate::config::BudgetWindow::Week,
                api::BudgetWindow::Month => crate::config::BudgetWindow::Month,
            },
            scope: match b.scope {
                api::BudgetScope::PerSubject => crate::config::BudgetScope::PerSubject,
                api::BudgetScope::Shared => crate::config::BudgetScope::Shared,
            },
            action: match b.action {
                api::BudgetAction::Block => crate::config::BudgetAction::Block,
                api::BudgetAction::Report => crate::config::BudgetAction::Report,
            },
        })
        .collect();

    if subjects.is_empty() {
        diags.warn(obj, "spec.subjects", Reason::RefNotFound, "the policy applies to no Agent");
    }
    let subjects: Vec<String> = subjects.into_iter().collect();
    let grants = api::EffectiveGrants {
        subjects: subjects.clone(),
        models: models.iter().map(|m| m.pattern.clone()).collect(),
        tools: tools
            .iter()
            .flat_map(|t| t.tools.iter().map(move |g| crate::policy::client_tool_name(&t.prefix, g)))
            .collect(),
        agents: agents.iter().map(|a| a.agent.clone()).collect(),
        ..Default::default()
    };
    (PolicyRules { name: obj.name().to_string(), subjects, models, tools, agents, budgets }, grants)
}

type LabelMatcher = Box<dyn Fn(&BTreeMap<String, String>) -> bool>;

/// A label selector that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SelectorError {
    /// `In`/`NotIn` without values.
    #[error("matchExpressions[{index}]: operator {operator} needs values")]
    NeedsValues {
        /// Index of the expression.
        index: usize,
        /// Its operator.
        operator: String,
    },
    /// `Exists`/`DoesNotExist` with values.
    #[error("matchExpressions[{index}]: operator {operator} takes no values")]
    TakesNoValues {
        /// Index of the expression.
        index: usize,
        /// Its operator.
        operator: String,
    },
    /// Another operator.
    #[error("matchExpressions[{index}]: unknown operator {operator:?} (In, NotIn, Exists, DoesNotExist)")]
    UnknownOperator {
        /// Index of the expression.
        index: usize,
        /// Its operator.
        operator: String,
    },
}

/// A matcher for a Kubernetes label selector (matchLabels and matchExpressions, ANDed).
pub(crate) fn selector_matcher(sel: &LabelSelector) -> Result<LabelMatcher, SelectorError> {
    let labels = sel.match_labels.clone().unwrap_or_default();
    let mut exprs = Vec::new();
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let values: BTreeSet<String> = e.values.iter().flatten().cloned().collect();
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(SelectorError::NeedsValues { index: i, operator: e.operator.clone() });
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(SelectorError::TakesNoValues { index: i, operator: e.operator.clone() });
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => return Err(SelectorError::UnknownOperator { index: i, operator: other.to_string() }),
        }
        exprs.push((e.key.clone(), e.operator.clone(), values));
    }
    Ok(Box::new(move |l: &BTreeMap<String, String>| {
        labels.iter().all(|(k, v)| l.get(k) == Some(v))
            && exprs.iter().all(|(k, op, values)| match op.as_str() {
                "In" => l.get(k).is_some_and(|v| values.contains(v)),
                "NotIn" => l.get(k).is_none_or(|v| !values.contains(v)),
                "Exists" => l.contains_key(k),
                _ => !l.contains_key(k),
            })
    }))
}
