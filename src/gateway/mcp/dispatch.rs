//! The MCP methods, answered over the gateway's backends: `initialize` and `server/discover`
//! fanned out; lists merged with prefixes; calls routed to the owning server.
//!
//! **Names.** Tools and prompts appear as `prefix__name` ([`TOOL_SEPARATOR`]); resource URIs as
//! `prefix+uri` (a URI scheme may contain `+`, so the rewritten URI is still a URI). A server
//! with an empty prefix (at most one per gateway) keeps its names and URIs unchanged; a name of
//! it that reads as another server's prefixed name (`gh__x` when a server has prefix `gh`) would
//! route there, so it is left out of lists with a warning rather than shadowed silently. Lists
//! are in server prefix order (the unprefixed server first), then in each backend's own order,
//! every backend page followed; the gateway answers with one page.
//!
//! **Policy.** A server's allow/deny globs apply to everyone; `PolicyIndex::check_tool` applies
//! per caller, in lists (tools the caller may not use never appear) and again on every call. A
//! caller sees a server's prompts and resources when it may use some tool of that server (or the
//! default action allows everything).
//!
//! **Failures.** A backend that fails (down, slow, garbage) is left out of lists and counted in
//! `cairn_mcp_backend_errors_total`; a call to it gets a JSON-RPC error.

use super::audit::{Arguments, ToolCall};
use super::names::{client_uri, parse_relayed_id, rewrite_from_backend};
use super::protocol::{self, Era, META_SERVER_INFO, STATELESS_VERSION};
use super::runtime::McpRuntime;
use super::session::{BackendSession, Backends, OpenSession};
use super::upstream::{Outgoing, Replies, Upstream, UpstreamError};
use super::wire::ToolCallRequest;
use crate::gateway::admission::{self, Refusal};
use crate::gateway::jsonrpc::{
    INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, Message, Notification, RATE_LIMITED,
    RESOURCE_NOT_FOUND, Request, Response, RpcError,
};
use crate::policy::{Target, client_tool_name};
use futures_util::future::join_all;
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::mpsc;

/// Most pages read from one backend for one list.
const MAX_PAGES: usize = 1000;

