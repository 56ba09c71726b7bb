//! `cairn operator` against the real control plane (etcd, kube-apiserver,
//! kube-controller-manager: garbage collection and Deployments → ReplicaSets → Pods, no kubelet):
//! what it writes and the status it reports. The operator runs as a child process
//! (`target/debug/cairn operator`) watching only the test's namespaces; where readiness matters the
//! test plays the kubelet and marks Pods Ready through their status subresource. Rendered content
//! itself is snapshot-tested in the render unit tests. A child the API server refuses stalls its
//! gateway with the server's reason and holds back no other gateway. Its lifecycle (restart, leader election,
//! drift, pruning, a config too large) is in tests/operator_lifecycle.rs, an API outage in
//! tests/operator_outage.rs.

#[path = "support/operator.rs"]
mod operator;
mod support;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use operator::*;
use serde_json::{Value, json};
use std::time::Duration;
use support::{platform, repo_root, wait_until};

#[tokio::test]
async fn every_example_gets_every_child_with_owner_references_and_status_on_every_object() {
    let p = platform().await;
    p.install_crds().await;
    let mut spaces = Vec::new();
    for dir in std::fs::read_dir(repo_root().join("examples")).unwrap() {
        let dir = dir.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let ns = p.fresh_namespace(&format!("op-{name}")).await;
        let docs = apply_dir(&p, &ns, &dir).await;
        spaces.push((ns, docs));
    }
    let names: Vec<&str> = spaces.iter().map(|(n, _)| n.as_str()).collect();
    let op = Operator::start(&p, &names, "examples", false);
    op.wait_ready().await;
    for (ns, docs) in &spaces {
        for d in docs {
            let kind = d["kind"].as_str().unwrap();
            let name = d["metadata"]["name"].as_str().unwrap();
            if kind == "Secret" {
                continue;
            }
            // Every object gets Accepted (with its generation); gateways get programmed.
            wait_condition(&p, ns, kind, name, "Accepted", "True").await;
            if !kind.ends_with("Gateway") {
                continue;
            }
            let o = wait_condition(&p, ns, kind, name, "Programmed", "True").await;
            for t in ["ResolvedRefs", "Ready", "Reconciling", "Stalled"] {
                assert!(condition(&o, t).is_some(), "{kind}/{name} has no {t}: {:?}", o.data["status"]);
            }
            assert_eq!(condition(&o, "Stalled").unwrap()["status"], "False");
            let base = format!("{name}-{}-gateway", layer(kind));
            let mut expected = vec![
                ("v1", "ServiceAccount", "serviceaccounts", base.clone()),
                ("rbac.authorization.k8s.io/v1", "Role", "roles", base.clone()),
                ("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", base.clone()),
                ("v1", "Secret", "secrets", format!("{base}-credentials")),
                ("v1", "ConfigMap", "configmaps", format!("{base}-config")),
                ("v1", "Service", "services", base.clone()),
                ("apps/v1", "Deployment", "deployments", base.clone()),
            ];
            if d["spec"]["replicas"].as_i64().unwrap_or(1) > 1 {
                expected.push(("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", base.clone()));
            }
            for (av, k, plural, child) in expected {
                let c = dynamic(&p, ns, av, k, plural)
                    .get(&child)
                    .await
                    .unwrap_or_else(|e| panic!("{kind}/{name}: {k} {child} missing: {e}"));
                assert!(controlled_by(&c, kind, name), "{k} {child} is not controlled by {kind}/{name}");
                assert_eq!(
                    c.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
                    "cairn-operator"
                );
            }
            let hash = config_hash(&p, ns, &base).await.unwrap();
            assert_eq!(o.data["status"]["configHash"].as_str().unwrap(), &hash[..12]);
            assert_eq!(
                o.data["status"]["address"],
                format!("http://{base}.{ns}.svc:{}", d["spec"]["listener"]["port"])
            );
        }
        // A deployed MCPServer gets its own Deployment and Service.
        for d in docs.iter().filter(|d| d["kind"] == "MCPServer" && d["spec"]["deployment"].is_object()) {
            let name = d["metadata"]["name"].as_str().unwrap();
            let o = wait_condition(&p, ns, "MCPServer", name, "Programmed", "True").await;
            assert_eq!(o.data["status"]["gateways"][0]["accepted"], true, "{:?}", o.data["status"]);
            for (av, k, plural) in [("apps/v1", "Deployment", "deployments"), ("v1", "Service", "services")] {
                let c = dynamic(&p, ns, av, k, plural).get(&format!("{name}-mcp-server")).await.unwrap();
                assert!(controlled_by(&c, "MCPServer", name));
            }
        }
    }
    assert_eq!(op.metric("cairn_operator_reconcile_errors_total", &[]), 0.0, "{}", op.log_text());
}

