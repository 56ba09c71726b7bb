//! The tools each MCPServer offers, discovered by the operator as an MCP client of the server —
//! with the MCP gateway's own client ([`crate::gateway::mcp::upstream`]), so both protocol eras
//! (a `server/discover` first, `initialize` for a session-era server), the server's headers and
//! credentials, and the egress rule of the MCPGateway that serves it, exactly as that gateway
//! reaches it.
//!
//! One task per MCPServer: list the tools (every page), then wait on the server's standalone
//! stream (session era: `GET`; 2026-07-28: `subscriptions/listen`) for
//! `notifications/tools/list_changed`, and list again when it comes, when the stream ends, or
//! after [`RELIST`] at the latest (every [`POLL`] for a server without a stream). A failure
//! (unreachable, [`FETCH_TIMEOUT`](super::FETCH_TIMEOUT) passed, garbage) right after a success is
//! tried once more at once, then reported and retried after 1 s doubling to 8 s; meanwhile the status keeps the last list with the time it was seen and
//! `Discovered=False` names what went wrong.

use super::{CONNECT_TIMEOUT, Cache, FETCH_TIMEOUT, Hooks, Problem, Tasks, now, push, retry_delay};
use crate::api::{DiscoveredTool, MCPServer, ObjectRef};
use crate::compile::Output;
use crate::gateway::http_client::HttpClient;
use crate::gateway::jsonrpc::{Message, Request};
use crate::gateway::mcp::protocol::LATEST_SESSION_VERSION;
use crate::gateway::mcp::replies::UpstreamError;
use crate::gateway::mcp::upstream::{Transport, Upstream, collect_pages, resolve_headers};
use crate::operator::status::cond::Cond;
use crate::policy::egress::EgressPolicy;
use crate::policy::{client_tool_name, glob_match};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Longest time a listed server goes without a fresh list.
pub const RELIST: Duration = Duration::from_secs(300);
/// How often a server without a standalone stream is listed.
pub const POLL: Duration = Duration::from_secs(15);
/// The wait before a failure right after a success is tried again (and only then reported).
const CONFIRM: Duration = Duration::from_millis(200);
/// Most tools a status lists (`toolsOmitted` counts the rest).
pub const MAX_TOOLS: usize = 500;
/// Most pages of `tools/list` followed.
const MAX_PAGES: usize = 100;
/// Largest message accepted from a server.
const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// What a discovery task fetches; a change restarts the task.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    uid: String,
    /// The MCPGateway whose view this is.
    gateway: String,
    url: String,
    /// Header names and values, credentials resolved.
    headers: Vec<(String, String)>,
    timeout: Duration,
    egress: EgressPolicy,
}

/// What the operator last saw of one server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seen {
    /// The tools it listed last, sorted by name; kept while it is down.
    pub tools: Option<Vec<String>>,
    /// The protocol version it spoke.
    pub protocol: Option<String>,
    /// When `tools` was seen: when the list last changed, or the last success before a failure.
    pub seen_at: Option<Time>,
    /// The last success (not shown: it would rewrite status on every list).
    last_ok: Option<Time>,
    /// Why the last try failed.
    pub problem: Option<Problem>,
}

impl Seen {
    /// What a stored status says was seen.
    fn stored(st: &crate::api::MCPServerStatus) -> Self {
        let mut tools: Vec<String> = st.tools.iter().map(|t| t.name.clone()).collect();
        tools.sort();
        Seen {
            tools: st.tool_count.is_some().then_some(tools),
            protocol: st.protocol_version.clone(),
            seen_at: st.tools_seen_at.clone(),
            last_ok: None,
            problem: Problem::stored(&st.conditions, "Discovered"),
        }
    }
}

/// Discovery of every MCPServer of a scope.
pub struct Discovery {
    hooks: Hooks,
    tasks: Tasks<Target>,
    seen: Arc<Cache<Seen>>,
}

