//! Layer 1: `AIGateway`, `AIBackend`, `AIRoute`.

use super::common::*;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A fleet of layer-1 gateway pods serving OpenAI- and Anthropic-compatible LLM APIs.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "AIGateway",
    doc = "A fleet of layer-1 gateway pods serving OpenAI- and Anthropic-compatible LLM APIs to agents.",
    namespaced,
    status = "GatewayStatus",
    shortname = "aigw",
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
pub struct AIGatewaySpec {
    /// Settings shared by every gateway kind.
    #[serde(flatten)]
    pub common: GatewayCommon,
}

/// The API family of an LLM provider endpoint.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub enum Provider {
    /// OpenAI's API (`https://api.openai.com/v1` by default).
    OpenAI,
    /// Azure OpenAI's v1 API (`https://RESOURCE.openai.azure.com/openai/v1`; `url` required).
    AzureOpenAI,
    /// Anthropic's Messages API (`https://api.anthropic.com` by default).
    Anthropic,
    /// Google Gemini through its OpenAI-compatible endpoint.
    Gemini,
    /// Any OpenAI-compatible server: vLLM, Ollama, Groq, Mistral, … (`url` required).
    OpenAICompatible,
    /// AWS Bedrock (Converse API, SigV4). Accepted by the API; served by a later gateway release.
    Bedrock,
    /// A built-in backend that answers deterministically without calling anyone: for trying routes,
    /// limits and policies without spending tokens. Goes through the same routing, accounting and
    /// policy path as every other backend.
    Echo,
}

/// How the provider credential is sent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// The Secret key holding the provider API key.
    pub secret_ref: SecretKeyRef,
    /// Header carrying the key. Default by provider: `Authorization` (OpenAI, Gemini,
    /// OpenAICompatible), `api-key` (AzureOpenAI), `x-api-key` (Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Text before the key in the header. Default `"Bearer "` for `Authorization`, empty otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Prices in US dollars per million tokens.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    /// USD per million input (prompt) tokens.
    #[schemars(range(min = 0))]
    pub input_per_million: f64,
    /// USD per million cached input tokens. Default: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cached_input_per_million: Option<f64>,
    /// USD per million output (completion) tokens.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub output_per_million: f64,
}

/// What a model is used for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ModelType {
    /// Chat completions, responses and messages.
    #[default]
    Chat,
    /// Embeddings.
    Embedding,
}

/// A model the backend serves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendModel {
    /// The provider's model name, e.g. `gpt-4o-mini`.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// What the model is used for.
    #[serde(default, rename = "type")]
    pub type_: ModelType,
    /// Token prices, used for cost metrics and budgets. Without a price, calls cost nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
}

/// Timeouts that apply to every call to this backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendTimeouts {
    /// Time to establish a connection.
    #[serde(default = "five_s")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub connect: String,
}

impl Default for BackendTimeouts {
    fn default() -> Self {
        Self { connect: five_s() }
    }
}

fn five_s() -> String {
    "5s".into()
}

/// One LLM provider endpoint.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "AIBackend",
    doc = "One LLM provider endpoint with its credentials and model prices.",
    namespaced,
    status = "BasicStatus",
    shortname = "aib",
    category = "cairn",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(self.provider in ['AzureOpenAI', 'OpenAICompatible', 'Bedrock']) || has(self.url)").message("url is required for providers AzureOpenAI, OpenAICompatible and Bedrock"))]
