//! The compile step: resources in, one configuration per gateway out.
//!
//! [`compile`] is a pure function shared by the operator and local mode. It takes every Cairn
//! object of interest plus the Secrets they reference, and returns
//! - one [`CompiledGateway`] (config + credentials bundle) per AIGateway, MCPGateway and AgentGateway
//!   whose own spec resolves, and
//! - [`Diagnostic`]s on the objects that are wrong relative to others, each naming the field path.
//!
//! A bad object never breaks the config of the good ones beside it: a route to a missing backend
//! loses that backend (and the rule, when no backend is left); a policy naming an unknown agent
//! loses that subject; a server whose tool prefix is taken is left off that gateway. Whatever is
//! dropped is dropped on the side of less access, never more.
//!
//! Scope: a gateway serves the routes, servers and agents that name it in `gatewayRefs`, and the
//! Agents and AgentPolicies of its own namespace. Output is deterministic: objects are processed in
//! (namespace, name) order and every list in a config is sorted, so equal inputs give equal hashes.

mod agent;
mod ai;
mod egress;
mod gateway;
mod mcp;
mod subjects;

use crate::api::{self, Object, ObjectRef};
pub use crate::config::CompiledGateway;
use crate::config::Credentials;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// Secret data by (namespace, name), then key; values are decoded text.
pub type Secrets = BTreeMap<(String, String), BTreeMap<String, String>>;

/// Where the compiled configs will run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Gateway pods in a cluster: deployed MCP servers are reached through their Service.
    Cluster {
        /// Cluster DNS domain, usually `cluster.local`.
        domain: String,
    },
    /// `cairn run`: one local process; stdio MCP servers are run as child processes.
    Local,
}

/// What the compile step reads.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// Every Cairn object (any namespaces).
    pub objects: &'a [Object],
    /// Referenced Secrets.
    pub secrets: &'a Secrets,
    /// Target.
    pub mode: &'a Mode,
}

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The object (or the named part of it) is not served.
    Error,
    /// Served, but probably not as meant.
    Warning,
}

/// Which status condition a diagnostic turns false.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// A referenced object, Secret or key does not exist or has the wrong kind (`ResolvedRefs`).
    RefNotFound,
    /// The object conflicts with another (`Accepted`).
    Conflict,
    /// The object's content is not acceptable (`Accepted`).
    Invalid,
    /// Not supported where it runs (e.g. in local mode) (`Programmed`).
    Unsupported,
}

impl Reason {
    /// Low-cardinality name for metrics and events.
    pub fn category(self) -> &'static str {
        match self {
            Reason::RefNotFound => "ref_not_found",
            Reason::Conflict => "conflict",
            Reason::Invalid => "invalid",
            Reason::Unsupported => "unsupported",
        }
    }

    /// The Gateway-API condition type this reason sets to `False`.
    pub fn condition(self) -> &'static str {
        match self {
            Reason::RefNotFound => "ResolvedRefs",
            Reason::Conflict | Reason::Invalid => "Accepted",
            Reason::Unsupported => "Programmed",
        }
    }
}

/// A problem with one object, relative to the others.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// The offending object.
    pub object: ObjectRef,
    /// Field path within it, e.g. `spec.rules[0].backends[1].backendRef.name`.
    pub field: String,
    /// What is wrong, for a person.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
    /// Which condition it affects.
    pub reason: Reason,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = if self.severity == Severity::Warning { "warning: " } else { "" };
        write!(f, "{}: {}: {sev}{}", self.object, self.field, self.message)
    }
}

/// What the compile step returns.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// One entry per gateway that compiled, sorted by (namespace, name, layer).
    pub gateways: Vec<CompiledGateway>,
    /// Problems, sorted.
    pub diagnostics: Vec<Diagnostic>,
    /// What each AgentPolicy grants once resolved, for its status.
    pub effective: BTreeMap<ObjectRef, api::EffectiveGrants>,
    /// Every Secret (namespace, name) the compile looked up, found or not: the operator reads
    /// and watches exactly these.
    pub secrets_named: BTreeSet<(String, String)>,
}

impl Output {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    /// The compiled gateway `name` of `layer` in `namespace`, if its spec compiled.
    pub fn gateway(
        &self,
        namespace: &str,
        name: &str,
        layer: crate::config::Layer,
    ) -> Option<&CompiledGateway> {
        self.gateways.iter().find(|g| {
            g.config.gateway.namespace == namespace
                && g.config.gateway.name == name
                && g.config.gateway.layer == layer
        })
    }

    /// Diagnostics of one object.
    pub fn diagnostics_for<'a>(&'a self, object: &'a ObjectRef) -> impl Iterator<Item = &'a Diagnostic> {
        self.diagnostics.iter().filter(move |d| &d.object == object)
    }
}

