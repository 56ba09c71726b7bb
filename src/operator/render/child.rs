//! What the child renderers share: the names, labels, owner references and settings of a
//! gateway's children (names per the cluster-mode contract: `<gateway>-<layer>-gateway` for every
//! child, `…-config[-i]` for the ConfigMaps and `…-credentials` for the Secret). Its own file so
//! that the renderers import it and [`super`] imports them, never the other way round.

use crate::api::GatewayCommon;
use crate::config::{CompiledGateway, Layer, packed};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The one field manager of every write the operator makes (children and status).
pub const FIELD_MANAGER: &str = "cairn-operator";
/// Port of the gateway's `/metrics`, `/healthz` and `/readyz`.
pub const ADMIN_PORT: i32 = 9090;
/// Label on every child: who manages it (`app.kubernetes.io/managed-by`).
pub const MANAGED_BY: &str = "cairn-operator";
/// Label naming the gateway a child belongs to.
pub const GATEWAY_LABEL: &str = "cairn.dev/gateway";
/// Label naming the MCPServer a child belongs to.
pub const MCP_SERVER_LABEL: &str = "cairn.dev/mcp-server";
/// UID and GID the gateway runs as (the image's non-root user).
pub const RUN_AS: i64 = 65532;

/// Operator settings that shape what is rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The Cairn image (entrypoint `cairn`) gateway pods and MCP bridge init containers run.
    pub image: String,
    /// Pull policy of that image; the cluster's default when unset.
    pub image_pull_policy: Option<String>,
}

/// The kinds of objects the operator writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChildKind {
    /// core/v1 ServiceAccount.
    ServiceAccount,
    /// rbac.authorization.k8s.io/v1 Role.
    Role,
    /// rbac.authorization.k8s.io/v1 RoleBinding.
    RoleBinding,
    /// core/v1 Secret.
    Secret,
    /// core/v1 ConfigMap.
    ConfigMap,
    /// core/v1 Service.
    Service,
    /// apps/v1 Deployment.
    Deployment,
    /// policy/v1 PodDisruptionBudget.
    PodDisruptionBudget,
    /// autoscaling/v2 HorizontalPodAutoscaler.
    HorizontalPodAutoscaler,
}

impl ChildKind {
    /// `(group, version, kind, plural)`.
    pub fn gvk(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            ChildKind::ServiceAccount => ("", "v1", "ServiceAccount", "serviceaccounts"),
            ChildKind::Role => ("rbac.authorization.k8s.io", "v1", "Role", "roles"),
            ChildKind::RoleBinding => ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
            ChildKind::Secret => ("", "v1", "Secret", "secrets"),
            ChildKind::ConfigMap => ("", "v1", "ConfigMap", "configmaps"),
            ChildKind::Service => ("", "v1", "Service", "services"),
            ChildKind::Deployment => ("apps", "v1", "Deployment", "deployments"),
            ChildKind::PodDisruptionBudget => ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets"),
            ChildKind::HorizontalPodAutoscaler => {
                ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
            }
        }
    }

    /// The kind's name, e.g. `ConfigMap`.
    pub fn kind(self) -> &'static str {
        self.gvk().2
    }

    /// `apiVersion`, e.g. `apps/v1`.
    pub fn api_version(self) -> String {
        let (group, version, ..) = self.gvk();
        if group.is_empty() { version.to_string() } else { format!("{group}/{version}") }
    }

    /// Kinds a gateway or an MCPServer can stop rendering (pruned when they do).
    pub const PRUNABLE: [ChildKind; 5] = [
        ChildKind::ConfigMap,
        ChildKind::PodDisruptionBudget,
        ChildKind::HorizontalPodAutoscaler,
        ChildKind::Deployment,
        ChildKind::Service,
    ];
}

/// One object to write: its kind, name and full body (`apiVersion`, `kind`, `metadata`, …).
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    /// Kind.
    pub kind: ChildKind,
    /// `metadata.name`.
    pub name: String,
    /// The object as sent to server-side apply.
    pub body: Value,
}

