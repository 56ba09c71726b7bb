//! One config version of an AI gateway, ready to serve: the policy index, backends with their
//! credential headers resolved, rules grouped by priority, the identity verifier and the store.

use super::routing::RuleRt;
use super::upstream::HttpClient;
use crate::config::{
    AiBackendConfig, AiModelConfig, Credentials, FailureMode, GatewayConfig, Layer, ProviderKind,
};
use crate::gateway::identity::Identity;
use crate::gateway::state::Shared;
use crate::gateway::store::Store;
use crate::policy::PolicyIndex;
use http::{HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::Arc;

/// A backend with its headers resolved.
pub struct BackendRt {
    /// Name.
    pub name: Arc<str>,
    /// Provider family.
    pub provider: ProviderKind,
    /// Base URL.
    pub url: String,
    /// Headers to send (credentials included).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Models by provider name.
    pub models: HashMap<String, AiModelConfig>,
    /// Connect timeout.
    pub connect_timeout_ms: u64,
    /// The pooled client for that connect timeout (shared with every backend that has it).
    pub client: HttpClient,
    /// Health key in [`Shared`]: `gateway/backend`.
    pub health_key: String,
}

/// A served AI gateway config.
pub struct AiRuntime {
    /// The config.
    pub config: GatewayConfig,
    /// `namespace/name`.
    pub gateway: Arc<str>,
    /// Policy.
    pub policy: PolicyIndex,
    /// Backends by name.
    pub backends: HashMap<String, Arc<BackendRt>>,
    /// Rules in config order.
    pub rules: Vec<RuleRt>,
    /// Caller identification.
    pub identity: Identity,
    /// Limits and budgets.
    pub store: Store,
    /// `None` for the memory store.
    pub failure_mode: Option<FailureMode>,
    /// Key prefix in the store: `cairn:<namespace>:`.
    pub store_prefix: String,
    /// Largest request body.
    pub max_body: u64,
}

impl AiRuntime {
    /// Builds a runtime; an error names what is wrong and the previous config stays in service.
    pub fn build(
        config: GatewayConfig,
        credentials: &Credentials,
        shared: &Shared,
    ) -> Result<AiRuntime, String> {
        if config.gateway.layer != Layer::Ai {
            return Err(format!("gateway {} is not an AI gateway", config.gateway));
        }
        let ai =
            config.ai.clone().unwrap_or_else(|| crate::config::AiConfig { backends: vec![], rules: vec![] });
        let gateway = format!("{}/{}", config.gateway.namespace, config.gateway.name);
        let mut backends = HashMap::new();
        for b in &ai.backends {
            let client = shared.clients.get(b.connect_timeout_ms);
            backends.insert(b.name.clone(), Arc::new(backend(&gateway, b, credentials, client)?));
        }
        let rules =
            ai.rules.iter().map(|r| RuleRt::new(r.clone(), &backends)).collect::<Result<Vec<_>, String>>()?;
        let (store, failure_mode) = shared.store_for(&config, credentials)?;
        Ok(AiRuntime {
            identity: Identity::new(&config.auth, &shared.jwks),
            policy: PolicyIndex::new(&config.policy),
            store_prefix: crate::gateway::store::namespace_prefix(&config.gateway.namespace),
            max_body: config.listener.max_request_bytes,
            gateway: gateway.into(),
            backends,
            rules,
            store,
            failure_mode,
            config,
        })
    }
}

fn backend(
    gateway: &str,
    b: &AiBackendConfig,
    credentials: &Credentials,
    client: HttpClient,
) -> Result<BackendRt, String> {
    let mut headers = Vec::new();
    for h in &b.headers {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("backend {}: invalid header name {:?}", b.name, h.name))?;
        let value = match (&h.value, &h.credential) {
            (_, Some(c)) => credentials
                .get(c)
                .ok_or_else(|| format!("backend {}: credential {:?} is missing", b.name, c.id))?
                .to_string(),
            (Some(v), None) => v.clone(),
            (None, None) => String::new(),
        };
        let value = HeaderValue::from_str(&format!("{}{}", h.prefix, value.trim()))
            .map_err(|_| format!("backend {}: header {} has a value that cannot be sent", b.name, h.name))?;
        headers.push((name, value));
    }
    Ok(BackendRt {
        name: b.name.as_str().into(),
        provider: b.provider,
        url: b.url.clone(),
        headers,
        models: b.models.iter().map(|m| (m.name.clone(), m.clone())).collect(),
        connect_timeout_ms: b.connect_timeout_ms,
        client,
        health_key: format!("{gateway}/{}", b.name),
    })
}
