//! `cairn operator` with no `--namespace` (the default): it watches every namespace, including
//! one created after it started. Alone in its own test binary (cargo runs test binaries one after
//! another), since an operator watching every namespace would write into those of the tests
//! running beside it; it also reconciles what earlier test binaries left behind, which is fine.

#[path = "support/operator.rs"]
mod operator;
mod support;

use operator::{Operator, apply_dir, wait_condition};
use support::{free_port, platform, repo_root};

#[tokio::test]
async fn without_namespace_flags_the_operator_programs_gateways_in_every_namespace() {
    let p = platform().await;
    p.install_crds().await;
    let before = p.fresh_namespace("op-all-before").await;
    apply_dir(&p, &before, &repo_root().join("examples/quickstart")).await;

    let http = free_port();
    let args: Vec<String> = [
        "operator",
        "--address",
        "127.0.0.1",
        "--admin-port",
        &http.to_string(),
        "--identity",
        "cluster-wide",
        "--gateway-image",
        "registry.example.com/cairn:test",
        "--leader-elect",
        "false",
    ]
    .map(String::from)
    .to_vec();
    let env = [("RUST_LOG".to_string(), "info,cairn=debug".to_string())];
    let mut op = Operator::spawn(&p.kubeconfig, &args, &env, "cluster-wide", http);
    op.wait_ready().await;
    assert!(op.log_text().contains("\"namespaces\":\"[]\""), "watching every namespace:\n{}", op.log_text());

    // A namespace that existed before it started, and one created after.
    wait_condition(&p, &before, "AIGateway", "llm", "Programmed", "True").await;
    let after = p.fresh_namespace("op-all-after").await;
    apply_dir(&p, &after, &repo_root().join("examples/quickstart")).await;
    wait_condition(&p, &after, "AIGateway", "llm", "Programmed", "True").await;
    wait_condition(&p, &after, "AIRoute", "chat", "Accepted", "True").await;
    assert!(op.stop(), "SIGTERM ends the operator cleanly\n{}", op.log_text());
}
