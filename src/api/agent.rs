//! Layer 3: `AgentGateway`, `Agent`.

use super::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Task bookkeeping.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tasks {
    /// How long the gateway remembers which caller owns a task.
    #[serde(default = "day")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub ownership_ttl: String,
}

impl Default for Tasks {
    fn default() -> Self {
        Self { ownership_ttl: day() }
    }
}

fn day() -> String {
    "24h".into()
}

/// The token that tells a callee who called it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityTokens {
    /// Lifetime of each token.
    #[serde(default = "five_m")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub ttl: String,
    /// Header that carries the token to the callee.
    #[serde(default = "identity_header")]
    pub header: String,
}

impl Default for IdentityTokens {
    fn default() -> Self {
        Self { ttl: five_m(), header: identity_header() }
    }
}

fn five_m() -> String {
    "5m".into()
}
fn identity_header() -> String {
    "X-Cairn-Caller".into()
}

/// A fleet of layer-3 gateway pods proxying agent-to-agent (A2A) traffic.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "AgentGateway",
    doc = "A fleet of layer-3 gateway pods proxying agent-to-agent (A2A) traffic.",
    namespaced,
    status = "GatewayStatus",
    shortname = "agw",
    category = "cairn",
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$')").message("metadata.name must be a DNS label of at most 40 characters that starts with a letter (the gateway's objects are named <name>-<layer>-gateway-config-<n>)"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Address", type_ = "string", json_path = ".status.address"),
    printcolumn(name = "Config", type_ = "string", json_path = ".status.configHash"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas", priority = 1),
    printcolumn(name = "Ready Replicas", type_ = "integer", json_path = ".status.readyReplicas", priority = 1),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status",
        priority = 1
    ),
    printcolumn(name = "Default", type_ = "string", json_path = ".spec.defaultAction", priority = 1)
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.replicas) && has(self.autoscaling))").message("set at most one of replicas and autoscaling"))]
pub struct AgentGatewaySpec {
    /// Settings shared by every gateway kind.
    #[serde(flatten)]
    pub common: GatewayCommon,
    /// Task ownership bookkeeping.
    #[serde(default)]
    pub tasks: Tasks,
    /// Caller-identity tokens minted for callees.
    #[serde(default)]
    pub identity_tokens: IdentityTokens,
    /// Browser origins allowed to call the gateway (`Origin` header, e.g.
    /// `https://app.example.com`; `*` allows any). A request whose `Origin` is neither listed nor
    /// the gateway's own origin gets 403 in the binding's error format, against DNS rebinding; the
    /// gateway's own origin counts only when its host is an IP address, `localhost` or a cluster
    /// name (`*.svc`, `*.cluster.local`, a single label), so list a public host (an Ingress
    /// name) here when a page on it calls the gateway. Requests without `Origin` (SDKs, agents)
    /// are not affected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
}

/// A ServiceAccount whose projected tokens identify the agent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountIdentity {
    /// ServiceAccount name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Its namespace. Default: the Agent's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A JWT issuer and subject that identify the agent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtIdentity {
    /// Token issuer; must be one of the gateway's `auth.jwt[].issuer`.
    #[schemars(length(min = 1, max = 2048))]
    pub issuer: String,
    /// Value of the issuer's subject claim.
    #[schemars(length(min = 1, max = 1024))]
    pub subject: String,
}

/// A virtual key: an opaque API key the agent presents as `Authorization: Bearer <key>` (or
/// `x-api-key`). The gateway keeps only a salted hash.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualKey {
    /// The Secret key holding the virtual key (at least 16 characters).
    pub secret_ref: SecretKeyRef,
}

/// The ways an agent proves who it is; any one suffices.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// A Kubernetes ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountIdentity>,
    /// JWTs from trusted issuers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub jwt: Vec<JwtIdentity>,
    /// Virtual keys from Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub virtual_keys: Vec<VirtualKey>,
}

/// The A2A endpoint an agent serves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct A2AEndpoint {
    /// Base URL of the agent's A2A server.
    #[schemars(regex(pattern = "^https?://[^\\s]+$"))]
    pub url: String,
    /// Path of the agent card under `url`.
    #[serde(default = "card_path")]
    #[schemars(regex(pattern = "^/"))]
    pub card_path: String,
    /// AgentGateways that publish this agent.
    #[schemars(length(min = 1, max = 16))]
    pub gateway_refs: Vec<LocalRef>,
}

fn card_path() -> String {
    "/.well-known/agent-card.json".into()
}

/// A workload identity that calls gateways, and optionally an A2A endpoint it serves.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "Agent",
    doc = "A workload identity that calls gateways, and optionally an A2A endpoint it serves.",
    namespaced,
    status = "AgentStatus",
    category = "cairn",
    printcolumn(name = "ServiceAccount", type_ = "string", json_path = ".spec.identity.serviceAccount.name"),
    printcolumn(name = "A2A", type_ = "string", json_path = ".spec.a2a.url"),
    printcolumn(name = "Card", type_ = "string", json_path = ".status.card.name"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.a2a) || (has(self.identity) && (has(self.identity.serviceAccount) || (has(self.identity.jwt) && size(self.identity.jwt) > 0) || (has(self.identity.virtualKeys) && size(self.identity.virtualKeys) > 0)))").message("an Agent needs an identity (serviceAccount, jwt or virtualKeys), an a2a endpoint, or both"))]
pub struct AgentSpec {
    /// What the agent does, shown in `cairn explain` and the directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How the agent proves who it is when it calls a gateway.
    #[serde(default)]
    pub identity: Identity,
    /// The A2A endpoint the agent serves, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2a: Option<A2AEndpoint>,
}

/// What an agent's A2A card says.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentCardSummary {
    /// The card's `name`.
    pub name: String,
    /// The card's `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The card's skills (at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<CardSkill>,
    /// When this card was first fetched, or the agent last answered before it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// One skill of an agent card.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardSkill {
    /// The skill's `id` (what AgentPolicy `agents[].skills` names).
    pub id: String,
    /// Its `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One identity of an Agent and whether what it names exists.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityStatus {
    /// `ServiceAccount`, `VirtualKey` or `JWT`.
    pub kind: String,
    /// What it names: `namespace/name` of a ServiceAccount, `secret/key` of a virtual key, the
    /// issuer and subject of a JWT.
    pub name: String,
    /// Whether the ServiceAccount or Secret key exists (absent for a JWT: the issuer vouches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<bool>,
}

/// Status of an Agent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// `Accepted`, `ResolvedRefs` and, with `a2a`, `CardFetched` (`False` names what went
    /// wrong: unreachable, too large, not a card, refused by the egress rule).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    /// The generation these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What the agent's A2A card says (fetched from `a2a.url` + `a2a.cardPath` with the egress
    /// rule of the AgentGateways that publish it); kept while the agent does not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<AgentCardSummary>,
    /// Each identity of `spec.identity` and whether what it names exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<IdentityStatus>,
    /// AgentPolicies that name this agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// The AgentGateways of `a2a.gatewayRefs` and whether each serves the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<GatewayAttachment>,
}
