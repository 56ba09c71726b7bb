//! `GET` in the session era: the standalone stream (what the session's backends send on their
//! own standalone streams, with keep-alives), or with `Last-Event-ID` the rest of a recorded
//! stream (see [`super::events`]).

use super::answer::primes;
use super::events::{Recorded, Recorder, ResumeError, StreamKind};
use super::protocol::{self, HEADER_PROTOCOL_VERSION, STATELESS_VERSION};
use super::reply::{KEEP_ALIVE, accepts_event_stream, plain, sse_response};
use super::runtime::McpRuntime;
use super::session::OpenSession;
use super::session_era::{open_session, session_version};
use super::streams::SessionStreams;
use crate::gateway::jsonrpc::Message;
use crate::gateway::response::Body;
use crate::gateway::sse::encode_comment;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

fn resume_error(e: &ResumeError) -> Response<Body> {
    let status = match e {
        ResumeError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    plain(status, &e.to_string())
}

/// `GET`: the standalone stream, or with `Last-Event-ID` the rest of the stream that id belongs
/// to (see [`super::events`]).
pub(super) async fn get(rt: Arc<McpRuntime>, subject: String, headers: HeaderMap) -> Response<Body> {
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
