//! Agent gateway benchmark: the latency the gateway adds to `SendMessage` at one connection, and
//! its per-event overhead on `SendStreamingMessage`, side by side with a direct connection to the
//! same upstream in one run. Everything runs in this process on loopback: a minimal A2A upstream
//! (raw hyper), the gateway (`cairn::gateway::agent::serve` with a virtual-key caller, a policy
//! grant, task ownership, identity tokens and the audit line), and a sequential client.
//!
//! Not a test (`harness = false`), nothing asserts on time:
//!
//! ```text
//! cargo bench --bench agent_gateway            # N=5000 calls, STREAMS=200 × EVENTS=32
//! N=20000 STREAMS=500 cargo bench --bench agent_gateway
//! ```
//!
//! Per-event latency is measured from the moment the upstream writes an event (a timestamp in the
//! event, on this process's monotonic clock) to the moment the client has read it; events are
//! spaced 200 µs apart so they do not queue behind each other.
//!
//! Figures of 2026-11-24 (`N=3000 STREAMS=60`, 2-core shared machine while other builds ran, so
//! the p99 columns are noisy upper bounds), µs:
//!
//! | | direct p50 | direct p99 | gateway p50 | gateway p99 | added p50 | added p99 |
//! |---|---|---|---|---|---|---|
//! | `SendMessage` | 45.0 | 210.3 | 127.3 | 358.3 | 82.3 | 148.0 |
//! | stream event | 71.8 | 3828 | 94.2 | 8385 | 22.4 | (noise) |
//!
//! Targets of issue 6: added p50 ≤ 60 µs (not met here: 82 µs, about half of it the second
//! loopback HTTP hop), added p99 ≤ 200 µs (met), per-event p99 ≤ 20 µs (p50 is 22 µs; the p99
//! needs a quiet machine to say).

use arc_swap::ArcSwap;
use bytes::Bytes;
use cairn::config::*;
use cairn::gateway::agent::{self, AgentRuntime};
use cairn::gateway::state::Shared;
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
        telemetry: TelemetryConfig { otlp_endpoint: None, access_log: false },
        policy: PolicyConfig {
            default_action: DefaultAction::Deny,
            subjects: vec![SubjectConfig {
                name: "caller".into(),
                identities: vec![IdentityConfig::VirtualKey { hash: hash_virtual_key(salt, "bench-key") }],
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
        ai: None,
        mcp: None,
        agent: Some(AgentLayerConfig {
            agents: vec![A2aAgentConfig {
                name: "bench".into(),
                url: upstream.into(),
                card_path: "/.well-known/agent-card.json".into(),
                description: None,
            }],
            allow_private_networks: false,
            allowed_webhook_hosts: vec![],
            task_ownership_ttl_ms: 3_600_000,
            identity_token_ttl_ms: 300_000,
            identity_token_header: "x-cairn-caller".into(),
        }),
    };
    let shared = Shared::new();
    let rt = AgentRuntime::build(cfg, &Credentials::default(), &shared).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/agents/bench", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(agent::serve(listener, Arc::new(ArcSwap::from_pointee(rt)), shared, rx));
    (url, stop)
}

type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

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
        let mut parser = cairn::gateway::ai::sse::SseParser::default();
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
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

fn main() {
    let n = env("N", 5000);
    let n_streams = env("STREAMS", 200);
    let events = env("EVENTS", 32);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        EPOCH.get_or_init(Instant::now);
        let up = start_upstream(events).await;
        let (gw, _stop) = start_gateway(&up).await;
        let client: Client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build({
                let mut c = hyper_util::client::legacy::connect::HttpConnector::new();
                c.set_nodelay(true);
                c
            });
        let direct = format!("{up}/");
        // Warm up both paths (connections, the gateway's card cache and its upstream pool).
        sends(&client, &direct, 500).await;
        sends(&client, &gw, 500).await;
        // Interleave rounds so both paths see the same machine state.
        let (mut d, mut g) = (Vec::new(), Vec::new());
        for _ in 0..10 {
            d.extend(sends(&client, &direct, n / 10).await);
            g.extend(sends(&client, &gw, n / 10).await);
        }
        let (mut sd, mut sg) = (Vec::new(), Vec::new());
        for _ in 0..10 {
            sd.extend(streams(&client, &direct, n_streams / 10).await);
            sg.extend(streams(&client, &gw, n_streams / 10).await);
        }
        let (d50, d99, g50, g99) = (pct(&mut d, 0.5), pct(&mut d, 0.99), pct(&mut g, 0.5), pct(&mut g, 0.99));
        let (e50, e99, f50, f99) = (pct(&mut sd, 0.5), pct(&mut sd, 0.99), pct(&mut sg, 0.5), pct(&mut sg, 0.99));
        println!("SendMessage, one connection, {n} calls each (µs)\n");
        println!("| path | p50 | p99 |\n|---|---|---|");
        println!("| direct | {d50:.1} | {d99:.1} |\n| gateway | {g50:.1} | {g99:.1} |");
        println!("| added by the gateway | {:.1} | {:.1} |\n", g50 - d50, g99 - d99);
        println!("SendStreamingMessage, {n_streams} streams × {events} events, upstream write → client read per event (µs)\n");
        println!("| path | p50 | p99 |\n|---|---|---|");
        println!("| direct | {e50:.1} | {e99:.1} |\n| gateway | {f50:.1} | {f99:.1} |");
        println!("| added by the gateway | {:.1} | {:.1} |", f50 - e50, f99 - e99);
    });
}
