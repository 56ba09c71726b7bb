//! The load driver. Every scenario prints one JSON line on stdout.
//!
//! - `serial`: one connection, one request at a time (the "added latency at one connection" run).
//! - `open`: open loop at a fixed rate. A dedicated thread holds the schedule: request `i` is due
//!   at `start + i / rate`; latency is measured from that intended time, not from when the driver
//!   got round to sending it, so a stalled target is charged for every request that queued behind
//!   the stall (no coordinated omission). The lag between the intended time and the moment the
//!   request task started is recorded apart (`lag_*`), so the driver's own jitter shows.
//! - `closed`: N connections, each sending its next request when the previous answer is in; gives
//!   the maximum throughput (its latencies do suffer coordinated omission and are only indicative).
//! - `ladder`: `open` runs at rising rates; the highest rate with no errors, p99 ≤ the bound and
//!   ≥ 97 % of the offered rate completed is the maximum sustainable rate at that bound.

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Clone)]
pub struct Target {
    pub label: String,
    /// Base URL, `http://127.0.0.1:PORT`; requests go to `{url}/v1/chat/completions`.
    pub url: String,
    pub key: Option<String>,
    pub model: String,
    pub timeout: Duration,
    /// Processes whose summed VmRSS is sampled every 100 ms during the run.
    pub pids: Vec<u32>,
}

fn client(max_idle: usize) -> HttpClient {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(max_idle).build(conn)
}

fn body(model: &str, stream: bool) -> Bytes {
    let mut v = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Say hello to the benchmark in one short sentence."}
        ],
        "max_tokens": 64
    });
    if stream {
        v["stream"] = json!(true);
    }
    Bytes::from(v.to_string())
}

fn request(t: &Target, payload: &Bytes) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::post(format!("{}/v1/chat/completions", t.url))
        .header("content-type", "application/json");
    if let Some(k) = &t.key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    b.body(Full::new(payload.clone())).expect("valid request")
}

fn hist() -> Histogram<u64> {
    // Nanoseconds, 1 ns .. 120 s, 3 significant digits.
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("histogram bounds")
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// One finished request: time to first body byte and to the end, from `t0`.
struct Sample {
    first: Duration,
    total: Duration,
    events: usize,
}

#[derive(Debug)]
enum Fail {
    Status(u16),
    Body,
    Io,
    Timeout,
}

async fn once(
    c: &HttpClient,
    t: &Target,
    payload: &Bytes,
    stream: bool,
    t0: Instant,
) -> Result<Sample, Fail> {
    let fut = async {
        let resp = c.request(request(t, payload)).await.map_err(|_| Fail::Io)?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut first = None;
        let mut events = 0;
        let mut seen_choices = false;
        let mut tail: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Fail::Io)?;
            if let Some(d) = frame.data_ref()
                && !d.is_empty()
            {
                if first.is_none() {
                    first = Some(t0.elapsed());
                }
                if stream {
                    // Events may straddle frames: count on the carried-over tail plus this frame.
                    tail.extend_from_slice(d);
                    events += count(&tail, b"data:");
                    // Keep 4 bytes: a `data:` cut by a frame boundary is counted once, later.
                    let keep = tail.len().saturating_sub(4);
                    tail.drain(..keep);
                } else {
                    tail.extend_from_slice(d);
                }
            }
        }
        let total = t0.elapsed();
        if status != 200 {
            return Err(Fail::Status(status));
        }
        if !stream {
            seen_choices = count(&tail, b"\"choices\"") > 0;
        } else if events > 0 {
            seen_choices = true;
        }
        if !seen_choices {
            return Err(Fail::Body);
        }
        Ok(Sample { first: first.unwrap_or(total), total, events })
    };
    match tokio::time::timeout(t.timeout.saturating_sub(t0.elapsed()), fut).await {
        Ok(r) => r,
        Err(_) => Err(Fail::Timeout),
    }
}

#[derive(Default)]
struct Errors {
    status: u64,
    body: u64,
    io: u64,
    timeout: u64,
    first_status: Option<u16>,
}

impl Errors {
    fn add(&mut self, f: &Fail) {
        match f {
            Fail::Status(s) => {
                self.status += 1;
                self.first_status.get_or_insert(*s);
            }
            Fail::Body => self.body += 1,
            Fail::Io => self.io += 1,
            Fail::Timeout => self.timeout += 1,
        }
    }
    fn total(&self) -> u64 {
        self.status + self.body + self.io + self.timeout
    }
    fn json(&self) -> Value {
        json!({"total": self.total(), "status": self.status, "first_status": self.first_status, "body": self.body, "io": self.io, "timeout": self.timeout})
    }
}

struct Stats {
    total: Histogram<u64>,
    first: Histogram<u64>,
    lag: Histogram<u64>,
    events: u64,
    errors: Errors,
}

