//! Agent gateway benchmark: the latency the gateway adds to `SendMessage` at one connection, and
//! its per-event overhead on `SendStreamingMessage`, side by side with a direct connection to the
//! same upstream and with a bare hyper proxy (the second hop alone, `benches/ai_gateway/proxy.rs`)
//! in one run. Everything runs in this process on loopback: a minimal A2A upstream (raw hyper),
//! the gateway (`cairn::gateway::layer::serve::<AgentLayer>` with a virtual-key caller, a policy grant, task
//! ownership, identity tokens and the audit line), the bare proxy, and a sequential client.
//!
//! Not a test (`harness = false`), nothing asserts on time:
//!
//! ```text
//! cargo bench --bench agent_gateway            # N=5000 calls, STREAMS=200 × EVENTS=32
//! N=20000 STREAMS=500 cargo bench --bench agent_gateway
//! PATHS=Cairn N=20000 STREAMS=0 perf record -g target/release/deps/agent_gateway-* --bench
//! ```
//!
//! Per-event latency is measured from the moment the upstream writes an event (a timestamp in the
//! event, on this process's monotonic clock) to the moment the client has read it; events are
//! spaced 200 µs apart so they do not queue behind each other.
//!
//! CPU per call is the whole process's CPU time (client, upstream and gateway, from
//! `/proc/self/stat`, Linux) over the calls of each path, so the difference is the gateway's.
//!
//! Figures and how to read them: docs/benchmarks.md, "Benchmarks: the agent gateway".

#[path = "ai_gateway/proxy.rs"]
mod proxy;

use arc_swap::ArcSwap;
use bytes::Bytes;
use cairn::config::*;
use cairn::gateway::agent::AgentLayer;
use cairn::gateway::core::{Core, Env};
use cairn::gateway::layer::Layer as _;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

type UpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn upstream(
    req: Request<hyper::body::Incoming>,
    events: usize,
    base: Arc<String>,
) -> Result<Response<UpBody>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/.well-known/agent-card.json" {
        let card = serde_json::json!({
            "name": "bench", "description": "", "version": "1",
            "supportedInterfaces": [{"url": format!("{base}/"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
            "capabilities": {"streaming": true}, "defaultInputModes": [], "defaultOutputModes": [], "skills": []
        });
        return Ok(Response::new(Full::new(Bytes::from(card.to_string())).boxed()));
    }
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    if body.windows(20).any(|w| w == b"SendStreamingMessage") {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(events + 1);
        std::thread::spawn(move || {
            for i in 0..events {
                let spin = Instant::now();
                while spin.elapsed() < Duration::from_micros(200) {
                    std::hint::spin_loop();
                }
                let ev = format!(
                    "data: {{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{{\"statusUpdate\":{{\"taskId\":\"st\",\"contextId\":\"c\",\"status\":{{\"state\":\"TASK_STATE_WORKING\"}},\"metadata\":{{\"i\":{i},\"ts\":{}}}}}}}}}\n\n",
                    now_ns()
                );
                if tx.blocking_send(Bytes::from(ev)).is_err() {
                    return;
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        let mut r = Response::new(StreamBody::new(stream).boxed());
        r.headers_mut().insert("content-type", "text/event-stream".parse().unwrap());
        return Ok(r);
    }
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let answer = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{{\"task\":{{\"id\":\"task-{n}\",\"contextId\":\"c\",\"status\":{{\"state\":\"TASK_STATE_COMPLETED\"}},\"artifacts\":[{{\"artifactId\":\"a\",\"parts\":[{{\"text\":\"echo: hello\"}}]}}]}}}}}}"
    );
    let mut r = Response::new(Full::new(Bytes::from(answer)).boxed());
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    Ok(r)
}

async fn start_upstream(events: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Arc::new(format!("http://{}", listener.local_addr().unwrap()));
    let url = base.to_string();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let base = base.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| upstream(req, events, base.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    url
}

async fn start_gateway(upstream: &str) -> (String, tokio::sync::watch::Sender<bool>) {
    let salt = "be9c";
    let cfg = GatewayConfig {
        version: CONFIG_VERSION,
        gateway: GatewayId { namespace: "bench".into(), name: "agents".into(), layer: Layer::Agent },
        listener: ListenerConfig { port: 0, max_request_bytes: 1 << 20 },
        auth: AuthConfig {
            allow_anonymous: false,
            jwt: vec![],
            service_account_tokens: None,
            virtual_key_salt: salt.into(),
        },
        store: None,
        telemetry: TelemetryConfig { otlp: None, access_log: false, subject_labels: true },
        policy: PolicyConfig {
            default_action: DefaultAction::Deny,
            subjects: vec![SubjectConfig {
                name: "caller".into(),
                identities: vec![IdentityConfig::VirtualKey { hash: hash_virtual_key(salt, "bench-key") }],
                team: None,
            }],
            policies: vec![PolicyRules {
                name: "p".into(),
                subjects: vec!["caller".into()],
                models: vec![],
                tools: vec![],
                agents: vec![AgentGrantConfig {
                    id: "bench/agents/0".into(),
                    agent: "bench".into(),
                    skills: vec![],
                    limits: None,
                }],
                budgets: vec![],
            }],
        },
        // Its servers listen on loopback, as in local mode.
        egress: cairn::config::EgressConfig { allow_loopback: true, ..Default::default() },
        ai: None,
        mcp: None,
        agent: Some(AgentLayerConfig {
            agents: vec![A2aAgentConfig {
                name: "bench".into(),
                url: upstream.into(),
                card_path: "/.well-known/agent-card.json".into(),
                description: None,
            }],
            task_ownership_ttl_ms: 3_600_000,
            identity_token_ttl_ms: 300_000,
            identity_token_header: "x-cairn-caller".into(),
            allowed_origins: vec![],
        }),
    };
    let core = Core::new(Env::from_process());
    let gw = CompiledGateway { config: cfg, credentials: Credentials::default() };
    let rt = AgentLayer::new(&core).build(&gw).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/agents/bench", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(cairn::gateway::layer::serve::<AgentLayer>(
        listener,
        "bench/agents".into(),
        Arc::new(ArcSwap::from_pointee(rt)),
        rx,
    ));
    (url, stop)
}

/// The client: exactly one HTTP/1.1 connection per path (hyper's connection API, no pool), so that
/// "one connection" holds and no call races a pool for a connection or opens a new one.
#[derive(Default)]
struct Client {
    conns: tokio::sync::Mutex<
        std::collections::HashMap<String, hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    >,
}

impl Client {
    async fn request(&self, req: Request<Full<Bytes>>) -> hyper::Result<Response<hyper::body::Incoming>> {
        let authority = req.uri().authority().expect("absolute URL").to_string();
        let mut conns = self.conns.lock().await;
        if conns.get(&authority).is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(&authority).await.expect("connect");
            stream.set_nodelay(true).unwrap();
            let (sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            conns.insert(authority.clone(), sender);
        }
        let sender = conns.get_mut(&authority).expect("inserted");
        sender.ready().await?;
        let (mut parts, body) = req.into_parts();
        parts.headers.insert(http::header::HOST, authority.parse().unwrap());
        parts.uri = parts.uri.path_and_query().map_or("/", |p| p.as_str()).parse().unwrap();
        sender.send_request(Request::from_parts(parts, body)).await
    }
}

fn request(url: &str, method: &str) -> Request<Full<Bytes>> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"message":{{"messageId":"m","role":"ROLE_USER","parts":[{{"text":"hello"}}]}}}}}}"#
    );
    Request::post(url)
        .header("content-type", "application/json")
        .header("a2a-version", "1.0")
        .header("authorization", "Bearer bench-key")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn sends(client: &Client, url: &str, n: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let resp = client.request(request(url, "SendMessage")).await.expect("answer");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        out.push(t.elapsed().as_nanos() as u64);
        assert!(body.starts_with(b"{\"jsonrpc\""), "{}", String::from_utf8_lossy(&body));
    }
    out
}

async fn streams(client: &Client, url: &str, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for _ in 0..n {
        let resp = client.request(request(url, "SendStreamingMessage")).await.expect("answer");
        let mut body = resp.into_body();
        let mut parser = cairn::gateway::sse::SseParser::default();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.expect("intact").into_data() else { continue };
            let at = now_ns();
            for ev in parser.push(&data).expect("sse") {
                let v: serde_json::Value = serde_json::from_str(&ev.data).expect("json");
                let ts = v["result"]["statusUpdate"]["metadata"]["ts"].as_u64().expect("ts");
                out.push(at.saturating_sub(ts));
            }
        }
    }
    out
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

