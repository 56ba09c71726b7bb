//! The streamable-HTTP front of an MCP gateway: one endpoint (`/mcp`, also `/`) serving both
//! eras, plus the OAuth Protected Resource Metadata document.
//!
//! Order of checks on a request: path; `Origin` (`403` with a JSON-RPC error when present and
//! neither the gateway's own host nor in `allowedOrigins`: [`crate::gateway::origin`]); caller
//! identity (`401`, with `WWW-Authenticate: Bearer resource_metadata=…` when the gateway is an
//! OAuth resource server); body size (`413`); JSON (`400` + `-32700`); era and its rules (see
//! [`super::protocol`]); then the method.

// Errors here are the responses to send, made at most once per request.
#![allow(clippy::result_large_err)]

use super::dispatch::{self, Ctx, Outcome, ToolCallIn};
use super::events::{Recorded, Recorder, ResumeError, StreamKind};
use super::protocol::{self, Era, HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID, STATELESS_VERSION};
use super::runtime::McpRuntime;
use super::session::{OpenSession, SessionKey, SessionState};
use super::streams::SessionStreams;
use super::upstream::Replies;
use super::wire::ToolCallRequest;
use crate::gateway::identity::AuthError;
use crate::gateway::jsonrpc::{
    self, Body as RpcBody, INVALID_REQUEST, Message, Request, Response as RpcResponse, RpcError,
};
use crate::gateway::sse::{encode_comment, encode_named};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request as HttpRequest, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Response body.
pub type Body = BoxBody<Bytes, Infallible>;

/// The well-known path of Protected Resource Metadata (RFC 9728).
pub const PRM_PATH: &str = "/.well-known/oauth-protected-resource";
/// SSE keep-alive interval on standalone streams.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response<Body> {
    json_bytes(status, serde_json::to_vec(v).expect("json"))
}

fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn rpc_error(status: StatusCode, id: Value, e: RpcError) -> Response<Body> {
    json_response(status, &RpcResponse::error(id, e).to_value())
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(text.to_string()))
        .expect("valid response")
}

fn empty(status: StatusCode) -> Response<Body> {
    Response::builder().status(status).body(full(Bytes::new())).expect("valid response")
}

