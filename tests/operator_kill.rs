//! `cairn operator` SIGKILLed in the middle of reconciling a namespace of many gateways (issue
//! #16), against the real control plane. Restarted, or replaced by its standby once the dead
//! leader's Lease runs out, it converges: every child the gateways render exists exactly once,
//! controlled by its gateway (the live object's uid), nothing else carries the operator's label or
//! an owner reference to a Cairn object, and every gateway is Accepted, Programmed with the hash
//! of its ConfigMap, and Ready once the test plays the kubelet for its pods. Specs changed while
//! the operator was dead are followed: a PodDisruptionBudget no longer rendered is pruned, a
//! deleted gateway's children are gone, a new gateway gets its own.
//!
//! tests/operator_lifecycle.rs has the clean restart (writes nothing) and the graceful hand-over
//! (SIGTERM releases the Lease).

#[path = "support/operator.rs"]
mod operator;
mod support;

use kube::api::{DeleteParams, ListParams};
use operator::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use support::{Platform, wait_until};

/// The kinds the operator writes for a gateway.
const CHILD_KINDS: &[(&str, &str, &str)] = &[
    ("v1", "ServiceAccount", "serviceaccounts"),
    ("rbac.authorization.k8s.io/v1", "Role", "roles"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    ("v1", "Secret", "secrets"),
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "Service", "services"),
    ("apps/v1", "Deployment", "deployments"),
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
];

/// A gateway of the workload.
#[derive(Clone, Debug)]
struct Gw {
    kind: &'static str,
    name: String,
    replicas: i64,
}

impl Gw {
    fn new(kind: &'static str, name: &str, replicas: i64) -> Gw {
        Gw { kind, name: name.to_string(), replicas }
    }

    /// The gateway and what attaches to it: an AIRoute to the shared Echo backend, an
    /// MCPServer, or an Agent.
    fn documents(&self) -> [Value; 2] {
        let name = &self.name;
        let gw = json!({"apiVersion": "cairn.dev/v1alpha1", "kind": self.kind, "metadata": {"name": name},
            "spec": {"listener": {"port": 8080}, "replicas": self.replicas, "defaultAction": "Allow",
                     "auth": {"allowAnonymous": true}}});
        let refs = json!([{"name": name}]);
        let attached = match self.kind {
            "AIGateway" => json!({"kind": "AIRoute", "spec": {"gatewayRefs": refs, "rules": [
                {"matches": [{"model": "m"}], "backends": [{"backendRef": {"name": "echo"}, "model": "echo-1"}]}]}}),
            "MCPGateway" => json!({"kind": "MCPServer",
                "spec": {"gatewayRefs": refs, "url": format!("http://{name}.tools:8080/mcp")}}),
            _ => json!({"kind": "Agent",
                "spec": {"a2a": {"url": format!("http://{name}.agents:8000"), "gatewayRefs": refs}}}),
        };
        let mut attached = attached;
        attached["apiVersion"] = json!("cairn.dev/v1alpha1");
        attached["metadata"] = json!({"name": name});
        [gw, attached]
    }

    async fn apply(&self, p: &Platform, ns: &str) {
        for d in self.documents() {
            p.apply(ns, &d, false).await.unwrap_or_else(|e| panic!("{}: {d}", support::error_message(&e)));
        }
    }

    /// What the operator renders for it, by (kind, name).
    fn children(&self) -> Vec<(String, String)> {
        let base = format!("{}-{}-gateway", self.name, layer(self.kind));
        let mut out: Vec<(&str, String)> = vec![
            ("ServiceAccount", base.clone()),
            ("Role", base.clone()),
            ("RoleBinding", base.clone()),
            ("Secret", format!("{base}-credentials")),
            ("ConfigMap", format!("{base}-config")),
            ("Service", base.clone()),
            ("Deployment", base.clone()),
        ];
        if self.replicas > 1 {
            out.push(("PodDisruptionBudget", base.clone()));
        }
        out.into_iter().map(|(k, n)| (k.to_string(), n)).collect()
    }
}

/// Twelve gateways, four of each layer, every other one with two replicas (and so a PDB).
fn workload() -> Vec<Gw> {
    let mut out = Vec::new();
    for (kind, prefix) in [("AIGateway", "llm"), ("MCPGateway", "tools"), ("AgentGateway", "agents")] {
        for i in 0..4 {
            out.push(Gw::new(kind, &format!("{prefix}-{i}"), 1 + (i % 2)));
        }
    }
    out
}

