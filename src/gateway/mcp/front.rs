//! The streamable-HTTP front of an MCP gateway: one endpoint (`/mcp`, also `/`) serving both
//! eras, plus the OAuth Protected Resource Metadata document ([`super::oauth`]). A request is
//! routed here to its era: [`super::session_era`] (and [`super::standalone`] for `GET`) or
//! [`super::stateless`]; its answer is made by [`super::answer`].
//!
//! Order of checks on a request: path; header size (`431` with a JSON-RPC error `-32600`:
//! [`crate::gateway::limits`]); `Origin` (`403` with a JSON-RPC error when present and neither
//! the gateway's own host nor in `allowedOrigins`: [`crate::gateway::origin`]); caller identity
//! (`401`, with `WWW-Authenticate: Bearer resource_metadata=…` when the gateway is an OAuth
//! resource server); body size (`413` + `-32600`); JSON nesting (`400` + `-32600`); JSON (`400` +
//! `-32700`); era and its rules (see [`super::protocol`]); then the method.

// Errors here are the responses to send, made at most once per request.
#![allow(clippy::result_large_err)]

use super::answer::answer;
use super::ctx::ToolCallIn;
use super::oauth::{PRM_PATH, prm, unauthorized};
use super::protocol::{self, Era, STATELESS_VERSION};
use super::reply::{empty, json_response, plain, rpc_error};
use super::runtime::McpRuntime;
use super::session_era::{batch, delete, initialize, session_ctx};
use super::standalone::get;
use super::stateless::post_stateless;
use super::wire::ToolCallRequest;
use crate::config::Layer;
use crate::gateway::jsonrpc::{self, Body as RpcBody, INVALID_REQUEST, Message, RpcError};
use crate::gateway::limits;
use crate::gateway::response::{Body, full};
use crate::gateway::{admission, telemetry};
use bytes::Bytes;
use http::{HeaderMap, Method, Request as HttpRequest, Response, StatusCode};
use serde_json::Value;
use std::sync::Arc;

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
    if let Err(e) = limits::check_headers(req.headers()) {
        return rpc_error(e.status(), Value::Null, RpcError::new(INVALID_REQUEST, e.to_string()));
    }
    if let Err(e) = crate::gateway::origin::check(&req, &rt.mcp.allowed_origins) {
        return rpc_error(StatusCode::FORBIDDEN, Value::Null, RpcError::new(INVALID_REQUEST, e.to_string()));
    }
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let span = tracing::Span::current();
    let subject = match rt.identity.authenticate(&headers, &rt.policy).await {
        Ok(s) => s,
        Err(e) => {
            let gateway: Arc<str> = Arc::from(rt.gateway.as_str());
            admission::refused("unauthenticated", &span, &rt.metrics.denials, &gateway, Layer::Mcp);
            return unauthorized(&rt, &e);
        }
    };
    telemetry::span::subject(&span, &subject);
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

async fn read_body<B>(rt: &McpRuntime, body: B) -> Result<Bytes, Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // In a task of its own, not the connection's (see `server::read_body`).
    match crate::gateway::server::read_body(body, rt.max_body).await {
        Ok(c) => match limits::check_json_depth(&c) {
            Ok(()) => Ok(c),
            Err(e) => Err(rpc_error(e.status(), Value::Null, RpcError::new(INVALID_REQUEST, e.to_string()))),
        },
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
    let method = match &msg {
        Message::Request(r) => Some(&r.method),
        Message::Notification(n) => Some(&n.method),
        Message::Response(_) => None,
    };
    if let Some(m) = method {
        // A tool call is named again with its tool (`super::call`).
        let span = tracing::Span::current();
        telemetry::span::name(&span, m.clone());
        telemetry::span::attr(&span, "mcp.method.name", m.clone());
    }
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
