//! Cairn's API against a real control plane (etcd + kube-apiserver + kube-controller-manager,
//! started by `tests/support/platform.sh up`): CRDs install, examples are accepted, invalid
//! fixtures are refused with the documented message, `kubectl explain`/`get` are useful, service
//! account tokens verify against the cluster's JWKS, and garbage collection runs.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::api::{Api, DeleteParams, GetParams, ListParams, PostParams};
use kube::core::Request;
use serde_json::{Value, json};
use support::{Platform, error_message, parse_documents, platform, read_documents, yaml_files};

fn examples() -> Vec<std::path::PathBuf> {
    let dir = support::repo_root().join("examples");
    let files = yaml_files(&dir);
    assert!(!files.is_empty(), "no examples under {}", dir.display());
    files
}

fn rel(p: &Path) -> String {
    p.strip_prefix(support::repo_root()).unwrap_or(p).display().to_string()
}

fn describe(doc: &Value) -> String {
    format!("{} {}", doc["kind"].as_str().unwrap_or("?"), doc["metadata"]["name"].as_str().unwrap_or("?"))
}

/// Examples may carry Namespace objects for readability; the tests put everything in their own.
fn is_namespace(doc: &Value) -> bool {
    doc["kind"] == "Namespace" && doc["apiVersion"] == "v1"
}

#[tokio::test]
async fn crds_install_and_become_established() {
    let p = platform().await;
    let crds = p.install_crds().await;
    let api = Api::<CustomResourceDefinition>::all(p.client.clone());
    for crd in &crds {
        let name = crd.metadata.name.as_deref().unwrap();
        let live = api.get(name).await.unwrap();
        let conds = live.status.unwrap().conditions.unwrap_or_default();
        let names_accepted = conds.iter().any(|c| c.type_ == "NamesAccepted" && c.status == "True");
        assert!(names_accepted, "CRD {name}: names not accepted: {conds:?}");
        assert_eq!(crd.spec.group, "cairn.dev", "CRD {name}");
        let categories = crd.spec.names.categories.clone().unwrap_or_default();
        assert!(
            categories.iter().any(|c| c == "cairn"),
            "CRD {name} is not in category `cairn` (kubectl get cairn would miss it)"
        );
    }
}