/// The HTTP status an error gets in the stateless era (the session era answers `200`).
fn stateless_status(e: &RpcError) -> StatusCode {
    match e.code {
        jsonrpc::HEADER_MISMATCH
        | jsonrpc::UNSUPPORTED_PROTOCOL_VERSION
        | jsonrpc::MISSING_CLIENT_CAPABILITY => StatusCode::BAD_REQUEST,
        jsonrpc::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// `resource_metadata` URL for the gateway's resource: the well-known path with the resource's
/// path appended (RFC 9728 §3.1).
pub fn metadata_url(resource: &str) -> String {
    match resource.parse::<http::Uri>() {
        Ok(u) if u.scheme().is_some() && u.authority().is_some() => {
            let path = u.path().trim_end_matches('/');
            format!(
                "{}://{}{PRM_PATH}{path}",
                u.scheme_str().unwrap_or("https"),
                u.authority().expect("checked")
            )
        }
        _ => format!("{resource}{PRM_PATH}"),
    }
}

fn unauthorized(rt: &McpRuntime, e: &AuthError) -> Response<Body> {
    let mut b = Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(o) = &rt.mcp.oauth {
        let mut v = format!("Bearer resource_metadata=\"{}\"", metadata_url(&o.resource));
        if !o.scopes.is_empty() {
            v.push_str(&format!(", scope=\"{}\"", o.scopes.join(" ")));
        }
        if !matches!(e, AuthError::Missing) {
            v.push_str(", error=\"invalid_token\"");
        }
        b = b.header(http::header::WWW_AUTHENTICATE, v);
    } else {
        b = b.header(http::header::WWW_AUTHENTICATE, "Bearer");
    }
    let body = RpcResponse::error(Value::Null, RpcError::new(INVALID_REQUEST, e.to_string())).to_value();
    b.body(full(serde_json::to_vec(&body).expect("json"))).expect("valid response")
}

fn prm(rt: &McpRuntime) -> Response<Body> {
    let Some(o) = &rt.mcp.oauth else { return plain(StatusCode::NOT_FOUND, "not found") };
    let mut doc = json!({
        "resource": o.resource,
        "authorization_servers": o.authorization_servers,
        "bearer_methods_supported": ["header"],
        "resource_name": format!("Cairn MCP gateway {}", rt.gateway),
    });
    if !o.scopes.is_empty() {
        doc["scopes_supported"] = json!(o.scopes);
    }
    json_response(StatusCode::OK, &doc)
}

fn sse_event(m: &Message) -> Bytes {
    encode_named("message", &serde_json::to_string(m).expect("json"))
}

/// Serves one request.
pub async fn handle<B>(rt: Arc<McpRuntime>, req: HttpRequest<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path();
    if path.strip_prefix(PRM_PATH).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')) {
        return prm(&rt);
    }
    if !(path == "/mcp" || path == "/" || path == "/mcp/") {
        return plain(StatusCode::NOT_FOUND, "not found: the MCP endpoint is /mcp");
    }
    if let Err(e) = crate::gateway::origin::check(&req, &rt.mcp.allowed_origins) {
        return rpc_error(StatusCode::FORBIDDEN, Value::Null, RpcError::new(INVALID_REQUEST, e.to_string()));
    }
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let subject = match rt.identity.authenticate(&headers, &rt.policy).await {
        Ok(s) => s,
        Err(e) => return unauthorized(&rt, &e),
    };
    match parts.method {
        // Boxed: the server moves the future it gets a few times per request, and most of the
        // size of this one would be the POST's.
        Method::POST => Box::pin(post(rt, subject, headers, body)).await,
        Method::GET => get(rt, subject, headers).await,
        Method::DELETE => delete(rt, subject, headers).await,
        _ => Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(http::header::ALLOW, "GET, POST, DELETE")
            .body(full(Bytes::new()))
            .expect("valid response"),
    }
}

/// The session a request names: `Err` is the response to send (400 without one, 404 for an
/// unknown, expired, ended or someone else's session).
fn open_session(
    rt: &McpRuntime,
    subject: &str,
    headers: &HeaderMap,
) -> Result<Arc<OpenSession>, Response<Body>> {
    let id = match protocol::header(headers, &protocol::SESSION_ID) {
        Ok(Some(id)) => id,
        Ok(None) => {
            return Err(plain(StatusCode::BAD_REQUEST, "Bad Request: Mcp-Session-Id header is required"));
        }
        Err(e) => return Err(plain(StatusCode::BAD_REQUEST, &format!("Bad Request: {e}"))),
    };
    let gone = || plain(StatusCode::NOT_FOUND, "Session not found: initialize a new session");
    let Some(s) = rt.sealer.open_session(id) else { return Err(gone()) };
    if s.subject != subject || !rt.state.activity.touch(s.key, s.opened, now_secs(), rt.idle_secs()) {
        return Err(gone());
    }
    Ok(s)
}

/// Checks `MCP-Protocol-Version` on a session-era request: absent (taken as 2025-03-26) or a
/// version the gateway speaks passes; any other value is `400`. The transport spec's rule, word
/// for word: "If the server receives a request with an invalid or unsupported
/// MCP-Protocol-Version, it MUST respond with 400 Bad Request." A supported version other than
/// the session's is not refused: the session keeps the version it negotiated.
fn session_version(headers: &HeaderMap) -> Result<(), Response<Body>> {
    match protocol::header(headers, &protocol::PROTOCOL_VERSION) {
        Ok(None) => Ok(()),
        Ok(Some(v)) if protocol::is_session_version(v) => Ok(()),
        Ok(Some(v)) => Err(plain(
            StatusCode::BAD_REQUEST,
            &format!("Bad Request: Unsupported MCP-Protocol-Version: {v}"),
        )),
        Err(e) => Err(plain(StatusCode::BAD_REQUEST, &format!("Bad Request: {e}"))),
    }
}

async fn read_body<B>(rt: &McpRuntime, body: B) -> Result<Bytes, Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // In a task of its own, not the connection's (see `server::read_body`).
    match crate::gateway::server::read_body(body, rt.max_body).await {
        Ok(c) => Ok(c),
        Err(crate::gateway::server::BodyError::TooLarge(_)) => Err(rpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            Value::Null,
            RpcError::new(INVALID_REQUEST, format!("message over the {}-byte limit", rt.max_body)),
        )),
        Err(crate::gateway::server::BodyError::Read(_)) => {
            Err(plain(StatusCode::BAD_REQUEST, "Bad Request: could not read the body"))
        }
    }
}