/// Collects diagnostics during a compile.
#[derive(Default)]
pub(crate) struct Diags(Vec<Diagnostic>);

impl Diags {
    pub(crate) fn push(
        &mut self,
        obj: &Object,
        field: impl Into<String>,
        reason: Reason,
        message: impl Into<String>,
    ) {
        self.0.push(Diagnostic {
            object: obj.object_ref(),
            field: field.into(),
            message: message.into(),
            severity: Severity::Error,
            reason,
        });
    }

    pub(crate) fn warn(
        &mut self,
        obj: &Object,
        field: impl Into<String>,
        reason: Reason,
        message: impl Into<String>,
    ) {
        self.0.push(Diagnostic {
            object: obj.object_ref(),
            field: field.into(),
            message: message.into(),
            severity: Severity::Warning,
            reason,
        });
    }
}

/// Objects indexed for lookups by namespace and name.
pub(crate) struct Index<'a> {
    objects: Vec<&'a Object>,
    by_key: BTreeMap<(&'static str, &'a str, &'a str), &'a Object>,
    pub(crate) secrets: &'a Secrets,
    pub(crate) mode: &'a Mode,
    secrets_named: RefCell<BTreeSet<(String, String)>>,
}

impl<'a> Index<'a> {
    fn new(input: Input<'a>, diags: &mut Diags) -> Self {
        let mut objects: Vec<&Object> = input.objects.iter().collect();
        objects.sort_by(|a, b| (a.namespace(), a.name(), a.kind()).cmp(&(b.namespace(), b.name(), b.kind())));
        let mut by_key = BTreeMap::new();
        let mut kept = Vec::with_capacity(objects.len());
        for o in objects {
            if by_key.insert((o.kind(), o.namespace(), o.name()), o).is_some() {
                diags.push(
                    o,
                    "metadata.name",
                    Reason::Conflict,
                    format!("duplicate {} named {:?}", o.kind(), o.name()),
                );
                continue;
            }
            kept.push(o);
        }
        Index {
            objects: kept,
            by_key,
            secrets: input.secrets,
            mode: input.mode,
            secrets_named: Default::default(),
        }
    }

    pub(crate) fn get(&self, kind: &'static str, ns: &str, name: &str) -> Option<&'a Object> {
        self.by_key.get(&(kind, ns, name)).copied()
    }

    /// Every object in (namespace, name) order.
    pub(crate) fn all(&self) -> impl Iterator<Item = &'a Object> + '_ {
        self.objects.iter().copied()
    }

    /// Objects of one namespace.
    pub(crate) fn in_namespace<'s>(&'s self, ns: &'s str) -> impl Iterator<Item = &'a Object> + 's {
        self.objects.iter().copied().filter(move |o| o.namespace() == ns)
    }

    /// Which gateway kind, if any, has this name in this namespace: for "wrong layer" messages.
    pub(crate) fn gateway_kind_named(&self, ns: &str, name: &str) -> Option<&'static str> {
        ["AIGateway", "MCPGateway", "AgentGateway"].into_iter().find(|k| self.get(k, ns, name).is_some())
    }

    /// Looks a Secret key up, recording it in the bundle; `Err` is the diagnostic's reason.
    pub(crate) fn secret(
        &self,
        ns: &str,
        r: &api::SecretKeyRef,
        bundle: &mut Credentials,
    ) -> Result<crate::config::CredentialRef, SecretRefError> {
        let value = self.secret_value(ns, r)?;
        let id = format!("secret/{ns}/{}/{}", r.name, r.key);
        bundle.0.insert(id.clone(), value.to_string());
        Ok(crate::config::CredentialRef { id })
    }

    /// The value of a Secret key.
    pub(crate) fn secret_value(&self, ns: &str, r: &api::SecretKeyRef) -> Result<&'a str, SecretRefError> {
        self.secrets_named.borrow_mut().insert((ns.to_string(), r.name.clone()));
        let Some(data) = self.secrets.get(&(ns.to_string(), r.name.clone())) else {
            return Err(SecretRefError::NoSecret { name: r.name.clone(), namespace: ns.to_string() });
        };
        data.get(&r.key).map(String::as_str).ok_or_else(|| SecretRefError::NoKey {
            name: r.name.clone(),
            key: r.key.clone(),
            keys: data.keys().map(String::as_str).collect::<Vec<_>>().join(", "),
        })
    }
}

/// A Secret reference that resolves to nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SecretRefError {
    /// No such Secret.
    #[error("Secret {name:?} not found in namespace {namespace:?}")]
    NoSecret {
        /// Its name.
        name: String,
        /// Where it was looked for.
        namespace: String,
    },
    /// The Secret lacks the key.
    #[error("Secret {name:?} has no key {key:?} (it has: {keys})")]
    NoKey {
        /// The Secret.
        name: String,
        /// The key.
        key: String,
        /// The keys it has, comma-separated.
        keys: String,
    },
}

