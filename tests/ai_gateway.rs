//! The AI gateway end to end: routing, fallback, retries, ejection, streaming, identity, limits,
//! budgets, the shared Redis store, errors and hot reload, against in-repo mock upstreams.
//! No test asserts on elapsed time; timeouts only make failures end.

#[path = "support/mock_llm.rs"]
mod mock_llm;
mod support;

use bytes::Bytes;
use cairn::compile::CompiledGateway;
use cairn::config::{Credentials, GatewayConfig, hash_virtual_key};
use cairn::gateway::core::{Core, Env};
use cairn::gateway::supervisor::{Applied, Supervisor};
use http_body_util::{BodyExt, Full};
use mock_llm::{Behavior, COMPLETION_TOKENS, MockLlm, PROMPT_TOKENS, STREAM_CHUNKS};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::Proc;
use support::http::{Resp, client, request};

const SALT: &str = "00112233445566778899aabbccddeeff";

async fn call(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    request(method, &format!("http://127.0.0.1:{port}{path}"), headers, body.to_string()).await
}

async fn chat(port: u16, model: &str, headers: &[(&str, &str)]) -> Resp {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hello"}]}).to_string();
    call(port, "POST", "/v1/chat/completions", headers, &body).await
}

fn backend(name: &str, url: &str) -> Value {
    json!({"name": name, "provider": "openai-compatible", "url": format!("{url}/v1"), "connectTimeoutMs": 2000})
}

fn rule(name: &str, models: &[&str], targets: Value) -> Value {
    json!({
        "route": "r", "name": name,
        "matches": models.iter().map(|m| json!({"model": m})).collect::<Vec<_>>(),
        "targets": targets,
        "fallbackOn": ["rate-limited", "server-error", "timeout", "connect-error"],
        "timeouts": {},
        "ejection": {"consecutiveFailures": 0, "cooldownMs": 60000}
    })
}

fn target(backend: &str, priority: u32, weight: u32) -> Value {
    json!({"backend": backend, "weight": weight, "priority": priority})
}

/// A config with anonymous callers allowed by default unless `policy` says otherwise.
fn config(
    port: u16,
    backends: Vec<Value>,
    rules: Vec<Value>,
    policy: Option<Value>,
    auth: Option<Value>,
) -> GatewayConfig {
    let v = json!({
        "version": 1,
        "gateway": {"namespace": "t", "name": "llm", "layer": "ai"},
        "listener": {"port": port, "maxRequestBytes": 4096},
        "auth": auth.unwrap_or_else(|| json!({"allowAnonymous": true, "virtualKeySalt": SALT})),
        "telemetry": {"accessLog": false, "subjectLabels": true},
        // The mock upstreams listen on loopback, as in local mode.
        "egress": {"allowLoopback": true},
        "policy": policy.unwrap_or_else(|| json!({"defaultAction": "allow"})),
        "ai": {"backends": backends, "rules": rules}
    });
    serde_json::from_value(v).expect("test config matches the contract")
}

struct Gw {
    core: Arc<Core>,
    /// Keeps the gateway's listener task company for the test's lifetime.
    _sup: Supervisor,
}

impl Gw {
    async fn start(cfg: GatewayConfig) -> Gw {
        Gw::start_with(cfg, Credentials::default()).await
    }

    /// A gateway on a free port with one backend `a` at `url` serving model `m` (route `r`).
    async fn single(url: &str) -> (Gw, u16) {
        let port = free_port();
        let rules = vec![rule("r", &["m"], json!([target("a", 0, 1)]))];
        (Gw::start(config(port, vec![backend("a", url)], rules, None, None)).await, port)
    }

    async fn start_with(cfg: GatewayConfig, credentials: Credentials) -> Gw {
        Gw::start_in(Core::new(Env::from_process()), cfg, credentials).await
    }

    /// As [`Gw::start`], with the names of `support::hosts` resolving where they say.
    async fn start_resolving(cfg: GatewayConfig) -> Gw {
        let core = Core::with_resolver(Env::from_process(), support::hosts::resolver());
        Gw::start_in(core, cfg, Credentials::default()).await
    }

    async fn start_in(core: Arc<Core>, cfg: GatewayConfig, credentials: Credentials) -> Gw {
        let mut sup =
            Supervisor::new(core.clone(), cairn::serve::layers(&core), "127.0.0.1".parse().unwrap());
        assert!(sup.apply_all(&[CompiledGateway { config: cfg, credentials }]).await);
        Gw { core, _sup: sup }
    }

    fn metrics(&self) -> String {
        self.core.metrics.encode()
    }
}

fn free_port() -> u16 {
    support::free_port()
}

fn content(r: &Resp) -> String {
    r.body.pointer("/choices/0/message/content").and_then(Value::as_str).unwrap_or_default().to_string()
}

#[tokio::test]
async fn exact_model_rule_wins_over_glob_and_renames_the_model() {
    let (a, b) = (MockLlm::start("a").await, MockLlm::start("b").await);
    let port = free_port();
    let mut exact =
        rule("exact", &["gpt-4o"], json!([{"backend": "b", "model": "b-model", "weight": 1, "priority": 0}]));
    exact["route"] = json!("z-later-route");
    let gw = Gw::start(config(
        port,
        vec![backend("a", &a.url), backend("b", &b.url)],
        vec![rule("glob", &["gpt-*"], json!([target("a", 0, 1)])), exact],
        None,
        None,
    ))
    .await;
    let r = chat(port, "gpt-4o", &[]).await;
    assert_eq!((r.status, content(&r).as_str()), (200, "from b"), "{}", r.raw);
    assert_eq!(b.received()[0].body["model"], "b-model", "the target's model replaces the requested one");
    assert_eq!(b.received()[0].path, "/v1/chat/completions");
    let r = chat(port, "gpt-4o-mini", &[]).await;
    assert_eq!(content(&r), "from a");
    assert_eq!(a.received()[0].body["model"], "gpt-4o-mini", "no rename passes the requested name");
    drop(gw);
}

