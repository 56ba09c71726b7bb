//! The compiled per-gateway configuration: the contract between the compile step (operator or
//! local mode) and the gateway processes.
//!
//! Plain serde types with a generated JSON schema (`src/config/gateway-config.schema.json`, checked
//! in; a test fails when it drifts) and a [`CONFIG_VERSION`]. Nothing here knows Kubernetes: names
//! are plain strings, durations are milliseconds, references to other objects are resolved.
//!
//! Secrets never appear in a config. Provider keys, backend headers and the Redis password are
//! [`CredentialRef`]s into the gateway's [`Credentials`] bundle (the operator writes it to one
//! Secret per gateway); virtual keys appear only as salted SHA-256 hashes ([`hash_virtual_key`]).
//!
//! Well-known credential ids that the bundle may carry besides the referenced ones:
//! [`SESSION_KEY`] (the MCP gateway's AEAD key for sealed session ids) and [`SIGNING_KEY`] (the
//! agent gateway's key for caller-identity tokens). The operator generates them once per gateway
//! and keeps them; local mode generates them at start-up.
//!
//! Over 600 lines on purpose: the whole contract in one file, type by type in the order of the
//! document (gateway, auth, policy, then each layer's part), so the file reads as the schema
//! does; how it travels ([`packed`]) and what the compile step hands over ([`compiled`]) are
//! apart.

mod compiled;
pub mod packed;

pub use compiled::CompiledGateway;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Version of the config format. A gateway refuses a config of another version.
pub const CONFIG_VERSION: u32 = 1;
/// Credential id of the MCP gateway's session-sealing key.
pub const SESSION_KEY: &str = "cairn/session-key";
/// Credential id of the agent gateway's token-signing key.
pub const SIGNING_KEY: &str = "cairn/signing-key";

/// The gateway layers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Layer 1: LLM calls.
    Ai,
    /// Layer 2: MCP tool use.
    Mcp,
    /// Layer 3: agent-to-agent.
    Agent,
}

impl Layer {
    /// The lower-case name used on the command line (`--layer ai`).
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Ai => "ai",
            Layer::Mcp => "mcp",
            Layer::Agent => "agent",
        }
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The whole configuration of one gateway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayConfig {
    /// [`CONFIG_VERSION`].
    pub version: u32,
    /// Which gateway this is.
    pub gateway: GatewayId,
    /// Where and how it listens.
    pub listener: ListenerConfig,
    /// How callers are identified.
    pub auth: AuthConfig,
    /// Shared counters; `None` counts in memory per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreConfig>,
    /// Logs, metrics, traces.
    pub telemetry: TelemetryConfig,
    /// Subjects, grants, limits and budgets.
    pub policy: PolicyConfig,
    /// Where the gateway may connect: its egress rule ([`crate::policy::egress`]). Absent: the
    /// cluster's rule with nothing allowed besides it.
    #[serde(default)]
    pub egress: EgressConfig,
    /// Layer 1 routing, when `gateway.layer` is `ai`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai: Option<AiConfig>,
    /// Layer 2 servers, when `gateway.layer` is `mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpConfig>,
    /// Layer 3 agents, when `gateway.layer` is `agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentLayerConfig>,
}

/// Identity of a gateway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayId {
    /// Namespace (or, in local mode, the namespace the manifests defaulted to).
    pub namespace: String,
    /// Name of the gateway object.
    pub name: String,
    /// Its layer.
    pub layer: Layer,
}

impl std::fmt::Display for GatewayId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({})", self.namespace, self.name, self.layer)
    }
}

/// Listener settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerConfig {
    /// TCP port.
    pub port: u16,
    /// Largest request body accepted.
    pub max_request_bytes: u64,
}

/// A gateway's egress rule: what it adds to the classes of [`crate::policy::egress`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressConfig {
    /// Address ranges allowed whatever their class (CIDR notation, or single addresses).
    #[serde(rename = "allowedCIDRs", default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_cidrs: Vec<String>,
    /// URLs that arrive at run time may reach loopback and private networks.
    #[serde(default)]
    pub allow_private_networks: bool,
    /// Configured URLs may reach loopback and unspecified addresses (local mode, where the
    /// gateway and its servers share a host).
    #[serde(default)]
    pub allow_loopback: bool,
    /// Host names (or `*.suffix` globs) URLs that arrive at run time may name; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
}

