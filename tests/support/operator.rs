// Included by the operator tests with `#[path = "support/operator.rs"] mod operator;` beside
// `mod support;`; not every test uses every helper.
#![allow(dead_code)]

//! `cairn operator` as a child process against the test control plane, and helpers to look at
//! what it wrote. Each test runs its own operator watching only its own namespaces (so tests
//! running side by side never see each other's objects), with JSON logs in
//! `target/operator-logs/<identity>.log`.

use crate::support::{Platform, free_port, wait_until};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use std::path::Path;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `cairn operator`.
pub struct Operator {
    child: Option<Child>,
    /// Port of /metrics, /healthz, /readyz.
    pub http: u16,
    /// Its log file.
    pub log: PathBuf,
    /// Lease holder identity.
    pub identity: String,
    /// What must live as long as the process (its kubeconfig).
    keep: Option<tempfile::TempDir>,
}

impl Operator {
    /// Starts an operator watching `namespaces`, with leader election on a Lease in the first
    /// of them when `leader_elect`.
    pub fn start(p: &Platform, namespaces: &[&str], identity: &str, leader_elect: bool) -> Operator {
        let http = free_port();
        let mut args: Vec<String> = vec!["operator".into()];
        let mut add = |a: &[&str]| args.extend(a.iter().map(|s| s.to_string()));
        add(&["--address", "127.0.0.1", "--admin-port", &http.to_string()]);
        add(&["--identity", identity]);
        add(&["--gateway-image", "registry.example.com/cairn:test"]);
        add(&["--leader-elect", if leader_elect { "true" } else { "false" }]);
        add(&["--lease-namespace", namespaces[0]]);
        for ns in namespaces {
            add(&["--namespace", ns]);
        }
        let log_filter = std::env::var("CAIRN_OPERATOR_LOG").unwrap_or_else(|_| "info,cairn=debug".into());
        Operator::spawn(&p.kubeconfig, &args, &[("RUST_LOG".into(), log_filter)], identity, http)
    }

    /// Runs `cairn` with exactly `args` and `env` (plus KUBECONFIG), as a pod would; `http` is
    /// the admin port those args choose, `identity` names the log file.
    pub fn spawn(
        kubeconfig: &Path,
        args: &[String],
        env: &[(String, String)],
        identity: &str,
        http: u16,
    ) -> Operator {
        let dir = crate::support::repo_root().join("target/operator-logs");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{identity}.log"));
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("cairn operator starts");
        Operator { child: Some(child), http, log, identity: identity.to_string(), keep: None }
    }

    /// Waits until `/readyz` answers 200 (every cache synced).
    pub async fn wait_ready(&self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.http);
        wait_until(Duration::from_secs(60), &format!("operator {} ready", self.identity), || async {
            let out = Command::new("curl").args(["-fsS", "-o", "/dev/null", &url]).status().ok()?;
            out.success().then_some(())
        })
        .await;
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let out = Command::new("curl")
            .args(["-fsS", &format!("http://127.0.0.1:{}/metrics", self.http)])
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sum of the samples of metric `name` whose labels contain every one of `labels`.
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| labels.iter().all(|x| l.contains(x)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Requests that changed an object (apply that changed it, status, delete).
    pub fn writes(&self) -> f64 {
        self.metric("cairn_operator_writes_total", &[])
            - self.metric("cairn_operator_writes_total", &["apply_unchanged"])
    }

    /// Whether it holds the Lease.
    pub fn is_leader(&self) -> bool {
        self.metric("cairn_operator_leader", &[]) == 1.0
    }

    /// Sends SIGTERM and waits for the process to exit (it finishes its writes and releases
    /// the Lease); returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        for _ in 0..150 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills the process with SIGKILL, as a node failure or the OOM killer would: no write in
    /// flight is finished and the Lease is not released.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The log so far, for assertion messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One pod of the chart's operator Deployment `release` in `ns`, run as the kubelet would run
/// it (there is none here): the Pod that the ReplicaSet of the Deployment's current revision
/// made, its container's args and environment exactly as in the Pod (the downward API filled
/// in), with a TokenRequest token of the Pod's ServiceAccount; once `/readyz` answers on
/// `admin_port` (the chart's `adminPort` value) the Pod is marked Ready. Returns the operator
/// and the Pod's name (its Lease identity).
pub async fn run_chart_pod(p: &Platform, ns: &str, release: &str, admin_port: u16) -> (Operator, String) {
    const REVISION: &str = "deployment.kubernetes.io/revision";
    let deployments = dynamic(p, ns, "apps/v1", "Deployment", "deployments");
    let replica_sets = dynamic(p, ns, "apps/v1", "ReplicaSet", "replicasets");
    let pods = dynamic(p, ns, "v1", "Pod", "pods");
    let pod = wait_until(Duration::from_secs(60), "a pod of the operator's current revision", || async {
        let d = deployments.get(release).await.ok()?;
        let revision = d.metadata.annotations?.get(REVISION)?.clone();
        let rs = replica_sets.list(&ListParams::default()).await.ok()?.items.into_iter().find(|rs| {
            controlled_by(rs, "Deployment", release)
                && rs.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)) == Some(&revision)
        })?;
        let rs = rs.metadata.name?;
        let mut list = pods.list(&ListParams::default()).await.ok()?.items;
        list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        list.into_iter()
            .find(|p| controlled_by(p, "ReplicaSet", &rs) && p.metadata.deletion_timestamp.is_none())
    })
    .await;
    let name = pod.metadata.name.clone().unwrap();
    let spec = &pod.data["spec"];
    let container = &spec["containers"][0];
    let args: Vec<String> =
        container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.namespace") => ns.to_string(),
                Some("metadata.name") => name.clone(),
                Some(other) => panic!("a downward API field this test does not fill: {other}"),
                None => e["value"].as_str().unwrap().to_string(),
            };
            (e["name"].as_str().unwrap().to_string(), value)
        })
        .collect();
    let token = service_account_token(p, ns, spec["serviceAccountName"].as_str().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    kubeconfig_with_token(p, &token, &kubeconfig);
    let mut op = Operator::spawn(&kubeconfig, &args, &env, &name, admin_port);
    op.keep = Some(dir);
    op.wait_ready().await;
    mark_pod_ready(&pods, &name).await;
    (op, name)
}