/// The egress rule where the gateway connects: a backend whose host name resolves to the cloud
/// metadata or a link-local address is never connected to; the caller gets one error naming the
/// backend, the URL and the rule, and a rule with a fallback falls back.
#[tokio::test]
async fn backends_whose_name_resolves_to_metadata_or_link_local_are_refused_at_connect() {
    use support::hosts;
    let ok = MockLlm::start("ok").await;
    let port = free_port();
    let here = ok.url.replace("127.0.0.1", hosts::HERE);
    let names = [hosts::METADATA, hosts::LINK_LOCAL, hosts::MAPPED_METADATA];
    let mut backends: Vec<Value> = names.iter().map(|n| backend(n, &format!("http://{n}"))).collect();
    backends.push(backend("ok", &here));
    let mut rules: Vec<Value> = names.iter().map(|n| rule(n, &[n], json!([target(n, 0, 1)]))).collect();
    rules.push(rule("fallback", &["f"], json!([target(hosts::METADATA, 0, 1), target("ok", 1, 1)])));
    let _gw = Gw::start_resolving(config(port, backends, rules, None, None)).await;
    let rule_text = "link-local, cloud metadata, multicast and reserved addresses are refused unless \
                     spec.egress.allowedCIDRs lists them";
    for (name, reaches) in [
        (hosts::METADATA, "169.254.169.254, a cloud metadata address"),
        (hosts::LINK_LOCAL, "169.254.10.10, a link-local address"),
        (
            hosts::MAPPED_METADATA,
            "::ffff:169.254.169.254 (that is 169.254.169.254), a cloud metadata address",
        ),
    ] {
        let r = chat(port, name, &[]).await;
        assert_eq!(r.status, 502, "{}", r.raw);
        assert_eq!(
            r.body["error"]["message"],
            format!(
                "cannot connect to backend {name}: url \"http://{name}/v1/chat/completions\": the gateway's \
                 egress rule refuses host {name}, which resolves to {reaches}: {rule_text}"
            ),
            "{}",
            r.raw
        );
    }
    let r = chat(port, "f", &[]).await;
    assert_eq!((r.status, content(&r).as_str()), (200, "from ok"), "falls back: {}", r.raw);
    assert_eq!(ok.count(), 1, "the allowed name (loopback, local mode) is reached");
}