/// Caller authentication.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthConfig {
    /// Requests without credentials are served as subject [`crate::policy::ANONYMOUS`].
    pub allow_anonymous: bool,
    /// Trusted JWT issuers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt: Vec<JwtIssuerConfig>,
    /// Kubernetes ServiceAccount tokens, when accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_tokens: Option<ServiceAccountTokensConfig>,
    /// Hex salt of the virtual-key hashes in this config.
    pub virtual_key_salt: String,
}

/// A trusted JWT issuer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtIssuerConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// JWKS location; `None` means OIDC discovery from the issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Claim naming the subject.
    pub subject_claim: String,
}

/// ServiceAccount token acceptance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountTokensConfig {
    /// Accepted audiences.
    pub audiences: Vec<String>,
}

/// A value held in the gateway's credentials bundle.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialRef {
    /// Key in the bundle.
    pub id: String,
}

/// The secret values one gateway needs, by [`CredentialRef::id`]. Never serialised into a config.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(pub BTreeMap<String, String>);

impl Credentials {
    /// The value of a credential, if the bundle has it.
    pub fn get(&self, r: &CredentialRef) -> Option<&str> {
        self.0.get(&r.id).map(String::as_str)
    }

    /// SHA-256 over ids and values, hex: changes whenever any credential changes.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (k, v) in &self.0 {
            h.update((k.len() as u64).to_le_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values are secret: show only the ids.
        f.debug_tuple("Credentials").field(&self.0.keys().collect::<Vec<_>>()).finish()
    }
}

/// Salted hash of a virtual key as it appears in configs: hex SHA-256 of salt bytes then key.
pub fn hash_virtual_key(salt_hex: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt_hex.as_bytes());
    h.update(b":");
    h.update(key.as_bytes());
    let mut out = [0u8; 64];
    // Cannot fail: 32 bytes are 64 hex digits.
    let _ = hex::encode_to_slice(h.finalize(), &mut out);
    out.iter().map(|&c| c as char).collect()
}

/// Whether requests proceed when the store is down.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Refuse.
    Closed,
    /// Serve without the store's limits and budgets.
    Open,
}

/// Shared store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreConfig {
    /// `redis://` or `rediss://` URL, without password.
    pub redis_url: String,
    /// Password, from the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_password: Option<CredentialRef>,
    /// Behaviour when Redis is down.
    pub failure_mode: FailureMode,
}

/// Telemetry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Where trace spans are exported; `None` exports none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp: Option<OtlpConfig>,
    /// One JSON line per request.
    pub access_log: bool,
    /// Label request metrics with the subject (otherwise the label is empty).
    #[serde(default)]
    pub subject_labels: bool,
}

/// An OTLP trace exporter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtlpConfig {
    /// The endpoint URL (for HTTP, the full traces URL).
    pub endpoint: String,
    /// Transport.
    pub protocol: OtlpProtocol,
    /// Share of new traces sampled, 0 to 1; requests with a parent follow its flag.
    pub sampling_ratio: f64,
}

/// OTLP transports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OtlpProtocol {
    /// gRPC.
    Grpc,
    /// HTTP with protobuf bodies.
    HttpProtobuf,
}

/// What callers no policy names may do.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    /// Everything, unlimited.
    Allow,
    /// Nothing.
    Deny,
}

/// The policy slice of a gateway: every subject and policy of its namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyConfig {
    /// For callers no policy names.
    pub default_action: DefaultAction,
    /// Known callers and how they prove who they are, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<SubjectConfig>,
    /// Policies, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyRules>,
}

/// A known caller (an Agent).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubjectConfig {
    /// Agent name.
    pub name: String,
    /// Ways it proves who it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<IdentityConfig>,
    /// The Agent's `team` label, for metrics (`cairn_subject_info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// One way a subject proves who it is.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "type", deny_unknown_fields)]
pub enum IdentityConfig {
    /// Token of this ServiceAccount (`system:serviceaccount:NS:NAME`).
    ServiceAccount {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// JWT with this issuer and subject.
    Jwt {
        /// Issuer.
        issuer: String,
        /// Subject claim value.
        subject: String,
    },
    /// Virtual key with this salted hash.
    VirtualKey {
        /// [`hash_virtual_key`] of the key.
        hash: String,
    },
}

/// Per-subject limits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}

/// One AgentPolicy, resolved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRules {
    /// Policy name.
    pub name: String,
    /// Subject names it applies to, sorted.
    pub subjects: Vec<String>,
    /// Model grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelGrantConfig>,
    /// Tool grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolGrantConfig>,
    /// Peer-agent grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentGrantConfig>,
    /// Budgets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetConfig>,
}

