//! The backends' standalone streams of a session-era session, opened when the session starts
//! (right after `initialize`), so that nothing a backend sends on them is lost while the client
//! has no `GET` stream open: a server that sends a sampling or elicitation request, or a
//! notification, on its standalone stream the instant a tool starts would otherwise send it
//! into the void (a backend's stream that nobody holds drops what is sent on it).
//!
//! What the backends send is rewritten for the client and buffered in the session's
//! [`Inbox`] (up to [`BUFFER`] messages) until a client `GET` reads it; a message a client
//! stream could not deliver (the client left) is put back and goes out first on the next one.
//! One client stream reads a session's inbox at a time (another `GET` meanwhile gets `409`).
//! The streams close when the session ends: `DELETE`, or idle expiry as this replica sees it.
//! What must then be dropped is counted in `cairn_mcp_dropped_messages_total`
//! (`session_ended`, or `buffer_full` when more than [`BUFFER`] wait; see [`super::audit`]).
//!
//! Per replica: the replica that served `initialize` holds the backends' streams. A `GET` that
//! reaches another replica (or this one after a restart) opens the backends' streams for itself,
//! as it reaches them, and what they sent before is not there; a backend that allows one
//! standalone stream per session may refuse that second stream. With several replicas, route a
//! session's `GET` to the replica that initialized it (or keep one replica) when the backends
//! send requests on their standalone streams.

use super::audit::McpMetrics;
use super::names::rewrite_from_backend;
use super::session::BackendSession;
use super::upstream::Upstream;
use crate::gateway::jsonrpc::Message;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedMutexGuard, mpsc, watch};

/// Most messages a session buffers while no client stream reads them.
pub const BUFFER: usize = 1024;

/// A session's backends' standalone streams, merged into one inbox.
pub struct SessionStreams {
    /// Whether any backend offered a standalone stream.
    pub any: bool,
    inbox: Arc<tokio::sync::Mutex<Inbox>>,
    /// Dropped with the streams: the pumps stop (letting go of the backends' streams), and so
    /// does a client stream reading the inbox.
    _alive: watch::Sender<()>,
    ended: watch::Receiver<()>,
}

/// What a session's backends sent that its client has not received yet.
pub struct Inbox {
    rx: mpsc::Receiver<Message>,
    held: VecDeque<Message>,
    metrics: McpMetrics,
    gateway: String,
    /// The reason what is left is counted under when the inbox goes.
    left_behind: &'static str,
}

impl Inbox {
    /// The next message (those put back first); `None` once every backend stream ended.
    pub async fn recv(&mut self) -> Option<Message> {
        match self.held.pop_front() {
            Some(m) => Some(m),
            None => self.rx.recv().await,
        }
    }

    /// A message already waiting, if any.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.held.pop_front().or_else(|| self.rx.try_recv().ok())
    }

    /// Puts back, in order, messages a client stream could not deliver: they go out first on the
    /// next one.
    pub fn put_back(&mut self, messages: Vec<Message>) {
        for m in messages.into_iter().rev() {
            self.held.push_front(m);
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let n = self.held.len() + self.rx.len();
        self.metrics.dropped(&self.gateway, self.left_behind, n as u64);
    }
}

impl SessionStreams {
    /// Opens the standalone streams of `backends` (concurrently) and starts buffering what they
    /// send; what is left unread when the streams go is counted as dropped for `left_behind`.
    pub async fn open(
        metrics: &McpMetrics,
        gateway: &str,
        backends: Vec<(Arc<Upstream>, BackendSession)>,
        left_behind: &'static str,
    ) -> SessionStreams {
        let listens = futures_util::future::join_all(backends.into_iter().map(|(u, s)| async move {
            let r = u.listen(&s).await;
            (u, r)
        }))
        .await;
        let (tx, rx) = mpsc::channel(BUFFER);
        let (alive, ended) = watch::channel(());
        let mut any = false;
        for (u, r) in listens {
            match r {
                Ok(Some(from)) => {
                    any = true;
                    tokio::spawn(pump(
                        u.prefix.clone(),
                        from,
                        tx.clone(),
                        ended.clone(),
                        metrics.clone(),
                        gateway.to_string(),
                    ));
                }
                Ok(None) => {}
                Err(e) => metrics.backend_error(gateway, &u.name, "GET", &e),
            }
        }
        let inbox = Inbox {
            rx,
            held: VecDeque::new(),
            metrics: metrics.clone(),
            gateway: gateway.to_string(),
            left_behind,
        };
        SessionStreams { any, inbox: Arc::new(tokio::sync::Mutex::new(inbox)), _alive: alive, ended }
    }

    /// The inbox for one client stream, and what tells it that the session's streams closed;
    /// `None` while another client stream reads it.
    pub fn attach(&self) -> Option<(OwnedMutexGuard<Inbox>, watch::Receiver<()>)> {
        let inbox = self.inbox.clone().try_lock_owned().ok()?;
        Some((inbox, self.ended.clone()))
    }
}

/// Moves one backend stream's messages, rewritten for the client, into the session's inbox
/// until the stream ends or the session's streams close.
async fn pump(
    prefix: String,
    mut from: mpsc::UnboundedReceiver<Message>,
    to: mpsc::Sender<Message>,
    mut ended: watch::Receiver<()>,
    metrics: McpMetrics,
    gateway: String,
) {
    loop {
        let m = tokio::select! {
            m = from.recv() => match m { Some(m) => m, None => return },
            // Nothing is ever sent: this resolves when the streams are dropped.
            _ = ended.changed() => return,
        };
        match to.try_send(rewrite_from_backend(&prefix, m)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => metrics.dropped(&gateway, "buffer_full", 1),
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// The sessions of a gateway whose backends' streams this replica holds, by session nonce.
#[derive(Default)]
pub struct Streams(Mutex<HashMap<u64, Arc<SessionStreams>>>);

impl Streams {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<SessionStreams>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds `streams` for the session with `nonce`.
    pub fn insert(&self, nonce: u64, streams: SessionStreams) {
        self.map().insert(nonce, Arc::new(streams));
    }

    /// The streams of the session with `nonce`, if this replica holds them.
    pub fn get(&self, nonce: u64) -> Option<Arc<SessionStreams>> {
        self.map().get(&nonce).cloned()
    }

    /// Closes the streams of the session with `nonce` (it ended).
    pub fn remove(&self, nonce: u64) {
        // Dropped outside the lock: dropping an inbox counts what it still holds.
        let gone = self.map().remove(&nonce);
        drop(gone);
    }

    /// How many sessions' streams are held.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
