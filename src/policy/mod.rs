//! Subjects, grants, limits and budgets: the evaluation of a gateway's [`PolicyConfig`], shared by
//! the three gateway layers (on their hot paths) and by `cairn explain`.
//!
//! Pure: no IO, no clock, no async, no Kubernetes types. Build a [`PolicyIndex`] once per config,
//! then ask it who a caller is and what that caller may do.
//!
//! # Semantics
//!
//! **Callers.** Every request is made by a *subject*: the name of an `Agent`, found from the
//! credential the caller presents ([`PolicyIndex::identify`]: a virtual key, hashed with the
//! gateway's salt; a JWT's issuer and subject; a Kubernetes ServiceAccount's namespace and name).
//! A request without credentials, where the gateway allows that, is made by [`ANONYMOUS`]. A
//! credential that identifies no subject identifies nobody ([`None`]): the gateway refuses it
//! rather than serve it as anonymous. Should two subjects claim the same credential (the compile
//! step reports that), the first in the config's order (by name) wins.
//!
//! **Grants add up.** Every `AgentPolicy` that names a subject contributes its grants; the subject
//! may use the union. Policies never take away what another policy grants — there are no denies.
//!
//! **Named subjects get exactly their grants.** A subject that at least one policy names may use
//! exactly what its policies grant and nothing else, on every layer: a policy that grants only
//! models (or only sets a budget) leaves its subjects with no tools and no peer agents. The
//! gateway's `defaultAction` plays no part for them.
//!
//! **`defaultAction` decides for everyone else.** For a caller no policy names — [`ANONYMOUS`], an
//! Agent without policies, or any other name — `Allow` allows everything, with no limits and no
//! budgets; `Deny` allows nothing.
//!
//! **Limits and budgets all apply.** A call is counted against the limits of *every* grant that
//! allows it (two policies that both grant a model with a limit give two limits, and the stricter
//! one bites first), and a model call against the budgets of *every* policy that names the caller.
//! Limits are per subject: each has a counter key `<grant id>/<subject>`, where a grant id is
//! `<policy>/<models|tools|agents>/<i>` and `i` the grant's index in the AgentPolicy's spec (not in
//! the compiled list, so a grant compile leaves out shifts no other grant's counters). Budgets are per subject (counter key
//! `<budget id>/<subject>`) or shared by all subjects of the policy (counter key `<budget id>`);
//! a budget id is `<policy>/budgets/<i>`. Budgets count dollars, so they apply to model calls only.
//!
//! **What a grant matches.** All patterns are [`glob_match`] globs (`*`, `?`, case-sensitive).
//! A model grant's pattern is matched against the model name the client *requests* (before any
//! routing rewrites it). A tool is identified by its server's prefix and its unprefixed name — the
//! client sees `prefix__tool` ([`split_tool_name`]); a tool grant names the prefix exactly and
//! globs over the unprefixed name. An agent grant names the peer agent exactly and may list skill
//! globs: no list grants every skill; with a list, a call is allowed when its skill matches one of
//! the globs. A call whose skill is unknown (the gateway could not tell which skill it invokes) is
//! allowed only by a grant without a skill list.

pub mod effective;
pub mod egress;
pub mod glob;
pub mod window;

pub use effective::{
    Basis, Effective, EffectiveAgent, EffectiveBudget, EffectiveLimit, EffectiveModel, EffectiveTool,
};
pub use glob::{glob_match, is_glob};
pub use window::{window_end, window_key, window_start};

use crate::config::{
    BudgetConfig, BudgetScope, DefaultAction, IdentityConfig, LimitsConfig, PolicyConfig, hash_virtual_key,
};
use std::collections::HashMap;
use std::fmt;

/// The subject of requests that carry no credentials.
pub const ANONYMOUS: &str = "anonymous";

/// What separates a server's prefix from the tool name in the names MCP clients see.
pub const TOOL_SEPARATOR: &str = "__";

/// The name MCP clients see for `name` (a tool or prompt) of a server with `prefix`:
/// `prefix__name`, or `name` unchanged when the prefix is empty (names pass through).
pub fn client_tool_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}{TOOL_SEPARATOR}{name}") }
}

/// Splits a client-facing tool name `prefix__tool` into prefix and unprefixed tool name, at the
/// first separator (prefixes never contain `_`). `None` if there is no separator or either side
/// is empty.
pub fn split_tool_name(name: &str) -> Option<(&str, &str)> {
    let (prefix, tool) = name.split_once(TOOL_SEPARATOR)?;
    (!prefix.is_empty() && !tool.is_empty()).then_some((prefix, tool))
}

