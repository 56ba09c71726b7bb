//! Status: what each object's `status` should say (pure), and writing it (server-side apply on
//! the status subresource with the operator's one field manager) only when it changed.
//!
//! Conditions use the Gateway API vocabulary, each with the generation it describes; a
//! condition whose status did not change keeps its `lastTransitionTime`, so an unchanged
//! object's status is byte-for-byte the same and nothing is written. When a condition turns
//! bad (or its reason or message changes while bad), one Warning Event says so.
//!
//! - Gateways: `Accepted`, `ResolvedRefs`, `Programmed`, `Ready`, and kstatus's `Reconciling` /
//!   `Stalled`; address, replicas, ready replicas, config hash, attached objects.
//! - AIRoute, AIBackend, MCPServer, Agent, AgentPolicy: `Accepted` and `ResolvedRefs` from the
//!   compile diagnostics (field path and missing object in the message), kstatus's `Stalled`
//!   (True while either is False, so Flux fails on a broken route too), and for objects
//!   attached to gateways which gateways serve them; an AgentPolicy's `effective` and `Ready`
//!   ([`super::answers::effective`]). What comes from outside the cluster (tools, cards, spend)
//!   is added by [`super::answers`] before the write, and its changes become Events there.

use super::compile::Compiled;
use super::context::Context;
use super::error::Error;
use crate::api::{GatewayAttachment, Object};
use crate::compile::{Diagnostic, Reason, Severity};
use crate::config::Layer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

pub mod cond;

pub use cond::Cond;

fn join(diags: &[&Diagnostic]) -> String {
    diags.iter().map(|d| format!("{}: {}", d.field, d.message)).collect::<Vec<_>>().join("; ")
}

/// `Accepted` and `ResolvedRefs` from an object's diagnostics; `served` summarises which
/// gateways serve it, for the `Accepted` message.
fn diagnostic_conditions(diags: &[&Diagnostic], served: Option<String>) -> Vec<Cond> {
    let errors = |f: fn(Reason) -> bool| -> Vec<&Diagnostic> {
        diags.iter().copied().filter(|d| d.severity == Severity::Error && f(d.reason)).collect()
    };
    let invalid = errors(|r| matches!(r, Reason::Invalid | Reason::Conflict | Reason::Unsupported));
    let missing = errors(|r| r == Reason::RefNotFound);
    let warnings: Vec<&Diagnostic> =
        diags.iter().copied().filter(|d| d.severity == Severity::Warning).collect();
    let accepted = if invalid.is_empty() {
        Cond::new("Accepted", true, "Accepted", served.unwrap_or_else(|| "Valid".into()))
    } else {
        let conflict = invalid.iter().any(|d| d.reason == Reason::Conflict);
        Cond::new("Accepted", false, if conflict { "Conflict" } else { "Invalid" }, join(&invalid))
    };
    let resolved = if missing.is_empty() {
        let mut m = "Every referenced object and Secret exists".to_string();
        if !warnings.is_empty() {
            m = format!("{m}; warning: {}", join(&warnings));
        }
        Cond::new("ResolvedRefs", true, "ResolvedRefs", m)
    } else {
        Cond::new("ResolvedRefs", false, "RefNotFound", join(&missing))
    };
    vec![accepted, resolved]
}

/// kstatus's `Stalled` for a non-gateway object: True with the cause while `Accepted` or
/// `ResolvedRefs` is False. kstatus (Flux, `kubectl wait`) reads only Ready, Reconciling and
/// Stalled: without it a route to a missing backend would be Current to it. Nothing progresses
/// until the spec or the object it names changes.
fn stalled(conditions: &[Cond]) -> Cond {
    match conditions.iter().find(|c| !c.ok) {
        Some(bad) => Cond::new("Stalled", true, &bad.reason, format!("{}: {}", bad.type_, bad.message)),
        None => Cond::new("Stalled", false, "Valid", "Accepted, and every reference resolved"),
    }
}

/// Names of a gateway's kind and layer's config section listing objects of `kind`.
fn serves(compiled: &Compiled, gateway: &str, kind: &str, name: &str) -> Option<bool> {
    let layer = match kind {
        "AIRoute" | "AIBackend" => Layer::Ai,
        "MCPServer" => Layer::Mcp,
        _ => Layer::Agent,
    };
    let cfg = &compiled.gateway(gateway, layer)?.config;
    Some(match kind {
        "AIRoute" => cfg.ai.as_ref().is_some_and(|a| a.rules.iter().any(|r| r.route == name)),
        "AIBackend" => cfg.ai.as_ref().is_some_and(|a| a.backends.iter().any(|b| b.name == name)),
        "MCPServer" => cfg.mcp.as_ref().is_some_and(|m| m.servers.iter().any(|s| s.name == name)),
        _ => cfg.agent.as_ref().is_some_and(|a| a.agents.iter().any(|x| x.name == name)),
    })
}

