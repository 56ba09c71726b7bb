//! Layer 2: MCP servers attached to an MCPGateway.

use super::egress::Egress;
use super::{CompiledGateway, Diags, Index, Mode, Reason, attached, duration, headers};
use crate::api::{self, Object};
use crate::config::{self, Credentials, GatewayConfig};
use std::collections::BTreeMap;

/// The tool prefix of a server: `spec.prefix`, or the object's name; empty when its names pass
/// through unprefixed.
pub(crate) fn prefix(obj: &Object, s: &api::MCPServer) -> String {
    s.spec.prefix.clone().unwrap_or_else(|| obj.name().to_string())
}

fn valid_prefix(p: &str) -> bool {
    p.len() <= 40 && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(crate) fn fill(
    index: &Index<'_>,
    gw: &Object,
    spec: &api::MCPGatewaySpec,
    mut cfg: GatewayConfig,
    mut creds: Credentials,
    diags: &mut Diags,
) -> CompiledGateway {
    let ns = gw.namespace();
    let egress = Egress::of(index, gw, diags);
    let mut by_prefix: BTreeMap<String, config::McpServerConfig> = BTreeMap::new();
    for obj in index.in_namespace(ns) {
        let Object::MCPServer(server) = obj else { continue };
        if !attached(&server.spec.gateway_refs, gw) {
            continue;
        }
        let prefix = prefix(obj, server);
        if !valid_prefix(&prefix) {
            diags.push(
                obj,
                "spec.prefix",
                Reason::Invalid,
                format!("tool prefix {prefix:?} must match ^([a-z0-9-]{{1,40}})?$; set spec.prefix"),
            );
            continue;
        }
        if let Some(taken) = by_prefix.get(&prefix).filter(|_| prefix.is_empty()) {
            // Whose names would a client's unprefixed name reach? Only one server can say.
            diags.push(
                obj,
                "spec.prefix",
                Reason::Conflict,
                format!(
                    "MCPServer {:?} and MCPServer {:?} both keep their tool, prompt and resource names unprefixed (prefix \"\") on MCPGateway {:?}: a name both serve would reach only one of them; set spec.prefix on one",
                    obj.name(),
                    taken.name,
                    gw.name()
                ),
            );
            continue;
        }
        if let Some(taken) = by_prefix.get(&prefix) {
            diags.push(
                obj,
                "spec.prefix",
                Reason::Conflict,
                format!(
                    "tool prefix {prefix:?} is already used by MCPServer {:?} on MCPGateway {:?}",
                    taken.name,
                    gw.name()
                ),
            );
            continue;
        }
        if let Some(c) = server_config(index, obj, server, &egress, prefix.clone(), &mut creds, diags) {
            by_prefix.insert(prefix, c);
        }
    }
    let idle = duration(gw, "spec.sessions.idleTimeout", &spec.sessions.idle_timeout, diags)
        .unwrap_or(config::DEFAULT_SESSION_IDLE_TIMEOUT_MS);
    cfg.egress = egress.config();
    cfg.mcp = Some(config::McpConfig {
        servers: by_prefix.into_values().collect(),
        session_idle_timeout_ms: idle,
        oauth: spec.oauth.as_ref().map(|o| config::OAuthConfig {
            resource: o.resource.clone(),
            authorization_servers: o.authorization_servers.clone(),
            scopes: o.scopes.clone(),
        }),
        allowed_origins: spec.allowed_origins.clone(),
    });
    CompiledGateway { config: cfg, credentials: creds }
}

fn server_config(
    index: &Index<'_>,
    obj: &Object,
    server: &api::MCPServer,
    egress: &Egress<'_>,
    prefix: String,
    creds: &mut Credentials,
    diags: &mut Diags,
) -> Option<config::McpServerConfig> {
    let spec = &server.spec;
    let endpoint = match (&spec.url, &spec.deployment) {
        (Some(url), None) if egress.allows(obj, "spec.url", url, diags) => {
            config::McpEndpoint::Http { url: url.clone() }
        }
        (Some(_), None) => return None,
        (None, Some(d)) => deployed_endpoint(index, obj, d, creds, diags)?,
        _ => {
            diags.push(obj, "spec", Reason::Invalid, "set exactly one of url and deployment");
            return None;
        }
    };
    let headers = headers(index, obj, "spec.headers", &spec.headers, creds, diags)?;
    let timeout_ms = duration(obj, "spec.timeout", &spec.timeout, diags)?;
    Some(config::McpServerConfig {
        name: obj.name().to_string(),
        prefix,
        endpoint,
        headers,
        allow: spec.tools.allow.clone(),
        deny: spec.tools.deny.clone(),
        timeout_ms,
        audit_arguments: spec.audit.include_arguments,
    })
}

fn deployed_endpoint(
    index: &Index<'_>,
    obj: &Object,
    d: &api::McpDeployment,
    creds: &mut Credentials,
    diags: &mut Diags,
) -> Option<config::McpEndpoint> {
    match index.mode {
        Mode::Cluster { domain } => Some(config::McpEndpoint::Http {
            url: format!(
                "http://{}.{}.svc.{domain}:{}{}",
                api::deployed_server_name(obj.name()),
                obj.namespace(),
                d.port,
                d.path
            ),
        }),
        Mode::Local => {
            if d.transport != api::McpTransport::Stdio {
                diags.warn(
                    obj,
                    "spec.deployment.transport",
                    Reason::Unsupported,
                    "local mode runs only Stdio deployments (it cannot run a container image); this server is left out",
                );
                return None;
            }
            let command: Vec<String> = d.command.iter().chain(&d.args).cloned().collect();
            if d.command.is_empty() {
                diags.warn(
                    obj,
                    "spec.deployment.command",
                    Reason::Unsupported,
                    "local mode runs deployment.command directly and cannot use the image's entrypoint; set command",
                );
                return None;
            }
            let mut env = BTreeMap::new();
            let mut secret_env = BTreeMap::new();
            for (i, e) in d.env.iter().enumerate() {
                match (&e.value, &e.value_from) {
                    (Some(v), _) => {
                        env.insert(e.name.clone(), v.clone());
                    }
                    (None, Some(from)) => match index.secret(obj.namespace(), &from.secret_ref, creds) {
                        Ok(r) => {
                            secret_env.insert(e.name.clone(), r);
                        }
                        Err(msg) => {
                            diags.push(
                                obj,
                                format!("spec.deployment.env[{i}].valueFrom.secretRef"),
                                Reason::RefNotFound,
                                msg.to_string(),
                            );
                            return None;
                        }
                    },
                    (None, None) => {}
                }
            }
            Some(config::McpEndpoint::Stdio {
                command,
                env,
                secret_env,
                per_session: d.sessions.unwrap_or_default() == api::StdioSessions::PerSession,
            })
        }
    }
}
