//! One served MCP gateway config: its backends, policy, identity and session sealer, and what the
//! process keeps for the gateway across config versions (session activity, pooled backend
//! sessions for stateless clients, stdio children).

use super::audit::McpMetrics;
use super::session::{Activity, BackendSession, Sealer, SessionKey};
use super::stdio::{DEFAULT_MAX_MESSAGE_BYTES, StdioCommand, StdioServer};
use super::upstream::{Transport, Upstream, resolve_headers};
use crate::config::DefaultAction;
use crate::config::{CompiledGateway, GatewayConfig, McpConfig, McpEndpoint, McpServerConfig, SESSION_KEY};
use crate::gateway::core::Core;
use crate::gateway::identity::Identity;
use crate::gateway::layer::BuildError;
use crate::gateway::store::StoreHandle;
use crate::policy::{PolicyIndex, glob_match, split_tool_name};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Items per page of the gateway's own lists (`tools/list`, `prompts/list`, `resources/list`,
/// `resources/templates/list`), unless [`McpRuntime::page_size`] says otherwise. Large enough
/// that a gateway over a few servers answers in one page (so clients that never follow
/// `nextCursor` still see everything in the common case), small enough to bound one answer
/// (tool schemas run to kilobytes each).
pub const PAGE_SIZE: usize = 100;

/// What the process keeps per MCP gateway across config versions.
#[derive(Default)]
pub struct GatewayState {
    /// Session use seen by this replica.
    pub activity: Activity,
    /// The backends' standalone streams of the sessions this replica initialized.
    pub streams: super::streams::Streams,
    /// Backend sessions serving stateless-era clients, by server prefix.
    pub pool: tokio::sync::Mutex<HashMap<String, BackendSession>>,
    /// stdio servers by name and command.
    stdio: Mutex<HashMap<String, Arc<StdioServer>>>,
    /// Session secret made up for a gateway whose bundle has none (local mode).
    local_secret: OnceLock<String>,
}

/// What the process keeps per MCP gateway, by gateway.
#[derive(Default)]
pub struct GatewayStates(Mutex<HashMap<String, Arc<GatewayState>>>);

impl GatewayStates {
    /// The state of `gateway` (`namespace/name`), made on first use.
    pub fn of(&self, gateway: &str) -> Arc<GatewayState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(gateway.to_string()).or_default().clone()
    }
}

/// Holds `streams` for the session (`nonce`, `key`, opened at `opened`) until it ends: `DELETE`
/// removes them, and a watchdog removes them once the session is idle longer than `idle_secs`
/// as this replica sees it.
pub fn hold(
    state: &Arc<GatewayState>,
    streams: super::streams::SessionStreams,
    nonce: u64,
    key: SessionKey,
    opened: u64,
    idle_secs: u64,
) {
    state.streams.insert(nonce, streams);
    let state = state.clone();
    let every = Duration::from_secs((idle_secs / 4).clamp(1, 60));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if state.streams.get(nonce).is_none() {
                return;
            }
            let now = crate::gateway::clock::unix_now();
            if !state.activity.live(key, opened, now, idle_secs) {
                state.streams.remove(nonce);
                return;
            }
        }
    });
}

/// A served MCP gateway config.
pub struct McpRuntime {
    /// The whole config.
    pub config: GatewayConfig,
    /// `namespace/name`.
    pub gateway: String,
    /// The MCP part.
    pub mcp: McpConfig,
    /// Servers, by prefix order, and their upstreams (same index).
    pub servers: Vec<McpServerConfig>,
    /// Upstreams.
    pub upstreams: Vec<Arc<Upstream>>,
    by_prefix: HashMap<String, usize>,
    /// Policy.
    pub policy: PolicyIndex,
    /// Callers.
    pub identity: Identity,
    /// Session ids.
    pub sealer: Sealer,
    /// Limits and replay buffers.
    pub store: StoreHandle,
    /// Largest request body.
    pub max_body: usize,
    /// Kept across config versions.
    pub state: Arc<GatewayState>,
    /// Metrics (in the process's registry).
    pub metrics: McpMetrics,
    /// Items per page of the gateway's own lists ([`PAGE_SIZE`]).
    pub page_size: usize,
}

