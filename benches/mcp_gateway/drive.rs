//! The MCP client of the benchmark: opens sessions (`initialize` + `notifications/initialized`)
//! and sends `tools/call` on them, as the shared load scenarios' [`Load`]; plus the two
//! scenarios only MCP has: session set-up time and memory per open session.
//!
//! Answers may be one JSON body or an SSE stream (both are streamable HTTP); either way the whole
//! body is read and a call counts only when it is HTTP 200 and carries the backend's marker text
//! (so a JSON-RPC error, a policy refusal or an error page is an error, not a fast answer).

use crate::backend::MARKER;
use crate::common::{self, Fail, Load, Sample, Stats, Target, base, rss_sum, summary};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The protocol version the driver asks for (the newest session-era one).
pub const VERSION: &str = "2025-11-25";

/// An MCP client of one target, with its open sessions (the lanes of the load scenarios).
pub struct Mcp {
    client: HttpClient,
    url: String,
    auth: Option<HeaderValue>,
    tool: String,
    /// Arguments of every call (JSON).
    args: String,
    sessions: Vec<HeaderValue>,
    next_id: AtomicU64,
}

/// A whole answer.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    first: Option<Duration>,
}

impl Mcp {
    /// `max_idle`: connections the client keeps (the most requests in flight at once).
    pub fn new(url: &str, key: Option<&str>, tool: &str, max_idle: usize) -> Mcp {
        Mcp {
            client: common::client(max_idle),
            url: url.to_string(),
            auth: key.map(|k| format!("Bearer {k}").parse().expect("visible ASCII key")),
            tool: tool.to_string(),
            args: json!({"text": "hello from the benchmark", "n": 1}).to_string(),
            sessions: Vec::new(),
            next_id: AtomicU64::new(1),
        }
    }

    async fn post(&self, session: Option<&HeaderValue>, body: String, t0: Instant) -> Result<Answer, Fail> {
        let mut b = http::Request::post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream");
        if let Some(a) = &self.auth {
            b = b.header(http::header::AUTHORIZATION, a);
        }
        if let Some(s) = session {
            b = b.header("mcp-session-id", s).header("mcp-protocol-version", VERSION);
        }
        let req = b.body(Full::new(Bytes::from(body))).expect("valid request");
        let resp = self.client.request(req).await.map_err(|_| Fail::Io)?;
        let (parts, mut body) = resp.into_parts();
        let mut buf = Vec::new();
        let mut first = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Fail::Io)?;
            if let Some(d) = frame.data_ref()
                && !d.is_empty()
            {
                first.get_or_insert_with(|| t0.elapsed());
                buf.extend_from_slice(d);
            }
        }
        Ok(Answer { status: parts.status, headers: parts.headers, body: buf, first })
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// `initialize` then `notifications/initialized`: the new session's id.
    pub async fn open_session(&self) -> Result<HeaderValue, Fail> {
        let init = json!({
            "jsonrpc": "2.0", "id": self.id(), "method": "initialize",
            "params": {
                "protocolVersion": VERSION,
                "capabilities": {},
                "clientInfo": {"name": "cairn-bench", "version": "1.0.0"}
            }
        });
        let a = self.post(None, init.to_string(), Instant::now()).await?;
        if a.status != StatusCode::OK {
            return Err(Fail::Status(a.status.as_u16()));
        }
        if common::count(&a.body, b"\"protocolVersion\"") == 0 {
            return Err(Fail::Body);
        }
        let sid = a.headers.get("mcp-session-id").cloned().ok_or(Fail::Body)?;
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_string();
        let a = self.post(Some(&sid), note, Instant::now()).await?;
        if !a.status.is_success() {
            return Err(Fail::Status(a.status.as_u16()));
        }
        Ok(sid)
    }

    /// Ends a session (`DELETE`; best effort).
    pub async fn close_session(&self, sid: &HeaderValue) {
        let mut b = http::Request::delete(&self.url).header("mcp-session-id", sid);
        if let Some(a) = &self.auth {
            b = b.header(http::header::AUTHORIZATION, a);
        }
        if let Ok(resp) = self.client.request(b.body(Full::new(Bytes::new())).expect("valid request")).await {
            let _ = resp.into_body().collect().await;
        }
    }

    /// Opens `n` sessions, `conc` at a time; fails on the first that cannot be opened.
    pub async fn open_sessions(&mut self, n: usize, conc: usize) -> Result<(), Fail> {
        let me = &*self;
        let opened: Vec<Result<HeaderValue, Fail>> = futures_util::stream::iter(0..n)
            .map(|_| me.open_session())
            .buffer_unordered(conc.max(1))
            .collect()
            .await;
        let opened = opened.into_iter().collect::<Result<Vec<_>, _>>()?;
        self.sessions.extend(opened);
        Ok(())
    }

    /// Ends every session this client opened.
    pub async fn close_all(&mut self, conc: usize) {
        let sessions = std::mem::take(&mut self.sessions);
        let me = &*self;
        futures_util::stream::iter(sessions.iter())
            .map(|s| me.close_session(s))
            .buffer_unordered(conc.max(1))
            .collect::<Vec<()>>()
            .await;
    }

    /// One `tools/call` on `session`.
    async fn call(&self, session: &HeaderValue, t0: Instant) -> Result<Sample, Fail> {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{},"method":"tools/call","params":{{"name":"{}","arguments":{}}}}}"#,
            self.id(),
            self.tool,
            self.args
        );
        let a = self.post(Some(session), body, t0).await?;
        let total = t0.elapsed();
        if a.status != StatusCode::OK {
            return Err(Fail::Status(a.status.as_u16()));
        }
        if common::count(&a.body, MARKER.as_bytes()) == 0 {
            return Err(Fail::Body);
        }
        Ok(Sample { first: a.first.unwrap_or(total), total, events: 0 })
    }
}

