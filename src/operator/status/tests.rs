//! Status computation: conditions from diagnostics, which gateways serve an object, the
//! gateway's kstatus pair, and stable transition times.

use super::*;
use crate::compile::Mode;
use crate::manifest::Options;
use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};

fn compiled(yaml: &str) -> (Vec<Object>, Compiled) {
    let m = crate::manifest::load_str("test.yaml", yaml, &Options::default()).expect("test YAML loads");
    let objects: Vec<Object> = m.objects.iter().map(|d| d.value.clone()).collect();
    let out = crate::workspace::compile_manifests(&m, &Mode::Cluster { domain: "cluster.local".into() });
    (objects, Compiled::new(out))
}

const YAML: &str = r#"
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
kind: AIRoute
metadata: {name: good}
spec:
  gatewayRefs: [{name: llm}, {name: other}]
  rules: [{matches: [{model: a}], backends: [{backendRef: {name: echo}, model: echo-1}]}]
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {name: broken}
spec:
  gatewayRefs: [{name: llm}]
  rules: [{matches: [{model: b}], backends: [{backendRef: {name: nowhere}}]}]
"#;

fn find<'a>(objects: &'a [Object], name: &str) -> &'a Object {
    objects.iter().find(|o| o.name() == name).unwrap()
}

fn cond<'a>(status: &'a Value, t: &str) -> &'a Value {
    status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == t).unwrap()
}

#[test]
fn a_route_to_a_missing_backend_names_it_in_resolved_refs() {
    let (objects, c) = compiled(YAML);
    let s = desired_attached(find(&objects, "broken"), &c);
    let r = cond(&s, "ResolvedRefs");
    assert_eq!(r["status"], "False");
    assert_eq!(r["reason"], "RefNotFound");
    let m = r["message"].as_str().unwrap();
    assert!(m.contains("spec.rules[0].backends[0].backendRef.name") && m.contains("nowhere"), "{m}");
}

#[test]
fn a_route_on_several_gateways_says_which_serve_it() {
    let (objects, c) = compiled(YAML);
    let s = desired_attached(find(&objects, "good"), &c);
    assert_eq!(s["gateways"][0], json!({"name": "llm", "accepted": true}));
    assert_eq!(s["gateways"][1]["name"], "other");
    assert_eq!(s["gateways"][1]["accepted"], false);
    assert_eq!(cond(&s, "Accepted")["message"], "Served by AIGateway llm; not by other");
    // The backend lists the gateway whose config uses it.
    let b = desired_attached(find(&objects, "echo"), &c);
    assert_eq!(b["gateways"], json!([{"name": "llm", "accepted": true}]));
}

fn deployment(desired: i32, ready: i32, updated: i32) -> Deployment {
    Deployment {
        metadata: kube::api::ObjectMeta { generation: Some(2), ..Default::default() },
        spec: Some(DeploymentSpec { replicas: Some(desired), ..Default::default() }),
        status: Some(DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(desired),
            ready_replicas: Some(ready),
            updated_replicas: Some(updated),
            ..Default::default()
        }),
    }
}

fn gateway_status(programmed: &Programmed, d: Option<&Deployment>) -> Value {
    desired_gateway(GatewayFacts {
        name: "llm",
        namespace: "ns",
        layer: Layer::Ai,
        port: 8080,
        diagnostics: &[],
        programmed,
        deployment: d,
        attached: &BTreeMap::new(),
        previous_hash: Some("0123456789ab"),
    })
}

#[test]
fn gateways_report_kstatus_reconciling_while_rolling_out_and_current_when_ready() {
    let yes = Programmed::Yes("ffffffffffffffffffff".into());
    let rolling = gateway_status(&yes, Some(&deployment(2, 1, 2)));
    assert_eq!(cond(&rolling, "Ready")["status"], "True");
    assert_eq!(cond(&rolling, "Reconciling")["status"], "True");
    assert_eq!(cond(&rolling, "Stalled")["status"], "False");
    assert_eq!(rolling["configHash"], "ffffffffffff");
    assert_eq!(rolling["address"], "http://llm-ai-gateway.ns.svc:8080");

    let done = gateway_status(&yes, Some(&deployment(2, 2, 2)));
    assert_eq!(cond(&done, "Reconciling")["status"], "False");
    assert_eq!(done["readyReplicas"], 2);

    let none_ready = gateway_status(&yes, Some(&deployment(1, 0, 1)));
    assert_eq!(cond(&none_ready, "Ready")["status"], "False");
    assert_eq!(cond(&none_ready, "Ready")["message"], "0 of 1 pods ready");
}

#[test]
fn a_config_too_large_stalls_the_gateway_and_keeps_the_last_hash() {
    let p = Programmed::Invalid {
        reason: "ConfigTooLarge".into(),
        message: "the compiled config is 9 bytes".into(),
    };
    let s = gateway_status(&p, Some(&deployment(1, 1, 1)));
    let programmed = cond(&s, "Programmed");
    assert_eq!(programmed["status"], "False");
    assert_eq!(programmed["reason"], "ConfigTooLarge");
    assert!(programmed["message"].as_str().unwrap().starts_with("the compiled config is 9 bytes"));
    assert_eq!(cond(&s, "Stalled")["status"], "True");
    assert_eq!(cond(&s, "Reconciling")["status"], "False");
    assert_eq!(s["configHash"], "0123456789ab", "the pods still serve the last config");
}

#[test]
fn unchanged_conditions_keep_their_transition_time_and_changed_ones_move() {
    let yes = Programmed::Yes("ff".into());
    let then = Time(Timestamp::from_second(1_000_000).unwrap());
    let now = Time(Timestamp::from_second(2_000_000).unwrap());
    let mut first = gateway_status(&yes, Some(&deployment(1, 0, 1)));
    stamp(&mut first, Some(3), &[], &then);
    let old = conditions_of(&first);
    assert!(old.iter().all(|c| c.observed_generation == Some(3) && c.last_transition_time == then));

    let mut same = gateway_status(&yes, Some(&deployment(1, 0, 1)));
    stamp(&mut same, Some(3), &old, &now);
    assert_eq!(same, first, "nothing changed, so nothing to write");

    let mut ready = gateway_status(&yes, Some(&deployment(1, 1, 1)));
    stamp(&mut ready, Some(3), &old, &now);
    let new = conditions_of(&ready);
    let t = |list: &[Condition], ty: &str| {
        list.iter().find(|c| c.type_ == ty).unwrap().last_transition_time.clone()
    };
    assert_eq!(t(&new, "Ready"), now);
    assert_eq!(t(&new, "Accepted"), then);
}

#[test]
fn a_broken_route_is_stalled_for_kstatus_with_the_cause_and_a_good_backend_is_not() {
    let (objects, c) = compiled(YAML);
    let s = desired_attached(find(&objects, "broken"), &c);
    let stalled = cond(&s, "Stalled");
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "RefNotFound");
    let m = stalled["message"].as_str().unwrap();
    assert!(
        m.starts_with("ResolvedRefs: ") && m.contains(r#"backendRef.name: AIBackend "nowhere" not found"#),
        "{m}"
    );
    let s = desired_attached(find(&objects, "echo"), &c);
    assert_eq!(cond(&s, "Stalled")["status"], "False");
}
