//! Answers in status and from the CLI, against the real control plane (the operator as a child
//! process), real Redis, real MCP servers (rmcp, tests/support) and a test A2A agent: what a
//! policy grants (matching what a gateway run from the operator's config enforces) and has spent,
//! the tools an MCPServer offers through its going down and coming back, an Agent's card, and
//! `cairn explain` / `cairn spend` on the cluster answering as on the same manifests as files.
//!
//! Each answer's latency after the change that causes it is printed (`answer latency: …`), not
//! asserted beyond a bound that only catches a hang.

#[path = "support/a2a_agents.rs"]
mod a2a_agents;
#[path = "support/clients.rs"]
mod clients;
#[path = "support/gateway_pod.rs"]
mod gateway_pod;
#[path = "support/mcp_servers.rs"]
mod mcp_servers;
#[path = "support/operator.rs"]
mod operator;
mod support;

use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use operator::{Operator, apply_yaml, cairn, condition, dynamic, setup, wait_condition};
use serde_json::{Value, json};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::{Platform, free_port, wait_until};

/// Longer than any answer should take: it only catches a hang.
const HANG: Duration = Duration::from_secs(90);

/// Waits for `probe` and prints how long the answer took after `since`.
async fn answer<T, F, Fut>(what: &str, since: Instant, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let v = wait_until(HANG, what, probe).await;
    eprintln!("answer latency: {what}: {:.2} s", since.elapsed().as_secs_f64());
    v
}

async fn get(p: &Platform, ns: &str, kind: &str, name: &str) -> Option<DynamicObject> {
    cairn(p, ns, kind).get(name).await.ok()
}

fn cairn_cli(args: &[&str], kubeconfig: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .current_dir(support::repo_root())
        .output()
        .expect("cairn runs")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Events of `ns` about `name`, as (type, reason, note).
async fn events(p: &Platform, ns: &str, name: &str) -> Vec<(String, String, String)> {
    let api = dynamic(p, ns, "events.k8s.io/v1", "Event", "events");
    let list = api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
    list.into_iter()
        .filter(|e| e.data["regarding"]["name"] == name)
        .map(|e| {
            let s = |k: &str| e.data[k].as_str().unwrap_or_default().to_string();
            (s("type"), s("reason"), s("note"))
        })
        .collect()
}

/// The pod of gateway `name` (`layer`) run as the kubelet would (tests/support/gateway_pod.rs:
/// the rendered container, `cairn gateway` in cluster mode as the gateway's own ServiceAccount),
/// once the config the operator wrote names `knows`.
async fn pod_knowing(p: &Platform, ns: &str, name: &str, layer: &str, knows: &str) -> gateway_pod::Pod {
    let config_map = format!("{name}-{layer}-gateway-config");
    wait_until(HANG, &format!("the gateway's ConfigMap with {knows}"), || async {
        let cm = dynamic(p, ns, "v1", "ConfigMap", "configmaps").get(&config_map).await.ok()?;
        cm.data["data"]["config.json"].as_str()?.contains(knows).then_some(())
    })
    .await;
    gateway_pod::run_pod(p, ns, name, layer).await
}

async fn chat(port: u16, key: &str, model: &str) -> (u16, Value) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "how much does this cost"}]});
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let auth = format!("Bearer {key}");
    let r = support::http::request("POST", &url, &[("authorization", &auth)], body.to_string()).await;
    (r.status, r.body)
}

const BOT_KEY: &str = "cairn-vk-bot-0123456789abcdef";

