//! Faults injected on loopback, and what the gateways do under them (issue #16):
//!
//! - an upstream answering 429 or 500, hanging past the first-token timeout, resetting the
//!   connection, or cutting its stream after two chunks, and a client leaving mid-stream: a rule
//!   with a fallback falls back, one without answers one clean error; the usage produced is
//!   charged, and the shared budget in Redis and the access log agree to the micro-dollar;
//! - Redis killed (SIGKILL) under a steady load and restarted: `failureMode: Closed` refuses with
//!   a clear 503 while it is down, `Open` serves every request; both count again once it is back,
//!   and every request served is charged to the budget (the charges made while it was down
//!   included);
//! - each layer's config replaced 100 times while a steady load runs on all three: no request
//!   fails.
//!
//! No test asserts on elapsed time; timeouts only end waits.

#[path = "support/a2a_agents.rs"]
mod a2a_agents;
#[path = "support/mcp_servers.rs"]
mod mcp_servers;
#[path = "support/mock_llm.rs"]
mod mock_llm;
mod support;

use bytes::Bytes;
use cairn::config::{CompiledGateway, Credentials, GatewayConfig, hash_virtual_key};
use cairn::gateway::core::{Core, Env};
use cairn::gateway::supervisor::Supervisor;
use http_body_util::{BodyExt, Full};
use mock_llm::{Behavior, COMPLETION_TOKENS, MockLlm, PROMPT_TOKENS};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SALT: &str = "00112233445566778899aabbccddeeff";
/// $100 per million tokens, input and output alike.
const PRICE: f64 = 100.0;
/// What one answered call costs: (11 + 7) tokens × $100 per million, in micro-dollars.
const CALL_MICROS: u64 = (PROMPT_TOKENS + COMPLETION_TOKENS) * 100;

type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new())
}

struct Resp {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
    raw: String,
}

async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: String) -> Resp {
    let mut req = http::Request::builder().method(method).uri(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        client().request(req.body(Full::new(Bytes::from(body))).unwrap()),
    )
    .await
    .expect("an answer in time")
    .expect("request sent");
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let raw = String::from_utf8_lossy(&bytes).to_string();
    Resp { status, headers, body: serde_json::from_str(&raw).unwrap_or(Value::Null), raw }
}

const ALICE: [(&str, &str); 1] = [("authorization", "Bearer sk-alice")];

async fn chat(port: u16, model: &str) -> Resp {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hello"}]}).to_string();
    request("POST", &format!("http://127.0.0.1:{port}/v1/chat/completions"), &ALICE, body).await
}

/// A streamed chat completion, read chunk by chunk.
struct Stream(hyper::body::Incoming);

impl Stream {
    async fn open(port: u16, model: &str) -> Stream {
        let body =
            json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hello"}]});
        let mut req = http::Request::post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .header("content-type", "application/json");
        for (k, v) in ALICE {
            req = req.header(k, v);
        }
        let resp =
            client().request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap();
        assert_eq!(resp.status(), 200);
        Stream(resp.into_body())
    }

    async fn next(&mut self) -> Option<String> {
        loop {
            let frame =
                tokio::time::timeout(Duration::from_secs(20), self.0.frame()).await.expect("in time")?;
            if let Ok(d) = frame.expect("stream ok").into_data() {
                return Some(String::from_utf8_lossy(&d).to_string());
            }
        }
    }

    async fn rest(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.next().await {
            s.push_str(&c);
        }
        s
    }
}

fn backend(name: &str, url: &str) -> Value {
    let price = json!({"inputPerMillion": PRICE, "cachedInputPerMillion": PRICE, "outputPerMillion": PRICE});
    json!({"name": name, "provider": "openai-compatible", "url": format!("{url}/v1"), "connectTimeoutMs": 2000,
           "models": [{"name": "fb", "kind": "chat", "price": price}, {"name": "solo", "kind": "chat", "price": price}]})
}

fn rule(model: &str, targets: Value) -> Value {
    json!({"route": "chat", "name": model, "matches": [{"model": model}], "targets": targets,
           "fallbackOn": ["rate-limited", "server-error", "timeout", "connect-error"],
           "timeouts": {"firstTokenMs": 500},
           "ejection": {"consecutiveFailures": 0, "cooldownMs": 60000}})
}