impl Discovery {
    /// Discovery for the servers of `hooks.index`.
    pub fn new(hooks: Hooks) -> Self {
        Discovery { hooks, tasks: Tasks::new(), seen: Arc::new(Cache::new()) }
    }

    /// The target of `server`: the first MCPGateway (by name) whose compiled config serves it,
    /// or why there is none.
    fn target(&self, server: &MCPServer, compiled: &Output) -> Result<Target, Problem> {
        let name = server.name_any();
        let ns = server.namespace().unwrap_or_default();
        let mut refs: Vec<&str> = server.spec.gateway_refs.iter().map(|r| r.name.as_str()).collect();
        refs.sort();
        for gw in refs {
            let Some(cg) = compiled.gateway(&ns, gw, crate::config::Layer::Mcp) else { continue };
            let Some(s) = cg.config.mcp.iter().flat_map(|m| &m.servers).find(|s| s.name == name) else {
                continue;
            };
            let url = match &s.endpoint {
                crate::config::McpEndpoint::Http { url } => url.clone(),
                crate::config::McpEndpoint::Stdio { .. } => {
                    return Err(Problem::new(
                        "NotDiscoverable",
                        "A stdio server runs inside the gateway: the operator cannot list its tools",
                    ));
                }
            };
            let headers = resolve_headers(&s.headers, &cg.credentials, format!("MCP server '{name}'"))
                .map_err(|e| Problem::new("InvalidHeaders", e.to_string()))?;
            let headers = headers
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            let egress = crate::gateway::egress::policy_of(&cg.config)
                .map_err(|e| Problem::new("InvalidEgress", e.to_string()))?;
            return Ok(Target {
                uid: server.uid().unwrap_or_default(),
                gateway: gw.to_string(),
                url,
                headers,
                timeout: Duration::from_millis(s.timeout_ms.max(1)).min(FETCH_TIMEOUT),
                egress,
            });
        }
        Err(Problem::new(
            "NotServed",
            "No MCPGateway serves this server yet: the operator lists its tools as a gateway that serves it reaches it",
        ))
    }

    /// Adds `tools`, `toolCount`, `toolsSeenAt`, `protocolVersion` and `Discovered` to the
    /// status of `server`.
    pub fn augment(&self, server: &MCPServer, compiled: &Output, desired: &mut Value) {
        let r = ObjectRef::new("MCPServer", &server.namespace().unwrap_or_default(), &server.name_any());
        if self.seen.get(&r).is_none()
            && let Some(st) = &server.status
        {
            // After a restart (or a new leader), start from what status says, so that a server
            // that still lists the same tools changes nothing.
            self.seen.update(&r, |s| *s = Seen::stored(st));
        }
        match self.target(server, compiled) {
            Ok(t) => {
                let (hooks, seen) = (self.hooks.clone(), self.seen.clone());
                let r2 = r.clone();
                self.tasks.ensure(&r, t, move |t| run(hooks, seen, r2, t.clone()));
            }
            Err(p) => {
                // No task, so nothing to forget the entry when the server goes: status keeps the
                // last list, and the next reconcile starts from it again.
                self.tasks.stop(&r);
                let mut seen = self.seen.get(&r).unwrap_or_default();
                self.seen.remove(&r);
                seen.problem = Some(p);
                write(server, &seen, desired);
                return;
            }
        }
        let Some(seen) = self.seen.get(&r) else { return };
        write(server, &seen, desired);
    }
}