/// Models granted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelGrantConfig {
    /// Stable id for counters: `<policy>/models/<index in the AgentPolicy's spec.models>`, so a grant
    /// that compile leaves out does not shift the counters of the grants after it.
    pub id: String,
    /// Model name glob.
    pub pattern: String,
    /// Limits per subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsConfig>,
}

/// Tools granted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolGrantConfig {
    /// Stable id for counters: `<policy>/tools/<index in the AgentPolicy's spec.tools>`, so a grant
    /// that compile leaves out does not shift the counters of the grants after it.
    pub id: String,
    /// MCPServer name (unique in the namespace the policy and its gateways share).
    pub server: String,
    /// The server's tool prefix, for showing names as clients see them (`prefix__tool`, or the
    /// tool's own name when empty).
    #[serde(default)]
    pub prefix: String,
    /// Unprefixed tool-name globs.
    pub tools: Vec<String>,
    /// Limits per subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsConfig>,
}

/// Peer agent granted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentGrantConfig {
    /// Stable id for counters: `<policy>/agents/<index in the AgentPolicy's spec.agents>`, so a grant
    /// that compile leaves out does not shift the counters of the grants after it.
    pub id: String,
    /// Agent name.
    pub agent: String,
    /// Skill globs; empty means all skills.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// Limits per subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsConfig>,
}

/// Calendar window (UTC).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BudgetWindow {
    /// Calendar day.
    Day,
    /// ISO week.
    Week,
    /// Calendar month.
    Month,
}

/// Whose spend counts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BudgetScope {
    /// Each subject separately.
    PerSubject,
    /// All subjects of the policy together.
    Shared,
}

/// What an exhausted budget does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BudgetAction {
    /// Refuse further calls.
    Block,
    /// Only report.
    Report,
}

/// A dollar budget.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetConfig {
    /// Stable id for counters: `<policy>/budgets/<index>`.
    pub id: String,
    /// Amount in USD.
    pub amount_usd: f64,
    /// Window.
    pub window: BudgetWindow,
    /// Scope.
    pub scope: BudgetScope,
    /// Action.
    pub action: BudgetAction,
}

/// Timing values are milliseconds.
pub type Millis = u64;

/// Layer 1.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiConfig {
    /// Backends referenced by the rules, sorted by name.
    pub backends: Vec<AiBackendConfig>,
    /// Rules in precedence order: for a request, the first rule with a fitting match wins, exact
    /// model names before globs, then by route name and rule index.
    pub rules: Vec<AiRuleConfig>,
}

/// Provider API family.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// OpenAI.
    Openai,
    /// Azure OpenAI v1.
    AzureOpenai,
    /// Anthropic Messages.
    Anthropic,
    /// Gemini's OpenAI-compatible endpoint.
    Gemini,
    /// Other OpenAI-compatible servers.
    OpenaiCompatible,
    /// AWS Bedrock.
    Bedrock,
    /// Built-in deterministic backend.
    Echo,
}

/// A header sent upstream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderConfig {
    /// Header name.
    pub name: String,
    /// Literal value (not secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Secret value from the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialRef>,
    /// Text before the value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// Model prices, USD per million tokens.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriceConfig {
    /// Input tokens.
    pub input_per_million: f64,
    /// Cached input tokens.
    pub cached_input_per_million: f64,
    /// Output tokens.
    pub output_per_million: f64,
}

/// Model type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Chat-style generation.
    Chat,
    /// Embeddings.
    Embedding,
}

/// A model of a backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiModelConfig {
    /// Provider's name.
    pub name: String,
    /// Type.
    pub kind: ModelKind,
    /// Prices; `None` costs nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<PriceConfig>,
}

/// One LLM backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiBackendConfig {
    /// AIBackend name.
    pub name: String,
    /// API family.
    pub provider: ProviderKind,
    /// Base URL (empty for echo).
    pub url: String,
    /// Headers to send, the credential header first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderConfig>,
    /// Models; empty accepts any model, unpriced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<AiModelConfig>,
    /// Connect timeout.
    pub connect_timeout_ms: Millis,
}

/// A header match.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMatchConfig {
    /// Lower-case header name.
    pub name: String,
    /// Exact value.
    pub value: String,
}

