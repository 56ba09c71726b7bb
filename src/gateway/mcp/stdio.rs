//! stdio MCP servers: child processes speaking newline-delimited JSON-RPC on stdin/stdout.
//!
//! Used by `cairn mcp-bridge` (which serves one such server over streamable HTTP) and by local
//! mode's `McpEndpoint::Stdio` servers. The command is fixed when the [`StdioServer`] is made;
//! nothing a request carries reaches it. Each child is owned by one session (`per_session`) or
//! shared by all; request ids and progress tokens are rewritten per child so that sessions sharing
//! a child never see each other's replies. A child that exits is started again on the next use
//! and re-initialized with the parameters its session was opened with. Lines longer than the
//! message cap are dropped (both ways).

use crate::gateway::clock::unix_now;
use crate::gateway::jsonrpc::{
    INTERNAL_ERROR, METHOD_NOT_FOUND, Message, Notification, Request, Response, RpcError,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;

/// Default cap on one message, either way.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 << 20;

/// How to start the server.
#[derive(Clone, Debug)]
pub struct StdioCommand {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// One child per session; `false` shares one child.
    pub per_session: bool,
    /// Cap on one message.
    pub max_message_bytes: usize,
}

/// Why a stdio exchange failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StdioError {
    /// The child could not be started.
    #[error("cannot start MCP server '{0}': {1}")]
    Spawn(String, String),
    /// The child exited (or closed stdout) before answering.
    #[error("MCP server process exited")]
    Exited,
    /// No such session.
    #[error("unknown session")]
    UnknownSession,
    /// The message is over the cap.
    #[error("message of {0} bytes is over the {1}-byte limit")]
    TooLarge(usize, usize),
    /// The child answered `initialize` with an error.
    #[error("initialize failed: {0}")]
    Initialize(RpcError),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A message for a session's standalone stream, tagged with the session it belongs to.
type Outlet = mpsc::UnboundedSender<Message>;

#[derive(Default)]
struct Routes {
    /// Child-side request id → (caller's id, reply channel).
    pending: HashMap<u64, (Value, mpsc::Sender<Message>)>,
    /// Child-side progress token → (caller's token, channel of the request it belongs to).
    progress: HashMap<String, (Value, mpsc::Sender<Message>)>,
    /// Child-side id of a server→client request → the session it was sent to.
    server_requests: HashMap<String, u64>,
    /// Standalone streams by session number.
    outlets: HashMap<u64, Outlet>,
}

/// One running child.
struct Child {
    stdin: tokio::sync::Mutex<ChildStdin>,
    routes: Mutex<Routes>,
    alive: AtomicBool,
    next: AtomicU64,
    shared: bool,
    max: usize,
    proc: Mutex<Option<tokio::process::Child>>,
}

impl Child {
    fn spawn(cmd: &StdioCommand) -> Result<Arc<Child>, StdioError> {
        let program =
            cmd.command.first().ok_or_else(|| StdioError::Spawn(String::new(), "empty command".into()))?;
        let mut c = Command::new(program);
        c.args(&cmd.command[1..])
            .envs(&cmd.env)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        let mut proc = c.spawn().map_err(|e| StdioError::Spawn(program.clone(), e.to_string()))?;
        let stdin = proc.stdin.take().expect("piped stdin");
        let stdout = proc.stdout.take().expect("piped stdout");
        let child = Arc::new(Child {
            stdin: tokio::sync::Mutex::new(stdin),
            routes: Mutex::new(Routes::default()),
            alive: AtomicBool::new(true),
            next: AtomicU64::new(1),
            shared: !cmd.per_session,
            max: cmd.max_message_bytes,
            proc: Mutex::new(Some(proc)),
        });
        let reader = child.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout);
            loop {
                match read_line(&mut r, reader.max).await {
                    Ok(Some(line)) => reader.dispatch(&line).await,
                    Ok(None) => break,
                    Err(()) => continue,
                }
            }
            reader.alive.store(false, Ordering::SeqCst);
            let mut routes = lock(&reader.routes);
            routes.pending.clear();
            routes.progress.clear();
            tracing::warn!(target: "cairn::mcp", "stdio MCP server exited");
        });
        Ok(child)
    }

    fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    async fn write(&self, v: &Value) -> Result<(), StdioError> {
        let mut line = serde_json::to_vec(v).expect("json");
        if line.len() > self.max {
            return Err(StdioError::TooLarge(line.len(), self.max));
        }
        line.push(b'\n');
        let mut w = self.stdin.lock().await;
        w.write_all(&line).await.map_err(|_| StdioError::Exited)?;
        w.flush().await.map_err(|_| StdioError::Exited)
    }

    /// Sends a request for session `session`; replies (progress, then the response) arrive on
    /// the returned channel, with the caller's id and token restored.
    async fn request(&self, mut req: Request) -> Result<mpsc::Receiver<Message>, StdioError> {
        if !self.alive() {
            return Err(StdioError::Exited);
        }
        let (tx, rx) = mpsc::channel(64);
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let token_key = format!("p{n}");
        let orig_id = std::mem::replace(&mut req.id, Value::from(n));
        let mut orig_token = None;
        if let Some(meta) =
            req.params.as_mut().and_then(|p| p.get_mut("_meta")).and_then(Value::as_object_mut)
            && let Some(t) = meta.get("progressToken").cloned()
        {
            meta.insert("progressToken".into(), Value::from(token_key.clone()));
            orig_token = Some(t);
        }
        {
            let mut routes = lock(&self.routes);
            routes.pending.insert(n, (orig_id, tx.clone()));
            if let Some(t) = orig_token {
                routes.progress.insert(token_key.clone(), (t, tx));
            }
        }
        if let Err(e) = self.write(&req.to_value()).await {
            let mut routes = lock(&self.routes);
            routes.pending.remove(&n);
            routes.progress.remove(&token_key);
            return Err(e);
        }
        Ok(rx)
    }

    /// Sends a notification or a response (to a server→client request).
    async fn send(&self, session: u64, msg: Message) -> Result<(), StdioError> {
        let v = match msg {
            Message::Response(mut r) => {
                let key = r.id.to_string();
                let owner = lock(&self.routes).server_requests.remove(&key);
                if self.shared && owner != Some(session) {
                    return Ok(()); // not this session's request: drop
                }
                r.id = serde_json::from_str(&key).unwrap_or(r.id);
                r.to_value()
            }
            m => m.to_value(),
        };
        self.write(&v).await
    }

    async fn dispatch(&self, line: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            tracing::warn!(target: "cairn::mcp", "stdio MCP server wrote a line that is not JSON");
            return;
        };
        let msg = match Message::from_value(v) {
            Ok(m) => m,
            Err(_) => return,
        };
        match msg {
            Message::Response(mut r) => {
                let entry = r.id.as_u64().and_then(|n| {
                    let mut routes = lock(&self.routes);
                    let e = routes.pending.remove(&n);
                    routes.progress.retain(|_, (_, tx)| !e.as_ref().is_some_and(|(_, t)| t.same_channel(tx)));
                    e
                });
                if let Some((orig, tx)) = entry {
                    r.id = orig;
                    let _ = tx.send(Message::Response(r)).await;
                }
            }
            Message::Notification(mut n) => {
                if n.method == "notifications/progress" {
                    let token =
                        n.params.as_ref().and_then(|p| p.get("progressToken")).and_then(Value::as_str);
                    let route = token.and_then(|t| lock(&self.routes).progress.get(t).cloned());
                    if let Some((orig, tx)) = route {
                        if let Some(p) = n.params.as_mut().and_then(Value::as_object_mut) {
                            p.insert("progressToken".into(), orig);
                        }
                        let _ = tx.send(Message::Notification(n)).await;
                    }
                    return;
                }
                let outlets: Vec<Outlet> = lock(&self.routes).outlets.values().cloned().collect();
                for o in outlets {
                    let _ = o.send(Message::Notification(n.clone()));
                }
            }
            Message::Request(r) => {
                // A server→client request (sampling, elicitation, roots). A child of one session
                // that is answering exactly one request most likely asks on its behalf: the
                // request goes on that request's stream, where the client is listening.
                // Otherwise it goes to the session's standalone stream.
                let (in_flight, target) = {
                    let routes = lock(&self.routes);
                    let in_flight = if !self.shared && routes.pending.len() == 1 {
                        routes.pending.values().next().map(|(_, tx)| tx.clone())
                    } else {
                        None
                    };
                    let target = if routes.outlets.len() == 1 {
                        routes.outlets.iter().next().map(|(k, v)| (*k, v.clone()))
                    } else {
                        None
                    };
                    (in_flight, target)
                };
                if let Some(tx) = in_flight {
                    let _ = tx.send(Message::Request(r)).await;
                    return;
                }
                match target {
                    Some((session, outlet)) => {
                        lock(&self.routes).server_requests.insert(r.id.to_string(), session);
                        let _ = outlet.send(Message::Request(r));
                    }
                    None => {
                        let e = r.error(RpcError::new(
                            METHOD_NOT_FOUND,
                            "no client stream to send this request to",
                        ));
                        let _ = self.write(&e.to_value()).await;
                    }
                }
            }
        }
    }

    fn kill(&self) {
        self.alive.store(false, Ordering::SeqCst);
        if let Some(mut p) = lock(&self.proc).take() {
            let _ = p.start_kill();
        }
    }
}

