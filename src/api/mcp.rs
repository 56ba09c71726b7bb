//! Layer 2: `MCPGateway`, `MCPServer`.

use super::common::*;
use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// MCP sessions handed out by the gateway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpSessions {
    /// A session unused this long expires; the client must initialize again.
    #[serde(default = "thirty_m")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub idle_timeout: String,
}

impl Default for McpSessions {
    fn default() -> Self {
        Self { idle_timeout: thirty_m() }
    }
}

fn thirty_m() -> String {
    "30m".into()
}

/// The gateway as an OAuth 2.1 protected resource (MCP authorization).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthResource {
    /// The resource identifier (the gateway's public URL); tokens must name it as audience.
    #[schemars(regex(pattern = "^https?://"))]
    pub resource: String,
    /// Authorization servers advertised in the Protected Resource Metadata (RFC 9728).
    #[schemars(length(min = 1))]
    pub authorization_servers: Vec<String>,
    /// Scopes advertised as supported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// A fleet of layer-2 gateway pods aggregating MCP servers behind one endpoint.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "MCPGateway",
    doc = "A fleet of layer-2 gateway pods aggregating MCP tool servers behind one endpoint.",
    namespaced,
    status = "GatewayStatus",
    shortname = "mcpgw",
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
pub struct MCPGatewaySpec {
    /// Settings shared by every gateway kind.
    #[serde(flatten)]
    pub common: GatewayCommon,
    /// Session lifetime.
    #[serde(default)]
    pub sessions: McpSessions,
    /// Act as an OAuth 2.1 resource server: serve Protected Resource Metadata and answer
    /// unauthenticated requests with `WWW-Authenticate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthResource>,
    /// Browser origins allowed to call the gateway (`Origin` header, e.g.
    /// `https://app.example.com`; `*` allows any). A request whose `Origin` is neither listed nor
    /// the gateway's own origin gets 403 with a JSON-RPC error, against DNS rebinding; the
    /// gateway's own origin counts only when its host is an IP address, `localhost` or a cluster
    /// name (`*.svc`, `*.cluster.local`, a single label), so list a public host (an Ingress
    /// name) here when a page on it calls the gateway. Requests without `Origin` (SDKs, agents)
    /// are not affected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
}

/// How the gateway talks to a deployed server.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum McpTransport {
    /// The server speaks MCP on stdin/stdout; `cairn mcp-bridge` serves it over HTTP in its pod.
    #[default]
    Stdio,
    /// The server speaks MCP streamable HTTP itself, on `port` and `path`.
    StreamableHTTP,
}

/// How many stdio children serve the sessions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum StdioSessions {
    /// One child process per MCP session (isolation; the default).
    #[default]
    PerSession,
    /// One child shared by every session (for stateless servers).
    Shared,
}

/// An environment variable of a deployed server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("set exactly one of value and valueFrom"))]
pub struct EnvVar {
    /// Variable name.
    #[schemars(regex(pattern = "^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Read the value from a Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

/// An MCP server the operator runs as a Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.transport == 'Stdio' || !has(self.sessions)").message("sessions applies only to transport Stdio"))]
pub struct McpDeployment {
    /// Container image of the server.
    #[schemars(length(min = 1, max = 1024))]
    pub image: String,
    /// Command (entrypoint) of the server process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments of the server process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment of the server process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub env: Vec<EnvVar>,
    /// How the server speaks MCP.
    #[serde(default)]
    pub transport: McpTransport,
    /// Port of a StreamableHTTP server (and of the bridge for Stdio).
    #[serde(default = "port_8080")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// HTTP path of the MCP endpoint.
    #[serde(default = "mcp_path")]
    #[schemars(regex(pattern = "^/"))]
    pub path: String,
    /// Stdio only: one child per session or one shared child. Default PerSession.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<StdioSessions>,
    /// Pods of the server.
    #[serde(default = "one_replica")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// CPU and memory of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Name of the Deployment and Service the operator runs for an MCPServer with `deployment`
/// (the gateways reach it at `http://<this>.<namespace>.svc.<domain>:<port><path>`).
pub fn deployed_server_name(server: &str) -> String {
    format!("{server}-mcp-server")
}

fn port_8080() -> i32 {
    8080
}
fn one_replica() -> i32 {
    1
}
fn mcp_path() -> String {
    "/mcp".into()
}

/// Which of a server's tools are exposed at all (for every caller, before any policy).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolFilter {
    /// Tool-name globs to expose.
    #[serde(default = "star")]
    #[schemars(inner(regex(pattern = "^[A-Za-z0-9._:/@*?-]{1,253}$")))]
    pub allow: Vec<String>,
    /// Tool-name globs to hide even when allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = "^[A-Za-z0-9._:/@*?-]{1,253}$")))]
    pub deny: Vec<String>,
}

impl Default for ToolFilter {
    fn default() -> Self {
        Self { allow: star(), deny: Vec::new() }
    }
}

fn star() -> Vec<String> {
    vec!["*".into()]
}

/// Audit settings for a server's tool calls.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpAudit {
    /// Write tool-call arguments into the audit log. Default: only their SHA-256 digest.
    #[serde(default)]
    pub include_arguments: bool,
}