impl Stats {
    fn new() -> Self {
        Stats { total: hist(), first: hist(), lag: hist(), events: 0, errors: Errors::default() }
    }
    fn add(&mut self, r: &Result<Sample, Fail>) {
        match r {
            Ok(s) => {
                let _ = self.total.record(s.total.as_nanos() as u64);
                let _ = self.first.record(s.first.as_nanos() as u64);
                self.events += s.events as u64;
            }
            Err(f) => self.errors.add(f),
        }
    }
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return f64::NAN;
    }
    (h.value_at_quantile(q) as f64 / 100.0).round() / 10.0
}

fn summary(h: &Histogram<u64>) -> Value {
    json!({
        "n": h.len(),
        "p50_us": us(h, 0.5), "p90_us": us(h, 0.9), "p99_us": us(h, 0.99), "p999_us": us(h, 0.999),
        "max_us": if h.is_empty() { f64::NAN } else { (h.max() as f64 / 100.0).round() / 10.0 },
        "mean_us": (h.mean() / 100.0).round() / 10.0,
    })
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// User + system CPU time of `pids`, in clock ticks (1/100 s on Linux).
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // Fields after the command name (which may hold spaces) start after the last ')'.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// Target CPU time per completed request, µs.
fn cpu_per_req(pids: &[u32], start_ticks: u64, completed: u64) -> Value {
    if pids.is_empty() || completed == 0 {
        return Value::Null;
    }
    let ticks = cpu_ticks(pids).saturating_sub(start_ticks);
    json!((ticks as f64 * 10_000.0 / completed as f64).round())
}

/// Samples the summed VmRSS of `pids` every 100 ms until dropped; `max` keeps the peak.
struct RssSampler {
    max: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pids: &[u32]) -> Self {
        let max = Arc::new(AtomicU64::new(0));
        let (m, pids) = (max.clone(), pids.to_vec());
        let task = tokio::spawn(async move {
            if pids.is_empty() {
                return;
            }
            loop {
                let sum: u64 = pids.iter().filter_map(|p| rss_kib(*p)).sum();
                m.fetch_max(sum, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssSampler { max, task }
    }
    fn stop(self) -> Option<u64> {
        self.task.abort();
        Some(self.max.load(Ordering::Relaxed)).filter(|m| *m > 0)
    }
}

fn base(t: &Target, scenario: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("kind".into(), json!("run"));
    m.insert("label".into(), json!(t.label));
    m.insert("scenario".into(), json!(scenario));
    m
}

/// One connection, one request at a time; `warmup` first, not recorded.
pub async fn serial(t: &Target, warmup: Duration, duration: Duration, stream: bool) -> Value {
    let c = client(1);
    let payload = body(&t.model, stream);
    let end = Instant::now() + warmup;
    while Instant::now() < end {
        let _ = once(&c, t, &payload, stream, Instant::now()).await;
    }
    let rss = RssSampler::start(&t.pids);
    let ticks = cpu_ticks(&t.pids);
    let mut st = Stats::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        let r = once(&c, t, &payload, stream, Instant::now()).await;
        st.add(&r);
    }
    let secs = start.elapsed().as_secs_f64();
    let mut m = base(t, if stream { "serial_stream" } else { "serial" });
    m.insert("duration_s".into(), json!(secs));
    m.insert("completed".into(), json!(st.total.len()));
    m.insert("rps".into(), json!((st.total.len() as f64 / secs).round()));
    m.insert("latency".into(), summary(&st.total));
    m.insert("ttfb".into(), summary(&st.first));
    m.insert("errors".into(), st.errors.json());
    m.insert("cpu_us_per_req".into(), cpu_per_req(&t.pids, ticks, st.total.len()));
    m.insert("rss_peak_kib".into(), json!(rss.stop()));
    Value::Object(m)
}

/// N connections, closed loop.
pub async fn closed(t: &Target, conns: usize, duration: Duration) -> Value {
    let c = client(conns);
    let payload = body(&t.model, false);
    let st = Arc::new(Mutex::new(Stats::new()));
    let rss = RssSampler::start(&t.pids);
    let ticks = cpu_ticks(&t.pids);
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (c, t, payload, st) = (c.clone(), t.clone(), payload.clone(), st.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Stats::new();
            while Instant::now() < end {
                let r = once(&c, &t, &payload, false, Instant::now()).await;
                local.add(&r);
                if r.is_err() {
                    // Do not spin on a refusing target.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            let mut g = st.lock().expect("stats");
            let _ = g.total.add(&local.total);
            let _ = g.first.add(&local.first);
            g.errors.status += local.errors.status;
            g.errors.body += local.errors.body;
            g.errors.io += local.errors.io;
            g.errors.timeout += local.errors.timeout;
            if g.errors.first_status.is_none() {
                g.errors.first_status = local.errors.first_status;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let st = st.lock().expect("stats");
    let mut m = base(t, "closed");
    m.insert("conns".into(), json!(conns));
    m.insert("duration_s".into(), json!(secs));
    m.insert("completed".into(), json!(st.total.len()));
    m.insert("rps".into(), json!((st.total.len() as f64 / secs).round()));
    m.insert("latency".into(), summary(&st.total));
    m.insert("errors".into(), st.errors.json());
    m.insert("cpu_us_per_req".into(), cpu_per_req(&t.pids, ticks, st.total.len()));
    m.insert("rss_peak_kib".into(), json!(rss.stop()));
    Value::Object(m)
}

/// Open loop at `rate` requests/s for `duration`; at most `max_inflight` requests outstanding
/// (later ones wait for a slot, and that wait counts in their latency).
pub async fn open(t: &Target, rate: f64, duration: Duration, stream: bool, max_inflight: usize) -> Value {
    let c = client(max_inflight);
    let payload = body(&t.model, stream);
    let st = Arc::new(Mutex::new(Stats::new()));
    let sem = Arc::new(tokio::sync::Semaphore::new(max_inflight));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let period = Duration::from_secs_f64(1.0 / rate);
    let rss = RssSampler::start(&t.pids);
    let ticks = cpu_ticks(&t.pids);
    // Leave the receiver a moment to be polled before the first request is due.
    let start = Instant::now() + Duration::from_millis(20);
    let scheduler = std::thread::spawn(move || {
        let mut i = 0u64;
        while i < total {
            let due = start + period.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
                continue;
            }
            if tx.send(due).is_err() {
                return;
            }
            i += 1;
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(due) = rx.recv().await {
        let (c, t, payload, st, sem) = (c.clone(), t.clone(), payload.clone(), st.clone(), sem.clone());
        tasks.spawn(async move {
            let lag = due.elapsed();
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let r = once(&c, &t, &payload, stream, due).await;
            let mut g = st.lock().expect("stats");
            let _ = g.lag.record(lag.as_nanos().max(1) as u64);
            g.add(&r);
        });
        // Reap finished tasks so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let _ = scheduler.join();
    let secs = duration.as_secs_f64();
    let st = st.lock().expect("stats");
    let mut m = base(t, if stream { "open_stream" } else { "open" });
    m.insert("rate".into(), json!(rate));
    m.insert("duration_s".into(), json!(secs));
    m.insert("offered".into(), json!(total));
    m.insert("completed".into(), json!(st.total.len()));
    m.insert("rps".into(), json!((st.total.len() as f64 / secs).round()));
    m.insert("latency".into(), summary(&st.total));
    m.insert("ttfb".into(), summary(&st.first));
    m.insert("lag".into(), summary(&st.lag));
    if stream && !st.total.is_empty() {
        m.insert("events_per_stream".into(), json!(st.events as f64 / st.total.len() as f64));
    }
    m.insert("errors".into(), st.errors.json());
    m.insert("cpu_us_per_req".into(), cpu_per_req(&t.pids, ticks, st.total.len()));
    m.insert("rss_peak_kib".into(), json!(rss.stop()));
    Value::Object(m)
}

pub struct Ladder {
    pub start: f64,
    pub factor: f64,
    pub max: f64,
    pub step: Duration,
    pub bound: Duration,
    pub max_inflight: usize,
}

/// Rising open-loop rates until one misses the bound; prints each step, returns the summary.
pub async fn ladder(t: &Target, l: &Ladder) -> Value {
    let mut rate = l.start;
    let mut best: Option<Value> = None;
    let mut steps = Vec::new();
    let mut peak_rss = 0u64;
    while rate <= l.max {
        let r = open(t, rate, l.step, false, l.max_inflight).await;
        let p99 = r["latency"]["p99_us"].as_f64().unwrap_or(f64::INFINITY);
        let errors = r["errors"]["total"].as_u64().unwrap_or(u64::MAX);
        let completed = r["completed"].as_u64().unwrap_or(0) as f64;
        let ok = errors == 0
            && p99.is_finite()
            && p99 <= l.bound.as_secs_f64() * 1e6
            && completed >= 0.97 * rate * l.step.as_secs_f64();
        peak_rss = peak_rss.max(r["rss_peak_kib"].as_u64().unwrap_or(0));
        steps.push(json!({"rate": rate, "p50_us": r["latency"]["p50_us"], "p99_us": p99, "errors": errors, "completed": completed, "ok": ok}));
        eprintln!(
            "  ladder {}: {rate:.0}/s p99 {p99} µs errors {errors} -> {}",
            t.label,
            if ok { "ok" } else { "missed" }
        );
        if !ok {
            break;
        }
        best = Some(r);
        rate = (rate * l.factor).round();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut m = base(t, "ladder");
    m.insert("bound_us".into(), json!(l.bound.as_secs_f64() * 1e6));
    m.insert("max_rate".into(), json!(best.as_ref().map(|b| b["rate"].clone())));
    m.insert("at_max".into(), best.map(|b| b["latency"].clone()).unwrap_or(Value::Null));
    m.insert("steps".into(), json!(steps));
    m.insert("rss_peak_kib".into(), json!(Some(peak_rss).filter(|p| *p > 0)));
    Value::Object(m)
}