/// Which gateways an object is attached to and whether each serves it.
fn attachments(obj: &Object, compiled: &Compiled) -> Vec<GatewayAttachment> {
    let (kind, gw_kind, refs): (&str, &str, Vec<&str>) = match obj {
        Object::AIRoute(r) => {
            ("AIRoute", "AIGateway", r.spec.gateway_refs.iter().map(|r| r.name.as_str()).collect())
        }
        Object::MCPServer(s) => {
            ("MCPServer", "MCPGateway", s.spec.gateway_refs.iter().map(|r| r.name.as_str()).collect())
        }
        Object::Agent(a) => (
            "Agent",
            "AgentGateway",
            a.spec.a2a.iter().flat_map(|e| e.gateway_refs.iter().map(|r| r.name.as_str())).collect(),
        ),
        Object::AIBackend(_) => {
            // A backend is attached through routes: list the AIGateways whose config uses it.
            let mut out: Vec<GatewayAttachment> = compiled
                .output
                .gateways
                .iter()
                .filter(|g| g.config.gateway.layer == Layer::Ai)
                .filter(|g| serves(compiled, &g.config.gateway.name, "AIBackend", obj.name()) == Some(true))
                .map(|g| GatewayAttachment {
                    name: g.config.gateway.name.clone(),
                    accepted: true,
                    message: None,
                })
                .collect();
            out.sort();
            return out;
        }
        _ => return Vec::new(),
    };
    let mut out: Vec<GatewayAttachment> = Vec::new();
    for name in refs {
        if out.iter().any(|a| a.name == name) {
            continue;
        }
        let (accepted, message) = match serves(compiled, name, kind, obj.name()) {
            Some(true) => (true, None),
            Some(false) => {
                (false, Some(format!("{gw_kind} {name:?} leaves this {kind} out: see its conditions")))
            }
            None => (
                false,
                Some(format!(
                    "{gw_kind} {name:?} has no valid config in this namespace (missing, or see its status)"
                )),
            ),
        };
        out.push(GatewayAttachment { name: name.to_string(), accepted, message });
    }
    out
}

fn served_summary(kind: &str, list: &[GatewayAttachment]) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    let gw_kind = match kind {
        "AIRoute" | "AIBackend" => "AIGateway",
        "MCPServer" => "MCPGateway",
        _ => "AgentGateway",
    };
    let names =
        |ok: bool| list.iter().filter(|a| a.accepted == ok).map(|a| a.name.as_str()).collect::<Vec<_>>();
    let (yes, no) = (names(true), names(false));
    let mut m = if yes.is_empty() {
        format!("Valid, but served by no {gw_kind} yet")
    } else {
        format!("Served by {gw_kind} {}", yes.join(", "))
    };
    if !no.is_empty() {
        m.push_str(&format!("; not by {}", no.join(", ")));
    }
    Some(m)
}

/// The status an AIRoute, AIBackend, MCPServer, Agent or AgentPolicy should have, without the
/// generation and times: `conditions` plus the kind's own fields.
pub fn desired_attached(obj: &Object, compiled: &Compiled) -> Value {
    let diags = compiled.diagnostics(&obj.object_ref());
    let gateways = attachments(obj, compiled);
    let mut conditions = diagnostic_conditions(&diags, served_summary(obj.kind(), &gateways));
    conditions.push(stalled(&conditions));
    let mut status = Map::new();
    status.insert("conditions".into(), Value::Array(conditions.iter().map(Cond::to_json).collect()));
    match obj {
        Object::AgentPolicy(_) => {
            super::answers::effective::fill(
                &obj.object_ref(),
                &compiled.output,
                conditions[0].ok,
                &mut status,
            );
        }
        Object::Agent(_) => {
            let mut policies: Vec<&str> = compiled
                .output
                .effective
                .iter()
                .filter(|(p, e)| p.namespace == obj.namespace() && e.subjects.iter().any(|s| s == obj.name()))
                .map(|(p, _)| p.name.as_str())
                .collect();
            policies.sort();
            if !policies.is_empty() {
                status.insert("policies".into(), json!(policies));
            }
            if !gateways.is_empty() {
                status.insert("gateways".into(), json!(gateways));
            }
        }
        _ => {
            if !gateways.is_empty() {
                status.insert("gateways".into(), json!(gateways));
            }
        }
    }
    Value::Object(status)
}

