//! Faults injected on loopback, and what the gateways do under them (issue #16):
//!
//! - an upstream answering 429 or 500, hanging past the first-token timeout, resetting the
//!   connection, or cutting its stream after two chunks, and a client leaving mid-stream: a rule
//!   with a fallback falls back, one without answers one clean error; the upstream of the client
//!   that left is let go; the usage produced is charged (the prompt and the text that reached
//!   the client, no more), and the shared budget in Redis and the access log agree to the
//!   micro-dollar;
//! - Redis killed (SIGKILL) under a steady load and restarted, on the AI and the MCP layer (one
//!   admission path, two error formats): `failureMode: Closed` refuses with a clear error while
//!   it is down, `Open` serves, counting limits and budgets in the process (a spent budget or a
//!   reached limit refuses there too); once Redis is back it decides again (the spend served
//!   meanwhile charged to it, and a counter reset in Redis is what admission follows).
//!
//! The configs replaced under load are in tests/config_reload.rs. No test asserts on elapsed
//! time; timeouts only end waits.

#[path = "support/a2a_agents.rs"]
mod a2a_agents;
#[path = "support/mcp_servers.rs"]
mod mcp_servers;
#[path = "support/mock_llm.rs"]
mod mock_llm;
mod support;

use bytes::Bytes;
use cairn::config::{CompiledGateway, Credentials, GatewayConfig, hash_virtual_key};
use cairn::gateway::ai::tokens::count_tokens;
use cairn::gateway::core::{Core, Env};
use cairn::gateway::supervisor::Supervisor;
use http_body_util::{BodyExt, Full};
use mock_llm::{Behavior, COMPLETION_TOKENS, MockLlm, PROMPT_TOKENS};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::Proc;
use support::calls::{McpSession, rpc_answer};
use support::http::{Resp, client, request};

const SALT: &str = "00112233445566778899aabbccddeeff";
/// $100 per million tokens, input and output alike.
const PRICE: f64 = 100.0;
/// What one answered call costs: (11 + 7) tokens × $100 per million, in micro-dollars.
const CALL_MICROS: u64 = (PROMPT_TOKENS + COMPLETION_TOKENS) * 100;

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

/// The content of a streamed chat completion's chunks, joined.
fn streamed_text(sse: &str) -> String {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect()
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
/// `budget_usd`: model `fb` on `a` falling back to `b`, model `solo` on `a` alone; `store` when
/// given.
fn ai_config(
    ns: &str,
    port: u16,
    a: &MockLlm,
    b: &MockLlm,
    budget_usd: f64,
    store: Option<Value>,
) -> GatewayConfig {
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
                          "budgets": [{"id": "p/budgets/0", "amountUsd": budget_usd, "window": "month", "scope": "perSubject", "action": "block"}]}]
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

