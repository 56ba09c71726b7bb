//! The chart installed on the real control plane, the operator it installs run as its pod would
//! run (the Pod's args and environment, a TokenRequest token of the chart's ServiceAccount:
//! `operator::run_chart_pod`), and every example under examples/ reconciled to Ready — with
//! Argo CD's verdict (the chart's health.lua under gopher-lua, as Argo CD runs it) and kstatus'
//! (cli-utils, as Flux computes it) on the live objects read back from the API server at each
//! stage: just applied, rolling out, Ready, with a broken reference, and repaired.
//!
//! There is no kubelet: the test plays it for the gateways' pods and the deployed MCP servers'
//! pods, marking each Pod the ReplicaSets made Ready through the status subresource without
//! running it (that a rendered gateway pod really serves and passes its readiness probe is shown
//! by tests/operator_e2e.rs and tests/helm_install.rs, which run it). The examples' upstreams
//! (api.openai.com, mcp.example.com, in-cluster agents, Redis) are not reached from here and no
//! condition checked below depends on them: an MCPServer's `Discovered` and an Agent's
//! `CardFetched` do, and they are answers, not part of Ready. The ServiceAccounts the examples'
//! Agents name are created, as their workloads would have them.
//!
//! Each example goes into a fresh namespace of its own (their manifests say `agents`,
//! `mcp-tools`, `platform`), which the chart's `watchNamespaces` lists. With `--nocapture` the
//! test prints `kubectl get cairn` for each (the README shows that output).
//!
//! Needs the control plane and the tools of tests/support (tests/run provides both).

#[path = "support/operator.rs"]
mod operator;
mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{Platform, platform, repo_root, tools};

const HEALTH_LUA: &str = "charts/cairn/files/argocd/health.lua";
const GATEWAYS: [&str; 3] = ["AIGateway", "MCPGateway", "AgentGateway"];
const WAIT: Duration = Duration::from_secs(120);

fn id(o: &Value) -> String {
    format!("{}/{}", o["kind"].as_str().unwrap_or("?"), o["metadata"]["name"].as_str().unwrap_or("?"))
}

/// Every live Cairn object in `ns` (`kubectl get cairn -o json`), by kind and name.
fn live(p: &Platform, ns: &str) -> Vec<Value> {
    let list: Value = serde_json::from_str(&p.kubectl_ok(&["-n", ns, "get", "cairn", "-o", "json"])).unwrap();
    let mut items = list["items"].as_array().unwrap().clone();
    items.sort_by_key(id);
    items
}

/// What Argo CD and kstatus say of one live object.
struct Verdict {
    id: String,
    argo: Value,
    kstatus: Value,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: Argo CD {}, kstatus {}", self.id, self.argo, self.kstatus)
    }
}

fn verdicts(objects: &[Value]) -> Vec<Verdict> {
    let script = repo_root().join(HEALTH_LUA);
    let argo = tools::judge("argo-health", Some(&script), objects);
    let kstatus = tools::judge("kstatus", None, objects);
    objects
        .iter()
        .zip(argo.into_iter().zip(kstatus))
        .map(|(o, (argo, kstatus))| Verdict { id: id(o), argo, kstatus })
        .collect()
}

fn conditions(o: &Value) -> Vec<Value> {
    o["status"]["conditions"].as_array().cloned().unwrap_or_default()
}

fn condition(o: &Value, type_: &str) -> Option<Value> {
    conditions(o).into_iter().find(|c| c["type"] == type_)
}

/// Why `o` is not Ready yet (None when it is), by the conditions the operator documents for its
/// kind (docs/operator.md, Status): a gateway has Accepted, ResolvedRefs, Programmed and Ready
/// True, Reconciling and Stalled False, and every replica ready; the other kinds Accepted and
/// ResolvedRefs True, plus Ready (AgentPolicy: a gateway enforces it) and, for an MCPServer the
/// operator deploys, Programmed and Ready. Every condition describes the current generation.
fn not_ready(o: &Value) -> Option<String> {
    let kind = o["kind"].as_str().unwrap();
    let generation = &o["metadata"]["generation"];
    let mut want = vec![("Accepted", "True"), ("ResolvedRefs", "True")];
    if GATEWAYS.contains(&kind) {
        want.extend([
            ("Programmed", "True"),
            ("Ready", "True"),
            ("Reconciling", "False"),
            ("Stalled", "False"),
        ]);
    }
    if kind == "AgentPolicy" {
        want.push(("Ready", "True"));
    }
    if kind == "MCPServer" && o["spec"].get("deployment").is_some() {
        want.extend([("Programmed", "True"), ("Ready", "True")]);
    }
    for (type_, status) in want {
        match condition(o, type_) {
            Some(c) if c["status"] == status && c["observedGeneration"] == *generation => {}
            c => return Some(format!("{}: {type_} is not {status}: {}", id(o), c.unwrap_or(Value::Null))),
        }
    }
    if GATEWAYS.contains(&kind) {
        let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
        if o["status"]["readyReplicas"].as_i64() != Some(want) {
            return Some(format!("{}: {} of {want} replicas ready", id(o), o["status"]["readyReplicas"]));
        }
    }
    None
}

