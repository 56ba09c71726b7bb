//! Render tests: snapshots of every example's children (`snapshots/<example>.yaml`; bless with
//! `CAIRN_BLESS=1 cargo test --lib operator::render`), plus the properties the operator relies on.

use super::*;
use crate::api::{Autoscaling, Object};
use crate::compile::Mode;
use crate::config::CompiledGateway;
use crate::config::{Credentials, SESSION_KEY, SIGNING_KEY};
use crate::manifest::Options;
use crate::operator::gateway_spec;
use crate::workspace::Workspace;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as STANDARD_B64;
use sha2::Digest;
use std::path::{Path, PathBuf};

fn settings() -> Settings {
    Settings {
        image: "registry.example.com/cairn:0.1.0".into(),
        image_pull_policy: Some("IfNotPresent".into()),
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(dir: &Path) -> Workspace {
    let mode = Mode::Cluster { domain: "cluster.local".into() };
    let ws = Workspace::load(&[dir.to_path_buf()], &Options::default(), &mode);
    assert!(ws.problems.is_empty(), "{:?}", ws.problems);
    ws
}

fn owner(obj: &Object) -> Owner {
    Owner {
        kind: obj.kind().into(),
        name: obj.name().into(),
        namespace: obj.namespace().into(),
        uid: format!("uid-of-{}", obj.name()),
    }
}

/// Fixed stand-ins for the generated keys, so snapshots are stable.
fn with_keys(mut compiled: CompiledGateway) -> CompiledGateway {
    compiled.credentials.0.insert(SESSION_KEY.into(), "test-session-key".into());
    compiled.credentials.0.insert(SIGNING_KEY.into(), "test-signing-key".into());
    compiled
}

/// Every child of every gateway and deployed MCPServer of a workspace.
fn render_all(ws: &Workspace) -> Vec<Child> {
    let mut out = Vec::new();
    for doc in &ws.manifests.objects {
        let obj = &doc.value;
        if let Some((layer, common)) = gateway_spec(obj) {
            let compiled = ws
                .output
                .gateways
                .iter()
                .find(|g| g.config.gateway.name == obj.name() && g.config.gateway.layer == layer)
                .expect("every example gateway compiles");
            let compiled = with_keys(compiled.clone());
            let o = owner(obj);
            let gw = Gateway { owner: &o, layer, common, compiled: &compiled };
            out.extend(gateway(gw, &settings()).expect("renders").children);
        }
        if let Object::MCPServer(s) = obj {
            out.extend(mcp_server(&owner(obj), &s.spec, &settings()).expect("renders"));
        }
    }
    out
}

fn examples() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 4);
    dirs
}

#[test]
fn every_example_renders_to_its_checked_in_snapshot() {
    let bless = std::env::var_os("CAIRN_BLESS").is_some();
    let mut drift = Vec::new();
    for dir in examples() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let children = render_all(&load(&dir));
        let mut text = String::new();
        for c in &children {
            text.push_str("---\n");
            text.push_str(&serde_saphyr::to_string(&c.body).unwrap());
        }
        let path = root().join("src/operator/render/snapshots").join(format!("{name}.yaml"));
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        if std::fs::read_to_string(&path).unwrap_or_default() != text {
            drift.push(name.clone());
        }
        // Secret values travel only in the credentials Secret (base64 there, so absent from text).
        for secret in
            ["sk-openai-replace-me", "cairn-vk-support-bot-0123456789abcdef", "ghp_example_token_replace_me"]
        {
            assert!(!text.contains(secret), "{secret} is in the rendered children of {name}");
        }
    }
    assert!(
        drift.is_empty(),
        "rendered children changed for {drift:?}; if intended: CAIRN_BLESS=1 cargo test --lib operator::render"
    );
}