/// Fields of each kind's status the operator writes (what it leaves out it removes; fields
/// outside these are not its own).
pub fn owned_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "AIGateway" | "MCPGateway" | "AgentGateway" => &[
            "conditions",
            "observedGeneration",
            "address",
            "replicas",
            "readyReplicas",
            "configHash",
            "attached",
        ],
        "AgentPolicy" => {
            &["conditions", "observedGeneration", "effective", "spend", "spendOmitted", "spendSummary"]
        }
        "Agent" => &["conditions", "observedGeneration", "policies", "gateways", "card", "identities"],
        "MCPServer" => &[
            "conditions",
            "observedGeneration",
            "gateways",
            "tools",
            "toolsOmitted",
            "toolCount",
            "toolsSeenAt",
            "protocolVersion",
        ],
        _ => &["conditions", "observedGeneration", "gateways"],
    }
}

/// How writing a gateway's children went, for its `Programmed` and `Stalled` conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Programmed {
    /// Everything written; the config's hash.
    Yes(String),
    /// The spec does not compile (see the diagnostics).
    NotCompiled,
    /// Cannot be rendered or is refused by the API server until the spec changes.
    Invalid {
        /// PascalCase reason.
        reason: String,
        /// Why.
        message: String,
    },
}

/// What a gateway's status is computed from.
#[derive(Clone, Copy, Debug)]
pub struct GatewayFacts<'a> {
    /// The gateway object's name.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Layer.
    pub layer: Layer,
    /// Listener port.
    pub port: i32,
    /// Its diagnostics.
    pub diagnostics: &'a [&'a Diagnostic],
    /// Outcome of render + apply.
    pub programmed: &'a Programmed,
    /// Its Deployment, as the index last saw it.
    pub deployment: Option<&'a Deployment>,
    /// Objects attached, by kind.
    pub attached: &'a BTreeMap<String, i32>,
    /// The config hash in the current status (kept while a bad spec waits for an edit: the pods
    /// serve that config still).
    pub previous_hash: Option<&'a str>,
}

/// The first 12 hex digits of a config hash, as status shows it.
pub fn short_hash(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// A gateway's desired status, without generation and times.
pub fn desired_gateway(f: GatewayFacts<'_>) -> Value {
    let mut conds = diagnostic_conditions(f.diagnostics, None);
    if let Programmed::Invalid { reason, message } = f.programmed
        && reason == "Invalid"
        && conds[0].ok
    {
        conds[0] = Cond::new("Accepted", false, "Invalid", message.clone());
    }
    if conds[0].ok {
        conds[0].message = "The gateway's spec compiles".into();
    }
    let keeps = "; its pods keep serving the last config written";
    let programmed = match f.programmed {
        Programmed::Yes(hash) => Cond::new(
            "Programmed",
            true,
            "Programmed",
            format!("Config {} and the gateway's objects are written", short_hash(hash)),
        ),
        Programmed::NotCompiled => Cond::new(
            "Programmed",
            false,
            "Invalid",
            format!("The spec does not compile (see Accepted and ResolvedRefs){keeps}"),
        ),
        Programmed::Invalid { reason, message } => {
            Cond::new("Programmed", false, reason, format!("{message}{keeps}"))
        }
    };
    let stalled = !programmed.ok;
    let (desired, ready, updated, observed_current) = match f.deployment {
        Some(d) => {
            let s = d.status.clone().unwrap_or_default();
            let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let current = s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
            (desired, s.ready_replicas.unwrap_or(0), s.updated_replicas.unwrap_or(0), current)
        }
        None => (0, 0, 0, false),
    };
    let ready_cond = match f.deployment {
        None => Cond::new("Ready", false, "NoDeployment", "The gateway's Deployment is not written yet"),
        Some(_) if ready >= 1 => {
            Cond::new("Ready", true, "Ready", format!("{ready} of {desired} pods ready"))
        }
        Some(_) => Cond::new("Ready", false, "NoReadyPods", format!("0 of {desired} pods ready")),
    };
    let rolling = f.deployment.is_some() && (!observed_current || updated < desired || ready < desired);
    let reconciling = if stalled {
        Cond::new("Reconciling", false, "Stalled", "No progress until the spec changes")
    } else if f.deployment.is_none() {
        Cond::new("Reconciling", true, "Creating", "Writing the gateway's objects")
    } else if rolling {
        Cond::new(
            "Reconciling",
            true,
            "RollingOut",
            format!("{updated} of {desired} pods updated, {ready} ready"),
        )
    } else {
        Cond::new(
            "Reconciling",
            false,
            "Current",
            format!("{ready} of {desired} pods ready with the current spec"),
        )
    };
    let stalled_cond = if stalled {
        Cond::new("Stalled", true, &programmed.reason, programmed.message.clone())
    } else {
        Cond::new("Stalled", false, "Progressing", "The spec is programmed")
    };
    conds.extend([programmed, ready_cond, reconciling, stalled_cond]);

    let mut status = Map::new();
    status.insert("conditions".into(), Value::Array(conds.iter().map(Cond::to_json).collect()));
    status.insert("address".into(), json!(super::render::address(f.name, f.namespace, f.layer, f.port)));
    if let Some(d) = f.deployment {
        let s = d.status.clone().unwrap_or_default();
        status.insert("replicas".into(), json!(s.replicas.unwrap_or(0)));
        status.insert("readyReplicas".into(), json!(s.ready_replicas.unwrap_or(0)));
    }
    let hash = match f.programmed {
        Programmed::Yes(h) => Some(short_hash(h)),
        _ => f.previous_hash.map(str::to_string),
    };
    if let Some(h) = hash {
        status.insert("configHash".into(), json!(h));
    }
    if !f.attached.is_empty() {
        status.insert("attached".into(), json!(f.attached));
    }
    Value::Object(status)
}

/// Appends a condition to a desired status.
pub fn push_condition(
    desired: &mut Value,
    type_: &'static str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
) {
    if let Some(list) = desired.get_mut("conditions").and_then(Value::as_array_mut) {
        list.push(Cond::new(type_, ok, reason, message).to_json());
    }
}

/// Stamps conditions with the generation, keeping `lastTransitionTime` of each condition whose
/// status did not change.
pub fn stamp(desired: &mut Value, generation: Option<i64>, old: &[Condition], now: &Time) {
    if let Some(conds) = desired.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds {
            let t = c["type"].as_str().unwrap_or_default();
            let s = c["status"].as_str().unwrap_or_default();
            let since =
                old.iter().find(|o| o.type_ == t && o.status == s).map_or(now, |o| &o.last_transition_time);
            c["lastTransitionTime"] = json!(since);
            if let Some(g) = generation {
                c["observedGeneration"] = json!(g);
            }
        }
    }
    if let (Some(g), Some(m)) = (generation, desired.as_object_mut()) {
        m.insert("observedGeneration".into(), json!(g));
    }
}

