//! Telemetry across the three layers (docs/telemetry.md), on loopback with the real binary:
//!
//! - one trace: a client calls agent `planner` through the agent gateway; `planner` (a test agent
//!   that passes on `traceparent`, `tracestate` and `baggage`, as an OpenTelemetry-instrumented
//!   agent would) calls the AI gateway and the MCP gateway; the three gateways export to Jaeger
//!   (`cmd/jaeger` v1.75.0, built by tests/support/tools.sh; two over gRPC, one over HTTP), and the
//!   trace read back through Jaeger's query API has the expected parent/child links and
//!   attributes (the MCP fan-out of `initialize` and `tools/list` a client span per server); the
//!   access and audit lines carry the spans' ids;
//! - the operator: `cairn operator` on the test control plane exporting to Jaeger, its reconcile
//!   and compile spans found through Jaeger's search API, with their stages, outcomes and error
//!   categories;
//! - the OTLP endpoint down: requests are served and the drop counter counts (the latency figure
//!   is printed with `--nocapture` and kept in docs/telemetry.md, not asserted);
//! - cardinality: 10,000 distinct subjects with subject labels off leave the `/metrics` series
//!   count where 100 left it (and with labels on, it grows);
//! - the dashboard: every PromQL expression of charts/cairn/dashboards/cairn-overview.json is
//!   evaluated by a real Prometheus (Debian's package) scraping the gateways after a short load,
//!   and returns series.

#[path = "support/mcp_servers.rs"]
mod mcp_servers;
#[path = "support/operator.rs"]
mod operator;
mod support;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Proc, free_port};

type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build(hyper_util::client::legacy::connect::HttpConnector::new())
}

/// Sends one request; the status, headers and body text.
async fn send(
    c: &Client,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, HeaderMap, String) {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = c.request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.expect(url);
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status.as_u16(), parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

/// Jaeger with in-memory storage: OTLP on two loopback ports, its query API on a third.
struct Jaeger {
    _proc: Proc,
    _dir: tempfile::TempDir,
    query: String,
    grpc: String,
    http: String,
}

impl Jaeger {
    async fn start() -> Jaeger {
        let bin = support::tools::dir().join("bin").join("jaeger");
        assert!(bin.is_file(), "{} is missing: rebuild the tools (tests/support/tools.sh)", bin.display());
        let dir = tempfile::tempdir().unwrap();
        let (grpc, http, query, query_grpc) = (free_port(), free_port(), free_port(), free_port());
        let config = format!(
            r#"
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {{receivers: [otlp], processors: [], exporters: [jaeger_storage_exporter]}}
  telemetry: {{metrics: {{level: none}}, logs: {{level: warn}}}}
extensions:
  jaeger_query:
    storage: {{traces: mem}}
    http: {{endpoint: "127.0.0.1:{query}"}}
    grpc: {{endpoint: "127.0.0.1:{query_grpc}"}}
  jaeger_storage:
    backends: {{mem: {{memory: {{max_traces: 10000}}}}}}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}"}}
      http: {{endpoint: "127.0.0.1:{http}"}}
exporters:
  jaeger_storage_exporter: {{trace_storage: mem}}
"#
        );
        let path = dir.path().join("jaeger.yaml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("jaeger.log")).unwrap();
        let child = Command::new(bin)
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("jaeger starts");
        let j = Jaeger {
            _proc: Proc(child),
            _dir: dir,
            query: format!("http://127.0.0.1:{query}"),
            grpc: format!("http://127.0.0.1:{grpc}"),
            http: format!("http://127.0.0.1:{http}"),
        };
        let c = client();
        let url = format!("{}/api/v3/services", j.query);
        support::wait_until(Duration::from_secs(30), "Jaeger's query API", || async {
            let req = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
            match c.request(req).await {
                Ok(r) if r.status().is_success() => Some(()),
                _ => None,
            }
        })
        .await;
        j
    }

    /// The spans of a trace as Jaeger's API v3 returns them (OTLP JSON), each with its
    /// resource's `service.name` as `service`.
    async fn spans(&self, trace: &str) -> Vec<Value> {
        self.get(&format!("/api/v3/traces/{trace}")).await
    }

    /// The spans of the traces of `service` that started after `since`, as [`Jaeger::spans`].
    async fn find(&self, service: &str, since: std::time::SystemTime) -> Vec<Value> {
        let until = std::time::SystemTime::now() + Duration::from_secs(60);
        let (min, max) = (cairn::gateway::clock::rfc3339(since), cairn::gateway::clock::rfc3339(until));
        self.get(&format!(
            "/api/v3/traces?query.service_name={service}&query.start_time_min={min}&query.start_time_max={max}&query.num_traces=1000"
        ))
        .await
    }

    async fn get(&self, path: &str) -> Vec<Value> {
        let (status, _, body) = send(&client(), "GET", &format!("{}{path}", self.query), &[], "").await;
        if status != 200 {
            return Vec::new();
        }
        let v: Value = serde_json::from_str(&body).unwrap();
        let mut out = Vec::new();
        for rs in v["result"]["resourceSpans"].as_array().into_iter().flatten() {
            let service = attr(&rs["resource"], "service.name");
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    let mut s = s.clone();
                    s["service"] = service.clone();
                    out.push(s);
                }
            }
        }
        out
    }
}

