//! The gateway's side of one MCP server, over streamable HTTP (the POST and its answer are
//! [`super::http_backend`]) or a local stdio child ([`super::stdio`]): what is sent in which era,
//! sessions opened, used and closed, standalone streams.
//!
//! Eras: an HTTP backend's era is detected once and cached (per config version) the way the
//! 2026-07-28 spec tells clients to: a `server/discover` first; a result that lists 2026-07-28
//! and no session-era version makes the backend modern (one that speaks both eras gets the
//! session era, which carries everything either kind of client can ask for); an unsupported
//! version naming session-era versions only, or anything that is not a recognised modern
//! refusal (a 4xx, another JSON-RPC error), makes it a session-era backend, which gets
//! `initialize`; a recognised modern refusal (header mismatch, missing capability, an
//! unsupported version naming no version the gateway speaks) is an error.
//!
//! A session-era backend gets one backend session per client session (and, for stateless-era
//! clients, one pooled session per replica); a modern one is spoken to statelessly: its
//! [`BackendSession`] has no id and version 2026-07-28, every request carries
//! `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` where required and the protocol `_meta`,
//! notifications are not sent (the era has none from clients over HTTP), and its standalone
//! stream is a `subscriptions/listen` stream. stdio children speak the session era.

use super::http_backend::{Post, post, pump_sse};
use super::protocol::{
    HEADER_METHOD, HEADER_NAME, HEADER_SESSION_ID, META_PROTOCOL_VERSION, META_SERVER_INFO, PROTOCOL_VERSION,
    SESSION_ID, STATELESS_VERSION, encode_header_value, is_session_version, name_field,
};
use super::replies::{Replies, UpstreamError, final_response};
use super::session::BackendSession;
use super::stdio::{StdioError, StdioServer};
use crate::config::{Credentials, HeaderConfig};
use crate::gateway::http_client::{HttpClient, failure};
use crate::gateway::jsonrpc::{HEADER_MISMATCH, MISSING_CLIENT_CAPABILITY, UNSUPPORTED_PROTOCOL_VERSION};
use crate::gateway::jsonrpc::{Message, Notification, Request, Response};
use crate::gateway::layer::BuildError;
use crate::gateway::telemetry::span;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// How a backend is reached (a few per gateway: size does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Transport {
    /// Streamable HTTP.
    Http {
        /// Endpoint.
        url: http::Uri,
        /// Client.
        client: HttpClient,
    },
    /// A local child process.
    Stdio(Arc<StdioServer>),
}

/// One backend.
pub struct Upstream {
    /// MCPServer name.
    pub name: String,
    /// Prefix.
    pub prefix: String,
    /// Transport.
    pub transport: Transport,
    /// Headers sent on every HTTP request (credentials resolved).
    pub headers: HeaderMap,
    /// Per-exchange timeout.
    pub timeout: Duration,
    /// Largest message accepted from the backend.
    pub max_message_bytes: usize,
    /// Whether the backend speaks 2026-07-28 (statelessly), once known.
    pub modern: OnceLock<bool>,
}

/// Whether a backend session is a stateless (2026-07-28) one.
pub fn is_modern(session: &BackendSession) -> bool {
    session.version.as_str() >= STATELESS_VERSION
}

