//! `cairn explain`: what may an agent do, and who may use a tool, model or agent — answered from
//! the compiled configs, with the same policy evaluation the gateways run.

use crate::compile::{CompiledGateway, Output};
use crate::config::{DefaultAction, IdentityConfig, Layer};
use crate::policy::{self, Basis, PolicyIndex, Target, glob_match, split_tool_name};
use std::fmt::Write as _;

/// What `who-can` asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A tool name as clients see it: `prefix__tool`, or the tool's own name on a server whose
    /// names pass through.
    Tool(&'a str),
    /// A model name as clients request it.
    Model(&'a str),
    /// A peer agent, optionally one skill.
    Agent(&'a str, Option<&'a str>),
}

/// Errors of `cairn explain`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExplainError {
    /// No gateway of the namespace knows the agent.
    #[error("no Agent named {name:?} in namespace {namespace:?}{hint}")]
    UnknownAgent {
        /// The name asked for.
        name: String,
        /// The namespace searched.
        namespace: String,
        /// Known names, for the message.
        hint: String,
    },
    /// The namespace has no gateway.
    #[error("namespace {0:?} has no AIGateway, MCPGateway or AgentGateway that compiled")]
    NoGateways(String),
}

fn gateways<'a>(out: &'a Output, namespace: &str) -> Vec<&'a CompiledGateway> {
    out.gateways.iter().filter(|g| g.config.gateway.namespace == namespace).collect()
}

pub fn kind(layer: Layer) -> &'static str {
    match layer {
        Layer::Ai => "AIGateway",
        Layer::Mcp => "MCPGateway",
        Layer::Agent => "AgentGateway",
    }
}

fn usd(v: f64) -> String {
    format!("${v:.2}")
}

/// Everything agent `name` may do on the gateways of `namespace`.
pub fn agent(out: &Output, namespace: &str, name: &str) -> Result<String, ExplainError> {
    let gws = gateways(out, namespace);
    let Some(first) = gws.first() else { return Err(ExplainError::NoGateways(namespace.into())) };
    let Some(subject) = first.config.policy.subjects.iter().find(|s| s.name == name) else {
        let known: Vec<&str> = first.config.policy.subjects.iter().map(|s| s.name.as_str()).collect();
        let hint = if known.is_empty() { String::new() } else { format!(" (known: {})", known.join(", ")) };
        return Err(ExplainError::UnknownAgent { name: name.into(), namespace: namespace.into(), hint });
    };
    let mut s = String::new();
    let _ = writeln!(s, "Agent {name} (namespace {namespace})");
    let ids: Vec<String> = subject
        .identities
        .iter()
        .map(|i| match i {
            IdentityConfig::ServiceAccount { namespace, name } => {
                format!("ServiceAccount {namespace}/{name}")
            }
            IdentityConfig::Jwt { issuer, subject } => format!("JWT {issuer} sub={subject}"),
            IdentityConfig::VirtualKey { .. } => "virtual key".into(),
        })
        .collect();
    let _ = writeln!(
        s,
        "  identities: {}",
        if ids.is_empty() { "none (cannot call gateways)".into() } else { ids.join(", ") }
    );

    let index = PolicyIndex::new(&first.config.policy);
    let eff = index.effective(name);
    let _ = writeln!(
        s,
        "  policies:   {}",
        if eff.policies.is_empty() { "none names this agent".into() } else { eff.policies.join(", ") }
    );
    if eff.basis == Basis::Policies {
        let models: Vec<String> =
            eff.models.iter().map(|m| format!("{} ({})", m.pattern, m.policy)).collect();
        let tools: Vec<String> = eff.tools.iter().map(|t| format!("{} ({})", t.tool, t.policy)).collect();
        let agents: Vec<String> = eff
            .agents
            .iter()
            .map(|a| {
                let skills = if a.skills.is_empty() {
                    "all skills".into()
                } else {
                    format!("skills {}", a.skills.join(", "))
                };
                format!("{} [{skills}] ({})", a.agent, a.policy)
            })
            .collect();
        for (label, list) in [("models", models), ("tools", tools), ("agents", agents)] {
            let _ = writeln!(
                s,
                "  {:<11} {}",
                format!("{label}:"),
                if list.is_empty() { "none".into() } else { list.join(", ") }
            );
        }
        for l in &eff.limits {
            let mut parts = Vec::new();
            if let Some(r) = l.limits.requests_per_minute {
                parts.push(format!("{r} requests/min"));
            }
            if let Some(t) = l.limits.tokens_per_minute {
                parts.push(format!("{t} tokens/min"));
            }
            let _ = writeln!(s, "  limit:      {}: {} ({})", l.applies_to, parts.join(", "), l.policy);
        }
        for b in &eff.budgets {
            let _ = writeln!(
                s,
                "  budget:     {} per {:?}, {:?}, {:?} ({})",
                usd(b.budget.amount_usd),
                b.budget.window,
                b.budget.scope,
                b.budget.action,
                b.policy
            );
        }
    }
    let _ = writeln!(s, "  on gateways:");
    for g in &gws {
        let idx = PolicyIndex::new(&g.config.policy);
        let what = match (idx.is_named(name), g.config.policy.default_action) {
            (true, _) => reachable(g, &idx, name),
            (false, DefaultAction::Allow) => "everything it serves, unlimited (defaultAction Allow)".into(),
            (false, DefaultAction::Deny) => "nothing (no policy names it; defaultAction Deny)".into(),
        };
        let _ = writeln!(s, "    {} {}: {what}", kind(g.config.gateway.layer), g.config.gateway.name);
    }
    Ok(s)
}

