//! SSE resumability in the session era (2025-03-26 … 2025-11-25): event ids and the replay
//! buffer.
//!
//! Every event the gateway sends on a session's SSE stream (the answer to a POSTed request, or
//! the standalone GET stream) is first appended to a buffer in the gateway's store — the process
//! memory store, or Redis when the gateway names one — so a client whose connection broke can
//! `GET` with `Last-Event-ID` from any replica and get the events of *that* stream after the id.
//! Since 2025-11-25 a stream starts with a priming event (an id and empty data).
//!
//! An event id is `<stream>-<n>`: the stream is `r` (a request's answer) or `g` (standalone)
//! and 16 random hex digits, `n` the event's number in the stream (atomic in the store, so two
//! replicas writing to one resumed stream never reuse a number). The buffer's key is the stream
//! and the session's random nonce (sealed in its id): a stream of another session is not found.
//! A buffer keeps the last [`REPLAY_MAX_EVENTS`] events and expires [`REPLAY_TTL_SECS`] after
//! its last event.
//!
//! The spec leaves the answer to an id the server cannot resume from open; the gateway answers
//! `400` naming the id and what to do (open a new stream without it), rather than silently
//! starting a new stream the client would take for a resumed one.

use super::runtime::McpRuntime;
use crate::gateway::jsonrpc::Message;
use crate::gateway::sse::SseEvent;
use crate::gateway::store::{Store, StoreError};
use bytes::Bytes;

/// How long a stream's events are kept after its last one.
pub const REPLAY_TTL_SECS: u64 = 600;
/// How many events of one stream are kept.
pub const REPLAY_MAX_EVENTS: usize = 256;

/// What a stream answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// The SSE answer to one POSTed request: ends with its response.
    Request,
    /// The standalone GET stream: unsolicited messages, no end.
    Standalone,
}

impl StreamKind {
    fn tag(self) -> char {
        match self {
            StreamKind::Request => 'r',
            StreamKind::Standalone => 'g',
        }
    }
}

/// One buffered event.
#[derive(Clone, Debug, PartialEq)]
pub enum Recorded {
    /// A priming event (no message).
    Priming,
    /// A message, as its JSON text.
    Message(String),
}

impl Recorded {
    fn encode(&self) -> String {
        match self {
            Recorded::Priming => "p".into(),
            Recorded::Message(m) => format!("m{m}"),
        }
    }

    fn decode(s: &str) -> Option<Recorded> {
        match s.split_at_checked(1)? {
            ("p", "") => Some(Recorded::Priming),
            ("m", m) => Some(Recorded::Message(m.to_string())),
            _ => None,
        }
    }

    /// Whether this is a JSON-RPC response (the last event of a request's stream).
    pub fn is_response(&self) -> bool {
        match self {
            Recorded::Priming => false,
            Recorded::Message(m) => {
                serde_json::from_str::<serde_json::Value>(m).is_ok_and(|v| v.get("method").is_none())
            }
        }
    }
}

/// Why a `Last-Event-ID` cannot be resumed from: the `400` (or `503`) to send.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// Not an id this gateway hands out.
    #[error("Bad Request: Last-Event-ID {0:?} is not an event id of this gateway")]
    Malformed(String),
    /// No such stream in this session, or its events expired.
    #[error(
        "Bad Request: Last-Event-ID {0} names no stream of this session that is still held (a stream's events are kept {REPLAY_TTL_SECS} s after its last one): open a new stream without Last-Event-ID"
    )]
    Unknown(String),
    /// The stream is known but the events after the id are no longer all held.
    #[error(
        "Bad Request: the events after Last-Event-ID {0} are no longer held (a stream keeps its last {REPLAY_MAX_EVENTS}): open a new stream without Last-Event-ID"
    )]
    Trimmed(String),
    /// The store did not answer.
    #[error("Service Unavailable: the replay buffer is unavailable: {0}")]
    Store(#[from] StoreError),
}

/// The events of one stream of one session: records them as they are sent, reads them back on
/// resumption.
#[derive(Clone)]
pub struct Recorder {
    store: Store,
    key: String,
    stream: String,
    kind: StreamKind,
}

impl Recorder {
    fn with_stream(rt: &McpRuntime, nonce: u64, stream: String, kind: StreamKind) -> Recorder {
        let key = format!("{}mcp:{}:sse:{nonce:016x}:{stream}", rt.store.prefix, rt.config.gateway.name);
        Recorder { store: rt.store.store.clone(), key, stream, kind }
    }

    /// A new stream of the session with `nonce`.
    pub fn open(rt: &McpRuntime, nonce: u64, kind: StreamKind) -> Recorder {
        let stream = format!("{}{:016x}", kind.tag(), rt.sealer.random_u64());
        Self::with_stream(rt, nonce, stream, kind)
    }

