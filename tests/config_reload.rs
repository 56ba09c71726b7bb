//! Configs replaced a hundred times while a steady load runs, and not one request fails
//! (issue #16): the three layers' configs swapped in one process through the supervisor every
//! source feeds.
//!
//! No test asserts on elapsed time; timeouts only end waits.

#[path = "support/a2a_agents.rs"]
mod a2a_agents;
#[path = "support/mcp_servers.rs"]
mod mcp_servers;
#[path = "support/mock_llm.rs"]
mod mock_llm;
mod support;

use cairn::config::{CompiledGateway, Credentials};
use cairn::gateway::core::{Core, Env};
use cairn::gateway::supervisor::Supervisor;
use mock_llm::MockLlm;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
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

#[tokio::test]
async fn configs_replaced_a_hundred_times_under_load_fail_no_request() {
    let llm = MockLlm::start("llm").await;
    let tools = mcp_servers::serve(mcp_servers::ToolsServer::default).await;
    let agent = a2a_agents::TestAgent::start().await;
    let core = Core::new(Env::from_process());
    let mut sup = Supervisor::new(core.clone(), cairn::serve::layers(&core), "127.0.0.1".parse().unwrap());
    let ports = [support::free_port(), support::free_port(), support::free_port()];
    assert!(sup.apply_all(&versions(0, ports, &llm.url, &tools.url, &agent.url)).await);
    let session = Arc::new(McpSession::open(&format!("http://127.0.0.1:{}/mcp", ports[1]), None).await);

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