/// What a named subject can reach on one gateway, concretely where the config knows names.
fn reachable(g: &CompiledGateway, idx: &PolicyIndex, name: &str) -> String {
    let list: Vec<String> = match g.config.gateway.layer {
        Layer::Ai => served_models(g).into_iter().filter(|m| idx.check_model(name, m).is_allowed()).collect(),
        Layer::Mcp => {
            let servers = g.config.mcp.as_ref().map(|m| m.servers.as_slice()).unwrap_or_default();
            idx.effective(name)
                .tools
                .into_iter()
                .filter(|t| servers.iter().any(|s| s.name == t.server))
                .map(|t| t.tool)
                .collect()
        }
        Layer::Agent => g
            .config
            .agent
            .iter()
            .flat_map(|a| &a.agents)
            .filter(|a| idx.effective(name).agents.iter().any(|e| e.agent == a.name))
            .map(|a| a.name.clone())
            .collect(),
    };
    if list.is_empty() { "nothing granted here".into() } else { list.join(", ") }
}

/// Model names (exact, or globs) that a gateway's rules serve.
pub fn served_models(g: &CompiledGateway) -> Vec<String> {
    let mut v: Vec<String> =
        g.config.ai.iter().flat_map(|a| &a.rules).flat_map(|r| &r.matches).map(|m| m.model.clone()).collect();
    v.sort();
    v.dedup();
    v
}

/// Who may use a tool, a model or an agent on the gateways of `namespace`.
pub fn who_can(out: &Output, namespace: &str, what: Subject<'_>) -> Result<String, ExplainError> {
    let gws = gateways(out, namespace);
    if gws.is_empty() {
        return Err(ExplainError::NoGateways(namespace.into()));
    }
    let (layer, label, target) = match what {
        // Which server a tool name belongs to depends on the gateway's servers: see the loop.
        Subject::Tool(t) => (Layer::Mcp, format!("tool {t}"), Target::Tool { server: "", tool: t }),
        Subject::Model(m) => (Layer::Ai, format!("model {m}"), Target::Model(m)),
        Subject::Agent(a, skill) => (
            Layer::Agent,
            match skill {
                Some(sk) => format!("agent {a} (skill {sk})"),
                None => format!("agent {a}"),
            },
            Target::Agent { agent: a, skill },
        ),
    };
    let mut s = format!("Who may use {label} in namespace {namespace}:\n");
    let mut any_gateway = false;
    for g in gws.iter().filter(|g| g.config.gateway.layer == layer) {
        any_gateway = true;
        let head = format!("  {} {}: ", kind(layer), g.config.gateway.name);
        let target = match what {
            Subject::Tool(t) => match tool_target(g, t) {
                Ok(target) => target,
                Err(why) => {
                    let _ = writeln!(s, "{head}nobody: {why}");
                    continue;
                }
            },
            _ => target,
        };
        if let Some(why) = not_served(g, target) {
            let _ = writeln!(s, "{head}nobody: {why}");
            continue;
        }
        let idx = PolicyIndex::new(&g.config.policy);
        let mut who: Vec<String> = idx
            .subjects()
            .filter(|sub| idx.check(sub, target).is_allowed())
            .map(|sub| {
                let via: Vec<&str> = idx.policies_of(sub).collect();
                if idx.is_named(sub) {
                    format!("{sub} (via {})", via.join(", "))
                } else {
                    format!("{sub} (defaultAction Allow)")
                }
            })
            .collect();
        if g.config.policy.default_action == DefaultAction::Allow {
            who.push("any caller no AgentPolicy names (defaultAction Allow)".into());
            if g.config.auth.allow_anonymous {
                who.push(format!("{} callers without credentials", policy::ANONYMOUS));
            }
        }
        let _ = writeln!(s, "{head}{}", if who.is_empty() { "nobody".into() } else { who.join(", ") });
    }
    if !any_gateway {
        let _ = writeln!(s, "  no {} in this namespace", kind(layer));
    }
    Ok(s)
}