/// An AI gateway with two Echo models (priced so that costs are whole micro-dollars: $0.001 per
/// input token, $0.002 per output token), a policy granting one of them to agents labelled
/// `team: support`, with budgets; `STORE` is replaced by the gateway's store, `PORT` by its
/// listener's port.
const AI: &str = r#"
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {name: llm}
spec:
  listener: {port: PORT}
  defaultAction: Deny
  STORE
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {name: echo}
spec:
  provider: Echo
  models:
    - {name: echo-1, price: {inputPerMillion: 1000, outputPerMillion: 2000}}
    - {name: echo-2, price: {inputPerMillion: 1000, outputPerMillion: 2000}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {name: chat}
spec:
  gatewayRefs: [{name: llm}]
  rules:
    - matches: [{model: echo-1}]
      backends: [{backendRef: {name: echo}, model: echo-1}]
    - matches: [{model: echo-2}]
      backends: [{backendRef: {name: echo}, model: echo-2}]
---
apiVersion: v1
kind: Secret
metadata: {name: bot-key}
stringData: {key: cairn-vk-bot-0123456789abcdef}
---
apiVersion: cairn.dev/v1alpha1
kind: AgentPolicy
metadata: {name: support}
spec:
  subjects: {selector: {matchLabels: {team: support}}}
  models: [{match: echo-1}]
  budgets:
    - {amountUSD: 50, window: Month, scope: PerSubject}
    - {amountUSD: 0.1, window: Month, scope: Shared, action: Report}
"#;

/// [`AI`] with `store` and listening on `port`.
fn ai(store: &str, port: u16) -> String {
    AI.replace("STORE", store).replace("PORT", &port.to_string())
}

const BOT: &str = r#"
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {name: bot, labels: {team: support}}
spec: {identity: {virtualKeys: [{secretRef: {name: bot-key, key: key}}]}}
"#;

async fn subjects(p: &Platform, ns: &str) -> Option<Value> {
    let pol = get(p, ns, "AgentPolicy", "support").await?;
    Some(pol.data["status"]["effective"]["subjects"].clone())
}

#[tokio::test]
async fn a_label_selected_agent_follows_its_label_and_the_grants_are_what_the_gateway_enforces() {
    let (p, ns) = setup("ans-label").await;
    let (port, mcp_port) = (free_port(), free_port());
    let gh = mcp_servers::serve(mcp_servers::ToolsServer::default).await;
    // The policy grants gh's search tools too; the MCP gateway denies what no policy grants.
    let mut yaml = ai("", port).replace(
        "models: [{match: echo-1}]",
        "models: [{match: echo-1}]\n  tools: [{server: gh, tools: [\"search_*\"]}]",
    );
    yaml += "---";
    yaml += &TOOLS.replace("port: 8081}", &format!("port: {mcp_port}}}\n  defaultAction: Deny"));
    yaml += &server("gh", &gh.url, ", prefix: github");
    apply_yaml(&p, &ns, &yaml).await;
    let op = Operator::start(&p, &[&ns], "ans-label", false);
    op.wait_ready().await;
    let pol = wait_condition(&p, &ns, "AgentPolicy", "support", "Ready", "True").await;
    assert_eq!(condition(&pol, "Ready").unwrap()["message"], "Enforced by AIGateway llm, MCPGateway tools");
    assert_eq!(pol.data["status"]["effective"]["subjectCount"], 0);

    // kubectl shows what a person needs first: for gateways READY, ADDRESS, CONFIG, AGE; for
    // routes GATEWAYS, ACCEPTED.
    let gw = wait_until(HANG, "the gateway's config hash", || async {
        let g = get(&p, &ns, "AIGateway", "llm").await?;
        g.data["status"]["configHash"].as_str().map(str::to_string)
    })
    .await;
    let table = p.kubectl_ok(&["get", "aigateways,airoutes", "-n", &ns]);
    eprintln!("{table}");
    let mut tables = table.split("\n\n");
    let gateways = tables.next().unwrap();
    let header: Vec<&str> = gateways.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "ADDRESS", "CONFIG", "AGE"], "{table}");
    let row: Vec<&str> = gateways.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[..4],
        ["aigateway.cairn.dev/llm", "False", &format!("http://llm-ai-gateway.{ns}.svc:{port}"), &gw]
    );
    let routes = tables.next().unwrap();
    let header: Vec<&str> = routes.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "GATEWAYS", "ACCEPTED", "AGE"], "{table}");
    let row: Vec<&str> = routes.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["airoute.cairn.dev/chat", "llm", "True"], "{table}");

    let t = Instant::now();
    apply_yaml(&p, &ns, BOT).await;
    answer("labelled Agent added → in effective.subjects", t, || async {
        (subjects(&p, &ns).await? == json!(["bot"])).then_some(())
    })
    .await;
    let pol = get(&p, &ns, "AgentPolicy", "support").await.unwrap();
    let eff = &pol.data["status"]["effective"];
    assert_eq!(eff["subjectCount"], 1);
    assert_eq!(
        eff["gateways"],
        json!([
            {"kind": "AIGateway", "name": "llm", "models": ["echo-1"]},
            {"kind": "MCPGateway", "name": "tools", "tools": ["github__search_*"]},
        ])
    );

    // What status says is granted is what a gateway running the operator's config enforces.
    let gw = pod_knowing(&p, &ns, "llm", "ai", "\"bot\"").await;
    let (allowed, body) = wait_until(HANG, "the gateway to know bot", || async {
        let r = chat(port, BOT_KEY, "echo-1").await;
        (r.0 != 401).then_some(r)
    })
    .await;
    assert_eq!(allowed, 200, "{body}");
    let (refused, body) = chat(port, BOT_KEY, "echo-2").await;
    assert_eq!(refused, 403, "echo-2 is served but not granted: {body}");
    drop(gw);
    let gw = pod_knowing(&p, &ns, "tools", "mcp", "\"bot\"").await;
    let mcp =
        support::calls::McpSession::open(&format!("http://127.0.0.1:{mcp_port}/mcp"), Some(BOT_KEY)).await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let list = support::calls::rpc_answer(&mcp.post(&list).await);
    let names: Vec<&str> =
        list["result"]["tools"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["github__search_code"], "what github__search_* grants of the server's tools: {list}");
    let (_, allowed) = mcp.call(2, "github__search_code", json!({})).await;
    assert_eq!(allowed["result"]["content"][0]["text"], "found 3 results", "{allowed}");
    let (_, refused) = mcp.call(3, "github__echo", json!({"text": "hi"})).await;
    assert_eq!(refused["error"]["code"], -32602, "echo is served but not granted: {refused}");
    let server_tools = tool_names(&wait_until(HANG, "gh's tools in status", || listed(&p, &ns, "gh")).await);
    assert!(server_tools.len() > 1 && server_tools.contains(&"search_code".to_string()), "{server_tools:?}");
    drop(gw);

    let t = Instant::now();
    let agents = cairn(&p, &ns, "Agent");
    let patch = json!({"metadata": {"labels": {"team": null}}});
    agents.patch("bot", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    answer("label removed → out of effective.subjects", t, || async {
        let s = subjects(&p, &ns).await;
        (s == Some(Value::Null) || s == Some(json!([]))).then_some(())
    })
    .await;
    let pol = get(&p, &ns, "AgentPolicy", "support").await.unwrap();
    assert_eq!(pol.data["status"]["effective"]["subjectCount"], 0);
}