/// An attribute of an OTLP JSON span or resource, as a JSON value (`null` when absent).
fn attr(span: &Value, key: &str) -> Value {
    for a in span["attributes"].as_array().into_iter().flatten() {
        if a["key"] == key {
            let v = &a["value"];
            for k in ["stringValue", "intValue", "doubleValue", "boolValue"] {
                if !v[k].is_null() {
                    return v[k].clone();
                }
            }
        }
    }
    Value::Null
}

/// `cairn run` on a folder of manifests; stdout (access and audit lines) kept in a file.
struct Cairn {
    _proc: Proc,
    admin: String,
    out: PathBuf,
}

impl Cairn {
    async fn run(manifests: &Path) -> Cairn {
        let admin = free_port();
        let out = manifests.join("stdout.jsonl");
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["run", "-f"])
            .arg(manifests.join("manifests"))
            .args(["--admin-port", &admin.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(manifests.join("stderr.log")).unwrap())
            .spawn()
            .expect("cairn run starts");
        let c = Cairn { _proc: Proc(child), admin: format!("http://127.0.0.1:{admin}"), out };
        let url = format!("{}/readyz", c.admin);
        let http = client();
        support::wait_until(Duration::from_secs(30), "cairn run ready", || async {
            let req = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
            match http.request(req).await {
                Ok(r) if r.status().is_success() => Some(()),
                _ => None,
            }
        })
        .await;
        c
    }

    async fn metrics(&self) -> String {
        send(&client(), "GET", &format!("{}/metrics", self.admin), &[], "").await.2
    }

