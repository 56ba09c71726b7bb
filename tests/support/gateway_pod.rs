// Included by the operator tests with `#[path = "support/gateway_pod.rs"] mod gateway_pod;` beside
// `mod support;`, `#[path = "support/operator.rs"] mod operator;` and
// `#[path = "support/clients.rs"] mod clients;`; not every test uses every helper.
#![allow(dead_code)]

//! A gateway's pod run as a local process, since the test platform has no kubelet: the rendered
//! Deployment's `gateway` container — its args and environment as rendered (the downward API
//! filled in, the admin port moved to a free one since every test shares one network namespace)
//! — as `cairn gateway` with a kubeconfig holding a TokenRequest token of the rendered
//! ServiceAccount, so the rendered Role is all it may do. Once its readiness probe answers, the
//! ReplicaSet's Pod is marked Ready through the status subresource, as the kubelet would.

use crate::clients::get;
use crate::operator::dynamic;
use crate::support::{Platform, free_port, wait_until};
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a step may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// A gateway's pod, run as a local process.
pub struct Pod {
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
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Panics with the gateway's log when the process exited (a restart would show here).
    pub fn alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("cairn gateway exited ({status}):\n{}", self.stderr());
        }
    }

    pub async fn admin(&self, path: &str) -> (u16, String) {
        get(&format!("http://127.0.0.1:{}{path}", self.admin), &[]).await
    }

    /// The config hash the gateway says it serves.
    pub async fn hash(&self) -> Option<String> {
        let v: Value = serde_json::from_str(&self.admin("/config").await.1).ok()?;
        v["gateways"][0]["configHash"].as_str().map(str::to_string)
    }

    /// Polls `probe` until it holds, checking the process stays the same one.
    pub async fn until<F, Fut>(&mut self, what: &str, mut probe: F)
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
pub async fn run_pod(p: &Platform, ns: &str, name: &str, layer: &str) -> Pod {
    let base = format!("{name}-{layer}-gateway");
    let deployments = dynamic(p, ns, "apps/v1", "Deployment", "deployments");
    let deployment = wait_until(WAIT, &format!("the Deployment {base}"), || async {
        deployments.get_opt(&base).await.ok().flatten()
    })
    .await;
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

pub async fn running_admin(port: u16, path: &str) -> u16 {
    get(&format!("http://127.0.0.1:{port}{path}"), &[]).await.0
}