/// Compiles every gateway found in the input.
pub fn compile(input: Input<'_>) -> Output {
    let mut diags = Diags::default();
    let index = Index::new(input, &mut diags);
    let subjects = subjects::resolve(&index, &mut diags);
    let mut gateways = Vec::new();
    for obj in index.all() {
        let built = match obj {
            Object::AIGateway(gw) => gateway::build(&index, obj, &gw.spec.common, &subjects, &mut diags)
                .map(|(cfg, creds)| ai::fill(&index, obj, cfg, creds, &mut diags)),
            Object::MCPGateway(gw) => gateway::build(&index, obj, &gw.spec.common, &subjects, &mut diags)
                .map(|(cfg, creds)| mcp::fill(&index, obj, &gw.spec, cfg, creds, &mut diags)),
            Object::AgentGateway(gw) => gateway::build(&index, obj, &gw.spec.common, &subjects, &mut diags)
                .map(|(cfg, creds)| agent::fill(&index, obj, &gw.spec, cfg, creds, &mut diags)),
            _ => continue,
        };
        if let Some(g) = built {
            gateways.push(g);
        }
    }
    attachments::check(&index, &mut diags);
    let mut diagnostics = diags.0;
    diagnostics.sort();
    diagnostics.dedup();
    Output { gateways, diagnostics, effective: subjects.effective, secrets_named: index.secrets_named.take() }
}

/// Checks of `gatewayRefs` that do not depend on one gateway: refs to gateways that do not exist
/// or are of another layer.
mod attachments {
    use super::*;

    pub(super) fn check(index: &Index<'_>, diags: &mut Diags) {
        for obj in index.all() {
            let (refs, want, field): (&[api::LocalRef], &'static str, &str) = match obj {
                Object::AIRoute(r) => (&r.spec.gateway_refs, "AIGateway", "spec.gatewayRefs"),
                Object::MCPServer(s) => (&s.spec.gateway_refs, "MCPGateway", "spec.gatewayRefs"),
                Object::Agent(a) => match &a.spec.a2a {
                    Some(e) => (&e.gateway_refs, "AgentGateway", "spec.a2a.gatewayRefs"),
                    None => continue,
                },
                _ => continue,
            };
            for (i, r) in refs.iter().enumerate() {
                if index.get(want, obj.namespace(), &r.name).is_some() {
                    continue;
                }
                let msg = match index.gateway_kind_named(obj.namespace(), &r.name) {
                    Some(other) => {
                        format!("{:?} is an {other}, but a {} attaches only to an {want}", r.name, obj.kind())
                    }
                    None => format!("{want} {:?} not found in namespace {:?}", r.name, obj.namespace()),
                };
                diags.push(obj, format!("{field}[{i}].name"), Reason::RefNotFound, msg);
            }
        }
    }
}

/// The namespace's objects attached to one gateway through `gatewayRefs`.
pub(crate) fn attached(refs: &[api::LocalRef], gateway: &Object) -> bool {
    refs.iter().any(|r| r.name == gateway.name())
}

/// Resolves a `headers` list into config headers, with diagnostics for missing Secrets.
pub(crate) fn headers(
    index: &Index<'_>,
    obj: &Object,
    field: &str,
    list: &[api::HeaderValue],
    bundle: &mut Credentials,
    diags: &mut Diags,
) -> Option<Vec<crate::config::HeaderConfig>> {
    let mut out = Vec::new();
    let mut ok = true;
    for (i, h) in list.iter().enumerate() {
        let credential = match &h.value_from {
            Some(v) => match index.secret(obj.namespace(), &v.secret_ref, bundle) {
                Ok(c) => Some(c),
                Err(e) => {
                    diags.push(
                        obj,
                        format!("{field}[{i}].valueFrom.secretRef"),
                        Reason::RefNotFound,
                        e.to_string(),
                    );
                    ok = false;
                    None
                }
            },
            None => None,
        };
        out.push(crate::config::HeaderConfig {
            name: h.name.clone(),
            value: h.value.clone(),
            credential,
            prefix: h.prefix.clone().unwrap_or_default(),
        });
    }
    ok.then_some(out)
}

/// Parses a duration field that the schema already constrains; a diagnostic if it still fails.
pub(crate) fn duration(obj: &Object, field: &str, value: &str, diags: &mut Diags) -> Option<u64> {
    let ms = api::parse_duration_ms(value);
    if ms.is_none() {
        diags.push(
            obj,
            field,
            Reason::Invalid,
            format!("{value:?} is not a duration like 500ms, 10s, 1m30s or 24h"),
        );
    }
    ms
}

#[cfg(test)]
mod tests;