/// A credential a caller presented, already verified by the gateway (signature, expiry,
/// audience); the index only maps it to a subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// A virtual key as presented, and the gateway's salt (`AuthConfig::virtual_key_salt`).
    VirtualKey {
        /// The key.
        key: &'a str,
        /// Hex salt the config's hashes were made with.
        salt_hex: &'a str,
    },
    /// A JWT's issuer (`iss`) and the value of the issuer's subject claim.
    Jwt {
        /// Issuer.
        issuer: &'a str,
        /// Subject claim value.
        subject: &'a str,
    },
    /// A Kubernetes ServiceAccount token's account.
    ServiceAccount {
        /// Namespace.
        namespace: &'a str,
        /// Name.
        name: &'a str,
    },
}

impl<'a> Credential<'a> {
    /// The ServiceAccount of a Kubernetes username `system:serviceaccount:NAMESPACE:NAME` (the
    /// `sub` of a ServiceAccount token); `None` for any other username.
    pub fn from_service_account_username(username: &'a str) -> Option<Self> {
        let rest = username.strip_prefix("system:serviceaccount:")?;
        let (namespace, name) = rest.split_once(':')?;
        (!namespace.is_empty() && !name.is_empty() && !name.contains(':'))
            .then_some(Credential::ServiceAccount { namespace, name })
    }
}

/// What a call asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// A model, by the name the client requested.
    Model(&'a str),
    /// A tool: its MCPServer and its own (unprefixed) name.
    Tool {
        /// MCPServer name.
        server: &'a str,
        /// Tool name without the prefix.
        tool: &'a str,
    },
    /// A peer agent, and the skill the call invokes if the gateway knows it.
    Agent {
        /// Agent name.
        agent: &'a str,
        /// Skill id, if known.
        skill: Option<&'a str>,
    },
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Model(m) => write!(f, "model '{m}'"),
            Target::Tool { server, tool } => write!(f, "tool '{tool}' of MCPServer '{server}'"),
            Target::Agent { agent, .. } => write!(f, "agent '{agent}'"),
        }
    }
}

/// A limit that applies to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit<'a> {
    /// Counter key, stable across config versions while the policy keeps the grant at its index:
    /// `<grant id>/<subject>`, the grant id being `<policy>/<models|tools|agents>/<i>`.
    pub key: &'a str,
    /// The policy whose grant carries the limit.
    pub policy: &'a str,
    /// The limits.
    pub limits: &'a LimitsConfig,
}

/// A budget that applies to a model call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget<'a> {
    /// Counter key: `<budget id>/<subject>` per subject, `<budget id>` when shared. Add the
    /// [`window_key`] to count per window.
    pub key: &'a str,
    /// The policy that sets the budget.
    pub policy: &'a str,
    /// The budget.
    pub budget: &'a BudgetConfig,
}

impl Budget<'_> {
    /// The counter of this budget in the window that contains `unix_seconds`.
    pub fn counter(&self, unix_seconds: u64) -> String {
        budget_window_key(self.key, self.budget.window, unix_seconds)
    }
}

/// A budget's counter key: `<budget id>/<subject>` for a per-subject budget, `<budget id>` for a
/// shared one. The gateways count spend under it per window ([`budget_window_key`]); the
/// operator's status and `cairn spend` read the same keys.
pub fn budget_key(budget: &BudgetConfig, subject: &str) -> String {
    match budget.scope {
        BudgetScope::PerSubject => format!("{}/{subject}", budget.id),
        BudgetScope::Shared => budget.id.clone(),
    }
}

/// A budget counter key in the window that contains `unix_seconds`: `<key>/<window key>`.
pub fn budget_window_key(key: &str, window: crate::config::BudgetWindow, unix_seconds: u64) -> String {
    format!("{key}/{}", window_key(window, unix_seconds))
}

/// The outcome of a check.
#[derive(Clone, Copy, Debug)]
pub enum Decision<'a> {
    /// The call may proceed, subject to its limits and budgets.
    Allow(Allowed<'a>),
    /// The call is refused.
    Deny(Denied<'a>),
}

impl<'a> Decision<'a> {
    /// Whether the call may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The allowance, if allowed.
    pub fn allowed(&self) -> Option<&Allowed<'a>> {
        match self {
            Decision::Allow(a) => Some(a),
            Decision::Deny(_) => None,
        }
    }

    /// The refusal, if refused.
    pub fn denied(&self) -> Option<&Denied<'a>> {
        match self {
            Decision::Allow(_) => None,
            Decision::Deny(d) => Some(d),
        }
    }
}

