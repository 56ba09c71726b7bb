//! The answer to one client request: one JSON body when the backend's answer is the only
//! message, an SSE stream when progress or server requests come first (and the client accepts
//! SSE), each event recorded for resumption in the session era.

use super::ctx::Outcome;
use super::events::{Recorded, Recorder, StreamKind};
use super::protocol::Era;
use super::replies::Replies;
use super::reply::{
    accepts_event_stream, json_bytes, json_response, modernize, plain, sse_event, sse_response,
    stateless_status,
};
use super::runtime::McpRuntime;
use crate::gateway::jsonrpc::{self, Message, Response as RpcResponse, RpcError};
use crate::gateway::response::Body;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a session-era SSE answer needs to record its events, so the client can resume it.
pub(super) struct Replay {
    pub(super) rt: Arc<McpRuntime>,
    /// The session's nonce.
    pub(super) nonce: u64,
    /// Whether the stream starts with a priming event (2025-11-25 on).
    pub(super) priming: bool,
}

/// Whether streams of a session of `version` start with a priming event.
pub(super) fn primes(version: &str) -> bool {
    version >= "2025-11-25"
}

/// Turns an outcome into the HTTP response: JSON when the answer is the only message, SSE when
/// the backend sends progress or requests first (and the client accepts SSE). With `replay`
/// (session era) every event is recorded before it goes out, and a client that went away does
/// not end the stream: the rest is recorded until the response, for a `GET` with
/// `Last-Event-ID` to pick up (a disconnect is not a cancellation in that era).
pub(super) async fn answer(
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
