//! `AgentPolicy`: one policy object across the three layers.

use super::common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who a policy applies to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.agents) && size(self.agents) > 0) || has(self.selector)").message("subjects needs agents, a selector, or both"))]
pub struct Subjects {
    /// Agents (in the policy's namespace) by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    pub agents: Vec<String>,
    /// Agents (in the policy's namespace) by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Models a subject may use.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelGrant {
    /// Model name or glob, as clients request it (`gpt-4o*`, `*`).
    #[serde(rename = "match")]
    #[schemars(regex(pattern = "^[A-Za-z0-9._:/@*?-]{1,253}$"))]
    pub match_: String,
    /// Limits per subject on the matching models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// Tools a subject may call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolGrant {
    /// The MCPServer (in the policy's namespace) by name.
    #[schemars(length(min = 1, max = 253))]
    pub server: String,
    /// Tool-name globs on that server, without its prefix.
    #[serde(default = "star")]
    #[schemars(inner(regex(pattern = "^[A-Za-z0-9._:/@*?-]{1,253}$")))]
    pub tools: Vec<String>,
    /// Limits per subject on these tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

fn star() -> Vec<String> {
    vec!["*".into()]
}

/// Peer agents a subject may call over A2A.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentGrant {
    /// The Agent (in the policy's namespace) by name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Skill ids (or globs) the subject may invoke; empty allows every skill.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = "^[A-Za-z0-9._:/@*?-]{1,253}$")))]
    pub skills: Vec<String>,
    /// Limits per subject on calls to this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// A calendar window in UTC.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum BudgetWindow {
    /// From 00:00 UTC to the next midnight.
    Day,
    /// From Monday 00:00 UTC (ISO weeks).
    Week,
    /// From the first of the month, 00:00 UTC.
    Month,
}

/// Whose spend a budget counts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum BudgetScope {
    /// Each subject has its own budget of this amount.
    #[default]
    PerSubject,
    /// All subjects of the policy share one budget.
    Shared,
}

/// What happens when a budget is spent.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum BudgetAction {
    /// Refuse further LLM calls until the window ends (429 `insufficient_quota`).
    #[default]
    Block,
    /// Only report the overrun in metrics, logs and status.
    Report,
}

/// A dollar budget over a calendar window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
// The schema's `minimum: 0.01` alone lets 0 through: the API server compares integers against
// int64(0.01), which is 0.
#[x_kube(validation = Rule::new("self.amountUSD >= 0.01").message("amountUSD must be at least 0.01"))]
pub struct Budget {
    /// Amount in US dollars (at least one cent).
    #[serde(rename = "amountUSD")]
    #[schemars(range(min = 0.01))]
    pub amount_usd: f64,
    /// The calendar window the amount is for.
    pub window: BudgetWindow,
    /// Per subject or shared by all subjects.
    #[serde(default)]
    pub scope: BudgetScope,
    /// What happens when the budget is spent.
    #[serde(default)]
    pub action: BudgetAction,
}

/// What a set of agents may use across the three layers, with limits and budgets.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "AgentPolicy",
    doc = "What a set of agents may use across the three layers (models, tools, peer agents), with limits and budgets.",
    namespaced,
    status = "AgentPolicyStatus",
    shortname = "agp",
    category = "cairn",
    printcolumn(name = "Subjects", type_ = "string", json_path = ".status.effective.subjects"),
    printcolumn(name = "Spend", type_ = "string", json_path = ".status.spend[0].usedUSD"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.models) && size(self.models) > 0) || (has(self.tools) && size(self.tools) > 0) || (has(self.agents) && size(self.agents) > 0) || (has(self.budgets) && size(self.budgets) > 0)").message("a policy must grant models, tools or agents, or set budgets"))]
pub struct AgentPolicySpec {
    /// The agents this policy applies to.
    pub subjects: Subjects,
    /// Models granted (layer 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub models: Vec<ModelGrant>,
    /// Tools granted (layer 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub tools: Vec<ToolGrant>,
    /// Peer agents granted (layer 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub agents: Vec<AgentGrant>,
    /// Dollar budgets on LLM spend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub budgets: Vec<Budget>,
}

/// What a policy grants once its subjects and references are resolved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveGrants {
    /// Agents the policy applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// Model names and globs granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Prefixed tool names (or globs) granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Peer agents granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
}

/// Spend against one budget in its current window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetSpend {
    /// The window, e.g. `2026-11`, `2026-W47`, `2026-11-24`.
    pub window: String,
    /// The subject, for per-subject budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Dollars spent so far, as a decimal string.
    #[serde(rename = "usedUSD")]
    pub used_usd: String,
    /// The budget, as a decimal string.
    #[serde(rename = "limitUSD")]
    pub limit_usd: String,
}

/// Status of an AgentPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentPolicyStatus {
    /// `Accepted`, `ResolvedRefs`, `Programmed`, `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    /// The generation these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What the policy grants, resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<EffectiveGrants>,
    /// Spend against the budgets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spend: Vec<BudgetSpend>,
}