/// A rule match.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiMatchConfig {
    /// Model name or glob.
    pub model: String,
    /// Required headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatchConfig>,
}

/// A rule target.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiTargetConfig {
    /// Backend name (one of [`AiConfig::backends`]).
    pub backend: String,
    /// Upstream model name; `None` passes the requested name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Weight within its priority.
    pub weight: u32,
    /// Priority group (0 first).
    pub priority: u32,
}

/// Outcomes that fall back.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FallbackOn {
    /// 429.
    RateLimited,
    /// 5xx.
    ServerError,
    /// Timeout.
    Timeout,
    /// Connect error.
    ConnectError,
}

/// Retry settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryConfig {
    /// Extra attempts per request.
    pub attempts: u32,
    /// Retry budget in percent of traffic.
    pub budget_percent: u32,
}

/// Timeouts; `None` is unlimited.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// To first token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<Millis>,
    /// Between chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<Millis>,
    /// Whole request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<Millis>,
}

/// Ejection of failing backends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EjectionConfig {
    /// Consecutive failures that eject.
    pub consecutive_failures: u32,
    /// Rest time.
    pub cooldown_ms: Millis,
}

/// Exact-match cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheConfig {
    /// Entry lifetime.
    pub ttl_ms: Millis,
    /// Shared between callers.
    pub shared: bool,
    /// Most entries per replica.
    pub max_entries: u32,
}

/// PII detectors.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PiiDetector {
    /// E-mail.
    Email,
    /// Phone.
    Phone,
    /// Card numbers (Luhn).
    CreditCard,
    /// IBAN (checksum).
    Iban,
    /// US SSN.
    UsSsn,
}

/// Guardrail action.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GuardrailActionConfig {
    /// Refuse.
    Deny,
    /// Redact and continue.
    Redact,
}

/// A guardrail.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuardrailConfig {
    /// Name reported on a hit.
    pub name: String,
    /// Detectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pii: Vec<PiiDetector>,
    /// Regular expressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regex: Vec<String>,
    /// Action.
    pub action: GuardrailActionConfig,
}

/// One routing rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiRuleConfig {
    /// AIRoute name.
    pub route: String,
    /// Rule name, unique within the route.
    pub name: String,
    /// Matches (any).
    pub matches: Vec<AiMatchConfig>,
    /// Targets.
    pub targets: Vec<AiTargetConfig>,
    /// Fallback conditions.
    pub fallback_on: Vec<FallbackOn>,
    /// Retries; `None` means no retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetryConfig>,
    /// Timeouts.
    pub timeouts: TimeoutsConfig,
    /// Ejection.
    pub ejection: EjectionConfig,
    /// Cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
    /// Request guardrails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_guardrails: Vec<GuardrailConfig>,
    /// Response guardrails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_guardrails: Vec<GuardrailConfig>,
}

/// Idle session expiry of an MCP gateway when its spec names none (the API's default, `30m`).
pub const DEFAULT_SESSION_IDLE_TIMEOUT_MS: Millis = 30 * 60_000;

/// Layer 2.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpConfig {
    /// Servers, sorted by prefix.
    pub servers: Vec<McpServerConfig>,
    /// Idle session expiry.
    pub session_idle_timeout_ms: Millis,
    /// OAuth resource-server settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthConfig>,
    /// `Origin` values allowed besides the gateway's own host (`*`: any); a request with
    /// another `Origin` is refused, one without is served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
}

impl Default for McpConfig {
    /// No servers, the default idle expiry.
    fn default() -> Self {
        McpConfig {
            servers: vec![],
            session_idle_timeout_ms: DEFAULT_SESSION_IDLE_TIMEOUT_MS,
            oauth: None,
            allowed_origins: vec![],
        }
    }
}

/// OAuth protected-resource settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuthConfig {
    /// Resource identifier.
    pub resource: String,
    /// Authorization servers.
    pub authorization_servers: Vec<String>,
    /// Scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// How the gateway reaches an MCP server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", tag = "type", deny_unknown_fields)]
pub enum McpEndpoint {
    /// Streamable HTTP at this URL.
    Http {
        /// URL.
        url: String,
    },
    /// A local child process speaking stdio (local mode only; in a cluster the operator runs it
    /// behind `cairn mcp-bridge` and the gateway uses `http`).
    Stdio {
        /// Program and arguments.
        command: Vec<String>,
        /// Environment (literal values).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        /// Environment from the credentials bundle.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        secret_env: BTreeMap<String, CredentialRef>,
        /// One child per session (`false`: one shared child).
        per_session: bool,
    },
}

