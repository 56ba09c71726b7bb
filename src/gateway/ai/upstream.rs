//! Sending one attempt upstream: the request built from a backend's URL and credential headers,
//! on its pooled client, or answered in process by the Echo backend.

use super::backend::BackendRt;
use super::echo;
use super::exchange::{SendError, UpBody, UpResponse};
use super::op::Op;
use crate::config::ProviderKind;
use crate::gateway::http_client::{error_chain, failure};
use crate::gateway::telemetry::span;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body_util::Full;

/// The URL of `op` on `backend`.
pub fn url(backend: &BackendRt, op: Op) -> String {
    let base = backend.url.trim_end_matches('/');
    match op {
        Op::Chat => format!("{base}/chat/completions"),
        Op::Embeddings => format!("{base}/embeddings"),
        Op::Responses => format!("{base}/responses"),
        Op::Messages if base.ends_with("/v1") => format!("{base}/messages"),
        Op::Messages => format!("{base}/v1/messages"),
    }
}

/// Client headers forwarded upstream as they are (everything else is dropped: the client's own
/// credentials never reach a provider). The trace context is the attempt's own.
const FORWARDED: &[&str] = &["anthropic-version", "anthropic-beta", "openai-beta"];

/// Sends one attempt. `body` is the final upstream JSON; `attempt` is its span, whose trace
/// context (`traceparent`, `tracestate`, `baggage`) the request carries.
pub async fn send(
    backend: &BackendRt,
    op: Op,
    body: Bytes,
    client_headers: &HeaderMap,
    attempt: &tracing::Span,
) -> Result<UpResponse, SendError> {
    if backend.provider == ProviderKind::Echo {
        return Ok(echo::respond(op, &body));
    }
    let url = url(backend, op);
    let uri: http::Uri = url
        .parse()
        .map_err(|e| SendError::Connect(format!("backend URL {:?} is not usable: {e}", backend.url)))?;
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for name in FORWARDED {
        if let Some(v) = client_headers.get(*name) {
            headers.insert(*name, v.clone());
        }
    }
    if op == Op::Messages && !headers.contains_key("anthropic-version") {
        headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    }
    span::inject(attempt, headers);
    for (name, value) in &backend.headers {
        headers.insert(name.clone(), value.clone());
    }
    match backend.client.request(req).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            Ok(UpResponse { status: parts.status, headers: parts.headers, body: UpBody::Hyper(body) })
        }
        Err(e) if e.is_connect() => Err(SendError::Connect(failure(&e, &url))),
        Err(e) => Err(SendError::Other(error_chain(&e))),
    }
}