/// An allowed call. Borrows from the index; computing its limits and budgets allocates nothing.
#[derive(Clone, Copy)]
pub struct Allowed<'a> {
    target: Target<'a>,
    /// `None`: allowed by the default action.
    rules: Option<&'a SubjectRules>,
    index: &'a PolicyIndex,
}

impl<'a> Allowed<'a> {
    /// What was allowed.
    pub fn target(&self) -> Target<'a> {
        self.target
    }

    /// Whether the call was allowed by the gateway's `defaultAction: Allow` (no policy names the
    /// caller), and so has no limits and no budgets.
    pub fn by_default(&self) -> bool {
        self.rules.is_none()
    }

    /// The limits of every grant that allows the call, in policy order then grant order.
    pub fn limits(&self) -> impl Iterator<Item = Limit<'a>> + use<'a> {
        let (index, target) = (self.index, self.target);
        let entries: &'a [GrantEntry] = match (self.rules, target) {
            (None, _) => &[],
            (Some(r), Target::Model(_)) => &r.models,
            (Some(r), Target::Tool { .. }) => &r.tools,
            (Some(r), Target::Agent { .. }) => &r.agents,
        };
        entries.iter().filter_map(move |e| {
            let limits = index.grant_limits(e, target)?;
            index.grant_allows(e, target).then_some(Limit {
                key: &e.key,
                policy: &index.config.policies[e.policy].name,
                limits,
            })
        })
    }

    /// For a model call, the budgets of every policy that names the caller; none otherwise.
    pub fn budgets(&self) -> impl Iterator<Item = Budget<'a>> + use<'a> {
        let index = self.index;
        let entries: &'a [BudgetEntry] = match (self.rules, self.target) {
            (Some(r), Target::Model(_)) => &r.budgets,
            _ => &[],
        };
        entries.iter().map(move |e| {
            let policy = &index.config.policies[e.policy];
            Budget { key: &e.key, policy: &policy.name, budget: &policy.budgets[e.index] }
        })
    }
}

impl fmt::Debug for Allowed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Allowed")
            .field("target", &self.target)
            .field("by_default", &self.by_default())
            .field("limits", &self.limits().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// No policy names the caller and the gateway's `defaultAction` is `Deny`.
    DefaultDeny,
    /// Policies name the caller but none grants the target.
    NotGranted,
    /// Policies grant the peer agent, but not the skill the call invokes.
    SkillNotGranted,
    /// Policies grant the peer agent only for listed skills, and the call's skill is unknown.
    SkillUnknown,
}

impl DenyReason {
    /// A low-cardinality name for metrics and logs.
    pub fn category(self) -> &'static str {
        match self {
            DenyReason::DefaultDeny => "default-deny",
            DenyReason::NotGranted => "not-granted",
            DenyReason::SkillNotGranted => "skill-not-granted",
            DenyReason::SkillUnknown => "skill-unknown",
        }
    }
}

/// A refused call; its [`Display`](fmt::Display) is the message for the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denied<'a> {
    /// The caller.
    pub subject: &'a str,
    /// What it asked for.
    pub target: Target<'a>,
    /// Why it was refused.
    pub reason: DenyReason,
}

impl fmt::Display for Denied<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = Caller(self.subject);
        match self.reason {
            DenyReason::DefaultDeny => write!(
                f,
                "no AgentPolicy names caller '{}' and the gateway's defaultAction is Deny",
                self.subject
            ),
            DenyReason::NotGranted => {
                write!(f, "{who} is not granted {} by any AgentPolicy", self.target)
            }
            DenyReason::SkillNotGranted => match self.target {
                Target::Agent { agent, skill: Some(skill) } => {
                    write!(f, "{who} is not granted skill '{skill}' of agent '{agent}' by any AgentPolicy")
                }
                t => write!(f, "{who} is not granted {t} by any AgentPolicy"),
            },
            DenyReason::SkillUnknown => write!(
                f,
                "{who} is granted {} only for some skills, and the skill this call invokes is not known",
                self.target
            ),
        }
    }
}

/// `agent 'x'`, or `caller 'anonymous'`.
struct Caller<'a>(&'a str);

impl fmt::Display for Caller<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == ANONYMOUS { write!(f, "caller '{ANONYMOUS}'") } else { write!(f, "agent '{}'", self.0) }
    }
}

/// One grant of a policy, as it applies to one subject.
#[derive(Debug)]
struct GrantEntry {
    /// Index into the config's policies.
    policy: usize,
    /// Index into that policy's models, tools or agents.
    index: usize,
    /// `<grant id>/<subject>`.
    key: String,
}