/// An AI gateway on `port` for alice (virtual key `sk-alice`) with a blocking monthly budget of
/// $100: model `fb` on `a` falling back to `b`, model `solo` on `a` alone; `store` when given.
fn ai_config(ns: &str, port: u16, a: &MockLlm, b: &MockLlm, store: Option<Value>) -> GatewayConfig {
    let mut v = json!({
        "version": 1,
        "gateway": {"namespace": ns, "name": "llm", "layer": "ai"},
        "listener": {"port": port, "maxRequestBytes": 1 << 20},
        "auth": {"allowAnonymous": false, "virtualKeySalt": SALT},
        "telemetry": {"accessLog": true},
        "egress": {"allowLoopback": true},
        "policy": {
            "defaultAction": "deny",
            "subjects": [{"name": "alice", "identities": [{"type": "virtualKey", "hash": hash_virtual_key(SALT, "sk-alice")}]}],
            "policies": [{"name": "p", "subjects": ["alice"],
                          "models": [{"id": "p/models/0", "pattern": "*"}],
                          "budgets": [{"id": "p/budgets/0", "amountUsd": 100.0, "window": "month", "scope": "perSubject", "action": "block"}]}]
        },
        "ai": {
            "backends": [backend("a", &a.url), backend("b", &b.url)],
            "rules": [
                rule("fb", json!([{"backend": "a", "weight": 1, "priority": 0}, {"backend": "b", "weight": 1, "priority": 1}])),
                rule("solo", json!([{"backend": "a", "weight": 1, "priority": 0}]))
            ]
        }
    });
    if let Some(s) = store {
        v["store"] = s;
    }
    serde_json::from_value(v).expect("a config of the contract")
}

/// The one budget counter under `prefix` in Redis, in micro-dollars (0 when none yet).
fn budget_micros(redis: &support::Redis, prefix: &str) -> u64 {
    let keys: Vec<String> = redis.query(redis::cmd("KEYS").arg(format!("{prefix}budget:*")));
    assert!(keys.len() <= 1, "one budget: {keys:?}");
    keys.first().map_or(0, |k| redis.query::<Option<u64>>(redis::cmd("GET").arg(k)).unwrap_or(0))
}

async fn wait_listening(port: u16) {
    support::wait_until(Duration::from_secs(20), "the gateway listens", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
    })
    .await;
}