async fn apply_echo_backend(p: &Platform, ns: &str) {
    let echo = json!({"apiVersion": "cairn.dev/v1alpha1", "kind": "AIBackend", "metadata": {"name": "echo"},
        "spec": {"provider": "Echo", "models": [{"name": "echo-1"}]}});
    p.apply(ns, &echo, false).await.unwrap();
}

/// Every object of the child kinds in `ns` that carries the operator's label or an owner
/// reference to a Cairn object: its controller references as (kind, name, uid), by (kind, name).
type Found = BTreeMap<(String, String), Vec<(String, String, String)>>;

async fn found(p: &Platform, ns: &str) -> Found {
    let mut out = Found::new();
    for (av, kind, plural) in CHILD_KINDS {
        let list = dynamic(p, ns, av, kind, plural).list(&ListParams::default()).await.unwrap();
        for o in list {
            let labelled = o.metadata.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/managed-by"))
                == Some(&"cairn-operator".to_string());
            let refs: Vec<_> = o
                .metadata
                .owner_references
                .iter()
                .flatten()
                .filter(|r| r.api_version.starts_with("cairn.dev/"))
                .collect();
            if !labelled && refs.is_empty() {
                continue;
            }
            let controllers = refs
                .iter()
                .filter(|r| r.controller == Some(true))
                .map(|r| (r.kind.clone(), r.name.clone(), r.uid.clone()))
                .collect();
            out.insert((kind.to_string(), o.metadata.name.unwrap()), controllers);
        }
    }
    out
}

/// Whether `ns` holds exactly the children of `gws`, each controlled by its live gateway, and
/// every gateway is Accepted and Programmed with its ConfigMap's hash; what differs when not.
async fn converged(p: &Platform, ns: &str, gws: &[Gw]) -> Result<(), String> {
    let found = found(p, ns).await;
    let mut want = BTreeMap::new();
    for gw in gws {
        let o = cairn(p, ns, gw.kind).get(&gw.name).await.map_err(|e| e.to_string())?;
        let uid = o.metadata.uid.clone().unwrap();
        for child in gw.children() {
            want.insert(child, vec![(gw.kind.to_string(), gw.name.clone(), uid.clone())]);
        }
        let generation = o.metadata.generation.unwrap_or(-1);
        for t in ["Accepted", "Programmed"] {
            let c = condition(&o, t).ok_or(format!("{}/{}: no {t}", gw.kind, gw.name))?;
            if c["status"] != "True" || c["observedGeneration"] != generation {
                return Err(format!("{}/{}: {c}", gw.kind, gw.name));
            }
        }
        let base = format!("{}-{}-gateway", gw.name, layer(gw.kind));
        let hash = config_hash(p, ns, &base).await.ok_or(format!("{base}: no config hash"))?;
        if o.data["status"]["configHash"] != hash[..12] {
            return Err(format!(
                "{}/{}: status names {} for {hash}",
                gw.kind, gw.name, o.data["status"]["configHash"]
            ));
        }
    }
    if found != want {
        let extra: Vec<_> = found.iter().filter(|(k, v)| want.get(*k) != Some(*v)).collect();
        let missing: Vec<_> = want.iter().filter(|(k, v)| found.get(*k) != Some(*v)).collect();
        return Err(format!(
            "children differ\nfound, not wanted: {extra:#?}\nwanted, not found: {missing:#?}"
        ));
    }
    Ok(())
}