/// The status fields of what was seen.
fn write(server: &MCPServer, seen: &Seen, desired: &mut Value) {
    let prefix = server.spec.prefix.clone().unwrap_or_else(|| server.name_any());
    let filter = &server.spec.tools;
    let status = desired.as_object_mut().expect("status is an object");
    if let Some(tools) = &seen.tools {
        let list: Vec<DiscoveredTool> = tools
            .iter()
            .map(|name| {
                let allowed = filter.allow.iter().any(|g| glob_match(g, name))
                    && !filter.deny.iter().any(|g| glob_match(g, name));
                DiscoveredTool {
                    name: name.clone(),
                    allowed,
                    exposed_as: allowed.then(|| client_tool_name(&prefix, name)),
                }
            })
            .collect();
        let count = list.iter().filter(|t| t.allowed).count();
        status.insert("toolCount".into(), json!(count));
        if list.len() > MAX_TOOLS {
            status.insert("toolsOmitted".into(), json!(list.len() - MAX_TOOLS));
        }
        status.insert("tools".into(), json!(list.into_iter().take(MAX_TOOLS).collect::<Vec<_>>()));
    }
    if let Some(t) = &seen.seen_at {
        status.insert("toolsSeenAt".into(), json!(t));
    }
    if let Some(v) = &seen.protocol {
        status.insert("protocolVersion".into(), json!(v));
    }
    let cond = match (&seen.problem, &seen.tools) {
        (Some(p), _) => Cond::new("Discovered", false, &p.reason, p.message.clone()),
        (None, Some(tools)) => {
            Cond::new("Discovered", true, "ToolsListed", format!("The server lists {} tools", tools.len()))
        }
        (None, None) => return,
    };
    push(desired, cond);
}

/// The discovery loop of one server.
async fn run(hooks: Hooks, seen: Arc<Cache<Seen>>, r: ObjectRef, t: Target) {
    // The gateway's own client under its egress rule, judged where it connects.
    let client = hooks.clients.for_gateway(CONNECT_TIMEOUT.as_millis() as u64, &t.egress);
    let mut failures = 0u32;
    loop {
        if hooks.ended(&r, &t.uid, &seen) {
            return;
        }
        let up = upstream(&t, &client);
        let listed = match &up {
            Ok(up) => list(up, &t).await,
            Err(p) => Err(p.clone()),
        };
        match listed {
            Ok((tools, protocol, session)) => {
                failures = 0;
                let changed = seen.update(&r, |s| {
                    let at = now();
                    if s.tools.as_ref() != Some(&tools) || s.problem.is_some() {
                        s.seen_at = Some(at.clone());
                    }
                    s.tools = Some(tools);
                    s.protocol = Some(protocol);
                    s.problem = None;
                    s.last_ok = Some(at);
                });
                if changed {
                    hooks.poke(&r);
                }
                let up = up.expect("listed through it");
                watch(&up, &session).await;
                up.close(&session).await;
                // A server that ends its stream at once is not listed more than once a second.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(p) => {
                failures += 1;
                tracing::debug!(server = %r.name, namespace = %r.namespace, reason = %p.reason, error = %p.message, "tool discovery failed");
                if failures == 1 && seen.get(&r).is_some_and(|s| s.problem.is_none() && s.tools.is_some()) {
                    // Once more before saying so: a kept-alive connection the server closed is no
                    // outage.
                    tokio::time::sleep(CONFIRM).await;
                    continue;
                }
                let changed = seen.update(&r, |s| {
                    if s.problem.is_none() && s.last_ok.is_some() {
                        s.seen_at = s.last_ok.clone();
                    }
                    s.problem = Some(p);
                });
                if changed {
                    hooks.poke(&r);
                }
                tokio::time::sleep(retry_delay(failures)).await;
            }
        }
    }
}

fn upstream(t: &Target, client: &HttpClient) -> Result<Upstream, Problem> {
    let url = t.url.parse().map_err(|e| Problem::new("InvalidURL", format!("url {:?}: {e}", t.url)))?;
    let mut headers = http::HeaderMap::new();
    for (k, v) in &t.headers {
        let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(v))
        else {
            return Err(Problem::new("InvalidHeaders", format!("header {k:?} is not a valid HTTP header")));
        };
        headers.append(k, v);
    }
    Ok(Upstream {
        name: String::new(),
        prefix: String::new(),
        transport: Transport::Http { url, client: client.clone() },
        headers,
        timeout: t.timeout,
        max_message_bytes: MAX_MESSAGE_BYTES,
        modern: Default::default(),
    })
}

