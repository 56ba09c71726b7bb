//! The Helm chart (charts/cairn), rendered and checked without a cluster: its CRDs are crds/,
//! `helm lint --strict` is clean, the rendered manifests match their snapshots (default values and
//! ci/full-values.yaml) and pass kubeconform against offline schemas, values.schema.json covers and
//! checks every value, the RBAC grants exactly the operator's table (operator::rbac::RULES, from
//! which it is generated) with no wildcard and, with watched namespaces, nothing cluster-wide, and
//! the chart's own helm-unittest suites pass; the operator container's args and environment are
//! parsed by `cairn operator`'s own parser.
//!
//! Needs the platform's helm and the tools of tests/support (tests/run provides both).

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{repo_root, tools};

const RELEASE: &str = "cairn";
const NAMESPACE: &str = "cairn-system";

fn chart() -> PathBuf {
    repo_root().join("charts/cairn")
}

fn helm() -> Command {
    let bin = std::env::var_os("CAIRN_TEST_PLATFORM_BIN")
        .expect("CAIRN_TEST_PLATFORM_BIN is not set: run eval \"$(tests/support/env.sh)\" (or tests/run)");
    let mut c = Command::new(PathBuf::from(bin).join("helm"));
    let home = std::env::temp_dir().join("cairn-test-helm");
    c.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("HELM_PLUGINS", tools::dir().join("helm-plugins"))
        // `helm template` must not reach for a cluster.
        .env("KUBECONFIG", "/dev/null");
    c
}

/// `helm template` with extra arguments: Ok(manifests) or Err(stderr).
fn render(args: &[&str]) -> Result<String, String> {
    let out = helm()
        .args(["template", RELEASE])
        .arg(chart())
        .args(["--namespace", NAMESPACE])
        .args(args)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn full_values() -> String {
    chart().join("ci/full-values.yaml").display().to_string()
}

fn documents(manifests: &str) -> Vec<Value> {
    support::parse_documents(manifests, "helm template")
}

fn bless() -> bool {
    std::env::var_os("CAIRN_BLESS").is_some()
}

/// Compares `actual` with the file at `path` (repository-relative); CAIRN_BLESS=1 rewrites it.
fn assert_file(path: &str, actual: &str) {
    let file = repo_root().join(path);
    if bless() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        expected == actual,
        "{path} differs from what the chart renders; review and run CAIRN_BLESS=1 cargo test --test chart"
    );
}

