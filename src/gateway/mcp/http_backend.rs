//! The HTTP side of a streamable-HTTP backend: one POSTed message and its answer read as it
//! comes (a JSON body whole, within the size bound; an SSE stream event by event, its messages
//! handed on as they arrive; `202` as nothing), and a backend's SSE stream read into messages.
//! What is sent (headers, eras, sessions) is decided by [`super::upstream`]; this file carries it.

use super::replies::{Replies, UpstreamError};
use super::wire::RawResponse;
use crate::gateway::http_client::{HttpClient, failure};
use crate::gateway::jsonrpc::Message;
use crate::gateway::sse::SseParser;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where one POST goes, and its bounds.
pub struct Post<'a> {
    /// The backend's endpoint.
    pub url: &'a http::Uri,
    /// The client.
    pub client: &'a HttpClient,
    /// Every header of the request.
    pub headers: HeaderMap,
    /// How long the backend has to answer.
    pub timeout: Duration,
    /// Largest message accepted from the backend.
    pub max_message_bytes: usize,
    /// Whether the request belongs to a backend session, whose `404` means the session is gone.
    pub in_session: bool,
}

/// POSTs one message (`body`; `want_id`: the id of the request it is). For a request, the
/// returned replies are what the backend sends for it (from a JSON body or an SSE stream),
/// ending after the response; with `raw_answer`, a JSON body holding one successful response
/// comes as [`Replies::Raw`].
pub async fn post(
    to: Post<'_>,
    body: Bytes,
    want_id: Option<Value>,
    raw_answer: bool,
) -> Result<(HeaderMap, Replies), UpstreamError> {
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = to.url.clone();
    *req.headers_mut() = to.headers;
    let resp = tokio::time::timeout(to.timeout, to.client.request(req))
        .await
        .map_err(|_| UpstreamError::Timeout)?
        .map_err(|e| UpstreamError::Connect(failure(&e, &to.url.to_string())))?;
    let status = resp.status();
    if status == StatusCode::NOT_FOUND && to.in_session {
        return Err(UpstreamError::SessionGone);
    }
    let (parts, mut body) = resp.into_parts();
    let headers = parts.headers;
    let is_sse = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let none = || Replies::Ready(Default::default());
    if status == StatusCode::ACCEPTED {
        return Ok((headers, none()));
    }
    if !status.is_success() && !is_json(&headers) {
        return Err(UpstreamError::Status(status.as_u16()));
    }
    let max = to.max_message_bytes;
    if is_sse {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            // Nobody waits for the answer any more: close the stream (in the 2026-07-28 era
            // that is how a request is cancelled).
            let (tx, want_id) = (&tx, &want_id);
            let deliver = |m: Message| async move {
                let last = matches!(&m, Message::Response(r) if Some(&r.id) == want_id.as_ref());
                tx.send(m).await.is_ok() && !last
            };
            pump_sse(body, max, tx.closed(), deliver).await;
        });
        Ok((headers, Replies::Stream(rx)))
    } else {
        let hint = http_body::Body::size_hint(&body).exact().unwrap_or(0);
        let mut buf = Vec::with_capacity(usize::try_from(hint).unwrap_or(0).min(max));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| UpstreamError::Connect(e.to_string()))?;
            if let Ok(d) = frame.into_data() {
                if buf.len() + d.len() > max {
                    return Err(UpstreamError::Protocol(format!("answer over {max} bytes")));
                }
                buf.extend_from_slice(&d);
            }
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            return if status.is_success() {
                Ok((headers, none()))
            } else {
                Err(UpstreamError::Status(status.as_u16()))
            };
        }
        if raw_answer && status.is_success() {
            match RawResponse::parse(buf) {
                Ok(r) => return Ok((headers, Replies::Raw(r))),
                Err(b) => buf = b,
            }
        }
        let v: Value = serde_json::from_slice(&buf).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let items = match v {
            Value::Array(a) => a,
            v => vec![v],
        };
        let messages = items
            .into_iter()
            .map(|item| Message::from_value(item).map_err(|_| UpstreamError::Protocol("not JSON-RPC".into())))
            .collect::<Result<_, _>>()?;
        Ok((headers, Replies::Ready(messages)))
    }
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Reads `body` as SSE and hands each JSON-RPC message in it to `deliver`, until the body ends or
/// breaks, an event is over `max` bytes, `closed` resolves (nobody listens any more) or `deliver`
/// says to stop. Events that are not JSON-RPC messages are skipped.
pub async fn pump_sse<D: std::future::Future<Output = bool>>(
    mut body: hyper::body::Incoming,
    max: usize,
    closed: impl std::future::Future<Output = ()>,
    mut deliver: impl FnMut(Message) -> D,
) {
    tokio::pin!(closed);
    let mut parser = SseParser::new(max);
    loop {
        let frame = tokio::select! {
            f = body.frame() => match f { Some(f) => f, None => return },
            _ = &mut closed => return,
        };
        let Ok(frame) = frame else { return };
        let Ok(data) = frame.into_data() else { continue };
        let Ok(events) = parser.push(&data) else { return };
        for ev in events {
            let Some(m) = parse_message(ev.data.as_bytes()) else { continue };
            if !deliver(m).await {
                return;
            }
        }
    }
}

fn parse_message(data: &[u8]) -> Option<Message> {
    if data.is_empty() {
        return None; // priming event
    }
    Message::from_value(serde_json::from_slice(data).ok()?).ok()
}
