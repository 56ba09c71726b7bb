//! Layer 3: the agent gateway, an A2A proxy with a directory, per-agent authorization, task
//! ownership and identity propagation.
//!
//! # What it serves (one gateway listener)
//!
//! | path | what |
//! |---|---|
//! | `POST /agents/{name}` (or `/agents/{name}/`) | A2A JSON-RPC binding of agent `name` |
//! | `/agents/{name}/message:send`, `/tasks/{id}`, … | A2A HTTP+JSON (REST) binding of agent `name` |
//! | `/agents/{name}/{tenant}/message:send`, … | the same with an A2A 1.0 tenant, passed through ([`method::rest_route`]) |
//! | `GET /agents/{name}/.well-known/agent-card.json` | the agent's card, rewritten and re-signed ([`card`]) |
//! | `GET /agents` | the directory: the cards of every agent the caller may use |
//! | `GET /.well-known/jwks.json` | the gateway's public key ([`sign`]) |
//!
//! Every A2A 1.0 method (`SendMessage`, `SendStreamingMessage`, `GetTask`, `ListTasks`,
//! `CancelTask`, `SubscribeToTask`, the four push-notification config methods,
//! `GetExtendedAgentCard`) and its 0.3 name (`message/send`, `message/stream`, `tasks/get`,
//! `tasks/cancel`, `tasks/resubscribe`, `tasks/pushNotificationConfig/*`,
//! `agent/getAuthenticatedExtendedCard`) is recognised ([`method`]); the body is forwarded to the
//! agent unchanged, as is `A2A-Version` (an absent header means 0.3; a version other than 0.3 or
//! 1.x is refused with VersionNotSupported). Streams are relayed frame by frame as they arrive.
//!
//! # Per call ([`proxy`])
//!
//! Before anything, every request's `Origin` is checked ([`crate::gateway::origin`]): one that
//! is present and neither the gateway's own host nor in `allowedOrigins` is refused with 403.
//!
//! 1. The caller is identified (virtual key, JWT, ServiceAccount token; [`crate::gateway::identity`]).
//! 2. Policy: `SendMessage`/`SendStreamingMessage` are checked with
//!    [`PolicyIndex::check_agent`] for the skill the message names in its metadata
//!    ([`view::SKILL_KEYS`]; none named: only grants without a skill list allow it). Calls on a
//!    task are checked for the skill the task was created with. `ListTasks`, the extended card,
//!    the card and the directory need any grant on the agent; the cards (served, listed and
//!    extended) show only the skills the caller may invoke, and are signed once per agent,
//!    public base and visible skill set, not per caller. Request-per-minute limits of the
//!    grants that allow the call are counted in the gateway's store.
//! 3. Task ownership ([`owners`]): calls on a task that the caller did not create through this
//!    gateway are answered TaskNotFound, exactly as for a task that does not exist; `ListTasks`
//!    answers are filtered to the caller's tasks.
//! 4. Push-notification webhook URLs are checked against the egress rule ([`egress`]).
//! 5. The agent receives, instead of the caller's credentials (never forwarded), a JWT signed by
//!    the gateway in the configured header (`identityTokenHeader`): `iss`
//!    `urn:cairn:agent-gateway:{namespace}:{name}`, `sub` the caller, `aud` the agent, `gateway`,
//!    `agent`, `task_id` when known, `skill` when known, `exp` = now + `identityTokenTtlMs`;
//!    verifiable with `/.well-known/jwks.json`. A token is reused for calls with the same caller,
//!    agent, task and skill during the first half of its lifetime. `traceparent` is propagated
//!    with a new parent id (or a trace is started), `tracestate` passed on.
//! 6. One audit line per call (caller, agent, method, binding, skill, task id, outcome, status,
//!    latency_ms, trace id): a `tracing` event with these fields (target `cairn::audit`), and, when
//!    `telemetry.accessLog` is on, the same as one JSON object (`"kind": "a2a.call"`) on stdout
//!    like the other layers' lines; and the metrics `cairn_agent_requests_total` and
//!    `cairn_agent_request_duration_seconds`.

pub mod card;
pub mod egress;
pub mod error;
pub mod method;
pub mod owners;
pub mod proxy;
pub mod sign;
pub mod view;

pub use proxy::handle;