/// Each body is exactly what its Kubernetes type holds: a misspelt field would be dropped by the
/// typed round trip, and the API server would drop it too.
#[test]
fn every_child_round_trips_through_its_kubernetes_type() {
    use k8s_openapi::api::{apps, autoscaling, core, policy, rbac};
    fn same<K: serde::de::DeserializeOwned + serde::Serialize>(c: &Child) {
        let typed: K = serde_json::from_value(c.body.clone()).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(serde_json::to_value(typed).unwrap(), c.body, "{:?} {}", c.kind, c.name);
    }
    for dir in examples() {
        for c in render_all(&load(&dir)) {
            match c.kind {
                ChildKind::ServiceAccount => same::<core::v1::ServiceAccount>(&c),
                ChildKind::Role => same::<rbac::v1::Role>(&c),
                ChildKind::RoleBinding => same::<rbac::v1::RoleBinding>(&c),
                ChildKind::Secret => same::<core::v1::Secret>(&c),
                ChildKind::ConfigMap => same::<core::v1::ConfigMap>(&c),
                ChildKind::Service => same::<core::v1::Service>(&c),
                ChildKind::Deployment => same::<apps::v1::Deployment>(&c),
                ChildKind::PodDisruptionBudget => same::<policy::v1::PodDisruptionBudget>(&c),
                ChildKind::HorizontalPodAutoscaler => same::<autoscaling::v2::HorizontalPodAutoscaler>(&c),
            }
        }
    }
}

fn quickstart() -> (Workspace, Object) {
    let ws = load(&root().join("examples/quickstart"));
    let gw = ws.manifests.objects.iter().find(|d| d.value.kind() == "AIGateway").unwrap().value.clone();
    (ws, gw)
}

fn render_quickstart(obj: &Object, compiled: &CompiledGateway) -> Rendered {
    let (layer, common) = gateway_spec(obj).unwrap();
    let o = owner(obj);
    gateway(Gateway { owner: &o, layer, common, compiled: &with_keys(compiled.clone()) }, &settings())
        .unwrap()
}

fn find(r: &Rendered, kind: ChildKind) -> Vec<&Child> {
    r.children.iter().filter(|c| c.kind == kind).collect()
}

#[test]
fn a_config_change_changes_the_config_map_and_never_the_deployment() {
    let (ws, obj) = quickstart();
    let before = render_quickstart(&obj, &ws.output.gateways[0]);
    let mut changed = ws.output.gateways[0].clone();
    changed.config.ai.as_mut().unwrap().rules[0].matches[0].model = "gpt-4.1".into();
    changed.credentials.0.insert("secret/default/x/y".into(), "rotated".into());
    let after = render_quickstart(&obj, &changed);
    assert_ne!(find(&before, ChildKind::ConfigMap), find(&after, ChildKind::ConfigMap));
    assert_ne!(find(&before, ChildKind::Secret), find(&after, ChildKind::Secret));
    assert_eq!(find(&before, ChildKind::Deployment), find(&after, ChildKind::Deployment));
    assert_ne!(before.manifest.config_hash, after.manifest.config_hash);
}

#[test]
fn children_are_named_owned_and_labelled_per_the_contract_and_written_config_last() {
    let (ws, obj) = quickstart();
    let r = render_quickstart(&obj, &ws.output.gateways[0]);
    let order: Vec<(ChildKind, &str)> = r.children.iter().map(|c| (c.kind, c.name.as_str())).collect();
    assert_eq!(
        order,
        vec![
            (ChildKind::ServiceAccount, "llm-ai-gateway"),
            (ChildKind::Role, "llm-ai-gateway"),
            (ChildKind::RoleBinding, "llm-ai-gateway"),
            (ChildKind::Secret, "llm-ai-gateway-credentials"),
            (ChildKind::ConfigMap, "llm-ai-gateway-config"),
            (ChildKind::Service, "llm-ai-gateway"),
            (ChildKind::Deployment, "llm-ai-gateway"),
        ]
    );
    for c in &r.children {
        let m = &c.body["metadata"];
        assert_eq!(m["ownerReferences"][0]["controller"], true);
        assert_eq!(m["ownerReferences"][0]["kind"], "AIGateway");
        assert_eq!(m["labels"]["app.kubernetes.io/managed-by"], "cairn-operator");
        assert_eq!(m["labels"]["cairn.dev/gateway"], "llm");
        assert_eq!(m["labels"]["app.kubernetes.io/component"], "ai-gateway");
    }
    let cm = find(&r, ChildKind::ConfigMap)[0];
    assert_eq!(cm.body["metadata"]["annotations"]["cairn.dev/config-hash"], r.manifest.config_hash.as_str());
    let manifest = packed::Manifest::from_json(cm.body["data"]["manifest.json"].as_str().unwrap()).unwrap();
    let text = cm.body["data"]["config.json"].as_str().unwrap();
    let config = packed::unpack(&manifest, &[text.as_bytes()]).unwrap();
    assert_eq!(config, ws.output.gateways[0].config);
}