/// One MCP tool server behind one or more MCPGateways.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "MCPServer",
    validation = Rule::new("has(self.spec.prefix) || self.metadata.name.matches('^[a-z0-9-]{1,40}$')").message("metadata.name is not a valid tool prefix (^[a-z0-9-]{1,40}$): set spec.prefix"),
    validation = Rule::new("!has(self.spec.deployment) || self.metadata.name.matches('^[a-z]([-a-z0-9]{0,50}[a-z0-9])?$')").message("with deployment, metadata.name must be a DNS label of at most 52 characters that starts with a letter (the server's Deployment and Service are named <name>-mcp-server)"),
    doc = "One MCP tool server, remote or run by the operator, behind MCPGateways.",
    namespaced,
    status = "MCPServerStatus",
    shortname = "mcps",
    category = "cairn",
    printcolumn(name = "Prefix", type_ = "string", json_path = ".spec.prefix"),
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Tools", type_ = "integer", json_path = ".status.toolCount"),
    printcolumn(name = "Accepted", type_ = "string", json_path = ".status.conditions[?(@.type==\"Accepted\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.url) != has(self.deployment)").message("set exactly one of url and deployment"))]
pub struct MCPServerSpec {
    /// The MCPGateways serving this server's tools.
    #[schemars(length(min = 1, max = 16))]
    pub gateway_refs: Vec<LocalRef>,
    /// Tools and prompts appear as `<prefix>__<name>` and resource URIs as `<prefix>+<uri>`.
    /// Default: the object's name, which must then fit the same pattern. Empty (`""`): names
    /// and URIs pass through unchanged; at most one server of a gateway may do so (a second
    /// is refused, naming both), and a name of it that reads as another server's prefixed name
    /// is left out of lists. Policies name servers, not prefixes, so they apply either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([a-z0-9-]{1,40})?$"))]
    pub prefix: Option<String>,
    /// URL of a remote streamable-HTTP MCP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^https?://[^\\s]+$"))]
    pub url: Option<String>,
    /// Run the server in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<McpDeployment>,
    /// Headers sent to the server (its credentials). Callers' own tokens are never passed on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub headers: Vec<HeaderValue>,
    /// Which tools are exposed.
    #[serde(default)]
    pub tools: ToolFilter,
    /// Longest time a call to this server may take.
    #[serde(default = "sixty_s")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub timeout: String,
    /// Audit log settings.
    #[serde(default)]
    pub audit: McpAudit,
}

fn sixty_s() -> String {
    "60s".into()
}

/// A tool the server lists.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredTool {
    /// The tool's name on the server.
    pub name: String,
    /// Whether `spec.tools` lets clients see it (else it is filtered).
    pub allowed: bool,
    /// The name clients call it by (`<prefix>__<name>`), when allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_as: Option<String>,
}

/// Status of an MCPServer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MCPServerStatus {
    /// `Accepted` and `ResolvedRefs` (as for every attached kind); `Discovered` (the server
    /// answered the operator's `tools/list`; `False` names what went wrong); with `deployment`,
    /// also `Programmed` (its Deployment and Service are written) and `Ready` (a pod is ready).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    /// The generation these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Tools the server lists, as the operator discovered them (an MCP client of the server, as
    /// an MCPGateway that serves it reaches it), each marked allowed or filtered by `spec.tools`;
    /// at most 500 (`toolsOmitted` counts the rest). Kept while the server is down.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<DiscoveredTool>,
    /// Tools left out of `tools` past the first 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools_omitted: Option<i32>,
    /// Number of tools clients can see (allowed by `spec.tools`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_count: Option<i32>,
    /// When the server last answered with this list (set when the list changes and when the
    /// server stops answering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools_seen_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// The MCP protocol version the server speaks with the operator (`2026-07-28` for a
    /// stateless server, a session-era version otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// The MCPGateways of `gatewayRefs` and whether each serves the server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<GatewayAttachment>,
}
