//! Configs replaced a hundred times while a steady load runs on the three layers, and not one
//! request fails (issue #16): swapped in one process through the supervisor every source feeds,
//! as a user does it, `cairn run -f` following its manifests edited on disk, and in cluster mode,
//! `cairn gateway` following its ConfigMap rewritten through the API as the operator writes it
//! (the AI layer: one process serves one layer). In the last two each version is waited for
//! until the admin endpoint's `/config` names its hash, so a hundred configs are really served,
//! not a hundred writes of which the watcher saw a few; the last is the one in service.
//!
//! No test asserts on elapsed time; timeouts only end waits.

#[path = "support/a2a_agents.rs"]
mod a2a_agents;
#[path = "support/clients.rs"]
mod clients;
#[path = "support/cluster_gateway.rs"]
mod cluster_gateway;
#[path = "support/mcp_servers.rs"]
mod mcp_servers;
#[path = "support/mock_llm.rs"]
mod mock_llm;
mod support;

use cairn::compile::Mode;
use cairn::config::{CompiledGateway, Credentials};
use cairn::gateway::core::{Core, Env};
use cairn::gateway::supervisor::Supervisor;
use cairn::manifest::Options;
use cairn::workspace::Workspace;
use cluster_gateway::Cluster;
use mock_llm::MockLlm;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::Proc;
use support::calls::{McpSession, send_message};
use support::http::request;

const SALT: &str = "00112233445566778899aabbccddeeff";

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
fn versions(i: u64, ns: &str, ports: [u16; 3], llm: &str, mcp: &str, agent: &str) -> Vec<CompiledGateway> {
    let mut ai = base(ns, "llm", "ai", ports[0]);
    ai["ai"] = json!({"backends": [{"name": "a", "provider": "openai-compatible", "url": format!("{llm}/v1"),
                                     "connectTimeoutMs": 2000 + i}],
                      "rules": [{"route": "r", "name": "0", "matches": [{"model": "m"}],
                                 "targets": [{"backend": "a", "weight": 1, "priority": 0}], "fallbackOn": [],
                                 "timeouts": {}, "ejection": {"consecutiveFailures": 0, "cooldownMs": 0}}]});
    let mut tools = base(ns, "tools", "mcp", ports[1]);
    tools["mcp"] = json!({"servers": [{"name": "gh", "prefix": "gh", "endpoint": {"type": "http", "url": mcp},
                                        "allow": ["*"], "timeoutMs": 5000 + i, "auditArguments": false}],
                          "sessionIdleTimeoutMs": 600000});
    let mut agents = base(ns, "agents", "agent", ports[2]);
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

/// One call per layer, whether it succeeded (with what went wrong when not).
async fn one_round(ports: [u16; 3], session: &McpSession, n: u64) -> Vec<Result<(), String>> {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]}).to_string();
    let ai = request("POST", &format!("http://127.0.0.1:{}/v1/chat/completions", ports[0]), &[], body).await;
    let ai = (ai.status == 200 && ai.body["choices"][0]["message"]["content"] == "from llm")
        .then_some(())
        .ok_or(format!("ai: {} {}", ai.status, ai.raw));
    let (r, v) = session.call(n, "gh__echo", json!({"text": format!("n{n}")})).await;
    let mcp = (r.status == 200 && v["result"]["content"][0]["text"] == format!("n{n}"))
        .then_some(())
        .ok_or(format!("mcp: {} {}", r.status, r.raw));
    let r = send_message(&format!("http://127.0.0.1:{}/agents/echo", ports[2]), n).await;
    let agent = (r.status == 200 && r.body.get("result").is_some())
        .then_some(())
        .ok_or(format!("agent: {} {}", r.status, r.raw));
    vec![ai, mcp, agent]
}

/// Workers calling gateways in rounds until finished.
struct Load {
    stop: Arc<AtomicBool>,
    results: Arc<Mutex<Vec<Result<(), String>>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Three workers, each running `round(n)` (its calls' results) until finished.
    fn start<F, Fut>(round: F) -> Load
    where
        F: Fn(u64) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = Vec<Result<(), String>>> + Send,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..3u64)
            .map(|worker| {
                let (stop, results, round) = (stop.clone(), results.clone(), round.clone());
                tokio::spawn(async move {
                    let mut n = worker * 1_000_000;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let r = round(n).await;
                        results.lock().unwrap().extend(r);
                    }
                })
            })
            .collect();
        Load { stop, results, workers }
    }

    /// Three workers calling the three layers.
    fn three_layers(ports: [u16; 3], session: Arc<McpSession>) -> Load {
        Load::start(move |n| {
            let session = session.clone();
            async move { one_round(ports, &session, n).await }
        })
    }

    /// Stops the workers; fails the test if any call failed or the load was too thin to mean
    /// anything.
    async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
        let results = self.results.lock().unwrap();
        let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "{} of {} calls failed: {failed:#?}", failed.len(), results.len());
        assert!(results.len() >= 30, "the load ran through the swaps: {} calls", results.len());
        println!("{} calls, none failed", results.len());
    }
}