    /// The JSON lines written so far.
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

const CLIENT_KEY: &str = "cairn-vk-client-0123456789";
const PLANNER_KEY: &str = "cairn-vk-planner-0123456789";

/// Where the three gateways export and how they label metrics.
struct Telemetry {
    agents: String,
    llm: String,
    tools: String,
}

/// The manifests of the workflow: three gateways, an Echo backend, the MCP server `kb`, the
/// agents `client` (team support) and `planner` (team research, served at `planner_url`), and
/// their policies.
fn workflow_manifests(dir: &Path, ports: (u16, u16, u16), mcp_url: &str, planner_url: &str, t: &Telemetry) {
    let (agents, llm, tools) = ports;
    let m = format!(
        r#"apiVersion: cairn.dev/v1alpha1
kind: AgentGateway
metadata: {{name: agents}}
spec:
  listener: {{port: {agents}}}
  defaultAction: Deny
  telemetry: {{{t_agents}, subjectLabels: true}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {{name: llm}}
spec:
  listener: {{port: {llm}}}
  defaultAction: Deny
  telemetry: {{{t_llm}, subjectLabels: true}}
---
apiVersion: cairn.dev/v1alpha1
kind: MCPGateway
metadata: {{name: tools}}
spec:
  listener: {{port: {tools}}}
  defaultAction: Deny
  telemetry: {{{t_tools}, subjectLabels: true}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {{name: echo}}
spec:
  provider: Echo
  models:
    - name: echo-1
      price: {{inputPerMillion: 2.5, outputPerMillion: 10}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {{name: chat}}
spec:
  gatewayRefs: [{{name: llm}}]
  rules:
    - matches: [{{model: gpt-4o-mini}}]
      backends: [{{backendRef: {{name: echo}}, model: echo-1}}]
---
apiVersion: cairn.dev/v1alpha1
kind: MCPServer
metadata: {{name: kb}}
spec:
  gatewayRefs: [{{name: tools}}]
  url: {mcp_url}
---
apiVersion: v1
kind: Secret
metadata: {{name: client-key}}
stringData: {{key: {CLIENT_KEY}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: planner-key}}
stringData: {{key: {PLANNER_KEY}}}
---
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {{name: client, labels: {{team: support}}}}
spec:
  identity:
    virtualKeys: [{{secretRef: {{name: client-key, key: key}}}}]
---
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {{name: planner, labels: {{team: research}}}}
spec:
  identity:
    virtualKeys: [{{secretRef: {{name: planner-key, key: key}}}}]
  a2a: {{url: "{planner_url}", gatewayRefs: [{{name: agents}}]}}
---
apiVersion: cairn.dev/v1alpha1
kind: AgentPolicy
metadata: {{name: callers}}
spec:
  subjects: {{agents: [client]}}
  agents: [{{name: planner}}]
---
apiVersion: cairn.dev/v1alpha1
kind: AgentPolicy
metadata: {{name: planning}}
spec:
  subjects: {{agents: [planner]}}
  models: [{{match: "gpt-4o*"}}]
  tools: [{{server: kb, tools: [echo, fail]}}]
"#,
        t_agents = t.agents,
        t_llm = t.llm,
        t_tools = t.tools,
    );
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(dir.join("manifests").join("workflow.yaml"), m).unwrap();
}

/// What the planner saw of the calls it received.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<HeaderMap>>>);

/// The test agent `planner`: for each A2A `SendMessage` it asks the AI gateway for a completion
/// and the MCP gateway for a tool call (`kb__echo`, or the tool the message's text names), as
/// itself, passing on the trace context it received; then answers with a completed task.
async fn planner(ai: String, mcp: String, seen: Seen) -> String {
    use axum::extract::State;
    type St = (String, String, Seen);
    async fn call(State((ai, mcp, seen)): State<St>, headers: HeaderMap, body: String) -> axum::Json<Value> {
        seen.0.lock().unwrap().push(headers.clone());
        let rpc: Value = serde_json::from_str(&body).unwrap_or_default();
        let text = rpc["params"]["message"]["parts"][0]["text"].as_str().unwrap_or("plan").to_string();
        let mut h: Vec<(&str, String)> = vec![("authorization", format!("Bearer {PLANNER_KEY}"))];
        for name in ["traceparent", "tracestate", "baggage"] {
            if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                h.push((name, v.to_string()));
            }
        }
        let hs = |extra: &[(&'static str, String)]| -> Vec<(String, String)> {
            h.iter().chain(extra).map(|(k, v)| (k.to_string(), v.clone())).collect()
        };
        let c = client();
        let post = |url: String, headers: Vec<(String, String)>, body: String| {
            let c = c.clone();
            async move {
                let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                send(&c, "POST", &url, &refs, &body).await
            }
        };
        let json_ct = ("content-type", "application/json".to_string());
        let (s, _, _) = post(
            format!("{ai}/v1/chat/completions"),
            hs(std::slice::from_ref(&json_ct)),
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}).to_string(),
        )
        .await;
        assert_eq!(s, 200, "the AI gateway answers the planner");
        let accept = ("accept", "application/json, text/event-stream".to_string());
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "planner", "version": "1"}}});
        let (s, rh, _) =
            post(format!("{mcp}/mcp"), hs(&[json_ct.clone(), accept.clone()]), init.to_string()).await;
        assert_eq!(s, 200, "the MCP gateway initializes");
        let session = rh["mcp-session-id"].to_str().unwrap().to_string();
        let in_session = [
            json_ct.clone(),
            accept.clone(),
            ("mcp-session-id", session),
            ("mcp-protocol-version", "2025-06-18".to_string()),
        ];
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        post(format!("{mcp}/mcp"), hs(&in_session), note.to_string()).await;
        let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
        let (s, _, _) = post(format!("{mcp}/mcp"), hs(&in_session), list.to_string()).await;
        assert_eq!(s, 200, "the MCP gateway lists its tools");
        let tool = if text.starts_with("fail") { "kb__fail" } else { "kb__echo" };
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": tool, "arguments": {"text": text}}});
        let (s, _, _) = post(format!("{mcp}/mcp"), hs(&in_session), call.to_string()).await;
        assert_eq!(s, 200, "the MCP gateway answers the tool call");
        axum::Json(json!({"jsonrpc": "2.0", "id": rpc["id"], "result": {"task": {
            "id": "task-7", "contextId": "ctx-7",
            "status": {"state": "TASK_STATE_COMPLETED"},
            "artifacts": [{"artifactId": "a1", "parts": [{"text": "planned"}]}]}}}))
    }
    let app = axum::Router::new().route("/", axum::routing::post(call)).with_state((ai, mcp, seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

/// Everything the workflow needs, running.
struct Workflow {
    cairn: Cairn,
    agents: String,
    llm: String,
    seen: Seen,
    _mcp: mcp_servers::Running,
    _dir: tempfile::TempDir,
}

async fn workflow(t: Telemetry) -> Workflow {
    let dir = tempfile::tempdir().unwrap();
    let ports = (free_port(), free_port(), free_port());
    let mcp = mcp_servers::serve(mcp_servers::ToolsServer::default).await;
    let seen = Seen::default();
    let planner_url = planner(
        format!("http://127.0.0.1:{}", ports.1),
        format!("http://127.0.0.1:{}", ports.2),
        seen.clone(),
    )
    .await;
    workflow_manifests(dir.path(), ports, &mcp.url, &planner_url, &t);
    let cairn = Cairn::run(dir.path()).await;
    Workflow {
        cairn,
        agents: format!("http://127.0.0.1:{}", ports.0),
        llm: format!("http://127.0.0.1:{}", ports.1),
        seen,
        _mcp: mcp,
        _dir: dir,
    }
}

impl Workflow {
    /// The client asks `planner` (through the agent gateway) to work on `text`; the JSON-RPC answer.
    async fn ask(&self, key: &str, text: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {
            "messageId": "m1", "role": "ROLE_USER", "contextId": "ctx-7", "parts": [{"text": text}]}}});
        let auth = format!("Bearer {key}");
        let mut h = vec![
            ("authorization", auth.as_str()),
            ("a2a-version", "1.0"),
            ("content-type", "application/json"),
        ];
        h.extend_from_slice(headers);
        let (s, _, b) =
            send(&client(), "POST", &format!("{}/agents/planner", self.agents), &h, &body.to_string()).await;
        (s, serde_json::from_str(&b).unwrap_or(Value::Null))
    }
}

