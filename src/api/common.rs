//! Types shared by several kinds: references, durations, conditions, gateway fleet settings.

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The API group of every Cairn kind.
pub const GROUP: &str = "cairn.dev";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as it appears in manifests.
pub const API_VERSION: &str = "cairn.dev/v1alpha1";

/// Regular expression for a Go-style duration of whole units (`500ms`, `10s`, `1m30s`, `24h`).
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h))+$";
/// Regular expression for a glob over model, tool or skill names: letters, digits and `._:/@-`,
/// with `*` (any run) and `?` (one character) as wildcards.
pub const GLOB_PATTERN: &str = "^[A-Za-z0-9._:/@*?-]{1,253}$";
/// Regular expression for a name used as an MCP tool prefix.
pub const PREFIX_PATTERN: &str = "^[a-z0-9-]{1,40}$";

/// A reference to an object of a known kind in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]

pub struct LocalRef {
    /// Name of the referenced object, in the namespace of the referring object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A reference to one key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]

pub struct SecretKeyRef {
    /// Name of the Secret, in the namespace of the referring object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's `data` (or `stringData`).
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Where a value comes from when it is not written inline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    /// The Secret key holding the value.
    pub secret_ref: SecretKeyRef,
}

/// An HTTP header the gateway adds to requests it sends upstream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("set exactly one of value and valueFrom"))]
pub struct HeaderValue {
    /// Header name, e.g. `Authorization`.
    #[schemars(regex(pattern = "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$"))]
    pub name: String,
    /// Literal header value. Use `valueFrom` for anything secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Read the header value from a Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
    /// Text put in front of the value, e.g. `"Bearer "`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// What happens to a caller that no AgentPolicy names.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DefaultAction {
    /// Callers no policy names may use everything the gateway serves, with no limits. For trying things out.
    Allow,
    /// Callers no policy names are refused. The production setting.
    #[default]
    Deny,
}

/// Replicas managed by a HorizontalPodAutoscaler instead of a fixed count.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed autoscaling.maxReplicas"))]
pub struct Autoscaling {
    /// Fewest replicas the autoscaler keeps.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    /// Most replicas the autoscaler may run.
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Average CPU utilisation (percent of requests) the autoscaler aims for.
    #[serde(default = "eighty")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn one() -> i32 {
    1
}
fn eighty() -> i32 {
    80
}

/// Where the gateway listens.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// TCP port the gateway serves its protocol on (container port and Service port).
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// The Kubernetes Service in front of the gateway pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Annotations put on the Service (e.g. for a cloud load balancer).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Kubernetes Service types Cairn can create.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Also exposed on a port of every node.
    NodePort,
    /// Also exposed through the cloud's load balancer.
    LoadBalancer,
}

/// A JWT issuer whose tokens the gateway accepts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtIssuer {
    /// The `iss` claim tokens must carry, e.g. `https://login.example.com`.
    #[schemars(length(min = 1, max = 2048))]
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    #[schemars(length(min = 1))]
    pub audiences: Vec<String>,
    /// Where the issuer publishes its signing keys. Default: OIDC discovery from the issuer URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^https?://"))]
    pub jwks_uri: Option<String>,
    /// Claim that names the subject, matched against `Agent.spec.identity.jwt[].subject`.
    #[serde(default = "sub_claim")]
    pub subject_claim: String,
}

fn sub_claim() -> String {
    "sub".into()
}

/// Kubernetes ServiceAccount tokens (projected, audience-bound) as caller identity.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountTokens {
    /// Accepted token audiences.
    #[serde(default = "default_sa_audiences")]
    #[schemars(length(min = 1))]
    pub audiences: Vec<String>,
}

impl Default for ServiceAccountTokens {
    fn default() -> Self {
        Self { audiences: default_sa_audiences() }
    }
}

fn default_sa_audiences() -> Vec<String> {
    vec!["cairn.dev".into()]
}

/// How callers prove who they are. Virtual keys of Agents attached to the gateway are always accepted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// OIDC issuers whose JWTs are accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt: Vec<JwtIssuer>,
    /// Accept Kubernetes ServiceAccount tokens, checked against the cluster's own issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_tokens: Option<ServiceAccountTokens>,
    /// Serve requests that carry no credential, as the subject `anonymous`, which `defaultAction`
    /// then governs. For local trials; leave off in production.
    #[serde(default)]
    pub allow_anonymous: bool,
}