#[tokio::test]
async fn an_airoute_edit_changes_the_config_map_and_never_the_pod_template() {
    let (p, ns) = setup("op-edit").await;
    apply_dir(&p, &ns, &repo_root().join("examples/quickstart")).await;
    let op = Operator::start(&p, &[&ns], "edit", false);
    op.wait_ready().await;
    wait_condition(&p, &ns, "AIGateway", "llm", "Programmed", "True").await;
    let deployments = dynamic(&p, &ns, "apps/v1", "Deployment", "deployments");
    let before = deployments.get("llm-ai-gateway").await.unwrap();
    let hash_before = config_hash(&p, &ns, "llm-ai-gateway").await.unwrap();

    apply_yaml(&p, &ns, QUICKSTART_ROUTE_EDIT).await;
    let hash_after = wait_until(Duration::from_secs(30), "the ConfigMap to change", || async {
        config_hash(&p, &ns, "llm-ai-gateway").await.filter(|h| *h != hash_before)
    })
    .await;
    let cm = dynamic(&p, &ns, "v1", "ConfigMap", "configmaps").get("llm-ai-gateway-config").await.unwrap();
    assert!(cm.data["data"]["config.json"].as_str().unwrap().contains("gpt-4.1-mini"));
    let gw = wait_until(Duration::from_secs(30), "status to show the new hash", || async {
        let o = cairn(&p, &ns, "AIGateway").get("llm").await.ok()?;
        (o.data["status"]["configHash"] == hash_after[..12]).then_some(o)
    })
    .await;
    assert_eq!(condition(&gw, "Programmed").unwrap()["status"], "True");
    let after = deployments.get("llm-ai-gateway").await.unwrap();
    assert_eq!(
        after.metadata.generation, before.metadata.generation,
        "the Deployment's spec was not written"
    );
    assert_eq!(after.data["spec"]["template"], before.data["spec"]["template"]);
}