/// The server and tool a client-facing tool name names on an MCP gateway, as the gateway routes
/// it: `prefix__tool` to the server with that prefix, any other name to the server whose names
/// pass through; `Err` says why no server serves it.
fn tool_target<'a>(g: &'a CompiledGateway, name: &'a str) -> Result<Target<'a>, Unrouted> {
    let servers = g.config.mcp.as_ref().map(|m| m.servers.as_slice()).unwrap_or_default();
    let with_prefix = |p: &str| servers.iter().find(|s| s.prefix == p);
    if let Some((p, tool)) = split_tool_name(name)
        && let Some(s) = with_prefix(p)
    {
        return Ok(Target::Tool { server: &s.name, tool });
    }
    match with_prefix("") {
        Some(s) => Ok(Target::Tool { server: &s.name, tool: name }),
        None => Err(Unrouted(name.to_string())),
    }
}

/// A tool name no MCPServer of a gateway serves.
#[derive(Debug, thiserror::Error)]
#[error(
    "no MCPServer on this gateway serves {0:?}: use <prefix>__<tool> (no server here passes names through unprefixed)"
)]
struct Unrouted(String);

/// Why a gateway does not serve the target at all, whatever the policy says.
fn not_served(g: &CompiledGateway, target: Target<'_>) -> Option<String> {
    match target {
        Target::Tool { server, tool } => {
            let servers = g.config.mcp.as_ref().map(|m| m.servers.as_slice()).unwrap_or_default();
            let Some(server) = servers.iter().find(|s| s.name == server) else {
                return Some(format!("no MCPServer {server:?} on this gateway"));
            };
            if !server.allow.iter().any(|p| glob_match(p, tool))
                || server.deny.iter().any(|p| glob_match(p, tool))
            {
                return Some(format!(
                    "MCPServer {:?} hides {tool:?} with its tools allow/deny filter",
                    server.name
                ));
            }
            None
        }
        Target::Model(m) => {
            let served = g
                .config
                .ai
                .iter()
                .flat_map(|a| &a.rules)
                .flat_map(|r| &r.matches)
                .any(|x| glob_match(&x.model, m));
            (!served).then(|| "no AIRoute on this gateway matches the model".to_string())
        }
        Target::Agent { agent, .. } => {
            let published = g.config.agent.iter().flat_map(|a| &a.agents).any(|a| a.name == agent);
            (!published).then(|| format!("Agent {agent:?} is not published on this gateway"))
        }
    }
}

/// Rows as columns padded to their widest cell, each line indented by two spaces.
fn table(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    for r in rows {
        let cells: Vec<String> =
            r.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        let _ = writeln!(s, "  {}", cells.join("  ").trim_end());
    }
    s
}

/// `cairn spend` as a table: spend per gateway, agent and model, the total, and the budgets.
pub fn spend_table(r: &crate::spend::Report) -> String {
    let mut s =
        format!("Spend in namespace {}, window {} (from {}):\n", r.namespace, r.window, r.stores.join(", "));
    if r.spend.is_empty() {
        let _ = writeln!(s, "  nothing recorded");
    } else {
        let mut rows = vec![vec!["GATEWAY".into(), "AGENT".into(), "MODEL".into(), "USD".into()]];
        rows.extend(
            r.spend.iter().map(|l| vec![l.gateway.clone(), l.agent.clone(), l.model.clone(), l.usd.clone()]),
        );
        rows.push(vec!["total".into(), String::new(), String::new(), r.total_usd.clone()]);
        s.push_str(&table(&rows));
    }
    if !r.budgets.is_empty() {
        let _ = writeln!(s, "Budgets in {}:", r.window);
        let mut rows = vec![vec!["POLICY".into(), "BUDGET".into(), "SUBJECT".into(), "USED/LIMIT".into()]];
        rows.extend(r.budgets.iter().map(|b| {
            vec![
                b.policy.clone(),
                b.budget.to_string(),
                b.subject.clone().unwrap_or_else(|| "(shared)".into()),
                format!("{}/{} USD", b.used_usd, b.limit_usd),
            ]
        }));
        s.push_str(&table(&rows));
    }
    if !r.memory.is_empty() {
        let _ = writeln!(s, "Not included: AIGateway {} counts in memory.", r.memory.join(", "));
    }
    s
}