/// CPU time of this process (all threads) in µs, from `/proc/self/stat` (utime + stime, in
/// clock ticks of 10 ms: precise enough over thousands of calls); 0 where it cannot be read.
fn cpu_us() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which may contain spaces) start at field 3.
    let Some((_, rest)) = stat.rsplit_once(") ") else { return 0.0 };
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) * 10_000.0
}

/// Runs `f`, adding the process CPU time it took to `cpu`.
async fn timed<T>(cpu: &mut f64, f: impl std::future::Future<Output = T>) -> T {
    let start = cpu_us();
    let out = f.await;
    *cpu += cpu_us() - start;
    out
}

/// Markdown rows: each path's p50/p99, what it adds to direct, and CPU per unit.
fn rows(what: &str, paths: &mut [(&str, Vec<u64>, f64)]) -> Vec<String> {
    let stats: Vec<(f64, f64, f64)> =
        paths.iter_mut().map(|(_, v, cpu)| (pct(v, 0.5), pct(v, 0.99), *cpu)).collect();
    let (d50, d99, dcpu) = stats[0];
    paths
        .iter()
        .zip(&stats)
        .map(|((name, ..), (p50, p99, cpu))| {
            format!(
                "| {what} | {name} | {p50:.1} | {p99:.1} | {:.1} | {:.1} | {cpu:.1} | {:.1} |",
                p50 - d50,
                p99 - d99,
                cpu - dcpu
            )
        })
        .collect()
}

fn main() {
    let n = env("N", 5000);
    let n_streams = env("STREAMS", 200);
    let events = env("EVENTS", 32);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // The client runs on a worker like everything else (block_on would run it on the main thread).
    rt.block_on(rt.spawn(async move {
        EPOCH.get_or_init(Instant::now);
        let up = start_upstream(events).await;
        let (gw, _stop) = start_gateway(&up).await;
        let client = Client::default();
        let direct = format!("{up}/");
        let bare = {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let up = up.clone();
            tokio::spawn(async move { proxy::run(port, &up).await });
            tokio::time::sleep(Duration::from_millis(100)).await;
            format!("http://127.0.0.1:{port}/")
        };
        // PATHS=Cairn (for instance) measures one path alone, for profiling it (`perf record`).
        let only = std::env::var("PATHS").unwrap_or_default();
        let targets: Vec<(&str, &str)> =
            [("direct", direct.as_str()), ("bare proxy", bare.as_str()), ("Cairn", gw.as_str())]
                .into_iter()
                .filter(|(name, _)| only.is_empty() || only.split(',').any(|o| o.trim() == *name))
                .collect();
        // Warm up every path (connections, the gateway's card cache and its upstream pool).
        for (_, url) in &targets {
            sends(&client, url, 500).await;
        }
        // Interleave rounds so every path sees the same machine state.
        let mut calls: Vec<(&str, Vec<u64>, f64)> = targets.iter().map(|t| (t.0, vec![], 0.0)).collect();
        let mut evs = calls.clone();
        for _ in 0..10 {
            for (i, (_, url)) in targets.iter().enumerate() {
                let v = timed(&mut calls[i].2, sends(&client, url, n / 10)).await;
                calls[i].1.extend(v);
            }
        }
        for _ in 0..10 {
            for (i, (_, url)) in targets.iter().enumerate() {
                let v = timed(&mut evs[i].2, streams(&client, url, n_streams / 10)).await;
                evs[i].1.extend(v);
            }
        }
        for c in calls.iter_mut().chain(evs.iter_mut()) {
            c.2 /= c.1.len().max(1) as f64;
        }
        println!(
            "Agent gateway: {n} SendMessage calls per path on one connection; {n_streams} SendStreamingMessage \
             streams × {events} events per path (per event: upstream write → client read). µs.\n"
        );
        println!("| call | path | p50 | p99 | added p50 | added p99 | CPU | added CPU |");
        println!("|---|---|---|---|---|---|---|---|");
        for r in rows("`SendMessage`", &mut calls).into_iter().chain(rows("stream event", &mut evs)) {
            println!("{r}");
        }
        println!(
            "\nadded = path − direct. bare proxy = hyper server → pooled hyper client, nothing else (the second \
             hop every gateway pays). CPU = whole-process CPU time (client, upstream, proxy) per call or per \
             event; per event it includes the upstream's 200 µs spin between events on every path."
        );
    }))
    .expect("the benchmark ran");
}