async fn post<B>(rt: Arc<McpRuntime>, subject: String, headers: HeaderMap, body: B) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bytes = match read_body(&rt, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let header_version = protocol::header(&headers, &protocol::PROTOCOL_VERSION).ok().flatten();
    let stateless_header = header_version.is_some_and(|v| v >= STATELESS_VERSION);
    if !stateless_header && let Some(call) = ToolCallRequest::parse(&bytes) {
        // The common case, read without building values (a session-era tools/call; see
        // `super::wire`): the same checks as below, in the same order.
        let (ctx, replay) = match session_ctx(rt, subject, &headers) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let id = call.id.clone();
        return answer(ctx.call_tool(ToolCallIn::Wire(call)).await, id, Era::Session, &headers, Some(replay))
            .await;
    }
    let parsed = match jsonrpc::parse_body(&bytes) {
        Ok(p) => p,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &e.to_value()),
    };
    let single = match parsed {
        RpcBody::Batch(items) => {
            if stateless_header {
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    Value::Null,
                    RpcError::new(INVALID_REQUEST, "batches are not allowed in protocol version 2026-07-28"),
                );
            }
            return batch(rt, subject, headers, items).await;
        }
        RpcBody::Single(v) => v,
    };
    let msg = match Message::from_value(single) {
        Ok(m) => m,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &e.to_value()),
    };
    let stateless = stateless_header
        || match &msg {
            Message::Request(r) => {
                r.method == "server/discover" || protocol::meta_version(r.params.as_ref()).is_some()
            }
            _ => false,
        };
    if stateless {
        return post_stateless(rt, subject, headers, msg).await;
    }
    // Session era.
    if let Message::Request(r) = &msg
        && r.method == "initialize"
    {
        return initialize(rt, subject, r).await;
    }
    let (ctx, replay) = match session_ctx(rt, subject, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match msg {
        Message::Request(r) => {
            let id = r.id.clone();
            answer(ctx.handle(r).await, id, Era::Session, &headers, Some(replay)).await
        }
        Message::Notification(n) => {
            ctx.notify(n).await;
            empty(StatusCode::ACCEPTED)
        }
        Message::Response(r) => {
            ctx.respond(r).await;
            empty(StatusCode::ACCEPTED)
        }
    }
}

/// A session-era request after `initialize`: its version header checked and its session opened;
/// `Err` is the response to send.
fn session_ctx(
    rt: Arc<McpRuntime>,
    subject: String,
    headers: &HeaderMap,
) -> Result<(Ctx, Replay), Response<Body>> {
    // A supported version other than the session's is served under the session's: the spec
    // (transports, "Protocol Version Header", 2025-06-18 and 2025-11-25) refuses only "an
    // invalid or unsupported MCP-Protocol-Version" (see [`session_version`]).
    session_version(headers)?;
    let s = open_session(&rt, &subject, headers)?;
    let replay = Replay { rt: rt.clone(), nonce: s.nonce, priming: primes(&s.version) };
    let backends = s.backends.clone();
    Ok((Ctx { rt, subject, era: Era::Session, session: Some(s), backends }, replay))
}

async fn initialize(rt: Arc<McpRuntime>, subject: String, r: &Request) -> Response<Body> {
    let params = r.params.clone().unwrap_or_else(|| json!({}));
    let version = protocol::negotiate(params.get("protocolVersion").and_then(Value::as_str));
    let (result, backends) = dispatch::initialize(&rt, &params, version).await;
    // Before the client learns the session, so whatever a backend sends on its standalone stream
    // from the first request on is held for the client's GET (see [`super::streams`]).
    let listened = rt.upstreams.iter().filter_map(|u| Some((u.clone(), backends.get(&u.prefix)?.clone())));
    let streams = SessionStreams::open(&rt.metrics, &rt.gateway, listened.collect(), "session_ended").await;
    let state = SessionState {
        subject,
        version: version.to_string(),
        opened: now_secs(),
        nonce: rt.sealer.random_u64(),
        backends,
    };
    let sid = rt.sealer.seal(&state);
    let key = SessionKey::of(&sid);
    rt.state.activity.touch(key, state.opened, state.opened, rt.idle_secs());
    if streams.any {
        super::runtime::hold(&rt.state, streams, state.nonce, key, state.opened, rt.idle_secs());
    }
    rt.metrics
        .sessions
        .get_or_create(&super::audit::SessionLabels { gateway: rt.gateway.clone(), era: "session".into() })
        .inc();
    let mut resp = json_response(StatusCode::OK, &r.reply(result).to_value());
    resp.headers_mut().insert(HEADER_SESSION_ID, HeaderValue::from_str(&sid).expect("visible ASCII"));
    resp
}