use crate::config::{
    A2aAgentConfig, AgentLayerConfig, Credentials, FailureMode, GatewayConfig, Layer, SIGNING_KEY,
};
use crate::gateway::identity::Identity;
use crate::gateway::state::Shared;
use crate::gateway::store::Store;
use crate::policy::PolicyIndex;
use card::CardCache;
use sign::Signer;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the agent layer keeps across config versions: the card cache and the keys generated for
/// gateways whose credentials carry none (task owners live in the gateway's store).
#[derive(Default)]
pub struct AgentShared {
    /// Agent cards.
    pub cards: CardCache,
    generated: Mutex<HashMap<String, Arc<Signer>>>,
}

impl AgentShared {
    /// The key this process generated for `gateway` (the same one for every config version).
    pub fn generated_key(&self, gateway: &str) -> Arc<Signer> {
        let mut map = self.generated.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(gateway.to_string())
            .or_insert_with(|| {
                tracing::warn!(
                    gateway,
                    "no signing key in the credentials ({SIGNING_KEY}): generated one for this process; \
                     identity tokens and card signatures verify only against this process's JWKS"
                );
                Arc::new(Signer::generate())
            })
            .clone()
    }
}

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
    pub store: Store,
    /// `None` for the memory store.
    pub failure_mode: Option<FailureMode>,
    /// Key prefix in the store: `cairn:<namespace>:`.
    pub store_prefix: String,
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
        config: GatewayConfig,
        credentials: &Credentials,
        shared: &Shared,
    ) -> Result<AgentRuntime, String> {
        if config.gateway.layer != Layer::Agent {
            return Err(format!("gateway {} is not an agent gateway", config.gateway));
        }
        let layer = config.agent.clone().unwrap_or(AgentLayerConfig {
            agents: vec![],
            allow_private_networks: false,
            allowed_webhook_hosts: vec![],
            task_ownership_ttl_ms: 86_400_000,
            identity_token_ttl_ms: 300_000,
            identity_token_header: "x-cairn-identity".into(),
            allowed_origins: vec![],
        });
        let gateway = format!("{}/{}", config.gateway.namespace, config.gateway.name);
        let token_header =
            http::HeaderName::from_bytes(layer.identity_token_header.to_ascii_lowercase().as_bytes())
                .map_err(|_| {
                    format!(
                        "identityTokenHeader {:?} is not a valid header name",
                        layer.identity_token_header
                    )
                })?;
        if token_header == http::header::AUTHORIZATION {
            return Err("identityTokenHeader must not be Authorization".into());
        }
        let mut agents = HashMap::new();
        for a in &layer.agents {
            let uri: http::Uri =
                a.url.parse().map_err(|_| format!("agent {}: url {:?} is not a URL", a.name, a.url))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(format!("agent {}: url {:?} must be an http(s) URL", a.name, a.url));
            }
            agents.insert(a.name.clone(), a.clone());
        }
        let signer = match credentials.0.get(SIGNING_KEY) {
            Some(pem) => {
                Arc::new(Signer::from_pem(pem).map_err(|e| format!("credential {SIGNING_KEY}: {e}"))?)
            }
            None => shared.agent.generated_key(&gateway),
        };
        let (store, failure_mode) = shared.store_for(&config, credentials)?;
        let store_prefix = crate::gateway::store::namespace_prefix(&config.gateway.namespace);
        Ok(AgentRuntime {
            identity: Identity::new(&config.auth, &shared.jwks),
            policy: PolicyIndex::new(&config.policy),
            store_prefix,
            tokens: Mutex::default(),
            signed_cards: Mutex::default(),
            max_body: config.listener.max_request_bytes,
            issuer: format!("urn:cairn:agent-gateway:{}:{}", config.gateway.namespace, config.gateway.name),
            gateway_label: Arc::from(gateway.as_str()),
            gateway,
            layer,
            agents,
            store,
            failure_mode,
            signer,
            token_header,
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

/// Serves the agent gateway whose current config is `runtime` on `listener` until `shutdown`:
/// [`crate::gateway::server::serve`] with [`handle`] as the service.
pub async fn serve(
    listener: tokio::net::TcpListener,
    runtime: Arc<arc_swap::ArcSwap<AgentRuntime>>,
    shared: Arc<Shared>,
    shutdown: crate::gateway::server::Shutdown,
) {
    let serve = move |req| handle(runtime.load_full(), shared.clone(), req);
    crate::gateway::server::serve(listener, serve, shutdown).await
}