/// Where the next page of a list starts: sealed into the opaque `nextCursor` (so it is
/// tamper-evident and bound to the gateway) with the method it belongs to.
#[derive(serde::Serialize, serde::Deserialize)]
struct ListCursor {
    /// The list method.
    #[serde(rename = "lm")]
    method: String,
    /// Offset of the page's first item.
    #[serde(rename = "lo")]
    offset: usize,
    /// The key (name or URI) of the previous page's last item: the page starts after it when it
    /// is still in the list, so an item added or removed meanwhile does not shift the pages.
    #[serde(rename = "lk")]
    after: String,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn internal_id() -> Value {
    Value::from(format!("cairn-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)))
}

/// Who is asking, in which era, over which backend sessions.
pub struct Ctx {
    /// The runtime.
    pub rt: Arc<McpRuntime>,
    /// Caller.
    pub subject: String,
    /// Era.
    pub era: Era,
    /// The client's session (session era).
    pub session: Option<Arc<OpenSession>>,
    /// Backend sessions by prefix (session era: the sealed ones; stateless: pooled).
    pub backends: Arc<Backends>,
}

/// A client's `tools/call`: read into a request (the general path), or in its wire form.
pub enum ToolCallIn<'a> {
    /// Read into a request.
    Request(Request),
    /// Viewed in its wire form ([`super::wire`]).
    Wire(ToolCallRequest<'a>),
}

/// What a request produced: a response now, or a stream of messages ending with one.
pub enum Outcome {
    /// The response.
    Done(Response),
    /// Messages relayed from a backend, the response last.
    Stream(Replies),
    /// The backend no longer knows the session: the client must initialize again (`404`).
    SessionGone,
}

fn err(req: &Request, code: i64, msg: impl Into<String>) -> Outcome {
    fail(&req.id, code, msg)
}

/// The error answering the request with `id`.
fn fail(id: &Value, code: i64, msg: impl Into<String>) -> Outcome {
    Outcome::Done(Response::error(id.clone(), RpcError::new(code, msg)))
}

fn upstream_error(e: &UpstreamError) -> RpcError {
    RpcError::new(INTERNAL_ERROR, e.to_string())
}

/// The capabilities and instructions merged over `initialize` results.
fn merge_init(results: &[(String, Value)]) -> (Value, Option<String>) {
    let has = |k: &str| results.iter().any(|(_, r)| r.get("capabilities").and_then(|c| c.get(k)).is_some());
    let mut caps = Map::new();
    caps.insert("tools".into(), json!({"listChanged": true}));
    caps.insert("prompts".into(), json!({"listChanged": true}));
    let subscribe = results
        .iter()
        .any(|(_, r)| r.pointer("/capabilities/resources/subscribe").and_then(Value::as_bool) == Some(true));
    caps.insert("resources".into(), json!({"listChanged": true, "subscribe": subscribe}));
    if has("logging") {
        caps.insert("logging".into(), json!({}));
    }
    if has("completions") {
        caps.insert("completions".into(), json!({}));
    }
    let instructions: Vec<String> = results
        .iter()
        .filter_map(|(p, r)| r.get("instructions").and_then(Value::as_str).map(|i| format!("[{p}] {i}")))
        .collect();
    (Value::Object(caps), (!instructions.is_empty()).then(|| instructions.join("\n\n")))
}

fn server_info() -> Value {
    json!({"name": "cairn", "title": "Cairn MCP gateway", "version": env!("CARGO_PKG_VERSION")})
}

/// Initializes every backend (concurrently, each within its timeout) for a new client session;
/// returns the merged result and the backend sessions that opened.
pub async fn initialize(
    rt: &McpRuntime,
    params: &Value,
    version: &str,
) -> (Value, BTreeMap<String, BackendSession>) {
    let mut up_params = params.clone();
    if let Some(o) = up_params.as_object_mut() {
        o.insert("protocolVersion".into(), version.into());
        o.entry("capabilities").or_insert(json!({}));
        o.entry("clientInfo").or_insert(json!({"name": "cairn", "version": env!("CARGO_PKG_VERSION")}));
    }
    let futs = rt.upstreams.iter().map(|u| {
        let p = up_params.clone();
        async move { (u.clone(), u.initialize(p).await) }
    });
    let mut results = Vec::new();
    let mut sessions = BTreeMap::new();
    for (u, r) in join_all(futs).await {
        match r {
            Ok((result, s)) => {
                results.push((u.prefix.clone(), result));
                sessions.insert(u.prefix.clone(), s);
            }
            Err(e) => rt.metrics.backend_error(&rt.gateway, &u.name, "initialize", &e),
        }
    }
    let (caps, instructions) = merge_init(&results);
    let mut out = json!({"protocolVersion": version, "capabilities": caps, "serverInfo": server_info()});
    if let Some(i) = instructions {
        out["instructions"] = i.into();
    }
    (out, sessions)
}

/// The pooled backend sessions for stateless clients, opening the missing ones.
pub async fn pooled(rt: &McpRuntime) -> BTreeMap<String, BackendSession> {
    let have = rt.state.pool.lock().await.clone();
    let missing: Vec<&Arc<Upstream>> =
        rt.upstreams.iter().filter(|u| !have.contains_key(&u.prefix)).collect();
    let mut out: BTreeMap<String, BackendSession> =
        have.into_iter().filter(|(p, _)| rt.server_index(p).is_some()).collect();
    if missing.is_empty() {
        return out;
    }
    let params = json!({
        "protocolVersion": protocol::LATEST_SESSION_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "cairn", "version": env!("CARGO_PKG_VERSION")}
    });
    let futs = missing.iter().map(|u| {
        let p = params.clone();
        async move { (u, u.initialize(p).await) }
    });
    let opened = join_all(futs).await;
    let mut pool = rt.state.pool.lock().await;
    for (u, r) in opened {
        match r {
            Ok((_, s)) => {
                pool.insert(u.prefix.clone(), s.clone());
                out.insert(u.prefix.clone(), s);
            }
            Err(e) => rt.metrics.backend_error(&rt.gateway, &u.name, "initialize", &e),
        }
    }
    out
}

/// Subscribes `uri` (a gateway URI, `prefix+uri`) at the server owning it, over `backends`, for
/// `subject` (who must be allowed to see the server); whether the server accepted.
pub async fn subscribe_resource(
    rt: &McpRuntime,
    subject: &str,
    backends: &BTreeMap<String, BackendSession>,
    uri: &str,
) -> bool {
    let Some((i, orig)) = rt.route_uri(uri).filter(|(i, _)| rt.server_visible(subject, *i)) else {
        return false;
    };
    let u = &rt.upstreams[i];
    let Some(s) = backends.get(&u.prefix) else { return false };
    let req = Request::new(internal_id(), "resources/subscribe", Some(json!({ "uri": orig })));
    let answer = tokio::time::timeout(u.timeout, async {
        let mut rx = u.request(s, req).await?;
        super::upstream::final_response(&mut rx).await
    })
    .await
    .unwrap_or(Err(UpstreamError::Timeout));
    match answer {
        Ok(resp) => resp.outcome.is_ok(),
        Err(e) => {
            rt.metrics.backend_error(&rt.gateway, &u.name, "resources/subscribe", &e);
            false
        }
    }
}

impl Ctx {
    fn upstream(&self, i: usize) -> &Arc<Upstream> {
        &self.rt.upstreams[i]
    }

    /// Sends a request to server `i`; for stateless clients a pooled session the backend lost is
    /// opened again once.
    async fn request(&self, i: usize, req: Outgoing) -> Result<Replies, UpstreamError> {
        let up = self.upstream(i);
        let Some(s) = self.backends.get(&up.prefix) else {
            return Err(UpstreamError::Connect("the server was unavailable when this session opened".into()));
        };
        if self.era != Era::Stateless {
            return up.request(s, req).await;
        }
        match up.request(s, req.clone()).await {
            Err(UpstreamError::SessionGone) => {
                self.rt.state.pool.lock().await.remove(&up.prefix);
                let fresh = pooled(&self.rt).await;
                let s = fresh.get(&up.prefix).ok_or(UpstreamError::SessionGone)?;
                up.request(s, req).await
            }
            r => r,
        }
    }

    async fn call(&self, i: usize, req: Request) -> Result<Response, UpstreamError> {
        let timeout = self.upstream(i).timeout;
        let fut = async {
            let mut rx = self.request(i, req.into()).await?;
            super::upstream::final_response(&mut rx).await
        };
        tokio::time::timeout(timeout, fut).await.map_err(|_| UpstreamError::Timeout)?
    }

    /// Every item of a list method from server `i`, following its cursors.
    async fn list_all(&self, i: usize, method: &str, key: &str) -> Result<Vec<Value>, UpstreamError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = cursor.as_ref().map(|c| json!({"cursor": c}));
            let resp = self.call(i, Request::new(internal_id(), method, params)).await?;
            let result = resp.outcome.map_err(|e| UpstreamError::Protocol(format!("{method}: {e}")))?;
            match result.get(key) {
                Some(Value::Array(a)) => items.extend(a.iter().cloned()),
                _ => return Err(UpstreamError::Protocol(format!("{method}: result has no '{key}' list"))),
            }
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() && cursor.as_deref() != Some(next) => {
                    cursor = Some(next.to_string())
                }
                _ => return Ok(items),
            }
        }
        Ok(items)
    }

    /// A merged list over the servers `visible` selects, each item passed through `map`
    /// (`None` drops it).
    async fn merged(
        &self,
        method: &str,
        key: &str,
        visible: impl Fn(usize) -> bool,
        map: impl Fn(usize, Value) -> Option<Value>,
    ) -> Vec<Value> {
        let idx: Vec<usize> = (0..self.rt.upstreams.len())
            .filter(|i| self.backends.contains_key(&self.rt.upstreams[*i].prefix) && visible(*i))
            .collect();
        let lists =
            join_all(idx.iter().map(|&i| async move { (i, self.list_all(i, method, key).await) })).await;
        let mut out = Vec::new();
        for (i, r) in lists {
            match r {
                Ok(items) => out.extend(items.into_iter().filter_map(|it| map(i, it))),
                Err(e) => {
                    self.rt.metrics.backend_error(&self.rt.gateway, &self.rt.servers[i].name, method, &e)
                }
            }
        }
        out
    }

    /// The cursor of a list request: `Ok(None)` for the first page, `Err` (-32602 naming the
    /// cursor) for one this gateway did not hand out for this method.
    // The error is the answer to send, made at most once per request.
    #[allow(clippy::result_large_err)]
    fn list_cursor(&self, req: &Request) -> Result<Option<ListCursor>, Outcome> {
        let Some(c) = req.params.as_ref().and_then(|p| p.get("cursor")).filter(|c| !c.is_null()) else {
            return Ok(None);
        };
        let shown: String = match c {
            Value::String(s) => s.chars().take(80).collect(),
            other => other.to_string().chars().take(80).collect(),
        };
        let opened = c.as_str().and_then(|s| self.rt.sealer.open_value::<ListCursor>(s));
        match opened {
            Some(cur) if cur.method == req.method => Ok(Some(cur)),
            _ => Err(err(
                req,
                INVALID_PARAMS,
                format!("Invalid params: cursor {shown:?} is not a {} cursor of this gateway", req.method),
            )),
        }
    }

    /// One page of a merged list, with `nextCursor` when more follow; `field` is the items' key.
    fn list_page(
        &self,
        req: &Request,
        key: &str,
        field: &str,
        items: Vec<Value>,
        cursor: Option<ListCursor>,
    ) -> Value {
        let size = self.rt.page_size.max(1);
        let start = match &cursor {
            None => 0,
            Some(c) => items
                .iter()
                .position(|it| it.get(field).and_then(Value::as_str) == Some(c.after.as_str()))
                .map(|i| i + 1)
                .unwrap_or(c.offset)
                .min(items.len()),
        };
        let end = (start + size).min(items.len());
        let next = (end < items.len()).then(|| {
            let after = items[end - 1].get(field).and_then(Value::as_str).unwrap_or_default().to_string();
            self.rt.sealer.seal_value(&ListCursor { method: req.method.clone(), offset: end, after })
        });
        let page: Vec<Value> = items.into_iter().skip(start).take(end - start).collect();
        let mut r = json!({ key: page });
        if let Some(n) = next {
            r["nextCursor"] = n.into();
        }
        if self.era == Era::Stateless {
            r["resultType"] = "complete".into();
            r["ttlMs"] = 0.into();
            r["cacheScope"] = "private".into();
        }
        r
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request) -> Outcome {
        match req.method.as_str() {
            "ping" => Outcome::Done(req.reply(json!({}))),
            "server/discover" => self.discover(&req).await,
            "tools/list" => {
                let cursor = match self.list_cursor(&req) {
                    Ok(c) => c,
                    Err(o) => return o,
                };
                let subject = self.subject.clone();
                let rt = self.rt.clone();
                let items = self
                    .merged(
                        "tools/list",
                        "tools",
                        |_| true,
                        |i, mut t| {
                            let name = t.get("name")?.as_str()?.to_string();
                            let server = &rt.servers[i];
                            if !rt.server_exposes(i, &name)
                                || !rt.policy.check_tool(&subject, &server.name, &name).is_allowed()
                                || !reachable(&rt, i, &name, false)
                            {
                                return None;
                            }
                            t["name"] = client_tool_name(&server.prefix, &name).into();
                            Some(t)
                        },
                    )
                    .await;
                Outcome::Done(req.reply(self.list_page(&req, "tools", "name", items, cursor)))
            }
            "prompts/list" => {
                let cursor = match self.list_cursor(&req) {
                    Ok(c) => c,
                    Err(o) => return o,
                };
                let rt = self.rt.clone();
                let items = self
                    .merged(
                        "prompts/list",
                        "prompts",
                        |i| rt.server_visible(&self.subject, i),
                        |i, mut p| {
                            let name = p.get("name")?.as_str()?.to_string();
                            if !reachable(&rt, i, &name, false) {
                                return None;
                            }
                            p["name"] = client_tool_name(&rt.servers[i].prefix, &name).into();
                            Some(p)
                        },
                    )
                    .await;
                Outcome::Done(req.reply(self.list_page(&req, "prompts", "name", items, cursor)))
            }
            "resources/list" | "resources/templates/list" => {
                let (key, field) = if req.method == "resources/list" {
                    ("resources", "uri")
                } else {
                    ("resourceTemplates", "uriTemplate")
                };
                let cursor = match self.list_cursor(&req) {
                    Ok(c) => c,
                    Err(o) => return o,
                };
                let rt = self.rt.clone();
                let items = self
                    .merged(
                        &req.method,
                        key,
                        |i| rt.server_visible(&self.subject, i),
                        |i, mut r| {
                            let uri = r.get(field)?.as_str()?.to_string();
                            if !reachable(&rt, i, &uri, true) {
                                return None;
                            }
                            r[field] = client_uri(&rt.servers[i].prefix, &uri).into();
                            Some(r)
                        },
                    )
                    .await;
                Outcome::Done(req.reply(self.list_page(&req, key, field, items, cursor)))
            }
            "tools/call" => self.call_tool(ToolCallIn::Request(req)).await,
            "prompts/get" => self.get_prompt(req).await,
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => self.resource(req).await,
            "completion/complete" => self.complete(req).await,
            "logging/setLevel" => {
                let futs = (0..self.rt.upstreams.len())
                    .filter(|i| self.backends.contains_key(&self.rt.upstreams[*i].prefix))
                    .map(|i| {
                        let r = Request::new(internal_id(), "logging/setLevel", req.params.clone());
                        async move { self.call(i, r).await }
                    });
                join_all(futs).await;
                Outcome::Done(req.reply(json!({})))
            }
            "initialize" => {
                err(&req, crate::gateway::jsonrpc::INVALID_REQUEST, "the session is already initialized")
            }
            m => err(&req, METHOD_NOT_FOUND, format!("Method not found: {m}")),
        }
    }

    async fn discover(&self, req: &Request) -> Outcome {
        // Capabilities come from the pooled sessions' backends; every backend speaks the session
        // era to the gateway, which translates.
        let (caps, _) = merge_init(&[]);
        let mut result = json!({
            "resultType": "complete",
            "supportedVersions": protocol::supported_versions(),
            "capabilities": caps,
            "ttlMs": 0,
            "cacheScope": "private",
            "_meta": { META_SERVER_INFO: server_info() },
        });
        if self.era == Era::Session {
            result["supportedVersions"] = json!([STATELESS_VERSION]);
        }
        Outcome::Done(req.reply(result))
    }

    /// The request `method` with `params` (already rewritten) to send on for the client's request
    /// `id`.
    fn outgoing(&self, id: &Value, method: &str, mut params: Value) -> Request {
        if self.era == Era::Stateless {
            // The backend is spoken to in the session era: per-request protocol metadata is the
            // gateway's to consume.
            if let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) {
                meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
                if meta.is_empty() {
                    params.as_object_mut().expect("object").remove("_meta");
                }
            }
        }
        Request::new(id.clone(), method, Some(params))
    }

    /// Sends `out` (the client's request `id` of `method`) to server `i`; relays what it sends.
    async fn forward(&self, i: usize, id: &Value, method: &str, out: Outgoing) -> Outcome {
        match self.request(i, out).await {
            Ok(rx) => Outcome::Stream(rx),
            Err(UpstreamError::SessionGone) => Outcome::SessionGone,
            Err(e) => {
                self.rt.metrics.backend_error(&self.rt.gateway, &self.rt.servers[i].name, method, &e);
                Outcome::Done(Response::error(id.clone(), upstream_error(&e)))
            }
        }
    }

    /// A client's `tools/call`: checked (server, exposure, policy, limits), audited, routed.
    pub async fn call_tool(&self, call: ToolCallIn<'_>) -> Outcome {
        let (id, name): (Value, Cow<str>) = match &call {
            ToolCallIn::Request(req) => match req.param_str("name") {
                Some(n) => (req.id.clone(), Cow::Owned(n.to_string())),
                None => return err(req, INVALID_PARAMS, "tools/call needs params.name"),
            },
            ToolCallIn::Wire(w) => (w.id.clone(), Cow::Borrowed(w.name)),
        };
        let id = &id;
        let Some((i, tool)) = self.rt.route_name(&name) else {
            return fail(id, INVALID_PARAMS, format!("Unknown tool: {name}"));
        };
        let server = &self.rt.servers[i];
        let started = Instant::now();
        // What the audit line keeps of the arguments, taken now: the params go on to the server.
        let args = match &call {
            ToolCallIn::Request(req) => {
                Arguments::new(req.params.as_ref().and_then(|p| p.get("arguments")), server.audit_arguments)
            }
            ToolCallIn::Wire(w) => Arguments::from_raw(w.arguments, server.audit_arguments),
        };
        let session = self.session.as_ref().map_or("", |s| s.digest.as_str());
        let audit = |outcome: &str| {
            ToolCall {
                metrics: &self.rt.metrics,
                gateway: &self.rt.gateway,
                subject: &self.subject,
                session,
                server: &server.name,
                tool,
                arguments: &args,
            }
            .finish(outcome, started.elapsed())
        };
        if !self.rt.server_exposes(i, tool) {
            audit("not_exposed");
            return fail(id, INVALID_PARAMS, format!("Unknown tool: {name}"));
        }
        let target = Target::Tool { server: &server.name, tool };
        match admission::admit(&self.subject, target, &self.rt.policy, &self.rt.store).await {
            Ok(_) => {}
            Err(Refusal::Forbidden(d)) => {
                audit("forbidden");
                let e = RpcError::new(INVALID_PARAMS, format!("Tool {name} is not allowed: {d}"))
                    .with_data(json!({"reason": d.reason.category()}));
                return Outcome::Done(Response::error(id.clone(), e));
            }
            Err(Refusal::RateLimited { limit, retry_after, .. }) => {
                audit("rate_limited");
                let e = RpcError::new(
                    RATE_LIMITED,
                    format!(
                        "Rate limit of {limit} calls per minute reached for {name}; retry in {retry_after}s"
                    ),
                )
                .with_data(json!({"retryAfterSeconds": retry_after}));
                return Outcome::Done(Response::error(id.clone(), e));
            }
            // Tool calls carry no budget.
            Err(Refusal::OverBudget { .. }) => {}
            Err(Refusal::StoreUnavailable(_)) => {
                audit("store_unavailable");
                return fail(id, INTERNAL_ERROR, "limits store unavailable");
            }
        }
        let wire = self.backends.get(&server.prefix).is_some_and(|s| self.upstream(i).takes_wire(s));
        let out = match call {
            // As the client sent it, the name unprefixed.
            ToolCallIn::Wire(w) if wire => {
                Outgoing::Wire { id: id.clone(), body: w.forward_body(tool).into() }
            }
            call => {
                let mut params = match call {
                    ToolCallIn::Request(mut req) => req.params.take(),
                    ToolCallIn::Wire(w) => w.params_value(),
                }
                .unwrap_or_else(|| json!({}));
                params["name"] = tool.into();
                Outgoing::ToolCall(self.outgoing(id, "tools/call", params))
            }
        };
        match self.forward(i, id, "tools/call", out).await {
            Outcome::Stream(Replies::Raw(r)) => {
                // One successful response, no contents to rewrite: it goes to the client as sent.
                audit(if r.is_error { "tool_error" } else { "ok" });
                Outcome::Stream(Replies::Raw(r))
            }
            Outcome::Stream(Replies::Ready(messages)) => {
                // A JSON answer is all in: rewritten and audited here, no relay.
                let (mut out, outcome) = ready(&server.prefix, messages, call_outcome);
                if outcome.is_none() {
                    let e = RpcError::new(INTERNAL_ERROR, "MCP server closed the stream without answering");
                    out.push_back(Message::Response(Response::error(id.clone(), e)));
                }
                audit(outcome.unwrap_or("backend_error"));
                Outcome::Stream(Replies::Ready(out))
            }
            Outcome::Stream(Replies::Stream(mut rx)) => {
                // Audit when the response passes.
                let (tx, out) = mpsc::channel(64);
                let rt = self.rt.clone();
                let subject = self.subject.clone();
                let session = self.session.clone();
                let tool = tool.to_string();
                let id = id.clone();
                tokio::spawn(async move {
                    let server = &rt.servers[i];
                    let timeout =
                        tokio::time::sleep(std::time::Duration::from_millis(server.timeout_ms.max(1)));
                    tokio::pin!(timeout);
                    let mut outcome = "backend_error";
                    let mut answered = false;
                    loop {
                        let m = tokio::select! {
                            m = rx.recv() => m,
                            _ = &mut timeout => { outcome = "timeout"; break; }
                        };
                        let Some(m) = m else { break };
                        let last = matches!(m, Message::Response(_));
                        if let Message::Response(r) = &m {
                            answered = true;
                            outcome = call_outcome(r);
                        }
                        if tx.send(rewrite_from_backend(&server.prefix, m)).await.is_err() {
                            if !answered {
                                outcome = "client_gone";
                            }
                            break;
                        }
                        if last {
                            break;
                        }
                    }
                    if !answered {
                        let e = match outcome {
                            "timeout" => RpcError::new(INTERNAL_ERROR, "MCP server did not answer in time"),
                            _ => RpcError::new(
                                INTERNAL_ERROR,
                                "MCP server closed the stream without answering",
                            ),
                        };
                        let _ = tx.send(Message::Response(Response::error(id, e))).await;
                    }
                    ToolCall {
                        metrics: &rt.metrics,
                        gateway: &rt.gateway,
                        subject: &subject,
                        session: session.as_ref().map_or("", |s| s.digest.as_str()),
                        server: &server.name,
                        tool: &tool,
                        arguments: &args,
                    }
                    .finish(outcome, started.elapsed());
                });
                Outcome::Stream(Replies::Stream(out))
            }
            Outcome::Done(r) => {
                audit("backend_error");
                Outcome::Done(r)
            }
            Outcome::SessionGone => {
                audit("session_gone");
                Outcome::SessionGone
            }
        }
    }

    async fn get_prompt(&self, req: Request) -> Outcome {
        let Some(name) = req.param_str("name").map(str::to_string) else {
            return err(&req, INVALID_PARAMS, "prompts/get needs params.name");
        };
        let Some((i, prompt)) = self.rt.route_name(&name) else {
            return err(&req, INVALID_PARAMS, format!("Unknown prompt: {name}"));
        };
        if !self.rt.server_visible(&self.subject, i) {
            return err(&req, INVALID_PARAMS, format!("Unknown prompt: {name}"));
        }
        let mut params = req.params.clone().unwrap_or_else(|| json!({}));
        params["name"] = prompt.into();
        self.relay(i, &req, params).await
    }

    async fn resource(&self, req: Request) -> Outcome {
        let Some(uri) = req.param_str("uri").map(str::to_string) else {
            return err(&req, INVALID_PARAMS, format!("{} needs params.uri", req.method));
        };
        let Some((i, orig)) = self.split_uri(&uri) else {
            return err(&req, RESOURCE_NOT_FOUND, format!("Resource not found: {uri}"));
        };
        let mut params = req.params.clone().unwrap_or_else(|| json!({}));
        params["uri"] = orig.into();
        self.relay(i, &req, params).await
    }

    async fn complete(&self, req: Request) -> Outcome {
        let mut params = req.params.clone().unwrap_or_else(|| json!({}));
        let target = match params.pointer("/ref/type").and_then(Value::as_str) {
            Some("ref/prompt") => params
                .pointer("/ref/name")
                .and_then(Value::as_str)
                .and_then(|n| self.rt.route_name(n))
                .map(|(i, n)| (i, ("name", n.to_string()))),
            Some("ref/resource") => params
                .pointer("/ref/uri")
                .and_then(Value::as_str)
                .and_then(|u| self.split_uri(u))
                .map(|(i, u)| (i, ("uri", u))),
            _ => None,
        };
        let Some((i, (field, value))) = target else {
            return err(&req, INVALID_PARAMS, "completion/complete: unknown ref");
        };
        params["ref"][field] = value.into();
        self.relay(i, &req, params).await
    }

    /// `prefix+uri` (or an unprefixed server's URI) → (server, uri), for servers the caller may
    /// see.
    fn split_uri(&self, uri: &str) -> Option<(usize, String)> {
        let (i, orig) = self.rt.route_uri(uri)?;
        self.rt.server_visible(&self.subject, i).then(|| (i, orig.to_string()))
    }

    /// Forwards and rewrites what comes back.
    async fn relay(&self, i: usize, req: &Request, params: Value) -> Outcome {
        let out = Outgoing::Request(self.outgoing(&req.id, &req.method, params));
        match self.forward(i, &req.id, &req.method, out).await {
            Outcome::Stream(Replies::Ready(messages)) => {
                let (mut out, answered) = ready(&self.rt.servers[i].prefix, messages, |_| ());
                if answered.is_none() {
                    let e = RpcError::new(INTERNAL_ERROR, "MCP server did not answer");
                    out.push_back(Message::Response(Response::error(req.id.clone(), e)));
                }
                Outcome::Stream(Replies::Ready(out))
            }
            Outcome::Stream(Replies::Stream(mut rx)) => {
                let prefix = self.rt.servers[i].prefix.clone();
                let timeout = self.upstream(i).timeout;
                let id = req.id.clone();
                let (tx, out) = mpsc::channel(64);
                tokio::spawn(async move {
                    let r = tokio::time::timeout(timeout, async {
                        while let Some(m) = rx.recv().await {
                            let last = matches!(m, Message::Response(_));
                            if tx.send(rewrite_from_backend(&prefix, m)).await.is_err() || last {
                                return true;
                            }
                        }
                        false
                    })
                    .await;
                    if r != Ok(true) {
                        let e = RpcError::new(INTERNAL_ERROR, "MCP server did not answer");
                        let _ = tx.send(Message::Response(Response::error(id, e))).await;
                    }
                });
                Outcome::Stream(Replies::Stream(out))
            }
            o => o,
        }
    }

    /// A notification from the client: `cancelled` and `roots/list_changed` go to every
    /// backend of the session; others need no backend.
    pub async fn notify(&self, n: Notification) {
        if !matches!(n.method.as_str(), "notifications/cancelled" | "notifications/roots/list_changed") {
            return;
        }
        let futs = self.rt.upstreams.iter().filter_map(|u| {
            let s = self.backends.get(&u.prefix)?;
            let m = Message::Notification(n.clone());
            Some(async move { u.send(s, m).await })
        });
        join_all(futs).await;
    }

    /// A response from the client to a request a backend sent through the gateway: routed back
    /// by its rewritten id.
    pub async fn respond(&self, mut r: Response) {
        let Some((i, id)) =
            r.id.as_str().and_then(parse_relayed_id).and_then(|(p, id)| Some((self.rt.server_index(p)?, id)))
        else {
            return;
        };
        let up = self.upstream(i);
        if let Some(s) = self.backends.get(&up.prefix) {
            r.id = id;
            let _ = up.send(s, Message::Response(r)).await;
        }
    }
}

