//! The chart on the real control plane: `helm install`, what its ServiceAccount may and may not
//! do (with a TokenRequest token, as the operator's pods get one), `helm upgrade` with a changed
//! value, `helm uninstall`; the user's Cairn objects and the CRDs stay throughout.
//!
//! Needs the control plane of tests/support (tests/run starts it).

#[path = "support/clients.rs"]
mod clients;
#[path = "support/gateway_pod.rs"]
mod gateway_pod;
#[path = "support/operator.rs"]
mod operator;
mod support;

use serde_json::Value;
use std::process::Output;
use support::{Platform, platform, repo_root};

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A release of the chart in a fresh namespace, watching one other fresh namespace, with a free
/// admin port (its operator pod runs as a local process here, beside other tests).
struct Installed {
    system: String,
    watched: String,
    release: String,
    admin_port: u16,
}

async fn install(p: &Platform, prefix: &str, extra: &[&str]) -> Installed {
    let system = p.fresh_namespace(&format!("cairn-{prefix}")).await;
    let watched = p.fresh_namespace(&format!("team-{prefix}")).await;
    let release = format!("cairn-{}", &system[system.len() - 4..]);
    let chart = repo_root().join("charts/cairn");
    let admin_port = support::free_port();
    ok(
        p.helm()
            .args(["install", &release, chart.to_str().unwrap(), "-n", &system, "--wait=false"])
            .args(["--set", &format!("watchNamespaces={{{watched}}}")])
            .args(["--set", &format!("adminPort={admin_port}")])
            .args(extra)
            .output()
            .unwrap(),
        "helm install",
    );
    Installed { system, watched, release, admin_port }
}