#[test]
fn the_charts_crds_are_the_generated_ones() {
    let generated = support::yaml_files(&repo_root().join("crds"));
    assert_eq!(generated.len(), cairn::api::KINDS.len());
    let copies = support::yaml_files(&chart().join("crds"));
    for file in &generated {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert_file(&format!("charts/cairn/crds/{name}"), &std::fs::read_to_string(file).unwrap());
    }
    let names = |v: &[PathBuf]| v.iter().map(|p| p.file_name().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(names(&copies), names(&generated), "charts/cairn/crds holds exactly crds/*.yaml");
}

#[test]
fn helm_lint_strict_is_clean() {
    for values in [None, Some(full_values())] {
        let mut c = helm();
        c.args(["lint", "--strict"]).arg(chart());
        if let Some(v) = &values {
            c.args(["--values", v]);
        }
        let out = c.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "helm lint --strict failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.contains("[WARNING]") && !stdout.contains("[ERROR]"), "{stdout}");
    }
}

#[test]
fn rendered_manifests_match_their_snapshots() {
    assert_file("tests/snapshots/chart/default.yaml", &render(&[]).unwrap());
    assert_file("tests/snapshots/chart/full.yaml", &render(&["--values", &full_values()]).unwrap());
}

/// `cairn`'s `operator` subcommand, exactly as the binary parses it (main.rs flattens the same
/// enum into its subcommands).
#[derive(clap::Parser)]
#[command(name = "cairn")]
struct Cairn {
    #[command(subcommand)]
    command: cairn::operator::args::Command,
}

/// The operator container's args, parsed by the real parser of `cairn operator`
/// (cairn::operator::args), with default values and with ci/full-values.yaml: every flag the chart
/// passes exists and takes the value the chart means; every variable it sets is one the operator
/// reads, for the flag it means. A renamed or retyped flag fails here, not in a pod.
#[test]
fn the_operator_container_args_and_env_are_what_cairn_operator_accepts() {
    use cairn::operator::args::Command as Sub;
    use clap::{CommandFactory, Parser};

    struct Expect {
        values: Vec<String>,
        fullname: &'static str,
        namespaces: Vec<&'static str>,
        image: &'static str,
        gateway_image: &'static str,
        pull_policy: Option<&'static str>,
        cluster_domain: &'static str,
        admin_port: u16,
        log: &'static str,
        otlp: Option<(&'static str, cairn::config::OtlpProtocol)>,
    }
    let cases = [
        Expect {
            values: vec![],
            fullname: "cairn",
            namespaces: vec![],
            image: "ghcr.io/cairn-dev/cairn:0.1.0",
            gateway_image: "ghcr.io/cairn-dev/cairn:0.1.0",
            pull_policy: Some("IfNotPresent"),
            cluster_domain: "cluster.local",
            admin_port: 9090,
            log: "info",
            otlp: None,
        },
        Expect {
            values: vec!["--values".into(), full_values()],
            fullname: "cairn",
            namespaces: vec!["team-a", "team-b"],
            image: "registry.example.com/platform/cairn:0.1.0-rc.1",
            gateway_image: "registry.example.com/platform/cairn-gateway:0.1.0-rc.1",
            pull_policy: Some("IfNotPresent"),
            cluster_domain: "corp.example",
            admin_port: 9191,
            log: "cairn=debug,info",
            otlp: Some((
                "http://otel-collector.monitoring:4318/v1/traces",
                cairn::config::OtlpProtocol::HttpProtobuf,
            )),
        },
    ];
    // Which flag each environment variable sets (clap's `env`), plus the log filter.
    let sub = Cairn::command();
    let operator = sub.find_subcommand("operator").expect("cairn has an operator subcommand");
    let env_of: std::collections::BTreeMap<String, String> = operator
        .get_arguments()
        .filter_map(|a| Some((a.get_env()?.to_str()?.to_string(), a.get_id().to_string())))
        .collect();

    for case in cases {
        let values: Vec<&str> = case.values.iter().map(String::as_str).collect();
        let docs = documents(&render(&values).unwrap());
        let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("a Deployment");
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(container["name"], "operator");
        assert_eq!(container["image"], case.image);
        assert!(container.get("command").is_none(), "the image's entrypoint is cairn (Dockerfile)");
        let args: Vec<&str> =
            container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let parsed = Cairn::try_parse_from(std::iter::once("cairn").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("cairn rejects the chart's args {args:?}:\n{e}"));
        let Sub::Operator(a) = parsed.command;
        assert_eq!(a.namespaces, case.namespaces, "{args:?}");
        assert_eq!(a.gateway_image, case.gateway_image);
        assert_eq!(a.gateway_image_pull_policy.as_deref(), case.pull_policy);
        assert_eq!(a.cluster_domain, case.cluster_domain);
        assert_eq!(a.lease_name, case.fullname, "one Lease per release");
        assert!(a.leader_elect);
        assert_eq!(a.log_format, "json");
        let otlp = a.otlp();
        assert_eq!(otlp.as_ref().map(|o| (o.endpoint.as_str(), o.protocol)), case.otlp, "{args:?}");
        // The admin port the operator listens on is the one the probes and the Service use.
        assert_eq!(a.admin_port, case.admin_port);
        let ports = container["ports"].as_array().unwrap();
        assert!(
            ports.iter().any(|p| p["name"] == "admin" && p["containerPort"] == a.admin_port),
            "{ports:?}"
        );
        assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
        assert_eq!(container["livenessProbe"]["httpGet"]["port"], "admin");
        let service = docs.iter().find(|d| d["kind"] == "Service").expect("a Service");
        assert!(
            service["spec"]["ports"].as_array().unwrap().iter().any(|p| p["targetPort"] == "admin"),
            "{service}"
        );

        // Environment: each variable is read by the flag it is meant for.
        let mut seen = Vec::new();
        for e in container["env"].as_array().unwrap() {
            let name = e["name"].as_str().unwrap();
            seen.push(name);
            match name {
                n if n == cairn::operator::args::LOG_FILTER_ENV => assert_eq!(e["value"], case.log),
                "POD_NAMESPACE" => {
                    assert_eq!(env_of.get(name).map(String::as_str), Some("lease_namespace"));
                    assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace");
                    // ... where the chart grants the Lease.
                    let role = docs
                        .iter()
                        .find(|d| {
                            d["kind"] == "Role"
                                && d["metadata"]["name"] == format!("{}-leader-election", case.fullname)
                        })
                        .expect("the leader-election Role");
                    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
                }
                "POD_NAME" => {
                    assert_eq!(env_of.get(name).map(String::as_str), Some("identity"));
                    assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
                }
                other => panic!("the chart sets {other}, which cairn operator does not read ({env_of:?})"),
            }
        }
        seen.sort();
        assert_eq!(seen, ["POD_NAME", "POD_NAMESPACE", "RUST_LOG"]);
    }
}

/// A JSON schema for kubeconform from a published CRD (what openapi2jsonschema does), named the
/// way kubeconform looks it up: `<kind>-<first label of the group>-<version>.json`.
fn schema_from_crd(crd: &Path, out: &Path) {
    let crd = support::read_documents(crd).pop().unwrap();
    let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_lowercase();
    let group = crd["spec"]["group"].as_str().unwrap().split('.').next().unwrap().to_string();
    for version in crd["spec"]["versions"].as_array().unwrap() {
        let mut schema = version["schema"]["openAPIV3Schema"].clone();
        schema["$schema"] = "http://json-schema.org/draft-07/schema#".into();
        let file = out.join(format!("{kind}-{group}-{}.json", version["name"].as_str().unwrap()));
        std::fs::write(file, schema.to_string()).unwrap();
    }
}

/// kubeconform -strict on a file of manifests: (passed, summary JSON).
fn kubeconform(manifests: &str) -> (bool, Value) {
    let dir = tempfile::tempdir().unwrap();
    let crd_schemas = dir.path().join("crd-schemas");
    std::fs::create_dir(&crd_schemas).unwrap();
    schema_from_crd(&tools::crd("monitoring.coreos.com_servicemonitors.yaml"), &crd_schemas);
    let file = dir.path().join("manifests.yaml");
    std::fs::write(&file, manifests).unwrap();
    let k8s = tools::dir().join("k8s-json-schema/v1.35.0-local-strict");
    let out = tools::command("kubeconform")
        .args(["-strict", "-summary", "-output", "json"])
        .arg("-schema-location")
        .arg(format!("{}/{{{{.ResourceKind}}}}{{{{.KindSuffix}}}}.json", k8s.display()))
        .arg("-schema-location")
        .arg(format!("{}/{{{{.ResourceKind}}}}{{{{.KindSuffix}}}}.json", crd_schemas.display()))
        .arg(&file)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("kubeconform output ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.success(), report)
}

#[test]
fn rendered_manifests_pass_kubeconform_against_offline_schemas() {
    for (what, manifests) in
        [("default", render(&[]).unwrap()), ("full", render(&["--values", &full_values()]).unwrap())]
    {
        let n = documents(&manifests).len();
        let (ok, report) = kubeconform(&manifests);
        assert!(ok, "{what}: kubeconform refused: {report:#}");
        let summary = &report["summary"];
        assert_eq!(summary["valid"], n, "{what}: every document validated, none skipped: {summary}");
        assert_eq!(summary["skipped"], 0, "{what}: {summary}");
    }
    // And it refuses what is wrong: a Deployment with a misspelt field.
    let broken = render(&[]).unwrap().replace("readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true");
    let (ok, report) = kubeconform(&broken);
    assert!(!ok && report["summary"]["invalid"] == 1, "a misspelt field passed: {report}");
}

#[test]
fn values_schema_refuses_wrong_types_unknown_values_and_negative_replicas_naming_the_value() {
    for (set, expected) in [
        ("replicaCount=-1", "/replicaCount': minimum: got -1, want 0"),
        ("replicaCount=two", "/replicaCount': got string, want integer"),
        ("adminPort=true", "/adminPort': got boolean, want integer"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy'"),
        ("replicas=2", "additional properties 'replicas' not allowed"),
        ("serviceMonitor.enable=true", "at '/serviceMonitor': additional properties 'enable' not allowed"),
        ("watchNamespaces[0]=Team_A", "/watchNamespaces/0'"),
        ("grafanaDashboard.enabled=yes", "/grafanaDashboard/enabled': got string, want boolean"),
    ] {
        let err = render(&["--set", set]).expect_err(set);
        assert!(err.contains(expected), "--set {set}: expected {expected:?} in:\n{err}");
    }
}

/// Every key of values.yaml is described by values.schema.json, and the schema describes no value
/// that values.yaml does not show with its default.
#[test]
fn the_values_schema_describes_every_value() {
    fn walk(path: &str, value: &Value, schema: &Value, problems: &mut Vec<String>) {
        let Some(map) = value.as_object() else { return };
        let props = schema["properties"].as_object();
        let open = props.is_none(); // a free-form map (labels, resources, affinity)
        if open {
            return;
        }
        let props = props.unwrap();
        for (k, v) in map {
            match props.get(k) {
                Some(s) => walk(&format!("{path}.{k}"), v, s, problems),
                None => problems.push(format!("{path}.{k}: in values.yaml, not in values.schema.json")),
            }
        }
        for k in props.keys() {
            let helms_own = path.is_empty() && k == "global";
            if !map.contains_key(k) && !helms_own {
                problems.push(format!("{path}.{k}: in values.schema.json, not in values.yaml"));
            }
        }
        if schema["additionalProperties"] != false {
            problems.push(format!("{path}: the schema accepts unknown keys"));
        }
    }
    let values = support::read_documents(&chart().join("values.yaml")).pop().unwrap();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(chart().join("values.schema.json")).unwrap()).unwrap();
    let mut problems = Vec::new();
    walk("", &values, &schema, &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// charts/cairn/templates/_rules.tpl, written from the operator's table: every row but the Lease's
/// (granted in the release's namespace only) as `cairn.operatorRules`, the Lease's as
/// `cairn.leaseRules`.
fn rules_template() -> String {
    use cairn::operator::rbac::RULES;
    let row = |r: &cairn::operator::rbac::Rule| {
        let list = |v: &[&str]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        format!(
            "- apiGroups: [{:?}]\n  resources: [{}]\n  verbs: [{}]\n",
            r.group,
            list(r.resources),
            list(r.verbs)
        )
    };
    let is_lease = |r: &&cairn::operator::rbac::Rule| r.group == "coordination.k8s.io";
    let operator: String = RULES.iter().filter(|r| !is_lease(r)).map(row).collect();
    let lease: String = RULES.iter().filter(is_lease).map(row).collect();
    format!(
        "{{{{/*\nGenerated by tests/chart.rs from operator::rbac::RULES (src/operator/rbac.rs); \
         CAIRN_BLESS=1 cargo test --test chart rewrites it.\nThe Lease row is granted in the \
         release's namespace only.\n*/}}}}\n{{{{- define \"cairn.operatorRules\" -}}}}\n{operator}{{{{- end -}}}}\n\n\
         {{{{- define \"cairn.leaseRules\" -}}}}\n{lease}{{{{- end -}}}}\n"
    )
}

#[test]
fn the_charts_rbac_rules_are_generated_from_the_operators_table() {
    assert_file("charts/cairn/templates/_rules.tpl", &rules_template());
}

/// Every (group, resource, verb) of operator::rbac::RULES.
fn table() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for r in cairn::operator::rbac::RULES {
        for res in r.resources {
            for v in r.verbs {
                out.push((r.group.to_string(), res.to_string(), v.to_string()));
            }
        }
    }
    out.sort();
    out
}

fn rules_of(doc: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for r in doc["rules"].as_array().unwrap() {
        assert!(r.get("resourceNames").is_none() && r.get("nonResourceURLs").is_none(), "{r}");
        for g in r["apiGroups"].as_array().unwrap() {
            for res in r["resources"].as_array().unwrap() {
                for v in r["verbs"].as_array().unwrap() {
                    out.push((
                        g.as_str().unwrap().into(),
                        res.as_str().unwrap().into(),
                        v.as_str().unwrap().into(),
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn rbac_has_no_wildcard_and_stays_in_the_watched_namespaces() {
    // Cluster-wide: one ClusterRole; the Lease only in the release's namespace.
    let docs = documents(&render(&[]).unwrap());
    let kinds =
        |docs: &[Value], kind: &str| docs.iter().filter(|d| d["kind"] == kind).cloned().collect::<Vec<_>>();
    let cluster_roles = kinds(&docs, "ClusterRole");
    assert_eq!(cluster_roles.len(), 1);
    let cluster_rules = rules_of(&cluster_roles[0]);
    let roles = kinds(&docs, "Role");
    assert_eq!(roles.len(), 1, "only the leader-election Role");
    assert_eq!(roles[0]["metadata"]["namespace"], NAMESPACE);
    let lease_rules = rules_of(&roles[0]);
    assert!(
        lease_rules.iter().all(|(g, r, _)| g == "coordination.k8s.io" && r == "leases"),
        "{lease_rules:?}"
    );
    assert!(!cluster_rules.iter().any(|(_, r, _)| r == "leases"), "no cluster-wide Lease grant");
    for (g, r, v) in cluster_rules.iter().chain(&lease_rules) {
        assert!(![g, r, v].iter().any(|s| s.contains('*')), "wildcard in {g}/{r} {v}");
    }
    // Exactly the operator's table: nothing it does not use, nothing it uses missing.
    let mut granted: Vec<_> = cluster_rules.iter().chain(&lease_rules).cloned().collect();
    granted.sort();
    assert_eq!(granted, table(), "the chart's grants differ from operator::rbac::RULES");
    // The operator must be able to grant the gateways' Role (RBAC lets it grant only what it
    // holds): configmaps and secrets get/list/watch, core events create/patch.
    for (g, r, verbs) in [
        ("", "configmaps", ["get", "list", "watch"].as_slice()),
        ("", "secrets", &["get", "list", "watch"]),
        ("", "events", &["create", "patch"]),
    ] {
        for v in verbs {
            assert!(
                cluster_rules.contains(&(g.into(), r.into(), v.to_string())),
                "the operator cannot grant {r} {v}"
            );
        }
    }

    // Watched namespaces: the same rules in a Role per namespace, nothing cluster-wide.
    let docs = documents(&render(&["--set", "watchNamespaces={team-a,team-b}"]).unwrap());
    assert!(kinds(&docs, "ClusterRole").is_empty() && kinds(&docs, "ClusterRoleBinding").is_empty());
    let roles = kinds(&docs, "Role");
    let mut namespaces: Vec<&str> =
        roles.iter().map(|r| r["metadata"]["namespace"].as_str().unwrap()).collect();
    namespaces.sort();
    assert_eq!(namespaces, ["cairn-system", "team-a", "team-b"]);
    for role in roles.iter().filter(|r| r["metadata"]["namespace"] != NAMESPACE) {
        assert_eq!(rules_of(role), cluster_rules, "{}", role["metadata"]["namespace"]);
    }
    let bindings = kinds(&docs, "RoleBinding");
    assert_eq!(bindings.len(), 3);
    for b in &bindings {
        assert_eq!(b["subjects"][0]["name"], "cairn");
        assert_eq!(b["subjects"][0]["namespace"], NAMESPACE);
    }
}

#[test]
fn the_charts_own_helm_unittest_suites_pass() {
    let out = helm().arg("unittest").arg(chart()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "helm unittest failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let tests_line = stdout.lines().find(|l| l.starts_with("Tests:")).unwrap_or_default();
    assert!(tests_line.contains("passed") && !tests_line.contains("failed"), "{stdout}");
}
