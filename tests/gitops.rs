//! GitOps: what Argo CD and Flux (kstatus) make of Cairn's objects.
//!
//! - The Argo CD health check (charts/cairn/files/argocd/health.lua) is judged by `argo-health`,
//!   gopher-lua run the way Argo CD runs a `resource.customizations` health check, on sample
//!   objects of every kind; the ConfigMap patch users apply carries exactly that script.
//! - kstatus (sigs.k8s.io/cli-utils, what Flux's health checks and `kubectl wait`-style tools
//!   compute) reads the conditions the operator writes as intended.
//! - deploy/gitops/ (an Argo CD Application, Flux GitRepository + HelmRelease + Kustomization) is
//!   accepted by those tools' CRDs on the real API server.
//!
//! Needs the tools of tests/support (tests/run provides them).

mod support;

use serde_json::{Value, json};
use support::{repo_root, tools};

const HEALTH_LUA: &str = "charts/cairn/files/argocd/health.lua";
const ARGOCD_PATCH: &str = "deploy/argocd/argocd-cm-health.yaml";
const GATEWAYS: [&str; 3] = ["AIGateway", "MCPGateway", "AgentGateway"];

/// The `argocd-cm` patch, written from the script: one `resource.customizations.health` key per kind.
fn argocd_patch(script: &str) -> String {
    let mut out = String::from(
        "# Generated from charts/cairn/files/argocd/health.lua by tests/gitops.rs (CAIRN_BLESS=1 rewrites it).\n\
         # Argo CD health checks for Cairn's eight kinds, merged into Argo CD's argocd-cm:\n\
         #   kubectl apply --server-side --field-manager=cairn-health -n argocd -f argocd-cm-health.yaml\n\
         # (server-side apply adds these keys and leaves the others in argocd-cm alone).\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\n  labels:\n    \
         app.kubernetes.io/name: argocd-cm\n    app.kubernetes.io/part-of: argocd\ndata:\n",
    );
    for kind in cairn::api::KINDS {
        out.push_str(&format!("  resource.customizations.health.cairn.dev_{kind}: |\n"));
        for line in script.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

#[test]
fn the_argocd_patch_carries_the_health_script_for_every_kind() {
    let script = std::fs::read_to_string(repo_root().join(HEALTH_LUA)).unwrap();
    let expected = argocd_patch(&script);
    let path = repo_root().join(ARGOCD_PATCH);
    if std::env::var_os("CAIRN_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &expected).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap_or_default(),
        expected,
        "{ARGOCD_PATCH} drifted from {HEALTH_LUA}; run `CAIRN_BLESS=1 cargo test --test gitops`"
    );
    // And it parses back to the script, key by key.
    let doc = support::read_documents(&path).pop().unwrap();
    for kind in cairn::api::KINDS {
        assert_eq!(doc["data"][format!("resource.customizations.health.cairn.dev_{kind}")], script.as_str());
    }
}

/// The health script as users get it: from the argocd-cm patch.
fn shipped_script() -> tempfile::NamedTempFile {
    let doc = support::read_documents(&repo_root().join(ARGOCD_PATCH)).pop().unwrap();
    let script = doc["data"]["resource.customizations.health.cairn.dev_AIGateway"].as_str().unwrap();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, script.as_bytes()).unwrap();
    f
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, generation: i64) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "observedGeneration": generation, "lastTransitionTime": "2026-11-24T10:00:00Z"})
}

fn object(kind: &str, generation: i64, status: Option<Value>) -> Value {
    let mut o = json!({"apiVersion": "cairn.dev/v1alpha1", "kind": kind,
                       "metadata": {"name": "x", "namespace": "ns", "generation": generation}});
    if let Some(s) = status {
        o["status"] = s;
    }
    o
}