/// Kills the gateway process on drop.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn upstream_faults_fall_back_or_give_one_clean_error_and_the_budget_agrees_with_the_access_log() {
    let redis = support::Redis::start();
    let (a, b) = (MockLlm::start("a").await, MockLlm::start("b").await);
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let store = json!({"redisUrl": redis.url, "failureMode": "closed"});
    let cfg = ai_config("faults", port, &a, &b, Some(store));
    let _gw = Proc(support::spawn_gateway("ai", dir.path(), &cfg.to_json(), port, "{}"));
    wait_listening(port).await;
    let mut requests = 0;

    // Each fault: with a fallback the caller is served by `b`; without, one clean error in
    // OpenAI's format.
    for (fault, status, code) in [
        (Behavior::Status(429), 429, None),
        (Behavior::Status(500), 500, None),
        (Behavior::Hang, 504, Some("upstream_timeout")),
        (Behavior::Reset, 502, Some("upstream_error")),
    ] {
        a.set(fault.clone());
        let r = chat(port, "fb").await;
        assert_eq!(r.status, 200, "{fault:?} falls back: {}", r.raw);
        assert_eq!(r.body["choices"][0]["message"]["content"], "from b", "{fault:?}");
        let r = chat(port, "solo").await;
        assert_eq!(r.status, status, "{fault:?}: {}", r.raw);
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{fault:?}: {}", r.raw);
        if let Some(code) = code {
            assert_eq!(r.body["error"]["code"], code, "{fault:?}: {}", r.raw);
        }
        assert_eq!(r.headers["content-type"], "application/json", "{fault:?}");
        requests += 2;
    }

    // A stream cut after two chunks: the caller gets what came and one error event; the tokens
    // produced are estimated and charged.
    a.set(Behavior::BreakAfter(2));
    let all = Stream::open(port, "solo").await.rest().await;
    assert!(all.contains("tok0") && !all.contains("[DONE]"), "{all}");
    let last = all.trim_end().lines().last().unwrap_or_default();
    let ev: Value = serde_json::from_str(last.trim_start_matches("data: ")).expect("a JSON error event");
    assert_eq!(ev["error"]["code"], "upstream_error", "{all}");
    requests += 1;

    // A client leaving mid-stream: the upstream request is cancelled, the tokens so far charged.
    a.set(Behavior::NoUsage);
    let gate = a.gate();
    let mut s = Stream::open(port, "solo").await;
    s.next().await.expect("a first chunk");
    gate.add_permits(1);
    s.next().await.expect("a second chunk");
    drop(s);
    let log = dir.path().join(format!("gateway-{port}.out"));
    support::wait_until(Duration::from_secs(10), "the gateway records the client leaving", || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("\"outcome\":\"client_disconnected\"")
            .then_some(())
    })
    .await;
    // The mock sends its next chunk only now: to a gateway that let go of the upstream.
    gate.add_permits(100);
    support::wait_until(Duration::from_secs(10), "the upstream request is cancelled", || async {
        (a.cancelled() == 1).then_some(())
    })
    .await;
    requests += 1;

    // The access log has one line per request; the budget in Redis holds exactly their cost.
    let lines: Vec<Value> = support::wait_until(Duration::from_secs(10), "every request logged", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        (lines.len() == requests).then_some(lines)
    })
    .await;
    let logged: u64 = lines.iter().map(|l| (l["cost_usd"].as_f64().unwrap() * 1e6).round() as u64).sum();
    let served =
        lines.iter().filter(|l| l["status"] == 200 && !l["stream"].as_bool().unwrap()).count() as u64;
    let estimated: Vec<&Value> = lines.iter().filter(|l| l["tokens_estimated"] == true).collect();
    assert_eq!(estimated.len(), 2, "the cut stream and the abandoned one are estimated: {lines:#?}");
    assert!(estimated.iter().all(|l| l["cost_usd"].as_f64().unwrap() > 0.0), "{estimated:#?}");
    assert!(logged > served * CALL_MICROS, "answered calls and the estimated streams: {logged}");
    let prefix = "cairn:faults:";
    support::wait_until(Duration::from_secs(10), "the budget holds every charge", || async {
        (budget_micros(&redis, prefix) == logged).then_some(())
    })
    .await;
    let failed: Vec<&Value> = lines.iter().filter(|l| l["status"] != 200 && l["stream"] == false).collect();
    assert_eq!(failed.len(), 4, "{lines:#?}");
    assert!(
        failed.iter().all(|l| l["cost_usd"] == 0.0),
        "a call that produced nothing costs nothing: {failed:#?}"
    );
}

/// Sends `chat(model)` every 10 ms until `stop`; the statuses and bodies, in order.
fn load(
    port: u16,
    model: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(u16, String)>> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let r = chat(port, model).await;
            out.push((r.status, r.raw));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        out
    })
}

