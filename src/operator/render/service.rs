//! The Service in front of the gateway pods: the listener port and the admin port.

use super::child::{ADMIN_PORT, Child, ChildKind, Gateway, base_name, gateway_labels, meta, selector};
use crate::api::ServiceType;
use serde_json::json;

pub(super) fn gateway_service(gw: Gateway<'_>) -> Child {
    let name = base_name(&gw.owner.name, gw.layer);
    let spec = &gw.common.service;
    let mut m = meta(gw.owner, &name, &gateway_labels(&gw.owner.name, gw.layer));
    if !spec.annotations.is_empty() {
        m["annotations"] = json!(spec.annotations);
    }
    let type_ = match spec.type_ {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    let rest = json!({"spec": {
        "type": type_,
        "selector": selector(gw),
        "ports": [
            {"name": "http", "port": gw.common.listener.port, "targetPort": "http", "protocol": "TCP"},
            {"name": "admin", "port": ADMIN_PORT, "targetPort": "admin", "protocol": "TCP"},
        ],
    }});
    Child::new(ChildKind::Service, &name, m, rest)
}