/// One MCP server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpServerConfig {
    /// MCPServer name.
    pub name: String,
    /// Tool prefix.
    pub prefix: String,
    /// How to reach it.
    pub endpoint: McpEndpoint,
    /// Headers to send.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderConfig>,
    /// Exposed tool globs.
    pub allow: Vec<String>,
    /// Hidden tool globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Call timeout.
    pub timeout_ms: Millis,
    /// Log arguments in the audit log.
    pub audit_arguments: bool,
}

/// How long an agent gateway remembers a task's owner when its spec names no time (`24h`).
pub const DEFAULT_TASK_OWNERSHIP_TTL_MS: Millis = 86_400_000;
/// Lifetime of caller-identity tokens when the spec names none (`5m`).
pub const DEFAULT_IDENTITY_TOKEN_TTL_MS: Millis = 300_000;
/// Header of caller-identity tokens when the spec names none.
pub const DEFAULT_IDENTITY_TOKEN_HEADER: &str = "X-Cairn-Caller";

/// Layer 3.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentLayerConfig {
    /// Agents published, sorted by name.
    pub agents: Vec<A2aAgentConfig>,
    /// Task ownership memory.
    pub task_ownership_ttl_ms: Millis,
    /// Caller-identity token lifetime.
    pub identity_token_ttl_ms: Millis,
    /// Header carrying the caller-identity token.
    pub identity_token_header: String,
    /// `Origin` values allowed besides the gateway's own host (`*`: any); a request with
    /// another `Origin` is refused, one without is served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
}

impl Default for AgentLayerConfig {
    /// No agents, the default lifetimes and header, only same-origin
    /// browsers.
    fn default() -> Self {
        AgentLayerConfig {
            agents: vec![],
            task_ownership_ttl_ms: DEFAULT_TASK_OWNERSHIP_TTL_MS,
            identity_token_ttl_ms: DEFAULT_IDENTITY_TOKEN_TTL_MS,
            identity_token_header: DEFAULT_IDENTITY_TOKEN_HEADER.into(),
            allowed_origins: vec![],
        }
    }
}

/// A published A2A agent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct A2aAgentConfig {
    /// Agent name (its path under the gateway).
    pub name: String,
    /// Base URL.
    pub url: String,
    /// Card path under the URL.
    pub card_path: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Errors reading a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not valid JSON for the contract.
    #[error("invalid gateway config: {0}")]
    Parse(#[from] serde_json::Error),
    /// A credentials bundle that is not a JSON object of strings.
    #[error("expected a JSON object of credential id to value: {0}")]
    Credentials(serde_json::Error),
    /// Written by another version of Cairn.
    #[error("gateway config version {found} is not supported (this gateway reads version {CONFIG_VERSION})")]
    Version {
        /// Version found.
        found: u32,
    },
}

impl ConfigError {
    /// Low-cardinality name for metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            ConfigError::Parse(_) | ConfigError::Credentials(_) => "invalid_config",
            ConfigError::Version { .. } => "version",
        }
    }
}

impl GatewayConfig {
    /// Canonical JSON: the form stored in the ConfigMap and hashed.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config types always serialize")
    }

    /// SHA-256 of the canonical JSON, hex.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.to_json().as_bytes()))
    }

    /// Parses and checks the version.
    pub fn from_json(s: &str) -> Result<Self, ConfigError> {
        #[derive(Deserialize)]
        struct V {
            version: u32,
        }
        let v: V = serde_json::from_str(s)?;
        if v.version != CONFIG_VERSION {
            return Err(ConfigError::Version { found: v.version });
        }
        Ok(serde_json::from_str(s)?)
    }

    /// The JSON schema of the contract.
    pub fn json_schema() -> String {
        let schema = schemars::schema_for!(GatewayConfig);
        serde_json::to_string_pretty(&schema).expect("schema serializes") + "\n"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn virtual_key_hashes_are_hex_sha256_of_salt_colon_key() {
        // `printf 'be9c:bench-key' | sha256sum`
        assert_eq!(
            super::hash_virtual_key("be9c", "bench-key"),
            "34c8678567ec6018fb349927ac5697706c1770ae71994a0b029e74140a071df8"
        );
    }
}