#[tokio::test]
async fn configs_replaced_a_hundred_times_under_load_fail_no_request() {
    let llm = MockLlm::start("llm").await;
    let tools = mcp_servers::serve(mcp_servers::ToolsServer::default).await;
    let agent = a2a_agents::TestAgent::start().await;
    let core = Core::new(Env::from_process());
    let mut sup = Supervisor::new(core.clone(), cairn::serve::layers(&core), "127.0.0.1".parse().unwrap());
    let ports = [support::free_port(), support::free_port(), support::free_port()];
    assert!(sup.apply_all(&versions(0, "swap", ports, &llm.url, &tools.url, &agent.url)).await);
    let session = Arc::new(McpSession::open(&format!("http://127.0.0.1:{}/mcp", ports[1]), None).await);

    let load = Load::three_layers(ports, session);
    for i in 1..=100 {
        assert!(
            sup.apply_all(&versions(i, "swap", ports, &llm.url, &tools.url, &agent.url)).await,
            "version {i}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    load.finish().await;
    // The last version is the one in service.
    let want = versions(100, "swap", ports, &llm.url, &tools.url, &agent.url);
    let serving = core.status.configs();
    for gw in &want {
        let s = serving.iter().find(|s| s.port == gw.config.listener.port).expect("served");
        assert_eq!(s.config_hash, gw.config.hash(), "{}", s.gateway);
    }
}

// ---- cairn run -f: manifests edited on disk ------------------------------------------------------

/// Version `i` of local-mode manifests for the three layers: each differs from the last in a
/// field that does not change what a call answers (a price, a timeout, a token lifetime).
fn manifests(i: u64, ports: [u16; 3], llm: &str, mcp: &str, agent: &str) -> String {
    let [p0, p1, p2] = ports;
    let t = 10 + i;
    format!(
        r#"apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {{name: llm}}
spec:
  listener: {{port: {p0}}}
  defaultAction: Allow
  auth: {{allowAnonymous: true}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {{name: mock}}
spec:
  provider: OpenAICompatible
  url: {llm}/v1
  models:
    - {{name: m, price: {{inputPerMillion: {i}, outputPerMillion: 1}}}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {{name: chat}}
spec:
  gatewayRefs: [{{name: llm}}]
  rules:
    - matches: [{{model: m}}]
      backends: [{{backendRef: {{name: mock}}, model: m}}]
---
apiVersion: cairn.dev/v1alpha1
kind: MCPGateway
metadata: {{name: tools}}
spec:
  listener: {{port: {p1}}}
  defaultAction: Allow
  auth: {{allowAnonymous: true}}
---
apiVersion: cairn.dev/v1alpha1
kind: MCPServer
metadata: {{name: gh}}
spec:
  gatewayRefs: [{{name: tools}}]
  url: {mcp}
  timeout: {t}s
---
apiVersion: cairn.dev/v1alpha1
kind: AgentGateway
metadata: {{name: agents}}
spec:
  listener: {{port: {p2}}}
  defaultAction: Allow
  auth: {{allowAnonymous: true}}
  identityTokens: {{ttl: {t}s}}
---
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {{name: echo}}
spec:
  a2a: {{url: "{agent}", gatewayRefs: [{{name: agents}}]}}
"#
    )
}

/// The config hashes manifests compile to in local mode, by listener port, as `cairn run` would
/// compile them.
fn compiled_hashes(text: &str) -> Vec<(u16, String)> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("platform.yaml"), text).unwrap();
    let ws = Workspace::load(&[dir.path().to_path_buf()], &Options::default(), &Mode::Local);
    assert!(ws.problems.is_empty(), "{:?}", ws.report());
    let mut hashes: Vec<(u16, String)> =
        ws.output.gateways.iter().map(|g| (g.config.listener.port, g.config.hash())).collect();
    hashes.sort();
    assert_eq!(hashes.len(), 3, "three gateways: {:?}", ws.report());
    hashes
}

/// The config hashes the admin endpoint says are in service, by listener port.
async fn served_hashes(admin: u16) -> Vec<(u16, String)> {
    let r = request("GET", &format!("http://127.0.0.1:{admin}/config"), &[], String::new()).await;
    let mut hashes: Vec<(u16, String)> = r.body["gateways"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| (g["port"].as_u64().unwrap() as u16, g["configHash"].as_str().unwrap().to_string()))
        .collect();
    hashes.sort();
    hashes
}

/// Replaces `path` with `text` as editors and Kubernetes' volume updates do: written beside it,
/// then renamed over it, so no reader sees half a file.
fn replace_file(path: &Path, text: &str) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

#[tokio::test]
async fn cairn_run_follows_a_hundred_manifest_edits_under_load_and_fails_no_request() {
    let llm = MockLlm::start("llm").await;
    let tools = mcp_servers::serve(mcp_servers::ToolsServer::default).await;
    let agent = a2a_agents::TestAgent::start().await;
    let ports = [support::free_port(), support::free_port(), support::free_port()];
    let (watched, logs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = watched.path().join("platform.yaml");
    let version = |i| manifests(i, ports, &llm.url, &tools.url, &agent.url);
    replace_file(&file, &version(0));
    let admin = support::free_port();
    let _run = Proc(
        std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["run", "-f"])
            .arg(watched.path())
            .args(["--admin-port", &admin.to_string()])
            .stdout(std::fs::File::create(logs.path().join("run.out")).unwrap())
            .stderr(std::fs::File::create(logs.path().join("run.err")).unwrap())
            .spawn()
            .expect("cairn run starts"),
    );
    let stderr = || std::fs::read_to_string(logs.path().join("run.err")).unwrap_or_default();
    support::wait_until(Duration::from_secs(30), "cairn run's admin port", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", admin)).await.ok().map(|_| ())
    })
    .await;
    let first = compiled_hashes(&version(0));
    support::wait_until(Duration::from_secs(30), "the first manifests served", || async {
        (served_hashes(admin).await == first).then_some(())
    })
    .await;
    let session = Arc::new(McpSession::open(&format!("http://127.0.0.1:{}/mcp", ports[1]), None).await);

    // Each edit is written, then waited for until the admin endpoint says it is in service:
    // a hundred configs really served, not a hundred writes of which the poll saw a few.
    let load = Load::three_layers(ports, session);
    let started = std::time::Instant::now();
    for i in 1..=100 {
        let text = version(i);
        let want = compiled_hashes(&text);
        replace_file(&file, &text);
        let what = format!("version {i} served");
        support::wait_until(Duration::from_secs(30), &what, || async {
            (served_hashes(admin).await == want).then_some(())
        })
        .await;
    }
    println!("100 edits followed in {:?}", started.elapsed());
    load.finish().await;
    assert_eq!(served_hashes(admin).await, compiled_hashes(&version(100)), "{}", stderr());
    let reloads = stderr().matches("manifests changed: reloading").count();
    assert!(reloads >= 100, "{reloads} reloads:\n{}", stderr());
}

// ---- cluster mode: the ConfigMap rewritten through the API ---------------------------------------

/// A chat completion through the AI gateway on `port`, answered by the mock.
async fn chat_ok(port: u16) -> Result<(), String> {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]}).to_string();
    let r = request("POST", &format!("http://127.0.0.1:{port}/v1/chat/completions"), &[], body).await;
    (r.status == 200 && r.body["choices"][0]["message"]["content"] == "from llm")
        .then_some(())
        .ok_or(format!("ai: {} {}", r.status, r.raw))
}