async fn post_stateless(
    rt: Arc<McpRuntime>,
    subject: String,
    headers: HeaderMap,
    msg: Message,
) -> Response<Body> {
    let r = match msg {
        Message::Request(r) => r,
        Message::Notification(n) => {
            // Notifications carry no routing headers to check beyond the version.
            if let Err(e) = protocol::check_stateless_headers(&headers, &n.method, n.params.as_ref())
                && e.code != jsonrpc::INVALID_PARAMS
            {
                return rpc_error(StatusCode::BAD_REQUEST, Value::Null, e);
            }
            return empty(StatusCode::ACCEPTED);
        }
        Message::Response(_) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                RpcError::new(INVALID_REQUEST, "clients send no responses in protocol version 2026-07-28"),
            );
        }
    };
    if let Err(e) = protocol::check_stateless_headers(&headers, &r.method, r.params.as_ref()) {
        return rpc_error(StatusCode::BAD_REQUEST, r.id.clone(), e);
    }
    if r.method == "initialize" {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            r.id.clone(),
            RpcError::new(INVALID_REQUEST, "initialize is not part of protocol version 2026-07-28"),
        );
    }
    if r.method == "subscriptions/listen" {
        return listen(rt, subject, r).await;
    }
    rt.metrics
        .sessions
        .get_or_create(&super::audit::SessionLabels { gateway: rt.gateway.clone(), era: "stateless".into() })
        .inc();
    let backends = if r.method == "server/discover" || r.method == "ping" {
        Default::default()
    } else {
        dispatch::pooled(&rt).await
    };
    let ctx = Ctx { rt, subject, era: Era::Stateless, session: None, backends: Arc::new(backends.into()) };
    let id = r.id.clone();
    answer(ctx.handle(r).await, id, Era::Stateless, &headers, None).await
}

/// Adds `resultType` to a stateless-era response.
fn modernize(era: Era, mut m: Message) -> Message {
    if era == Era::Stateless
        && let Message::Response(RpcResponse { outcome: Ok(Value::Object(o)), .. }) = &mut m
    {
        o.entry("resultType").or_insert("complete".into());
    }
    m
}

/// A response body fed by a channel.
pub struct ChanBody(pub mpsc::Receiver<Bytes>);

impl http_body::Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(http_body::Frame::data(b))))
    }
}

fn sse_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(BoxBody::new(ChanBody(rx)))
        .expect("valid response")
}

/// What a session-era SSE answer needs to record its events, so the client can resume it.
struct Replay {
    rt: Arc<McpRuntime>,
    /// The session's nonce.
    nonce: u64,
    /// Whether the stream starts with a priming event (2025-11-25 on).
    priming: bool,
}

/// Whether streams of a session of `version` start with a priming event.
fn primes(version: &str) -> bool {
    version >= "2025-11-25"
}