/// The conditions of an object the operator is done with: all True, Reconciling and Stalled False.
fn settled(kind: &str, generation: i64) -> Vec<Value> {
    let mut c = vec![condition("Accepted", "True", "Accepted", "", generation)];
    if GATEWAYS.contains(&kind) {
        c.push(condition("Programmed", "True", "Programmed", "", generation));
        c.push(condition("Ready", "True", "Ready", "2 of 2 replicas ready", generation));
        c.push(condition("Reconciling", "False", "Reconciled", "", generation));
        c.push(condition("Stalled", "False", "Reconciled", "", generation));
    } else {
        c.push(condition("ResolvedRefs", "True", "ResolvedRefs", "", generation));
    }
    c
}

fn with(conditions: &[Value], replace: Value) -> Vec<Value> {
    let mut out: Vec<Value> = conditions.iter().filter(|c| c["type"] != replace["type"]).cloned().collect();
    out.push(replace);
    out
}

fn status(conditions: Vec<Value>, generation: i64) -> Option<Value> {
    Some(json!({"observedGeneration": generation, "conditions": conditions}))
}

#[test]
fn argo_cd_judges_every_kind_healthy_progressing_or_degraded_as_its_conditions_say() {
    let script = shipped_script();
    let mut cases: Vec<(String, Value, &str, String)> = Vec::new(); // (what, object, status, message part)
    for kind in cairn::api::KINDS {
        let ok = settled(kind, 4);
        let ready_message = if GATEWAYS.contains(&kind) { "2 of 2 replicas ready" } else { "ResolvedRefs" };
        cases.push((
            format!("{kind} settled"),
            object(kind, 4, status(ok.clone(), 4)),
            "Healthy",
            ready_message.into(),
        ));
        cases.push((
            format!("{kind} without status"),
            object(kind, 1, None),
            "Progressing",
            "report status".into(),
        ));
        cases.push((
            format!("{kind} with empty conditions"),
            object(kind, 1, status(vec![], 1)),
            "Progressing",
            "report status".into(),
        ));
        cases.push((
            format!("{kind} with generation 5 not yet observed"),
            object(kind, 5, status(ok.clone(), 4)),
            "Progressing",
            "observe generation 5".into(),
        ));
        // No status.observedGeneration: the conditions' own (4) are what is stale.
        let stale = ok.clone();
        cases.push((
            format!("{kind} whose conditions describe generation 4 of 5"),
            object(kind, 5, Some(json!({"conditions": stale}))),
            "Progressing",
            "observe generation 5".into(),
        ));
        // One condition changed from the settled set: the object and the message Argo CD shows.
        let one = |type_: &str, state: &str, reason: &str, message: &str| {
            let conditions = with(&ok, condition(type_, state, reason, message, 4));
            (object(kind, 4, status(conditions, 4)), format!("{type_} ({reason}): {message}"))
        };
        for (what, (o, message), verdict) in [
            (
                "not accepted",
                one("Accepted", "False", "Invalid", "spec.listener.port: must be set"),
                "Degraded",
            ),
            ("reconciling", one("Reconciling", "True", "Applying", "applying children"), "Progressing"),
            ("stalled", one("Stalled", "True", "ConfigTooLarge", "config is 3.1 MiB compressed"), "Degraded"),
        ] {
            cases.push((format!("{kind} {what}"), o, verdict, message));
        }
        if GATEWAYS.contains(&kind) {
            // A gateway whose reference is missing stalls too: the message to show is the one
            // naming what is missing, not Stalled's pointer to it.
            let missing = r#"spec.store.redis.passwordSecretRef: Secret "redis" not found"#;
            let conditions = with(
                &with(&ok, condition("ResolvedRefs", "False", "RefNotFound", missing, 4)),
                condition(
                    "Stalled",
                    "True",
                    "Invalid",
                    "The spec does not compile (see Accepted and ResolvedRefs)",
                    4,
                ),
            );
            cases.push((
                format!("{kind} stalled on a missing Secret"),
                object(kind, 4, status(conditions, 4)),
                "Degraded",
                format!("ResolvedRefs (RefNotFound): {missing}"),
            ));
        }
        let no_ready: Vec<Value> = ok.iter().filter(|c| c["type"] != "Ready").cloned().collect();
        let more = if GATEWAYS.contains(&kind) {
            cases.push((
                format!("{kind} without Ready yet"),
                object(kind, 4, status(no_ready, 4)),
                "Progressing",
                "Waiting for condition Ready".into(),
            ));
            ("with no ready replica", one("Ready", "False", "NoReadyReplicas", "0 of 2 replicas ready"))
        } else {
            let missing = "spec.rules[0].backends[0].backendRef: AIBackend missing not found";
            ("with a missing reference", one("ResolvedRefs", "False", "BackendNotFound", missing))
        };
        cases.push((format!("{kind} {}", more.0), more.1.0, "Degraded", more.1.1));
    }
    let objects: Vec<Value> = cases.iter().map(|c| c.1.clone()).collect();
    let results = tools::judge("argo-health", Some(script.path()), &objects);
    let mut wrong = Vec::new();
    for ((what, _, status, message), got) in cases.iter().zip(&results) {
        if got["status"] != *status || !got["message"].as_str().unwrap_or("").contains(message) {
            wrong.push(format!("{what}: expected {status} with {message:?}, Argo CD says {got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_script_returning_an_unknown_status_is_unknown_to_argo_cd() {
    // The judge is Argo CD's, not a rubber stamp: a status Argo CD does not know becomes Unknown.
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, b"return {status = \"Fine\", message = \"trust me\"}").unwrap();
    let got = tools::judge("argo-health", Some(f.path()), &[object("AIRoute", 1, None)]);
    assert_eq!(got[0], json!({"status": "Unknown", "message": "Lua returned an invalid health status"}));
    // And, as in Argo CD, the string library is not there.
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, b"return {status = string.lower(\"Healthy\")}").unwrap();
    let out = tools::command("argo-health")
        .arg(f.path())
        .arg("-")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "string.lower worked: the runner loads more than Argo CD does");
}

#[test]
fn kstatus_reads_ready_as_current_reconciling_as_in_progress_and_stalled_as_failed() {
    let kind = "AIGateway";
    let ok = settled(kind, 2);
    let cases = [
        ("ready", object(kind, 2, status(ok.clone(), 2)), "Current"),
        (
            "reconciling",
            object(
                kind,
                2,
                status(with(&ok, condition("Reconciling", "True", "Applying", "applying", 2)), 2),
            ),
            "InProgress",
        ),
        (
            "stalled",
            object(
                kind,
                2,
                status(with(&ok, condition("Stalled", "True", "ConfigTooLarge", "too large", 2)), 2),
            ),
            "Failed",
        ),
        // Ready=False alone is not a failure to kstatus (only Stalled is): it waits.
        (
            "not ready",
            object(
                kind,
                2,
                status(with(&ok, condition("Ready", "False", "NoReadyReplicas", "0 of 2", 2)), 2),
            ),
            "InProgress",
        ),
        ("generation not observed", object(kind, 3, status(ok.clone(), 2)), "InProgress"),
    ];
    let objects: Vec<Value> = cases.iter().map(|c| c.1.clone()).collect();
    let results = tools::judge("kstatus", None, &objects);
    for ((what, _, expected), got) in cases.iter().zip(&results) {
        assert_eq!(got["status"], *expected, "{what}: {got}");
    }
}

/// The patch is ready to apply as its header says: server-side apply into an existing argocd-cm
/// adds the eight keys and keeps Argo CD's own settings.
#[tokio::test]
async fn the_argocd_patch_merges_into_an_existing_argocd_cm() {
    let p = support::platform().await;
    let ns = p.fresh_namespace("argocd-cm").await;
    p.kubectl_ok(&[
        "-n",
        &ns,
        "create",
        "configmap",
        "argocd-cm",
        "--from-literal=url=https://argocd.example.com",
    ]);
    let mut doc = support::read_documents(&repo_root().join(ARGOCD_PATCH)).pop().unwrap();
    doc["metadata"]["namespace"] = ns.clone().into();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), doc.to_string()).unwrap();
    let path = file.path().to_str().unwrap();
    p.kubectl_ok(&["apply", "--server-side", "--field-manager=cairn-health", "-f", path]);
    let live: Value =
        serde_json::from_str(&p.kubectl_ok(&["-n", &ns, "get", "configmap", "argocd-cm", "-o", "json"]))
            .unwrap();
    assert_eq!(live["data"]["url"], "https://argocd.example.com", "Argo CD's own setting survives");
    for kind in cairn::api::KINDS {
        assert_eq!(
            live["data"][format!("resource.customizations.health.cairn.dev_{kind}")],
            doc["data"][format!("resource.customizations.health.cairn.dev_{kind}")]
        );
    }
}