/// Waits until [`converged`]; fails with the last difference.
async fn converge(p: &Platform, ns: &str, gws: &[Gw], timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match converged(p, ns, gws).await {
            Ok(()) => return,
            Err(e) if std::time::Instant::now() > deadline => panic!("not converged in {timeout:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Plays the kubelet: marks every pod of `ns` Ready (the controller-manager made them from the
/// Deployments; nothing runs them here), then waits until every gateway is Ready.
async fn pods_ready(p: &Platform, ns: &str, gws: &[Gw]) {
    let pods = dynamic(p, ns, "v1", "Pod", "pods");
    let want: i64 = gws.iter().map(|g| g.replicas).sum();
    let live = wait_until(Duration::from_secs(60), &format!("{want} pods"), || async {
        let l = pods.list(&ListParams::default()).await.ok()?;
        let live: Vec<_> = l.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        (live.len() as i64 == want).then_some(live)
    })
    .await;
    for pod in live {
        mark_pod_ready(&pods, pod.metadata.name.as_ref().unwrap()).await;
    }
    for gw in gws {
        wait_condition(p, ns, gw.kind, &gw.name, "Ready", "True").await;
    }
}

/// Applies `gws` and waits until `op` has written ten objects for them: the operator is then in
/// the middle of them.
async fn apply_under(op: &Operator, p: &Platform, ns: &str, gws: &[Gw]) {
    let before = op.writes();
    for gw in gws {
        gw.apply(p, ns).await;
    }
    wait_until(Duration::from_secs(60), "the operator writing the new gateways", || async {
        (op.writes() >= before + 10.0).then_some(())
    })
    .await;
}

/// How many of the children of `gws` exist; fails the test when all do (the kill interrupted
/// nothing).
async fn assert_interrupted(p: &Platform, ns: &str, gws: &[Gw]) {
    let found = found(p, ns).await;
    let want: usize = gws.iter().map(|g| g.children().len()).sum();
    let have = gws.iter().flat_map(Gw::children).filter(|c| found.contains_key(c)).count();
    println!("killed with {have} of {want} children written");
    assert!(
        have < want,
        "the operator had written all {want} children before the kill: nothing was interrupted"
    );
}

/// No reconcile of `op` failed: not even those a restarted operator's controllers start, woken by
/// the children that exist, before the compile stage has run once (they wait for it).
fn assert_no_reconcile_errors(op: &Operator) {
    assert_eq!(op.metric("cairn_operator_reconcile_errors_total", &[]), 0.0, "{}", op.metrics());
}

#[tokio::test]
async fn an_operator_killed_mid_reconcile_and_restarted_converges() {
    let (p, ns) = setup("op-kill").await;
    apply_echo_backend(&p, &ns).await;
    let first = Gw::new("AIGateway", "first", 2);
    first.apply(&p, &ns).await;
    let mut op = Operator::start(&p, &[&ns], "kill-1", false);
    op.wait_ready().await;
    converge(&p, &ns, std::slice::from_ref(&first), Duration::from_secs(60)).await;

    let many = workload();
    apply_under(&op, &p, &ns, &many).await;
    op.kill();
    let mut all = vec![first.clone()];
    all.extend(many.iter().cloned());
    assert_interrupted(&p, &ns, &all).await;

    // While it is dead: `first` down to one replica (its PDB no longer rendered), a gateway
    // deleted, a new one.
    let first = Gw::new("AIGateway", "first", 1);
    first.apply(&p, &ns).await;
    let gone = &many[5];
    cairn(&p, &ns, gone.kind).delete(&gone.name, &DeleteParams::default()).await.unwrap();
    let late = Gw::new("MCPGateway", "late", 2);
    late.apply(&p, &ns).await;
    let mut want = vec![first, late];
    want.extend(many.iter().filter(|g| g.name != gone.name).cloned());

    let op2 = Operator::start(&p, &[&ns], "kill-2", false);
    op2.wait_ready().await;
    converge(&p, &ns, &want, Duration::from_secs(120)).await;
    assert_no_reconcile_errors(&op2);
    pods_ready(&p, &ns, &want).await;
}

#[tokio::test]
async fn a_leader_killed_mid_reconcile_is_replaced_by_its_standby_which_converges() {
    let (p, ns) = setup("op-failover").await;
    apply_echo_backend(&p, &ns).await;
    let mut a = Operator::start(&p, &[&ns], "failover-a", true);
    let mut b = Operator::start(&p, &[&ns], "failover-b", true);
    a.wait_ready().await;
    b.wait_ready().await;
    let leader_is_a = wait_until(Duration::from_secs(30), "one leader", || async {
        match (a.is_leader(), b.is_leader()) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        }
    })
    .await;
    let (leader, standby) = if leader_is_a { (&mut a, &mut b) } else { (&mut b, &mut a) };

    let many = workload();
    apply_under(leader, &p, &ns, &many).await;
    leader.kill();
    assert_interrupted(&p, &ns, &many).await;
    assert_eq!(standby.writes(), 0.0, "the standby {} wrote while the leader lived", standby.identity);

    // The Lease was not released: the standby waits it out, then takes over.
    let timeout = Duration::from_secs(cairn::operator::leader::LEASE_SECONDS + 120);
    converge(&p, &ns, &many, timeout).await;
    assert!(standby.is_leader(), "{}", standby.log_text());
    assert!(standby.writes() > 0.0);
    assert_no_reconcile_errors(standby);
    pods_ready(&p, &ns, &many).await;
}