#[test]
fn the_role_reads_exactly_its_own_config_maps_and_secret() {
    let (ws, obj) = quickstart();
    let r = render_quickstart(&obj, &ws.output.gateways[0]);
    let rules = &find(&r, ChildKind::Role)[0].body["rules"];
    assert_eq!(
        rules,
        &serde_json::json!([
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["llm-ai-gateway-config"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["llm-ai-gateway-credentials"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        ])
    );
}

#[test]
fn the_secret_holds_only_the_bundle_and_its_digest() {
    let (ws, obj) = quickstart();
    let compiled = with_keys(ws.output.gateways[0].clone());
    let r = render_quickstart(&obj, &ws.output.gateways[0]);
    let s = find(&r, ChildKind::Secret)[0];
    let data = s.body["data"].as_object().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), vec!["credentials.json"]);
    let bytes = STANDARD_B64.decode(data["credentials.json"].as_str().unwrap()).unwrap();
    assert_eq!(Credentials::from_json(std::str::from_utf8(&bytes).unwrap()).unwrap(), compiled.credentials);
    assert_eq!(
        s.body["metadata"]["annotations"]["cairn.dev/credentials-digest"],
        compiled.credentials.digest()
    );
    assert_eq!(r.manifest.credentials_digest, compiled.credentials.digest());
}

#[test]
fn pod_settings_shape_the_pod_and_autoscaling_takes_replicas_over() {
    let (ws, mut obj) = quickstart();
    let Object::AIGateway(g) = &mut obj else { unreachable!() };
    let c = &mut g.spec.common;
    c.autoscaling =
        Some(Autoscaling { min_replicas: 2, max_replicas: 5, target_cpu_utilization_percentage: 70 });
    c.pod.priority_class_name = Some("high".into());
    c.pod.labels.insert("team".into(), "ml".into());
    c.pod.labels.insert("app.kubernetes.io/name".into(), "mine".into());
    c.pod.image_pull_secrets.push(crate::api::LocalRef { name: "regcred".into() });
    c.pod.topology_spread_constraints.push(
        serde_json::from_value(serde_json::json!({
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"
        }))
        .unwrap(),
    );
    let r = render_quickstart(&obj, &ws.output.gateways[0]);
    let d = &find(&r, ChildKind::Deployment)[0].body;
    assert!(d["spec"].get("replicas").is_none(), "the HPA owns replicas: {d}");
    let pod = &d["spec"]["template"];
    assert_eq!(pod["metadata"]["labels"]["team"], "ml");
    assert_eq!(pod["metadata"]["labels"]["app.kubernetes.io/name"], "cairn-gateway", "Cairn's labels win");
    assert_eq!(pod["spec"]["priorityClassName"], "high");
    assert_eq!(pod["spec"]["imagePullSecrets"][0]["name"], "regcred");
    assert_eq!(
        pod["spec"]["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"],
        "llm"
    );
    let hpa = &find(&r, ChildKind::HorizontalPodAutoscaler)[0].body;
    assert_eq!(hpa["spec"]["minReplicas"], 2);
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 70);
    assert_eq!(find(&r, ChildKind::PodDisruptionBudget).len(), 1);

    let Object::AIGateway(g) = &mut obj else { unreachable!() };
    g.spec.common.autoscaling = None;
    g.spec.common.replicas = Some(1);
    let r = render_quickstart(&obj, &ws.output.gateways[0]);
    assert!(find(&r, ChildKind::HorizontalPodAutoscaler).is_empty());
    assert!(find(&r, ChildKind::PodDisruptionBudget).is_empty());
    assert_eq!(find(&r, ChildKind::Deployment)[0].body["spec"]["replicas"], 1);
}