const BROKEN: &str = r#"
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {name: llm}
spec: {listener: {port: 8080}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {name: echo}
spec: {provider: Echo, models: [{name: echo-1}]}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {name: openai}
spec:
  provider: OpenAI
  credentials: {secretRef: {name: openai-key, key: apiKey}}
  models: [{name: gpt-4o-mini}]
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {name: good}
spec:
  gatewayRefs: [{name: llm}]
  rules: [{matches: [{model: good-model}], backends: [{backendRef: {name: echo}, model: echo-1}]}]
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {name: lost}
spec:
  gatewayRefs: [{name: llm}]
  rules: [{matches: [{model: lost-model}], backends: [{backendRef: {name: nowhere}}]}]
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {name: keyless}
spec:
  gatewayRefs: [{name: llm}]
  rules: [{matches: [{model: gpt-4o-mini}], backends: [{backendRef: {name: openai}}]}]
---
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {name: shared}
spec:
  listener: {port: 8080}
  store: {redis: {url: "redis://redis:6379", passwordSecretRef: {name: redis-password, key: password}}}
---
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {name: bot}
spec: {identity: {serviceAccount: {name: bot}}}
---
apiVersion: cairn.dev/v1alpha1
kind: AgentPolicy
metadata: {name: pol}
spec:
  subjects: {agents: [bot, ghost]}
  models: [{match: "good-*"}]
"#;

#[tokio::test]
async fn missing_references_are_named_in_resolved_refs_while_the_rest_keeps_working() {
    let (p, ns) = setup("op-refs").await;
    apply_yaml(&p, &ns, BROKEN).await;
    let op = Operator::start(&p, &[&ns], "refs", false);
    op.wait_ready().await;

    let route = wait_condition(&p, &ns, "AIRoute", "lost", "ResolvedRefs", "False").await;
    let m = condition(&route, "ResolvedRefs").unwrap()["message"].as_str().unwrap().to_string();
    assert!(m.contains("spec.rules[0].backends[0].backendRef.name") && m.contains("nowhere"), "{m}");
    let backend = wait_condition(&p, &ns, "AIBackend", "openai", "ResolvedRefs", "False").await;
    let m = condition(&backend, "ResolvedRefs").unwrap()["message"].as_str().unwrap().to_string();
    assert!(m.contains("spec.credentials.secretRef") && m.contains("openai-key"), "{m}");
    let policy = wait_condition(&p, &ns, "AgentPolicy", "pol", "ResolvedRefs", "False").await;
    let m = condition(&policy, "ResolvedRefs").unwrap()["message"].as_str().unwrap().to_string();
    assert!(m.contains("ghost"), "{m}");
    assert_eq!(policy.data["status"]["effective"]["subjects"], json!(["bot"]));

    // The gateway still serves the good route.
    let gw = wait_condition(&p, &ns, "AIGateway", "llm", "Programmed", "True").await;
    assert_eq!(condition(&gw, "Accepted").unwrap()["status"], "True");
    let cm = dynamic(&p, &ns, "v1", "ConfigMap", "configmaps").get("llm-ai-gateway-config").await.unwrap();
    let text = cm.data["data"]["config.json"].as_str().unwrap();
    assert!(text.contains("good-model") && !text.contains("lost-model"), "{text}");
    let good = wait_condition(&p, &ns, "AIRoute", "good", "ResolvedRefs", "True").await;
    assert_eq!(good.data["status"]["gateways"], json!([{"name": "llm", "accepted": true}]));

    // A gateway whose own Secret is missing says so, and is not programmed (nothing to serve yet).
    let shared = wait_condition(&p, &ns, "AIGateway", "shared", "ResolvedRefs", "False").await;
    let m = condition(&shared, "ResolvedRefs").unwrap()["message"].as_str().unwrap().to_string();
    assert!(m.contains("spec.store.redis.passwordSecretRef") && m.contains("redis-password"), "{m}");
    assert_eq!(condition(&shared, "Programmed").unwrap()["status"], "False");
    assert_eq!(condition(&shared, "Stalled").unwrap()["status"], "True");

    // One Warning Event per problem, naming it.
    let events = dynamic(&p, &ns, "events.k8s.io/v1", "Event", "events");
    let list = wait_until(Duration::from_secs(30), "Events for the route", || async {
        let l = events.list(&ListParams::default()).await.ok()?;
        let mine: Vec<DynamicObject> =
            l.items.into_iter().filter(|e| e.data["regarding"]["name"] == "lost").collect();
        (!mine.is_empty()).then_some(mine)
    })
    .await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].data["type"], "Warning");
    assert!(list[0].data["note"].as_str().unwrap().contains("nowhere"));

    // The Secret appears: the backend resolves and the route's gateway config gains it.
    apply_yaml(
        &p,
        &ns,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: openai-key}\nstringData: {apiKey: sk-test}\n",
    )
    .await;
    wait_condition(&p, &ns, "AIBackend", "openai", "ResolvedRefs", "True").await;
    let b = wait_until(Duration::from_secs(30), "the key in the credentials Secret", || async {
        let b = bundle(&p, &ns, "llm-ai-gateway").await?;
        b.values().any(|v| v == "sk-test").then_some(b)
    })
    .await;
    assert!(b.contains_key("cairn/session-key"));
}

