//! Layer 3: A2A agents published on an AgentGateway.

use super::egress::Egress;
use super::{CompiledGateway, Diags, Index, attached, duration};
use crate::api::{self, Object};
use crate::config::{self, Credentials, GatewayConfig};

pub(crate) fn fill(
    index: &Index<'_>,
    gw: &Object,
    spec: &api::AgentGatewaySpec,
    mut cfg: GatewayConfig,
    creds: Credentials,
    diags: &mut Diags,
) -> CompiledGateway {
    let egress = Egress::of(index, gw, diags);
    let mut agents = Vec::new();
    for obj in index.in_namespace(gw.namespace()) {
        let Object::Agent(agent) = obj else { continue };
        let Some(a2a) = &agent.spec.a2a else { continue };
        if !attached(&a2a.gateway_refs, gw) || !egress.allows(obj, "spec.a2a.url", &a2a.url, diags) {
            continue;
        }
        agents.push(config::A2aAgentConfig {
            name: obj.name().to_string(),
            url: a2a.url.trim_end_matches('/').to_string(),
            card_path: a2a.card_path.clone(),
            description: agent.spec.description.clone(),
        });
    }
    let ms = |field: &str, v: &str, default: u64, diags: &mut Diags| {
        duration(gw, field, v, diags).unwrap_or(default)
    };
    let task_ttl = ms(
        "spec.tasks.ownershipTtl",
        &spec.tasks.ownership_ttl,
        config::DEFAULT_TASK_OWNERSHIP_TTL_MS,
        diags,
    );
    let token_ttl = ms(
        "spec.identityTokens.ttl",
        &spec.identity_tokens.ttl,
        config::DEFAULT_IDENTITY_TOKEN_TTL_MS,
        diags,
    );
    cfg.egress = egress.config();
    cfg.agent = Some(config::AgentLayerConfig {
        agents,
        task_ownership_ttl_ms: task_ttl,
        identity_token_ttl_ms: token_ttl,
        identity_token_header: spec.identity_tokens.header.clone(),
        allowed_origins: spec.allowed_origins.clone(),
    });
    CompiledGateway { config: cfg, credentials: creds }
}
