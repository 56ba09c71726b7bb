//! The CRDs install on the real API server with nothing to say: no `Warning` response header on
//! create (where the API server checks the whole schema) or on server-side apply (how users and
//! Helm install them); and their CEL rules cost a small part of what the API server allows.
//!
//! Needs the control plane and the tools of tests/support (tests/run provides both).

mod support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use serde_json::Value;
use support::{FIELD_MANAGER, platform, read_crds, repo_root, tools, yaml_files};

const CRDS_PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

/// Sends a request and returns the status, the `Warning` headers' texts and the body.
async fn send(client: &Client, request: http::Request<Vec<u8>>) -> (http::StatusCode, Vec<String>, String) {
    let (parts, body) = request.into_parts();
    let response =
        client.send(http::Request::from_parts(parts, body.into())).await.expect("sending the request");
    let status = response.status();
    // RFC 7234 form: `299 - "text"`; kubectl prints the text the same way.
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap_or("<not text>").to_string())
        .collect();
    let body = response.into_body().collect_bytes().await.expect("reading the body");
    (status, warnings, String::from_utf8_lossy(&body).into_owned())
}

/// The CRD under a group of its own, so that a dry-run create is a real create for the server
/// (it checks and warns about the whole schema on create; on update only about what changed).
fn under_own_group(crd: &CustomResourceDefinition, tag: &str) -> Value {
    let mut v = serde_json::to_value(crd).unwrap();
    let group = format!("{tag}-{}.cairn.test", std::process::id());
    v["metadata"]["name"] = format!("{}.{group}", crd.spec.names.plural).into();
    v["spec"]["group"] = group.into();
    v
}

/// A dry-run create of `crd`: status, warnings, body.
async fn dry_run_create(client: &Client, crd: &Value) -> (http::StatusCode, Vec<String>, String) {
    let request = http::Request::post(format!("{CRDS_PATH}?dryRun=All"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(crd).unwrap())
        .unwrap();
    send(client, request).await
}

#[tokio::test]
async fn crds_create_and_apply_without_warnings() {
    let p = platform().await;
    let crds = read_crds();
    assert_eq!(crds.len(), cairn::api::KINDS.len(), "one CRD per kind in crds/");
    let mut problems = Vec::new();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap();
        let (status, warnings, body) = dry_run_create(&p.client, &under_own_group(crd, "create")).await;
        if status != http::StatusCode::CREATED {
            problems.push(format!("{name}: create (dry run) answered {status}: {body}"));
        }
        if !warnings.is_empty() {
            problems.push(format!("{name}: create warned: {warnings:?}"));
        }
        // The real install, as `kubectl apply --server-side` (and Helm 4) sends it.
        let request =
            http::Request::patch(format!("{CRDS_PATH}/{name}?fieldManager={FIELD_MANAGER}&force=true"))
                .header("content-type", "application/apply-patch+yaml")
                .body(serde_json::to_vec(crd).unwrap())
                .unwrap();
        let (status, warnings, body) = send(&p.client, request).await;
        if !status.is_success() {
            problems.push(format!("{name}: server-side apply answered {status}: {body}"));
        }
        if !warnings.is_empty() {
            problems.push(format!("{name}: server-side apply warned: {warnings:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check above can fail: the same request reads back the warning the API server gives for a
/// schema it does not fully understand.
#[tokio::test]
async fn a_warning_from_the_api_server_is_read_back() {
    let p = platform().await;
    let crd = read_crds().into_iter().next().expect("crds/ holds CRDs");
    let mut v = under_own_group(&crd, "warn");
    let spec = &mut v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    spec["cairnTestField"] = serde_json::json!({"type": "string", "format": "cairn-no-such-format"});
    let (status, warnings, body) = dry_run_create(&p.client, &v).await;
    assert_eq!(status, http::StatusCode::CREATED, "{body}");
    assert!(
        warnings.iter().any(|w| w.contains(r#"unrecognized format \"cairn-no-such-format\""#)),
        "expected the unrecognized-format warning, got {warnings:?}"
    );
}

/// Each rule's estimated cost, as the API server computes it when the CRD is created (celcost runs
/// apiextensions-apiserver's estimator at the control plane's version), stays under a tenth of the
/// per-rule limit and each CRD's total under a hundredth of the per-CRD limit: far from the point
/// where an API server refuses the CRD, including newer ones whose estimates grow.
#[test]
fn cel_rules_cost_far_below_the_api_server_limits() {
    let files: Vec<String> =
        yaml_files(&repo_root().join("crds")).iter().map(|f| f.display().to_string()).collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let reports = tools::json_lines(&tools::run("celcost", &args, b""));
    assert_eq!(reports.len(), cairn::api::KINDS.len(), "one report per CRD");
    let rules_in_files: usize = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| l.trim_start().starts_with("- rule:") || l.trim_start().starts_with("rule:"))
                .count()
        })
        .sum();
    let mut rules_costed = 0;
    let mut problems = Vec::new();
    for r in &reports {
        let crd = r["crd"].as_str().unwrap();
        let (total, total_limit) = (r["total"].as_u64().unwrap(), r["totalLimit"].as_u64().unwrap());
        let per_rule_limit = r["perRuleLimit"].as_u64().unwrap();
        assert!(total_limit > 0 && per_rule_limit > 0, "{r}");
        if total * 100 > total_limit {
            problems.push(format!("{crd}: total {total} is over 1% of the CRD limit {total_limit}"));
        }
        for rule in r["rules"].as_array().unwrap() {
            rules_costed += 1;
            let cost = rule["cost"].as_u64().unwrap();
            if cost * 10 > per_rule_limit {
                problems.push(format!(
                    "{crd}{}: `{}` costs {cost}, over 10% of {per_rule_limit}",
                    rule["path"], rule["rule"]
                ));
            }
            if let Some(e) = rule.get("error") {
                problems.push(format!("{crd}{}: `{}` does not compile: {e}", rule["path"], rule["rule"]));
            }
        }
    }
    assert_eq!(rules_costed, rules_in_files, "celcost must cost every rule in crds/");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
