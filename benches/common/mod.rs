//! What the gateway benchmarks share: the load scenarios (one connection, closed loop, open loop,
//! rate ladder) over any [`Load`], HDR histograms, process RSS and CPU sampling, and the markdown
//! helpers of the reports. Each benchmark (`benches/ai_gateway`, `benches/mcp_gateway`) includes
//! this directory with `#[path = "../common/mod.rs"] mod common;` and brings only what differs:
//! the request it sends and how it checks the answer.
//!
//! Every scenario prints one JSON line (`kind: "run"`, `label`, `scenario`, …); the reports read
//! them back.
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

// Each benchmark uses most, not all, of what is here.
#![allow(dead_code)]

pub mod report;

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What is being loaded, for the JSON lines and the samplers.
#[derive(Clone)]
pub struct Target {
    pub label: String,
    /// Per-request timeout, from the intended send time.
    pub timeout: Duration,
    /// Processes whose summed VmRSS is sampled every 100 ms during the run, and whose CPU time
    /// is divided by the requests completed.
    pub pids: Vec<u32>,
}

/// One kind of request against one target. `lane` picks the connection state a request uses
/// (an MCP session, say): `serial` uses lane 0, `closed` lane `k` for its connection `k`, `open`
/// spreads request `i` over `i % lanes`.
pub trait Load: Send + Sync + 'static {
    /// Sends one request and reads the whole answer; times are taken from `t0`.
    fn once(&self, lane: usize, t0: Instant) -> impl Future<Output = Result<Sample, Fail>> + Send;
}

/// One finished request: time to first body byte and to the end, from `t0`.
pub struct Sample {
    pub first: Duration,
    pub total: Duration,
    /// SSE events seen (0 when not counted).
    pub events: usize,
}

#[derive(Debug)]
pub enum Fail {
    Status(u16),
    Body,
    Io,
    Timeout,
}

pub fn hist() -> Histogram<u64> {
    // Nanoseconds, 1 ns .. 120 s, 3 significant digits.
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("histogram bounds")
}

/// Occurrences of `needle` in `hay`.
pub fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

async fn timed<L: Load>(l: &L, t: &Target, lane: usize, t0: Instant) -> Result<Sample, Fail> {
    match tokio::time::timeout(t.timeout.saturating_sub(t0.elapsed()), l.once(lane, t0)).await {
        Ok(r) => r,
        Err(_) => Err(Fail::Timeout),
    }
}

#[derive(Default)]
pub struct Errors {
    pub status: u64,
    pub body: u64,
    pub io: u64,
    pub timeout: u64,
    pub first_status: Option<u16>,
}

impl Errors {
    pub fn add(&mut self, f: &Fail) {
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
    pub fn merge(&mut self, o: &Errors) {
        self.status += o.status;
        self.body += o.body;
        self.io += o.io;
        self.timeout += o.timeout;
        if self.first_status.is_none() {
            self.first_status = o.first_status;
        }
    }
    pub fn total(&self) -> u64 {
        self.status + self.body + self.io + self.timeout
    }
    pub fn json(&self) -> Value {
        json!({"total": self.total(), "status": self.status, "first_status": self.first_status, "body": self.body, "io": self.io, "timeout": self.timeout})
    }
}

pub struct Stats {
    pub total: Histogram<u64>,
    pub first: Histogram<u64>,
    pub lag: Histogram<u64>,
    pub events: u64,
    pub errors: Errors,
}

impl Stats {
    pub fn new() -> Self {
        Stats { total: hist(), first: hist(), lag: hist(), events: 0, errors: Errors::default() }
    }
    pub fn add(&mut self, r: &Result<Sample, Fail>) {
        match r {
            Ok(s) => {
                let _ = self.total.record(s.total.as_nanos() as u64);
                let _ = self.first.record(s.first.as_nanos() as u64);
                self.events += s.events as u64;
            }
            Err(f) => self.errors.add(f),
        }
    }
    pub fn merge(&mut self, o: &Stats) {
        let _ = self.total.add(&o.total);
        let _ = self.first.add(&o.first);
        let _ = self.lag.add(&o.lag);
        self.events += o.events;
        self.errors.merge(&o.errors);
    }
}

/// A percentile in µs, one decimal.
pub fn us(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return f64::NAN;
    }
    (h.value_at_quantile(q) as f64 / 100.0).round() / 10.0
}

