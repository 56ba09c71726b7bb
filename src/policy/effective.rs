//! What a subject may do, all of it at once: the union of its grants with the policy each
//! comes from, its limits and budgets ([`Effective`]), for `cairn explain` and an AgentPolicy's
//! status. The per-call checks are [`super::PolicyIndex::check`]; this is the same index read
//! whole.

use super::{GrantEntry, PolicyIndex, client_tool_name};
use crate::config::{BudgetConfig, DefaultAction, LimitsConfig};
use serde::Serialize;

impl PolicyIndex {
    /// The union of what `subject` may do, for `cairn explain` and policy status.
    pub fn effective(&self, subject: &str) -> Effective {
        let Some(rules) = self.named.get(subject) else {
            return Effective {
                subject: subject.to_owned(),
                basis: match self.config.default_action {
                    DefaultAction::Allow => Basis::DefaultAllow,
                    DefaultAction::Deny => Basis::DefaultDeny,
                },
                ..Effective::default()
            };
        };
        let policies = &self.config.policies;
        let limit = |e: &GrantEntry, applies_to: String, limits: &Option<LimitsConfig>| {
            limits.as_ref().map(|l| EffectiveLimit {
                key: e.key.clone(),
                policy: policies[e.policy].name.clone(),
                applies_to,
                limits: l.clone(),
            })
        };
        let mut out = Effective {
            subject: subject.to_owned(),
            basis: Basis::Policies,
            policies: rules.policies.iter().map(|&p| policies[p].name.clone()).collect(),
            ..Effective::default()
        };
        for e in &rules.models {
            let g = &policies[e.policy].models[e.index];
            out.models
                .push(EffectiveModel { pattern: g.pattern.clone(), policy: policies[e.policy].name.clone() });
            out.limits.extend(limit(e, format!("model '{}'", g.pattern), &g.limits));
        }
        for e in &rules.tools {
            let g = &policies[e.policy].tools[e.index];
            for t in &g.tools {
                out.tools.push(EffectiveTool {
                    tool: client_tool_name(&g.prefix, t),
                    server: g.server.clone(),
                    policy: policies[e.policy].name.clone(),
                });
            }
            let names: Vec<String> =
                g.tools.iter().map(|t| format!("'{}'", client_tool_name(&g.prefix, t))).collect();
            out.limits.extend(limit(e, format!("tools {}", names.join(", ")), &g.limits));
        }
        for e in &rules.agents {
            let g = &policies[e.policy].agents[e.index];
            out.agents.push(EffectiveAgent {
                agent: g.agent.clone(),
                skills: g.skills.clone(),
                policy: policies[e.policy].name.clone(),
            });
            out.limits.extend(limit(e, format!("agent '{}'", g.agent), &g.limits));
        }
        for e in &rules.budgets {
            out.budgets.push(EffectiveBudget {
                key: e.key.clone(),
                policy: policies[e.policy].name.clone(),
                budget: policies[e.policy].budgets[e.index].clone(),
            });
        }
        out
    }
}

/// Why a subject may do what [`Effective`] lists.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum Basis {
    /// Policies name it: it may do exactly what the lists say.
    #[default]
    Policies,
    /// No policy names it and the default action is `Allow`: everything, unlimited (the lists
    /// are empty).
    DefaultAllow,
    /// No policy names it and the default action is `Deny`: nothing.
    DefaultDeny,
}

/// The union of a subject's grants, with where each comes from.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Effective {
    /// The subject.
    pub subject: String,
    /// Whether the lists below are the answer, or the default action is.
    pub basis: Basis,
    /// Policies naming the subject, in config order.
    pub policies: Vec<String>,
    /// Model patterns granted, one per grant.
    pub models: Vec<EffectiveModel>,
    /// Tool globs granted, one per server and glob.
    pub tools: Vec<EffectiveTool>,
    /// Peer agents granted, one per grant.
    pub agents: Vec<EffectiveAgent>,
    /// Limits of the grants.
    pub limits: Vec<EffectiveLimit>,
    /// Budgets on the subject's model calls.
    pub budgets: Vec<EffectiveBudget>,
}

/// A model grant.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveModel {
    /// Model glob.
    pub pattern: String,
    /// Granting policy.
    pub policy: String,
}

/// A tool grant.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveTool {
    /// `prefix__glob` (or the glob alone for a server whose names pass through), as clients see
    /// tool names.
    pub tool: String,
    /// MCPServer name.
    pub server: String,
    /// Granting policy.
    pub policy: String,
}

/// A peer-agent grant.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveAgent {
    /// Agent name.
    pub agent: String,
    /// Skill globs; empty means every skill.
    pub skills: Vec<String>,
    /// Granting policy.
    pub policy: String,
}

/// A limit on some grant.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveLimit {
    /// Counter key.
    pub key: String,
    /// Policy of the grant.
    pub policy: String,
    /// What it limits, for people (`model 'gpt-4o*'`).
    pub applies_to: String,
    /// The limits.
    pub limits: LimitsConfig,
}

/// A budget on the subject.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveBudget {
    /// Counter key.
    pub key: String,
    /// Policy setting it.
    pub policy: String,
    /// The budget.
    pub budget: BudgetConfig,
}
