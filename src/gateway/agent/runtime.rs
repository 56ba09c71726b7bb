//! One config version of an agent gateway, ready to serve: the published agents, policy,
//! identity, store, signing key and the caches of identity tokens and signed cards.

use super::shared::{AgentShared, CONNECT_TIMEOUT_MS};
use super::sign::Signer;
use crate::config::{A2aAgentConfig, AgentLayerConfig, CompiledGateway, GatewayConfig, SIGNING_KEY};
use crate::gateway::core::Core;
use crate::gateway::egress::{Resolve, policy_of};
use crate::gateway::http_client::HttpClient;
use crate::gateway::identity::Identity;
use crate::gateway::layer::BuildError;
use crate::gateway::store::StoreHandle;
use crate::policy::PolicyIndex;
use crate::policy::egress::EgressPolicy;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One config version of an agent gateway, ready to serve.
pub struct AgentRuntime {
    /// The config.
    pub config: GatewayConfig,
    /// `namespace/name`.
    pub gateway: String,
    /// The same, shared by the labels and audit records of its calls.
    pub gateway_label: Arc<str>,
    /// The layer's settings.
    pub layer: AgentLayerConfig,
    /// Published agents by name.
    pub agents: HashMap<String, A2aAgentConfig>,
    /// Policy.
    pub policy: PolicyIndex,
    /// Caller identification.
    pub identity: Identity,
    /// Limits and task owners.
    pub store: StoreHandle,
    /// Largest request body.
    pub max_body: u64,
    /// The gateway's signing key.
    pub signer: Arc<Signer>,
    /// `iss` of identity tokens.
    pub issuer: String,
    /// Header carrying the identity token.
    pub token_header: http::HeaderName,
    /// Identity tokens by (caller, agent, task, skill), with their expiry, for reuse.
    pub tokens: Mutex<HashMap<TokenKey, (String, u64)>>,
    /// Signed cards by (agent, public base, indices of the visible skills), with the agent's
    /// card they were made from, and their ETag.
    pub signed_cards: Mutex<HashMap<SignedCardKey, SignedCard>>,
    /// The layer's process-wide state.
    pub shared: Arc<AgentShared>,
    /// The gateway's egress rule (for webhook URLs; the client applies it to agents).
    pub egress: EgressPolicy,
    /// The client towards agents (connect timeout [`CONNECT_TIMEOUT_MS`]), under [`Self::egress`].
    pub client: HttpClient,
    /// The process's resolver, for the host names of webhook URLs.
    pub resolver: Arc<dyn Resolve>,
}

/// Agent, public base URL, indices of the skills shown.
pub type SignedCardKey = (String, String, Vec<usize>);
/// The agent's card a signed card was made from, and the signed card with its ETag.
pub type SignedCard = (Arc<serde_json::Value>, Arc<(String, serde_json::Value)>);

/// Most signed cards kept per config version.
pub const SIGNED_CARD_ENTRIES: usize = 1024;

/// What an identity token says: caller, agent, task, skill.
pub type TokenKey = (String, String, Option<String>, Option<String>);

impl AgentRuntime {
    /// Builds a runtime; an error names what is wrong and the previous config stays in service.
    pub fn build(
        gw: &CompiledGateway,
        core: &Core,
        shared: &Arc<AgentShared>,
    ) -> Result<AgentRuntime, BuildError> {
        let (config, credentials) = (gw.config.clone(), &gw.credentials);
        let layer = config.agent.clone().unwrap_or_default();
        let gateway = format!("{}/{}", config.gateway.namespace, config.gateway.name);
        let header = &layer.identity_token_header;
        let token_header =
            http::HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes()).map_err(|_| {
                BuildError::invalid("identityTokenHeader", format!("{header:?} is not a valid header name"))
            })?;
        if token_header == http::header::AUTHORIZATION {
            return Err(BuildError::invalid("identityTokenHeader", "must not be Authorization"));
        }
        let mut agents = HashMap::new();
        for a in &layer.agents {
            let owner = || format!("agent {}", a.name);
            let uri: http::Uri = a
                .url
                .parse()
                .map_err(|_| BuildError::invalid(owner(), format!("url {:?} is not a URL", a.url)))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(BuildError::invalid(owner(), format!("url {:?} must be an http(s) URL", a.url)));
            }
            agents.insert(a.name.clone(), a.clone());
        }
        let egress = policy_of(&config)?;
        let signer = match credentials.0.get(SIGNING_KEY) {
            Some(pem) => Arc::new(
                Signer::from_pem(pem)
                    .map_err(|e| BuildError::invalid(format!("credential {SIGNING_KEY}"), e.to_string()))?,
            ),
            None => shared.generated_key(&gateway),
        };
        Ok(AgentRuntime {
            identity: Identity::new(&config.auth, &core.jwks, &core.env.service_account),
            policy: PolicyIndex::new(&config.policy),
            store: core.store_for(&config, credentials)?,
            tokens: Mutex::default(),
            signed_cards: Mutex::default(),
            max_body: config.listener.max_request_bytes,
            issuer: format!("urn:cairn:agent-gateway:{}:{}", config.gateway.namespace, config.gateway.name),
            gateway_label: Arc::from(gateway.as_str()),
            gateway,
            layer,
            agents,
            signer,
            token_header,
            shared: shared.clone(),
            client: core.http.for_gateway(CONNECT_TIMEOUT_MS, &egress),
            resolver: core.http.resolver_arc(),
            egress,
            config,
        })
    }

    /// The URL of an agent's card at the agent.
    pub fn card_url(agent: &A2aAgentConfig) -> String {
        let path = if agent.card_path.starts_with('/') {
            agent.card_path.clone()
        } else {
            format!("/{}", agent.card_path)
        };
        format!("{}{}", agent.url.trim_end_matches('/'), path)
    }
}