impl McpRuntime {
    /// Builds a runtime; an error names what is wrong (the previous config stays in service).
    pub fn build(
        gw: &CompiledGateway,
        core: &Core,
        states: &GatewayStates,
        metrics: &McpMetrics,
    ) -> Result<McpRuntime, BuildError> {
        let (config, credentials) = (gw.config.clone(), &gw.credentials);
        let gateway = format!("{}/{}", config.gateway.namespace, config.gateway.name);
        let mcp = config.mcp.clone().unwrap_or_default();
        let state = states.of(&gateway);
        let secret = match credentials.0.get(SESSION_KEY) {
            Some(k) => k.clone(),
            None => state.local_secret.get_or_init(Sealer::random_secret).clone(),
        };
        let max_body = usize::try_from(config.listener.max_request_bytes).unwrap_or(usize::MAX);
        let egress = crate::gateway::egress::policy_of(&config)?;
        let mut servers = mcp.servers.clone();
        servers.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        let mut upstreams = Vec::new();
        let mut by_prefix = HashMap::new();
        let mut live_stdio = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            let owner = || format!("MCP server '{}'", s.name);
            let headers = resolve_headers(&s.headers, credentials, owner())?;
            let transport = match &s.endpoint {
                McpEndpoint::Http { url } => Transport::Http {
                    url: url
                        .parse()
                        .map_err(|e| BuildError::invalid(owner(), format!("url {url:?}: {e}")))?,
                    client: core.http.for_gateway(0, &egress),
                },
                McpEndpoint::Stdio { command, env, secret_env, per_session } => {
                    let mut env = env.clone();
                    for (k, r) in secret_env {
                        let v = credentials.get(r).ok_or_else(|| BuildError::MissingCredential {
                            owner: owner(),
                            id: r.id.clone(),
                        })?;
                        env.insert(k.clone(), v.to_string());
                    }
                    let cmd = StdioCommand {
                        command: command.clone(),
                        env,
                        per_session: *per_session,
                        max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES.max(max_body),
                    };
                    let key = format!("{}\0{:?}\0{:?}\0{}", s.name, cmd.command, cmd.env, cmd.per_session);
                    let server = state
                        .stdio
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry(key.clone())
                        .or_insert_with(|| {
                            let server = StdioServer::new(cmd);
                            StdioServer::reap_in_background(
                                &server,
                                Duration::from_millis(mcp.session_idle_timeout_ms.max(1000)),
                            );
                            server
                        })
                        .clone();
                    live_stdio.push(key);
                    Transport::Stdio(server)
                }
            };
            upstreams.push(Arc::new(Upstream {
                name: s.name.clone(),
                prefix: s.prefix.clone(),
                transport,
                headers,
                timeout: Duration::from_millis(s.timeout_ms.max(1)),
                max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES.max(max_body),
                modern: Default::default(),
            }));
            by_prefix.insert(s.prefix.clone(), i);
        }
        state.stdio.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| live_stdio.contains(k));
        Ok(McpRuntime {
            policy: PolicyIndex::new(&config.policy),
            identity: Identity::new(&config.auth, &core.jwks, &core.env.service_account),
            sealer: Sealer::new(&secret, &gateway),
            store: core.store_for(&config, credentials)?,
            gateway,
            mcp,
            servers,
            upstreams,
            by_prefix,
            max_body,
            state,
            metrics: metrics.clone(),
            page_size: PAGE_SIZE,
            config,
        })
    }

    /// The index of the server with `prefix` (`""`: the server whose names pass through).
    pub fn server_index(&self, prefix: &str) -> Option<usize> {
        self.by_prefix.get(prefix).copied()
    }

    /// The server a client-facing tool or prompt name belongs to, and the name the server knows:
    /// `prefix__name` goes to the server with that prefix; any other name to the gateway's
    /// server without a prefix, unchanged (compile allows at most one per gateway).
    pub fn route_name<'a>(&self, name: &'a str) -> Option<(usize, &'a str)> {
        if let Some((p, n)) = split_tool_name(name)
            && let Some(i) = self.server_index(p)
        {
            return Some((i, n));
        }
        self.server_index("").map(|i| (i, name))
    }

    /// The server a client-facing resource URI belongs to, and the URI the server knows:
    /// `prefix+uri` goes to the server with that prefix; any other URI to the gateway's server
    /// without a prefix, unchanged.
    pub fn route_uri<'a>(&self, uri: &'a str) -> Option<(usize, &'a str)> {
        if let Some((p, u)) = uri.split_once(super::names::URI_SEPARATOR)
            && !p.is_empty()
            && let Some(i) = self.server_index(p)
        {
            return Some((i, u));
        }
        self.server_index("").map(|i| (i, uri))
    }

    /// Whether the server's allow/deny globs expose `tool` (to everyone).
    pub fn server_exposes(&self, i: usize, tool: &str) -> bool {
        let s = &self.servers[i];
        s.allow.iter().any(|g| glob_match(g, tool)) && !s.deny.iter().any(|g| glob_match(g, tool))
    }

    /// Whether `subject` may see a server's prompts and resources: when some policy grants it a
    /// tool of that server, or (for callers no policy names) when the default action allows.
    pub fn server_visible(&self, subject: &str, i: usize) -> bool {
        let name = &self.servers[i].name;
        if !self.policy.is_named(subject) {
            return self.policy.default_action() == DefaultAction::Allow;
        }
        self.policy
            .config()
            .policies
            .iter()
            .filter(|p| p.subjects.iter().any(|s| s == subject))
            .any(|p| p.tools.iter().any(|t| &t.server == name))
    }

    /// Idle timeout in seconds (at least one).
    pub fn idle_secs(&self) -> u64 {
        (self.mcp.session_idle_timeout_ms / 1000).max(1)
    }
}