/// `cairn spend` output as JSON.
fn spend_json(args: &[&str], p: &Platform) -> Value {
    let out = cairn_cli(args, &p.kubeconfig);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "cairn {args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test]
async fn spend_in_status_and_in_cairn_spend_is_what_the_requests_cost_to_the_micro_dollar() {
    let (p, ns) = setup("ans-spend").await;
    let redis = support::Redis::start();
    let store = format!("store: {{redis: {{url: \"{}\"}}}}", redis.url);
    let port = free_port();
    let yaml = format!("{}---{BOT}", ai(&store, port));
    apply_yaml(&p, &ns, &yaml).await;
    let op = Operator::start(&p, &[&ns], "ans-spend", false);
    op.wait_ready().await;
    let pol = wait_until(HANG, "the policy's spend", || async {
        let pol = get(&p, &ns, "AgentPolicy", "support").await?;
        pol.data["status"]["spend"].as_array().is_some_and(|s| s.len() == 2).then_some(pol)
    })
    .await;
    assert_eq!(condition(&pol, "SpendKnown").unwrap()["status"], "True");
    assert_eq!(pol.data["status"]["spend"][0]["usedUSD"], "0.00");

    let dir = tempfile::tempdir().unwrap();
    let gw = pod_knowing(&p, &ns, "llm", "ai", "\"bot\"").await;
    let mut cost = 0u64;
    let t = Instant::now();
    for _ in 0..5 {
        let (status, body) = chat(port, BOT_KEY, "echo-1").await;
        assert_eq!(status, 200, "{body}");
        let u = &body["usage"];
        cost += u["prompt_tokens"].as_u64().unwrap() * 1000 + u["completion_tokens"].as_u64().unwrap() * 2000;
    }
    drop(gw);
    let used = cairn::spend::usd(cost);
    eprintln!("5 requests cost {used} USD");
    let pol = answer("requests → status.spend", t, || async {
        let pol = get(&p, &ns, "AgentPolicy", "support").await?;
        (pol.data["status"]["spend"][0]["usedUSD"] == json!(used)).then_some(pol)
    })
    .await;
    let s = &pol.data["status"];
    assert_eq!(s["spend"][0]["subject"], "bot");
    assert_eq!(s["spend"][0]["limitUSD"], "50");
    assert!(s["spend"][0]["window"].as_str().unwrap().len() == 7, "a month window: {}", s["spend"][0]);
    assert_eq!(s["spend"][1]["budget"], 1);
    assert_eq!(s["spend"][1]["usedUSD"], json!(used), "the shared budget counts the same calls");
    // The shared budget of 0.10 USD is the nearest its limit (it only reports).
    let expect_summary = format!("{used}/0.10 USD");
    assert_eq!(s["spendSummary"], json!(expect_summary));

    // kubectl shows SUBJECTS, SPEND and READY.
    let table = p.kubectl_ok(&["get", "agentpolicies", "-n", &ns]);
    eprintln!("{table}");
    let header = table.lines().next().unwrap();
    for col in ["SUBJECTS", "SPEND", "READY"] {
        assert!(header.contains(col), "{table}");
    }
    let row = table.lines().find(|l| l.starts_with("support ")).unwrap();
    assert!(row.contains(" 1 ") && row.contains(&expect_summary) && row.contains("True"), "{table}");
    // Crossing the shared budget's 100 % is one Warning.
    let evs = wait_until(HANG, "the budget's Event", || async {
        let e = events(&p, &ns, "support").await;
        e.iter().any(|e| e.1 == "BudgetSpent").then_some(e)
    })
    .await;
    let spent: Vec<_> = evs.iter().filter(|e| e.1 == "BudgetSpent").collect();
    assert_eq!(spent.len(), 1, "{evs:?}");
    assert_eq!(spent[0].0, "Warning");
    assert!(spent[0].2.starts_with("Budget 1 passed 100% in "), "{spent:?}");

    // cairn spend on the cluster and on the same manifests as files: the same amount.
    let t = Instant::now();
    let cluster = spend_json(&["spend", "-n", &ns, "-o", "json"], &p);
    eprintln!("answer latency: cairn spend on the cluster: {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(cluster["totalUSD"], json!(used), "{cluster}");
    assert_eq!(cluster["spend"], json!([{"gateway": "llm", "agent": "bot", "model": "echo-1", "usd": used}]));
    assert_eq!(cluster["budgets"][0]["usedUSD"], json!(used));
    let file = dir.path().join("ai.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let files = spend_json(&["spend", "-f", file.to_str().unwrap(), "-n", &ns, "-o", "json"], &p);
    assert_eq!(files, cluster, "files and cluster answer alike");
    // A store only the cluster can reach is read through a port-forward with --store-url.
    let inside = dir.path().join("inside.yaml");
    std::fs::write(&inside, yaml.replace(&redis.url, "redis://redis.team.svc.cluster.local:6379")).unwrap();
    let inside = inside.to_str().unwrap();
    let forwarded =
        spend_json(&["spend", "-f", inside, "-n", &ns, "--store-url", &redis.url, "-o", "json"], &p);
    assert_eq!(forwarded, cluster, "through --store-url as from the store's own URL");
    let out = cairn_cli(
        &["spend", "-f", inside, "-n", &ns, "--store-url", "redis://127.0.0.1:99999"],
        &p.kubeconfig,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.starts_with("error: AIGateway \"llm\": redis URL \"redis://127.0.0.1:99999\""),
        "{:?}",
        text(&out)
    );
    let by_agent = spend_json(&["spend", "-n", &ns, "--agent", "bot", "-o", "json"], &p);
    assert_eq!(by_agent["totalUSD"], json!(used));
    let window = cluster["window"].as_str().unwrap().to_string();
    let out = cairn_cli(&["spend", "-n", &ns, "--window", &window], &p.kubeconfig);
    let (table, _) = text(&out);
    eprintln!("{table}");
    assert!(table.contains(&format!("llm      bot    echo-1  {used}")), "{table}");
    assert!(table.contains(&format!("support  0       bot       {used}/50 USD")), "{table}");

    // Errors say what is wrong.
    let out = cairn_cli(&["spend", "-n", &ns, "--agent", "ghost"], &p.kubeconfig);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains(&format!(
        "error: no Agent named \"ghost\" in namespace \"{ns}\" and no spend recorded for it in {window}"
    )));
    let out = cairn_cli(&["spend", "-n", &ns, "--window", "2026-13"], &p.kubeconfig);
    assert!(text(&out).1.contains("error: window \"2026-13\" is not a window: use 2026-12 (a month), 2026-W49 (an ISO week) or 2026-12-03 (a day)"), "{:?}", text(&out));
    let memory = dir.path().join("memory.yaml");
    std::fs::write(&memory, format!("{}---{BOT}", ai("", port))).unwrap();
    let out = cairn_cli(&["spend", "-f", memory.to_str().unwrap(), "-n", "team"], &p.kubeconfig);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains(
        "error: no AIGateway in namespace \"team\" names a shared store (spec.store.redis); llm counts in memory: spend is counted in each gateway pod's memory, which nothing outside the pod can read"
    ), "{:?}", text(&out));

    // Redis goes down: spend is unknown with the reason; nothing else breaks.
    let url = redis.url.clone();
    drop(redis);
    let t = Instant::now();
    let pol = answer("Redis down → spend unknown", t, || async {
        let pol = get(&p, &ns, "AgentPolicy", "support").await?;
        (condition(&pol, "SpendKnown")?["status"] == "False").then_some(pol)
    })
    .await;
    let c = condition(&pol, "SpendKnown").unwrap();
    assert_eq!(c["reason"], "StoreUnavailable");
    let m = c["message"].as_str().unwrap();
    assert!(m.starts_with(&format!("Spend is unknown: redis {url}")), "{m}");
    assert_eq!(pol.data["status"]["spend"][0]["usedUSD"], "unknown");
    assert_eq!(pol.data["status"]["spendSummary"], "unknown/50 USD");
    assert_eq!(condition(&pol, "Ready").unwrap()["status"], "True", "the policy is still enforced");
    let out = cairn_cli(&["spend", "-n", &ns], &p.kubeconfig);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains(&format!("error: spend unknown: redis {url}")), "{:?}", text(&out));
    // The rest of the namespace is unaffected: an edit still reaches the gateway's config.
    let gw = wait_condition(&p, &ns, "AIGateway", "llm", "Programmed", "True").await;
    assert_eq!(condition(&gw, "Accepted").unwrap()["status"], "True");
    let evs = events(&p, &ns, "support").await;
    assert!(evs.iter().any(|e| e.0 == "Warning" && e.1 == "StoreUnavailable"), "{evs:?}");
}