/// Turns an outcome into the HTTP response: JSON when the answer is the only message, SSE when
/// the backend sends progress or requests first (and the client accepts SSE). With `replay`
/// (session era) every event is recorded before it goes out, and a client that went away does
/// not end the stream: the rest is recorded until the response, for a `GET` with
/// `Last-Event-ID` to pick up (a disconnect is not a cancellation in that era).
async fn answer(
    outcome: Outcome,
    id: Value,
    era: Era,
    headers: &HeaderMap,
    replay: Option<Replay>,
) -> Response<Body> {
    let status_of = |m: &Message| match (era, m) {
        (Era::Stateless, Message::Response(RpcResponse { outcome: Err(e), .. })) => stateless_status(e),
        _ => StatusCode::OK,
    };
    let mut rx = match outcome {
        Outcome::Stream(Replies::Raw(r)) => {
            // A successful result: 200 in both eras.
            return json_bytes(StatusCode::OK, r.client_body(era == Era::Stateless));
        }
        Outcome::Done(r) => {
            let m = modernize(era, Message::Response(r));
            return json_response(status_of(&m), &m);
        }
        Outcome::SessionGone => {
            return plain(StatusCode::NOT_FOUND, "Session not found: initialize a new session");
        }
        Outcome::Stream(rx) => rx,
    };
    let lost = || {
        let m = RpcResponse::error(id, RpcError::new(jsonrpc::INTERNAL_ERROR, "MCP server did not answer"));
        json_response(StatusCode::OK, &modernize(era, Message::Response(m)))
    };
    let first = match rx.recv().await {
        None => return lost(),
        Some(m @ Message::Response(_)) => {
            let m = modernize(era, m);
            return json_response(status_of(&m), &m);
        }
        Some(m) => m,
    };
    let accepts_sse = accepts_event_stream(headers);
    if !accepts_sse {
        while let Some(m) = rx.recv().await {
            if let Message::Response(_) = m {
                let m = modernize(era, m);
                return json_response(status_of(&m), &m);
            }
        }
        return lost();
    }
    let (tx, out) = mpsc::channel::<Bytes>(64);
    // Made here, not per request: most answers are one JSON body.
    let replay = replay.map(|r| (Recorder::open(&r.rt, r.nonce, StreamKind::Request), r.priming));
    tokio::spawn(async move {
        let mut client = Some(tx);
        if let Some((rec, _)) = replay.as_ref().filter(|(_, priming)| *priming) {
            let b = rec.record(Recorded::Priming).await;
            if let Some(t) = &client
                && t.send(b).await.is_err()
            {
                client = None;
            }
        }
        let mut next = Some(first);
        loop {
            let m = match next.take() {
                Some(m) => m,
                None => match rx.recv().await {
                    Some(m) => m,
                    None => return,
                },
            };
            let m = modernize(era, m);
            let last = matches!(m, Message::Response(_));
            let bytes = match &replay {
                Some((rec, _)) => rec.message(&m).await,
                None => sse_event(&m),
            };
            if let Some(t) = &client
                && t.send(bytes).await.is_err()
            {
                // Nobody can resume a stream that is not recorded, and in the stateless era
                // closing the stream is the cancellation: stop there.
                if replay.is_none() {
                    return;
                }
                client = None;
            }
            if last {
                return;
            }
        }
    });
    sse_response(out)
}

async fn batch(
    rt: Arc<McpRuntime>,
    subject: String,
    headers: HeaderMap,
    items: Vec<Value>,
) -> Response<Body> {
    let refuse =
        |why: &str| rpc_error(StatusCode::BAD_REQUEST, Value::Null, RpcError::new(INVALID_REQUEST, why));
    if items.is_empty() {
        return refuse("an empty batch is not a valid request");
    }
    let s = match open_session(&rt, &subject, &headers) {
        Ok(s) => s,
        Err(_) if !headers.contains_key(HEADER_SESSION_ID) => {
            return refuse(
                "batches are allowed only in sessions of protocol version 2025-03-26 (and initialize cannot be batched)",
            );
        }
        Err(r) => return r,
    };
    if s.version != "2025-03-26" {
        return refuse("batches are not allowed after protocol version 2025-03-26");
    }
    let backends = s.backends.clone();
    let ctx = Ctx { rt, subject, era: Era::Session, session: Some(s), backends };
    let mut out = Vec::new();
    for item in items {
        match Message::from_value(item) {
            Err(e) => out.push(e.to_value()),
            Ok(Message::Request(r)) => {
                let resp = match ctx.handle(r.clone()).await {
                    Outcome::Done(x) => x,
                    Outcome::SessionGone => {
                        return plain(StatusCode::NOT_FOUND, "Session not found: initialize a new session");
                    }
                    Outcome::Stream(mut rx) => {
                        let mut found = None;
                        while let Some(m) = rx.recv().await {
                            if let Message::Response(x) = m {
                                found = Some(x);
                                break;
                            }
                        }
                        found.unwrap_or_else(|| {
                            r.error(RpcError::new(jsonrpc::INTERNAL_ERROR, "MCP server did not answer"))
                        })
                    }
                };
                out.push(resp.to_value());
            }
            Ok(Message::Notification(n)) => ctx.notify(n).await,
            Ok(Message::Response(r)) => ctx.respond(r).await,
        }
    }
    if out.is_empty() {
        return empty(StatusCode::ACCEPTED);
    }
    json_response(StatusCode::OK, &Value::Array(out))
}

