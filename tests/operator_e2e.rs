//! End to end, per layer, against the real control plane: manifests → `cairn operator` → the
//! gateway's children → the gateway's pod → a request through a test upstream.
//!
//! There is no kubelet, so the test runs the pod: the rendered Deployment's `gateway` container —
//! its args and environment as rendered (the downward API filled in, the admin port moved to a
//! free one since every test shares one network namespace) — as a local `cairn gateway`
//! process, with a kubeconfig holding a TokenRequest token of the rendered ServiceAccount, so the
//! rendered Role is all it may do. It plays the kubelet's readiness probe too: once the process's
//! `/readyz` answers 200 it marks the ReplicaSet's Pod Ready through the status subresource, and
//! the Deployment's `readyReplicas` and the gateway's `Ready` condition follow for real.
//!
//! Per layer: a request through a test upstream (mock LLM, MCP server, A2A agent); an edit of an
//! attached object served without a restart (same process, new config hash, the one the gateway's
//! status names); a hand-edited ConfigMap refused with a `ConfigRefused` Event while the last
//! good config keeps serving, and put back by the operator. No assertion on elapsed time.

#[path = "support/a2a_agents.rs"]
mod a2a_agents;
#[path = "support/clients.rs"]
mod clients;
#[path = "support/gateway_pod.rs"]
mod gateway_pod;
#[path = "support/mcp_servers.rs"]
mod mcp_servers;
#[path = "support/mock_llm.rs"]
mod mock_llm;
#[path = "support/operator.rs"]
mod operator;
mod support;

use clients::{chat, get, mcp_tools, request};
use gateway_pod::{Pod, WAIT, run_pod};
use kube::api::{ListParams, Patch, PatchParams};
use operator::*;
use serde_json::{Value, json};
use support::{Platform, free_port, wait_until};

/// Waits until the gateway is Ready with one ready replica and its status names the hash the
/// pod serves (the status shows its first 12 hex digits, as the printer column does).
async fn wait_ready_and_current(p: &Platform, ns: &str, kind: &str, name: &str, pod: &Pod) {
    let gw = wait_condition(p, ns, kind, name, "Ready", "True").await;
    assert_eq!(gw.data["status"]["readyReplicas"], 1);
    let api = cairn(p, ns, kind);
    let served = pod.hash().await.expect("the pod names its config hash");
    wait_until(WAIT, "the status to name the hash in service", || async {
        let o = api.get(name).await.ok()?;
        let shown = o.data["status"]["configHash"].as_str()?.to_string();
        (shown.len() == 12 && served.starts_with(&shown)).then_some(())
    })
    .await;
}

/// Edits the main ConfigMap's config by hand (manifest and hash unchanged): the gateway must
/// refuse it and keep serving; the operator must put it back. The operator is stopped while the
/// gateway looks (a running one may put the ConfigMap back before a busy gateway has read the
/// edit, and then there is rightly nothing to refuse) and started again to repair it.
async fn tamper_and_see_it_refused(
    p: &Platform,
    ns: &str,
    op: &mut Operator,
    kind: &str,
    name: &str,
    base: &str,
    pod: &mut Pod,
) {
    use k8s_openapi::api::core::v1::{ConfigMap, Event};
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(p.client.clone(), ns);
    let config_map = format!("{base}-config");
    let original = cms.get(&config_map).await.unwrap();
    let key = cairn::config::packed::TEXT_KEY;
    let text = original.data.as_ref().and_then(|d| d.get(key)).cloned().expect("an identity-encoded config");
    let hash_before = pod.hash().await;
    let identity = op.identity.clone();
    assert!(op.stop(), "SIGTERM ends the operator cleanly");
    let patch = json!({"data": {key: text.replacen('{', "{ ", 1)}});
    cms.patch(&config_map, &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();

    let events: kube::Api<Event> = kube::Api::namespaced(p.client.clone(), ns);
    let refused = wait_until(WAIT, "a ConfigRefused Event", || async {
        let l = events.list(&ListParams::default()).await.ok()?;
        l.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("ConfigRefused")
                && e.involved_object.kind.as_deref() == Some(kind)
                && e.involved_object.name.as_deref() == Some(name)
        })
    })
    .await;
    assert_eq!(refused.type_.as_deref(), Some("Warning"));
    let message = refused.message.unwrap_or_default();
    assert!(message.ends_with("; the last good config keeps serving"), "{message}");
    pod.alive();
    assert_eq!(pod.hash().await, hash_before, "the last good config serves");
    assert_eq!(pod.admin("/readyz").await.0, 200);

    // Drift: the operator, started again, writes the config back.
    *op = Operator::start(p, &[ns], &identity, false);
    wait_until(WAIT, "the operator to put the ConfigMap back", || async {
        let cm = cms.get(&config_map).await.ok()?;
        (cm.data.as_ref()?.get(key)? == &text).then_some(())
    })
    .await;
}