#[x_kube(validation = Rule::new("self.provider != 'Echo' || (!has(self.url) && !has(self.credentials))").message("an Echo backend takes no url and no credentials"))]
#[x_kube(validation = Rule::new("!has(self.models) || self.models.all(m, self.models.exists_one(n, n.name == m.name))").message("model names must be unique within a backend"))]
pub struct AIBackendSpec {
    /// The provider's API family.
    pub provider: Provider,
    /// Base URL of the API, e.g. `https://api.openai.com/v1` or `http://vllm.ml:8000/v1`.
    /// Default by provider for OpenAI, Anthropic and Gemini.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^https?://[^\\s]+$"))]
    pub url: Option<String>,
    /// The API key and how to send it. Omit for servers that need none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// Extra headers sent with every request (e.g. an organisation id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub headers: Vec<HeaderValue>,
    /// Models this backend serves, with prices. Routes may only send models listed here; an empty
    /// list accepts any model name, unpriced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub models: Vec<BackendModel>,
    /// Backend-wide timeouts.
    #[serde(default)]
    pub timeouts: BackendTimeouts,
}

/// A header a request must carry for a match.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// Header name (case-insensitive).
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// Exact value required.
    pub value: String,
}

/// Which requests a rule takes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    /// Requested model name or glob (`gpt-4o*`). Clients list the exact names under `/v1/models`.
    #[schemars(regex(pattern = "^[A-Za-z0-9._:/@*?-]{1,253}$"))]
    pub model: String,
    /// Headers that must all be present with these values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
}

/// One backend a rule may send to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteBackend {
    /// The AIBackend.
    pub backend_ref: LocalRef,
    /// Model name sent to the backend. Default: the model the client asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub model: Option<String>,
    /// Share of traffic among backends of the same priority.
    #[serde(default = "one_weight")]
    #[schemars(range(min = 0, max = 1000000))]
    pub weight: i32,
    /// Priority group: 0 is tried first; higher numbers are fallbacks, tried in order when every
    /// backend of the lower groups failed with a `fallbackOn` condition or is ejected.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub priority: i32,
}

fn one_weight() -> i32 {
    1
}

/// Upstream outcomes that move a request to the next backend.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub enum FallbackCondition {
    /// HTTP 429 from the backend.
    RateLimited,
    /// HTTP 5xx from the backend.
    ServerError,
    /// No response (or no first token) within the timeout.
    Timeout,
    /// Connection refused, reset or TLS failure.
    ConnectError,
}

/// Retries of a failed attempt, bounded by a budget.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    /// Most extra attempts per request (across backends).
    #[serde(default = "two")]
    #[schemars(range(min = 0, max = 5))]
    pub attempts: i32,
    /// Retries may add at most this percentage to the backend traffic of the route (retry budget).
    #[serde(default = "twenty")]
    #[schemars(range(min = 0, max = 100))]
    pub budget_percent: i32,
}

fn two() -> i32 {
    2
}
fn twenty() -> i32 {
    20
}

/// Time limits of a request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteTimeouts {
    /// Time until the first token (or the whole response, when not streaming) arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub first_token: Option<String>,
    /// Longest silence between two stream chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub idle: Option<String>,
    /// Longest total time of a request, all attempts included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub total: Option<String>,
}

/// Taking a backend out of rotation after repeated failures.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ejection {
    /// Consecutive failures (fallback conditions) that eject a backend.
    #[serde(default = "five")]
    #[schemars(range(min = 1, max = 1000))]
    pub consecutive_failures: i32,
    /// How long an ejected backend rests before it is tried again.
    #[serde(default = "thirty_s")]
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub cooldown: String,
}

impl Default for Ejection {
    fn default() -> Self {
        Self { consecutive_failures: five(), cooldown: thirty_s() }
    }
}

fn five() -> i32 {
    5
}
fn thirty_s() -> String {
    "30s".into()
}

/// Exact-match response cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExactCache {
    /// How long an answer is kept.
    #[schemars(regex(pattern = "^([0-9]+(ms|s|m|h))+$"))]
    pub ttl: String,
    /// Share cached answers between callers. Default: each caller sees only its own.
    #[serde(default)]
    pub shared: bool,
    /// Most entries kept per gateway replica.
    #[serde(default = "default_cache_entries")]
    #[schemars(range(min = 1, max = 1000000))]
    pub max_entries: i32,
}

fn default_cache_entries() -> i32 {
    10000
}