fn resume_error(e: &ResumeError) -> Response<Body> {
    let status = match e {
        ResumeError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    plain(status, &e.to_string())
}

/// `GET`: the standalone stream, or with `Last-Event-ID` the rest of the stream that id belongs
/// to (see [`super::events`]).
async fn get(rt: Arc<McpRuntime>, subject: String, headers: HeaderMap) -> Response<Body> {
    if protocol::header(&headers, HEADER_PROTOCOL_VERSION).ok().flatten() == Some(STATELESS_VERSION) {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET is not part of protocol version 2026-07-28");
    }
    let accepts_sse = accepts_event_stream(&headers);
    if !accepts_sse {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "Not Acceptable: the standalone stream is text/event-stream",
        );
    }
    if let Err(r) = session_version(&headers) {
        return r;
    }
    let state = match open_session(&rt, &subject, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let last_event_id = match protocol::header(&headers, protocol::HEADER_LAST_EVENT_ID) {
        Ok(v) => v.map(str::to_string),
        Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("Bad Request: {e}")),
    };
    let Some(last_event_id) = last_event_id else {
        let rec = Recorder::open(&rt, state.nonce, StreamKind::Standalone);
        return standalone(rt, state, rec, Vec::new(), true).await;
    };
    let (rec, after) = match Recorder::resume(&rt, state.nonce, &last_event_id) {
        Ok(x) => x,
        Err(e) => return resume_error(&e),
    };
    let backlog = match rec.after(after, &last_event_id).await {
        Ok(b) => b,
        Err(e) => return resume_error(&e),
    };
    match rec.kind() {
        StreamKind::Standalone => standalone(rt, state, rec, backlog, false).await,
        StreamKind::Request => {
            // The replica that serves the request may still be recording its answer: follow the
            // buffer until the response, for as long as the slowest server may take.
            let patience = rt.upstreams.iter().map(|u| u.timeout).max().unwrap_or_default() + KEEP_ALIVE;
            sse_response(replay_request(rec, backlog, patience))
        }
    }
}

/// Sends a request stream's recorded events, then those recorded after them, until its response
/// (or until `patience` passed without it, or the client left).
fn replay_request(rec: Recorder, backlog: Vec<(u64, Recorded)>, patience: Duration) -> mpsc::Receiver<Bytes> {
    /// How often the buffer is read again while the answer is still being recorded.
    const POLL: Duration = Duration::from_millis(100);
    let (tx, out) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + patience;
        let mut batch = backlog;
        let mut after = 0;
        loop {
            for (n, r) in batch {
                after = n;
                if r == Recorded::Priming {
                    continue;
                }
                let done = r.is_response();
                if tx.send(rec.encode(n, &r)).await.is_err() || done {
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = tx.closed() => return,
            }
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            batch = match rec.more(after).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "MCP stream replay stopped: the replay buffer is unavailable");
                    return;
                }
            };
        }
    });
    out
}