/// `kubectl` acting as `token`'s subject: (succeeded, stdout + stderr).
fn kubectl_as(p: &Platform, token: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut cmd = p.kubectl();
    cmd.arg(format!("--token={token}")).args(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn get_json(p: &Platform, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&p.kubectl_ok(&a)).unwrap()
}

fn exists(p: &Platform, args: &[&str]) -> bool {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    p.kubectl().args(&a).output().unwrap().status.success()
}

/// The Role the operator renders for a gateway (CONTRACT-cluster-mode.md), in `ns`.
fn gateway_role(ns: &str, extra_rule: Option<&str>) -> String {
    format!(
        r#"{{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {{"name": "llm-ai-gateway", "namespace": "{ns}"}},
            "rules": [
              {{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"],
                "resourceNames": ["llm-ai-gateway-config", "llm-ai-gateway-config-1"]}},
              {{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"],
                "resourceNames": ["llm-ai-gateway-credentials"]}},
              {{"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}}
              {}
            ]}}"#,
        extra_rule.map(|r| format!(", {r}")).unwrap_or_default()
    )
}

#[tokio::test]
async fn install_grants_the_operator_what_it_needs_upgrade_and_uninstall_keep_users_objects() {
    let p = platform().await;
    let system = p.fresh_namespace("cairn-system").await;
    let watched = p.fresh_namespace("team-a").await;
    let other = p.fresh_namespace("team-b").await;
    let release = format!("cairn-{}", &system[system.len() - 4..]);
    let chart = repo_root().join("charts/cairn");
    let helm = |args: &[&str]| p.helm().args(args).output().unwrap();

    let out = helm(&[
        "install",
        &release,
        chart.to_str().unwrap(),
        "-n",
        &system,
        "--set",
        &format!("watchNamespaces={{{watched}}}"),
        "--wait=false",
    ]);
    let notes = ok(out, "helm install");
    assert!(
        notes.contains(&format!("kubectl -n {system} rollout status deployment/{release}")),
        "NOTES: {notes}"
    );
    assert!(notes.contains("helm show crds"), "NOTES say how to upgrade the CRDs: {notes}");
    let deployment = get_json(&p, &["-n", &system, "deployment", &release]);
    assert_eq!(deployment["spec"]["replicas"], 2);
    for crd in cairn::api::crds() {
        assert!(exists(&p, &["crd", crd.metadata.name.as_deref().unwrap()]));
    }

    // A user's gateway, before anything else happens.
    let gateway = support::read_documents(&repo_root().join("examples/quickstart/gateway.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "AIGateway")
        .expect("the quickstart has an AIGateway");
    let name = gateway["metadata"]["name"].as_str().unwrap().to_string();
    p.apply(&watched, &gateway, false).await.unwrap();
    let uid = get_json(&p, &["-n", &watched, "aigateway", &name])["metadata"]["uid"].clone();

    // The operator's own credentials: a TokenRequest token of the chart's ServiceAccount.
    let token =
        p.kubectl_ok(&["-n", &system, "create", "token", &release, "--duration=10m"]).trim().to_string();
    let can = |args: &[&str]| kubectl_as(&p, &token, args, None);

    // What the operator does: reads the kinds, writes their status (never their spec), writes the
    // gateways' children, and grants the gateway's Role — which RBAC allows only to a subject that
    // holds every permission in it.
    assert!(
        can(&[
            "-n",
            &watched,
            "get",
            "aigateways,airoutes,aibackends,mcpgateways,mcpservers,agentgateways,agents,agentpolicies"
        ])
        .0
    );
    let status = r#"{"status": {"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "lastTransitionTime": "2026-11-24T10:00:00Z", "observedGeneration": 1}]}}"#;
    let (patched, msg) = can(&[
        "-n",
        &watched,
        "patch",
        "aigateway",
        &name,
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
    assert!(patched, "status patch: {msg}");
    let (patched, _) = can(&[
        "-n",
        &watched,
        "patch",
        "aigateway",
        &name,
        "--type=merge",
        "-p",
        r#"{"spec": {"replicas": 5}}"#,
    ]);
    assert!(!patched, "the operator's ServiceAccount may write a spec");
    let (created, msg) = kubectl_as(
        &p,
        &token,
        &["apply", "--server-side", "--field-manager=cairn-operator", "-f", "-"],
        Some(&gateway_role(&watched, None)),
    );
    assert!(created, "the operator cannot grant the gateway's Role: {msg}");
    let (created, msg) = kubectl_as(
        &p,
        &token,
        &["apply", "--server-side", "--field-manager=cairn-operator", "-f", "-"],
        Some(&gateway_role(
            &watched,
            Some(r#"{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}"#),
        )),
    );
    assert!(
        !created && msg.contains("attempting to grant RBAC permissions not currently held"),
        "escalation: {msg}"
    );
    for (args, what) in [
        (
            vec!["-n", &watched, "create", "configmap", "llm-ai-gateway-config", "--from-literal=a=b"],
            "a gateway's ConfigMap",
        ),
        (vec!["-n", &watched, "get", "secrets"], "Secrets of a watched namespace"),
        (vec!["-n", &system, "create", "lease", "cairn-operator"], "its Lease"),
    ] {
        let (allowed, msg) = if args[3] == "lease" {
            let lease = format!(
                r#"{{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {{"name": "cairn-operator", "namespace": "{system}"}}}}"#
            );
            kubectl_as(
                &p,
                &token,
                &["apply", "--server-side", "--field-manager=cairn-operator", "-f", "-"],
                Some(&lease),
            )
        } else {
            can(&args)
        };
        assert!(allowed, "{what}: {msg}");
    }
    // And nothing outside the watched namespaces, nor anything it does not use.
    for (args, what) in [
        (vec!["-n", &other, "get", "aigateways"], "Cairn objects of an unwatched namespace"),
        (vec!["-n", &other, "get", "secrets"], "Secrets of an unwatched namespace"),
        (vec!["-n", &watched, "get", "pods"], "pods"),
        (vec!["-n", &watched, "delete", "secret", "anything"], "deleting Secrets"),
        (vec!["get", "namespaces"], "namespaces"),
        (vec!["-n", &watched, "get", "leases"], "Leases outside its own namespace"),
    ] {
        let (allowed, msg) = can(&args);
        assert!(!allowed && msg.contains("forbidden"), "{what} allowed: {msg}");
    }

    // Upgrade with a changed value: the Deployment follows, the user's objects stay.
    ok(
        helm(&[
            "upgrade",
            &release,
            chart.to_str().unwrap(),
            "-n",
            &system,
            "--reuse-values",
            "--set",
            "logLevel=debug",
            "--wait=false",
        ]),
        "helm upgrade",
    );
    let deployment = get_json(&p, &["-n", &system, "deployment", &release]);
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array().unwrap().iter().any(|e| e["name"] == "RUST_LOG" && e["value"] == "debug"),
        "{env}"
    );
    assert_eq!(get_json(&p, &["-n", &watched, "aigateway", &name])["metadata"]["uid"], uid);

    // Uninstall: the operator goes; the CRDs and the user's objects stay.
    ok(helm(&["uninstall", &release, "-n", &system, "--wait"]), "helm uninstall");
    assert!(!exists(&p, &["-n", &system, "deployment", &release]));
    assert!(!exists(&p, &["-n", &system, "serviceaccount", &release]));
    assert!(!exists(&p, &["-n", &watched, "role", &release]));
    for crd in cairn::api::crds() {
        assert!(exists(&p, &["crd", crd.metadata.name.as_deref().unwrap()]), "helm uninstall removed a CRD");
    }
    assert_eq!(get_json(&p, &["-n", &watched, "aigateway", &name])["metadata"]["uid"], uid);
}

/// The chart's opt-in Argo CD health checks reach argocd-cm by the command NOTES.txt prints.
#[tokio::test]
async fn the_notes_command_merges_the_charts_argo_cd_health_checks_into_argocd_cm() {
    let p = platform().await;
    let system = p.fresh_namespace("cairn-argo").await;
    let argocd = p.fresh_namespace("argocd").await;
    p.kubectl_ok(&[
        "-n",
        &argocd,
        "create",
        "configmap",
        "argocd-cm",
        "--from-literal=url=https://argocd.example.com",
    ]);
    let release = format!("cairn-{}", &system[system.len() - 4..]);
    let chart = repo_root().join("charts/cairn");
    let notes = ok(
        p.helm()
            .args(["install", &release, chart.to_str().unwrap(), "-n", &system, "--wait=false"])
            .args(["--set", "argocd.healthChecks=true", "--set", &format!("argocd.namespace={argocd}")])
            .output()
            .unwrap(),
        "helm install",
    );
    // The two lines after the one that says so, run as a user would (kubectl on PATH).
    let start = notes
        .lines()
        .position(|l| l.starts_with("Argo CD health checks"))
        .expect("NOTES mention the health checks");
    let command: String = notes.lines().skip(start + 2).take(2).collect::<Vec<_>>().join("\n");
    assert!(command.trim_start().starts_with("kubectl"), "{command}");
    let path = format!("{}:{}", p.bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new("bash")
        .args(["-c", &command])
        .env("PATH", path)
        .env("KUBECONFIG", &p.kubeconfig)
        .output()
        .unwrap();
    ok(out, &command);
    let live = get_json(&p, &["-n", &argocd, "configmap", "argocd-cm"]);
    assert_eq!(live["data"]["url"], "https://argocd.example.com");
    let script = std::fs::read_to_string(chart.join("files/argocd/health.lua")).unwrap();
    for kind in cairn::api::KINDS {
        assert_eq!(
            live["data"][format!("resource.customizations.health.cairn.dev_{kind}")],
            script.as_str(),
            "{kind}"
        );
    }
    ok(p.helm().args(["uninstall", &release, "-n", &system]).output().unwrap(), "helm uninstall");
}

/// The Deployment the chart installed, run as a kubelet would: the operator container's args and
/// environment exactly as rendered (downward API values filled in), with a TokenRequest token of
/// the chart's ServiceAccount. It must take the release's Lease under the pod's name, serve
/// /readyz on the chart's admin port and program a user's gateway in a watched namespace — so
/// the chart's command line, environment and RBAC are what the operator needs. On SIGTERM it exits
/// cleanly and releases the Lease.
#[tokio::test]
async fn the_installed_operator_container_runs_leads_and_programs_a_gateway() {
    let p = platform().await;
    let Installed { system, watched, release, admin_port } = install(&p, "run", &[]).await;
    let (mut op, pod_name) = operator::run_chart_pod(&p, &system, &release, admin_port).await;

    let gateway = support::read_documents(&repo_root().join("examples/quickstart/gateway.yaml"));
    for doc in &gateway {
        p.apply(&watched, doc, false).await.unwrap();
    }
    operator::wait_condition(&p, &watched, "AIGateway", "llm", "Programmed", "True").await;
    assert!(op.is_leader(), "{}", op.log_text());
    let lease = get_json(&p, &["-n", &system, "lease", &release]);
    assert_eq!(lease["spec"]["holderIdentity"], pod_name.as_str());
    let log = op.log_text();
    assert!(
        log.lines().any(
            |l| serde_json::from_str::<Value>(l).is_ok_and(|j| j["message"] == "cairn operator starting")
        ),
        "JSON logs: {log}"
    );
    assert!(op.stop(), "SIGTERM: a clean exit\n{}", op.log_text());
    // ... having released the Lease, so a standby need not wait for it to expire.
    let lease = get_json(&p, &["-n", &system, "lease", &release]);
    assert_ne!(lease["spec"]["holderIdentity"], pod_name.as_str(), "{lease}");
    ok(p.helm().args(["uninstall", &release, "-n", &system]).output().unwrap(), "helm uninstall");
}

/// `helm upgrade` with a changed value while a gateway serves: the operator's Deployment rolls to
/// a new revision (its new pod, run as the kubelet would, takes over the Lease and reconciles),
/// and the user's objects and the gateway's children are left exactly as they were — same uid,
/// same resourceVersion, no write at all — while the gateway keeps serving and stays Ready.
/// `helm uninstall` then removes the operator; the gateway and its children stay and serve.
#[tokio::test]
async fn an_upgrade_rolls_the_operator_while_a_gateway_serves_untouched_and_uninstall_leaves_it() {
    let p = platform().await;
    let Installed { system, watched, release, admin_port } =
        install(&p, "roll", &["--set", "replicaCount=1"]).await;
    let (mut op, first_pod) = operator::run_chart_pod(&p, &system, &release, admin_port).await;

    // The quickstart, on a free port (every test shares one network namespace), served by its
    // gateway's pod.
    let port = support::free_port();
    for mut doc in support::read_documents(&repo_root().join("examples/quickstart/gateway.yaml")) {
        if doc["kind"] == "AIGateway" {
            doc["spec"]["listener"]["port"] = port.into();
        }
        p.apply(&watched, &doc, false).await.unwrap();
    }
    operator::wait_condition(&p, &watched, "AIGateway", "llm", "Programmed", "True").await;
    let mut pod = gateway_pod::run_pod(&p, &watched, "llm", "ai").await;
    operator::wait_condition(&p, &watched, "AIGateway", "llm", "Ready", "True").await;
    assert_eq!(clients::chat(port, "gpt-4o-mini").await, 200, "{}", pod.stderr());
    // Settled: the status names the config in service, so nothing is left for anyone to write.
    operator::wait_condition(&p, &watched, "AIGateway", "llm", "Reconciling", "False").await;
    let before = operator::versions(&p, &watched, operator::ALL_KINDS).await;
    let uids_before = uids(&p, &watched).await;
    assert!(before.iter().any(|(k, _)| k == "Deployment/llm-ai-gateway"), "{before:?}");
    let revision = |p: &Platform| {
        get_json(p, &["-n", &system, "deployment", &release])["metadata"]["annotations"]
            ["deployment.kubernetes.io/revision"]
            .clone()
    };
    assert_eq!(revision(&p), "1");

    ok(
        p.helm()
            .args(["upgrade", &release, repo_root().join("charts/cairn").to_str().unwrap(), "-n", &system])
            .arg("--wait=false")
            .args(["--reuse-values", "--set", "logLevel=debug"])
            .output()
            .unwrap(),
        "helm upgrade",
    );
    // The Deployment rolls: a new revision, whose pod replaces the old one. The kubelet would stop
    // the old pod (SIGTERM: it releases the Lease) and start the new one.
    support::wait_until(gateway_pod::WAIT, "revision 2 of the operator's Deployment", || async {
        (revision(&p) == "2").then_some(())
    })
    .await;
    assert!(op.stop(), "SIGTERM: a clean exit\n{}", op.log_text());
    let (op, second_pod) = operator::run_chart_pod(&p, &system, &release, admin_port).await;
    assert_ne!(second_pod, first_pod);
    let pod_env = get_json(&p, &["-n", &system, "pod", &second_pod])["spec"]["containers"][0]["env"].clone();
    assert!(
        pod_env.as_array().unwrap().iter().any(|e| e["name"] == "RUST_LOG" && e["value"] == "debug"),
        "the new pod has the changed value: {pod_env}"
    );
    ok(
        p.kubectl()
            .args(["-n", &system, "rollout", "status", &format!("deployment/{release}"), "--timeout=60s"])
            .output()
            .unwrap(),
        "kubectl rollout status",
    );
    // The new operator leads and has reconciled every object: with nothing to change.
    support::wait_until(gateway_pod::WAIT, "the new operator to reconcile every object", || async {
        let done = op.is_leader()
            && ["AIGateway", "AIBackend", "AIRoute"]
                .iter()
                .all(|k| op.metric("cairn_operator_reconciles_total", &[&format!("kind=\"{k}\"")]) >= 1.0);
        done.then_some(())
    })
    .await;
    assert_eq!(op.writes(), 0.0, "the new operator changed something:\n{}", op.log_text());
    assert_eq!(operator::versions(&p, &watched, operator::ALL_KINDS).await, before);
    assert_eq!(uids(&p, &watched).await, uids_before);
    pod.alive();
    assert_eq!(clients::chat(port, "gpt-4o-mini").await, 200, "{}", pod.stderr());
    operator::wait_condition(&p, &watched, "AIGateway", "llm", "Ready", "True").await;

    // Uninstall: the operator goes (the kubelet would stop its pod); the gateway stays and serves.
    ok(p.helm().args(["uninstall", &release, "-n", &system, "--wait"]).output().unwrap(), "helm uninstall");
    drop(op);
    assert!(!exists(&p, &["-n", &system, "deployment", &release]));
    // Only the chart's own Role and RoleBinding in the watched namespace went.
    let charts = [format!("Role/{release}"), format!("RoleBinding/{release}")];
    let users: Vec<(String, String)> = uids_before.into_iter().filter(|(k, _)| !charts.contains(k)).collect();
    assert_eq!(uids(&p, &watched).await, users);
    pod.alive();
    assert_eq!(clients::chat(port, "gpt-4o-mini").await, 200, "{}", pod.stderr());
}

/// uid of every object of [`operator::ALL_KINDS`] in `ns`, by "kind/name".
async fn uids(p: &Platform, ns: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (av, kind, plural) in operator::ALL_KINDS {
        let list = operator::dynamic(p, ns, av, kind, plural).list(&Default::default()).await.unwrap();
        for o in list {
            out.push((format!("{kind}/{}", o.metadata.name.unwrap()), o.metadata.uid.unwrap()));
        }
    }
    out.sort();
    out
}