/// Whether requests proceed when the shared store cannot be reached.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum FailureMode {
    /// Refuse requests that need the store (limits and budgets stay exact).
    #[default]
    Closed,
    /// Serve requests, counting limits and budgets in each gateway process until the store
    /// answers again (per replica, so approximate); their usage is charged to the store then.
    Open,
}

/// A Redis server holding shared counters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisStore {
    /// `redis://host:port[/db]` or `rediss://` for TLS.
    #[schemars(regex(pattern = "^rediss?://"))]
    pub url: String,
    /// Secret key holding the Redis password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// Behaviour when Redis is down.
    #[serde(default)]
    pub failure_mode: FailureMode,
}

/// Where rate-limit counters and budget spend live. Without a store, each replica counts in
/// memory (approximate across replicas, reset on restart).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Store {
    /// Shared counters in Redis, exact across replicas.
    pub redis: RedisStore,
}

/// Logs, metrics and traces (docs/telemetry.md).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.otlpEndpoint) || (!has(self.otlpProtocol) && !has(self.samplingRatio))").message("otlpProtocol and samplingRatio need otlpEndpoint"))]
pub struct Telemetry {
    /// OTLP endpoint the gateway exports its trace spans to: `http://otel-collector:4317` for
    /// gRPC, `http://otel-collector:4318` for HTTP (`/v1/traces` is appended unless the URL ends
    /// with it). Unset: no span is exported; `traceparent`, `tracestate` and `baggage` are still
    /// forwarded, and log lines still carry `trace_id` and `span_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^https?://"))]
    pub otlp_endpoint: Option<String>,
    /// OTLP transport to the endpoint. Default `Grpc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Share of the traces this gateway starts that are sampled, from 0 to 1 (default 1). A
    /// request that carries a `traceparent` follows its caller's sampled flag (parent-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub sampling_ratio: Option<f64>,
    /// Write one JSON access-log line per request (never prompt bodies or keys).
    #[serde(default = "yes")]
    pub access_log: bool,
    /// Label request metrics with the calling Agent (`subject`). Off by default: the series
    /// count then does not grow with the number of Agents (the worst case per gateway is in
    /// docs/telemetry.md); spend by policy is counted either way.
    #[serde(default)]
    pub subject_labels: bool,
}

/// OTLP transports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (port 4317 by convention).
    #[default]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318 by convention).
    HttpProtobuf,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_protocol: None,
            sampling_ratio: None,
            access_log: true,
            subject_labels: false,
        }
    }
}

fn yes() -> bool {
    true
}

/// Pod-level settings of the gateway Deployment. Changing any of them rolls the pods; a config
/// change never does.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSettings {
    /// CPU and memory requests and limits of the gateway container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node and pod affinity and anti-affinity of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// How the pods spread across zones or nodes. A constraint without `labelSelector` selects
    /// this gateway's own pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
    /// Secrets holding credentials for pulling the Cairn image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalRef>,
    /// Labels added to the pods. The labels Cairn sets itself (`app.kubernetes.io/*`,
    /// `cairn.dev/gateway`) take precedence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations put on the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The settings every gateway kind (AIGateway, MCPGateway, AgentGateway) shares.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayCommon {
    /// Fixed number of gateway pods. Mutually exclusive with `autoscaling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Scale the pods with a HorizontalPodAutoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// What callers that no AgentPolicy names may do.
    #[serde(default)]
    pub default_action: DefaultAction,
    /// Where the gateway listens.
    pub listener: Listener,
    /// How callers authenticate.
    #[serde(default)]
    pub auth: Auth,
    /// Shared store for limits and budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<Store>,
    /// Logs, metrics and traces.
    #[serde(default)]
    pub telemetry: Telemetry,
    /// The Service in front of the pods.
    #[serde(default)]
    pub service: ServiceSpec,
    /// Pod-level settings.
    #[serde(default)]
    pub pod: PodSettings,
    /// Which addresses the gateway may connect to (against server-side request forgery).
    #[serde(default)]
    pub egress: Egress,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[serde(default = "default_max_request_bytes")]
    #[schemars(range(min = 1024, max = 104857600))]
    pub max_request_bytes: i64,
}