/// The server's tool names (sorted), its protocol version and the session to watch.
async fn list(
    up: &Upstream,
    t: &Target,
) -> Result<(Vec<String>, String, crate::gateway::mcp::session::BackendSession), Problem> {
    let params = json!({
        "protocolVersion": LATEST_SESSION_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "cairn-operator", "version": env!("CARGO_PKG_VERSION")},
    });
    let work = async {
        let (_, session) = up.initialize(params).await?;
        let pages = collect_pages("tools/list", "tools", MAX_PAGES, |p| {
            up.call(&session, Request::new("cairn-discovery", "tools/list", p))
        })
        .await;
        match pages {
            Ok(items) => Ok((items, session)),
            Err(e) => {
                up.close(&session).await;
                Err(e)
            }
        }
    };
    // Each exchange has its own timeout (at most FETCH_TIMEOUT); this one bounds the whole
    // listing (several pages), a little later so that a server that does not answer at all is
    // reported by the first.
    let whole = FETCH_TIMEOUT + Duration::from_secs(5);
    let (items, session) = match tokio::time::timeout(whole, work).await {
        Err(_) => {
            return Err(Problem::new(
                "Timeout",
                format!("{} did not list its tools within {}s", t.url, whole.as_secs()),
            ));
        }
        Ok(Err(e)) => return Err(problem(t, &e)),
        Ok(Ok(x)) => x,
    };
    let mut names = Vec::with_capacity(items.len());
    for item in &items {
        match item.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => names.push(n.to_string()),
            _ => {
                up.close(&session).await;
                let shown: String = item.to_string().chars().take(120).collect();
                return Err(Problem::new(
                    "InvalidResponse",
                    format!("{}: tools/list lists a tool without a name: {shown}", t.url),
                ));
            }
        }
    }
    names.sort();
    names.dedup();
    let version = session.version.clone();
    Ok((names, version, session))
}

fn problem(t: &Target, e: &UpstreamError) -> Problem {
    if let UpstreamError::Connect(m) = e
        && m.contains("egress rule refuses")
    {
        return Problem::new("EgressRefused", format!("MCPGateway {:?}: {m}", t.gateway));
    }
    let url = &t.url;
    let reason = match e {
        UpstreamError::Connect(_) => "Unreachable",
        UpstreamError::Timeout => "Timeout",
        UpstreamError::Status(_) => "UnexpectedStatus",
        UpstreamError::SessionGone => "SessionLost",
        UpstreamError::Protocol(_) | UpstreamError::Stdio(_) => "InvalidResponse",
    };
    Problem::new(reason, format!("{url}: {e}"))
}