const TOOLS: &str = r#"
apiVersion: cairn.dev/v1alpha1
kind: MCPGateway
metadata: {name: tools}
spec:
  listener: {port: 8081}
  egress: {allowedCIDRs: ["127.0.0.1/32"]}
"#;

fn server(name: &str, url: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: cairn.dev/v1alpha1\nkind: MCPServer\nmetadata: {{name: {name}}}\nspec: {{gatewayRefs: [{{name: tools}}], url: \"{url}\"{extra}}}\n"
    )
}

/// MCPServer `name` once its status lists tools.
async fn listed(p: &Platform, ns: &str, name: &str) -> Option<DynamicObject> {
    let o = get(p, ns, "MCPServer", name).await?;
    (o.data["status"]["toolCount"].as_i64()? > 0).then_some(o)
}

fn tool_names(o: &DynamicObject) -> Vec<String> {
    o.data["status"]["tools"]
        .as_array()
        .map_or_else(Vec::new, |a| a.iter().map(|t| t["name"].as_str().unwrap().to_string()).collect())
}

/// A loopback server that answers every request with `answer` (raw HTTP), or never when `None`.
async fn raw_server(answer: Option<&'static str>) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 65536];
            let _ = sock.read(&mut buf).await;
            match answer {
                Some(a) => {
                    let _ = sock.write_all(a.as_bytes()).await;
                }
                None => held.push(sock),
            }
        }
    });
    (url, task)
}

