//! What every gateway kind shares: listener, auth, store, telemetry and the policy slice.

use super::subjects::{RawIdentity, Resolved};
use super::{Diags, Index, Reason};
use crate::api::{self, Object};
use crate::config::{self, Credentials, GatewayConfig, GatewayId, IdentityConfig, Layer, SubjectConfig};
use sha2::{Digest, Sha256};

/// The gateway's virtual-key salt: derived from its namespace and name, so configs are
/// deterministic. Virtual keys are long random strings, so a per-gateway salt is enough to keep
/// the hashes useless to anyone who copies the config.
fn salt(ns: &str, name: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"cairn virtual-key salt\0");
    h.update(ns.as_bytes());
    h.update(b"\0");
    h.update(name.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Builds the layer-independent part of a gateway config; `None` (with diagnostics) when the
/// gateway's own references do not resolve.
pub(crate) fn build(
    index: &Index<'_>,
    obj: &Object,
    common: &api::GatewayCommon,
    subjects: &Resolved,
    diags: &mut Diags,
) -> Option<(GatewayConfig, Credentials)> {
    let ns = obj.namespace();
    let layer = match obj {
        Object::AIGateway(_) => Layer::Ai,
        Object::MCPGateway(_) => Layer::Mcp,
        _ => Layer::Agent,
    };
    let mut creds = Credentials::default();
    let mut ok = true;

    let store = common.store.as_ref().and_then(|s| {
        let password = match &s.redis.password_secret_ref {
            Some(r) => match index.secret(ns, r, &mut creds) {
                Ok(c) => Some(c),
                Err(e) => {
                    diags.push(obj, "spec.store.redis.passwordSecretRef", Reason::RefNotFound, e.to_string());
                    ok = false;
                    return None;
                }
            },
            None => None,
        };
        Some(config::StoreConfig {
            redis_url: s.redis.url.clone(),
            redis_password: password,
            failure_mode: match s.redis.failure_mode {
                api::FailureMode::Closed => config::FailureMode::Closed,
                api::FailureMode::Open => config::FailureMode::Open,
            },
        })
    });

    let port = u16::try_from(common.listener.port).ok().filter(|p| *p > 0);
    if port.is_none() {
        diags.push(obj, "spec.listener.port", Reason::Invalid, "port must be between 1 and 65535");
        ok = false;
    }
    // Two gateways on one port cannot both run in one local process.
    if *index.mode == super::Mode::Local {
        for other in index.all() {
            let other_port = match other {
                Object::AIGateway(g) => g.spec.common.listener.port,
                Object::MCPGateway(g) => g.spec.common.listener.port,
                Object::AgentGateway(g) => g.spec.common.listener.port,
                _ => continue,
            };
            if std::ptr::eq(other, obj) {
                break;
            }
            if other_port == common.listener.port {
                diags.push(
                    obj,
                    "spec.listener.port",
                    Reason::Conflict,
                    format!("port {other_port} is already used by {}", other.object_ref()),
                );
                ok = false;
                break;
            }
        }
    }
    if !ok {
        return None;
    }

    let salt = salt(ns, obj.name());
    let empty = Default::default();
    let local = subjects.namespaces.get(ns).unwrap_or(&empty);
    let policy = config::PolicyConfig {
        default_action: match common.default_action {
            api::DefaultAction::Allow => config::DefaultAction::Allow,
            api::DefaultAction::Deny => config::DefaultAction::Deny,
        },
        subjects: local
            .subjects
            .iter()
            .map(|(name, ids)| {
                let mut identities: Vec<IdentityConfig> = ids
                    .iter()
                    .map(|id| match id {
                        RawIdentity::ServiceAccount { namespace, name } => IdentityConfig::ServiceAccount {
                            namespace: namespace.clone(),
                            name: name.clone(),
                        },
                        RawIdentity::Jwt { issuer, subject } => {
                            IdentityConfig::Jwt { issuer: issuer.clone(), subject: subject.clone() }
                        }
                        RawIdentity::VirtualKey { key } => {
                            IdentityConfig::VirtualKey { hash: config::hash_virtual_key(&salt, key) }
                        }
                    })
                    .collect();
                identities.sort();
                SubjectConfig { name: name.clone(), identities, team: local.teams.get(name).cloned() }
            })
            .collect(),
        policies: local.policies.clone(),
    };

    let auth = &common.auth;
    let cfg = GatewayConfig {
        version: config::CONFIG_VERSION,
        gateway: GatewayId { namespace: ns.to_string(), name: obj.name().to_string(), layer },
        listener: config::ListenerConfig {
            port: port.unwrap_or_default(),
            max_request_bytes: u64::try_from(common.max_request_bytes).unwrap_or(0),
        },
        auth: config::AuthConfig {
            allow_anonymous: auth.allow_anonymous,
            jwt: auth
                .jwt
                .iter()
                .map(|j| config::JwtIssuerConfig {
                    issuer: j.issuer.clone(),
                    audiences: j.audiences.clone(),
                    jwks_uri: j.jwks_uri.clone(),
                    subject_claim: j.subject_claim.clone(),
                })
                .collect(),
            service_account_tokens: auth
                .service_account_tokens
                .as_ref()
                .map(|s| config::ServiceAccountTokensConfig { audiences: s.audiences.clone() }),
            virtual_key_salt: salt,
        },
        store,
        telemetry: telemetry(&common.telemetry),
        policy,
        egress: Default::default(),
        ai: None,
        mcp: None,
        agent: None,
    };
    Some((cfg, creds))
}

/// The telemetry settings: for OTLP over HTTP the endpoint becomes the traces URL (`/v1/traces`
/// appended unless it ends with it, as OpenTelemetry SDKs do with a base endpoint).
fn telemetry(t: &api::common::Telemetry) -> config::TelemetryConfig {
    let otlp = t.otlp_endpoint.as_ref().map(|endpoint| {
        let protocol = match t.otlp_protocol.unwrap_or_default() {
            api::common::OtlpProtocol::Grpc => config::OtlpProtocol::Grpc,
            api::common::OtlpProtocol::HttpProtobuf => config::OtlpProtocol::HttpProtobuf,
        };
        let endpoint = match protocol {
            config::OtlpProtocol::HttpProtobuf if !endpoint.trim_end_matches('/').ends_with("/v1/traces") => {
                format!("{}/v1/traces", endpoint.trim_end_matches('/'))
            }
            _ => endpoint.clone(),
        };
        config::OtlpConfig {
            endpoint,
            protocol,
            sampling_ratio: t.sampling_ratio.unwrap_or(1.0).clamp(0.0, 1.0),
        }
    });
    config::TelemetryConfig { otlp, access_log: t.access_log, subject_labels: t.subject_labels }
}