const GITOPS: [&str; 2] = ["deploy/gitops/argocd-application.yaml", "deploy/gitops/flux.yaml"];
const GITOPS_CRDS: [&str; 4] = [
    "application-crd.yaml",
    "source.toolkit.fluxcd.io_gitrepositories.yaml",
    "helm.toolkit.fluxcd.io_helmreleases.yaml",
    "kustomize.toolkit.fluxcd.io_kustomizations.yaml",
];

/// Server-side dry-run apply of `docs` moved into `ns`, with strict field validation: Ok or the
/// API server's message.
fn dry_run(p: &support::Platform, ns: &str, docs: &[Value]) -> Result<(), String> {
    let list = json!({"apiVersion": "v1", "kind": "List",
        "items": docs.iter().map(|d| { let mut d = d.clone(); d["metadata"]["namespace"] = ns.into(); d }).collect::<Vec<_>>()});
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), list.to_string()).unwrap();
    let out = p
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--dry-run=server",
            "--validate=strict",
            "--field-manager=cairn-tests",
            "-f",
        ])
        .arg(file.path())
        .output()
        .unwrap();
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

/// The Argo CD Application and the Flux objects are accepted by the CRDs those tools publish,
/// with strict field validation on a real API server, and point at what exists in this repository.
#[tokio::test]
async fn gitops_manifests_are_accepted_by_argo_cd_and_flux_crds() {
    let p = support::platform().await;
    for crd in GITOPS_CRDS {
        let path = tools::crd(crd);
        p.kubectl_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=cairn-tests",
            "-f",
            path.to_str().unwrap(),
        ]);
        let name =
            support::read_documents(&path).pop().unwrap()["metadata"]["name"].as_str().unwrap().to_string();
        p.kubectl_ok(&["wait", "--for=condition=Established", "--timeout=60s", &format!("crd/{name}")]);
    }
    let ns = p.fresh_namespace("gitops").await;
    let mut kinds = Vec::new();
    for file in GITOPS {
        let docs = support::read_documents(&repo_root().join(file));
        kinds.extend(docs.iter().map(|d| d["kind"].as_str().unwrap().to_string()));
        // Discovery may lag a freshly established CRD by a moment.
        let mut result = Err(String::new());
        for _ in 0..20 {
            result = dry_run(&p, &ns, &docs);
            if result.as_ref().err().is_none_or(|e| !e.contains("ensure CRDs are installed")) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        result.unwrap_or_else(|e| panic!("{file} refused: {e}"));
        for doc in &docs {
            // What they point at exists here.
            let path = doc["spec"]["source"]["path"]
                .as_str()
                .or(doc["spec"]["chart"]["spec"]["chart"].as_str())
                .or(doc["spec"]["path"].as_str());
            if let Some(path) = path {
                assert!(
                    repo_root().join(path).is_dir(),
                    "{file}: {} points at {path}, which is not here",
                    doc["kind"]
                );
            }
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["Application", "GitRepository", "HelmRelease", "Kustomization"]);
    let app = support::read_documents(&repo_root().join(GITOPS[0])).pop().unwrap();
    assert!(
        app["spec"]["syncPolicy"]["syncOptions"].as_array().unwrap().contains(&json!("ServerSideApply=true"))
    );

    // The check can fail: a misspelt field is refused by the published schema.
    let mut bad = app.clone();
    bad["spec"]["syncPolicy"]["syncOption"] = json!(["ServerSideApply=true"]);
    let err = dry_run(&p, &ns, &[bad]).expect_err("a misspelt Application field was accepted");
    assert!(err.contains("syncOption"), "{err}");
}