#[tokio::test]
async fn an_mcp_servers_tools_follow_it_down_and_back_and_bad_servers_are_named_without_stalling_others() {
    let (p, ns) = setup("ans-mcp").await;
    let port = free_port();
    let tools = mcp_servers::serve_on(port, mcp_servers::ToolsServer::default).await;
    let modern = mcp_servers::serve_modern(mcp_servers::ToolsServer::default).await;
    let paged = mcp_servers::serve(|| mcp_servers::PagedServer).await;
    let (hangs, _h) = raw_server(None).await;
    let (garbage, _g) = raw_server(Some(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 8\r\nconnection: close\r\n\r\nnot json",
    ))
    .await;
    let mut yaml = TOOLS.to_string();
    yaml += &server("gh", &tools.url, ", prefix: github, tools: {deny: [\"delete_*\"]}");
    yaml += &server("modern", &modern.url, "");
    yaml += &server("hangs", &hangs, "");
    yaml += &server("garbage", &garbage, "");
    yaml += &server("orphan", &garbage, "")
        .replace("gatewayRefs: [{name: tools}]", "gatewayRefs: [{name: nowhere}]");
    apply_yaml(&p, &ns, &yaml).await;
    let op = Operator::start(&p, &[&ns], "ans-mcp", false);
    let t = Instant::now();
    op.wait_ready().await;

    let gh = answer("MCPServer → its tools in status", t, || listed(&p, &ns, "gh")).await;
    let list = gh.data["status"]["tools"].as_array().unwrap();
    assert_eq!(list.len(), 13, "{list:?}");
    let delete = list.iter().find(|t| t["name"] == "delete_repo").unwrap();
    assert_eq!(delete, &json!({"name": "delete_repo", "allowed": false}));
    let search = list.iter().find(|t| t["name"] == "search_code").unwrap();
    assert_eq!(search, &json!({"name": "search_code", "allowed": true, "exposedAs": "github__search_code"}));
    assert_eq!(gh.data["status"]["toolCount"], 12);
    assert_eq!(condition(&gh, "Discovered").unwrap()["status"], "True");
    let seen_at = gh.data["status"]["toolsSeenAt"].clone();
    assert!(seen_at.is_string());
    let session_era = gh.data["status"]["protocolVersion"].as_str().unwrap().to_string();
    assert!(session_era.starts_with("202") && session_era != "2026-07-28", "{session_era}");

    let m = answer("a 2026-07-28 server → its tools", t, || listed(&p, &ns, "modern")).await;
    assert_eq!(m.data["status"]["protocolVersion"], "2026-07-28");
    assert_eq!(m.data["status"]["toolCount"], 13);

    // A server that hangs and one that answers garbage: conditions that say so.
    let h = wait_condition(&p, &ns, "MCPServer", "hangs", "Discovered", "False").await;
    let c = condition(&h, "Discovered").unwrap();
    assert_eq!(c["reason"], "Timeout", "{c}");
    assert!(c["message"].as_str().unwrap().contains(&hangs), "{c}");
    let g = wait_condition(&p, &ns, "MCPServer", "garbage", "Discovered", "False").await;
    let c = condition(&g, "Discovered").unwrap();
    assert_eq!(c["reason"], "InvalidResponse", "{c}");
    assert!(c["message"].as_str().unwrap().contains("invalid answer"), "{c}");

    let o = wait_condition(&p, &ns, "MCPServer", "orphan", "Discovered", "False").await;
    let c = condition(&o, "Discovered").unwrap();
    assert_eq!(c["reason"], "NotServed", "{c}");
    assert_eq!(
        c["message"],
        "No MCPGateway serves this server yet: the operator lists its tools as a gateway that serves it reaches it"
    );

    // Another server added while the bad ones are retried is listed as quickly: one slow server
    // delays no other.
    let t = Instant::now();
    apply_yaml(&p, &ns, &server("paged", &paged.url, "")).await;
    let paged_o =
        answer("a server added beside a hanging one → its tools (3 pages)", t, || listed(&p, &ns, "paged"))
            .await;
    assert_eq!(paged_o.data["status"]["toolCount"], 25);

    // TOOLS in kubectl.
    let table = p.kubectl_ok(&["get", "mcps", "-n", &ns]);
    eprintln!("{table}");
    assert!(table.lines().next().unwrap().contains("TOOLS"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("gh ") && l.contains(" 12 ")), "{table}");

    // The server stops: Discovered=False, the last list kept with the time it was seen.
    let t = Instant::now();
    drop(tools);
    let down = answer("server stopped → Discovered=False", t, || async {
        let o = get(&p, &ns, "MCPServer", "gh").await?;
        (condition(&o, "Discovered")?["status"] == "False").then_some(o)
    })
    .await;
    let c = condition(&down, "Discovered").unwrap();
    assert_eq!(c["reason"], "Unreachable", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://127.0.0.1:{port}/mcp: cannot reach MCP server")),
        "{c}"
    );
    assert_eq!(tool_names(&down).len(), 13, "the last list is kept");
    assert!(down.data["status"]["toolsSeenAt"].is_string());

    // It comes back with one more tool: the list follows.
    let t = Instant::now();
    let _tools = mcp_servers::serve_on(port, || mcp_servers::ToolsServer {
        extra_tools: vec!["summarise".into()],
        ..Default::default()
    })
    .await;
    let back = answer("server back with one more tool → the list follows", t, || async {
        let o = get(&p, &ns, "MCPServer", "gh").await?;
        tool_names(&o).contains(&"summarise".to_string()).then_some(o)
    })
    .await;
    assert_eq!(condition(&back, "Discovered").unwrap()["status"], "True");
    assert_eq!(back.data["status"]["toolCount"], 13);
    assert_ne!(back.data["status"]["toolsSeenAt"], seen_at);

    // Events on the changes only: discovered once, down once, back once, changed once.
    let evs = wait_until(HANG, "the server's Events", || async {
        let e = events(&p, &ns, "gh").await;
        let has = |reason: &str| e.iter().any(|e| e.1 == reason);
        (has("ToolsChanged") && has("ServerBack")).then_some(e)
    })
    .await;
    let count = |reason: &str| evs.iter().filter(|e| e.1 == reason).count();
    assert_eq!(count("ToolsDiscovered"), 1, "{evs:?}");
    assert_eq!(count("Unreachable"), 1, "{evs:?}");
    assert_eq!(count("ServerBack"), 1, "{evs:?}");
    assert_eq!(count("ToolsChanged"), 1, "{evs:?}");
    let changed = evs.iter().find(|e| e.1 == "ToolsChanged").unwrap();
    assert_eq!(changed.2, "14 tools: added summarise");

    // A restarted operator starts from what status says: the same lists write nothing and send
    // no Event.
    let mut op = op;
    assert!(op.stop());
    let op2 = Operator::start(&p, &[&ns], "ans-mcp-2", false);
    op2.wait_ready().await;
    wait_until(HANG, "the second operator to reconcile the servers", || async {
        (op2.metric("cairn_operator_reconciles_total", &["MCPServer"]) >= 5.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(op2.writes(), 0.0, "writes after restart:\n{}", op2.metrics());
    assert_eq!(events(&p, &ns, "gh").await.len(), evs.len());
}

/// Serves `card` (JSON) at every path.
async fn card_server(card: Value) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move || {
        let card = card.clone();
        async move { axum::Json(card) }
    });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

#[tokio::test]
async fn an_agents_card_and_identities_in_status_and_bad_cards_refused() {
    let (p, ns) = setup("ans-card").await;
    let agent = a2a_agents::TestAgent::start().await;
    let huge = a2a_agents::TestAgent::start().await;
    *huge.state.card_mode.lock().unwrap() = a2a_agents::CardMode::Huge;
    let (private, _s) = card_server(json!({"name": "sneaky", "skills": [],
        "supportedInterfaces": [{"url": "http://10.0.0.5/a2a", "protocolBinding": "JSONRPC"}]}))
    .await;
    let a2a = |name: &str, url: &str| {
        format!(
            "---\napiVersion: cairn.dev/v1alpha1\nkind: Agent\nmetadata: {{name: {name}}}\nspec:\n  identity: {{serviceAccount: {{name: {name}-sa}}, virtualKeys: [{{secretRef: {{name: keys, key: {name}}}}}]}}\n  a2a: {{url: \"{url}\", gatewayRefs: [{{name: agents}}]}}\n"
        )
    };
    let mut yaml = r#"
apiVersion: cairn.dev/v1alpha1
kind: AgentGateway
metadata: {name: agents}
spec:
  listener: {port: 8082}
  egress: {allowedCIDRs: ["127.0.0.1/32"]}
---
apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {echo: cairn-vk-echo-0123456789abcdef}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: echo-sa}
"#
    .to_string();
    yaml += &a2a("echo", &agent.url);
    yaml += &a2a("huge", &huge.url);
    yaml += &a2a("sneaky", &private);
    let missing = a2a_agents::TestAgent::start().await;
    *missing.state.card_mode.lock().unwrap() = a2a_agents::CardMode::Status(404);
    yaml += &a2a("missing", &missing.url);
    let invalid = a2a_agents::TestAgent::start().await;
    *invalid.state.card_mode.lock().unwrap() = a2a_agents::CardMode::Invalid;
    yaml += &a2a("invalid", &invalid.url);
    yaml +=
        &a2a("lonely", &agent.url).replace("gatewayRefs: [{name: agents}]", "gatewayRefs: [{name: nowhere}]");
    // Budgets where no AIGateway counts them.
    yaml += "---\napiVersion: cairn.dev/v1alpha1\nkind: AgentPolicy\nmetadata: {name: thrifty}\nspec:\n  subjects: {agents: [echo]}\n  budgets: [{amountUSD: 5, window: Day}]\n";
    apply_yaml(&p, &ns, &yaml).await;
    let op = Operator::start(&p, &[&ns], "ans-card", false);
    let t = Instant::now();
    op.wait_ready().await;
    let echo = answer("Agent → its card's skills in status", t, || async {
        let o = get(&p, &ns, "Agent", "echo").await?;
        o.data["status"]["card"].is_object().then_some(o)
    })
    .await;
    let card = &echo.data["status"]["card"];
    assert_eq!(card["name"], "echo");
    assert_eq!(card["version"], "1.0.1");
    assert_eq!(
        card["skills"],
        json!([{"id": "echo", "name": "Echo"}, {"id": "refund", "name": "Refund lookup"}])
    );
    assert!(card["seenAt"].is_string());
    assert_eq!(condition(&echo, "CardFetched").unwrap()["status"], "True");
    assert_eq!(echo.data["status"]["gateways"], json!([{"name": "agents", "accepted": true}]));
    // Each identity of the agent, found or not: its ServiceAccount and its virtual key's Secret.
    let identities = |name: &str, found: bool| {
        json!([
            {"kind": "ServiceAccount", "name": format!("{ns}/{name}-sa"), "found": found},
            {"kind": "VirtualKey", "name": format!("keys/{name}"), "found": found},
        ])
    };
    assert_eq!(echo.data["status"]["identities"], identities("echo", true));

    let big = wait_condition(&p, &ns, "Agent", "huge", "CardFetched", "False").await;
    let c = condition(&big, "CardFetched").unwrap();
    assert_eq!(c["reason"], "CardTooLarge", "{c}");
    assert!(c["message"].as_str().unwrap().contains("is larger than 1048576 bytes"), "{c}");
    assert!(big.data["status"].get("card").is_none());
    assert_eq!(big.data["status"]["identities"], identities("huge", false));

    let s = wait_condition(&p, &ns, "Agent", "sneaky", "CardFetched", "False").await;
    let c = condition(&s, "CardFetched").unwrap();
    assert_eq!(c["reason"], "EgressRefused", "{c}");
    let m = c["message"].as_str().unwrap();
    assert!(
        m.starts_with("AgentGateway \"agents\" refuses a URL the card names: URL \"http://10.0.0.5/a2a\" reaches 10.0.0.5, a private-network address"),
        "{m}"
    );
    assert!(s.data["status"].get("card").is_none());

    // Each other way a card can fail is named.
    for (name, reason, says) in [
        ("missing", "UnexpectedStatus", format!("the agent card of 'missing' at {}/.well-known/agent-card.json answered HTTP 404", missing.url)),
        ("invalid", "InvalidCard", format!("the agent card of 'invalid' at {}/.well-known/agent-card.json is not a valid JSON object", invalid.url)),
        ("lonely", "NotPublished", "No AgentGateway publishes this agent yet: the operator fetches its card as a gateway that publishes it would".to_string()),
    ] {
        let o = wait_condition(&p, &ns, "Agent", name, "CardFetched", "False").await;
        let c = condition(&o, "CardFetched").unwrap();
        assert_eq!(c["reason"], reason, "{c}");
        assert!(c["message"].as_str().unwrap().starts_with(&says), "{c}");
    }
    let pol = wait_condition(&p, &ns, "AgentPolicy", "thrifty", "SpendKnown", "False").await;
    let c = condition(&pol, "SpendKnown").unwrap();
    assert_eq!(c["reason"], "NotEnforced");
    assert_eq!(
        c["message"],
        "No AIGateway of the namespace enforces this policy's budgets, so nothing is counted against them"
    );
    assert_eq!(condition(&pol, "Ready").unwrap()["reason"], "Enforced", "the AgentGateway enforces the rest");
    drop(op);
}

/// The platform example without its fixed namespace, so that it can go anywhere.
fn platform_manifests(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for f in support::yaml_files(&support::repo_root().join("examples/platform")) {
        let text = std::fs::read_to_string(&f).unwrap();
        let text: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("namespace: platform"))
            .map(|l| format!("{l}\n"))
            .collect();
        let path = dir.join(f.file_name().unwrap());
        std::fs::write(&path, text).unwrap();
        out.push(path);
    }
    out
}