#[test]
fn a_config_too_large_for_the_config_maps_is_refused_with_its_size() {
    let (ws, obj) = quickstart();
    let mut big = ws.output.gateways[0].clone();
    // Incompressible model names (base64 of a hash chain), more than the 6 MiB the parts hold.
    let mut h = sha2::Sha256::digest(b"seed").to_vec();
    let ai = big.config.ai.as_mut().unwrap();
    let model = ai.backends[0].models[0].clone();
    for _ in 0..7_000 {
        let mut m = model.clone();
        m.name.clear();
        for _ in 0..32 {
            h = sha2::Sha256::digest(&h).to_vec();
            m.name.push_str(&STANDARD_B64.encode(&h));
        }
        ai.backends[0].models.push(m);
    }
    let (layer, common) = gateway_spec(&obj).unwrap();
    let o = owner(&obj);
    let e =
        gateway(Gateway { owner: &o, layer, common, compiled: &with_keys(big) }, &settings()).unwrap_err();
    assert_eq!(e.category(), "config_too_large");
    let RenderError::TooLarge(packed::PackError::TooLarge { size, .. }) = &e else { panic!("{e}") };
    assert!(e.to_string().contains(&format!("the compiled config is {size} bytes")), "{e}");
}

#[test]
fn a_listener_on_the_admin_port_is_refused() {
    let (ws, mut obj) = quickstart();
    let Object::AIGateway(g) = &mut obj else { unreachable!() };
    g.spec.common.listener.port = ADMIN_PORT;
    let (layer, common) = gateway_spec(&obj).unwrap();
    let o = owner(&obj);
    let compiled = with_keys(ws.output.gateways[0].clone());
    let e = gateway(Gateway { owner: &o, layer, common, compiled: &compiled }, &settings()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "spec.listener.port: 9090 is the gateway's admin port (/metrics, /healthz, /readyz); choose another"
    );
}

#[test]
fn the_longest_gateway_name_keeps_every_child_name_valid() {
    let name = "a".repeat(40);
    for layer in [Layer::Ai, Layer::Mcp, Layer::Agent] {
        let last_part = packed::part_name(&config_map_name(&name, layer), packed::MAX_PARTS - 1);
        assert!(last_part.len() <= 63, "{last_part}");
        // Service names are DNS labels; a Secret's name is a DNS subdomain (253).
        assert!(base_name(&name, layer).len() <= 63);
        assert!(secret_name(&name, layer).len() <= 253);
    }
    assert!(crate::api::deployed_server_name(&"s".repeat(52)).len() <= 63);
}

#[test]
fn a_stdio_server_runs_under_the_bridge_without_a_token_and_needs_a_command() {
    let ws = load(&root().join("examples/mcp-tools"));
    let (obj, spec) = ws
        .manifests
        .objects
        .iter()
        .find_map(|d| match &d.value {
            Object::MCPServer(s) if s.spec.deployment.is_some() => Some((d.value.clone(), s.spec.clone())),
            _ => None,
        })
        .unwrap();
    let children = mcp_server(&owner(&obj), &spec, &settings()).unwrap();
    let d = &children.iter().find(|c| c.kind == ChildKind::Deployment).unwrap().body;
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["initContainers"][0]["image"], "registry.example.com/cairn:0.1.0");
    assert_eq!(pod["initContainers"][0]["args"][0], "copy-binary");
    assert_eq!(pod["containers"][0]["command"][0], "/cairn/cairn");
    assert_eq!(pod["containers"][0]["args"][0], "mcp-bridge");
    let svc = children.iter().find(|c| c.kind == ChildKind::Service).unwrap();
    assert_eq!(svc.name, crate::api::deployed_server_name(obj.name()));

    let mut no_command = spec.clone();
    no_command.deployment.as_mut().unwrap().command.clear();
    let e = mcp_server(&owner(&obj), &no_command, &settings()).unwrap_err();
    assert!(e.to_string().starts_with("spec.deployment.command: transport Stdio needs"), "{e}");
}