/// One budget of a policy, as it applies to one subject.
#[derive(Debug)]
struct BudgetEntry {
    policy: usize,
    index: usize,
    key: String,
}

/// Everything the policies naming one subject grant it.
#[derive(Debug, Default)]
struct SubjectRules {
    /// Indices into the config's policies, in order.
    policies: Vec<usize>,
    models: Vec<GrantEntry>,
    tools: Vec<GrantEntry>,
    agents: Vec<GrantEntry>,
    budgets: Vec<BudgetEntry>,
}

/// A [`PolicyConfig`], indexed for cheap queries. Owns a copy of the config; answers borrow from
/// the index.
#[derive(Debug)]
pub struct PolicyIndex {
    config: PolicyConfig,
    /// Virtual-key hash → index into `config.subjects`.
    virtual_keys: HashMap<String, usize>,
    /// Issuer → subject claim → index into `config.subjects`.
    jwts: HashMap<String, HashMap<String, usize>>,
    /// Namespace → name → index into `config.subjects`.
    service_accounts: HashMap<String, HashMap<String, usize>>,
    /// Subjects named by at least one policy.
    named: HashMap<String, SubjectRules>,
    /// Known subjects and named subjects, sorted, without duplicates.
    subject_names: Vec<String>,
}

impl PolicyIndex {
    /// Indexes a config. Cost: linear in the size of the config times the subjects per policy.
    pub fn new(config: &PolicyConfig) -> Self {
        let config = config.clone();
        let mut virtual_keys = HashMap::new();
        let mut jwts: HashMap<String, HashMap<String, usize>> = HashMap::new();
        let mut service_accounts: HashMap<String, HashMap<String, usize>> = HashMap::new();
        for (i, subject) in config.subjects.iter().enumerate() {
            for identity in &subject.identities {
                match identity {
                    IdentityConfig::VirtualKey { hash } => {
                        virtual_keys.entry(hash.clone()).or_insert(i);
                    }
                    IdentityConfig::Jwt { issuer, subject } => {
                        jwts.entry(issuer.clone()).or_default().entry(subject.clone()).or_insert(i);
                    }
                    IdentityConfig::ServiceAccount { namespace, name } => {
                        service_accounts
                            .entry(namespace.clone())
                            .or_default()
                            .entry(name.clone())
                            .or_insert(i);
                    }
                }
            }
        }

        let mut named: HashMap<String, SubjectRules> = HashMap::new();
        for (p, policy) in config.policies.iter().enumerate() {
            for subject in &policy.subjects {
                let rules = named.entry(subject.clone()).or_default();
                if rules.policies.last() == Some(&p) {
                    continue; // a subject listed twice by one policy
                }
                rules.policies.push(p);
                let entries = |ids: Vec<&str>| -> Vec<GrantEntry> {
                    let key = |id: &str| format!("{id}/{subject}");
                    ids.into_iter()
                        .enumerate()
                        .map(|(index, id)| GrantEntry { policy: p, index, key: key(id) })
                        .collect()
                };
                rules.models.extend(entries(policy.models.iter().map(|g| g.id.as_str()).collect()));
                rules.tools.extend(entries(policy.tools.iter().map(|g| g.id.as_str()).collect()));
                rules.agents.extend(entries(policy.agents.iter().map(|g| g.id.as_str()).collect()));
                rules.budgets.extend(policy.budgets.iter().enumerate().map(|(index, b)| BudgetEntry {
                    policy: p,
                    index,
                    key: budget_key(b, subject),
                }));
            }
        }

        let mut subject_names: Vec<String> =
            config.subjects.iter().map(|s| s.name.clone()).chain(named.keys().cloned()).collect();
        subject_names.sort();
        subject_names.dedup();

        PolicyIndex { config, virtual_keys, jwts, service_accounts, named, subject_names }
    }

    /// The config this index was built from.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The gateway's default for callers no policy names.
    pub fn default_action(&self) -> DefaultAction {
        self.config.default_action
    }

    /// The subject a credential identifies, or `None` if it identifies nobody.
    pub fn identify(&self, credential: Credential<'_>) -> Option<&str> {
        let i = match credential {
            Credential::VirtualKey { key, salt_hex } => {
                *self.virtual_keys.get(&hash_virtual_key(salt_hex, key))?
            }
            Credential::Jwt { issuer, subject } => *self.jwts.get(issuer)?.get(subject)?,
            Credential::ServiceAccount { namespace, name } => {
                *self.service_accounts.get(namespace)?.get(name)?
            }
        };
        Some(&self.config.subjects[i].name)
    }