/// A body nested 10,000 deep, or one level past the limit, never reaches the upstream: 400 in
/// the caller's format (OpenAI and Anthropic); the limit itself passes. Too many or too large
/// headers: 431, in the caller's format too.
#[tokio::test]
async fn request_size_limits_are_answered_in_the_callers_format() {
    let up = MockLlm::start("up").await;
    let port = free_port();
    let mut cfg = config(
        port,
        vec![backend("a", &up.url)],
        vec![rule("r", &["m"], json!([target("a", 0, 1)]))],
        None,
        None,
    );
    cfg.listener.max_request_bytes = 1 << 20;
    let _gw = Gw::start(cfg).await;
    // `{"model":…,"messages":[{…}],"x":` nests the value of `x` one level down.
    let body = |levels: usize| {
        format!(
            r#"{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"hi"}}],"x":{}{}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    };
    let depth =
        "the request body nests JSON arrays and objects deeper than the 64 levels this gateway accepts";
    for levels in [10_000, 64] {
        let r = call(port, "POST", "/v1/chat/completions", &[], &body(levels)).await;
        assert_eq!(r.status, 400, "{levels}: {}", r.raw);
        assert_eq!(
            r.body,
            json!({"error": {"message": depth, "type": "invalid_request_error", "param": null, "code": "json_too_deep"}})
        );
        let r = call(port, "POST", "/v1/messages", &[], &body(levels)).await;
        assert_eq!(r.status, 400, "{}", r.raw);
        assert_eq!(
            r.body,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": depth}})
        );
    }
    assert_eq!(up.count(), 0, "nothing too deep reached the upstream");
    let r = call(port, "POST", "/v1/chat/completions", &[], &body(63)).await;
    assert_eq!(r.status, 200, "64 levels in all is the limit, accepted: {}", r.raw);
    assert_eq!(up.count(), 1);

    let many: Vec<(String, String)> = (0..101).map(|i| (format!("x-h{i}"), "v".to_string())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = call(port, "POST", "/v1/chat/completions", &many, &body(1)).await;
    assert_eq!(r.status, 431, "{}", r.raw);
    assert_eq!(r.body["error"]["code"], "headers_too_large", "{}", r.raw);
    assert!(r.body["error"]["message"].as_str().unwrap().starts_with("the request has 10"), "{}", r.raw);
    let big = "a".repeat(70_000);
    let r = call(port, "POST", "/v1/messages", &[("x-big", &big)], &body(1)).await;
    assert_eq!(r.status, 431, "{}", r.raw);
    assert_eq!(r.body["error"]["type"], "invalid_request_error", "{}", r.raw);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("bytes, more than the 65536 this gateway accepts"),
        "{}",
        r.raw
    );
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn weights_split_traffic_within_a_priority_group() {
    let (a, b) = (MockLlm::start("a").await, MockLlm::start("b").await);
    let port = free_port();
    let _gw = Gw::start(config(
        port,
        vec![backend("a", &a.url), backend("b", &b.url)],
        vec![rule("w", &["m"], json!([target("a", 0, 9), target("b", 0, 1)]))],
        None,
        None,
    ))
    .await;
    for _ in 0..100 {
        assert_eq!(chat(port, "m", &[]).await.status, 200);
    }
    // 9:1 over 100 requests: both are used, the heavier one clearly more (the chance of this
    // failing by luck is below one in a billion).
    assert!(a.count() > 70 && b.count() >= 1, "a={} b={}", a.count(), b.count());
    assert_eq!(a.count() + b.count(), 100);
}

async fn fallback_case(primary: Behavior, first_token_ms: Option<u64>) -> (Resp, MockLlm, MockLlm) {
    let (a, b) = (MockLlm::start("primary").await, MockLlm::start("secondary").await);
    a.set(primary);
    let port = free_port();
    let mut r = rule("f", &["m"], json!([target("a", 0, 1), target("b", 1, 1)]));
    if let Some(ms) = first_token_ms {
        r["timeouts"] = json!({"firstTokenMs": ms});
    }
    let gw =
        Gw::start(config(port, vec![backend("a", &a.url), backend("b", &b.url)], vec![r], None, None)).await;
    let resp = chat(port, "m", &[]).await;
    drop(gw);
    (resp, a, b)
}

#[tokio::test]
async fn falls_back_on_429_and_5xx_but_never_on_the_callers_400() {
    for status in [429, 500, 503] {
        let (r, a, b) = fallback_case(Behavior::Status(status), None).await;
        assert_eq!((r.status, content(&r).as_str()), (200, "from secondary"), "after {status}: {}", r.raw);
        assert_eq!((a.count(), b.count()), (1, 1));
    }
    let (r, a, b) = fallback_case(Behavior::Status(400), None).await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert_eq!(
        r.body["error"]["message"], "mock primary says 400",
        "the upstream's own error is passed through"
    );
    assert_eq!((a.count(), b.count()), (1, 0), "a 4xx of the caller is never retried elsewhere");
}

#[tokio::test]
async fn falls_back_on_timeout_and_on_connect_error() {
    let (r, a, b) = fallback_case(Behavior::Hang, Some(300)).await;
    assert_eq!((r.status, content(&r).as_str()), (200, "from secondary"), "{}", r.raw);
    assert_eq!((a.count(), b.count()), (1, 1));

    let b = MockLlm::start("secondary").await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let port = free_port();
    let _gw = Gw::start(config(
        port,
        vec![backend("a", &dead), backend("b", &b.url)],
        vec![rule("f", &["m"], json!([target("a", 0, 1), target("b", 1, 1)]))],
        None,
        None,
    ))
    .await;
    let r = chat(port, "m", &[]).await;
    assert_eq!((r.status, content(&r).as_str()), (200, "from secondary"), "{}", r.raw);
}

#[tokio::test]
async fn without_a_fallback_target_connect_errors_are_502_and_timeouts_504_in_openai_format() {
    let a = MockLlm::start("a").await;
    a.set(Behavior::Hang);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let port = free_port();
    let mut slow = rule("slow", &["slow"], json!([target("a", 0, 1)]));
    slow["timeouts"] = json!({"totalMs": 300});
    let _gw = Gw::start(config(
        port,
        vec![backend("a", &a.url), backend("dead", &dead)],
        vec![rule("d", &["dead"], json!([target("dead", 0, 1)])), slow],
        None,
        None,
    ))
    .await;
    let r = chat(port, "dead", &[]).await;
    assert_eq!(r.status, 502, "{}", r.raw);
    assert_eq!(r.body["error"]["code"], "upstream_error");
    let r = chat(port, "slow", &[]).await;
    assert_eq!(r.status, 504, "{}", r.raw);
    assert_eq!(r.body["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn retries_are_bounded_by_the_rules_attempts() {
    let a = MockLlm::start("a").await;
    a.set(Behavior::Status(500));
    let port = free_port();
    let mut r = rule("r", &["m"], json!([target("a", 0, 1)]));
    r["retries"] = json!({"attempts": 2, "budgetPercent": 20});
    let _gw = Gw::start(config(port, vec![backend("a", &a.url)], vec![r], None, None)).await;
    let resp = chat(port, "m", &[]).await;
    assert_eq!(resp.status, 500, "the last upstream error is passed through: {}", resp.raw);
    assert_eq!(a.count(), 3, "one attempt and two retries");
    a.set(Behavior::Status(400));
    chat(port, "m", &[]).await;
    assert_eq!(a.count(), 4, "a 400 is not retried");
}

#[tokio::test]
async fn a_backend_failing_repeatedly_is_ejected_for_its_cooldown() {
    let (a, b) = (MockLlm::start("a").await, MockLlm::start("b").await);
    a.set(Behavior::Status(500));
    let port = free_port();
    let mut r = rule("r", &["m"], json!([target("a", 0, 1), target("b", 1, 1)]));
    r["ejection"] = json!({"consecutiveFailures": 2, "cooldownMs": 600000});
    let _gw =
        Gw::start(config(port, vec![backend("a", &a.url), backend("b", &b.url)], vec![r], None, None)).await;
    for _ in 0..2 {
        assert_eq!(content(&chat(port, "m", &[]).await), "from b");
    }
    assert_eq!(a.count(), 2);
    for _ in 0..3 {
        assert_eq!(content(&chat(port, "m", &[]).await), "from b");
    }
    assert_eq!(a.count(), 2, "ejected: no more attempts on a during its cooldown");
    assert_eq!(b.count(), 5);
}

/// Reads the body of a streaming response as it arrives.
struct Stream {
    body: hyper::body::Incoming,
    status: u16,
}

impl Stream {
    async fn open(port: u16, body: Value, headers: &[(&str, &str)]) -> Stream {
        let mut req = http::Request::post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp =
            client().request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap();
        Stream { status: resp.status().as_u16(), body: resp.into_body() }
    }

    /// The next chunk of bytes, or `None` at the end.
    async fn next(&mut self) -> Option<String> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), self.body.frame())
                .await
                .expect("a chunk in time")?;
            if let Ok(data) = frame.expect("stream ok").into_data() {
                return Some(String::from_utf8_lossy(&data).to_string());
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

fn stream_body(model: &str, include_usage: bool) -> Value {
    let mut b = json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hello"}]});
    if include_usage {
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

#[tokio::test]
async fn streams_are_forwarded_chunk_by_chunk_and_usage_is_captured_but_hidden() {
    let a = MockLlm::start("a").await;
    let gate = a.gate();
    let port = free_port();
    let gw = Gw::start(config(
        port,
        vec![{
            let mut b = backend("a", &a.url);
            b["models"] = json!([{"name": "m", "kind": "chat",
                "price": {"inputPerMillion": 1000000.0, "cachedInputPerMillion": 0.0, "outputPerMillion": 2000000.0}}]);
            b
        }],
        vec![rule("r", &["m"], json!([target("a", 0, 1)]))],
        None,
        None,
    ))
    .await;
    let mut s = Stream::open(port, stream_body("m", false), &[]).await;
    assert_eq!(s.status, 200);
    // The upstream has sent only its first event and waits: the gateway must already have
    // forwarded it (a buffering proxy would block here).
    let first = s.next().await.unwrap();
    assert!(first.contains("\"role\":\"assistant\""), "{first}");
    gate.add_permits(100);
    let rest = s.rest().await;
    assert_eq!(rest.matches("tok").count(), STREAM_CHUNKS, "{rest}");
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    assert!(!rest.contains("\"usage\":{"), "the usage chunk the gateway asked for is hidden: {rest}");
    let sent = &a.received()[0].body;
    assert_eq!(sent["stream_options"]["include_usage"], true, "the gateway asks for usage");
    support::wait_until(Duration::from_secs(10), "usage recorded", || async {
        gw.metrics().contains("gen_ai_token_type=\"output\",estimated=\"false\"} 7.0").then_some(())
    })
    .await;
    let m = gw.metrics();
    assert!(
        m.contains(&format!("gen_ai_token_type=\"input\",estimated=\"false\"}} {PROMPT_TOKENS}.0")),
        "{m}"
    );
    // 11 input tokens × $1 + 7 output tokens × $2 = $25 at these (absurd) test prices.
    assert!(m.contains("cairn_ai_cost_usd_total{gateway=\"t/llm\",route=\"r\",backend=\"a\",gen_ai_request_model=\"m\",subject=\"anonymous\"} 25.0"), "{m}");
}

#[tokio::test]
async fn a_client_that_asked_for_usage_gets_the_usage_chunk() {
    let a = MockLlm::start("a").await;
    let (_gw, port) = Gw::single(&a.url).await;
    let mut s = Stream::open(port, stream_body("m", true), &[]).await;
    let all = s.rest().await;
    assert!(all.contains(&format!("\"completion_tokens\":{COMPLETION_TOKENS}")), "{all}");
}

#[tokio::test]
async fn a_broken_upstream_stream_ends_with_an_error_event_and_non_json_is_502() {
    let a = MockLlm::start("a").await;
    a.set(Behavior::BreakAfter(2));
    let (_gw, port) = Gw::single(&a.url).await;
    let mut s = Stream::open(port, stream_body("m", false), &[]).await;
    let all = s.rest().await;
    assert!(all.contains("tok0"), "{all}");
    assert!(!all.contains("[DONE]"), "{all}");
    let last = all.trim_end().lines().last().unwrap_or_default();
    let ev: Value = serde_json::from_str(last.trim_start_matches("data: ")).expect("the last event is JSON");
    assert_eq!(ev["error"]["code"], "upstream_error", "{all}");

    a.set(Behavior::NotJson);
    let r = chat(port, "m", &[]).await;
    assert_eq!(r.status, 502, "{}", r.raw);
    assert_eq!(r.body["error"]["type"], "api_error");
}

#[tokio::test]
async fn a_client_leaving_mid_stream_cancels_upstream_and_is_charged_an_estimate() {
    let a = MockLlm::start("a").await;
    a.set(Behavior::NoUsage);
    let gate = a.gate();
    let (gw, port) = Gw::single(&a.url).await;
    let mut s = Stream::open(port, stream_body("m", false), &[]).await;
    s.next().await.unwrap();
    gate.add_permits(1);
    s.next().await.unwrap();
    drop(s);
    support::wait_until(Duration::from_secs(10), "the gateway records the abandoned stream", || async {
        gw.metrics().contains("outcome=\"client_disconnected\"").then_some(())
    })
    .await;
    gate.add_permits(100);
    support::wait_until(Duration::from_secs(10), "the upstream request is cancelled", || async {
        (a.cancelled() == 1).then_some(())
    })
    .await;
    assert!(
        gw.metrics().contains("gen_ai_token_type=\"output\",estimated=\"true\"} 3.0"),
        "{}",
        gw.metrics()
    );
}

fn keyed(port: u16, mocks: &MockLlm, mut policy_models: Value, budgets: Value) -> GatewayConfig {
    // Grant ids as compile gives them: `<policy>/models/<index>`.
    for (i, g) in policy_models.as_array_mut().into_iter().flatten().enumerate() {
        g["id"] = json!(format!("p/models/{i}"));
    }
    let policy = json!({
        "defaultAction": "deny",
        "subjects": [{"name": "alice", "identities": [{"type": "virtualKey", "hash": hash_virtual_key(SALT, "sk-alice")}]},
                     {"name": "bob", "identities": [{"type": "virtualKey", "hash": hash_virtual_key(SALT, "sk-bob")}]}],
        "policies": [{"name": "p", "subjects": ["alice"], "models": policy_models, "budgets": budgets}]
    });
    let mut b = backend("a", &mocks.url);
    b["models"] = json!([{"name": "m", "kind": "chat",
        "price": {"inputPerMillion": 100.0, "cachedInputPerMillion": 100.0, "outputPerMillion": 100.0}},
        {"name": "other", "kind": "chat"}]);
    config(
        port,
        vec![b],
        vec![rule("r", &["m", "other"], json!([target("a", 0, 1)]))],
        Some(policy),
        Some(json!({"allowAnonymous": false, "virtualKeySalt": SALT})),
    )
}

#[tokio::test]
async fn callers_are_identified_by_virtual_key_and_refused_in_their_apis_format() {
    let a = MockLlm::start("a").await;
    let port = free_port();
    let _gw = Gw::start(keyed(port, &a, json!([{"id": "p/models/0", "pattern": "m"}]), json!([]))).await;
    let r = chat(port, "m", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], "invalid_api_key", "{}", r.raw);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");
    let r = chat(port, "m", &[("authorization", "Bearer sk-nobody")]).await;
    assert_eq!((r.status, r.body["error"]["message"].as_str()), (401, Some("invalid API key")));
    let r = chat(port, "m", &[("authorization", "Bearer sk-alice")]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = chat(port, "m", &[("x-api-key", "sk-alice")]).await;
    assert_eq!(r.status, 200, "x-api-key works too (Anthropic clients): {}", r.raw);
    assert!(
        a.received().iter().all(|r| r.header("authorization").is_none() && r.header("x-api-key").is_none()),
        "caller credentials never reach the provider"
    );
    let body =
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let r = call(port, "POST", "/v1/messages", &[], &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["type"], "error", "Anthropic format on /v1/messages: {}", r.raw);
    assert_eq!(r.body["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn policy_and_input_errors_are_403_404_413_400_with_clear_messages() {
    let a = MockLlm::start("a").await;
    let port = free_port();
    let _gw = Gw::start(keyed(port, &a, json!([{"id": "p/models/0", "pattern": "m"}]), json!([]))).await;
    let alice = [("authorization", "Bearer sk-alice")];
    let r = chat(port, "other", &alice).await;
    assert_eq!(r.status, 403, "{}", r.raw);
    assert_eq!(r.body["error"]["message"], "agent 'alice' is not granted model 'other' by any AgentPolicy");
    let r = chat(port, "m", &[("authorization", "Bearer sk-bob")]).await;
    assert_eq!(r.status, 403, "bob has no policy and the default is Deny: {}", r.raw);
    let r = chat(port, "nope", &alice).await;
    assert_eq!(r.status, 403, "alice may not use 'nope' at all: {}", r.raw);
    let big = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(5000)}]}).to_string();
    let r = call(port, "POST", "/v1/chat/completions", &alice, &big).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (413, Some("request_too_large")), "{}", r.raw);
    let r = call(port, "POST", "/v1/chat/completions", &alice, "{not json").await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("could not parse the JSON"), "{}", r.raw);
    let r = call(port, "POST", "/v1/chat/completions", &alice, r#"{"messages":[]}"#).await;
    assert_eq!(
        (r.status, r.body["error"]["message"].as_str()),
        (400, Some("you must provide a model parameter"))
    );
    let r = call(port, "GET", "/v1/models", &alice, "").await;
    let ids: Vec<&str> =
        r.body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["m"], "only the models alice may use");
    assert_eq!(a.count(), 0, "nothing refused reached the upstream");

    let (_open, port) = Gw::single(&a.url).await;
    let r = chat(port, "unknown-model", &[]).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (404, Some("model_not_found")), "{}", r.raw);
}

/// Waits until at least 10 s remain in the current minute, so a test counting per-minute windows
/// does not straddle two of them.
async fn away_from_minute_boundary() {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    if secs % 60 >= 50 {
        tokio::time::sleep(Duration::from_secs(61 - secs % 60)).await;
    }
}

#[tokio::test]
async fn request_and_token_limits_answer_429_with_retry_after() {
    away_from_minute_boundary().await;
    let a = MockLlm::start("a").await;
    let port = free_port();
    let _gw = Gw::start(keyed(
        port,
        &a,
        json!([{"id": "p/models/0", "pattern": "m", "limits": {"requestsPerMinute": 2}}, {"id": "p/models/1", "pattern": "other", "limits": {"tokensPerMinute": 10}}]),
        json!([]),
    ))
    .await;
    let alice = [("authorization", "Bearer sk-alice")];
    assert_eq!(chat(port, "m", &alice).await.status, 200);
    assert_eq!(chat(port, "m", &alice).await.status, 200);
    let r = chat(port, "m", &alice).await;
    assert_eq!(r.status, 429, "{}", r.raw);
    assert_eq!(r.body["error"]["code"], "rate_limit_exceeded");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Tokens: the first call uses 18 (> 10), the next is refused.
    assert_eq!(chat(port, "other", &alice).await.status, 200);
    let r = chat(port, "other", &alice).await;
    assert_eq!(r.status, 429, "{}", r.raw);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("tokens per minute"), "{}", r.raw);
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_spent_budget_answers_insufficient_quota() {
    let a = MockLlm::start("a").await;
    let port = free_port();
    // 18 tokens × $100 per million = $0.0018 per call; the budget is $0.003.
    let _gw = Gw::start(keyed(
        port,
        &a,
        json!([{"id": "p/models/0", "pattern": "*"}]),
        json!([{"id": "p/budgets/0", "amountUsd": 0.003, "window": "month", "scope": "perSubject", "action": "block"}]),
    ))
    .await;
    let alice = [("authorization", "Bearer sk-alice")];
    assert_eq!(chat(port, "m", &alice).await.status, 200);
    assert_eq!(chat(port, "m", &alice).await.status, 200, "$0.0018 spent of $0.003");
    let r = chat(port, "m", &alice).await;
    assert_eq!(r.status, 429, "{}", r.raw);
    assert_eq!(r.body["error"]["type"], "insufficient_quota");
    assert_eq!(r.body["error"]["code"], "insufficient_quota");
    assert_eq!(a.count(), 2);
}

#[tokio::test]
async fn the_echo_backend_answers_through_the_same_path() {
    let port = free_port();
    let echo = json!({"name": "echo", "provider": "echo", "url": "", "connectTimeoutMs": 1000,
        "models": [{"name": "echo-1", "kind": "chat", "price": {"inputPerMillion": 1.0, "cachedInputPerMillion": 1.0, "outputPerMillion": 1.0}}]});
    let gw = Gw::start(config(
        port,
        vec![echo],
        vec![rule(
            "r",
            &["gpt-4o-mini"],
            json!([{"backend": "echo", "model": "echo-1", "weight": 1, "priority": 0}]),
        )],
        None,
        None,
    ))
    .await;
    let body =
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}).to_string();
    let r = call(port, "POST", "/v1/chat/completions", &[], &body).await;
    assert_eq!(content(&r), "echo: hello there", "{}", r.raw);
    // "hello there" is 2 tokens, plus OpenAI's per-message (3) and reply-priming (3) overhead,
    // plus the role.
    assert_eq!(r.body["usage"]["prompt_tokens"], 9);
    assert_eq!(r.body["usage"]["completion_tokens"], 4);
    let mut s = Stream::open(
        port,
        json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "a b"}]}),
        &[],
    )
    .await;
    let all = s.rest().await;
    assert!(all.contains("\" b\"") && all.ends_with("data: [DONE]\n\n") && !all.contains("usage"), "{all}");
    let r = call(port, "POST", "/v1/embeddings", &[], r#"{"model":"gpt-4o-mini","input":["x","y"]}"#).await;
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(2), "{}", r.raw);
    assert!(gw.metrics().contains("cairn_ai_requests_total{gateway=\"t/llm\",route=\"r\",backend=\"echo\",gen_ai_request_model=\"gpt-4o-mini\",subject=\"anonymous\",outcome=\"ok\"} 3"), "{}", gw.metrics());
}