/// The standalone stream: `backlog` (replayed events), then the messages the session's backends
/// send on their own standalone streams, each recorded in `rec` as it goes out. They come from
/// the streams opened when the session started when this replica holds them, else from streams
/// opened now (see [`super::streams`]).
async fn standalone(
    rt: Arc<McpRuntime>,
    state: Arc<OpenSession>,
    rec: Recorder,
    backlog: Vec<(u64, Recorded)>,
    fresh: bool,
) -> Response<Body> {
    // The streams opened now live as long as this client stream (held by its task); the
    // session's own live until the session ends (not held here, so that ending them ends this).
    let (streams, own) = match rt.state.streams.get(state.nonce) {
        Some(s) => (s, None),
        None => {
            let listened =
                rt.upstreams.iter().filter_map(|u| Some((u.clone(), state.backends.get(&u.prefix)?.clone())));
            let s = Arc::new(
                SessionStreams::open(&rt.metrics, &rt.gateway, listened.collect(), "client_gone").await,
            );
            (s.clone(), Some(s))
        }
    };
    if !streams.any && fresh {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "no MCP server of this gateway offers a standalone stream",
        );
    }
    let Some((mut inbox, mut ended)) = streams.attach() else {
        return plain(StatusCode::CONFLICT, "Conflict: the session's standalone stream is already open");
    };
    drop(streams);
    let (tx, out) = mpsc::channel::<Bytes>(64);
    let priming = fresh && primes(&state.version);
    tokio::spawn(async move {
        let _own = own;
        if priming && tx.send(rec.record(Recorded::Priming).await).await.is_err() {
            return;
        }
        for (n, r) in backlog {
            if r != Recorded::Priming && tx.send(rec.encode(n, &r)).await.is_err() {
                return;
            }
        }
        let mut tick = tokio::time::interval(KEEP_ALIVE);
        tick.tick().await;
        loop {
            let first = tokio::select! {
                m = inbox.recv() => match m { Some(m) => m, None => return },
                _ = tick.tick() => {
                    if tx.send(encode_comment("keep-alive")).await.is_err() { return; }
                    continue;
                }
                _ = tx.closed() => return,
                // The session ended.
                _ = ended.changed() => return,
            };
            // Coalesce: of the messages already waiting, each kind of list_changed goes out once.
            let mut batch = vec![first];
            while let Some(m) = inbox.try_recv() {
                batch.push(m);
            }
            let mut seen = std::collections::HashSet::new();
            batch.retain(|m| match m {
                Message::Notification(n) if n.method.ends_with("/list_changed") => {
                    seen.insert(n.method.clone())
                }
                _ => true,
            });
            let mut batch = batch.into_iter();
            while let Some(m) = batch.next() {
                if tx.send(rec.message(&m).await).await.is_err() {
                    // The client left: what it did not get goes out on its next stream.
                    inbox.put_back(std::iter::once(m).chain(batch).collect());
                    return;
                }
            }
        }
    });
    sse_response(out)
}