    /// Every subject the config knows (Agents with identities, and names policies use), sorted.
    pub fn subjects(&self) -> impl Iterator<Item = &str> {
        self.subject_names.iter().map(String::as_str)
    }

    /// The policies that name `subject`, in config order; empty if none does.
    pub fn policies_of(&self, subject: &str) -> impl Iterator<Item = &str> {
        self.named
            .get(subject)
            .map_or(&[][..], |r| &r.policies[..])
            .iter()
            .map(|&p| self.config.policies[p].name.as_str())
    }

    /// Whether at least one policy names `subject` (so the default action does not apply to it).
    pub fn is_named(&self, subject: &str) -> bool {
        self.named.contains_key(subject)
    }

    /// The known subjects ([`PolicyIndex::subjects`]) that may do `target`, sorted, for
    /// `cairn explain who-can`. Under `defaultAction: Allow` every caller no policy names may do
    /// it too ([`ANONYMOUS`] and unknown names included), which this list cannot enumerate.
    pub fn who_can(&self, target: Target<'_>) -> Vec<&str> {
        self.subjects().filter(|s| self.check(s, target).is_allowed()).collect()
    }

    /// May `subject` use the model the client requested as `model`?
    pub fn check_model<'a>(&'a self, subject: &'a str, model: &'a str) -> Decision<'a> {
        self.check(subject, Target::Model(model))
    }

    /// May `subject` call tool `tool` (unprefixed) of the MCPServer named `server`?
    pub fn check_tool<'a>(&'a self, subject: &'a str, server: &'a str, tool: &'a str) -> Decision<'a> {
        self.check(subject, Target::Tool { server, tool })
    }

    /// May `subject` call peer agent `agent`, invoking `skill` (`None`: not known)?
    pub fn check_agent<'a>(
        &'a self,
        subject: &'a str,
        agent: &'a str,
        skill: Option<&'a str>,
    ) -> Decision<'a> {
        self.check(subject, Target::Agent { agent, skill })
    }

    /// May `subject` do `target`?
    pub fn check<'a>(&'a self, subject: &'a str, target: Target<'a>) -> Decision<'a> {
        let Some(rules) = self.named.get(subject) else {
            return match self.config.default_action {
                DefaultAction::Allow => Decision::Allow(Allowed { target, rules: None, index: self }),
                DefaultAction::Deny => {
                    Decision::Deny(Denied { subject, target, reason: DenyReason::DefaultDeny })
                }
            };
        };
        let entries = match target {
            Target::Model(_) => &rules.models,
            Target::Tool { .. } => &rules.tools,
            Target::Agent { .. } => &rules.agents,
        };
        if entries.iter().any(|e| self.grant_allows(e, target)) {
            return Decision::Allow(Allowed { target, rules: Some(rules), index: self });
        }
        let reason = match target {
            Target::Agent { agent, skill } => {
                let policies = &self.config.policies;
                let mut for_agent = entries
                    .iter()
                    .map(|e| &policies[e.policy].agents[e.index])
                    .filter(|g| g.agent == agent)
                    .peekable();
                match (for_agent.peek().is_some(), skill) {
                    (false, _) => DenyReason::NotGranted,
                    (true, Some(_)) => DenyReason::SkillNotGranted,
                    (true, None) => DenyReason::SkillUnknown,
                }
            }
            _ => DenyReason::NotGranted,
        };
        Decision::Deny(Denied { subject, target, reason })
    }

    /// Whether the grant `e` (of the kind `target` asks for) allows `target`.
    fn grant_allows(&self, e: &GrantEntry, target: Target<'_>) -> bool {
        let policy = &self.config.policies[e.policy];
        match target {
            Target::Model(model) => glob_match(&policy.models[e.index].pattern, model),
            Target::Tool { server, tool } => {
                let g = &policy.tools[e.index];
                g.server == server && g.tools.iter().any(|t| glob_match(t, tool))
            }
            Target::Agent { agent, skill } => {
                let g = &policy.agents[e.index];
                g.agent == agent
                    && (g.skills.is_empty()
                        || skill.is_some_and(|s| g.skills.iter().any(|k| glob_match(k, s))))
            }
        }
    }

    /// The limits of the grant `e` (of the kind `target` asks for).
    fn grant_limits(&self, e: &GrantEntry, target: Target<'_>) -> Option<&LimitsConfig> {
        let policy = &self.config.policies[e.policy];
        match target {
            Target::Model(_) => policy.models[e.index].limits.as_ref(),
            Target::Tool { .. } => policy.tools[e.index].limits.as_ref(),
            Target::Agent { .. } => policy.agents[e.index].limits.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests;