impl Load for Mcp {
    async fn once(&self, lane: usize, t0: Instant) -> Result<Sample, Fail> {
        let s = &self.sessions[lane % self.sessions.len()];
        self.call(s, t0).await
    }
}

/// Session set-up: `initialize` + `notifications/initialized`, one after the other on one
/// connection, timed together; each session is then ended (`DELETE`, not timed) so the target
/// does not accumulate them.
pub async fn setup(m: &Mcp, t: &Target, warmup: Duration, duration: Duration) -> Value {
    let end = Instant::now() + warmup;
    while Instant::now() < end {
        if let Ok(s) = m.open_session().await {
            m.close_session(&s).await;
        }
    }
    let ticks = common::cpu_ticks(&t.pids);
    let mut st = Stats::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        let t0 = Instant::now();
        let r = tokio::time::timeout(t.timeout, m.open_session()).await.unwrap_or(Err(Fail::Timeout));
        let total = t0.elapsed();
        match r {
            Ok(s) => {
                st.add(&Ok(Sample { first: total, total, events: 0 }));
                m.close_session(&s).await;
            }
            Err(e) => {
                st.add(&Err(e));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mut o = base(t, "setup");
    o.insert("duration_s".into(), json!(secs));
    o.insert("completed".into(), json!(st.total.len()));
    o.insert("rps".into(), json!((st.total.len() as f64 / secs).round()));
    o.insert("latency".into(), summary(&st.total));
    o.insert("errors".into(), st.errors.json());
    // CPU per session includes the DELETEs (not timed).
    o.insert("cpu_us_per_req".into(), common::cpu_per_req(&t.pids, ticks, st.total.len()));
    Value::Object(o)
}

/// Memory per open session: the targets' summed VmRSS before and after opening `count` sessions
/// (`conc` at a time, each used by one `tools/call`), then the sessions are ended. A warm-up of
/// `count / 10` sessions opened, used and ended first, so that connection buffers and one-time
/// allocations are in "before".
pub async fn sessions(m: &mut Mcp, t: &Target, count: usize, conc: usize, settle: Duration) -> Value {
    let mut o = base(t, "sessions");
    let mut errors = common::Errors::default();
    if let Err(e) = m.open_sessions((count / 10).max(1), conc).await {
        errors.add(&e);
    }
    use_all(m, conc, &mut errors).await;
    m.close_all(conc).await;
    tokio::time::sleep(settle).await;
    let before = rss_sum(&t.pids);
    let t0 = Instant::now();
    if let Err(e) = m.open_sessions(count, conc).await {
        errors.add(&e);
    }
    let opened = m.sessions.len();
    let open_s = t0.elapsed().as_secs_f64();
    use_all(m, conc, &mut errors).await;
    tokio::time::sleep(settle).await;
    let after = rss_sum(&t.pids);
    m.close_all(conc).await;
    tokio::time::sleep(settle).await;
    let ended = rss_sum(&t.pids);
    let per_session_kib = (after as f64 - before as f64) / opened.max(1) as f64;
    o.insert("count".into(), json!(opened));
    o.insert("conns".into(), json!(conc));
    o.insert("open_s".into(), json!(open_s));
    o.insert("rss_before_kib".into(), json!(before));
    o.insert("rss_after_kib".into(), json!(after));
    o.insert("rss_ended_kib".into(), json!(ended));
    o.insert("kib_per_session".into(), json!((per_session_kib * 100.0).round() / 100.0));
    o.insert("mib_per_1000".into(), json!((per_session_kib * 1000.0 / 1024.0 * 100.0).round() / 100.0));
    o.insert("errors".into(), errors.json());
    Value::Object(o)
}

/// One `tools/call` on every open session, `conc` at a time.
async fn use_all(m: &Mcp, conc: usize, errors: &mut common::Errors) {
    let results: Vec<_> = futures_util::stream::iter(m.sessions.iter())
        .map(|s| m.call(s, Instant::now()))
        .buffer_unordered(conc.max(1))
        .collect()
        .await;
    for r in results {
        if let Err(e) = r {
            errors.add(&e);
        }
    }
}