fn redis_config(port: u16, mock: &MockLlm, redis_url: &str, failure_mode: &str, rpm: u64) -> GatewayConfig {
    let mut cfg = keyed(
        port,
        mock,
        json!([{"id": "p/models/0", "pattern": "m", "limits": {"requestsPerMinute": rpm}}]),
        json!([]),
    );
    cfg.store =
        Some(serde_json::from_value(json!({"redisUrl": redis_url, "failureMode": failure_mode})).unwrap());
    cfg
}

fn spawn_gateway(dir: &std::path::Path, cfg: &GatewayConfig) -> Proc {
    Proc(support::spawn_gateway("ai", dir, &cfg.to_json(), cfg.listener.port, "{}"))
}

async fn wait_listening(port: u16) {
    support::wait_until(Duration::from_secs(20), "the gateway listens", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn two_gateway_processes_sharing_one_redis_enforce_one_limit_exactly() {
    let redis = support::Redis::start();
    let a = MockLlm::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port(), free_port());
    let _g1 = spawn_gateway(dir.path(), &redis_config(p1, &a, &redis.url, "closed", 5));
    let _g2 = spawn_gateway(dir.path(), &redis_config(p2, &a, &redis.url, "closed", 5));
    wait_listening(p1).await;
    wait_listening(p2).await;
    away_from_minute_boundary().await;
    let alice = [("authorization", "Bearer sk-alice")];
    let mut handles = Vec::new();
    for i in 0..16 {
        let port = if i % 2 == 0 { p1 } else { p2 };
        handles.push(tokio::spawn(async move { chat(port, "m", &alice).await.status }));
    }
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((ok, limited), (5, 11), "{statuses:?}");
    assert_eq!(a.count(), 5);
}

#[tokio::test]
async fn redis_down_fails_closed_with_503_or_open_as_configured() {
    let a = MockLlm::start("a").await;
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let alice = [("authorization", "Bearer sk-alice")];
    let port = free_port();
    let _closed = Gw::start(redis_config(port, &a, &dead, "closed", 5)).await;
    let r = chat(port, "m", &alice).await;
    assert_eq!(r.status, 503, "{}", r.raw);
    assert_eq!(r.body["error"]["code"], "limits_store_unavailable");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("fails closed"), "{}", r.raw);
    assert_eq!(a.count(), 0);
    let port = free_port();
    let _open = Gw::start(redis_config(port, &a, &dead, "open", 5)).await;
    let r = chat(port, "m", &alice).await;
    assert_eq!(r.status, 200, "fail open serves without limits: {}", r.raw);
}