#[tokio::test]
async fn a_rotated_secret_reaches_the_credentials_secret_and_the_generated_keys_stay() {
    let (p, ns) = setup("op-rotate").await;
    apply_yaml(&p, &ns, BROKEN).await;
    apply_yaml(
        &p,
        &ns,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: openai-key}\nstringData: {apiKey: sk-one}\n",
    )
    .await;
    let op = Operator::start(&p, &[&ns], "rotate", false);
    op.wait_ready().await;
    let first = wait_until(Duration::from_secs(30), "the first key", || async {
        let b = bundle(&p, &ns, "llm-ai-gateway").await?;
        b.values().any(|v| v == "sk-one").then_some(b)
    })
    .await;
    apply_yaml(
        &p,
        &ns,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: openai-key}\nstringData: {apiKey: sk-two}\n",
    )
    .await;
    let second = wait_until(Duration::from_secs(30), "the rotated key", || async {
        let b = bundle(&p, &ns, "llm-ai-gateway").await?;
        b.values().any(|v| v == "sk-two").then_some(b)
    })
    .await;
    assert!(!second.values().any(|v| v == "sk-one"));
    for key in ["cairn/session-key", "cairn/signing-key"] {
        assert_eq!(first[key], second[key], "{key} changed");
    }
    // The new digest is announced by the manifest too.
    let cm = dynamic(&p, &ns, "v1", "ConfigMap", "configmaps").get("llm-ai-gateway-config").await.unwrap();
    let manifest: Value = serde_json::from_str(cm.data["data"]["manifest.json"].as_str().unwrap()).unwrap();
    let secret = dynamic(&p, &ns, "v1", "Secret", "secrets").get("llm-ai-gateway-credentials").await.unwrap();
    assert_eq!(
        manifest["credentialsDigest"].as_str().unwrap(),
        secret.metadata.annotations.unwrap()["cairn.dev/credentials-digest"]
    );
    // Nothing the operator logs carries a secret value.
    let log = op.log_text();
    for v in ["sk-one", "sk-two", first["cairn/session-key"].as_str().unwrap()] {
        assert!(!log.contains(v), "the log carries a secret");
    }
}

#[tokio::test]
async fn deleting_a_gateway_garbage_collects_its_children() {
    let (p, ns) = setup("op-gc").await;
    apply_dir(&p, &ns, &repo_root().join("examples/quickstart")).await;
    let op = Operator::start(&p, &[&ns], "gc", false);
    op.wait_ready().await;
    wait_condition(&p, &ns, "AIGateway", "llm", "Programmed", "True").await;
    cairn(&p, &ns, "AIGateway").delete("llm", &DeleteParams::background()).await.unwrap();
    for (av, k, plural, name) in [
        ("apps/v1", "Deployment", "deployments", "llm-ai-gateway"),
        ("v1", "ConfigMap", "configmaps", "llm-ai-gateway-config"),
        ("v1", "Secret", "secrets", "llm-ai-gateway-credentials"),
        ("v1", "Service", "services", "llm-ai-gateway"),
        ("rbac.authorization.k8s.io/v1", "Role", "roles", "llm-ai-gateway"),
    ] {
        let api = dynamic(&p, &ns, av, k, plural);
        wait_until(Duration::from_secs(60), &format!("{k} {name} collected"), || async {
            api.get_opt(name).await.ok()?.is_none().then_some(())
        })
        .await;
    }
    // The route says its gateway is gone.
    let r = wait_condition(&p, &ns, "AIRoute", "chat", "ResolvedRefs", "False").await;
    assert!(condition(&r, "ResolvedRefs").unwrap()["message"].as_str().unwrap().contains("llm"));
}