impl Child {
    pub(super) fn new(kind: ChildKind, name: &str, meta: Value, rest: Value) -> Child {
        let mut body = json!({"apiVersion": kind.api_version(), "kind": kind.kind(), "metadata": meta});
        if let (Some(b), Value::Object(r)) = (body.as_object_mut(), rest) {
            b.extend(r);
        }
        Child { kind, name: name.to_string(), body }
    }
}

/// The object that owns the children: a gateway or an MCPServer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Kind, e.g. `AIGateway`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID (for the owner reference).
    pub uid: String,
}

impl Owner {
    /// `ownerReferences` entry: the owner controls the child, and foreground deletion waits for it.
    pub(super) fn reference(&self) -> Value {
        json!({
            "apiVersion": crate::api::API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        })
    }
}

/// Base name of a gateway's children: `<name>-<layer>-gateway`.
pub fn base_name(gateway: &str, layer: Layer) -> String {
    format!("{gateway}-{}-gateway", layer_str(layer))
}

/// Name of the gateway's main ConfigMap.
pub fn config_map_name(gateway: &str, layer: Layer) -> String {
    format!("{}-config", base_name(gateway, layer))
}

/// Name of the gateway's credentials Secret.
pub fn secret_name(gateway: &str, layer: Layer) -> String {
    format!("{}-credentials", base_name(gateway, layer))
}

/// `ai`, `mcp` or `agent`.
pub fn layer_str(layer: Layer) -> &'static str {
    match layer {
        Layer::Ai => "ai",
        Layer::Mcp => "mcp",
        Layer::Agent => "agent",
    }
}

/// Labels every child of a gateway carries. The first three select its pods.
pub fn gateway_labels(gateway: &str, layer: Layer) -> BTreeMap<String, String> {
    let mut l = selector_labels("cairn-gateway", gateway, &format!("{}-gateway", layer_str(layer)));
    l.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
    l.insert(GATEWAY_LABEL.into(), gateway.into());
    l
}

/// Labels that select a gateway's pods (immutable on its Deployment).
pub(super) fn selector(gw: Gateway<'_>) -> BTreeMap<String, String> {
    selector_labels("cairn-gateway", &gw.owner.name, &format!("{}-gateway", layer_str(gw.layer)))
}

pub(super) fn selector_labels(app: &str, instance: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), app.to_string()),
        ("app.kubernetes.io/instance".to_string(), instance.to_string()),
        ("app.kubernetes.io/component".to_string(), component.to_string()),
    ])
}

pub(super) fn meta(owner: &Owner, name: &str, labels: &BTreeMap<String, String>) -> Value {
    json!({
        "name": name,
        "namespace": owner.namespace,
        "labels": labels,
        "ownerReferences": [owner.reference()],
    })
}

/// Why a gateway or server cannot be rendered: the object waits for its next edit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The config does not fit the ConfigMaps even compressed and split.
    #[error("{0}")]
    TooLarge(packed::PackError),
    /// The listener port is the admin port.
    #[error(
        "spec.listener.port: {ADMIN_PORT} is the gateway's admin port (/metrics, /healthz, /readyz); choose another"
    )]
    AdminPort,
    /// A field the pod needs is missing or unusable.
    #[error("{field}: {message}")]
    Field {
        /// Field path.
        field: &'static str,
        /// What is wrong.
        message: &'static str,
    },
}

impl RenderError {
    /// Low-cardinality name for metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            RenderError::TooLarge(e) => e.category(),
            RenderError::AdminPort | RenderError::Field { .. } => "invalid_spec",
        }
    }
}

/// A gateway to render: its identity, spec and compiled bundle (which already holds its generated
/// keys).
#[derive(Clone, Copy, Debug)]
pub struct Gateway<'a> {
    /// The gateway object.
    pub owner: &'a Owner,
    /// Layer.
    pub layer: Layer,
    /// The spec every gateway kind shares.
    pub common: &'a GatewayCommon,
    /// Config and credentials bundle.
    pub compiled: &'a CompiledGateway,
}
