//! Conformance with the official SDKs: `cairn run` serves manifests that route to in-repo mock
//! upstreams (tests/support/mock_llm.rs), and pytest drives it with the official `openai` and
//! `anthropic` Python packages (tests/conformance/). Needs the SDK venv
//! (`eval "$(tests/support/platform.sh python)"`, or tests/run).
//!
//! The other tests here check the full mock itself against Cairn's own SSE parser and translators,
//! so the doubles the gateway tests use are known to speak each API's exact wire format.

#[path = "support/mock_llm.rs"]
mod mock_llm;
mod support;

use bytes::Bytes;
use cairn::gateway::ai::meter::{StreamKind, StreamUsage};
use cairn::gateway::ai::translate::{ChatToMessagesStream, MessagesToChatStream};
use cairn::gateway::ai::usage::Usage;
use cairn::gateway::sse::{SseEvent, SseParser};
use http_body_util::{BodyExt, Full};
use mock_llm::{Behavior, COMPLETION_TOKENS, MockLlm, PROMPT_TOKENS};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};

const AGENT_KEY: &str = "cairn-vk-conformance-0123456789abcdef";

/// The AI-layer suites (tests/conformance also holds the MCP suite, run by tests/mcp_gateway.rs).
const SUITES: &[&str] = &[
    "tests/conformance/test_openai_sdk.py",
    "tests/conformance/test_anthropic_sdk.py",
    "tests/conformance/test_cross_provider.py",
    "tests/conformance/test_route_features.py",
];