/// An API handle for any kind by `apiVersion` and `kind`, in `ns`.
pub fn dynamic(p: &Platform, ns: &str, api_version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Api::namespaced_with(p.client.clone(), ns, &ar)
}

/// A Cairn kind's API handle in `ns` (plural: lower-case kind + `s`, `agentpolicies`).
pub fn cairn(p: &Platform, ns: &str, kind: &str) -> Api<DynamicObject> {
    let plural = match kind {
        "AgentPolicy" => "agentpolicies".to_string(),
        k => format!("{}s", k.to_ascii_lowercase()),
    };
    dynamic(p, ns, "cairn.dev/v1alpha1", kind, &plural)
}

/// The condition `type` of an object's status.
pub fn condition(obj: &DynamicObject, type_: &str) -> Option<Value> {
    obj.data["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_).cloned()
}

/// Waits until `kind/name` has condition `type_` with `status`, and returns the object.
pub async fn wait_condition(
    p: &Platform,
    ns: &str,
    kind: &str,
    name: &str,
    type_: &str,
    status: &str,
) -> DynamicObject {
    let api = cairn(p, ns, kind);
    wait_until(Duration::from_secs(60), &format!("{kind}/{name} {type_}={status}"), || async {
        let o = api.get(name).await.ok()?;
        let c = condition(&o, type_)?;
        (c["status"] == status && c["observedGeneration"] == o.metadata.generation.unwrap_or(-1)).then_some(o)
    })
    .await
}

/// Plays the kubelet for pod `name` (the controller-manager made it; nothing runs it here):
/// Running and Ready.
pub async fn mark_pod_ready(pods: &Api<DynamicObject>, name: &str) {
    use kube::api::{Patch, PatchParams};
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = serde_json::json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("marking pod {name} Ready: {e}"));
}