/// Response caching (non-streaming requests only).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cache {
    /// Answer identical requests from the cache.
    pub exact: ExactCache,
}

/// Built-in detectors of personal data.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub enum PiiKind {
    /// E-mail addresses.
    Email,
    /// Phone numbers (international or North American form).
    Phone,
    /// Payment card numbers (13 to 19 digits passing the Luhn check).
    CreditCard,
    /// International bank account numbers (checksum verified).
    #[serde(rename = "IBAN")]
    Iban,
    /// US social security numbers.
    #[serde(rename = "USSSN")]
    UsSsn,
}

/// What a guardrail does when it finds something.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum GuardrailAction {
    /// Refuse the request (or withhold the response) with an error naming the rule.
    Deny,
    /// Replace what was found with `[REDACTED:<rule>]` and go on.
    Redact,
}

/// One guardrail rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.pii) && size(self.pii) > 0) || (has(self.regex) && size(self.regex) > 0)").message("a guardrail needs at least one pii detector or regex"))]
pub struct Guardrail {
    /// Name reported when the rule fires. Default `pii` or `regex-N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[a-z0-9-]{1,63}$"))]
    pub name: Option<String>,
    /// Personal-data detectors to run.
    #[serde(default)]
    #[schemars(length(max = 5))]
    pub pii: Vec<PiiKind>,
    /// Regular expressions (RE2 syntax, no look-around) to look for.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(min = 1, max = 1024)))]
    pub regex: Vec<String>,
    /// What to do on a hit.
    pub action: GuardrailAction,
}

/// Guardrails on the way in and out.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Guardrails {
    /// Rules run on request messages before they leave the gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub request: Vec<Guardrail>,
    /// Rules run on responses (non-streaming responses; streamed responses are checked per chunk).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub response: Vec<Guardrail>,
}

/// One routing rule: which requests, to which backends, with which protections.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.backends.exists(b, !has(b.weight) || b.weight > 0)").message("at least one backend must have a weight above zero"))]
pub struct RouteRule {
    /// Name used in metrics and logs. Default `rule-N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[a-z0-9-]{1,63}$"))]
    pub name: Option<String>,
    /// The rule takes a request when any match fits.
    #[schemars(length(min = 1))]
    pub matches: Vec<RouteMatch>,
    /// Where matched requests go.
    #[schemars(length(min = 1, max = 64))]
    pub backends: Vec<RouteBackend>,
    /// Upstream outcomes that move a request on to the next backend. Never the caller's own 4xx.
    #[serde(default = "default_fallback_on")]
    pub fallback_on: Vec<FallbackCondition>,
    /// Retry settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// Time limits.
    #[serde(default)]
    pub timeouts: RouteTimeouts,
    /// Ejection of failing backends.
    #[serde(default)]
    pub ejection: Ejection,
    /// Opt-in response cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,
    /// Opt-in guardrails.
    #[serde(default)]
    pub guardrails: Guardrails,
}

fn default_fallback_on() -> Vec<FallbackCondition> {
    vec![
        FallbackCondition::RateLimited,
        FallbackCondition::ServerError,
        FallbackCondition::Timeout,
        FallbackCondition::ConnectError,
    ]
}

/// Model routing on one or more AIGateways.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "AIRoute",
    doc = "Model routing on AIGateways: matches, weighted and prioritised backends, fallback, retries, timeouts, cache and guardrails.",
    namespaced,
    status = "BasicStatus",
    shortname = "air",
    category = "cairn",
    printcolumn(name = "Gateways", type_ = "string", json_path = ".spec.gatewayRefs[*].name"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AIRouteSpec {
    /// The AIGateways serving this route.
    #[schemars(length(min = 1, max = 16))]
    pub gateway_refs: Vec<LocalRef>,
    /// Rules, tried in order; the first whose match fits takes the request.
    #[schemars(length(min = 1, max = 128))]
    pub rules: Vec<RouteRule>,
}