    /// The stream a client's `Last-Event-ID` names, and the number of the last event it got.
    pub fn resume(rt: &McpRuntime, nonce: u64, last_event_id: &str) -> Result<(Recorder, u64), ResumeError> {
        let malformed = || ResumeError::Malformed(last_event_id.chars().take(100).collect());
        let (stream, n) = last_event_id.rsplit_once('-').ok_or_else(malformed)?;
        let n: u64 = n.parse().map_err(|_| malformed())?;
        let kind = match stream.split_at_checked(1) {
            Some(("r", hex)) if hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                StreamKind::Request
            }
            Some(("g", hex)) if hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                StreamKind::Standalone
            }
            _ => return Err(malformed()),
        };
        Ok((Self::with_stream(rt, nonce, stream.to_string(), kind), n))
    }

    /// What the stream answers.
    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    fn event_id(&self, n: u64) -> String {
        format!("{}-{n}", self.stream)
    }

    /// The wire form of event `n`.
    pub fn encode(&self, n: u64, r: &Recorded) -> Bytes {
        match r {
            // An id and an empty data field (a data line, so the event is not dropped as blank).
            Recorded::Priming => Bytes::from(format!("id: {}\ndata:\n\n", self.event_id(n))),
            Recorded::Message(m) => SseEvent {
                id: Some(self.event_id(n)),
                event: Some("message".into()),
                data: m.clone(),
                retry: None,
            }
            .encode(),
        }
    }

    /// Records an event and returns its wire form with its id. When the store fails the event
    /// still goes out, without an id (nothing could resume from it).
    pub async fn record(&self, r: Recorded) -> Bytes {
        match self.store.append_seq(&self.key, &r.encode(), REPLAY_MAX_EVENTS, REPLAY_TTL_SECS).await {
            Ok(n) => self.encode(n, &r),
            Err(e) => {
                tracing::warn!(error = %e, "MCP SSE event not recorded; it cannot be replayed");
                match r {
                    Recorded::Priming => Bytes::new(),
                    Recorded::Message(m) => SseEvent::named("message", m).encode(),
                }
            }
        }
    }

    /// Records a message (see [`Recorder::record`]).
    pub async fn message(&self, m: &Message) -> Bytes {
        self.record(Recorded::Message(m.to_value().to_string())).await
    }

    /// The events after number `after`, oldest first. `Err` when the stream is unknown or
    /// expired, when `after` is not a number it handed out, or when events after it were
    /// dropped.
    pub async fn after(&self, after: u64, id: &str) -> Result<Vec<(u64, Recorded)>, ResumeError> {
        let items = self.store.seq_list(&self.key).await?.ok_or_else(|| ResumeError::Unknown(id.into()))?;
        let last = items.last().map(|(n, _)| *n).unwrap_or(0);
        if after == 0 || after > last {
            return Err(ResumeError::Unknown(id.into()));
        }
        if items.first().is_some_and(|(n, _)| *n > after + 1) {
            return Err(ResumeError::Trimmed(id.into()));
        }
        Ok(items
            .into_iter()
            .filter(|(n, _)| *n > after)
            .filter_map(|(n, s)| Some((n, Recorded::decode(&s)?)))
            .collect())
    }

    /// Events after `after` that arrived since, without the errors of a first read (the stream
    /// was found once; a vanished one reads as no news).
    pub async fn more(&self, after: u64) -> Result<Vec<(u64, Recorded)>, StoreError> {
        Ok(self
            .store
            .seq_list(&self.key)
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|(n, _)| *n > after)
            .filter_map(|(n, s)| Some((n, Recorded::decode(&s)?)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::store::MemoryStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_resumption_past_the_kept_events_is_refused_and_says_why() {
        let rec = Recorder {
            store: Store::Memory(Arc::new(MemoryStore::new())),
            key: "k".into(),
            stream: "r0123456789abcdef".into(),
            kind: StreamKind::Request,
        };
        for i in 0..REPLAY_MAX_EVENTS + 5 {
            rec.record(Recorded::Message(format!("{{\"n\":{i}}}"))).await;
        }
        let id = "r0123456789abcdef-2";
        let e = rec.after(2, id).await.expect_err("events 3..6 were dropped");
        assert_eq!(
            e.to_string(),
            "Bad Request: the events after Last-Event-ID r0123456789abcdef-2 are no longer held (a stream keeps its last 256): open a new stream without Last-Event-ID"
        );
        // The first event still held can be resumed from, to the end.
        let last = REPLAY_MAX_EVENTS as u64 + 5;
        let from = last - REPLAY_MAX_EVENTS as u64 + 1;
        let rest = rec.after(from, "r0123456789abcdef-x").await.expect("held");
        assert_eq!(rest.len(), REPLAY_MAX_EVENTS - 1);
        assert_eq!(rest.last().map(|(n, _)| *n), Some(last));
    }

    #[test]
    fn recorded_events_round_trip_and_responses_are_told_apart() {
        for r in [Recorded::Priming, Recorded::Message(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.into())] {
            assert_eq!(Recorded::decode(&r.encode()), Some(r));
        }
        assert!(Recorded::Message(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.into()).is_response());
        assert!(
            !Recorded::Message(r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#.into()).is_response()
        );
        assert!(!Recorded::Priming.is_response());
        assert_eq!(Recorded::decode("x"), None);
    }
}