/// The kubelet's part: every Pod in `ns` that is not Ready yet is marked Running and Ready.
async fn kubelet(p: &Platform, ns: &str) {
    let pods = operator::dynamic(p, ns, "v1", "Pod", "pods");
    for pod in pods.list(&Default::default()).await.unwrap() {
        let ready = pod.data["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        if !ready && pod.metadata.deletion_timestamp.is_none() {
            operator::mark_pod_ready(&pods, pod.metadata.name.as_deref().unwrap()).await;
        }
    }
}

/// Plays the kubelet in `namespaces` until every Cairn object there is Ready; then Argo CD must
/// call every one Healthy and kstatus Current.
async fn reconcile_to_ready(p: &Platform, namespaces: &[String], op: &operator::Operator) {
    let start = Instant::now();
    let objects = loop {
        let mut objects = Vec::new();
        for ns in namespaces {
            kubelet(p, ns).await;
            objects.extend(live(p, ns));
        }
        let waiting: Vec<String> = objects.iter().filter_map(not_ready).collect();
        if waiting.is_empty() {
            break objects;
        }
        assert!(
            start.elapsed() < WAIT,
            "not Ready in {WAIT:?}:\n{}\noperator log:\n{}",
            waiting.join("\n"),
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let wrong: Vec<String> = verdicts(&objects)
        .into_iter()
        .filter(|v| v.argo["status"] != "Healthy" || v.kstatus["status"] != "Current")
        .map(|v| format!("{v}"))
        .collect();
    assert!(wrong.is_empty(), "Ready, but:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn the_installed_chart_reconciles_every_example_to_ready_as_argo_cd_and_kstatus_see_it() {
    let p = platform().await;
    let mut examples: Vec<std::path::PathBuf> = std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.is_dir())
        .collect();
    examples.sort();
    let system = p.fresh_namespace("cairn-examples").await;
    let mut namespaces = Vec::new();
    for dir in &examples {
        namespaces.push(p.fresh_namespace(dir.file_name().unwrap().to_str().unwrap()).await);
    }
    let ns_of = |example: &str| {
        let i = examples.iter().position(|d| d.ends_with(example)).unwrap_or_else(|| panic!("no {example}"));
        namespaces[i].clone()
    };
    let release = format!("cairn-{}", &system[system.len() - 4..]);
    let chart = repo_root().join("charts/cairn");
    let admin_port = support::free_port();
    let out = p
        .helm()
        .args(["install", &release, chart.to_str().unwrap(), "-n", &system, "--wait=false"])
        .args(["--set", &format!("watchNamespaces={{{}}}", namespaces.join(","))])
        .args(["--set", &format!("adminPort={admin_port}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "helm install: {}", String::from_utf8_lossy(&out.stderr));

    // Every example applied before the operator runs, and what its Agents run as.
    for (dir, ns) in examples.iter().zip(&namespaces) {
        for doc in operator::apply_dir(&p, ns, dir).await {
            if let Some(sa) = doc["spec"]["identity"]["serviceAccount"]["name"].as_str() {
                let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}});
                p.apply(ns, &sa, false).await.unwrap();
            }
        }
    }

    // Just applied: no status. Argo CD waits for the operator; kstatus has nothing to go on
    // (no observedGeneration, no condition) and says Current, as it does for any custom
    // resource without status — so a Flux `wait` is only as good as the operator's first status
    // write (the README says so).
    let mut applied = Vec::new();
    for ns in &namespaces {
        applied.extend(live(&p, ns));
    }
    let kinds: std::collections::BTreeSet<&str> =
        applied.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), cairn::api::KINDS.len(), "the examples hold every kind: {kinds:?}");
    for v in verdicts(&applied) {
        assert_eq!(v.argo["status"], "Progressing", "{v}");
        assert_eq!(v.argo["message"], "Waiting for the Cairn operator to report status", "{v}");
        assert_eq!(v.kstatus["status"], "Current", "{v}");
    }

    // The operator, as the chart's pod runs it, programs every gateway; with no pod ready yet
    // they are rolling out: Progressing to Argo CD, InProgress to kstatus.
    let (op, _) = operator::run_chart_pod(&p, &system, &release, admin_port).await;
    let gateways: Vec<(String, Value)> = namespaces
        .iter()
        .flat_map(|ns| live(&p, ns).into_iter().map(move |o| (ns.clone(), o)))
        .filter(|(_, o)| GATEWAYS.contains(&o["kind"].as_str().unwrap()))
        .collect();
    let mut rolling = Vec::new();
    for (ns, gw) in &gateways {
        let (kind, name) = (gw["kind"].as_str().unwrap(), gw["metadata"]["name"].as_str().unwrap());
        let o = operator::wait_condition(&p, ns, kind, name, "Programmed", "True").await;
        rolling.push(serde_json::to_value(&o).unwrap());
    }
    for v in verdicts(&rolling) {
        assert_eq!(v.argo["status"], "Progressing", "{v}");
        assert!(v.argo["message"].as_str().unwrap().starts_with("Reconciling ("), "{v}");
        assert_eq!(v.kstatus["status"], "InProgress", "{v}");
    }

    // The kubelet's part done: every object of every example Ready, Healthy, Current.
    reconcile_to_ready(&p, &namespaces, &op).await;
    let platform_ns = ns_of("platform");
    for ns in &namespaces {
        let shown = p.kubectl_ok(&["-n", ns, "get", "cairn"]);
        println!("$ kubectl get cairn -n {ns}\n{shown}");
        for o in live(&p, ns) {
            let kind = o["kind"].as_str().unwrap().to_ascii_lowercase();
            let name = format!("{kind}.cairn.dev/{}", o["metadata"]["name"].as_str().unwrap());
            assert!(shown.contains(&name), "kubectl get cairn -n {ns} does not list {name}:\n{shown}");
        }
    }

    // A broken reference, as users make them: Degraded with the operator's message.
    let quickstart = ns_of("quickstart");
    let mut route = support::read_documents(&repo_root().join("examples/quickstart/gateway.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "AIRoute")
        .unwrap();
    route["spec"]["rules"][0]["backends"][0]["backendRef"]["name"] = "missing".into();
    p.apply(&quickstart, &route, false).await.unwrap();
    let broken_route =
        operator::wait_condition(&p, &quickstart, "AIRoute", "chat", "ResolvedRefs", "False").await;
    p.kubectl_ok(&["-n", &platform_ns, "delete", "secret", "redis"]);
    let broken_gw =
        operator::wait_condition(&p, &platform_ns, "AIGateway", "llm", "ResolvedRefs", "False").await;
    let broken: Vec<Value> =
        [broken_route, broken_gw].iter().map(|o| serde_json::to_value(o).unwrap()).collect();
    let v = verdicts(&broken);
    // The route: Degraded with the ResolvedRefs message naming the missing backend, and Failed
    // to kstatus (which reads only Ready, Reconciling and Stalled): the operator writes Stalled
    // with the cause on every kind.
    assert_eq!(v[0].argo["status"], "Degraded", "{}", v[0]);
    let message = v[0].argo["message"].as_str().unwrap();
    assert!(
        message.starts_with("ResolvedRefs (RefNotFound): ")
            && message.contains(r#"AIBackend "missing" not found"#),
        "{}",
        v[0]
    );
    assert_eq!(condition(&broken[0], "Stalled").unwrap()["status"], "True", "{}", broken[0]);
    assert_eq!(v[0].kstatus["status"], "Failed", "{}", v[0]);
    assert!(
        v[0].kstatus["message"].as_str().unwrap_or_default().contains(r#"AIBackend "missing" not found"#),
        "{}",
        v[0]
    );
    // The gateway whose Redis password Secret went: it stalls (its pods keep the last config),
    // Degraded to Argo CD with the message that names the Secret, and Failed to kstatus.
    assert_eq!(condition(&broken[1], "Stalled").unwrap()["status"], "True", "{}", broken[1]);
    assert_eq!(v[1].argo["status"], "Degraded", "{}", v[1]);
    let message = v[1].argo["message"].as_str().unwrap();
    assert!(
        message.starts_with("ResolvedRefs (RefNotFound): ")
            && message.contains(r#"Secret "redis" not found"#),
        "{}",
        v[1]
    );
    assert_eq!(v[1].kstatus["status"], "Failed", "{}", v[1]);

    // Repaired (the example applied again): every object Ready, Healthy and Current again.
    operator::apply_dir(&p, &quickstart, &repo_root().join("examples/quickstart")).await;
    operator::apply_dir(&p, &platform_ns, &repo_root().join("examples/platform")).await;
    reconcile_to_ready(&p, &namespaces, &op).await;

    drop(op);
    let out = p.helm().args(["uninstall", &release, "-n", &system]).output().unwrap();
    assert!(out.status.success(), "helm uninstall: {}", String::from_utf8_lossy(&out.stderr));
}