fn endpoint(url: &str) -> String {
    format!("otlpEndpoint: \"{url}\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trace_across_the_three_layers_in_jaeger() {
    let jaeger = Jaeger::start().await;
    let wf = workflow(Telemetry {
        agents: endpoint(&jaeger.grpc),
        llm: format!("{}, otlpProtocol: HttpProtobuf", endpoint(&jaeger.http)),
        tools: endpoint(&jaeger.grpc),
    })
    .await;
    let (status, answer) = wf.ask(CLIENT_KEY, "plan the launch", &[("baggage", "tenant=acme")]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED", "{answer}");

    // The trace the agent gateway started, by its audit line.
    let a2a = wf.cairn.lines().into_iter().find(|l| l["kind"] == "a2a.call").expect("an a2a.call line");
    let trace = a2a["trace_id"].as_str().expect("the audit line carries trace_id").to_string();
    assert_eq!(trace.len(), 32);
    // The planner received the trace context and the caller's baggage.
    let got = wf.seen.0.lock().unwrap()[0].clone();
    let tp = got["traceparent"].to_str().unwrap();
    assert!(tp.starts_with(&format!("00-{trace}-")) && tp.ends_with("-01"), "{tp}");
    assert_eq!(got["baggage"].to_str().unwrap(), "tenant=acme");

    let wanted = [
        "SendMessage planner",
        "chat gpt-4o-mini",
        "chat echo-1",
        "tools/call kb__echo",
        "tools/call echo",
        "initialize",
        "initialize kb",
        "tools/list",
        "tools/list kb",
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans = jaeger.spans(&trace).await;
        if wanted.iter().all(|w| spans.iter().any(|s| s["name"] == *w)) {
            break spans;
        }
        if Instant::now() > deadline {
            let names: Vec<String> =
                spans.iter().map(|s| format!("{} ({})", s["name"], s["service"])).collect();
            panic!("the trace's spans in Jaeger are {names:?}, want {wanted:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let by = |name: &str, kind: u64| -> Value {
        spans
            .iter()
            .find(|s| s["name"] == name && s["kind"] == kind)
            .unwrap_or_else(|| panic!("no span {name} of kind {kind} in {spans:#?}"))
            .clone()
    };
    const SERVER: u64 = 2;
    const CLIENT: u64 = 3;
    let agent = by("SendMessage planner", SERVER);
    let agent_up = by("SendMessage planner", CLIENT);
    let ai = by("chat gpt-4o-mini", SERVER);
    let ai_up = by("chat echo-1", CLIENT);
    let tool = by("tools/call kb__echo", SERVER);
    let tool_up = by("tools/call echo", CLIENT);
    let init = by("initialize", SERVER);
    let init_up = by("initialize kb", CLIENT);
    let list = by("tools/list", SERVER);
    let list_up = by("tools/list kb", CLIENT);

    // The links: client → agent gateway → planner → AI and MCP gateways → upstreams.
    let parent = |s: &Value| s["parentSpanId"].as_str().unwrap_or_default().to_string();
    let id = |s: &Value| s["spanId"].as_str().unwrap().to_string();
    assert_eq!(parent(&agent), "", "the agent gateway started the trace");
    assert_eq!(parent(&agent_up), id(&agent));
    for s in [&ai, &tool, &init, &list] {
        assert_eq!(parent(s), id(&agent_up), "{} is a child of the A2A call's upstream span", s["name"]);
    }
    assert_eq!(parent(&ai_up), id(&ai), "the LLM attempt is a child of the AI request");
    assert_eq!(parent(&tool_up), id(&tool), "the tool's upstream call is a child of the tool call");
    // A fanned-out call: one client span per MCP server.
    assert_eq!(parent(&init_up), id(&init), "the server's initialize is a child of the client's");
    assert_eq!(parent(&list_up), id(&list), "the server's tools/list is a child of the client's");
    assert!(spans.iter().all(|s| s["traceId"] == trace.as_str()));
    // Each gateway reports as its own service.
    assert_eq!(agent["service"], "agents-agent-gateway");
    assert_eq!(ai["service"], "llm-ai-gateway");
    assert_eq!(tool["service"], "tools-mcp-gateway");

    // A2A attributes.
    assert_eq!(attr(&agent, "a2a.method"), "SendMessage");
    assert_eq!(attr(&agent, "a2a.agent"), "planner");
    assert_eq!(attr(&agent, "a2a.task.id"), "task-7");
    assert_eq!(attr(&agent, "a2a.context.id"), "ctx-7");
    assert_eq!(attr(&agent, "gen_ai.operation.name"), "invoke_agent");
    // GenAI attributes.
    assert_eq!(attr(&ai, "gen_ai.operation.name"), "chat");
    assert_eq!(attr(&ai, "gen_ai.request.model"), "gpt-4o-mini");
    assert_eq!(attr(&ai, "gen_ai.response.model"), "echo-1");
    assert_eq!(attr(&ai, "gen_ai.provider.name"), "cairn.echo");
    let tokens = |k: &str| attr(&ai, k).as_str().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    assert!(tokens("gen_ai.usage.input_tokens") > 0 && tokens("gen_ai.usage.output_tokens") > 0);
    assert!(attr(&ai, "cairn.cost_usd").as_f64().unwrap() > 0.0);
    assert_eq!(attr(&ai_up, "gen_ai.request.model"), "echo-1");
    assert_eq!(attr(&ai_up, "cairn.attempt.result"), "ok");
    // MCP attributes.
    assert_eq!(attr(&tool, "mcp.method.name"), "tools/call");
    assert_eq!(attr(&tool, "gen_ai.tool.name"), "echo");
    assert_eq!(attr(&tool, "cairn.mcp.server"), "kb");
    assert!(attr(&tool, "mcp.session.id").as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(attr(&init, "mcp.method.name"), "initialize");
    for (s, method) in [(&init_up, "initialize"), (&list_up, "tools/list")] {
        assert_eq!((attr(s, "mcp.method.name"), attr(s, "cairn.mcp.server")), (json!(method), json!("kb")));
    }
    // Subject and policy decision on every span that was admitted.
    for (s, who) in [
        (&agent, "client"),
        (&agent_up, "client"),
        (&ai, "planner"),
        (&ai_up, "planner"),
        (&tool, "planner"),
        (&tool_up, "planner"),
    ] {
        assert_eq!(attr(s, "cairn.subject"), who, "{}", s["name"]);
        assert_eq!(attr(s, "cairn.policy.decision"), "allow", "{}", s["name"]);
    }

    // The logs join the trace: each line names its request's span.
    let lines = wf.cairn.lines();
    let line = |pred: &dyn Fn(&Value) -> bool| lines.iter().find(|l| pred(l)).cloned().expect("a line");
    let ai_line = line(&|l| l["op"] == "chat");
    assert_eq!(
        (ai_line["trace_id"].as_str(), ai_line["span_id"].as_str()),
        (Some(trace.as_str()), ai["spanId"].as_str())
    );
    let tool_line = line(&|l| l["kind"] == "mcp.tool_call");
    assert_eq!(
        (tool_line["trace_id"].as_str(), tool_line["span_id"].as_str()),
        (Some(trace.as_str()), tool["spanId"].as_str())
    );
    assert_eq!(a2a["span_id"].as_str(), agent["spanId"].as_str());
    let m = wf.cairn.metrics().await;
    for g in ["default/agents", "default/llm", "default/tools"] {
        assert!(m.contains(&format!("cairn_trace_spans_exported_total{{gateway=\"{g}\"}}")), "{g}: {m}");
    }
}

/// The sum of the series of `metric` whose labels contain `labels`.
fn value(metrics: &str, metric: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(metric) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_otlp_endpoint_down_requests_are_served_and_drops_counted() {
    // Nothing listens on the endpoint's port.
    let down = format!("http://127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let (traced, plain) = (free_port(), free_port());
    let gateway = |name: &str, port: u16, telemetry: &str| {
        format!(
            "apiVersion: cairn.dev/v1alpha1\nkind: AIGateway\nmetadata: {{name: {name}}}\nspec:\n  listener: {{port: {port}}}\n  defaultAction: Allow\n  auth: {{allowAnonymous: true}}\n  telemetry: {{accessLog: false{telemetry}}}\n---\napiVersion: cairn.dev/v1alpha1\nkind: AIRoute\nmetadata: {{name: {name}}}\nspec:\n  gatewayRefs: [{{name: {name}}}]\n  rules: [{{matches: [{{model: m}}], backends: [{{backendRef: {{name: echo}}}}]}}]\n---\n"
        )
    };
    let m = format!(
        "{}{}apiVersion: cairn.dev/v1alpha1\nkind: AIBackend\nmetadata: {{name: echo}}\nspec: {{provider: Echo}}\n",
        gateway("traced", traced, &format!(", otlpEndpoint: \"{down}\"")),
        gateway("plain", plain, ""),
    );
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(dir.path().join("manifests/gateways.yaml"), m).unwrap();
    let cairn = Cairn::run(dir.path()).await;
    let c = client();
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let ct = [("content-type", "application/json")];
    let run = |port: u16| {
        let c = c.clone();
        async move {
            let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
            let mut took = Vec::new();
            for _ in 0..300 {
                let t = Instant::now();
                let (s, _, b) = send(&c, "POST", &url, &ct, body).await;
                took.push(t.elapsed());
                assert_eq!(s, 200, "{b}");
            }
            took
        }
    };
    // Warm both (the Echo backend's tokenizer loads on first use), then measure in turns.
    run(traced).await;
    run(plain).await;
    let (with, without) = (run(traced).await, run(plain).await);
    eprintln!(
        "OTLP endpoint down: p50 {:?} p99 {:?}; no tracing: p50 {:?} p99 {:?} (300 sequential chat completions each)",
        percentile(with.clone(), 0.5),
        percentile(with, 0.99),
        percentile(without.clone(), 0.5),
        percentile(without, 0.99),
    );
    let dropped = support::wait_until(Duration::from_secs(30), "dropped spans counted", || async {
        let m = cairn.metrics().await;
        let n = value(&m, "cairn_trace_spans_dropped_total{", "gateway=\"default/traced\"");
        (n >= 900.0).then_some(n)
    })
    .await;
    let m = cairn.metrics().await;
    assert_eq!(value(&m, "cairn_trace_spans_exported_total{", "gateway=\"default/traced\""), 0.0);
    assert_eq!(value(&m, "cairn_trace_spans_dropped_total{", "gateway=\"default/plain\""), 0.0, "{m}");
    eprintln!("spans dropped: {dropped}");
}

/// The number of series lines of a `/metrics` page.
fn series(metrics: &str) -> usize {
    metrics.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).count()
}

const SALT: &str = "0123456789abcdef0123456789abcdef";

/// `cairn gateway --layer ai` on a compiled config (as the operator writes it) with `n` Agents,
/// one virtual key each (`cairn-vk-subject-<i>`), all allowed the Echo route; subject labels as
/// `labels`. The admin URL, and the process.
async fn many_subjects(dir: &Path, port: u16, n: usize, labels: bool) -> (String, Proc) {
    let subjects: Vec<Value> = (0..n)
        .map(|i| {
            let hash = cairn::config::hash_virtual_key(SALT, &format!("cairn-vk-subject-{i:06}"));
            json!({"name": format!("a{i}"), "identities": [{"type": "virtualKey", "hash": hash}]})
        })
        .collect();
    let config = json!({
        "version": 1,
        "gateway": {"namespace": "t", "name": "llm", "layer": "ai"},
        "listener": {"port": port, "maxRequestBytes": 4096},
        "auth": {"allowAnonymous": false, "virtualKeySalt": SALT},
        "telemetry": {"accessLog": false, "subjectLabels": labels},
        "policy": {"defaultAction": "allow", "subjects": subjects},
        "ai": {
            "backends": [{"name": "echo", "provider": "echo", "url": "", "connectTimeoutMs": 5000,
                "models": [{"name": "echo-1", "kind": "chat", "price": {"inputPerMillion": 1.0, "cachedInputPerMillion": 1.0, "outputPerMillion": 1.0}}]}],
            "rules": [{"route": "chat", "name": "r", "matches": [{"model": "m"}],
                "targets": [{"backend": "echo", "model": "echo-1", "weight": 1, "priority": 0}],
                "fallbackOn": [], "timeouts": {}, "ejection": {"consecutiveFailures": 0, "cooldownMs": 60000}}]
        }
    });
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    std::fs::write(dir.join("credentials.json"), "{}").unwrap();
    let admin = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["gateway", "--layer", "ai", "--address", "127.0.0.1", "--admin-port", &admin.to_string()])
        .arg("--config")
        .arg(&path)
        .arg("--credentials")
        .arg(dir.join("credentials.json"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .expect("cairn gateway starts");
    let proc = Proc(child);
    let admin = format!("http://127.0.0.1:{admin}");
    let http = client();
    let url = format!("{admin}/readyz");
    support::wait_until(Duration::from_secs(60), "cairn gateway ready", || async {
        let req = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
        match http.request(req).await {
            Ok(r) if r.status().is_success() => Some(()),
            _ => None,
        }
    })
    .await;
    (admin, proc)
}

async fn metrics_of(admin: &str) -> String {
    send(&client(), "GET", &format!("{admin}/metrics"), &[], "").await.2
}

/// Calls the gateway once as each subject in `range`, 32 at a time.
async fn call_as(port: u16, range: std::ops::Range<usize>) {
    use futures_util::StreamExt;
    let c = client();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    futures_util::stream::iter(range)
        .map(|i| {
            let (c, url) = (c.clone(), url.clone());
            async move {
                let auth = format!("Bearer cairn-vk-subject-{i:06}");
                let h = [("authorization", auth.as_str()), ("content-type", "application/json")];
                let (s, _, b) =
                    send(&c, "POST", &url, &h, r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#)
                        .await;
                assert_eq!(s, 200, "subject a{i}: {b}");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_subjects_leave_the_series_count_flat_without_subject_labels() {
    const N: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (admin, gateway) = many_subjects(dir.path(), port, N, false).await;
    call_as(port, 0..100).await;
    let after_100 = series(&metrics_of(&admin).await);
    call_as(port, 100..N).await;
    let m = metrics_of(&admin).await;
    assert_eq!(series(&m), after_100, "the series count grew with the subjects");
    assert_eq!(value(&m, "cairn_ai_requests_total{", "outcome=\"ok\""), N as f64, "{m}");
    eprintln!("series with {N} subjects and subject labels off: {after_100}");
    drop(gateway);

    // The same gateway labelling by subject: the count grows with every subject.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (admin, _gateway) = many_subjects(dir.path(), port, 200, true).await;
    call_as(port, 0..100).await;
    let labelled_100 = series(&metrics_of(&admin).await);
    call_as(port, 100..200).await;
    let labelled_200 = series(&metrics_of(&admin).await);
    assert!(
        labelled_200 > labelled_100 && labelled_100 > after_100,
        "{after_100} {labelled_100} {labelled_200}"
    );
}

/// Prometheus (Debian's `prometheus`) scraping `targets` every second.
struct Prometheus {
    _proc: Proc,
    _dir: tempfile::TempDir,
    url: String,
}

impl Prometheus {
    async fn start(targets: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let targets: Vec<String> =
            targets.iter().map(|t| format!("\"{}\"", t.trim_start_matches("http://"))).collect();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: cairn\n    static_configs: [{{targets: [{}]}}]\n",
            targets.join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts (Debian package `prometheus`: tests/support/platform.sh deps)");
        let p = Prometheus { _proc: Proc(child), _dir: dir, url: format!("http://127.0.0.1:{port}") };
        let url = format!("{}/-/ready", p.url);
        let c = client();
        support::wait_until(Duration::from_secs(30), "Prometheus ready", || async {
            let req = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
            match c.request(req).await {
                Ok(r) if r.status().is_success() => Some(()),
                _ => None,
            }
        })
        .await;
        p
    }

    /// The result of an instant query.
    async fn query(&self, expr: &str) -> Value {
        let q: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let (s, _, b) =
            send(&client(), "GET", &format!("{}/api/v1/query?query={q}", self.url), &[], "").await;
        let v: Value = serde_json::from_str(&b).unwrap_or(Value::Null);
        assert_eq!(s, 200, "{expr}: {b}");
        v["data"]["result"].clone()
    }
}

/// Every PromQL expression of the dashboard, by panel title, with Grafana's variables replaced
/// as Grafana would for "all gateways" and a one-minute rate window.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = support::repo_root().join("charts/cairn/dashboards/cairn-overview.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr =
                t["expr"].as_str().unwrap().replace("$__rate_interval", "1m").replace("$gateway", ".*");
            out.push((p["title"].as_str().unwrap().to_string(), expr));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_dashboard_query_returns_series_from_a_real_prometheus() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "{queries:?}");
    // The gateways export to an endpoint that is down, so that drops are counted too.
    let down = endpoint(&format!("http://127.0.0.1:{}", free_port()));
    let wf = workflow(Telemetry { agents: down.clone(), llm: down.clone(), tools: down }).await;
    let prometheus = Prometheus::start(&[&wf.cairn.admin]).await;
    // A short load: workflows, failing tool calls, denied callers of each layer.
    for i in 0..10 {
        let text = if i % 3 == 0 { "fail this one" } else { "plan" };
        let (s, v) = wf.ask(CLIENT_KEY, text, &[]).await;
        assert_eq!(s, 200, "{v}");
        // The planner may not call itself: denied by the agent gateway's policy.
        let (_, v) = wf.ask(PLANNER_KEY, "plan", &[]).await;
        assert!(v["error"].is_object(), "{v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Callers without a key, refused by the AI gateway.
    for _ in 0..3 {
        let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}"#;
        let url = format!("{}/v1/chat/completions", wf.llm);
        let (s, _, _) = send(&client(), "POST", &url, &[("content-type", "application/json")], body).await;
        assert_eq!(s, 401);
    }
    // Let Prometheus scrape the load a few times.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut empty = Vec::new();
    for (title, expr) in &queries {
        let r = prometheus.query(expr).await;
        if r.as_array().is_none_or(|a| a.is_empty()) {
            empty.push(format!("{title}: {expr}"));
        }
    }
    assert!(empty.is_empty(), "queries that returned no series:\n{}", empty.join("\n"));
    eprintln!("{} dashboard queries evaluated, each returned series", queries.len());
}

/// The manifests of the operator's test: a gateway that is programmed, and one whose Redis
/// password Secret is missing (it does not compile).
const OPERATOR_MANIFESTS: &str = r#"
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {name: llm}
spec: {listener: {port: 8080}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {name: broken}
spec:
  listener: {port: 8080}
  store: {redis: {url: "redis://redis:6379", passwordSecretRef: {name: missing, key: password}}}
"#;

/// `cairn operator` on namespace `ns` with this kubeconfig, its spans sent to Jaeger over OTLP/HTTP
/// as the standard variables say (the base URL: the operator appends `/v1/traces`).
fn traced_operator(kubeconfig: &Path, ns: &str, identity: &str, jaeger: &Jaeger) -> operator::Operator {
    let http = free_port();
    let args: Vec<String> = [
        "operator",
        "--address=127.0.0.1",
        &format!("--admin-port={http}"),
        &format!("--identity={identity}"),
        "--gateway-image=registry.example.com/cairn:test",
        "--leader-elect=false",
        &format!("--namespace={ns}"),
    ]
    .map(String::from)
    .to_vec();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("{}/", jaeger.http)),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
        ("RUST_LOG", "info".into()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    operator::Operator::spawn(kubeconfig, &args, &env, identity, http)
}

/// The reconcile spans of `kind/name` in `ns` among `spans`.
fn reconciles<'a>(spans: &'a [Value], ns: &str, kind: &str, name: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| {
            s["name"] == format!("reconcile {kind}")
                && attr(s, "k8s.namespace.name") == ns
                && attr(s, "cairn.kind") == kind
                && attr(s, "cairn.name") == name
        })
        .collect()
}

/// The names of the children of `parent`, in the order they started.
fn children(spans: &[Value], parent: &Value) -> Vec<String> {
    let mut c: Vec<&Value> = spans.iter().filter(|s| s["parentSpanId"] == parent["spanId"]).collect();
    c.sort_by_key(|s| s["startTimeUnixNano"].as_str().and_then(|t| t.parse::<u128>().ok()));
    c.iter().map(|s| s["name"].as_str().unwrap_or_default().to_string()).collect()
}

/// `cairn operator` given an OTLP endpoint (the standard variables) exports its reconciles: read
/// back through Jaeger's query API, each reconcile of a gateway is a span `reconcile AIGateway`
/// naming the object, with its outcome, its `Programmed` state and its stages `render`, `apply`
/// and `status` as children in that order; a gateway that does not compile has only `status`;
/// each compile of the namespace is a `compile` span with what it produced; and an operator
/// whose writes the API server forbids (a ServiceAccount that may only read) exports reconciles
/// ending in `error` with the error's category (`apply_forbidden`, as its metric counts it) and
/// the server's message as the span's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operators_reconciles_are_read_back_from_jaeger() {
    let jaeger = Jaeger::start().await;
    let p = support::platform().await;
    p.install_crds().await;
    let since = std::time::SystemTime::now() - Duration::from_secs(60);

    // An operator that may write: gateways programmed.
    let ns = p.fresh_namespace("traces-op").await;
    operator::apply_yaml(&p, &ns, OPERATOR_MANIFESTS).await;
    let mut op = traced_operator(&p.kubeconfig, &ns, "traces-op", &jaeger);
    op.wait_ready().await;
    operator::wait_condition(&p, &ns, "AIGateway", "llm", "Programmed", "True").await;
    operator::wait_condition(&p, &ns, "AIGateway", "broken", "Programmed", "False").await;

    // An operator that may only read: its writes are forbidden.
    let ro = p.fresh_namespace("traces-ro").await;
    operator::apply_yaml(
        &p,
        &ro,
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: reader}]
"#,
    )
    .await;
    operator::apply_yaml(&p, &ro, OPERATOR_MANIFESTS).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = p.service_account_kubeconfig(&ro, "reader", dir.path());
    let mut reader = traced_operator(&kubeconfig, &ro, "traces-ro", &jaeger);
    reader.wait_ready().await;

    let spans = support::wait_until(Duration::from_secs(60), "the operators' spans in Jaeger", || async {
        let spans = jaeger.find("cairn-operator", since).await;
        let programmed = reconciles(&spans, &ns, "AIGateway", "llm")
            .into_iter()
            .any(|r| attr(r, "cairn.programmed") == "True" && children(&spans, r).len() == 3);
        let broken = !reconciles(&spans, &ns, "AIGateway", "broken").is_empty();
        let forbidden = reconciles(&spans, &ro, "AIGateway", "llm")
            .into_iter()
            .any(|r| attr(r, "cairn.outcome") == "error");
        let compiled = spans.iter().any(|s| s["name"] == "compile" && attr(s, "k8s.namespace.name") == ns);
        (programmed && broken && forbidden && compiled).then_some(spans)
    })
    .await;
    assert!(op.stop() && reader.stop(), "the operators stop cleanly");

    for s in &spans {
        assert_eq!(s["service"], "cairn-operator", "{s}");
    }
    // A programmed gateway: render, apply and status under its reconcile.
    let r = reconciles(&spans, &ns, "AIGateway", "llm")
        .into_iter()
        .find(|r| attr(r, "cairn.programmed") == "True" && children(&spans, r).len() == 3)
        .unwrap();
    assert_eq!(children(&spans, r), ["render", "apply", "status"], "{r}");
    assert_eq!(attr(r, "cairn.outcome"), "ok", "{r}");
    assert!(r["parentSpanId"].as_str().unwrap_or_default().is_empty(), "a reconcile starts its trace: {r}");
    for c in spans.iter().filter(|s| s["parentSpanId"] == r["spanId"]) {
        assert_eq!(c["traceId"], r["traceId"], "{c}");
    }
    // What the operator logs inside a reconcile is an event of its span: the first reconcile
    // generated the gateway's keys.
    let events = |s: &Value| -> Vec<Value> { s["events"].as_array().cloned().unwrap_or_default() };
    assert!(
        reconciles(&spans, &ns, "AIGateway", "llm")
            .iter()
            .any(|r| events(r).iter().any(|e| e["name"] == "generated the gateway's keys")),
        "no reconcile of llm has the event: {:?}",
        reconciles(&spans, &ns, "AIGateway", "llm")
    );
    // One that does not compile: nothing rendered, its status written.
    for r in reconciles(&spans, &ns, "AIGateway", "broken") {
        assert_eq!(attr(r, "cairn.programmed"), "NotCompiled", "{r}");
        assert_eq!(attr(r, "cairn.outcome"), "ok", "{r}");
        assert_eq!(children(&spans, r), ["status"], "{r}");
    }
    // The compile of the namespace.
    let c = spans
        .iter()
        .find(|s| {
            s["name"] == "compile" && attr(s, "k8s.namespace.name") == ns && attr(s, "cairn.objects") == "2"
        })
        .unwrap_or_else(|| panic!("no compile span of {ns} with 2 objects"));
    assert_eq!((attr(c, "cairn.gateways"), attr(c, "cairn.outcome")), (json!("1"), json!("ok")), "{c}");
    assert!(attr(c, "cairn.diagnostics").as_str().is_some_and(|d| d != "0"), "{c}");
    // A reconcile whose apply is forbidden: the error's category and the server's message.
    let f = reconciles(&spans, &ro, "AIGateway", "llm")
        .into_iter()
        .find(|r| attr(r, "cairn.outcome") == "error")
        .unwrap();
    assert_eq!(attr(f, "error.type"), "apply_forbidden", "{f}");
    assert_eq!(f["status"]["code"], 2, "an error status: {f}");
    assert!(f["status"]["message"].as_str().is_some_and(|m| m.contains("forbidden")), "{f}");
    assert_eq!(children(&spans, f), ["render", "apply"], "the apply failed, no status: {f}");
}