const MANIFESTS: &str = r#"
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {name: llm}
spec:
  listener: {port: PORT}
  defaultAction: Allow
  auth: {allowAnonymous: true}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {name: echo}
spec:
  provider: Echo
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {name: chat}
spec:
  gatewayRefs: [{name: llm}]
  rules:
    - matches: [{model: MODEL}]
      backends:
        - backendRef: {name: echo}
"#;

#[tokio::test]
async fn cairn_run_hot_reloads_and_keeps_the_last_good_config_on_a_bad_edit() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = dir.path().join("gw.yaml");
    let write = |model: &str| {
        std::fs::write(&file, MANIFESTS.replace("PORT", &port.to_string()).replace("MODEL", model)).unwrap()
    };
    write("first");
    let admin = free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["run", "--admin-port"])
        .arg(admin.to_string())
        .arg("-f")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    wait_listening(port).await;
    assert_eq!(chat(port, "first", &[]).await.status, 200);
    let ready = call(admin, "GET", "/readyz", &[], "").await;
    assert_eq!(ready.status, 200, "{}", ready.raw);
    assert_eq!(call(admin, "GET", "/healthz", &[], "").await.status, 200);
    let metrics = call(admin, "GET", "/metrics", &[], "").await.raw;
    assert!(metrics.contains("cairn_ai_requests_total{gateway=\"default/llm\",route=\"chat\""), "{metrics}");
    assert_eq!(chat(port, "second", &[]).await.status, 404);
    write("second");
    support::wait_until(Duration::from_secs(20), "the edited route serves", || async {
        (chat(port, "second", &[]).await.status == 200).then_some(())
    })
    .await;
    assert_eq!(chat(port, "first", &[]).await.status, 404, "the old route is gone");
    std::fs::write(&file, "apiVersion: cairn.dev/v1alpha1\nkind: AIRoute\nmetadata: {name: [broken\n")
        .unwrap();
    // The bad edit is seen within a poll or two; the last good config keeps serving meanwhile
    // and after.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(chat(port, "second", &[]).await.status, 200, "the last good config keeps serving");
    }
    // SIGTERM: a graceful exit with status 0.
    let pid = p.0.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = support::wait_until(Duration::from_secs(20), "cairn run exits", || {
        let done = p.0.try_wait().unwrap();
        async move { done }
    })
    .await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn chat_to_an_anthropic_backend_and_messages_to_an_openai_backend_are_translated() {
    let (ant, oai) = (MockLlm::start("anthropic").await, MockLlm::start("openai").await);
    let port = free_port();
    let anthropic = json!({"name": "ant", "provider": "anthropic", "url": ant.url, "connectTimeoutMs": 2000,
        "headers": [{"name": "x-api-key", "value": "sk-ant-test"}]});
    let _gw = Gw::start(config(
        port,
        vec![anthropic, backend("oai", &oai.url)],
        vec![
            rule("to-ant", &["claude"], json!([target("ant", 0, 1)])),
            rule("to-oai", &["gpt"], json!([target("oai", 0, 1)])),
        ],
        None,
        None,
    ))
    .await;
    // OpenAI chat → Anthropic backend.
    let r = chat(port, "claude", &[]).await;
    assert_eq!((r.status, content(&r).as_str()), (200, "from anthropic"), "{}", r.raw);
    assert_eq!(r.body["usage"]["prompt_tokens"], PROMPT_TOKENS);
    let sent = &ant.received()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-test"), "the backend's credential header");
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert!(sent.body["max_tokens"].is_u64(), "Anthropic needs max_tokens: {}", sent.body);
    let mut s = Stream::open(port, stream_body("claude", true), &[]).await;
    let all = s.rest().await;
    assert!(all.contains("tok3") && all.ends_with("data: [DONE]\n\n"), "{all}");
    assert!(all.contains(&format!("\"completion_tokens\":{COMPLETION_TOKENS}")), "{all}");

    // Anthropic messages → OpenAI backend.
    let body = json!({"model": "gpt", "max_tokens": 100, "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}]});
    let r = call(port, "POST", "/v1/messages", &[], &body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["type"], "message");
    assert_eq!(r.body["content"][0]["text"], "from openai");
    assert_eq!(r.body["usage"]["output_tokens"], COMPLETION_TOKENS);
    assert_eq!(oai.received()[0].body["messages"][0]["role"], "system");
    let mut sb = body.clone();
    sb["stream"] = json!(true);
    let mut req = http::Request::post(format!("http://127.0.0.1:{port}/v1/messages"));
    req = req.header("content-type", "application/json");
    let resp = client().request(req.body(Full::new(Bytes::from(sb.to_string()))).unwrap()).await.unwrap();
    let mut s = Stream { status: resp.status().as_u16(), body: resp.into_body() };
    assert_eq!(s.status, 200);
    let all = s.rest().await;
    assert!(all.starts_with("event: message_start"), "{all}");
    assert!(all.contains("tok2") && all.contains("event: message_stop"), "{all}");
    assert!(all.contains(&format!("\"output_tokens\":{COMPLETION_TOKENS}")), "{all}");
    // Errors come back in the caller's format.
    oai.set(Behavior::Status(400));
    let r = call(port, "POST", "/v1/messages", &[], &body.to_string()).await;
    assert_eq!((r.status, r.body["type"].as_str()), (400, Some("error")), "{}", r.raw);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn guardrails_refuse_or_redact_and_the_cache_answers_repeats() {
    let a = MockLlm::start("a").await;
    let port = free_port();
    let mut guarded = rule("guarded", &["g"], json!([target("a", 0, 1)]));
    guarded["requestGuardrails"] = json!([
        {"name": "mask-secrets", "regex": ["secret-[a-z]+"], "action": "redact"},
        {"name": "no-email", "pii": ["email"], "action": "deny"}
    ]);
    guarded["responseGuardrails"] = json!([{"name": "no-from", "regex": ["from"], "action": "redact"}]);
    let mut cached = rule("cached", &["c"], json!([target("a", 0, 1)]));
    cached["cache"] = json!({"ttlMs": 600000, "shared": false, "maxEntries": 100});
    let _gw = Gw::start(config(port, vec![backend("a", &a.url)], vec![guarded, cached], None, None)).await;

    let ask = |model: &str, text: &str| {
        json!({"model": model, "messages": [{"role": "user", "content": text}]}).to_string()
    };
    let r = call(port, "POST", "/v1/chat/completions", &[], &ask("g", "mail me at jane@example.com")).await;
    assert_eq!(r.status, 400, "{}", r.raw);
    assert_eq!(r.body["error"]["code"], "guardrail_violation");
    assert!(
        r.body["error"]["message"].as_str().unwrap().contains("no-email"),
        "the refusal names the rule: {}",
        r.raw
    );
    assert_eq!(a.count(), 0);

    let r = call(port, "POST", "/v1/chat/completions", &[], &ask("g", "the code is secret-abc")).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let sent = a.received()[0].body["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(!sent.contains("secret-abc") && sent.contains("mask-secrets"), "redacted before leaving: {sent}");
    assert_eq!(content(&r), "[REDACTED:no-from] a", "the response was redacted: {}", r.raw);

    let first = call(port, "POST", "/v1/chat/completions", &[], &ask("c", "same question")).await;
    let second = call(port, "POST", "/v1/chat/completions", &[], &ask("c", "same question")).await;
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.raw, second.raw);
    assert!(second.headers.get("x-cairn-cache").is_some(), "served from the cache");
    assert_eq!(a.count(), 2, "the repeat never reached the upstream");
    call(port, "POST", "/v1/chat/completions", &[], &ask("c", "another question")).await;
    assert_eq!(a.count(), 3);
}

/// An ES256 signing key and its JWK.
struct EcKey {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Value,
}

fn ec_key(kid: &str) -> EcKey {
    use base64::Engine;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let public = pair.public_key().as_ref(); // 0x04 || x || y
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    EcKey {
        kid: kid.into(),
        pkcs8: pkcs8.as_ref().to_vec(),
        jwk: json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                    "x": b64(&public[1..33]), "y": b64(&public[33..65])}),
    }
}

fn token(key: &EcKey, claims: Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(&key.pkcs8)).unwrap()
}