#[tokio::test]
async fn redis_killed_under_load_and_restarted_fails_as_configured_and_counts_again() {
    let mut redis = support::Redis::start_persistent();
    let (a, b) = (MockLlm::start("a").await, MockLlm::start("b").await);
    let core = Core::new(Env::from_process());
    let mut sup = Supervisor::new(core.clone(), cairn::serve::layers(&core), "127.0.0.1".parse().unwrap());
    let (closed, open) = (support::free_port(), support::free_port());
    let store = |mode: &str| Some(json!({"redisUrl": redis.url, "failureMode": mode}));
    let gateways = [
        CompiledGateway {
            config: ai_config("closed", closed, &a, &b, store("closed")),
            credentials: Credentials::default(),
        },
        CompiledGateway {
            config: ai_config("open", open, &a, &b, store("open")),
            credentials: Credentials::default(),
        },
    ];
    assert!(sup.apply_all(&gateways).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (l_closed, l_open) = (load(closed, "solo", stop.clone()), load(open, "solo", stop.clone()));
    let served = |port: u16| async move { chat(port, "solo").await.status == 200 };

    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.kill();
    support::wait_until(Duration::from_secs(10), "the closed gateway refuses", || async {
        (!served(closed).await).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart();
    support::wait_until(Duration::from_secs(20), "the closed gateway serves again", || async {
        served(closed).await.then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (closed_log, open_log) = (l_closed.await.unwrap(), l_open.await.unwrap());

    // Closed: served, then refused with a clear error while Redis is down, then served again.
    let statuses: Vec<u16> = closed_log.iter().map(|(s, _)| *s).collect();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    let first_refusal = statuses.iter().position(|s| *s == 503).expect("refused while Redis was down");
    let last_refusal = statuses.iter().rposition(|s| *s == 503).unwrap();
    assert!(first_refusal > 0 && last_refusal + 1 < statuses.len(), "served before and after: {statuses:?}");
    for (_, body) in closed_log.iter().filter(|(s, _)| *s == 503) {
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "limits_store_unavailable", "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("fails closed"), "{v}");
    }
    // Open: every request served.
    assert!(
        open_log.iter().all(|(s, _)| *s == 200),
        "{:?}",
        open_log.iter().map(|(s, _)| s).collect::<Vec<_>>()
    );
    assert!(open_log.len() > 10, "{}", open_log.len());

    // Every request served is charged once it is back: the Redis budget holds all of them (and
    // at most the one charge in flight at the kill twice: an outage may overcharge, never
    // undercharge). The probes above were served too.
    chat(open, "solo").await;
    chat(closed, "solo").await;
    let metrics = core.metrics.encode();
    let ok = |gw: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("cairn_ai_requests_total{")
                    && l.contains(&format!("gateway=\"{gw}/llm\""))
                    && l.contains("outcome=\"ok\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
            .sum()
    };
    for gw in ["closed", "open"] {
        let want = ok(gw) * CALL_MICROS;
        support::wait_until(Duration::from_secs(10), "every served request charged", || async {
            let have = budget_micros(&redis, &format!("cairn:{gw}:"));
            (want..=want + CALL_MICROS).contains(&have).then_some(())
        })
        .await;
    }
    assert!(metrics.contains("cairn_store_errors_total{gateway=\"open/llm\",store=\"redis\"}"), "{metrics}");
}

// ---- config replaced under load, three layers ------------------------------------------------

fn base(ns: &str, name: &str, layer: &str, port: u16) -> Value {
    json!({
        "version": 1,
        "gateway": {"namespace": ns, "name": name, "layer": layer},
        "listener": {"port": port, "maxRequestBytes": 1 << 20},
        "auth": {"allowAnonymous": true, "virtualKeySalt": SALT},
        "telemetry": {"accessLog": false},
        "egress": {"allowLoopback": true},
        "policy": {"defaultAction": "allow"}
    })
}

/// Version `i` of the three gateways' configs: each differs from the last in a field that does
/// not change what a call answers.
fn versions(i: u64, ports: [u16; 3], llm: &str, mcp: &str, agent: &str) -> Vec<CompiledGateway> {
    let mut ai = base("swap", "llm", "ai", ports[0]);
    ai["ai"] = json!({"backends": [{"name": "a", "provider": "openai-compatible", "url": format!("{llm}/v1"),
                                     "connectTimeoutMs": 2000 + i}],
                      "rules": [{"route": "r", "name": "0", "matches": [{"model": "m"}],
                                 "targets": [{"backend": "a", "weight": 1, "priority": 0}], "fallbackOn": [],
                                 "timeouts": {}, "ejection": {"consecutiveFailures": 0, "cooldownMs": 0}}]});
    let mut tools = base("swap", "tools", "mcp", ports[1]);
    tools["mcp"] = json!({"servers": [{"name": "gh", "prefix": "gh", "endpoint": {"type": "http", "url": mcp},
                                        "allow": ["*"], "timeoutMs": 5000 + i, "auditArguments": false}],
                          "sessionIdleTimeoutMs": 600000});
    let mut agents = base("swap", "agents", "agent", ports[2]);
    agents["agent"] = json!({"agents": [{"name": "echo", "url": agent, "cardPath": "/.well-known/agent-card.json"}],
                             "taskOwnershipTtlMs": 3600000, "identityTokenTtlMs": 60000 + i,
                             "identityTokenHeader": "X-Cairn-Caller"});
    [ai, tools, agents]
        .into_iter()
        .map(|v| CompiledGateway {
            config: serde_json::from_value(v).expect("a config of the contract"),
            credentials: Credentials::default(),
        })
        .collect()
}

/// Opens an MCP session on `url`: its id.
async fn mcp_session(url: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "faults", "version": "1"}}});
    let accept = ("accept", "application/json, text/event-stream");
    let r = request("POST", url, &[accept], init.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let id = r.headers["mcp-session-id"].to_str().unwrap().to_string();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let h = [accept, ("mcp-session-id", id.as_str()), ("mcp-protocol-version", "2025-06-18")];
    assert_eq!(request("POST", url, &h, note.to_string()).await.status, 202);
    id
}

/// The JSON-RPC response in a JSON or SSE answer.
fn rpc_answer(r: &Resp) -> Value {
    if r.body.is_object() {
        return r.body.clone();
    }
    r.raw
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m.get("id").is_some())
        .unwrap_or(Value::Null)
}

/// One call per layer, whether it succeeded (with what went wrong when not).
async fn one_round(ports: [u16; 3], session: &str, n: u64) -> Vec<Result<(), String>> {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]}).to_string();
    let ai = request("POST", &format!("http://127.0.0.1:{}/v1/chat/completions", ports[0]), &[], body).await;
    let ai = (ai.status == 200 && ai.body["choices"][0]["message"]["content"] == "from llm")
        .then_some(())
        .ok_or(format!("ai: {} {}", ai.status, ai.raw));
    let call = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                      "params": {"name": "gh__echo", "arguments": {"text": format!("n{n}")}}});
    let h = [
        ("accept", "application/json, text/event-stream"),
        ("mcp-session-id", session),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let r = request("POST", &format!("http://127.0.0.1:{}/mcp", ports[1]), &h, call.to_string()).await;
    let v = rpc_answer(&r);
    let mcp = (r.status == 200 && v["result"]["content"][0]["text"] == format!("n{n}"))
        .then_some(())
        .ok_or(format!("mcp: {} {}", r.status, r.raw));
    let msg = json!({"jsonrpc": "2.0", "id": n, "method": "SendMessage", "params": {"message": {
        "messageId": format!("m{n}"), "role": "ROLE_USER", "parts": [{"text": "hi"}]}}});
    let r = request(
        "POST",
        &format!("http://127.0.0.1:{}/agents/echo", ports[2]),
        &[("a2a-version", "1.0")],
        msg.to_string(),
    )
    .await;
    let agent = (r.status == 200 && r.body.get("result").is_some())
        .then_some(())
        .ok_or(format!("agent: {} {}", r.status, r.raw));
    vec![ai, mcp, agent]
}

