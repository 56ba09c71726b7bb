//! `cairn operator`'s lifecycle against the real control plane: a restart writes nothing, two
//! replicas elect one writer and the standby takes over, children edited or deleted by hand are
//! put back, children no longer rendered are pruned, a config too large is refused with its size.

#[path = "support/operator.rs"]
mod operator;
mod support;

use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use operator::*;
use serde_json::json;
use std::time::Duration;
use support::{Platform, repo_root, wait_until};

/// What the restart test compares: every object's version, a Deployment's generation (its
/// status moves with the controller-manager, not with the operator).
async fn snapshot(p: &Platform, ns: &str) -> Vec<(String, String)> {
    let mut all = versions(p, ns, ALL_KINDS).await;
    let deployments =
        dynamic(p, ns, "apps/v1", "Deployment", "deployments").list(&ListParams::default()).await.unwrap();
    for d in deployments {
        let key = format!("Deployment/{}", d.metadata.name.unwrap());
        if let Some(e) = all.iter_mut().find(|(k, _)| *k == key) {
            e.1 = format!("generation {}", d.metadata.generation.unwrap());
        }
    }
    all
}

#[tokio::test]
async fn a_restarted_operator_writes_nothing() {
    let (p, ns) = setup("op-restart").await;
    apply_dir(&p, &ns, &repo_root().join("examples/platform")).await;
    let mut op = Operator::start(&p, &[&ns], "restart-1", false);
    op.wait_ready().await;
    for (k, n) in [("AIGateway", "llm"), ("MCPGateway", "tools"), ("AgentGateway", "agents")] {
        wait_condition(&p, &ns, k, n, "Programmed", "True").await;
    }
    // Settled: two snapshots a few seconds apart agree.
    let before = wait_until(Duration::from_secs(60), "the first operator to settle", || async {
        let a = snapshot(&p, &ns).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        (snapshot(&p, &ns).await == a).then_some(a)
    })
    .await;
    assert!(op.stop(), "SIGTERM ends the operator cleanly");

    let op2 = Operator::start(&p, &[&ns], "restart-2", false);
    op2.wait_ready().await;
    wait_until(Duration::from_secs(30), "the second operator to reconcile everything", || async {
        (op2.metric("cairn_operator_reconciles_total", &[]) >= 10.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(op2.writes(), 0.0, "writes after restart:\n{}", op2.metrics());
    assert_eq!(snapshot(&p, &ns).await, before);
}

#[tokio::test]
async fn two_operators_elect_one_leader_and_the_standby_takes_over() {
    let (p, ns) = setup("op-lease").await;
    apply_dir(&p, &ns, &repo_root().join("examples/quickstart")).await;
    let mut a = Operator::start(&p, &[&ns], "lease-a", true);
    let mut b = Operator::start(&p, &[&ns], "lease-b", true);
    a.wait_ready().await;
    b.wait_ready().await;
    wait_condition(&p, &ns, "AIGateway", "llm", "Programmed", "True").await;
    let (leader, standby) = wait_until(Duration::from_secs(30), "one leader", || async {
        match (a.is_leader(), b.is_leader()) {
            (true, false) => Some(("a", "b")),
            (false, true) => Some(("b", "a")),
            _ => None,
        }
    })
    .await;
    let (l, s) = if leader == "a" { (&mut a, &mut b) } else { (&mut b, &mut a) };
    assert!(l.writes() > 0.0);
    assert_eq!(s.writes(), 0.0, "the standby {standby} wrote");

    // The leader stops; a change made meanwhile is reconciled by the other.
    assert!(l.stop());
    let hash_before = config_hash(&p, &ns, "llm-ai-gateway").await.unwrap();
    apply_yaml(&p, &ns, QUICKSTART_ROUTE_EDIT).await;
    let deadline = Duration::from_secs(operator_lease_seconds() + 10);
    wait_until(deadline, "the standby to take over and write the new config", || async {
        config_hash(&p, &ns, "llm-ai-gateway").await.filter(|h| *h != hash_before)
    })
    .await;
    assert!(s.is_leader());
}

fn operator_lease_seconds() -> u64 {
    cairn::operator::leader::LEASE_SECONDS
}

#[tokio::test]
async fn a_child_edited_or_deleted_by_hand_is_put_back() {
    let (p, ns) = setup("op-drift").await;
    apply_dir(&p, &ns, &repo_root().join("examples/quickstart")).await;
    let op = Operator::start(&p, &[&ns], "drift", false);
    op.wait_ready().await;
    wait_condition(&p, &ns, "AIGateway", "llm", "Programmed", "True").await;
    let services = dynamic(&p, &ns, "v1", "Service", "services");
    services.delete("llm-ai-gateway", &DeleteParams::default()).await.unwrap();
    let roles = dynamic(&p, &ns, "rbac.authorization.k8s.io/v1", "Role", "roles");
    let grab = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]});
    roles
        .patch("llm-ai-gateway", &PatchParams::apply("someone-else").force(), &Patch::Apply(&grab))
        .await
        .unwrap();
    let deployments = dynamic(&p, &ns, "apps/v1", "Deployment", "deployments");
    let image = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {"containers": [
        {"name": "gateway", "image": "evil:latest"}]}}}});
    deployments
        .patch("llm-ai-gateway", &PatchParams::apply("someone-else").force(), &Patch::Apply(&image))
        .await
        .unwrap();

    wait_until(Duration::from_secs(30), "the Service back", || async {
        services.get_opt("llm-ai-gateway").await.ok()?
    })
    .await;
    wait_until(Duration::from_secs(30), "the Role's rules back", || async {
        let r = roles.get("llm-ai-gateway").await.ok()?;
        let rules = r.data["rules"].as_array()?;
        rules
            .iter()
            .all(|x| x["resourceNames"].is_array() || x["resources"] == json!(["events"]))
            .then_some(())
    })
    .await;
    wait_until(Duration::from_secs(30), "the image back", || async {
        let d = deployments.get("llm-ai-gateway").await.ok()?;
        (d.data["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/cairn:test")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_config_too_large_is_reported_with_its_size_and_the_last_good_config_stays() {
    let (p, ns) = setup("op-large").await;
    apply_dir(&p, &ns, &repo_root().join("examples/quickstart")).await;
    let op = Operator::start(&p, &[&ns], "large", false);
    op.wait_ready().await;
    wait_condition(&p, &ns, "AIGateway", "llm", "Programmed", "True").await;
    let good = config_hash(&p, &ns, "llm-ai-gateway").await.unwrap();

    // Fifteen backends with 800 kB of base64 noise each (about 9 MB gzip-compressed): more than
    // the 6 MiB that 8 ConfigMaps of 768 KiB hold.
    let mut backends = Vec::new();
    for i in 0..15 {
        let name = format!("big-{i}");
        let doc = json!({"apiVersion": "cairn.dev/v1alpha1", "kind": "AIBackend", "metadata": {"name": name},
            "spec": {"provider": "Echo", "models": [{"name": "echo-1"}],
                     "headers": [{"name": "X-Pad", "value": noise(&name, 800_000)}]}});
        p.apply(&ns, &doc, false).await.unwrap();
        backends.push(json!({"backendRef": {"name": name}, "model": "echo-1"}));
    }
    let route = json!({"apiVersion": "cairn.dev/v1alpha1", "kind": "AIRoute", "metadata": {"name": "big"},
        "spec": {"gatewayRefs": [{"name": "llm"}], "rules": [{"matches": [{"model": "big"}], "backends": backends}]}});
    p.apply(&ns, &route, false).await.unwrap();

    let gw = wait_condition(&p, &ns, "AIGateway", "llm", "Programmed", "False").await;
    let c = condition(&gw, "Programmed").unwrap();
    assert_eq!(c["reason"], "ConfigTooLarge");
    let m = c["message"].as_str().unwrap();
    assert!(
        m.starts_with("the compiled config is ") && m.contains("bytes") && m.contains("gzip-compressed"),
        "{m}"
    );
    assert!(m.ends_with("its pods keep serving the last config written"), "{m}");
    assert_eq!(condition(&gw, "Stalled").unwrap()["status"], "True");
    assert_eq!(gw.data["status"]["configHash"], good[..12], "status names the config still served");
    assert_eq!(config_hash(&p, &ns, "llm-ai-gateway").await.unwrap(), good, "the last good config stays");
}

#[tokio::test]
async fn children_no_longer_rendered_are_pruned() {
    let (p, ns) = setup("op-prune").await;
    apply_dir(&p, &ns, &repo_root().join("examples/quickstart")).await;
    let scaled = json!({"apiVersion": "cairn.dev/v1alpha1", "kind": "AIGateway", "metadata": {"name": "llm"},
        "spec": {"listener": {"port": 8080}, "defaultAction": "Allow", "auth": {"allowAnonymous": true},
                 "autoscaling": {"minReplicas": 2, "maxReplicas": 4}}});
    p.apply(&ns, &scaled, false).await.unwrap();
    // A config of two parts: 1.2 MB of incompressible header on the backend.
    let big = json!({"apiVersion": "cairn.dev/v1alpha1", "kind": "AIBackend", "metadata": {"name": "echo"},
        "spec": {"provider": "Echo", "models": [{"name": "echo-1"}],
                 "headers": [{"name": "X-Pad", "value": noise("prune", 1_200_000)}]}});
    p.apply(&ns, &big, false).await.unwrap();
    let op = Operator::start(&p, &[&ns], "prune", false);
    op.wait_ready().await;
    wait_condition(&p, &ns, "AIGateway", "llm", "Programmed", "True").await;
    let hpas = dynamic(&p, &ns, "autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers");
    let pdbs = dynamic(&p, &ns, "policy/v1", "PodDisruptionBudget", "poddisruptionbudgets");
    let cms = dynamic(&p, &ns, "v1", "ConfigMap", "configmaps");
    let roles = dynamic(&p, &ns, "rbac.authorization.k8s.io/v1", "Role", "roles");
    assert!(hpas.get_opt("llm-ai-gateway").await.unwrap().is_some());
    assert!(pdbs.get_opt("llm-ai-gateway").await.unwrap().is_some());
    assert!(cms.get_opt("llm-ai-gateway-config-1").await.unwrap().is_some(), "a second part");
    let role = roles.get("llm-ai-gateway").await.unwrap();
    assert_eq!(
        role.data["rules"][0]["resourceNames"],
        json!(["llm-ai-gateway-config", "llm-ai-gateway-config-1"])
    );
    let d = dynamic(&p, &ns, "apps/v1", "Deployment", "deployments").get("llm-ai-gateway").await.unwrap();
    let owns_replicas = d.metadata.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some("cairn-operator")
            && m.fields_v1.as_ref().is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
    });
    assert!(!owns_replicas, "under an HPA the operator leaves replicas alone");

    // Autoscaling off, one replica, the small config again: HPA, PDB and the part go.
    apply_dir(&p, &ns, &repo_root().join("examples/quickstart")).await;
    p.apply(
        &ns,
        &json!({"apiVersion": "cairn.dev/v1alpha1", "kind": "AIBackend", "metadata": {"name": "echo"},
        "spec": {"provider": "Echo", "models": [{"name": "echo-1"}]}}),
        false,
    )
    .await
    .unwrap();
    wait_until(Duration::from_secs(30), "the HPA, PDB and config part pruned", || async {
        let gone = hpas.get_opt("llm-ai-gateway").await.ok()?.is_none()
            && pdbs.get_opt("llm-ai-gateway").await.ok()?.is_none()
            && cms.get_opt("llm-ai-gateway-config-1").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
    let role = roles.get("llm-ai-gateway").await.unwrap();
    assert_eq!(role.data["rules"][0]["resourceNames"], json!(["llm-ai-gateway-config"]));
}