#[tokio::test]
async fn examples_are_accepted_by_server_side_apply() {
    let p = platform().await;
    p.install_crds().await;
    let mut failures = Vec::new();
    for file in examples() {
        let docs: Vec<Value> = read_documents(&file).into_iter().filter(|d| !is_namespace(d)).collect();
        assert!(!docs.is_empty(), "{}: no documents", rel(&file));
        // Each namespace the example names (or leaves implicit) becomes a fresh one.
        let mut namespaces = std::collections::BTreeMap::new();
        for doc in &docs {
            let original = doc["metadata"]["namespace"].as_str().unwrap_or("").to_string();
            if let std::collections::btree_map::Entry::Vacant(e) = namespaces.entry(original) {
                e.insert(p.fresh_namespace("example").await);
            }
        }
        for dry_run in [true, false] {
            for doc in &docs {
                let ns = &namespaces[doc["metadata"]["namespace"].as_str().unwrap_or("")];
                if let Err(e) = p.apply(ns, doc, dry_run).await {
                    failures.push(format!(
                        "{} ({}, {}): {}",
                        rel(&file),
                        describe(doc),
                        if dry_run { "dry run" } else { "apply" },
                        error_message(&e)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "examples refused by the API server:\n  {}", failures.join("\n  "));
}

struct Fixture {
    stage: String,
    expect: String,
    docs: Vec<Value>,
}

fn read_fixture(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = |line: Option<&str>, key: &str| -> String {
        line.and_then(|l| l.strip_prefix(&format!("# {key}:"))).map(|v| v.trim().to_string()).unwrap_or_else(
            || panic!("{}: the first two lines must be `# stage: ...` and `# expect: ...`", path.display()),
        )
    };
    let stage = header(lines.next(), "stage");
    let expect = header(lines.next(), "expect");
    assert!(!expect.is_empty(), "{}: empty `# expect:`", path.display());
    let docs = if stage == "parse" {
        Vec::new() // may not even be YAML; `cairn validate` alone refuses these
    } else {
        parse_documents(&text, &path.display().to_string())
    };
    Fixture { stage, expect, docs }
}

/// Schema and CEL fixtures must be refused by the API server with the message `cairn validate`
/// prints (the `# expect:` line); cross-object fixtures must be accepted (they are only wrong
/// relative to other objects, which the operator reports in status).
#[tokio::test]
async fn invalid_fixtures_are_refused_with_the_documented_message() {
    let p = platform().await;
    p.install_crds().await;
    let dir = support::repo_root().join("tests/fixtures/invalid");
    let files = yaml_files(&dir);
    assert!(!files.is_empty(), "no fixtures under {}", dir.display());
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in &files {
        let f = read_fixture(file);
        let name = rel(file);
        match f.stage.as_str() {
            "parse" => continue,
            "schema" | "cel" => {
                let ns = p.fresh_namespace("invalid").await;
                let mut refused = false;
                for doc in &f.docs {
                    match p.create(&ns, doc, false).await {
                        Ok(_) => continue,
                        Err(e) => {
                            refused = true;
                            let msg = error_message(&e);
                            if !msg.contains(&f.expect) {
                                failures.push(format!(
                                    "{name} ({}): refused, but the message does not contain {:?}:\n      {msg}",
                                    describe(doc),
                                    f.expect
                                ));
                            }
                            // server-side apply must refuse it too (its wording may differ)
                            if p.apply(&ns, doc, true).await.is_ok() {
                                failures.push(format!(
                                    "{name} ({}): refused by create but accepted by server-side apply",
                                    describe(doc)
                                ));
                            }
                            break;
                        }
                    }
                }
                if !refused {
                    failures.push(format!(
                        "{name}: stage {} but the API server accepted every document",
                        f.stage
                    ));
                }
            }
            "cross-object" => {
                let ns = p.fresh_namespace("cross").await;
                for doc in &f.docs {
                    if let Err(e) = p.apply(&ns, doc, false).await {
                        failures.push(format!(
                            "{name} ({}): cross-object fixtures must pass the API server, got: {}",
                            describe(doc),
                            error_message(&e)
                        ));
                    }
                }
            }
            other => {
                failures.push(format!("{name}: unknown stage {other:?} (parse|schema|cel|cross-object)"))
            }
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} fixtures misbehave:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn spec_props(
    crd: &CustomResourceDefinition,
) -> Option<&std::collections::BTreeMap<String, JSONSchemaProps>> {
    let v = crd.spec.versions.iter().find(|v| v.storage)?;
    v.schema.as_ref()?.open_api_v3_schema.as_ref()?.properties.as_ref()?.get("spec")?.properties.as_ref()
}

/// `kubectl explain <plural>.spec.<field>` prints the description written in the CRD, for one
/// documented field of every kind (aigateways.spec.replicas where it exists).
#[tokio::test]
async fn kubectl_explain_shows_field_descriptions() {
    let p = platform().await;
    let crds = p.install_crds().await;
    for crd in &crds {
        let plural = &crd.spec.names.plural;
        let props = spec_props(crd)
            .unwrap_or_else(|| panic!("CRD {plural}: no spec properties in the storage version"));
        let preferred = props.get("replicas").filter(|_| plural == "aigateways");
        let (field, desc) = match preferred {
            Some(s) => ("replicas", s.description.clone()),
            None => props
                .iter()
                .find(|(_, s)| s.description.is_some())
                .map(|(k, s)| (k.as_str(), s.description.clone()))
                .unwrap_or_else(|| panic!("CRD {plural}: no spec field has a description")),
        };
        let desc = desc.unwrap_or_else(|| panic!("{plural}.spec.{field} has no description"));
        let path = format!("{plural}.spec.{field}");
        // The OpenAPI v3 document of a new CRD is published a moment after Established.
        let out = support::wait_until(
            Duration::from_secs(30),
            &format!("kubectl explain {path} to show the CRD's description"),
            || {
                let p = p.clone();
                let path = path.clone();
                let desc = desc.clone();
                async move {
                    let out = p.kubectl().args(["explain", &path]).output().ok()?;
                    let text = String::from_utf8_lossy(&out.stdout).to_string();
                    (out.status.success() && words(&text).contains(&words(&desc))).then_some(text)
                }
            },
        )
        .await;
        assert!(out.contains(&format!("FIELD: {field}")), "{out}");
    }
}

/// Every property of every CRD schema has a description (so `kubectl explain` documents every
/// field, as `src/api/mod.rs` promises).
#[test]
fn every_crd_field_has_a_description() {
    fn walk(s: &JSONSchemaProps, path: &str, missing: &mut Vec<String>) {
        for (k, v) in s.properties.iter().flatten() {
            let p = format!("{path}.{k}");
            if v.description.as_deref().unwrap_or("").trim().is_empty()
                && !matches!(p.as_str(), ".apiVersion" | ".kind" | ".metadata")
            {
                missing.push(p.clone());
            }
            walk(v, &p, missing);
        }
        if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(item)) = &s.items {
            walk(item, &format!("{path}[]"), missing);
        }
        if let Some(
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool::Schema(
                item,
            ),
        ) = &s.additional_properties
        {
            walk(item, &format!("{path}{{}}"), missing);
        }
    }
    let mut missing = Vec::new();
    for crd in support::read_crds() {
        for v in &crd.spec.versions {
            if let Some(schema) = v.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()) {
                let mut m = Vec::new();
                walk(schema, "", &mut m);
                missing.extend(m.into_iter().map(|f| format!("{}/{}: {f}", crd.spec.names.kind, v.name)));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} schema properties without a description:\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

/// With the examples applied, `kubectl get cairn` lists objects of every Cairn kind with their
/// printer columns.
#[tokio::test]
async fn kubectl_get_cairn_lists_every_kind_with_printer_columns() {
    let p = platform().await;
    let crds = p.install_crds().await;
    let ns = p.fresh_namespace("get-cairn").await;
    let mut kinds_in_examples = BTreeSet::new();
    for file in examples() {
        for doc in read_documents(&file).iter().filter(|d| !is_namespace(d)) {
            p.apply(&ns, doc, false)
                .await
                .unwrap_or_else(|e| panic!("{} ({}): {}", rel(&file), describe(doc), error_message(&e)));
            if doc["apiVersion"].as_str().is_some_and(|v| v.starts_with("cairn.dev/")) {
                kinds_in_examples.insert(doc["kind"].as_str().unwrap().to_string());
            }
        }
    }
    let out = p.kubectl_ok(&["get", "cairn", "-n", &ns]);
    // One table per kind, separated by blank lines; the first line of each is its header.
    let tables: Vec<&str> = out.split("\n\n").collect();
    let mut failures = Vec::new();
    for crd in &crds {
        let kind = &crd.spec.names.kind;
        if !kinds_in_examples.contains(kind) {
            failures.push(format!("no example under examples/ has kind {kind}"));
            continue;
        }
        let prefix = format!("{}.cairn.dev/", kind.to_ascii_lowercase());
        let Some(table) = tables.iter().find(|t| t.lines().skip(1).any(|l| l.starts_with(&prefix))) else {
            failures.push(format!("kubectl get cairn shows no {kind} (is it in category `cairn`?)"));
            continue;
        };
        let header: Vec<&str> = table.lines().next().unwrap_or("").split_whitespace().collect();
        let v = crd.spec.versions.iter().find(|v| v.served).unwrap();
        let columns: Vec<_> =
            v.additional_printer_columns.iter().flatten().filter(|c| c.priority.unwrap_or(0) == 0).collect();
        if columns.is_empty() {
            failures.push(format!("CRD {kind} defines no printer columns"));
        }
        for col in columns {
            let name = col.name.to_ascii_uppercase();
            // multi-word column names are printed with their spaces
            if !name.split_whitespace().all(|w| header.contains(&w)) {
                failures.push(format!("{kind}: no column {name} in header {header:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}\nkubectl get cairn -n {ns}:\n{out}", failures.join("\n"));
}

fn b64url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("bad base64url {s:?}: {e}"))
}

async fn get_json(p: &Platform, dir: &str, name: &str) -> Value {
    let req = Request::new(dir).get(name, &GetParams::default()).unwrap();
    let text = p.client.request_text(req).await.unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Verifies an RS256 JWT against a JWKS; returns the claims.
fn verify_rs256(token: &str, jwks: &Value) -> Result<Value, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, c, s] = parts[..] else {
        return Err("not a JWS compact token".into());
    };
    let header: Value = serde_json::from_slice(&b64url(h)).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("alg is {}", header["alg"]));
    }
    let key = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"] == header["kid"])
        .ok_or_else(|| format!("no key with kid {} in the JWKS", header["kid"]))?;
    let n = b64url(key["n"].as_str().ok_or("key without n")?);
    let e = b64url(key["e"].as_str().ok_or("key without e")?);
    ring::signature::RsaPublicKeyComponents { n, e }
        .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, format!("{h}.{c}").as_bytes(), &b64url(s))
        .map_err(|_| "bad signature".to_string())?;
    serde_json::from_slice(&b64url(c)).map_err(|e| e.to_string())
}

/// A token minted through the TokenRequest API (audience cairn.dev) verifies against the JWKS the
/// API server publishes, carries the ServiceAccount's subject, and passes a TokenReview.
#[tokio::test]
async fn service_account_token_verifies_against_the_jwks() {
    let p = platform().await;
    let ns = p.fresh_namespace("token").await;
    let sas = Api::<ServiceAccount>::namespaced(p.client.clone(), &ns);
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "agent"}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let tr: TokenRequest = serde_json::from_value(json!({
        "spec": {"audiences": ["cairn.dev"], "expirationSeconds": 600}
    }))
    .unwrap();
    let tr = sas.create_token_request("agent", &PostParams::default(), &tr).await.unwrap();
    let token = tr.status.expect("TokenRequest without status").token;

    let discovery = get_json(&p, "/.well-known", "openid-configuration").await;
    let jwks = get_json(&p, "/openid/v1", "jwks").await;
    assert!(discovery["jwks_uri"].as_str().is_some_and(|u| u.ends_with("/openid/v1/jwks")), "{discovery}");

    let claims = verify_rs256(&token, &jwks).unwrap_or_else(|e| panic!("token does not verify: {e}"));
    assert_eq!(claims["sub"], format!("system:serviceaccount:{ns}:agent"));
    assert_eq!(claims["iss"], discovery["issuer"]);
    let aud: Vec<&str> = match &claims["aud"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        other => panic!("aud is {other}"),
    };
    assert!(aud.contains(&"cairn.dev"), "aud {aud:?}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(claims["exp"].as_i64().unwrap() > now, "expired: {claims}");

    // A tampered payload must not verify.
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let mut forged = claims.clone();
    forged["sub"] = json!(format!("system:serviceaccount:{ns}:admin"));
    use base64::Engine;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    assert!(verify_rs256(&parts.join("."), &jwks).is_err(), "forged token verified");

    // The API server itself accepts it for audience cairn.dev.
    let review: TokenReview = serde_json::from_value(json!({
        "spec": {"token": token, "audiences": ["cairn.dev"]}
    }))
    .unwrap();
    let review =
        Api::<TokenReview>::all(p.client.clone()).create(&PostParams::default(), &review).await.unwrap();
    let status = review.status.unwrap();
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    assert_eq!(
        status.user.and_then(|u| u.username).as_deref(),
        Some(format!("system:serviceaccount:{ns}:agent").as_str())
    );
}

/// Deleting an owner garbage-collects its dependent: kube-controller-manager runs.
#[tokio::test]
async fn deleting_an_owner_garbage_collects_dependents() {
    let p = platform().await;
    let ns = p.fresh_namespace("gc").await;
    let cms = Api::<ConfigMap>::namespaced(p.client.clone(), &ns);
    let owner: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap();
    let owner = cms.create(&PostParams::default(), &owner).await.unwrap();
    let dependent: ConfigMap = serde_json::from_value(json!({"metadata": {
        "name": "dependent",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                             "uid": owner.metadata.uid.clone().unwrap()}]
    }}))
    .unwrap();
    cms.create(&PostParams::default(), &dependent).await.unwrap();
    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    support::wait_until(Duration::from_secs(60), "the dependent ConfigMap to be collected", || {
        let cms = cms.clone();
        async move { cms.get_opt("dependent").await.ok()?.is_none().then_some(()) }
    })
    .await;
}

/// The deployment controller runs: a Deployment gets a ReplicaSet it owns.
#[tokio::test]
async fn deployments_get_replica_sets() {
    let p = platform().await;
    let ns = p.fresh_namespace("deploy").await;
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]}
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(p.client.clone(), &ns)
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    let rss = Api::<ReplicaSet>::namespaced(p.client.clone(), &ns);
    support::wait_until(Duration::from_secs(60), "a ReplicaSet owned by Deployment web", || {
        let rss = rss.clone();
        async move {
            let list = rss.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .any(|rs| {
                    rs.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.kind == "Deployment" && o.name == "web")
                })
                .then_some(())
        }
    })
    .await;
}