/// How a tool call ended, from its response.
fn call_outcome(r: &Response) -> &'static str {
    match &r.outcome {
        Ok(v) if v.get("isError").and_then(Value::as_bool) == Some(true) => "tool_error",
        Ok(_) => "ok",
        Err(_) => "error",
    }
}

/// The messages of an answer that is all in, up to and with its response, rewritten for the
/// client (what the relay tasks do for streams); `judge` of the response, `None` without one.
fn ready<T>(
    prefix: &str,
    messages: VecDeque<Message>,
    judge: impl Fn(&Response) -> T,
) -> (VecDeque<Message>, Option<T>) {
    let mut out = VecDeque::with_capacity(messages.len() + 1);
    for m in messages {
        let verdict = match &m {
            Message::Response(r) => Some(judge(r)),
            _ => None,
        };
        out.push_back(rewrite_from_backend(prefix, m));
        if verdict.is_some() {
            return (out, verdict);
        }
    }
    (out, None)
}

/// Whether a name (a URI with `uri`) of server `i` reaches server `i` when a client uses it: a
/// prefixed server's always does; a name of the server without a prefix that reads as another
/// server's prefixed one does not, and is left out of lists (logged: a shadowed name, never
/// served by the wrong server).
fn reachable(rt: &McpRuntime, i: usize, name: &str, uri: bool) -> bool {
    if !rt.servers[i].prefix.is_empty() {
        return true;
    }
    let routed = if uri { rt.route_uri(name) } else { rt.route_name(name) };
    if routed.is_some_and(|(j, _)| j == i) {
        return true;
    }
    tracing::warn!(target: "cairn::mcp", gateway = %rt.gateway, server = %rt.servers[i].name, name,
        "left out: the name of this server without a prefix reads as another server's prefixed name");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_capabilities_and_instructions() {
        let (caps, ins) = merge_init(&[
            ("a".into(), json!({"capabilities": {"logging": {}}, "instructions": "use a"})),
            ("b".into(), json!({"capabilities": {"resources": {"subscribe": true}}})),
        ]);
        assert_eq!(caps["resources"]["subscribe"], true);
        assert!(caps.get("logging").is_some());
        assert_eq!(ins.as_deref(), Some("[a] use a"));
    }
}
