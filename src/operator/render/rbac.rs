//! The gateway pods' identity and permissions: a ServiceAccount, and a Role + RoleBinding that let
//! it read exactly its own ConfigMaps and Secret (by name) and create Events, nothing else.

use super::child::{Child, ChildKind, Gateway, base_name, gateway_labels, meta, secret_name};
use serde_json::json;

/// ServiceAccount, Role and RoleBinding; `config_maps` names every ConfigMap of the current config.
pub(super) fn gateway_rbac(gw: Gateway<'_>, config_maps: &[String]) -> Vec<Child> {
    let name = base_name(&gw.owner.name, gw.layer);
    let labels = gateway_labels(&gw.owner.name, gw.layer);
    let m = || meta(gw.owner, &name, &labels);
    let read = ["get", "list", "watch"];
    vec![
        Child::new(ChildKind::ServiceAccount, &name, m(), json!({})),
        Child::new(
            ChildKind::Role,
            &name,
            m(),
            json!({"rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": config_maps, "verbs": read},
                {"apiGroups": [""], "resources": ["secrets"],
                 "resourceNames": [secret_name(&gw.owner.name, gw.layer)], "verbs": read},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            ]}),
        ),
        Child::new(
            ChildKind::RoleBinding,
            &name,
            m(),
            json!({
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": gw.owner.namespace}],
            }),
        ),
    ]
}
