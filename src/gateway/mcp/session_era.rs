//! The session era (2024-11-05 … 2025-11-25): a session opened by `initialize` (backend
//! sessions on every server, sealed into the id the client gets), the checks of a request in a
//! session (its id, its version header), batches (2025-03-26 only), and `DELETE`.

// Errors here are the responses to send, made at most once per request.
#![allow(clippy::result_large_err)]

use super::answer::{Replay, primes};
use super::ctx::{Ctx, Outcome};
use super::fanout;
use super::protocol::{self, Era, HEADER_PROTOCOL_VERSION, HEADER_SESSION_ID, STATELESS_VERSION};
use super::reply::{empty, json_response, plain, rpc_error};
use super::runtime::McpRuntime;
use super::session::{OpenSession, SessionKey, SessionState};
use super::streams::SessionStreams;
use crate::gateway::clock::unix_now;
use crate::gateway::jsonrpc::{self, INVALID_REQUEST, Message, Request, RpcError};
use crate::gateway::response::Body;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

/// The session a request names: `Err` is the response to send (400 without one, 404 for an
/// unknown, expired, ended or someone else's session).
pub(super) fn open_session(
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
    if s.subject != subject || !rt.state.activity.touch(s.key, s.opened, unix_now(), rt.idle_secs()) {
        return Err(gone());
    }
    Ok(s)
}

/// Checks `MCP-Protocol-Version` on a session-era request: absent (taken as 2025-03-26) or a
/// version the gateway speaks passes; any other value is `400`. The transport spec's rule, word
/// for word: "If the server receives a request with an invalid or unsupported
/// MCP-Protocol-Version, it MUST respond with 400 Bad Request." A supported version other than
/// the session's is not refused: the session keeps the version it negotiated.
pub(super) fn session_version(headers: &HeaderMap) -> Result<(), Response<Body>> {
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

/// A session-era request after `initialize`: its version header checked and its session opened;
/// `Err` is the response to send.
pub(super) fn session_ctx(
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

pub(super) async fn initialize(rt: Arc<McpRuntime>, subject: String, r: &Request) -> Response<Body> {
    let params = r.params.clone().unwrap_or_else(|| json!({}));
    let version = protocol::negotiate(params.get("protocolVersion").and_then(Value::as_str));
    let (result, backends) = fanout::initialize(&rt, &params, version).await;
    // Before the client learns the session, so whatever a backend sends on its standalone stream
    // from the first request on is held for the client's GET (see [`super::streams`]).
    let listened = rt.upstreams.iter().filter_map(|u| Some((u.clone(), backends.get(&u.prefix)?.clone())));
    let streams = SessionStreams::open(&rt.metrics, &rt.gateway, listened.collect(), "session_ended").await;
    let state = SessionState {
        subject,
        version: version.to_string(),
        opened: unix_now(),
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

pub(super) async fn batch(
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

pub(super) async fn delete(rt: Arc<McpRuntime>, subject: String, headers: HeaderMap) -> Response<Body> {
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
    rt.state.activity.end(state.key, unix_now());
    rt.state.streams.remove(state.nonce);
    if let Ok(Some(id)) = protocol::header(&headers, &protocol::SESSION_ID) {
        rt.sealer.forget(id);
    }
    empty(StatusCode::OK)
}