/// Reads one line of at most `max` bytes; `Ok(None)` at end of stream, `Err` for a line over the
/// cap (which is skipped).
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, ()> {
    let mut line = Vec::new();
    let mut over = false;
    loop {
        let buf = match r.fill_buf().await {
            Ok(b) => b,
            Err(_) => return Ok(None),
        };
        if buf.is_empty() {
            return if line.is_empty() || over { Ok(None) } else { Ok(Some(line)) };
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !over {
            if line.len() + chunk.len() > max {
                over = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let consumed = done.unwrap_or(buf.len());
        r.consume(consumed);
        if done.is_some() {
            if over {
                tracing::warn!(target: "cairn::mcp", max, "stdio MCP server wrote a message over the limit; dropped");
                return Err(());
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                line.clear();
                continue;
            }
            return Ok(Some(line));
        }
    }
}

/// A session's hold on a child.
struct Slot {
    number: u64,
    /// Last use, seconds since the epoch.
    last_used: AtomicU64,
    /// `initialize` params the session was opened with (replayed after a restart).
    init_params: Option<Value>,
    child: tokio::sync::Mutex<Option<Arc<Child>>>,
    outlet: Mutex<Option<Outlet>>,
}

/// One stdio MCP server, serving any number of sessions.
pub struct StdioServer {
    cmd: StdioCommand,
    sessions: Mutex<HashMap<String, Arc<Slot>>>,
    /// The shared child, and the result of its one `initialize`.
    shared: tokio::sync::Mutex<Option<(Arc<Child>, Value)>>,
    next_session: AtomicU64,
    restarts: AtomicU64,
}

impl StdioServer {
    /// A server; no child runs until the first session opens.
    pub fn new(cmd: StdioCommand) -> Arc<StdioServer> {
        Arc::new(StdioServer {
            cmd,
            sessions: Mutex::new(HashMap::new()),
            shared: tokio::sync::Mutex::new(None),
            next_session: AtomicU64::new(1),
            restarts: AtomicU64::new(0),
        })
    }

    /// How many times a child was started again after it exited.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The cap on one message.
    pub fn max_message_bytes(&self) -> usize {
        self.cmd.max_message_bytes
    }

    /// Starts a child and runs the handshake; returns it with its `initialize` result.
    async fn start(&self, init_params: Option<&Value>) -> Result<(Arc<Child>, Value), StdioError> {
        let child = Child::spawn(&self.cmd)?;
        let params = init_params.cloned().unwrap_or_else(|| {
            serde_json::json!({
                "protocolVersion": super::protocol::LATEST_SESSION_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "cairn", "version": env!("CARGO_PKG_VERSION")}
            })
        });
        let mut rx = child.request(Request::new(0, "initialize", Some(params))).await?;
        let result = loop {
            match rx.recv().await {
                Some(Message::Response(Response { outcome: Ok(r), .. })) => break r,
                Some(Message::Response(Response { outcome: Err(e), .. })) => {
                    return Err(StdioError::Initialize(e));
                }
                Some(_) => continue,
                None => return Err(StdioError::Exited),
            }
        };
        child.send(0, Message::Notification(Notification::new("notifications/initialized", None))).await?;
        Ok((child, result))
    }

    /// Opens a session with the client's `initialize` params; returns its id and the
    /// `initialize` result to answer with.
    pub async fn open(&self, init_params: Option<Value>) -> Result<(String, Value), StdioError> {
        let number = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (child, result) = if self.cmd.per_session {
            let (c, r) = self.start(init_params.as_ref()).await?;
            (Some(c), r)
        } else {
            let (_, r) = self.shared_child(init_params.as_ref()).await?;
            (None, r)
        };
        let id = format!("{}-{number}", super::session::Sealer::random_secret());
        let slot = Arc::new(Slot {
            number,
            last_used: AtomicU64::new(unix_now()),
            init_params,
            child: tokio::sync::Mutex::new(child),
            outlet: Mutex::new(None),
        });
        lock(&self.sessions).insert(id.clone(), slot);
        Ok((id, result))
    }

    async fn shared_child(&self, init_params: Option<&Value>) -> Result<(Arc<Child>, Value), StdioError> {
        let mut g = self.shared.lock().await;
        if let Some((c, r)) = g.as_ref()
            && c.alive()
        {
            return Ok((c.clone(), r.clone()));
        }
        if g.is_some() {
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
        let (c, r) = self.start(init_params).await?;
        // Standalone streams of the sessions move to the new child.
        for slot in lock(&self.sessions).values() {
            if let Some(o) = lock(&slot.outlet).clone() {
                lock(&c.routes).outlets.insert(slot.number, o);
            }
        }
        *g = Some((c.clone(), r.clone()));
        Ok((c, r))
    }

    fn slot(&self, session: &str) -> Result<Arc<Slot>, StdioError> {
        let slot = lock(&self.sessions).get(session).cloned().ok_or(StdioError::UnknownSession)?;
        slot.last_used.store(unix_now(), Ordering::Relaxed);
        Ok(slot)
    }

    /// Ends the sessions unused for longer than `idle` (their children stop); returns how many.
    pub async fn reap(&self, idle: std::time::Duration) -> usize {
        let now = unix_now();
        let stale: Vec<String> = lock(&self.sessions)
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.last_used.load(Ordering::Relaxed)) > idle.as_secs())
            .map(|(k, _)| k.clone())
            .collect();
        for id in &stale {
            self.close(id).await;
        }
        stale.len()
    }

    /// Reaps idle sessions of `server` every so often until the server is dropped. Needs a Tokio
    /// runtime; without one nothing is reaped.
    pub fn reap_in_background(server: &Arc<StdioServer>, idle: std::time::Duration) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let weak = Arc::downgrade(server);
        let every = (idle / 2).clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(60));
        handle.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(server) = weak.upgrade() else { return };
                let n = server.reap(idle).await;
                if n > 0 {
                    tracing::info!(target: "cairn::mcp", sessions = n, "idle stdio sessions ended");
                }
            }
        });
    }

    /// The session's child, started again (and re-initialized) if it exited.
    async fn child(&self, slot: &Slot) -> Result<Arc<Child>, StdioError> {
        if !self.cmd.per_session {
            return Ok(self.shared_child(slot.init_params.as_ref()).await?.0);
        }
        let mut g = slot.child.lock().await;
        if let Some(c) = g.as_ref()
            && c.alive()
        {
            return Ok(c.clone());
        }
        self.restarts.fetch_add(1, Ordering::Relaxed);
        let (c, _) = self.start(slot.init_params.as_ref()).await?;
        if let Some(o) = lock(&slot.outlet).clone() {
            lock(&c.routes).outlets.insert(slot.number, o);
        }
        *g = Some(c.clone());
        Ok(c)
    }

    /// Sends a request; its progress notifications and then its response arrive on the channel
    /// (which closes without a response if the child dies).
    pub async fn request(&self, session: &str, req: Request) -> Result<mpsc::Receiver<Message>, StdioError> {
        let slot = self.slot(session)?;
        let child = self.child(&slot).await?;
        child.request(req).await
    }

    /// Sends a notification or a response.
    pub async fn send(&self, session: &str, msg: Message) -> Result<(), StdioError> {
        let slot = self.slot(session)?;
        let child = self.child(&slot).await?;
        child.send(slot.number, msg).await
    }

    /// The session's standalone stream: notifications and requests the server sends on its own.
    /// A new call replaces the previous stream.
    pub async fn listen(&self, session: &str) -> Result<mpsc::UnboundedReceiver<Message>, StdioError> {
        let slot = self.slot(session)?;
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&slot.outlet) = Some(tx.clone());
        let child = self.child(&slot).await?;
        lock(&child.routes).outlets.insert(slot.number, tx);
        Ok(rx)
    }

    /// Ends a session (a per-session child is stopped).
    pub async fn close(&self, session: &str) -> bool {
        let Some(slot) = lock(&self.sessions).remove(session) else { return false };
        if let Some(c) = slot.child.lock().await.take() {
            c.kill();
        }
        if let Some((c, _)) = self.shared.lock().await.as_ref() {
            lock(&c.routes).outlets.remove(&slot.number);
        }
        true
    }

    /// Open sessions.
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Sends a request and waits for its response (ignoring progress).
    pub async fn call(&self, session: &str, req: Request) -> Result<Response, StdioError> {
        let mut rx = self.request(session, req).await?;
        while let Some(m) = rx.recv().await {
            if let Message::Response(r) = m {
                return Ok(r);
            }
        }
        Err(StdioError::Exited)
    }
}