#[tokio::test]
async fn cairn_explain_on_the_cluster_answers_as_on_the_same_manifests_as_files() {
    let (p, ns) = setup("ans-explain").await;
    let dir = tempfile::tempdir().unwrap();
    let files = platform_manifests(dir.path());
    for f in &files {
        for d in support::read_documents(f) {
            p.apply(&ns, &d, false).await.unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        }
    }
    let questions: &[&[&str]] = &[
        &["agent", "support-bot"],
        &["agent", "billing-agent"],
        &["who-can", "tool", "github__search_code"],
        &["who-can", "tool", "files__write_file"],
        &["who-can", "model", "gpt-4o-mini"],
        &["who-can", "agent", "billing-agent", "--skill", "refund-lookup"],
        &["agent", "ghost"],
    ];
    for q in questions {
        let mut on_files: Vec<&str> = vec!["explain", "-n", &ns];
        for f in &files {
            on_files.extend(["-f", f.to_str().unwrap()]);
        }
        on_files.extend(q.iter());
        let mut on_cluster: Vec<&str> = vec!["explain", "-n", &ns];
        on_cluster.extend(q.iter());
        let t = Instant::now();
        let c = cairn_cli(&on_cluster, &p.kubeconfig);
        eprintln!(
            "answer latency: cairn explain {} on the cluster: {:.2} s",
            q.join(" "),
            t.elapsed().as_secs_f64()
        );
        let f = cairn_cli(&on_files, &p.kubeconfig);
        let (cs, ce) = text(&c);
        let (fs, fe) = text(&f);
        assert_eq!(c.status.code(), f.status.code(), "{q:?}: {ce} / {fe}");
        assert_eq!(cs, fs, "{q:?}: the cluster and the files answer differently");
        if q[1] == "ghost" {
            assert!(ce.contains(&format!("error: no Agent named \"ghost\" in namespace \"{ns}\"")), "{ce}");
        } else {
            assert!(!cs.is_empty(), "{q:?}: {ce}");
        }
    }
    let (stdout, _) = text(&cairn_cli(&["explain", "-n", &ns, "agent", "support-bot"], &p.kubeconfig));
    assert!(stdout.contains("budget:     $50.00 per Month, PerSubject, Block (support)"), "{stdout}");

    // --context names the kubeconfig's context to read (here the one it is on anyway).
    let kubeconfig: Value = serde_saphyr::from_str(&std::fs::read_to_string(&p.kubeconfig).unwrap()).unwrap();
    let context = kubeconfig["current-context"].as_str().unwrap();
    let out = cairn_cli(&["explain", "--context", context, "-n", &ns, "agent", "support-bot"], &p.kubeconfig);
    assert_eq!(text(&out).0, stdout, "{:?}", text(&out));

    // A cluster that cannot be read says so.
    let out = cairn_cli(&["explain", "--context", "nowhere", "agent", "x"], &p.kubeconfig);
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(stderr.starts_with("error: no cluster to read: "), "{stderr}");
    assert!(
        stderr.contains("nowhere")
            && stderr.contains("(set KUBECONFIG, pass --context, or answer from files with -f)"),
        "{stderr}"
    );
    let nobody = p.fresh_namespace("ans-nobody").await;
    let api: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
        kube::Api::namespaced(p.client.clone(), &nobody);
    api.create(
        &Default::default(),
        &serde_json::from_value(json!({"metadata": {"name": "nobody"}})).unwrap(),
    )
    .await
    .unwrap();
    let token = operator::service_account_token(&p, &nobody, "nobody").await;
    let kc = dir.path().join("nobody.kubeconfig");
    operator::kubeconfig_with_token(&p, &token, &kc);
    let out = cairn_cli(&["explain", "-n", &ns, "agent", "support-bot"], &kc);
    assert_eq!(out.status.code(), Some(1));
    let (_, stderr) = text(&out);
    assert!(
        stderr.starts_with(&format!(
            "error: listing AIGateway in namespace \"{ns}\": aigateways.cairn.dev is forbidden"
        )),
        "{stderr}"
    );

    // One who may read the Cairn objects but no Secret gets the answer, and a warning per Secret
    // the compile names.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "cairn-reader"},
        "rules": [{"apiGroups": ["cairn.dev"], "resources": ["*"], "verbs": ["list"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "cairn-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cairn-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": nobody}]});
    for d in [role, binding] {
        p.apply(&ns, &d, false).await.unwrap();
    }
    let out = wait_until(HANG, "the reader's Role in force", || async {
        let out = cairn_cli(&["explain", "-n", &ns, "who-can", "tool", "github__search_code"], &kc);
        out.status.success().then_some(out)
    })
    .await;
    let (stdout, stderr) = text(&out);
    assert!(!stdout.is_empty());
    let denied = |secret: &str| {
        format!(
            "warning: cannot read Secret {ns}/{secret}: secrets \"{secret}\" is forbidden: User \"system:serviceaccount:{nobody}:nobody\" cannot get resource \"secrets\""
        )
    };
    for secret in ["redis", "support-bot-key"] {
        assert!(stderr.contains(&denied(secret)), "{stderr}");
    }
}
