//! One config version of an AI gateway, ready to serve: the policy index, backends with their
//! credential headers resolved, rules grouped by priority, the identity verifier and the store.

use super::backend::BackendRt;
use super::health::Health;
use super::metrics::AiMetrics;
use super::routing::RuleRt;
use crate::config::{AiConfig, CompiledGateway, GatewayConfig};
use crate::gateway::core::Core;
use crate::gateway::identity::Identity;
use crate::gateway::layer::BuildError;
use crate::gateway::store::StoreHandle;
use crate::policy::PolicyIndex;
use std::collections::HashMap;
use std::sync::Arc;

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
    pub store: StoreHandle,
    /// Largest request body.
    pub max_body: u64,
    /// The layer's metrics.
    pub metrics: AiMetrics,
    /// Backend health and retry budgets (the process's, across config versions).
    pub health: Arc<Health>,
}

impl AiRuntime {
    /// Builds a runtime; an error names what is wrong and the previous config stays in service.
    pub fn build(
        gw: &CompiledGateway,
        core: &Core,
        metrics: &AiMetrics,
        health: &Arc<Health>,
    ) -> Result<AiRuntime, BuildError> {
        let (config, credentials) = (&gw.config, &gw.credentials);
        let ai = config.ai.clone().unwrap_or_else(|| AiConfig { backends: vec![], rules: vec![] });
        let gateway = format!("{}/{}", config.gateway.namespace, config.gateway.name);
        let egress = crate::gateway::egress::policy_of(config)?;
        let mut backends = HashMap::new();
        for b in &ai.backends {
            let client = core.http.for_gateway(b.connect_timeout_ms, &egress);
            backends.insert(b.name.clone(), Arc::new(BackendRt::build(&gateway, b, credentials, client)?));
        }
        let rules =
            ai.rules.iter().map(|r| RuleRt::new(r.clone(), &backends)).collect::<Result<Vec<_>, _>>()?;
        Ok(AiRuntime {
            identity: Identity::new(&config.auth, &core.jwks, &core.env.service_account),
            policy: PolicyIndex::new(&config.policy),
            store: core.store_for(config, credentials)?,
            max_body: config.listener.max_request_bytes,
            gateway: gateway.into(),
            backends,
            rules,
            metrics: metrics.clone(),
            health: health.clone(),
            config: config.clone(),
        })
    }
}