#[tokio::test]
async fn configs_replaced_a_hundred_times_under_load_fail_no_request() {
    let llm = MockLlm::start("llm").await;
    let tools = mcp_servers::serve(mcp_servers::ToolsServer::default).await;
    let agent = a2a_agents::TestAgent::start().await;
    let core = Core::new(Env::from_process());
    let mut sup = Supervisor::new(core.clone(), cairn::serve::layers(&core), "127.0.0.1".parse().unwrap());
    let ports = [support::free_port(), support::free_port(), support::free_port()];
    assert!(sup.apply_all(&versions(0, ports, &llm.url, &tools.url, &agent.url)).await);
    let session = mcp_session(&format!("http://127.0.0.1:{}/mcp", ports[1])).await;

    let stop = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut load = Vec::new();
    for worker in 0..3u64 {
        let (stop, results, session) = (stop.clone(), results.clone(), session.clone());
        load.push(tokio::spawn(async move {
            let mut n = worker * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let round = one_round(ports, &session, n).await;
                results.lock().unwrap().extend(round);
            }
        }));
    }
    for i in 1..=100 {
        assert!(sup.apply_all(&versions(i, ports, &llm.url, &tools.url, &agent.url)).await, "version {i}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let results = results.lock().unwrap();
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} of {} calls failed: {failed:#?}", failed.len(), results.len());
    assert!(results.len() >= 30, "the load ran through the swaps: {} calls", results.len());
    // The last version is the one in service.
    let want = versions(100, ports, &llm.url, &tools.url, &agent.url);
    let serving = core.status.configs();
    for gw in &want {
        let s = serving.iter().find(|s| s.port == gw.config.listener.port).expect("served");
        assert_eq!(s.config_hash, gw.config.hash(), "{}", s.gateway);
    }
}
