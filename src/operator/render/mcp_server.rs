//! An MCPServer with `deployment`: a Deployment and a Service named `<name>-mcp-server` (where
//! compile's cluster mode points the gateways). For `transport: Stdio` the server runs under
//! `cairn mcp-bridge`, which an init container of the Cairn image copies into an emptyDir (the
//! server's image need not contain it); no ServiceAccount token is mounted into these pods.

use super::child::{
    Child, ChildKind, MANAGED_BY, MCP_SERVER_LABEL, Owner, RenderError, Settings, meta, selector_labels,
};
use super::deployment::{container_security, pod_security};
use crate::api::{self, McpTransport, StdioSessions};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Where the init container puts the cairn binary.
const BRIDGE_DIR: &str = "/cairn";

fn labels(server: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels("cairn-mcp-server", server, "mcp-server");
    l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    l.insert(MCP_SERVER_LABEL.into(), server.into());
    l
}

/// Deployment and Service of an MCPServer with `deployment` (none without it).
pub fn mcp_server(
    owner: &Owner,
    spec: &api::MCPServerSpec,
    settings: &Settings,
) -> Result<Vec<Child>, RenderError> {
    let Some(d) = &spec.deployment else { return Ok(Vec::new()) };
    let name = api::deployed_server_name(&owner.name);
    let labels = labels(&owner.name);
    let select = selector_labels("cairn-mcp-server", &owner.name, "mcp-server");

    let env: Vec<Value> = d
        .env
        .iter()
        .map(|e| match (&e.value, &e.value_from) {
            (_, Some(from)) => json!({"name": e.name, "valueFrom": {"secretKeyRef": {
                "name": from.secret_ref.name, "key": from.secret_ref.key}}}),
            (v, None) => json!({"name": e.name, "value": v.clone().unwrap_or_default()}),
        })
        .collect();
    let mut server = json!({
        "name": "server",
        "image": d.image,
        "ports": [{"name": "mcp", "containerPort": d.port, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": "mcp"}, "periodSeconds": 5},
        "securityContext": container_security(false),
    });
    if !env.is_empty() {
        server["env"] = json!(env);
    }
    if let Some(r) = &d.resources {
        server["resources"] = json!(r);
    }
    let mut spec_json = json!({
        "automountServiceAccountToken": false,
        "securityContext": pod_security(),
    });
    match d.transport {
        McpTransport::StreamableHTTP => {
            if !d.command.is_empty() {
                server["command"] = json!(d.command);
            }
            if !d.args.is_empty() {
                server["args"] = json!(d.args);
            }
        }
        McpTransport::Stdio => {
            if d.command.is_empty() {
                return Err(RenderError::Field {
                    field: "spec.deployment.command",
                    message: "transport Stdio needs the server's command: the bridge runs it, and cannot \
                              read the image's entrypoint",
                });
            }
            if !matches!(d.path.as_str(), "/mcp" | "/") {
                return Err(RenderError::Field {
                    field: "spec.deployment.path",
                    message: "the stdio bridge serves /mcp; leave path at its default",
                });
            }
            let mut args = vec!["mcp-bridge".to_string(), "--port".into(), d.port.to_string()];
            if d.sessions == Some(StdioSessions::Shared) {
                args.push("--shared".into());
            }
            args.push("--".into());
            args.extend(d.command.iter().chain(&d.args).cloned());
            server["command"] = json!([format!("{BRIDGE_DIR}/cairn")]);
            server["args"] = json!(args);
            server["volumeMounts"] = json!([{"name": "cairn", "mountPath": BRIDGE_DIR, "readOnly": true}]);
            let mut init = json!({
                "name": "install-bridge",
                "image": settings.image,
                "args": ["copy-binary", format!("{BRIDGE_DIR}/cairn")],
                "volumeMounts": [{"name": "cairn", "mountPath": BRIDGE_DIR}],
                "securityContext": container_security(true),
            });
            if let Some(policy) = &settings.image_pull_policy {
                init["imagePullPolicy"] = json!(policy);
            }
            spec_json["initContainers"] = json!([init]);
            spec_json["volumes"] = json!([{"name": "cairn", "emptyDir": {}}]);
        }
    }
    spec_json["containers"] = json!([server]);

    let deployment = Child::new(
        ChildKind::Deployment,
        &name,
        meta(owner, &name, &labels),
        json!({"spec": {
            "replicas": d.replicas,
            "selector": {"matchLabels": select},
            "revisionHistoryLimit": 3,
            "template": {"metadata": {"labels": labels}, "spec": spec_json},
        }}),
    );
    let service = Child::new(
        ChildKind::Service,
        &name,
        meta(owner, &name, &labels),
        json!({"spec": {
            "type": "ClusterIP",
            "selector": select,
            "ports": [{"name": "mcp", "port": d.port, "targetPort": "mcp", "protocol": "TCP"}],
        }}),
    );
    Ok(vec![deployment, service])
}