/// Which addresses a gateway may connect to: one rule for the URLs of its configuration
/// (AIBackend, MCPServer and Agent URLs) and for URLs that arrive at run time (push-notification
/// webhooks, URLs from agent cards or OAuth metadata).
///
/// Configured URLs may reach public and private networks (where in-cluster servers live); never,
/// unless `allowedCIDRs` lists them, link-local addresses (`169.254.0.0/16`, `fe80::/10`), cloud
/// metadata endpoints (`169.254.169.254`, `fd00:ec2::254`, `100.100.100.200`), multicast and
/// reserved ranges, nor, in a cluster, loopback (a pod's loopback is the pod itself; local mode
/// allows it). URLs that arrive at run time may reach only public addresses, unless
/// `allowPrivateNetworks` or `allowedCIDRs` say otherwise. An address literal in a URL is checked
/// when the configuration compiles, in every spelling (`2852039166`, `[::ffff:169.254.169.254]`);
/// what a host name resolves to is checked when the gateway connects.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Egress {
    /// Address ranges the gateway may reach whatever the rule above says, in CIDR notation
    /// (`169.254.169.254/32`, `fe80::/10`) or as single addresses. Applies to configured URLs and
    /// to URLs that arrive at run time.
    #[serde(rename = "allowedCIDRs", default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 64)))]
    pub allowed_cidrs: Vec<String>,
    /// URLs that arrive at run time (push-notification webhooks) may reach loopback and private
    /// networks. Off by default. Link-local and metadata addresses need `allowedCIDRs`.
    #[serde(default)]
    pub allow_private_networks: bool,
    /// Host names (or `*.suffix` globs) that URLs arriving at run time may use; empty allows any
    /// host whose addresses the rule allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    pub allowed_hosts: Vec<String>,
}

fn default_max_request_bytes() -> i64 {
    10 * 1024 * 1024
}

/// Status every gateway kind reports.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// `Accepted` (the gateway's own spec compiles), `ResolvedRefs` (the Secrets it names
    /// exist), `Programmed` (its config and child objects are written), `Ready` (at least one
    /// pod is ready), and the kstatus pair `Reconciling` (work in flight: a rollout, a config
    /// being written) and `Stalled` (no progress without a change to the spec). Each carries the
    /// generation it describes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// In-cluster address of the gateway, `http://name.namespace.svc:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Pods of the gateway's Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods ready to serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// The first 12 hex digits of the config's SHA-256 last written for the gateway (the full
    /// hash is the `cairn.dev/config-hash` annotation of its ConfigMaps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// Objects attached to this gateway (routes, backends, servers or agents) by kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attached: BTreeMap<String, i32>,
}

/// Whether one gateway serves an object attached to it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayAttachment {
    /// Name of the gateway, in the object's namespace.
    pub name: String,
    /// Whether the gateway's compiled config includes the object.
    pub accepted: bool,
    /// Why it does not, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Status of AIBackends and AIRoutes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicStatus {
    /// `Accepted` (the object is valid beside the others) and `ResolvedRefs` (every object and
    /// Secret it names exists), with the field and the missing object in the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The gateways the object is attached to (an AIRoute's `gatewayRefs`; for an AIBackend, the
    /// AIGateways whose routes use it) and whether each serves it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<GatewayAttachment>,
}

/// Request and token limits for one subject, counted per minute in a sliding window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Most requests (LLM calls, tool calls or agent calls) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_minute: Option<i64>,
    /// Most LLM tokens (input plus output) per minute. Only meaningful for models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tokens_per_minute: Option<i64>,
}

/// Parses a duration in the API's form (`DURATION_PATTERN`: `500ms`, `10s`, `1m30s`, `24h`) into
/// milliseconds. `None` when it does not fit the pattern or overflows.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else {
            return None;
        };
        rest = &rest[len..];
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations_parse_like_the_schema_pattern_says() {
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("10s"), Some(10_000));
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("24h"), Some(86_400_000));
        assert_eq!(parse_duration_ms(""), None);
        assert_eq!(parse_duration_ms("10"), None);
        assert_eq!(parse_duration_ms("s"), None);
        assert_eq!(parse_duration_ms("1.5s"), None);
        assert_eq!(parse_duration_ms("99999999999999999999h"), None);
    }
}