/// Serves a JWKS that the test can change; counts fetches.
async fn jwks_server(
    keys: Arc<std::sync::Mutex<Vec<Value>>>,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
) -> u16 {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (keys, fetches) = (keys.clone(), fetches.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                    fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let body = json!({"keys": keys.lock().unwrap().clone()}).to_string();
                    async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn jwts_from_a_trusted_issuer_are_verified_against_its_rotating_jwks() {
    let a = MockLlm::start("a").await;
    let (k1, k2, forged) = (ec_key("k1"), ec_key("k2"), ec_key("k3"));
    let keys = Arc::new(std::sync::Mutex::new(vec![k1.jwk.clone()]));
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let jwks_port = jwks_server(keys.clone(), fetches.clone()).await;
    let iss = "https://issuer.test";
    let policy = json!({
        "defaultAction": "deny",
        "subjects": [{"name": "bot", "identities": [{"type": "jwt", "issuer": iss, "subject": "bot-123"}]}],
        "policies": [{"name": "p", "subjects": ["bot"], "models": [{"id": "p/models/0", "pattern": "m"}]}]
    });
    let auth = json!({"allowAnonymous": false, "virtualKeySalt": SALT, "jwt": [{"issuer": iss, "audiences": ["cairn"],
        "jwksUri": format!("http://127.0.0.1:{jwks_port}/jwks"), "subjectClaim": "sub"}]});
    let port = free_port();
    let _gw = Gw::start(config(
        port,
        vec![backend("a", &a.url)],
        vec![rule("r", &["m"], json!([target("a", 0, 1)]))],
        Some(policy),
        Some(auth),
    ))
    .await;
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 600;
    let claims = |sub: &str, aud: &str, exp: u64| json!({"iss": iss, "sub": sub, "aud": aud, "exp": exp});
    let bearer = |t: String| format!("Bearer {t}");

    let r = chat(port, "m", &[("authorization", &bearer(token(&k1, claims("bot-123", "cairn", exp))))]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    for (what, t) in [
        ("wrong audience", token(&k1, claims("bot-123", "other", exp))),
        ("expired", token(&k1, claims("bot-123", "cairn", exp - 3600))),
        ("unknown subject", token(&k1, claims("someone", "cairn", exp))),
    ] {
        let r = chat(port, "m", &[("authorization", &bearer(t))]).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (401, Some("invalid_api_key")),
            "{what}: {}",
            r.raw
        );
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1, "keys are cached");
    // Rotation: the issuer publishes k2; a token signed with it makes the gateway refetch once.
    keys.lock().unwrap().push(k2.jwk.clone());
    let r = chat(port, "m", &[("authorization", &bearer(token(&k2, claims("bot-123", "cairn", exp))))]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
    // A forged key id right after: refused without hammering the issuer (rate-limited refresh).
    for _ in 0..3 {
        let r =
            chat(port, "m", &[("authorization", &bearer(token(&forged, claims("bot-123", "cairn", exp))))])
                .await;
        assert_eq!(r.status, 401, "{}", r.raw);
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// A ServiceAccount token minted by the real API server of the test platform is accepted by a
/// `cairn gateway` process that verifies it against the API server's JWKS (reached as a pod
/// would reach it: `KUBERNETES_SERVICE_HOST/PORT`, a bearer token file and the cluster CA file).
#[tokio::test]
async fn service_account_tokens_verify_against_the_api_servers_jwks() {
    use base64::Engine;
    let p = support::platform().await;
    let ns = p.fresh_namespace("aigw-sa").await;
    let kc: Value = serde_json::to_value(
        serde_saphyr::from_str::<serde_json::Value>(&std::fs::read_to_string(&p.kubeconfig).unwrap())
            .unwrap(),
    )
    .unwrap();
    let server = kc["clusters"][0]["cluster"]["server"].as_str().unwrap().to_string();
    let ca = base64::engine::general_purpose::STANDARD
        .decode(kc["clusters"][0]["cluster"]["certificate-authority-data"].as_str().unwrap())
        .unwrap();
    let admin_token = kc["users"][0]["user"]["token"].as_str().unwrap().to_string();
    let out = p
        .kubectl()
        .args(["-n", &ns, "create", "token", "default", "--audience", "cairn.dev"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sa_token = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let a = MockLlm::start("a").await;
    let port = free_port();
    let policy = json!({
        "defaultAction": "deny",
        "subjects": [{"name": "bot", "identities": [{"type": "serviceAccount", "namespace": ns, "name": "default"}]}],
        "policies": [{"name": "p", "subjects": ["bot"], "models": [{"id": "p/models/0", "pattern": "m"}]}]
    });
    let auth = json!({"allowAnonymous": false, "virtualKeySalt": SALT, "serviceAccountTokens": {"audiences": ["cairn.dev"]}});
    let cfg = config(
        port,
        vec![backend("a", &a.url)],
        vec![rule("r", &["m"], json!([target("a", 0, 1)]))],
        Some(policy),
        Some(auth),
    );
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, token_file, cfg_file) =
        (dir.path().join("ca.crt"), dir.path().join("token"), dir.path().join("config.json"));
    std::fs::write(&ca_file, ca).unwrap();
    std::fs::write(&token_file, admin_token).unwrap();
    std::fs::write(&cfg_file, cfg.to_json()).unwrap();
    let hostport = server.trim_start_matches("https://");
    let (host, apiport) = hostport.rsplit_once(':').unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["gateway", "--layer", "ai", "--address", "127.0.0.1", "--admin-port"])
        .arg(free_port().to_string())
        .arg("--config")
        .arg(&cfg_file)
        .env("KUBERNETES_SERVICE_HOST", host)
        .env("KUBERNETES_SERVICE_PORT", apiport)
        .env("CAIRN_SA_TOKEN_FILE", &token_file)
        .env("CAIRN_SA_CA_FILE", &ca_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _g = Proc(child);
    wait_listening(port).await;
    let r = chat(port, "m", &[("authorization", &format!("Bearer {sa_token}"))]).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let mut forged = sa_token.clone();
    forged.pop();
    let r = chat(port, "m", &[("authorization", &format!("Bearer {forged}X"))]).await;
    assert_eq!(r.status, 401, "a bad signature is refused: {}", r.raw);
}

#[tokio::test]
async fn responses_and_embeddings_pass_through_with_usage_accounted() {
    let a = MockLlm::start_full("a").await;
    let (gw, port) = Gw::single(&a.url).await;
    let r = call(port, "POST", "/v1/responses", &[], r#"{"model":"m","input":"hi"}"#).await;
    assert_eq!((r.status, r.body["object"].as_str()), (200, Some("response")), "{}", r.raw);
    assert_eq!(a.received()[0].path, "/v1/responses");
    let mut req = http::Request::post(format!("http://127.0.0.1:{port}/v1/responses"));
    req = req.header("content-type", "application/json");
    let resp = client()
        .request(req.body(Full::new(Bytes::from(r#"{"model":"m","input":"hi","stream":true}"#))).unwrap())
        .await
        .unwrap();
    let mut s = Stream { status: resp.status().as_u16(), body: resp.into_body() };
    let all = s.rest().await;
    assert!(
        all.contains("event: response.output_text.delta") && all.contains("event: response.completed"),
        "{all}"
    );
    let r = call(port, "POST", "/v1/embeddings", &[], r#"{"model":"m","input":"hi"}"#).await;
    assert_eq!((r.status, r.body["object"].as_str()), (200, Some("list")), "{}", r.raw);
    support::wait_until(Duration::from_secs(10), "usage of all three recorded", || async {
        let m = gw.metrics();
        // Summed over the operations (`chat` for responses, `embeddings`).
        let input: f64 = m
            .lines()
            .filter(|l| l.starts_with("gen_ai_client_token_usage_sum{"))
            .filter(|l| l.contains("gen_ai_token_type=\"input\",estimated=\"false\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (input == (3 * PROMPT_TOKENS) as f64).then_some(())
    })
    .await;
}

#[tokio::test]
async fn rules_can_require_headers_and_a_bad_backend_url_is_a_502_not_a_crash() {
    let (a, b) = (MockLlm::start("a").await, MockLlm::start("b").await);
    let port = free_port();
    let mut canary = rule("canary", &["m"], json!([target("b", 0, 1)]));
    canary["matches"] = json!([{"model": "m", "headers": [{"name": "x-canary", "value": "1"}]}]);
    let mut broken = backend("broken", &a.url);
    broken["url"] = json!("http://bad host/v1");
    let _gw = Gw::start(config(
        port,
        vec![backend("a", &a.url), backend("b", &b.url), broken],
        vec![
            canary,
            rule("default", &["m"], json!([target("a", 0, 1)])),
            rule("x", &["x"], json!([target("broken", 0, 1)])),
        ],
        None,
        None,
    ))
    .await;
    assert_eq!(content(&chat(port, "m", &[("x-canary", "1")]).await), "from b");
    assert_eq!(content(&chat(port, "m", &[("x-canary", "2")]).await), "from a");
    assert_eq!(content(&chat(port, "m", &[]).await), "from a");
    let r = chat(port, "x", &[]).await;
    assert_eq!(r.status, 502, "{}", r.raw);
}

#[tokio::test]
async fn a_stream_that_stalls_past_the_idle_timeout_ends_with_an_error_event() {
    let a = MockLlm::start("a").await;
    let _gate = a.gate(); // never opened: the upstream stalls after its first event
    let port = free_port();
    let mut r = rule("r", &["m"], json!([target("a", 0, 1)]));
    r["timeouts"] = json!({"idleMs": 300});
    let _gw = Gw::start(config(port, vec![backend("a", &a.url)], vec![r], None, None)).await;
    let mut s = Stream::open(port, stream_body("m", false), &[]).await;
    let all = s.rest().await;
    let last = all.trim_end().lines().last().unwrap_or_default();
    let ev: Value = serde_json::from_str(last.trim_start_matches("data: ")).expect("the last event is JSON");
    assert_eq!(ev["error"]["code"], "upstream_timeout", "{all}");
}

#[tokio::test]
async fn provider_keys_come_from_the_credentials_bundle() {
    let a = MockLlm::start("a").await;
    let port = free_port();
    let mut b = backend("a", &a.url);
    b["headers"] = json!([{"name": "Authorization", "credential": {"id": "default/openai-key/apiKey"}, "prefix": "Bearer "}]);
    let creds = Credentials([("default/openai-key/apiKey".to_string(), "sk-provider".to_string())].into());
    let _gw = Gw::start_with(
        config(port, vec![b], vec![rule("r", &["m"], json!([target("a", 0, 1)]))], None, None),
        creds,
    )
    .await;
    assert_eq!(chat(port, "m", &[]).await.status, 200);
    assert_eq!(a.received()[0].header("authorization"), Some("Bearer sk-provider"));
    // A config whose credential is missing is refused (the previous config, if any, keeps serving).
    let core = Core::new(Env::from_process());
    let mut sup = Supervisor::new(core.clone(), cairn::serve::layers(&core), "127.0.0.1".parse().unwrap());
    let mut b = backend("a", &a.url);
    b["headers"] = json!([{"name": "Authorization", "credential": {"id": "missing"}}]);
    let cfg = config(free_port(), vec![b], vec![rule("r", &["m"], json!([target("a", 0, 1)]))], None, None);
    let applied = sup.apply(&[CompiledGateway { config: cfg, credentials: Credentials::default() }]).await;
    match &applied[..] {
        [(_, Applied::Refused(e))] => {
            assert_eq!(e.to_string(), "backend a: credential \"missing\" is missing")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
