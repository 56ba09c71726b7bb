//! How the MCP front answers over HTTP: JSON bodies, JSON-RPC errors with their status (the
//! stateless era maps some to 4xx), plain-text refusals, SSE responses fed by a channel, and the
//! `Accept` check that decides between JSON and SSE. Shared by the gateway's front and the stdio
//! bridge.

use super::protocol::Era;
use crate::gateway::jsonrpc::{self, Message, Response as RpcResponse, RpcError};
use crate::gateway::response::{Body, full};
use crate::gateway::sse::encode_named;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use serde_json::Value;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc;

/// SSE keep-alive interval on standalone streams.
pub(super) const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response<Body> {
    json_bytes(status, serde_json::to_vec(v).expect("json"))
}

pub(super) fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(super) fn rpc_error(status: StatusCode, id: Value, e: RpcError) -> Response<Body> {
    json_response(status, &RpcResponse::error(id, e).to_value())
}

pub(super) fn plain(status: StatusCode, text: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(text.to_string()))
        .expect("valid response")
}

pub(super) fn empty(status: StatusCode) -> Response<Body> {
    Response::builder().status(status).body(full(Bytes::new())).expect("valid response")
}

/// The HTTP status an error gets in the stateless era (the session era answers `200`).
pub(super) fn stateless_status(e: &RpcError) -> StatusCode {
    match e.code {
        jsonrpc::HEADER_MISMATCH
        | jsonrpc::UNSUPPORTED_PROTOCOL_VERSION
        | jsonrpc::MISSING_CLIENT_CAPABILITY => StatusCode::BAD_REQUEST,
        jsonrpc::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

pub(super) fn sse_event(m: &Message) -> Bytes {
    encode_named("message", &serde_json::to_string(m).expect("json"))
}

/// Adds `resultType` to a stateless-era response.
pub(super) fn modernize(era: Era, mut m: Message) -> Message {
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

pub(super) fn sse_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(BoxBody::new(ChanBody(rx)))
        .expect("valid response")
}

/// Whether the client's `Accept` header lists `text/event-stream` (it may then get an SSE
/// response instead of one JSON body).
pub(super) fn accepts_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}