pub fn summary(h: &Histogram<u64>) -> Value {
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

/// Summed VmRSS of `pids`, KiB.
pub fn rss_sum(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| rss_kib(*p)).sum()
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
pub fn cpu_per_req(pids: &[u32], start_ticks: u64, completed: u64) -> Value {
    if pids.is_empty() || completed == 0 {
        return Value::Null;
    }
    let ticks = cpu_ticks(pids).saturating_sub(start_ticks);
    json!((ticks as f64 * 10_000.0 / completed as f64).round())
}

/// Samples the summed VmRSS of `pids` every 100 ms until stopped; keeps the peak.
pub struct RssSampler {
    max: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pids: &[u32]) -> Self {
        let max = Arc::new(AtomicU64::new(0));
        let (m, pids) = (max.clone(), pids.to_vec());
        let task = tokio::spawn(async move {
            if pids.is_empty() {
                return;
            }
            loop {
                m.fetch_max(rss_sum(&pids), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssSampler { max, task }
    }
    pub fn stop(self) -> Option<u64> {
        self.task.abort();
        Some(self.max.load(Ordering::Relaxed)).filter(|m| *m > 0)
    }
}

/// The start of a `kind: "run"` line.
pub fn base(t: &Target, scenario: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("kind".into(), json!("run"));
    m.insert("label".into(), json!(t.label));
    m.insert("scenario".into(), json!(scenario));
    m
}

/// One connection, one request at a time; `warmup` first, not recorded.
pub async fn serial<L: Load>(
    l: &L,
    t: &Target,
    scenario: &str,
    warmup: Duration,
    duration: Duration,
) -> Value {
    let end = Instant::now() + warmup;
    while Instant::now() < end {
        let _ = timed(l, t, 0, Instant::now()).await;
    }
    let rss = RssSampler::start(&t.pids);
    let ticks = cpu_ticks(&t.pids);
    let mut st = Stats::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        let r = timed(l, t, 0, Instant::now()).await;
        st.add(&r);
    }
    let secs = start.elapsed().as_secs_f64();
    let mut m = base(t, scenario);
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

/// `count` sequential requests on lane 0, untimed: the load of an instruction count
/// (benches/mcp-callgrind.sh, benches/ai-callgrind.sh), where only what the target does counts.
pub async fn calls<L: Load>(l: &L, t: &Target, count: usize) -> Value {
    let mut o = base(t, "calls");
    o.insert("kind".into(), json!("calls"));
    let mut errors = Errors::default();
    for _ in 0..count {
        if let Err(e) = l.once(0, Instant::now()).await {
            errors.add(&e);
        }
    }
    o.insert("count".into(), json!(count));
    o.insert("errors".into(), errors.json());
    Value::Object(o)
}

/// `conns` connections (lanes `0..conns`), closed loop.
pub async fn closed<L: Load>(l: Arc<L>, t: &Target, conns: usize, duration: Duration) -> Value {
    let st = Arc::new(Mutex::new(Stats::new()));
    let rss = RssSampler::start(&t.pids);
    let ticks = cpu_ticks(&t.pids);
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for lane in 0..conns {
        let (l, t, st) = (l.clone(), t.clone(), st.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Stats::new();
            while Instant::now() < end {
                let r = timed(&*l, &t, lane, Instant::now()).await;
                local.add(&r);
                if r.is_err() {
                    // Do not spin on a refusing target.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            st.lock().expect("stats").merge(&local);
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

/// Open loop at `rate` requests/s for `duration`, request `i` on lane `i % lanes`; at most
/// `max_inflight` requests outstanding (later ones wait for a slot, and that wait counts in their
/// latency).
pub async fn open<L: Load>(
    l: Arc<L>,
    t: &Target,
    scenario: &str,
    rate: f64,
    duration: Duration,
    lanes: usize,
    max_inflight: usize,
) -> Value {
    let st = Arc::new(Mutex::new(Stats::new()));
    let sem = Arc::new(tokio::sync::Semaphore::new(max_inflight));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
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
            if tx.send((i, due)).is_err() {
                return;
            }
            i += 1;
        }
    });
    let lanes = lanes.max(1) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    while let Some((i, due)) = rx.recv().await {
        let (l, t, st, sem) = (l.clone(), t.clone(), st.clone(), sem.clone());
        tasks.spawn(async move {
            let lag = due.elapsed();
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let r = timed(&*l, &t, (i % lanes) as usize, due).await;
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
    let mut m = base(t, scenario);
    m.insert("rate".into(), json!(rate));
    m.insert("duration_s".into(), json!(secs));
    m.insert("offered".into(), json!(total));
    m.insert("completed".into(), json!(st.total.len()));
    m.insert("rps".into(), json!((st.total.len() as f64 / secs).round()));
    m.insert("latency".into(), summary(&st.total));
    m.insert("ttfb".into(), summary(&st.first));
    m.insert("lag".into(), summary(&st.lag));
    if st.events > 0 && !st.total.is_empty() {
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
    pub lanes: usize,
    pub max_inflight: usize,
}

/// Rising open-loop rates until one misses the bound; prints each step, returns the summary.
pub async fn ladder<L: Load>(l: Arc<L>, t: &Target, lad: &Ladder) -> Value {
    let mut rate = lad.start;
    let mut best: Option<Value> = None;
    let mut steps = Vec::new();
    let mut peak_rss = 0u64;
    while rate <= lad.max {
        let r = open(l.clone(), t, "open", rate, lad.step, lad.lanes, lad.max_inflight).await;
        let p99 = r["latency"]["p99_us"].as_f64().unwrap_or(f64::INFINITY);
        let errors = r["errors"]["total"].as_u64().unwrap_or(u64::MAX);
        let completed = r["completed"].as_u64().unwrap_or(0) as f64;
        let ok = errors == 0
            && p99.is_finite()
            && p99 <= lad.bound.as_secs_f64() * 1e6
            && completed >= 0.97 * rate * lad.step.as_secs_f64();
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
        rate = (rate * lad.factor).round();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut m = base(t, "ladder");
    m.insert("bound_us".into(), json!(lad.bound.as_secs_f64() * 1e6));
    m.insert("max_rate".into(), json!(best.as_ref().map(|b| b["rate"].clone())));
    m.insert("at_max".into(), best.map(|b| b["latency"].clone()).unwrap_or(Value::Null));
    m.insert("steps".into(), json!(steps));
    m.insert("rss_peak_kib".into(), json!(Some(peak_rss).filter(|p| *p > 0)));
    Value::Object(m)
}

/// A tokio runtime with `threads` workers (1: a current-thread runtime; 0: one per core).
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b.enable_all().build()
    };
    rt.expect("tokio runtime")
}

/// A pooled HTTP/1.1 client with TCP_NODELAY, keeping up to `max_idle` idle connections.
pub fn client<B>(
    max_idle: usize,
) -> hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let mut conn = hyper_util::client::legacy::connect::HttpConnector::new();
    conn.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(max_idle)
        .build(conn)
}

/// The options every `drive` command takes: which target, its timeout, its processes, and the
/// driver's threads.
#[derive(clap::Args)]
pub struct DriveArgs {
    #[arg(long)]
    pub label: String,
    /// Per-request timeout, milliseconds (from the intended send time).
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Processes whose summed VmRSS and CPU time are sampled during the run.
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// Driver runtime threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl DriveArgs {
    /// The target and the driver's runtime.
    pub fn into_target(self) -> (Target, tokio::runtime::Runtime) {
        let t =
            Target { label: self.label, timeout: Duration::from_millis(self.timeout_ms), pids: self.pids };
        (t, runtime(self.threads))
    }
}

/// The `proxy` command: the bare reverse proxy (`benches/ai_gateway/proxy.rs`), the ceiling:
/// one more HTTP hop, nothing else.
#[derive(clap::Args)]
pub struct ProxyArgs {
    #[arg(long)]
    port: u16,
    #[arg(long)]
    upstream: String,
    /// Runtime worker threads (0: one per core, as Cairn).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

impl ProxyArgs {
    /// Serves `run(port, upstream)` (the proxy) on its runtime until it fails.
    pub fn serve<F>(&self, run: impl FnOnce(u16, String) -> F) -> std::process::ExitCode
    where
        F: std::future::Future<Output = std::io::Result<()>>,
    {
        match runtime(self.threads).block_on(run(self.port, self.upstream.clone())) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("proxy: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// The `rss` command: prints the summed VmRSS of processes as a JSON line.
#[derive(clap::Args)]
pub struct RssArgs {
    #[arg(long)]
    label: String,
    #[arg(long)]
    phase: String,
    #[arg(long = "pid")]
    pids: Vec<u32>,
}

impl RssArgs {
    pub fn print(&self) {
        let kib = rss_sum(&self.pids);
        println!(
            "{}",
            serde_json::json!({"kind": "rss", "label": self.label, "phase": self.phase, "kib": kib})
        );
    }
}

/// The `report` command: markdown tables from the JSON lines in `file`, made by `render`.
pub fn report(file: &std::path::Path, render: impl Fn(&str) -> String) -> std::process::ExitCode {
    match std::fs::read_to_string(file) {
        Ok(s) => {
            print!("{}", render(&s));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("report: {}: {e}", file.display());
            std::process::ExitCode::FAILURE
        }
    }
}
