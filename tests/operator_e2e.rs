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
#[path = "support/mcp_servers.rs"]
mod mcp_servers;
#[path = "support/mock_llm.rs"]
mod mock_llm;
#[path = "support/operator.rs"]
mod operator;
mod support;

use clients::{chat, get, mcp_tools, request};
use kube::api::{ListParams, Patch, PatchParams};
use operator::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{Platform, free_port, wait_until};

const WAIT: Duration = Duration::from_secs(60);

/// A gateway's pod, run as a local process.
struct Pod {
    child: Child,
    name: String,
    admin: u16,
    err: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pod {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Panics with the gateway's log when the process exited (a restart would show here).
    fn alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("cairn gateway exited ({status}):\n{}", self.stderr());
        }
    }

    async fn admin(&self, path: &str) -> (u16, String) {
        get(&format!("http://127.0.0.1:{}{path}", self.admin), &[]).await
    }

    /// The config hash the gateway says it serves.
    async fn hash(&self) -> Option<String> {
        let v: Value = serde_json::from_str(&self.admin("/config").await.1).ok()?;
        v["gateways"][0]["configHash"].as_str().map(str::to_string)
    }

    /// Polls `probe` until it holds, checking the process stays the same one.
    async fn until<F, Fut>(&mut self, what: &str, mut probe: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = std::time::Instant::now();
        loop {
            self.alive();
            if probe().await {
                return;
            }
            assert!(start.elapsed() < WAIT, "{what}: not in time\n{}", self.stderr());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs the pod of gateway `name` (`layer`) in `ns` as the kubelet would, then marks it Ready
/// once its readiness probe passes.
async fn run_pod(p: &Platform, ns: &str, name: &str, layer: &str) -> Pod {
    let base = format!("{name}-{layer}-gateway");
    let deployment =
        dynamic(p, ns, "apps/v1", "Deployment", "deployments").get(&base).await.expect("the Deployment");
    let spec = &deployment.data["spec"]["template"]["spec"];
    let container = spec["containers"].as_array().unwrap().iter().find(|c| c["name"] == "gateway").unwrap();

    // The Pod the ReplicaSet made (no scheduler: it stays Pending until this test says otherwise).
    let pods = dynamic(p, ns, "v1", "Pod", "pods");
    let selector = format!("app.kubernetes.io/instance={name},app.kubernetes.io/component={layer}-gateway");
    let pod = wait_until(WAIT, &format!("the pod of {base}"), || async {
        pods.list(&ListParams::default().labels(&selector)).await.ok()?.items.into_iter().next()
    })
    .await;
    let pod_name = pod.metadata.name.clone().unwrap();
    assert_eq!(pod.data["spec"]["serviceAccountName"], base, "the pod runs as the gateway's own account");

    // Args as rendered; the admin port (9090 in every pod) moved to a free one, loopback only.
    let admin = free_port();
    let mut args: Vec<String> =
        container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let i = args.iter().position(|a| a == "--admin-port").expect("--admin-port in the args");
    assert_eq!(args[i + 1], "9090");
    args[i + 1] = admin.to_string();
    args.extend(["--address".into(), "127.0.0.1".into()]);
    let admin_port = container["ports"].as_array().unwrap().iter().find(|p| p["name"] == "admin").unwrap();
    assert_eq!(admin_port["containerPort"], 9090);
    let probe = &container["readinessProbe"]["httpGet"];
    assert_eq!(probe["port"], "admin");
    let probe_path = probe["path"].as_str().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = p.service_account_kubeconfig(ns, &base, dir.path());
    let err = dir.path().join("gateway.err");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(&args)
        .env_remove("POD_NAMESPACE")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("KUBECONFIG", &kubeconfig)
        // What the kubelet sets: the pod's name as its host name.
        .env("HOSTNAME", &pod_name);
    for e in container["env"].as_array().into_iter().flatten() {
        let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.namespace") => ns.to_string(),
            Some("metadata.name") => pod_name.clone(),
            Some(other) => panic!("a downward API field this test does not fill: {other}"),
            None => e["value"].as_str().unwrap_or_default().to_string(),
        };
        cmd.env(e["name"].as_str().unwrap(), value);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("starting cairn gateway");
    let mut running = Pod { child, name: pod_name, admin, err, _dir: dir };

    // The readiness probe, then what the kubelet reports.
    running.until("the readiness probe", || async { running_admin(admin, &probe_path).await == 200 }).await;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
        {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
    pods.patch_status(&running.name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    running
}

async fn running_admin(port: u16, path: &str) -> u16 {
    get(&format!("http://127.0.0.1:{port}{path}"), &[]).await.0
}

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
/// refuse it and keep serving; the operator must put it back.
async fn tamper_and_see_it_refused(
    p: &Platform,
    ns: &str,
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

    // Drift: the operator writes the config back.
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
    let (p, ns, _op) = start("e2e-ai", &manifests).await;
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

    tamper_and_see_it_refused(&p, &ns, "AIGateway", "llm", "llm-ai-gateway", &mut pod).await;
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
    let (p, ns, _op) = start("e2e-mcp", &manifests).await;
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

    tamper_and_see_it_refused(&p, &ns, "MCPGateway", "tools", "tools-mcp-gateway", &mut pod).await;
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
    let (p, ns, _op) = start("e2e-agent", &manifests).await;
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

    tamper_and_see_it_refused(&p, &ns, "AgentGateway", "agents", "agents-agent-gateway", &mut pod).await;
    assert!(listed("second").await);
    assert_eq!(a2a_send(port, "second").await.0, 200);
}