#[tokio::test]
async fn rendered_pod_templates_pass_the_restricted_pod_security_standard() {
    let (p, ns) = setup("op-pss").await;
    let nsapi: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(p.client.clone());
    let label = json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    nsapi.patch(&ns, &PatchParams::default(), &Patch::Merge(&label)).await.unwrap();
    apply_dir(&p, &ns, &repo_root().join("examples/platform")).await;
    let op = Operator::start(&p, &[&ns], "pss", false);
    op.wait_ready().await;
    let deployments = dynamic(&p, &ns, "apps/v1", "Deployment", "deployments");
    let list = wait_until(Duration::from_secs(60), "the gateways' and the server's Deployments", || async {
        let l = deployments.list(&ListParams::default()).await.ok()?;
        (l.items.len() >= 4).then_some(l.items)
    })
    .await;
    let pods = dynamic(&p, &ns, "v1", "Pod", "pods");
    for d in list {
        let template = &d.data["spec"]["template"];
        let pod: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pss-{}", d.metadata.name.as_ref().unwrap()),
                         "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
        }))
        .unwrap();
        let pp = PostParams { dry_run: true, ..Default::default() };
        if let Err(e) = pods.create(&pp, &pod).await {
            panic!("{}: {}", d.metadata.name.unwrap(), support::error_message(&e));
        }
    }
}

#[tokio::test]
async fn a_ready_pod_makes_the_gateway_ready_and_current() {
    let (p, ns) = setup("op-ready").await;
    apply_dir(&p, &ns, &repo_root().join("examples/quickstart")).await;
    let op = Operator::start(&p, &[&ns], "ready", false);
    op.wait_ready().await;
    let gw = wait_condition(&p, &ns, "AIGateway", "llm", "Ready", "False").await;
    assert_eq!(condition(&gw, "Reconciling").unwrap()["status"], "True");
    // Play the kubelet: mark the ReplicaSet's pod Ready.
    let pods = dynamic(&p, &ns, "v1", "Pod", "pods");
    let pod = wait_until(Duration::from_secs(60), "the gateway's pod", || async {
        let l = pods.list(&ListParams::default().labels("app.kubernetes.io/instance=llm")).await.ok()?;
        l.items.into_iter().next()
    })
    .await;
    mark_pod_ready(&pods, pod.metadata.name.as_ref().unwrap()).await;
    let gw = wait_condition(&p, &ns, "AIGateway", "llm", "Ready", "True").await;
    assert_eq!(gw.data["status"]["readyReplicas"], 1);
    let gw = wait_condition(&p, &ns, "AIGateway", "llm", "Reconciling", "False").await;
    assert_eq!(condition(&gw, "Stalled").unwrap()["status"], "False");
}

#[tokio::test]
async fn the_gateway_service_account_reads_exactly_its_own_config_and_secret() {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let (p, ns) = setup("op-role").await;
    apply_dir(&p, &ns, &repo_root().join("examples/mcp-tools")).await;
    apply_dir(&p, &ns, &repo_root().join("examples/quickstart")).await;
    let op = Operator::start(&p, &[&ns], "role", false);
    op.wait_ready().await;
    wait_condition(&p, &ns, "AIGateway", "llm", "Programmed", "True").await;
    wait_condition(&p, &ns, "MCPGateway", "tools", "Programmed", "True").await;
    let token = operator::service_account_token(&p, &ns, "llm-ai-gateway").await;
    let c = operator::client_with_token(&p, &token).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(c.clone(), &ns);

    // What cluster mode does: list and watch each object by name, create an Event.
    let own = ListParams::default().fields("metadata.name=llm-ai-gateway-config");
    assert_eq!(cms.list(&own).await.unwrap().items.len(), 1);
    let mut w = cms
        .watch(
            &kube::api::WatchParams::default().fields("metadata.name=llm-ai-gateway-config").timeout(1),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    use futures_util::StreamExt;
    assert!(w.next().await.is_some_and(|e| e.is_ok()));
    assert!(secrets.get("llm-ai-gateway-credentials").await.is_ok());
    let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "llm-"},
        "involvedObject": {"apiVersion": "cairn.dev/v1alpha1", "kind": "AIGateway", "name": "llm", "namespace": ns},
        "type": "Warning", "reason": "ConfigRefused", "message": "test"});
    let events: Api<DynamicObject> = Api::namespaced_with(
        c.clone(),
        &ns,
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Event>(&()),
    );
    events.create(&PostParams::default(), &serde_json::from_value(event).unwrap()).await.unwrap();

    // And nothing else: another gateway's config and Secret, a list of everything, a write.
    let forbidden = |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(s)) if s.code == 403);
    assert!(forbidden(cms.get("tools-mcp-gateway-config").await.map(|_| ())));
    assert!(forbidden(secrets.get("tools-mcp-gateway-credentials").await.map(|_| ())));
    assert!(forbidden(cms.list(&ListParams::default()).await.map(|_| ())));
    assert!(forbidden(secrets.list(&ListParams::default()).await.map(|_| ())));
    let patch = json!({"metadata": {"labels": {"x": "y"}}});
    assert!(forbidden(
        cms.patch("llm-ai-gateway-config", &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
    ));
}