#[tokio::test]
async fn upstream_faults_fall_back_or_give_one_clean_error_and_the_budget_agrees_with_the_access_log() {
    let redis = support::Redis::start();
    let (a, b) = (MockLlm::start("a").await, MockLlm::start("b").await);
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let store = json!({"redisUrl": redis.url, "failureMode": "closed"});
    let cfg = ai_config("faults", port, &a, &b, 100.0, Some(store));
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
    let mut relayed = s.next().await.expect("a first chunk");
    gate.add_permits(1);
    relayed += &s.next().await.expect("a second chunk");
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
    // Each is charged the prompt and exactly the text that reached the client, priced: the cut
    // stream what came before the cut, the abandoned one what came before the client left (not
    // the chunk the mock sent after).
    for (outcome, text) in [("upstream_error", &all), ("client_disconnected", &relayed)] {
        let l = estimated.iter().find(|l| l["outcome"] == outcome).expect(outcome);
        let output = count_tokens("solo", &streamed_text(text));
        assert!(output > 0, "{text}");
        assert_eq!(l["output_tokens"], output, "{outcome}: {l}");
        let tokens = l["input_tokens"].as_u64().unwrap() + output;
        assert_eq!((l["cost_usd"].as_f64().unwrap() * 1e6).round() as u64, tokens * 100, "{outcome}: {l}");
    }
    assert_eq!(estimated.iter().find(|l| l["outcome"] == "client_disconnected").unwrap()["status"], 499);
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
            config: ai_config("closed", closed, &a, &b, 100.0, store("closed")),
            credentials: Credentials::default(),
        },
        CompiledGateway {
            config: ai_config("open", open, &a, &b, 100.0, store("open")),
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
        assert_eq!(v["error"]["type"], "service_unavailable", "{v}");
        assert_store_unavailable(v["error"]["message"].as_str().unwrap(), &redis.url);
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

/// The message of a call refused because Redis at `url` is down and the gateway fails closed:
/// the same in every layer.
fn assert_store_unavailable(m: &str, url: &str) {
    assert!(m.starts_with(&format!("limits store unavailable: redis {url}")), "{m}");
    assert!(
        m.ends_with("; this gateway fails closed, so requests are refused until the store is back"),
        "{m}"
    );
}

// ---- Open: counted in the process while Redis is down, Redis rules again after -------------------

/// Where a phased load is: each call records the phase it was sent in and the one it was
/// answered in, so only calls wholly inside a phase are judged by it.
const UP: u8 = 0;
const DOWN: u8 = 1;
const SETTLING: u8 = 2;
const BACK: u8 = 3;
const RESET: u8 = 4;

/// One call of a phased load.
#[derive(Debug)]
struct Seen {
    sent: u8,
    answered: u8,
    status: u16,
    /// The JSON answer (the JSON-RPC response of an SSE reply).
    body: Value,
}

impl Seen {
    fn within(&self, phase: u8) -> bool {
        self.sent == phase && self.answered == phase
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Runs `call(n)` one after another, 10 ms apart, until `stop`, recording each in `log`.
fn phased_load<F, Fut>(
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    log: Log,
    call: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Resp> + Send,
{
    tokio::spawn(async move {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let sent = phase.load(Ordering::SeqCst);
            let r = call(n).await;
            let answered = phase.load(Ordering::SeqCst);
            log.lock().unwrap().push(Seen { sent, answered, status: r.status, body: rpc_answer(&r) });
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// Waits until `pick` finds something in `log`.
async fn wait_log<T>(log: &Log, what: &str, pick: impl Fn(&[Seen]) -> Option<T>) -> T {
    support::wait_until(Duration::from_secs(30), what, || async { pick(&log.lock().unwrap()) }).await
}

/// A budget of this many answered calls.
const BUDGET_CALLS: u64 = 20;

#[tokio::test]
async fn failing_open_an_ai_gateway_counts_its_budget_in_the_process_and_redis_rules_again_once_back() {
    let mut redis = support::Redis::start_persistent();
    let (a, b) = (MockLlm::start("a").await, MockLlm::start("b").await);
    let core = Core::new(Env::from_process());
    let mut sup = Supervisor::new(core.clone(), cairn::serve::layers(&core), "127.0.0.1".parse().unwrap());
    let port = support::free_port();
    let budget = (BUDGET_CALLS * CALL_MICROS) as f64 / 1e6;
    let store = json!({"redisUrl": redis.url, "failureMode": "open"});
    let mut config = ai_config("budget", port, &a, &b, budget, Some(store));
    config.telemetry.access_log = false;
    assert!(sup.apply_all(&[CompiledGateway { config, credentials: Credentials::default() }]).await);
    let prefix = "cairn:budget:";
    let (phase, stop, log) = (Arc::new(AtomicU8::new(UP)), Arc::new(AtomicBool::new(false)), Log::default());
    let load = phased_load(phase.clone(), stop.clone(), log.clone(), move |_| chat(port, "solo"));

    // Redis counts the first calls; then it is killed under the load.
    support::wait_until(Duration::from_secs(20), "Redis to hold three calls' spend", || async {
        (budget_micros(&redis, prefix) >= 3 * CALL_MICROS).then_some(())
    })
    .await;
    redis.kill();
    phase.store(DOWN, Ordering::SeqCst);
    // Served, and counted in the process: once it has served the budget there, it refuses.
    wait_log(&log, "the budget spent in the process", |l| {
        l.iter().any(|s| s.within(DOWN) && s.status == 429).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    phase.store(SETTLING, Ordering::SeqCst);
    redis.restart();
    // The first call served once Redis answers charges the spend kept meanwhile: Redis then holds
    // more than the budget and refuses for itself.
    support::wait_until(Duration::from_secs(30), "the outage's spend charged to Redis", || async {
        (budget_micros(&redis, prefix) >= BUDGET_CALLS * CALL_MICROS).then_some(())
    })
    .await;
    phase.store(BACK, Ordering::SeqCst);
    wait_log(&log, "calls refused by Redis", |l| {
        (l.iter().filter(|s| s.within(BACK)).count() >= 5).then_some(())
    })
    .await;

    {
        let l = log.lock().unwrap();
        let down: Vec<&Seen> = l.iter().filter(|s| s.within(DOWN)).collect();
        let served = down.iter().take_while(|s| s.status == 200).count() as u64;
        assert!(
            down[served as usize..].iter().all(|s| s.status == 429),
            "refused for good once spent: {down:#?}"
        );
        // What the process served while Redis was down is what it counted: the budget, give or
        // take a call in flight at the kill (charged in the process) and a charge still landing
        // when the next call is admitted.
        assert!(
            (BUDGET_CALLS - 2..=BUDGET_CALLS + 2).contains(&served),
            "{served} calls served while Redis was down, on a budget of {BUDGET_CALLS}"
        );
        println!(
            "served while Redis was down: {served} of {} calls (budget: {BUDGET_CALLS} calls)",
            down.len()
        );
        let back: Vec<&Seen> = l.iter().filter(|s| s.within(BACK)).collect();
        assert!(back.iter().all(|s| s.status == 429), "Redis holds the spend: {back:#?}");
        for s in down.iter().chain(&back).filter(|s| s.status == 429) {
            assert_eq!(s.body["error"]["code"], "insufficient_quota", "{s:?}");
            let m = s.body["error"]["message"].as_str().unwrap();
            assert!(m.starts_with("You exceeded your current quota: budget p/budgets/0/alice/"), "{m}");
            assert!(m.ends_with(" is spent for this window."), "{m}");
        }
        // Every call served, before, during and after the outage, is charged to Redis (the one
        // in flight at the kill perhaps twice: an outage may overcharge, never undercharge).
        let all = l.iter().filter(|s| s.status == 200).count() as u64;
        let have = budget_micros(&redis, prefix);
        assert!(
            (all * CALL_MICROS..=(all + 1) * CALL_MICROS).contains(&have),
            "{all} calls served, {have} charged"
        );
    }

    // Redis decides, not the process: the budget reset in Redis serves again at once, though the
    // process's own counters still hold a spent budget.
    let keys: Vec<String> = redis.query(redis::cmd("KEYS").arg(format!("{prefix}budget:*")));
    let _: i64 = redis.query(redis::cmd("DEL").arg(&keys));
    phase.store(RESET, Ordering::SeqCst);
    wait_log(&log, "a call served after the reset", |l| {
        l.iter().any(|s| s.within(RESET) && s.status == 200).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let metrics = core.metrics.encode();
    assert!(
        metrics.contains("cairn_store_errors_total{gateway=\"budget/llm\",store=\"redis\"}"),
        "{metrics}"
    );
}

// ---- MCP: the same admission, JSON-RPC errors ---------------------------------------------------

const BOT: &str = "sk-bot";

/// An MCP gateway on `port` for `bot` in front of `tools`: `gh__echo` limited to a million calls
/// a minute (so the store is asked), `gh__add` to three; Redis at `redis` with `mode`.
fn mcp_config(ns: &str, port: u16, tools: &str, redis: &str, mode: &str) -> CompiledGateway {
    let limits = |rpm: u64| json!({"requestsPerMinute": rpm});
    let v = json!({
        "version": 1,
        "gateway": {"namespace": ns, "name": "tools", "layer": "mcp"},
        "listener": {"port": port, "maxRequestBytes": 1 << 20},
        "auth": {"allowAnonymous": false, "virtualKeySalt": SALT},
        "telemetry": {"accessLog": false},
        "egress": {"allowLoopback": true},
        "store": {"redisUrl": redis, "failureMode": mode},
        "policy": {
            "defaultAction": "deny",
            "subjects": [{"name": "bot", "identities": [{"type": "virtualKey", "hash": hash_virtual_key(SALT, BOT)}]}],
            "policies": [{"name": "p", "subjects": ["bot"], "tools": [
                {"id": "p/tools/0", "server": "gh", "prefix": "gh", "tools": ["echo"], "limits": limits(1_000_000)},
                {"id": "p/tools/1", "server": "gh", "prefix": "gh", "tools": ["add"], "limits": limits(3)}]}]
        },
        "mcp": {"servers": [{"name": "gh", "prefix": "gh", "endpoint": {"type": "http", "url": tools},
                             "allow": ["*"], "timeoutMs": 5000, "auditArguments": false}],
                "sessionIdleTimeoutMs": 600000}
    });
    CompiledGateway {
        config: serde_json::from_value(v).expect("a config of the contract"),
        credentials: Credentials::default(),
    }
}

/// Whether a `tools/call` of `gh__echo` with `n` was answered with its text.
fn echoed(s: &Seen) -> bool {
    s.status == 200 && s.body["result"]["content"][0]["text"] == "ok"
}

/// The rate-limit counters of `gh__add` for this minute and the next, in Redis.
fn add_counters(ns: &str) -> Vec<String> {
    let minute = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 60;
    (minute..=minute + 1).map(|m| format!("cairn:{ns}:rl:p/tools/1/bot:{m}:r")).collect()
}

#[tokio::test]
async fn mcp_tool_calls_with_redis_killed_fail_as_configured_and_redis_counts_again_once_back() {
    let mut redis = support::Redis::start_persistent();
    let tools = mcp_servers::serve(mcp_servers::ToolsServer::default).await;
    let core = Core::new(Env::from_process());
    let mut sup = Supervisor::new(core.clone(), cairn::serve::layers(&core), "127.0.0.1".parse().unwrap());
    let (closed, open) = (support::free_port(), support::free_port());
    let gateways = [
        mcp_config("mcp-closed", closed, &tools.url, &redis.url, "closed"),
        mcp_config("mcp-open", open, &tools.url, &redis.url, "open"),
    ];
    assert!(sup.apply_all(&gateways).await);
    let url = |port: u16| format!("http://127.0.0.1:{port}/mcp");
    let s_closed = Arc::new(McpSession::open(&url(closed), Some(BOT)).await);
    let s_open = Arc::new(McpSession::open(&url(open), Some(BOT)).await);
    let (phase, stop) = (Arc::new(AtomicU8::new(UP)), Arc::new(AtomicBool::new(false)));
    let (l_closed, l_open) = (Log::default(), Log::default());
    let echo = |s: Arc<McpSession>| {
        move |n: u64| {
            let s = s.clone();
            async move { s.call(n, "gh__echo", json!({"text": "ok"})).await.0 }
        }
    };
    let loads = [
        phased_load(phase.clone(), stop.clone(), l_closed.clone(), echo(s_closed.clone())),
        phased_load(phase.clone(), stop.clone(), l_open.clone(), echo(s_open.clone())),
    ];
    wait_log(&l_closed, "calls served", |l| (l.iter().filter(|s| echoed(s)).count() >= 5).then_some(()))
        .await;

    redis.kill();
    phase.store(DOWN, Ordering::SeqCst);
    wait_log(&l_closed, "the closed gateway refusing", |l| {
        l.iter().any(|s| s.within(DOWN) && !echoed(s)).then_some(())
    })
    .await;
    // Failing open, the limit of `gh__add` is counted in the process: three calls a minute, then
    // a refusal (within seven calls, should a minute end in between).
    let mut refused = None;
    for n in 1..=7 {
        let (_, v) = s_open.call(1000 + n, "gh__add", json!({"a": 1, "b": 2})).await;
        if v.get("error").is_some() {
            refused = Some(v);
            break;
        }
        assert_eq!(v["result"]["content"][0]["text"], "3", "{v}");
    }
    let v = refused.expect("the limit counted in the process refuses");
    assert_eq!(v["error"]["code"], -32029, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.starts_with("Rate limit of 3 calls per minute reached for gh__add; retry in "), "{m}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    phase.store(SETTLING, Ordering::SeqCst);
    redis.restart();
    support::wait_until(Duration::from_secs(30), "the closed gateway serving again", || async {
        let (r, v) = s_closed.call(2000, "gh__echo", json!({"text": "ok"})).await;
        (r.status == 200 && v["result"]["content"][0]["text"] == "ok").then_some(())
    })
    .await;
    phase.store(BACK, Ordering::SeqCst);
    for l in [&l_closed, &l_open] {
        wait_log(l, "calls served after Redis is back", |l| {
            (l.iter().filter(|s| s.within(BACK) && echoed(s)).count() >= 5).then_some(())
        })
        .await;
    }
    // Redis counts `gh__add` again: its counter there decides, whatever the process counted.
    for n in add_counters("mcp-open") {
        let _: redis::Value = redis.query(redis::cmd("SET").arg(n).arg(3).arg("EX").arg(180));
    }
    let (_, v) = s_open.call(3000, "gh__add", json!({"a": 1, "b": 2})).await;
    assert_eq!(v["error"]["code"], -32029, "Redis's counter refuses: {v}");
    let _: i64 = redis.query(redis::cmd("DEL").arg(add_counters("mcp-open")));
    let (_, v) = s_open.call(3001, "gh__add", json!({"a": 1, "b": 2})).await;
    assert_eq!(v["result"]["content"][0]["text"], "3", "Redis's counter reset serves: {v}");
    stop.store(true, Ordering::Relaxed);
    for l in loads {
        l.await.unwrap();
    }

    // Closed: served, refused with one clear JSON-RPC error while Redis was down, served after.
    let l = l_closed.lock().unwrap();
    let down: Vec<&Seen> = l.iter().filter(|s| s.within(DOWN)).collect();
    assert!(!down.is_empty() && down.iter().all(|s| !echoed(s)), "{down:#?}");
    for s in &down {
        assert_eq!(s.status, 200, "a JSON-RPC error, in the reply: {s:?}");
        assert_eq!(s.body["error"]["code"], -32603, "{s:?}");
        assert_store_unavailable(s.body["error"]["message"].as_str().unwrap(), &redis.url);
    }
    assert!(l.iter().filter(|s| s.within(BACK)).all(echoed), "served once Redis is back");
    // Open: every call served throughout.
    let l = l_open.lock().unwrap();
    let failed: Vec<&Seen> = l.iter().filter(|s| !echoed(s)).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(l.iter().filter(|s| s.within(DOWN)).count() >= 5, "the open gateway served while Redis was down");
}