impl Drop for StdioServer {
    fn drop(&mut self) {
        for slot in lock(&self.sessions).values() {
            if let Ok(g) = slot.child.try_lock()
                && let Some(c) = g.as_ref()
            {
                c.kill();
            }
        }
    }
}

/// The error a caller gets when a stdio exchange fails.
pub fn to_rpc_error(e: &StdioError) -> RpcError {
    RpcError::new(INTERNAL_ERROR, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_line_caps_and_skips() {
        let data = b"{\"a\":1}\n0123456789012345\n\n{\"b\":2}".to_vec();
        let mut r = BufReader::with_capacity(4, &data[..]);
        assert_eq!(read_line(&mut r, 10).await, Ok(Some(b"{\"a\":1}".to_vec())));
        assert_eq!(read_line(&mut r, 10).await, Err(()));
        assert_eq!(read_line(&mut r, 10).await, Ok(Some(b"{\"b\":2}".to_vec())));
        assert_eq!(read_line(&mut r, 10).await, Ok(None));
    }

    #[tokio::test]
    async fn spawn_failure_is_reported() {
        let s = StdioServer::new(StdioCommand {
            command: vec!["/nonexistent/cairn-test-binary".into()],
            env: BTreeMap::new(),
            per_session: true,
            max_message_bytes: 1024,
        });
        assert!(matches!(s.open(None).await, Err(StdioError::Spawn(..))));
    }
}