/// Two gateways side by side; the API server refuses one's Deployment (a node selector key that
/// is no label key: the CRD takes any string there, the Deployment's validation does not).
const REFUSED: &str = r#"
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {name: picky}
spec:
  listener: {port: 8080}
  pod: {nodeSelector: {"not a label key!": x}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {name: fine}
spec:
  listener: {port: 8080}
"#;

#[tokio::test]
async fn a_child_the_api_server_refuses_is_reported_and_holds_back_no_other_gateway() {
    let (p, ns) = setup("op-refused").await;
    apply_yaml(&p, &ns, REFUSED).await;
    let op = Operator::start(&p, &[&ns], "refused", false);
    op.wait_ready().await;

    wait_condition(&p, &ns, "AIGateway", "fine", "Programmed", "True").await;
    let picky = wait_condition(&p, &ns, "AIGateway", "picky", "Programmed", "False").await;
    let accepted = condition(&picky, "Accepted").unwrap();
    assert_eq!((&accepted["status"], &accepted["reason"]), (&json!("False"), &json!("Invalid")));
    let m = accepted["message"].as_str().unwrap();
    assert!(
        m.starts_with("the API server refuses Deployment picky-ai-gateway: ") && m.contains("nodeSelector"),
        "{m}"
    );
    let programmed = condition(&picky, "Programmed").unwrap();
    assert_eq!(programmed["reason"], "Invalid");
    assert_eq!(programmed["message"], format!("{m}; its pods keep serving the last config written"));
    assert_eq!(condition(&picky, "Stalled").unwrap()["status"], "True");
    let events = dynamic(&p, &ns, "events.k8s.io/v1", "Event", "events");
    let mine = wait_until(Duration::from_secs(30), "an Event on picky", || async {
        let l = events.list(&ListParams::default()).await.ok()?;
        let mine: Vec<DynamicObject> =
            l.items.into_iter().filter(|e| e.data["regarding"]["name"] == "picky").collect();
        (!mine.is_empty()).then_some(mine)
    })
    .await;
    assert!(
        mine.iter().all(|e| e.data["type"] == "Warning")
            && mine.iter().any(|e| e.data["note"].as_str().is_some_and(|n| n.contains("refuses Deployment"))),
        "{mine:?}"
    );

    // Fixing the spec programs it.
    apply_yaml(
        &p,
        &ns,
        "apiVersion: cairn.dev/v1alpha1\nkind: AIGateway\nmetadata: {name: picky}\n\
         spec: {listener: {port: 8080}, pod: {nodeSelector: {disktype: ssd}}}\n",
    )
    .await;
    wait_condition(&p, &ns, "AIGateway", "picky", "Programmed", "True").await;
    let d = dynamic(&p, &ns, "apps/v1", "Deployment", "deployments").get("picky-ai-gateway").await.unwrap();
    assert_eq!(d.data["spec"]["template"]["spec"]["nodeSelector"], json!({"disktype": "ssd"}));
}
