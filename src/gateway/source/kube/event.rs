//! The Event a gateway writes on its gateway object when it refuses a config (type `Warning`,
//! reason `ConfigRefused`), so `kubectl describe` and `kubectl get events` show it beside the
//! object the user edited. The object is the main ConfigMap's controller (the gateway object,
//! whose uid the operator put in the owner reference); without one, the kind follows the layer
//! and the name the ConfigMap's (`<name>-<layer>-gateway-config`).

use crate::config::Layer;
use k8s_openapi::api::core::v1::{ConfigMap, Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::PostParams;

/// The reason of the Event.
pub const REASON: &str = "ConfigRefused";
/// What writes it.
pub const COMPONENT: &str = "cairn-gateway";
/// The API version of the gateway kinds, when no owner reference names it.
const GATEWAY_API_VERSION: &str = "cairn.dev/v1alpha1";

/// The gateway kind of a layer.
pub fn kind(layer: Layer) -> &'static str {
    match layer {
        Layer::Ai => "AIGateway",
        Layer::Mcp => "MCPGateway",
        Layer::Agent => "AgentGateway",
    }
}

/// The gateway object the Event is about.
pub fn involved(
    main: Option<&ConfigMap>,
    namespace: &str,
    config_map: &str,
    layer: Layer,
) -> ObjectReference {
    let owner = main
        .and_then(|m| m.metadata.owner_references.as_ref())
        .and_then(|o| o.iter().find(|r| r.controller == Some(true) && r.kind == kind(layer)));
    match owner {
        Some(o) => ObjectReference {
            api_version: Some(o.api_version.clone()),
            kind: Some(o.kind.clone()),
            name: Some(o.name.clone()),
            namespace: Some(namespace.to_string()),
            uid: Some(o.uid.clone()),
            ..Default::default()
        },
        None => {
            let suffix = format!("-{layer}-gateway-config");
            let name = config_map.strip_suffix(&suffix).unwrap_or(config_map);
            ObjectReference {
                api_version: Some(GATEWAY_API_VERSION.to_string()),
                kind: Some(kind(layer).to_string()),
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            }
        }
    }
}

/// Writes one `ConfigRefused` Event about `object` with `message`; `instance` names this process
/// (the pod's name).
pub async fn refused(
    client: kube::Client,
    object: ObjectReference,
    message: String,
    instance: String,
) -> Result<(), kube::Error> {
    let namespace = object.namespace.clone().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", object.name.as_deref().unwrap_or("gateway"))),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: object,
        reason: Some(REASON.to_string()),
        message: Some(message),
        type_: Some("Warning".to_string()),
        source: Some(EventSource { component: Some(COMPONENT.to_string()), host: None }),
        reporting_component: Some(COMPONENT.to_string()),
        reporting_instance: Some(instance),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Default::default()
    };
    Api::<Event>::namespaced(client, &namespace).create(&PostParams::default(), &event).await.map(|_| ())
}