/// `resourceVersion` of every object of `kinds` (api_version, kind, plural) in `ns`, by
/// "kind/name".
pub async fn versions(p: &Platform, ns: &str, kinds: &[(&str, &str, &str)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (av, kind, plural) in kinds {
        let list = dynamic(p, ns, av, kind, plural).list(&ListParams::default()).await.unwrap();
        for o in list {
            out.push((format!("{kind}/{}", o.metadata.name.unwrap()), o.metadata.resource_version.unwrap()));
        }
    }
    out.sort();
    out
}

/// Every kind the operator writes or reads, for [`versions`].
pub const ALL_KINDS: &[(&str, &str, &str)] = &[
    ("cairn.dev/v1alpha1", "AIGateway", "aigateways"),
    ("cairn.dev/v1alpha1", "MCPGateway", "mcpgateways"),
    ("cairn.dev/v1alpha1", "AgentGateway", "agentgateways"),
    ("cairn.dev/v1alpha1", "AIBackend", "aibackends"),
    ("cairn.dev/v1alpha1", "AIRoute", "airoutes"),
    ("cairn.dev/v1alpha1", "MCPServer", "mcpservers"),
    ("cairn.dev/v1alpha1", "Agent", "agents"),
    ("cairn.dev/v1alpha1", "AgentPolicy", "agentpolicies"),
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "Secret", "secrets"),
    ("v1", "ServiceAccount", "serviceaccounts"),
    ("v1", "Service", "services"),
    ("rbac.authorization.k8s.io/v1", "Role", "roles"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    ("apps/v1", "Deployment", "deployments"),
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
];

/// A TokenRequest token of ServiceAccount `sa` in `ns` (what its pods would be given).
pub async fn service_account_token(p: &Platform, ns: &str, sa: &str) -> String {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let sas = Api::<ServiceAccount>::namespaced(p.client.clone(), ns);
    let tr: TokenRequest =
        serde_json::from_value(serde_json::json!({"spec": {"expirationSeconds": 3600}})).unwrap();
    let tr = sas.create_token_request(sa, &kube::api::PostParams::default(), &tr).await.unwrap();
    tr.status.expect("TokenRequest without status").token
}

/// A kubeconfig file for the test cluster that authenticates with `token`, written to `path`.
pub fn kubeconfig_with_token(p: &Platform, token: &str, path: &std::path::Path) {
    let mut kc: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(&p.kubeconfig).unwrap())
        .expect("the kubeconfig parses");
    kc["users"][0]["user"] = serde_json::json!({"token": token});
    std::fs::write(path, serde_json::to_string(&kc).unwrap()).unwrap();
}

/// A client that authenticates with `token`.
pub async fn client_with_token(p: &Platform, token: &str) -> kube::Client {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    kubeconfig_with_token(p, token, &path);
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Applies every document of the YAML files under `dir` into `ns`.
pub async fn apply_dir(p: &Platform, ns: &str, dir: &Path) -> Vec<Value> {
    let mut docs = Vec::new();
    for f in crate::support::yaml_files(dir) {
        for d in crate::support::read_documents(&f) {
            p.apply(ns, &d, false).await.unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            docs.push(d);
        }
    }
    docs
}

pub async fn apply_yaml(p: &Platform, ns: &str, yaml: &str) {
    for d in crate::support::parse_documents(yaml, "test") {
        p.apply(ns, &d, false).await.unwrap_or_else(|e| panic!("{e}: {d}"));
    }
}

pub async fn setup(prefix: &str) -> (Platform, String) {
    let p = crate::support::platform().await;
    p.install_crds().await;
    let ns = p.fresh_namespace(prefix).await;
    (p, ns)
}

pub fn layer(kind: &str) -> &'static str {
    match kind {
        "AIGateway" => "ai",
        "MCPGateway" => "mcp",
        _ => "agent",
    }
}

/// The main ConfigMap's config hash annotation of a gateway.
pub async fn config_hash(p: &Platform, ns: &str, base: &str) -> Option<String> {
    let cm = dynamic(p, ns, "v1", "ConfigMap", "configmaps").get(&format!("{base}-config")).await.ok()?;
    cm.metadata.annotations?.get("cairn.dev/config-hash").cloned()
}

/// The credentials bundle in a gateway's Secret.
pub async fn bundle(p: &Platform, ns: &str, base: &str) -> Option<serde_json::Map<String, Value>> {
    use base64::Engine;
    let s =
        dynamic(p, ns, "v1", "Secret", "secrets").get_opt(&format!("{base}-credentials")).await.ok()??;
    let b64 = s.data["data"]["credentials.json"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn controlled_by(o: &DynamicObject, kind: &str, name: &str) -> bool {
    o.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.kind == kind && r.name == name && r.controller == Some(true))
}

pub const QUICKSTART_ROUTE_EDIT: &str = r#"
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {name: chat}
spec:
  gatewayRefs: [{name: llm}]
  rules:
    - matches: [{model: gpt-4.1-mini}]
      backends: [{backendRef: {name: echo}, model: echo-1}]
"#;

/// Incompressible text (base64 of a SHA-256 chain) of about `n` bytes.
pub fn noise(seed: &str, n: usize) -> String {
    use base64::Engine;
    use sha2::Digest;
    let mut h = sha2::Sha256::digest(seed.as_bytes()).to_vec();
    let mut out = String::with_capacity(n + 64);
    while out.len() < n {
        h = sha2::Sha256::digest(&h).to_vec();
        out.push_str(&base64::engine::general_purpose::STANDARD_NO_PAD.encode(&h));
    }
    out
}
