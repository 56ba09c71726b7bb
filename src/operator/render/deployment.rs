//! The gateway Deployment: `cairn gateway` in cluster mode, reading its ConfigMaps and Secret
//! through the API (so a config change never touches the pod template and never rolls the pods;
//! only pod-shaping fields of the spec do), probes on the admin port, the restricted security
//! context, and the scheduling knobs of `spec.pod`.

use super::child::{
    ADMIN_PORT, Child, ChildKind, Gateway, RUN_AS, Settings, base_name, config_map_name, gateway_labels,
    layer_str, meta, secret_name, selector,
};
use super::disruption::min_replicas;
use serde_json::{Value, json};

/// The pod-level security context of the `restricted` Pod Security Standard.
pub(super) fn pod_security() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// The container-level security context of the `restricted` standard (and a read-only root).
pub(super) fn container_security(read_only_root: bool) -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
    })
}

fn probe(path: &str, period: i32, failures: i32) -> Value {
    json!({
        "httpGet": {"path": path, "port": "admin"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    })
}

pub(super) fn gateway_deployment(gw: Gateway<'_>, settings: &Settings) -> Child {
    let name = base_name(&gw.owner.name, gw.layer);
    let labels = gateway_labels(&gw.owner.name, gw.layer);
    let pod = &gw.common.pod;
    let mut pod_labels = pod.labels.clone();
    pod_labels.extend(labels.clone());

    let mut container = json!({
        "name": "gateway",
        "image": settings.image,
        "args": [
            "gateway",
            "--layer", layer_str(gw.layer),
            "--namespace", gw.owner.namespace,
            "--config-map", config_map_name(&gw.owner.name, gw.layer),
            "--secret", secret_name(&gw.owner.name, gw.layer),
            "--admin-port", ADMIN_PORT.to_string(),
        ],
        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "ports": [
            {"name": "http", "containerPort": gw.common.listener.port, "protocol": "TCP"},
            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": probe("/readyz", 5, 3),
        "livenessProbe": probe("/healthz", 10, 3),
        "securityContext": container_security(true),
    });
    if let Some(policy) = &settings.image_pull_policy {
        container["imagePullPolicy"] = json!(policy);
    }
    if let Some(r) = &pod.resources {
        container["resources"] = json!(r);
    }

    let mut spec = json!({
        "serviceAccountName": name,
        "automountServiceAccountToken": true,
        "securityContext": pod_security(),
        "containers": [container],
    });
    if !pod.node_selector.is_empty() {
        spec["nodeSelector"] = json!(pod.node_selector);
    }
    if !pod.tolerations.is_empty() {
        spec["tolerations"] = json!(pod.tolerations);
    }
    if let Some(a) = &pod.affinity {
        spec["affinity"] = json!(a);
    }
    if !pod.topology_spread_constraints.is_empty() {
        let own = json!({"matchLabels": selector(gw)});
        let constraints: Vec<Value> = pod
            .topology_spread_constraints
            .iter()
            .map(|c| {
                let mut v = json!(c);
                if c.label_selector.is_none() {
                    v["labelSelector"] = own.clone();
                }
                v
            })
            .collect();
        spec["topologySpreadConstraints"] = json!(constraints);
    }
    if let Some(p) = &pod.priority_class_name {
        spec["priorityClassName"] = json!(p);
    }
    if !pod.image_pull_secrets.is_empty() {
        spec["imagePullSecrets"] = json!(pod.image_pull_secrets);
    }

    let mut template_meta = json!({"labels": pod_labels});
    if !pod.annotations.is_empty() {
        template_meta["annotations"] = json!(pod.annotations);
    }
    let mut dspec = json!({
        "selector": {"matchLabels": selector(gw)},
        "revisionHistoryLimit": 3,
        "template": {"metadata": template_meta, "spec": spec},
    });
    // With an autoscaler, `replicas` belongs to it: leaving the field out of our apply keeps the
    // two from fighting over it.
    if gw.common.autoscaling.is_none() {
        dspec["replicas"] = json!(gw.common.replicas.unwrap_or_else(|| min_replicas(gw)));
    }
    Child::new(ChildKind::Deployment, &name, meta(gw.owner, &name, &labels), json!({"spec": dspec}))
}