/// Whether an unsupported-version error's `data.supported` names session-era versions and not
/// 2026-07-28.
fn names_only_session_versions(e: &crate::gateway::jsonrpc::RpcError) -> bool {
    let supported: Vec<&str> = e
        .data
        .as_ref()
        .and_then(|d| d.get("supported"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    supported.iter().any(|v| is_session_version(v)) && !supported.contains(&STATELESS_VERSION)
}

/// The `_meta` a stateless request carries to a backend: the gateway as the client.
fn request_meta() -> Value {
    json!({
        META_PROTOCOL_VERSION: STATELESS_VERSION,
        "io.modelcontextprotocol/clientInfo": {"name": "cairn", "version": env!("CARGO_PKG_VERSION")},
        "io.modelcontextprotocol/clientCapabilities": {},
    })
}

/// Resolves configured headers against the credentials bundle; an unresolvable header is an error
/// of `owner` (the config names a credential the bundle lacks, or a header that cannot be sent).
pub fn resolve_headers(
    headers: &[HeaderConfig],
    creds: &Credentials,
    owner: String,
) -> Result<HeaderMap, BuildError> {
    let mut out = HeaderMap::new();
    for h in headers {
        let value = match (&h.value, &h.credential) {
            (Some(v), _) => v.clone(),
            (None, Some(c)) => creds
                .get(c)
                .ok_or_else(|| BuildError::MissingCredential { owner: owner.clone(), id: c.id.clone() })?
                .to_string(),
            (None, None) => String::new(),
        };
        let bad =
            |e: &dyn std::fmt::Display| BuildError::invalid(&owner, format!("header '{}': {e}", h.name));
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| bad(&e))?;
        let value = HeaderValue::from_str(&format!("{}{value}", h.prefix)).map_err(|e| bad(&e))?;
        out.append(name, value);
    }
    Ok(out)
}

/// A request on its way to a backend.
#[derive(Clone)]
pub enum Outgoing {
    /// A request the gateway built.
    Request(Request),
    /// A `tools/call`: a plain successful answer in one JSON body comes back as
    /// [`Replies::Raw`].
    ToolCall(Request),
    /// A `tools/call` in its wire form (`body`, whose id is `id`: see
    /// [`super::wire::ToolCallRequest::forward_body`]), answered as [`Outgoing::ToolCall`].
    /// Sent as it is to a session-era HTTP backend session ([`Upstream::takes_wire`]), read
    /// into a request for any other.
    Wire {
        /// The request's id.
        id: Value,
        /// The request.
        body: Bytes,
    },
}

impl From<Request> for Outgoing {
    fn from(r: Request) -> Self {
        Outgoing::Request(r)
    }
}

impl Outgoing {
    fn into_request(self) -> Result<Request, UpstreamError> {
        match self {
            Outgoing::Request(r) | Outgoing::ToolCall(r) => Ok(r),
            Outgoing::Wire { body, .. } => {
                let v: Value =
                    serde_json::from_slice(&body).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
                match Message::from_value(v) {
                    Ok(Message::Request(r)) => Ok(r),
                    _ => Err(UpstreamError::Protocol("not a JSON-RPC request".into())),
                }
            }
        }
    }
}

impl Upstream {
    /// Runs `initialize` with `params` and sends `notifications/initialized`; returns the result
    /// and the backend session.
    pub async fn initialize(&self, params: Value) -> Result<(Value, BackendSession), UpstreamError> {
        let requested = params.get("protocolVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        match &self.transport {
            Transport::Stdio(s) => {
                let (id, result) = s.open(Some(params)).await?;
                let version =
                    result.get("protocolVersion").and_then(Value::as_str).unwrap_or(&requested).to_string();
                Ok((result, BackendSession { id: Some(id), version }))
            }
            Transport::Http { .. } => {
                if self.modern.get() != Some(&false) {
                    match self.discover().await? {
                        Some(result) => {
                            let _ = self.modern.set(true);
                            let session = BackendSession { id: None, version: STATELESS_VERSION.into() };
                            return Ok((result, session));
                        }
                        None => {
                            let _ = self.modern.set(false);
                        }
                    }
                }
                let req = Request::new("cairn-init", "initialize", Some(params));
                let fresh = BackendSession { id: None, version: String::new() };
                let (headers, mut rx) =
                    self.http_exchange(&fresh, Message::Request(req), true, false).await?;
                let resp = tokio::time::timeout(self.timeout, final_response(&mut rx))
                    .await
                    .map_err(|_| UpstreamError::Timeout)??;
                let result =
                    resp.outcome.map_err(|e| UpstreamError::Protocol(format!("initialize failed: {e}")))?;
                let version =
                    result.get("protocolVersion").and_then(Value::as_str).unwrap_or(&requested).to_string();
                let id = headers.get(HEADER_SESSION_ID).and_then(|v| v.to_str().ok()).map(str::to_string);
                let session = BackendSession { id, version };
                let note = Message::Notification(Notification::new("notifications/initialized", None));
                self.send(&session, note).await?;
                Ok((result, session))
            }
        }
    }

    /// Era detection: `server/discover` as a stateless request. `Some` (an `initialize`-shaped
    /// result: version, capabilities, server info, instructions) when the backend speaks
    /// 2026-07-28, `None` when it is a session-era backend, `Err` when it cannot be reached or
    /// refuses the gateway with a modern error.
    async fn discover(&self) -> Result<Option<Value>, UpstreamError> {
        let modern = BackendSession { id: None, version: STATELESS_VERSION.into() };
        let req = Request::new("cairn-discover", "server/discover", Some(json!({})));
        let mut rx = match self.http_exchange(&modern, Message::Request(req), true, false).await {
            Ok((_, rx)) => rx,
            Err(UpstreamError::Status(_) | UpstreamError::Protocol(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let resp = match tokio::time::timeout(self.timeout, final_response(&mut rx)).await {
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(Err(_)) => return Ok(None),
            Ok(Ok(r)) => r,
        };
        let result = match resp.outcome {
            Ok(r) => r,
            // Version negotiation: a server naming session-era versions only is a session-era
            // server.
            Err(e) if e.code == UNSUPPORTED_PROTOCOL_VERSION && names_only_session_versions(&e) => {
                return Ok(None);
            }
            Err(e)
                if [HEADER_MISMATCH, MISSING_CLIENT_CAPABILITY, UNSUPPORTED_PROTOCOL_VERSION]
                    .contains(&e.code) =>
            {
                return Err(UpstreamError::Protocol(format!("server/discover refused: {e}")));
            }
            Err(_) => return Ok(None),
        };
        let versions: Vec<&str> = result
            .get("supportedVersions")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // A backend that speaks both eras gets the session era: it carries everything either
        // kind of client can ask for (server→client requests, resource subscriptions, standalone
        // streams), and the gateway translates for stateless clients.
        if !versions.contains(&STATELESS_VERSION) || versions.iter().any(|v| is_session_version(v)) {
            return Ok(None);
        }
        let server_info = result
            .pointer(&format!("/_meta/{}", META_SERVER_INFO.replace('/', "~1")))
            .or_else(|| result.get("serverInfo"))
            .cloned()
            .unwrap_or_else(|| json!({"name": self.name, "version": ""}));
        let mut out = json!({
            "protocolVersion": STATELESS_VERSION,
            "capabilities": result.get("capabilities").cloned().unwrap_or_else(|| json!({})),
            "serverInfo": server_info,
        });
        if let Some(i) = result.get("instructions") {
            out["instructions"] = i.clone();
        }
        Ok(Some(out))
    }

    /// Whether [`Outgoing::Wire`] goes to `session` as it is.
    pub fn takes_wire(&self, session: &BackendSession) -> bool {
        matches!(self.transport, Transport::Http { .. }) && !is_modern(session)
    }

    /// Sends a request; returns the channel its messages arrive on.
    pub async fn request(
        &self,
        session: &BackendSession,
        req: impl Into<Outgoing>,
    ) -> Result<Replies, UpstreamError> {
        let out = req.into();
        match &self.transport {
            Transport::Stdio(s) => {
                let id = session.id.as_deref().ok_or(UpstreamError::SessionGone)?;
                s.request(id, out.into_request()?).await.map(Replies::Stream).map_err(|e| match e {
                    StdioError::UnknownSession => UpstreamError::SessionGone,
                    e => e.into(),
                })
            }
            Transport::Http { .. } => {
                let (msg, raw) = match out {
                    Outgoing::Wire { id, body } if self.takes_wire(session) => {
                        return Ok(self.http_post(session, body, Vec::new(), Some(id), false, true).await?.1);
                    }
                    Outgoing::Request(r) => (r, false),
                    out @ (Outgoing::ToolCall(_) | Outgoing::Wire { .. }) => (out.into_request()?, true),
                };
                Ok(self.http_exchange(session, Message::Request(msg), false, raw).await?.1)
            }
        }
    }

    /// Sends a request and waits (up to the timeout) for its response.
    pub async fn call(&self, session: &BackendSession, req: Request) -> Result<Response, UpstreamError> {
        let fut = async {
            let mut rx = self.request(session, req).await?;
            final_response(&mut rx).await
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| UpstreamError::Timeout)?
    }

    /// Sends a notification or a response (`202` expected).
    pub async fn send(&self, session: &BackendSession, msg: Message) -> Result<(), UpstreamError> {
        match &self.transport {
            Transport::Stdio(s) => {
                let id = session.id.as_deref().ok_or(UpstreamError::SessionGone)?;
                Ok(s.send(id, msg).await?)
            }
            Transport::Http { .. } => {
                let fut = self.http_exchange(session, msg, false, false);
                tokio::time::timeout(self.timeout, fut).await.map_err(|_| UpstreamError::Timeout)??;
                Ok(())
            }
        }
    }

    /// Opens the backend's standalone stream (GET); `None` when it has none (`405`).
    pub async fn listen(
        &self,
        session: &BackendSession,
    ) -> Result<Option<mpsc::UnboundedReceiver<Message>>, UpstreamError> {
        match &self.transport {
            Transport::Stdio(s) => {
                let id = session.id.as_deref().ok_or(UpstreamError::SessionGone)?;
                Ok(Some(s.listen(id).await?))
            }
            Transport::Http { .. } if is_modern(session) => self.listen_modern(session).await,
            Transport::Http { url, client } => {
                let mut req = http::Request::new(Full::new(Bytes::new()));
                *req.uri_mut() = url.clone();
                req.headers_mut().insert(http::header::ACCEPT, HeaderValue::from_static("text/event-stream"));
                self.common_headers(req.headers_mut(), session)?;
                let resp = tokio::time::timeout(self.timeout, client.request(req))
                    .await
                    .map_err(|_| UpstreamError::Timeout)?
                    .map_err(|e| UpstreamError::Connect(failure(&e, &url.to_string())))?;
                match resp.status() {
                    StatusCode::OK => {}
                    StatusCode::METHOD_NOT_ALLOWED => return Ok(None),
                    StatusCode::NOT_FOUND if session.id.is_some() => return Err(UpstreamError::SessionGone),
                    s => return Err(UpstreamError::Status(s.as_u16())),
                }
                let (tx, rx) = mpsc::unbounded_channel();
                let max = self.max_message_bytes;
                let body = resp.into_body();
                tokio::spawn(async move {
                    // Nobody listens any more: let go of the backend's stream now, not at its next
                    // message.
                    let tx = &tx;
                    pump_sse(body, max, tx.closed(), |m| std::future::ready(tx.send(m).is_ok())).await;
                });
                Ok(Some(rx))
            }
        }
    }

    /// A modern backend's unsolicited messages: a `subscriptions/listen` stream opted in to every
    /// list change, its acknowledgement and subscription tags taken off. `None` when the backend
    /// offers no subscriptions (it answers the request instead of acknowledging it).
    async fn listen_modern(
        &self,
        session: &BackendSession,
    ) -> Result<Option<mpsc::UnboundedReceiver<Message>>, UpstreamError> {
        const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
        let all = json!({"notifications": {
            "toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true
        }});
        let req = Request::new("cairn-listen", "subscriptions/listen", Some(all));
        let (_, mut rx) = self.http_exchange(session, Message::Request(req), false, false).await?;
        match tokio::time::timeout(self.timeout, rx.recv()).await.map_err(|_| UpstreamError::Timeout)? {
            Some(Message::Notification(n)) if n.method == "notifications/subscriptions/acknowledged" => {}
            _ => return Ok(None),
        }
        let (tx, out) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let m = tokio::select! {
                    m = rx.recv() => m,
                    _ = tx.closed() => return,
                };
                let Some(Message::Notification(mut n)) = m else { return };
                if let Some(meta) =
                    n.params.as_mut().and_then(|p| p.get_mut("_meta")).and_then(Value::as_object_mut)
                {
                    meta.remove(SUBSCRIPTION_ID);
                    if meta.is_empty() {
                        n.params.as_mut().and_then(Value::as_object_mut).map(|p| p.remove("_meta"));
                    }
                }
                if tx.send(Message::Notification(n)).is_err() {
                    return;
                }
            }
        });
        Ok(Some(out))
    }

    /// Ends the backend session (best effort).
    pub async fn close(&self, session: &BackendSession) {
        match &self.transport {
            Transport::Stdio(s) => {
                if let Some(id) = &session.id {
                    s.close(id).await;
                }
            }
            Transport::Http { url, client } => {
                if session.id.is_none() {
                    return;
                }
                let mut req = http::Request::new(Full::new(Bytes::new()));
                *req.method_mut() = Method::DELETE;
                *req.uri_mut() = url.clone();
                if self.common_headers(req.headers_mut(), session).is_ok() {
                    let _ = tokio::time::timeout(self.timeout, client.request(req)).await;
                }
            }
        }
    }

    /// Adds the configured headers and the session's to `h`.
    fn common_headers(&self, h: &mut HeaderMap, session: &BackendSession) -> Result<(), UpstreamError> {
        let bad = |e: http::header::InvalidHeaderValue| UpstreamError::Protocol(e.to_string());
        for (k, v) in &self.headers {
            h.append(k, v.clone());
        }
        if let Some(id) = &session.id {
            h.append(SESSION_ID, HeaderValue::from_str(id).map_err(bad)?);
        }
        if !session.version.is_empty() {
            h.append(PROTOCOL_VERSION, HeaderValue::from_str(&session.version).map_err(bad)?);
        }
        Ok(())
    }

    /// POSTs one message. For a request, the returned channel yields what the backend sends for
    /// it (from a JSON body or an SSE stream) and closes after the response; with `raw_answer`,
    /// a JSON body holding one successful response comes as [`Replies::Raw`].
    async fn http_exchange(
        &self,
        session: &BackendSession,
        msg: Message,
        initialize: bool,
        raw_answer: bool,
    ) -> Result<(HeaderMap, Replies), UpstreamError> {
        let mut msg = msg;
        let mut modern_headers: Vec<(&'static str, String)> = Vec::new();
        if is_modern(session) {
            // No session, so nothing for notifications and responses to belong to: the era has
            // none from clients over HTTP (a request is cancelled by closing its stream).
            let Message::Request(r) = &mut msg else {
                return Ok((HeaderMap::new(), Replies::Ready(Default::default())));
            };
            let params = r.params.get_or_insert_with(|| json!({}));
            if let Some(p) = params.as_object_mut() {
                let meta = p.entry("_meta").or_insert_with(|| json!({}));
                if let (Some(m), Value::Object(add)) = (meta.as_object_mut(), request_meta()) {
                    m.extend(add);
                }
            }
            modern_headers.push((HEADER_METHOD, encode_header_value(&r.method)));
            if let Some(v) = name_field(&r.method).and_then(|f| r.params.as_ref()?.get(f)?.as_str()) {
                modern_headers.push((HEADER_NAME, encode_header_value(v)));
            }
        }
        let body = Bytes::from(serde_json::to_vec(&msg).expect("json"));
        let want_id = match msg {
            Message::Request(r) => Some(r.id),
            _ => None,
        };
        self.http_post(session, body, modern_headers, want_id, initialize, raw_answer).await
    }

    /// POSTs one message (`body`; `want_id`: the id of the request it is) with `extra` headers;
    /// see [`Upstream::http_exchange`].
    async fn http_post(
        &self,
        session: &BackendSession,
        body: Bytes,
        extra: Vec<(&'static str, String)>,
        want_id: Option<Value>,
        initialize: bool,
        raw_answer: bool,
    ) -> Result<(HeaderMap, Replies), UpstreamError> {
        let Transport::Http { url, client } = &self.transport else {
            unreachable!("http_exchange on a stdio backend")
        };
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(http::header::ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        self.common_headers(&mut h, session)?;
        // The trace context of the span the call runs in (a tool call's upstream span).
        span::inject(&tracing::Span::current(), &mut h);
        for (k, v) in extra {
            let v = HeaderValue::from_str(&v).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
            h.append(HeaderName::from_static(k), v);
        }
        let to = Post {
            url,
            client,
            headers: h,
            timeout: self.timeout,
            max_message_bytes: self.max_message_bytes,
            in_session: session.id.is_some() && !initialize,
        };
        post(to, body, want_id, raw_answer).await
    }
}

/// Every item of a list method (`tools/list` → `tools`), following the server's cursors for at
/// most `max_pages` pages; `page` sends one page's request with the params it is given.
pub async fn collect_pages<F, Fut>(
    method: &str,
    key: &str,
    max_pages: usize,
    mut page: F,
) -> Result<Vec<Value>, UpstreamError>
where
    F: FnMut(Option<Value>) -> Fut,
    Fut: std::future::Future<Output = Result<Response, UpstreamError>>,
{
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..max_pages {
        let resp = page(cursor.as_ref().map(|c| json!({"cursor": c}))).await?;
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
