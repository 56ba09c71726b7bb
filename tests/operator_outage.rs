//! The API server goes away for 20 s under a running operator and a gateway in cluster mode (its
//! pod run as a local process, as in tests/operator_e2e.rs). Alone in its own test binary (cargo
//! runs test binaries one after another) because it stops the shared kube-apiserver
//! (`tests/support/platform.sh apiserver-stop`, then `apiserver-start` with the same flags).

#[path = "support/clients.rs"]
mod clients;
#[path = "support/gateway_pod.rs"]
mod gateway_pod;
#[path = "support/operator.rs"]
mod operator;
mod support;

use gateway_pod::run_pod;
use operator::{ALL_KINDS, Operator, dynamic, versions, wait_condition};
use std::process::Command;
use std::time::Duration;
use support::{free_port, platform, read_documents, repo_root, wait_until};

fn platform_sh(cmd: &str) {
    let dir = std::env::var("CAIRN_TEST_PLATFORM_DIR")
        .expect("CAIRN_TEST_PLATFORM_DIR (platform.sh up exports it)");
    let status = Command::new(repo_root().join("tests/support/platform.sh"))
        .args([cmd, &dir])
        .status()
        .expect("platform.sh runs");
    assert!(status.success(), "platform.sh {cmd} failed");
}

#[tokio::test]
async fn the_operator_resumes_after_a_20s_api_outage_and_rewrites_nothing_unchanged() {
    let p = platform().await;
    p.install_crds().await;
    let ns = p.fresh_namespace("op-outage").await;
    for f in support::yaml_files(&repo_root().join("examples/platform")) {
        for mut d in read_documents(&f) {
            if d["kind"] == "AIGateway" {
                // Its pod runs here as a local process: a free port for its listener.
                d["spec"]["listener"]["port"] = free_port().into();
            }
            p.apply(&ns, &d, false).await.unwrap();
        }
    }
    let mut op = Operator::start(&p, &[&ns], "outage", false);
    op.wait_ready().await;
    for (k, n) in [("AIGateway", "llm"), ("MCPGateway", "tools"), ("AgentGateway", "agents")] {
        wait_condition(&p, &ns, k, n, "Programmed", "True").await;
    }
    let mut pod = run_pod(&p, &ns, "llm", "ai").await;
    let served_before = pod.hash().await.expect("the gateway names the config it serves");
    let before = wait_until(Duration::from_secs(60), "the operator to settle", || async {
        let a = versions(&p, &ns, ALL_KINDS).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        (versions(&p, &ns, ALL_KINDS).await == a).then_some(a)
    })
    .await;
    let writes = op.writes();
    let restarts = op.metric("cairn_operator_watch_restarts_total", &[]);

    platform_sh("apiserver-stop");
    tokio::time::sleep(Duration::from_secs(20)).await;
    // The gateway kept running on its last config all along.
    pod.alive();
    assert_eq!(pod.admin("/readyz").await.0, 200, "{}", pod.stderr());
    assert_eq!(pod.hash().await.as_deref(), Some(served_before.as_str()));
    platform_sh("apiserver-start");

    // Every watch relists once the server is back; nothing the operator owns is rewritten.
    wait_until(Duration::from_secs(120), "the watches to resume", || async {
        (op.metric("cairn_operator_watch_restarts_total", &[]) >= restarts + 18.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(op.writes(), writes, "writes after the outage:\n{}", op.metrics());
    let after = versions(&p, &ns, ALL_KINDS).await;
    let changed: Vec<_> = after.iter().filter(|a| !before.contains(a)).collect();
    // The controller-manager may touch Deployments' status when it reconnects; the operator
    // writes none of those.
    assert!(changed.iter().all(|(k, _)| k.starts_with("Deployment/")), "rewritten: {changed:?}");

    // And it still works: an edit goes through.
    let cms = dynamic(&p, &ns, "v1", "ConfigMap", "configmaps");
    let hash =
        |cm: kube::api::DynamicObject| cm.metadata.annotations.unwrap()["cairn.dev/config-hash"].clone();
    let old = hash(cms.get("llm-ai-gateway-config").await.unwrap());
    let route = support::parse_documents(
        "apiVersion: cairn.dev/v1alpha1\nkind: AIRoute\nmetadata: {name: after-outage}\nspec:\n  \
         gatewayRefs: [{name: llm}]\n  rules: [{matches: [{model: after-outage}], backends: [{backendRef: {name: openai}, model: gpt-4o-mini}]}]\n",
        "route",
    );
    p.apply(&ns, &route[0], false).await.unwrap();
    let new = wait_until(Duration::from_secs(30), "the edit to reach the ConfigMap", || async {
        let h = hash(cms.get("llm-ai-gateway-config").await.ok()?);
        (h != old).then_some(h)
    })
    .await;
    // ... and the gateway, whose watches resumed too, serves it (the same process).
    wait_until(Duration::from_secs(60), "the gateway to serve the edited config", || async {
        (pod.hash().await.as_deref() == Some(new.as_str())).then_some(())
    })
    .await;
    pod.alive();
    assert!(op.stop(), "the operator ran through the outage and stops cleanly");
}