/// Waits until the list may have changed: a `tools/list_changed` notification, the end of the
/// server's stream, or [`RELIST`] (without a stream: [`POLL`]).
async fn watch(up: &Upstream, session: &crate::gateway::mcp::session::BackendSession) {
    let mut rx = match up.listen(session).await {
        Ok(Some(rx)) => rx,
        _ => {
            tokio::time::sleep(POLL).await;
            return;
        }
    };
    let deadline = tokio::time::sleep(RELIST);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            m = rx.recv() => match m {
                None => return,
                Some(Message::Notification(n)) if n.method == "notifications/tools/list_changed" => return,
                Some(_) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(allow: &[&str], deny: &[&str]) -> MCPServer {
        let yaml = format!(
            "apiVersion: cairn.dev/v1alpha1\nkind: MCPServer\nmetadata: {{name: gh, namespace: t}}\nspec: {{gatewayRefs: [{{name: tools}}], prefix: github, url: 'http://x/mcp', tools: {{allow: {allow:?}, deny: {deny:?}}}}}\n"
        );
        serde_saphyr::from_str(&yaml).unwrap()
    }

    fn status() -> Value {
        json!({"conditions": []})
    }

    #[test]
    fn tools_are_marked_allowed_or_filtered_and_counted() {
        let seen = Seen {
            tools: Some(vec!["delete_repo".into(), "get_issue".into(), "search_code".into()]),
            protocol: Some("2025-11-25".into()),
            ..Default::default()
        };
        let mut s = status();
        write(&server(&["*"], &["delete_*"]), &seen, &mut s);
        assert_eq!(
            s["tools"],
            json!([
                {"name": "delete_repo", "allowed": false},
                {"name": "get_issue", "allowed": true, "exposedAs": "github__get_issue"},
                {"name": "search_code", "allowed": true, "exposedAs": "github__search_code"},
            ])
        );
        assert_eq!(s["toolCount"], 2);
        assert_eq!(s["protocolVersion"], "2025-11-25");
        assert_eq!(s["conditions"][0]["type"], "Discovered");
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][0]["message"], "The server lists 3 tools");
    }

    #[test]
    fn a_server_that_is_down_keeps_its_last_list_and_says_why() {
        let seen = Seen {
            tools: Some(vec!["echo".into()]),
            seen_at: Some(now()),
            problem: Some(Problem::new("Unreachable", "http://x/mcp: cannot reach MCP server: refused")),
            ..Default::default()
        };
        let mut s = status();
        write(&server(&["*"], &[]), &seen, &mut s);
        assert_eq!(s["toolCount"], 1);
        assert!(s["toolsSeenAt"].is_string());
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][0]["reason"], "Unreachable");
        assert_eq!(s["conditions"][0]["message"], "http://x/mcp: cannot reach MCP server: refused");
    }

    #[test]
    fn long_lists_are_bounded_and_counted() {
        let seen = Seen { tools: Some((0..600).map(|i| format!("t{i:03}")).collect()), ..Default::default() };
        let mut s = status();
        write(&server(&["t0*"], &[]), &seen, &mut s);
        assert_eq!(s["tools"].as_array().unwrap().len(), MAX_TOOLS);
        assert_eq!(s["toolsOmitted"], 100);
        assert_eq!(s["toolCount"], 100);
    }

    fn target(url: &str) -> Target {
        Target {
            uid: String::new(),
            gateway: "tools".into(),
            url: url.into(),
            headers: vec![],
            timeout: Duration::from_secs(2),
            egress: EgressPolicy::default(),
        }
    }

    #[test]
    fn upstream_errors_name_the_url_and_what_went_wrong() {
        let t = target("http://x/mcp");
        let p = problem(&t, &UpstreamError::Protocol("expected value at line 1 column 1".into()));
        assert_eq!(p.reason, "InvalidResponse");
        assert_eq!(
            p.message,
            "http://x/mcp: MCP server sent an invalid answer: expected value at line 1 column 1"
        );
        assert_eq!(
            problem(&t, &UpstreamError::Status(500)).message,
            "http://x/mcp: MCP server answered HTTP 500"
        );
        assert_eq!(problem(&t, &UpstreamError::Timeout).reason, "Timeout");
    }

    #[tokio::test]
    async fn a_server_the_egress_rule_refuses_is_not_reached_and_said() {
        // 127.0.0.1 in a cluster, not in allowedCIDRs: the gateway's client refuses to connect
        // (a name resolving there is refused the same way, where it connects).
        let t = target("http://127.0.0.1:9/mcp");
        let client = crate::gateway::http_client::HttpClients::default().for_gateway(1000, &t.egress);
        let up = upstream(&t, &client).unwrap();
        let p = list(&up, &t).await.unwrap_err();
        assert_eq!(p.reason, "EgressRefused", "{p:?}");
        assert!(p.message.starts_with("MCPGateway \"tools\": "), "{}", p.message);
        assert!(
            p.message.contains("the gateway's egress rule refuses 127.0.0.1, a loopback address"),
            "{}",
            p.message
        );
    }
}
