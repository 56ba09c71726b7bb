//! One served MCP gateway config: its backends, policy, identity and session sealer, and what the
//! process keeps for the gateway across config versions (session activity, pooled backend
//! sessions for stateless clients, stdio children).

use super::session::{Activity, BackendSession, Sealer};
use super::stdio::{DEFAULT_MAX_MESSAGE_BYTES, StdioCommand, StdioServer};
use super::upstream::{HttpClient, Transport, Upstream, http_client, resolve_headers};
use crate::config::DefaultAction;
use crate::config::{
    Credentials, FailureMode, GatewayConfig, Layer, McpConfig, McpEndpoint, McpServerConfig, SESSION_KEY,
};
use crate::gateway::identity::Identity;
use crate::gateway::state::Shared;
use crate::gateway::store::Store;
use crate::policy::{PolicyIndex, glob_match, split_tool_name};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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

fn process_states() -> &'static Mutex<HashMap<String, Arc<GatewayState>>> {
    static S: OnceLock<Mutex<HashMap<String, Arc<GatewayState>>>> = OnceLock::new();
    S.get_or_init(Default::default)
}

fn http() -> HttpClient {
    static C: OnceLock<HttpClient> = OnceLock::new();
    C.get_or_init(http_client).clone()
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
    /// Limits.
    pub store: Store,
    /// `None` for the memory store.
    pub failure_mode: Option<FailureMode>,
    /// Key prefix in the store.
    pub store_prefix: String,
    /// Largest request body.
    pub max_body: usize,
    /// Kept across config versions.
    pub state: Arc<GatewayState>,
    /// Metrics (in the process's registry).
    pub metrics: super::audit::McpMetrics,
    /// Items per page of the gateway's own lists ([`super::dispatch::PAGE_SIZE`]).
    pub page_size: usize,
}

impl McpRuntime {
    /// Builds a runtime; an error names what is wrong (the previous config stays in service).
    pub fn build(
        config: GatewayConfig,
        credentials: &Credentials,
        shared: &Shared,
    ) -> Result<McpRuntime, String> {
        if config.gateway.layer != Layer::Mcp {
            return Err(format!("gateway {} is not an MCP gateway", config.gateway));
        }
        let gateway = format!("{}/{}", config.gateway.namespace, config.gateway.name);
        let mcp = config.mcp.clone().unwrap_or(McpConfig {
            servers: vec![],
            session_idle_timeout_ms: 3_600_000,
            oauth: None,
            allowed_origins: vec![],
        });
        let state = process_states()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(gateway.clone())
            .or_default()
            .clone();
        let secret = match credentials.0.get(SESSION_KEY) {
            Some(k) => k.clone(),
            None => state.local_secret.get_or_init(Sealer::random_secret).clone(),
        };
        let max_body = usize::try_from(config.listener.max_request_bytes).unwrap_or(usize::MAX);
        let mut servers = mcp.servers.clone();
        servers.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        let mut upstreams = Vec::new();
        let mut by_prefix = HashMap::new();
        let mut live_stdio = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            let headers = resolve_headers(&s.headers, credentials)
                .map_err(|e| format!("MCP server '{}': {e}", s.name))?;
            let transport = match &s.endpoint {
                McpEndpoint::Http { url } => Transport::Http {
                    url: url.parse().map_err(|e| format!("MCP server '{}': url {url:?}: {e}", s.name))?,
                    client: http(),
                },
                McpEndpoint::Stdio { command, env, secret_env, per_session } => {
                    let mut env = env.clone();
                    for (k, r) in secret_env {
                        let v = credentials.get(r).ok_or_else(|| {
                            format!("MCP server '{}': credential '{}' is missing", s.name, r.id)
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
        let (store, failure_mode) = shared.store_for(&config, credentials)?;
        Ok(McpRuntime {
            policy: PolicyIndex::new(&config.policy),
            identity: Identity::new(&config.auth, &shared.jwks),
            sealer: Sealer::new(&secret, &gateway),
            store_prefix: crate::gateway::store::namespace_prefix(&config.gateway.namespace),
            gateway,
            mcp,
            servers,
            upstreams,
            by_prefix,
            store,
            failure_mode,
            max_body,
            state,
            metrics: shared.metrics.mcp.clone(),
            page_size: super::dispatch::PAGE_SIZE,
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
        if let Some((p, u)) = uri.split_once(super::dispatch::URI_SEPARATOR)
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