/// The conditions in a stored status.
pub fn conditions_of(status: &Value) -> Vec<Condition> {
    status.get("conditions").and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default()
}

/// Writes `desired` (unstamped) as `obj`'s status if it differs from the stored one in the fields
/// the operator owns. Returns whether it wrote.
pub async fn write<K>(ctx: &Context, obj: &K, mut desired: Value) -> Result<bool, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let kind = super::compile::kind_label(&K::kind(&()));
    let name = obj.name_any();
    let stored = serde_json::to_value(obj).ok().and_then(|mut v| v.get_mut("status").map(Value::take));
    let stored = stored.unwrap_or(Value::Null);
    let old = conditions_of(&stored);
    stamp(&mut desired, obj.meta().generation, &old, &Time(Timestamp::now()));
    let owned = owned_fields(kind);
    let same = owned.iter().all(|f| stored.get(*f) == desired.get(*f));
    if same {
        return Ok(false);
    }
    if !ctx.leader.is_leader() {
        return Ok(false);
    }
    let body = json!({"apiVersion": crate::api::API_VERSION, "kind": kind, "status": desired});
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    api.patch_status(&name, &PatchParams::apply(super::render::FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(|source| Error::Status { kind, name: name.clone(), source })?;
    ctx.metrics.wrote(kind, "status");
    publish_problems(ctx, obj, &old, &conditions_of(&desired)).await;
    super::answers::events::publish(&ctx.recorder, obj, kind, &stored, &desired).await;
    Ok(true)
}

/// One Warning Event per condition that turned bad, or changed its reason or message while bad.
async fn publish_problems<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    old: &[Condition],
    new: &[Condition],
) {
    for c in new {
        let cond = Cond {
            type_: condition_type(&c.type_),
            ok: c.status == "True",
            reason: c.reason.clone(),
            message: c.message.clone(),
        };
        if !cond.is_bad() {
            continue;
        }
        // A stall has a cause among the other conditions, and that one's Event names it.
        let causes = ["Accepted", "ResolvedRefs", "Programmed"];
        if cond.type_ == "Stalled"
            && new.iter().any(|o| causes.contains(&o.type_.as_str()) && o.status == "False")
        {
            continue;
        }
        let before = old.iter().find(|o| o.type_ == c.type_);
        if before.is_some_and(|o| o.status == c.status && o.reason == c.reason && o.message == c.message) {
            continue;
        }
        let event = Event {
            type_: EventType::Warning,
            reason: c.reason.clone(),
            note: Some(format!("{}: {}", c.type_, c.message)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "publishing an Event failed");
        }
    }
}

fn condition_type(t: &str) -> &'static str {
    [
        "Accepted",
        "ResolvedRefs",
        "Programmed",
        "Ready",
        "Reconciling",
        "Stalled",
        "Discovered",
        "CardFetched",
        "SpendKnown",
    ]
    .into_iter()
    .find(|k| *k == t)
    .unwrap_or("Other")
}

#[cfg(test)]
mod tests;