/// `subscriptions/listen` (2026-07-28): a long-lived SSE answer carrying the list-changed
/// notifications the client opted in to and the updates of the resources it subscribed to
/// (`resourceSubscriptions`, gateway URIs), each tagged with the subscription id (the request's
/// id), after one `notifications/subscriptions/acknowledged` naming what was accepted (a
/// resource its server refused, or one the caller may not see, is left out). The gateway opens
/// backend sessions of its own for the stream (their standalone streams are where backends
/// announce changes), subscribes the resources there under their own URIs, and ends the
/// sessions when the client goes.
async fn listen(rt: Arc<McpRuntime>, subject: String, r: Request) -> Response<Body> {
    const KINDS: [(&str, &str); 3] = [
        ("toolsListChanged", "notifications/tools/list_changed"),
        ("promptsListChanged", "notifications/prompts/list_changed"),
        ("resourcesListChanged", "notifications/resources/list_changed"),
    ];
    const UPDATED: &str = "notifications/resources/updated";
    let wanted = r.params.as_ref().and_then(|p| p.get("notifications")).cloned().unwrap_or_else(|| json!({}));
    let resources: Vec<String> = match wanted.get("resourceSubscriptions") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            a.iter().filter_map(Value::as_str).map(str::to_string).collect()
        }
        Some(_) => {
            let e = RpcError::new(
                jsonrpc::INVALID_PARAMS,
                "subscriptions/listen: notifications.resourceSubscriptions must be a list of resource URIs",
            );
            return rpc_error(stateless_status(&e), r.id.clone(), e);
        }
    };
    let mut accepted = serde_json::Map::new();
    let mut methods = Vec::new();
    for (key, method) in KINDS {
        if wanted.get(key).and_then(Value::as_bool) == Some(true) {
            accepted.insert(key.into(), true.into());
            methods.push(method);
        }
    }
    let params = json!({
        "protocolVersion": protocol::LATEST_SESSION_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "cairn", "version": env!("CARGO_PKG_VERSION")}
    });
    let (_, backends) = dispatch::initialize(&rt, &params, protocol::LATEST_SESSION_VERSION).await;
    let (merged_tx, mut merged) = mpsc::unbounded_channel::<Message>();
    for u in &rt.upstreams {
        let Some(s) = backends.get(&u.prefix) else { continue };
        match u.listen(s).await {
            Ok(Some(mut rx)) => {
                let tx = merged_tx.clone();
                let prefix = u.prefix.clone();
                tokio::spawn(async move {
                    while let Some(m) = rx.recv().await {
                        if tx.send(super::names::rewrite_from_backend(&prefix, m)).is_err() {
                            return;
                        }
                    }
                });
            }
            Ok(None) => {}
            Err(e) => rt.metrics.backend_error(&rt.gateway, &u.name, "subscriptions/listen", &e),
        }
    }
    drop(merged_tx);
    // Subscribed after the streams are open, so no update falls in between.
    let oks = futures_util::future::join_all(
        resources.iter().map(|uri| dispatch::subscribe_resource(&rt, &subject, &backends, uri)),
    )
    .await;
    let subscribed: std::collections::HashSet<String> =
        resources.into_iter().zip(oks).filter(|(_, ok)| *ok).map(|(u, _)| u).collect();
    if !subscribed.is_empty() {
        let mut list: Vec<&String> = subscribed.iter().collect();
        list.sort();
        accepted.insert("resourceSubscriptions".into(), json!(list));
    }
    let sub_id = r.id.clone();
    let tag = move |method: &str, params: Option<Value>| {
        let mut p = match params {
            Some(Value::Object(o)) => o,
            _ => serde_json::Map::new(),
        };
        let meta = p.entry("_meta").or_insert_with(|| json!({}));
        if !meta.is_object() {
            *meta = json!({});
        }
        meta["io.modelcontextprotocol/subscriptionId"] = sub_id.clone();
        jsonrpc::Notification::new(method, Some(Value::Object(p)))
    };
    let mut ack = tag("notifications/subscriptions/acknowledged", None);
    ack.params.as_mut().expect("params")["notifications"] = Value::Object(accepted);
    let (tx, out) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let close =
            |rt: Arc<McpRuntime>,
             backends: std::collections::BTreeMap<String, super::session::BackendSession>| async move {
                for u in &rt.upstreams {
                    if let Some(s) = backends.get(&u.prefix) {
                        u.close(s).await;
                    }
                }
            };
        if tx.send(sse_event(&Message::Notification(ack))).await.is_err() {
            return close(rt, backends).await;
        }
        let mut tick = tokio::time::interval(KEEP_ALIVE);
        tick.tick().await;
        loop {
            let first = tokio::select! {
                m = merged.recv() => match m { Some(m) => m, None => break },
                _ = tick.tick() => {
                    if tx.send(encode_comment("keep-alive")).await.is_err() { break; }
                    continue;
                }
                _ = tx.closed() => break,
            };
            let mut batch = vec![first];
            while let Ok(m) = merged.try_recv() {
                batch.push(m);
            }
            // Of the messages already waiting, each list change (and each resource's update) goes
            // out once.
            let mut seen = std::collections::HashSet::new();
            for m in batch {
                let Message::Notification(n) = m else { continue };
                let out = if n.method == UPDATED {
                    let uri = n.params.as_ref().and_then(|p| p.get("uri")).and_then(Value::as_str);
                    match uri {
                        Some(u) if subscribed.contains(u) && seen.insert(format!("{UPDATED} {u}")) => {
                            tag(UPDATED, n.params)
                        }
                        _ => continue,
                    }
                } else if methods.contains(&n.method.as_str()) && seen.insert(n.method.clone()) {
                    tag(&n.method, None)
                } else {
                    continue;
                };
                if tx.send(sse_event(&Message::Notification(out))).await.is_err() {
                    return close(rt, backends).await;
                }
            }
        }
        close(rt, backends).await;
    });
    sse_response(out)
}

async fn delete(rt: Arc<McpRuntime>, subject: String, headers: HeaderMap) -> Response<Body> {
    if protocol::header(&headers, HEADER_PROTOCOL_VERSION).ok().flatten() == Some(STATELESS_VERSION) {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "DELETE is not part of protocol version 2026-07-28");
    }
    if let Err(r) = session_version(&headers) {
        return r;
    }
    let state = match open_session(&rt, &subject, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    futures_util::future::join_all(rt.upstreams.iter().filter_map(|u| {
        let s = state.backends.get(&u.prefix)?.clone();
        Some(async move { u.close(&s).await })
    }))
    .await;
    rt.state.activity.end(state.key, now_secs());
    rt.state.streams.remove(state.nonce);
    if let Ok(Some(id)) = protocol::header(&headers, &protocol::SESSION_ID) {
        rt.sealer.forget(id);
    }
    empty(StatusCode::OK)
}

/// Whether the client's `Accept` header lists `text/event-stream` (it may then get an SSE
/// response instead of one JSON body).
pub(crate) fn accepts_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_appends_the_resource_path() {
        assert_eq!(
            metadata_url("https://mcp.example.com/mcp"),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("https://mcp.example.com"),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
    }
}