#[tokio::test]
async fn a_cluster_mode_gateway_follows_a_hundred_config_writes_under_load_and_fails_no_request() {
    let llm = MockLlm::start("llm").await;
    let c = Cluster::new("llm", "ai").await;
    c.rbac(1, true);
    let port = support::free_port();
    // Only the AI gateway's config of each version: one `cairn gateway` process serves one layer.
    let version =
        |i| versions(i, &c.ns, [port, 0, 0], &llm.url, "http://127.0.0.1:1", "http://127.0.0.1:1").remove(0);
    c.publish(&version(0), true, true).await;
    let mut gw = c.spawn();
    gw.ready().await;

    // Each version is written as the operator writes it, then waited for until the admin
    // endpoint names its hash.
    let load = Load::start(move |_| async move { vec![chat_ok(port).await] });
    let started = std::time::Instant::now();
    for i in 1..=100 {
        let v = version(i);
        c.publish(&v, true, true).await;
        let want = Some(v.config.hash());
        support::wait_until(Duration::from_secs(60), &format!("version {i} served"), || async {
            (gw.hash().await == want).then_some(())
        })
        .await;
    }
    println!("100 ConfigMap writes followed in {:?}", started.elapsed());
    load.finish().await;
    gw.alive();
    assert_eq!(gw.hash().await, Some(version(100).config.hash()), "{}", gw.stderr());
}