fn manifests(port: u16, openai: &str, anthropic: &str, limited: &str, broken: &str, leaky: &str) -> String {
    format!(
        r#"apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {{name: llm}}
spec:
  listener: {{port: {port}}}
  defaultAction: Deny
  auth: {{allowAnonymous: false}}
---
apiVersion: v1
kind: Secret
metadata: {{name: keys}}
stringData:
  agent: {AGENT_KEY}
  openai: sk-openai-test
  anthropic: sk-ant-test
---
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {{name: sdk-client}}
spec:
  identity:
    virtualKeys: [{{secretRef: {{name: keys, key: agent}}}}]
---
apiVersion: cairn.dev/v1alpha1
kind: AgentPolicy
metadata: {{name: sdk-client}}
spec:
  subjects: {{agents: [sdk-client]}}
  models:
    - match: gpt-4o-mini
    - match: claude-haiku-4-5
    - match: text-embedding-3-small
    - match: "rate-limited*"
    - match: "bad-request*"
    - match: gpt-via-anthropic
    - match: claude-via-openai
    - match: missing-model
    - match: "guarded*"
    - match: cached
    - match: leaky
    - match: echo-1
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {{name: openai}}
spec:
  provider: OpenAICompatible
  url: {openai}/v1
  credentials: {{secretRef: {{name: keys, key: openai}}}}
  models:
    - {{name: gpt-4o-mini, price: {{inputPerMillion: 0.15, outputPerMillion: 0.60}}}}
    - {{name: text-embedding-3-small, type: Embedding, price: {{inputPerMillion: 0.02}}}}
    - {{name: forbidden-model}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {{name: anthropic}}
spec:
  provider: Anthropic
  url: {anthropic}
  credentials: {{secretRef: {{name: keys, key: anthropic}}}}
  models:
    - {{name: claude-haiku-4-5, price: {{inputPerMillion: 1.0, outputPerMillion: 5.0}}}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {{name: limited-openai}}
spec:
  provider: OpenAICompatible
  url: {limited}/v1
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {{name: limited-anthropic}}
spec:
  provider: Anthropic
  url: {limited}
  credentials: {{secretRef: {{name: keys, key: anthropic}}}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {{name: broken-openai}}
spec:
  provider: OpenAICompatible
  url: {broken}/v1
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {{name: broken-anthropic}}
spec:
  provider: Anthropic
  url: {broken}
  credentials: {{secretRef: {{name: keys, key: anthropic}}}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {{name: leaky}}
spec:
  provider: OpenAICompatible
  url: {leaky}/v1
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {{name: echo}}
spec:
  provider: Echo
  models: [{{name: echo-1}}]
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {{name: sdk}}
spec:
  gatewayRefs: [{{name: llm}}]
  rules:
    - name: openai
      matches: [{{model: gpt-4o-mini}}, {{model: text-embedding-3-small}}, {{model: forbidden-model}}]
      backends: [{{backendRef: {{name: openai}}}}]
    - name: anthropic
      matches: [{{model: claude-haiku-4-5}}]
      backends: [{{backendRef: {{name: anthropic}}}}]
    - name: gpt-via-anthropic
      matches: [{{model: gpt-via-anthropic}}]
      backends: [{{backendRef: {{name: anthropic}}, model: claude-haiku-4-5}}]
    - name: claude-via-openai
      matches: [{{model: claude-via-openai}}]
      backends: [{{backendRef: {{name: openai}}, model: gpt-4o-mini}}]
    - name: rate-limited
      matches: [{{model: rate-limited}}]
      backends: [{{backendRef: {{name: limited-openai}}}}]
    - name: rate-limited-claude
      matches: [{{model: rate-limited-claude}}]
      backends: [{{backendRef: {{name: limited-anthropic}}}}]
    - name: bad-request
      matches: [{{model: bad-request}}]
      backends: [{{backendRef: {{name: broken-openai}}}}]
    - name: bad-request-claude
      matches: [{{model: bad-request-claude}}]
      backends: [{{backendRef: {{name: broken-anthropic}}}}]
    - name: rate-limited-via-anthropic
      matches: [{{model: rate-limited-via-anthropic}}]
      backends: [{{backendRef: {{name: limited-anthropic}}}}]
    - name: bad-request-via-openai
      matches: [{{model: bad-request-via-openai}}]
      backends: [{{backendRef: {{name: broken-openai}}}}]
    - name: guarded
      matches: [{{model: guarded}}]
      backends: [{{backendRef: {{name: openai}}, model: gpt-4o-mini}}]
      guardrails:
        request:
          - {{name: no-cards, pii: [CreditCard], action: Deny}}
          - {{name: no-email, pii: [Email], action: Redact}}
    - name: guarded-claude
      matches: [{{model: guarded-claude}}]
      backends: [{{backendRef: {{name: anthropic}}, model: claude-haiku-4-5}}]
      guardrails:
        request:
          - {{name: no-cards, pii: [CreditCard], action: Deny}}
    - name: cached
      matches: [{{model: cached}}]
      backends: [{{backendRef: {{name: openai}}, model: gpt-4o-mini}}]
      cache: {{exact: {{ttl: 10m}}}}
    - name: echo
      matches: [{{model: echo-1}}]
      backends: [{{backendRef: {{name: echo}}}}]
    - name: leaky
      matches: [{{model: leaky}}]
      backends: [{{backendRef: {{name: leaky}}}}]
      guardrails:
        response:
          - {{name: no-ssn, pii: [USSSN], action: Redact}}
          - {{name: no-tok1, regex: ["tok1"], action: Redact}}
"#
    )
}

/// Kills the gateway when the test ends, however it ends.
struct Gateway(std::process::Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `cairn run` serves: its port answers `GET /v1/models` without a key with 401.
/// `false` when it will not: the process exited (its admin port was taken), another server answers
/// on the port (a mock of a parallel test took it between choosing and binding), or nothing serves
/// within 20 s. The caller then starts again on other ports.
async fn wait_until_serving(port: u16, gw: &mut Gateway) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = gw.0.try_wait() {
            return false;
        }
        let req = http::Request::get(format!("http://127.0.0.1:{port}/v1/models"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        if let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(2), client().request(req)).await {
            return resp.status().as_u16() == 401;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The whole SDK suite (tests/conformance/*.py) against `cairn run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdks_against_cairn_run() {
    support::python(); // fails here, before any set-up, when the SDK venv is missing
    let openai = MockLlm::start_full("openai").await;
    let anthropic = MockLlm::start_full("anthropic").await;
    let limited = MockLlm::start_full("limited").await;
    limited.set(Behavior::Status(429));
    let broken = MockLlm::start_full("broken").await;
    broken.set(Behavior::Status(400));
    // Answers "from leaky 078-05-1120" (an SSN for the response guardrail to redact).
    let leaky = MockLlm::start_full("leaky 078-05-1120").await;

    let dir = tempfile::tempdir().unwrap();
    let err_log = dir.path().join("cairn.err");
    let mut attempt = 0;
    let (port, gw) = loop {
        attempt += 1;
        let port = support::free_port();
        let admin = support::free_port();
        let yaml = manifests(port, &openai.url, &anthropic.url, &limited.url, &broken.url, &leaky.url);
        std::fs::write(dir.path().join("sdk.yaml"), yaml).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["run", "-f"])
            .arg(dir.path().join("sdk.yaml"))
            .args(["--admin-port", &admin.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_log).unwrap())
            .spawn()
            .expect("starting cairn run");
        let mut gw = Gateway(child);
        if wait_until_serving(port, &mut gw).await {
            break (port, gw);
        }
        assert!(
            attempt < 3,
            "cairn run did not serve, 3 times; last stderr:\n{}",
            std::fs::read_to_string(&err_log).unwrap_or_default()
        );
    };

    // Forget the probes of failed starts (a mock may have answered one).
    for m in [&openai, &anthropic, &limited, &broken, &leaky] {
        m.clear_received();
    }

    let url = format!("http://127.0.0.1:{port}");
    let result =
        support::pytest(SUITES, &[("CAIRN_GATEWAY_URL", &url), ("CAIRN_GATEWAY_KEY", AGENT_KEY)]).await;
    drop(gw);
    let stdout = result.unwrap_or_else(|e| {
        panic!("{e}\n--- cairn stderr ---\n{}", std::fs::read_to_string(&err_log).unwrap_or_default())
    });
    println!("{stdout}");
    assert!(!stdout.contains("skipped"), "no SDK test may be skipped:\n{stdout}");
    assert!(stdout.contains(" passed"), "{stdout}");
    // The requests reached the upstreams with the backend's credentials, not the caller's key.
    let to_anthropic = anthropic.received();
    assert!(!to_anthropic.is_empty());
    for r in &to_anthropic {
        assert_eq!(r.header("x-api-key"), Some("sk-ant-test"), "{}", r.path);
    }
    // The OpenAI image part reached Anthropic as an image block with a base64 source.
    assert!(
        to_anthropic
            .iter()
            .any(|r| r.body.pointer("/messages/0/content/1/source/type") == Some(&json!("base64"))
                && r.body.pointer("/messages/0/content/1/type") == Some(&json!("image"))
                && r.body.pointer("/messages/0/content/1/source/media_type") == Some(&json!("image/png"))),
        "no translated image block among {:?}",
        to_anthropic.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    // Translated requests carried the system prompt at the top level and a max_tokens.
    assert!(
        to_anthropic.iter().any(|r| r.body["system"] == json!("Be brief.") && r.body["max_tokens"].is_u64())
    );
    let to_openai = openai.received();
    assert!(!to_openai.is_empty());
    for r in &to_openai {
        assert_eq!(r.header("authorization"), Some("Bearer sk-openai-test"), "{}", r.path);
    }
    // Guardrails: the denied card never left the gateway; the e-mail arrived redacted.
    for r in to_openai.iter().chain(&to_anthropic) {
        let body = r.body.to_string();
        assert!(!body.contains("4111 1111 1111 1111"), "a denied request reached an upstream: {body}");
        assert!(!body.contains("redact-me@example.com"), "an unredacted request reached an upstream: {body}");
    }
    assert!(to_openai.iter().any(|r| r.body.to_string().contains("write to [REDACTED:no-email] please")));
    // Cache: of three identical requests (two plain, one streaming) two reached the upstream.
    let cached = to_openai
        .iter()
        .filter(|r| r.body.pointer("/messages/0/content") == Some(&json!("cache me")))
        .count();
    assert_eq!(cached, 2, "the second plain request must be a cache hit");
}

// ------------------------------------------------------------------------------------------------
// The full mock, checked with Cairn's own parser and translators.
// ------------------------------------------------------------------------------------------------

type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new())
}

async fn post(url: &str, body: Value) -> (u16, http::HeaderMap, Bytes) {
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client().request(req)).await.unwrap().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.into_body().collect().await.unwrap().to_bytes())
}

fn events(body: &[u8]) -> Vec<SseEvent> {
    let mut p = SseParser::default();
    let mut out = p.push(body).unwrap();
    out.extend(p.finish().unwrap());
    out
}

#[tokio::test]
async fn full_mock_anthropic_stream_has_the_exact_event_sequence() {
    let m = MockLlm::start_full("a").await;
    let (status, headers, body) = post(
        &format!("{}/v1/messages", m.url),
        json!({"model": "claude", "max_tokens": 5, "stream": true, "messages": []}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let evs = events(&body);
    let names: Vec<&str> = evs.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    // Every event's data names its own type, as Anthropic's do.
    for e in &evs {
        let v: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(v["type"], json!(e.event.as_deref().unwrap()));
    }
    // Cairn's usage collector and translator read it.
    let mut usage = StreamUsage::new(StreamKind::Anthropic, "claude");
    let mut t = MessagesToChatStream::new("claude", 0, true);
    let mut text = String::new();
    for e in &evs {
        usage.observe(e.event.as_deref(), &serde_json::from_str(&e.data).unwrap());
        for out in t.on_event(e.event.as_deref(), &e.data) {
            if let Ok(v) = serde_json::from_str::<Value>(&out.data) {
                text.push_str(v.pointer("/choices/0/delta/content").and_then(Value::as_str).unwrap_or(""));
            }
        }
    }
    assert_eq!(text, "tok0 tok1 tok2 tok3 ");
    assert!(t.is_done());
    let want = Usage { input: PROMPT_TOKENS, cached_input: 0, output: COMPLETION_TOKENS, estimated: false };
    assert_eq!(usage.usage(0), want);
    assert_eq!(t.usage(), want);
}

#[tokio::test]
async fn full_mock_openai_tool_stream_translates_to_anthropic_tool_use() {
    let m = MockLlm::start_full("o").await;
    let req = json!({"model": "gpt", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}]});
    let (status, _, body) = post(&format!("{}/v1/chat/completions", m.url), req).await;
    assert_eq!(status, 200);
    let mut t = ChatToMessagesStream::new("gpt", 3);
    let mut args = String::new();
    let mut names = Vec::new();
    for e in events(&body) {
        for out in t.on_data(&e.data) {
            let v: Value = serde_json::from_str(&out.data).unwrap();
            if let Some(p) = v.pointer("/delta/partial_json").and_then(Value::as_str) {
                args.push_str(p);
            }
            if let Some(n) = v.pointer("/content_block/name").and_then(Value::as_str) {
                names.push(n.to_owned());
            }
            if v["type"] == "message_delta" {
                assert_eq!(v["delta"]["stop_reason"], json!("tool_use"));
                assert_eq!(v["usage"]["output_tokens"], json!(COMPLETION_TOKENS));
            }
        }
    }
    assert!(t.is_done());
    assert_eq!(names, ["get_weather"]);
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city": "mock", "days": 1}));
    assert_eq!(m.received()[0].body["tools"][0]["function"]["name"], json!("get_weather"));
}

#[tokio::test]
async fn full_mock_errors_in_each_api_format_and_other_endpoints() {
    let m = MockLlm::start_full("e").await;
    m.set(Behavior::Status(429));
    let (status, headers, body) = post(&format!("{}/v1/messages", m.url), json!({"model": "c"})).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "7");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], json!("error"));
    assert_eq!(v["error"]["type"], json!("rate_limit_error"));
    let (status, _, body) = post(&format!("{}/v1/chat/completions", m.url), json!({"model": "c"})).await;
    assert_eq!(status, 429);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["message"].is_string());

    m.set(Behavior::Ok);
    let (_, _, body) = post(
        &format!("{}/v1/embeddings", m.url),
        json!({"model": "e", "input": ["a", "b"], "encoding_format": "base64"}),
    )
    .await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert!(v["data"][0]["embedding"].is_string(), "base64 when asked");
    let (_, _, body) = post(&format!("{}/v1/responses", m.url), json!({"model": "r", "input": "hi"})).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["output"][0]["content"][0]["text"], json!("from e"));
    assert_eq!(v["usage"]["input_tokens"], json!(PROMPT_TOKENS));
    let (_, _, body) =
        post(&format!("{}/v1/responses", m.url), json!({"model": "r", "input": "hi", "stream": true})).await;
    let evs = events(&body);
    assert_eq!(evs.last().unwrap().event.as_deref(), Some("response.completed"));
    let mut u = StreamUsage::new(StreamKind::OpenAiResponses, "r");
    for e in &evs {
        u.observe(e.event.as_deref(), &serde_json::from_str(&e.data).unwrap());
    }
    assert_eq!(u.usage(0).output, COMPLETION_TOKENS);

    let req = http::Request::get(format!("{}/v1/models", m.url)).body(Full::new(Bytes::new())).unwrap();
    let resp = client().request(req).await.unwrap();
    let v: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["data"][0]["id"], json!("mock-1"));
}

#[tokio::test]
async fn full_mock_breaks_streams_and_paces_them() {
    let m = MockLlm::start_full("b").await;
    m.set(Behavior::BreakAfter(2));
    let (_, _, body) = post(&format!("{}/v1/messages", m.url), json!({"model": "c", "stream": true})).await;
    let evs = events(&body);
    assert_eq!(evs.len(), 3, "the stream ends after 3 events, without message_stop");
    let mut t = MessagesToChatStream::new("c", 0, false);
    for e in &evs {
        t.on_event(e.event.as_deref(), &e.data);
    }
    assert!(!t.is_done());

    m.set(Behavior::Ok);
    m.set_knobs(mock_llm::Knobs { chunks: 10, chunk_delay: Duration::from_millis(5), ..Default::default() });
    let (_, _, body) = post(
        &format!("{}/v1/chat/completions", m.url),
        json!({"model": "c", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    let evs = events(&body);
    // role chunk + 10 content chunks + finish chunk + [DONE]
    assert_eq!(evs.len(), 13);
    assert!(evs.last().unwrap().is_done());

    // Per-request overrides by header.
    let req = http::Request::post(format!("{}/v1/chat/completions", m.url))
        .header("x-mock-status", "503")
        .body(Full::new(Bytes::from(r#"{"model":"c","messages":[]}"#)))
        .unwrap();
    assert_eq!(client().request(req).await.unwrap().status().as_u16(), 503);
    let req = http::Request::post(format!("{}/v1/chat/completions", m.url))
        .header("x-mock-not-json", "1")
        .body(Full::new(Bytes::from(r#"{"model":"c","messages":[]}"#)))
        .unwrap();
    let body = client().request(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
    assert!(serde_json::from_slice::<Value>(&body).is_err());
}