/// An A2A `SendMessage` to agent `name` through the gateway at `port`: (status, JSON-RPC reply).
async fn a2a_send(port: u16, name: &str) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {
        "messageId": "m-1", "role": "ROLE_USER", "parts": [{"text": "hello"}]}}});
    let url = format!("http://127.0.0.1:{port}/agents/{name}");
    let (status, _, text) = request("POST", &url, &[("a2a-version", "1.0")], Some(body)).await;
    (status, serde_json::from_str(&text).unwrap_or_default())
}

async fn start(prefix: &str, manifests: &str) -> (Platform, String, Operator) {
    let (p, ns) = setup(prefix).await;
    apply_yaml(&p, &ns, manifests).await;
    let op = Operator::start(&p, &[&ns], prefix, false);
    op.wait_ready().await;
    (p, ns, op)
}

#[tokio::test]
async fn an_ai_gateway_from_manifests_serves_follows_an_edit_and_refuses_a_bad_config() {
    let mock = mock_llm::MockLlm::start("up").await;
    let port = free_port();
    let route = |models: &str| {
        format!(
            "apiVersion: cairn.dev/v1alpha1\nkind: AIRoute\nmetadata: {{name: chat}}\nspec:\n  \
             gatewayRefs: [{{name: llm}}]\n  rules: [{{matches: [{models}], backends: [{{backendRef: {{name: up}}}}]}}]\n"
        )
    };
    let manifests = format!(
        r#"
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {{name: llm}}
spec:
  listener: {{port: {port}}}
  defaultAction: Allow
  auth: {{allowAnonymous: true}}
  egress: {{allowedCIDRs: [127.0.0.1/32]}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {{name: up}}
spec:
  provider: OpenAICompatible
  url: {url}/v1
  models: [{{name: m}}, {{name: m2}}]
---
{route}"#,
        url = mock.url,
        route = route("{model: m}")
    );
    let (p, ns, mut op) = start("e2e-ai", &manifests).await;
    wait_condition(&p, &ns, "AIGateway", "llm", "Programmed", "True").await;
    let mut pod = run_pod(&p, &ns, "llm", "ai").await;
    wait_ready_and_current(&p, &ns, "AIGateway", "llm", &pod).await;
    assert_eq!(chat(port, "m").await, 200, "{}", pod.stderr());
    assert!(mock.count() >= 1, "the request reached the upstream");
    assert_eq!(chat(port, "m2").await, 404, "no route for m2 yet");

    // Edit the route: the running process serves it.
    let before = pod.hash().await;
    apply_yaml(&p, &ns, &route("{model: m}, {model: m2}")).await;
    pod.until("the edited route is served", || async { chat(port, "m2").await == 200 }).await;
    assert_ne!(pod.hash().await, before);
    wait_ready_and_current(&p, &ns, "AIGateway", "llm", &pod).await;

    tamper_and_see_it_refused(&p, &ns, &mut op, "AIGateway", "llm", "llm-ai-gateway", &mut pod).await;
    assert_eq!(chat(port, "m2").await, 200);
}

#[tokio::test]
async fn an_mcp_gateway_from_manifests_serves_follows_an_edit_and_refuses_a_bad_config() {
    let backend = mcp_servers::serve(mcp_servers::ToolsServer::default).await;
    let port = free_port();
    let server = |prefix: &str| {
        format!(
            "apiVersion: cairn.dev/v1alpha1\nkind: MCPServer\nmetadata: {{name: gh}}\nspec:\n  \
             gatewayRefs: [{{name: tools}}]\n  url: {}\n  prefix: {prefix}\n",
            backend.url
        )
    };
    let manifests = format!(
        r#"
apiVersion: cairn.dev/v1alpha1
kind: MCPGateway
metadata: {{name: tools}}
spec:
  listener: {{port: {port}}}
  defaultAction: Allow
  auth: {{allowAnonymous: true}}
  egress: {{allowedCIDRs: [127.0.0.1/32]}}
---
{}"#,
        server("gh")
    );
    let (p, ns, mut op) = start("e2e-mcp", &manifests).await;
    wait_condition(&p, &ns, "MCPGateway", "tools", "Programmed", "True").await;
    let mut pod = run_pod(&p, &ns, "tools", "mcp").await;
    wait_ready_and_current(&p, &ns, "MCPGateway", "tools", &pod).await;
    let tools = mcp_tools(port).await;
    assert!(tools.iter().any(|t| t == "gh__search_code"), "{tools:?}\n{}", pod.stderr());

    let before = pod.hash().await;
    apply_yaml(&p, &ns, &server("git")).await;
    pod.until("the renamed prefix is served", || async {
        mcp_tools(port).await.iter().any(|t| t == "git__search_code")
    })
    .await;
    assert_ne!(pod.hash().await, before);
    wait_ready_and_current(&p, &ns, "MCPGateway", "tools", &pod).await;

    tamper_and_see_it_refused(&p, &ns, &mut op, "MCPGateway", "tools", "tools-mcp-gateway", &mut pod).await;
    assert!(mcp_tools(port).await.iter().any(|t| t == "git__search_code"));
}

#[tokio::test]
async fn an_agent_gateway_from_manifests_serves_follows_an_edit_and_refuses_a_bad_config() {
    let agent = a2a_agents::TestAgent::start().await;
    let port = free_port();
    let agent_doc = |name: &str| {
        format!(
            "apiVersion: cairn.dev/v1alpha1\nkind: Agent\nmetadata: {{name: {name}}}\nspec:\n  \
             a2a: {{url: \"{}\", gatewayRefs: [{{name: agents}}]}}\n",
            agent.url
        )
    };
    let manifests = format!(
        r#"
apiVersion: cairn.dev/v1alpha1
kind: AgentGateway
metadata: {{name: agents}}
spec:
  listener: {{port: {port}}}
  defaultAction: Allow
  auth: {{allowAnonymous: true}}
  egress: {{allowedCIDRs: [127.0.0.1/32]}}
---
{}"#,
        agent_doc("echo")
    );
    let listed = move |name: &'static str| async move {
        let (status, body) = get(&format!("http://127.0.0.1:{port}/agents"), &[]).await;
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        status == 200
            && v["agents"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["name"] == name && a.get("card").is_some()))
    };
    let (p, ns, mut op) = start("e2e-agent", &manifests).await;
    wait_condition(&p, &ns, "AgentGateway", "agents", "Programmed", "True").await;
    let mut pod = run_pod(&p, &ns, "agents", "agent").await;
    wait_ready_and_current(&p, &ns, "AgentGateway", "agents", &pod).await;
    pod.until("the agent is listed with its card", || listed("echo")).await;
    let (status, reply) = a2a_send(port, "echo").await;
    assert!(status == 200 && reply.get("result").is_some(), "{status} {reply}\n{}", pod.stderr());

    let before = pod.hash().await;
    apply_yaml(&p, &ns, &agent_doc("second")).await;
    pod.until("the new agent is served", || listed("second")).await;
    let (status, reply) = a2a_send(port, "second").await;
    assert!(status == 200 && reply.get("result").is_some(), "{status} {reply}");
    assert_ne!(pod.hash().await, before);
    wait_ready_and_current(&p, &ns, "AgentGateway", "agents", &pod).await;

    tamper_and_see_it_refused(&p, &ns, &mut op, "AgentGateway", "agents", "agents-agent-gateway", &mut pod)
        .await;
    assert!(listed("second").await);
    assert_eq!(a2a_send(port, "second").await.0, 200);
}
