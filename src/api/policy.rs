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
    printcolumn(name = "Subjects", type_ = "integer", json_path = ".status.effective.subjectCount"),
    printcolumn(name = "Spend", type_ = "string", json_path = ".status.spendSummary"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status",
        priority = 1
    )
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

/// A peer agent granted on an AgentGateway, with the skills granted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerGrant {
    /// The Agent's name.
    pub name: String,
    /// Skill ids or globs; empty: every skill.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
}

/// What a policy grants on one gateway of its namespace, in the names that gateway uses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayGrants {
    /// `AIGateway`, `MCPGateway` or `AgentGateway`.
    pub kind: String,
    /// The gateway's name.
    pub name: String,
    /// Models the gateway's routes serve that the policy grants (route match names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Tools (prefixed names or globs, `<prefix>__<tool>`) of the gateway's servers the policy
    /// grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Peer agents the gateway publishes that the policy grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<PeerGrant>,
}

/// What a policy grants once its subjects and references are resolved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveGrants {
    /// Agents the policy applies to, named or selected by label (in status: the first 100 by
    /// name; `subjectCount` counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// How many Agents the policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_count: Option<i32>,
    /// Model names and globs granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Prefixed tool names (or globs) granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Peer agents granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// What the policy grants on each gateway of its namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<GatewayGrants>,
}

/// Spend against one budget in its current window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetSpend {
    /// The budget's index in `spec.budgets`.
    #[serde(default)]
    pub budget: i32,
    /// The window, e.g. `2026-11`, `2026-W47`, `2026-11-24`.
    pub window: String,
    /// The subject, for per-subject budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Dollars spent so far, as a decimal string (exact to the micro-dollar), read from the
    /// shared store of the namespace's AIGateways; `unknown` when it cannot be read (see the
    /// `SpendKnown` condition).
    #[serde(rename = "usedUSD")]
    pub used_usd: String,
    /// The budget, as a decimal string.
    #[serde(rename = "limitUSD")]
    pub limit_usd: String,
}

/// The subjects of a per-subject budget left out of `spend` (it lists the 10 that spent most).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpendOmitted {
    /// The budget's index in `spec.budgets`.
    pub budget: i32,
    /// How many subjects are left out.
    pub subjects: i32,
    /// What they spent together, as a decimal string.
    #[serde(rename = "usedUSD")]
    pub used_usd: String,
}

/// Status of an AgentPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentPolicyStatus {
    /// `Accepted`, `ResolvedRefs`, `Ready` (a gateway of the namespace enforces the policy) and
    /// `SpendKnown` (with budgets: the spend could be read from the shared store).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    /// The generation these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What the policy grants, resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<EffectiveGrants>,
    /// Spend against the budgets in their current windows: one entry per shared budget, one per
    /// subject (the 10 that spent most) of a per-subject budget.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spend: Vec<BudgetSpend>,
    /// Subjects of per-subject budgets that `spend` leaves out, counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spend_omitted: Vec<SpendOmitted>,
    /// The budget closest to its limit, as `used/limit USD` (`12.40/50 USD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_summary: Option<String>,
}
