//! Agent cards: fetched from the agents, cached with `ETag` revalidation, rewritten to point at the
//! gateway, and re-signed with the gateway's key.
//!
//! **Fetching.** `GET {agent url}{card path}`, at most [`MAX_CARD_BYTES`], within
//! [`FETCH_TIMEOUT`]. A card is fresh for the agent's `Cache-Control: max-age` (at most
//! [`MAX_FRESH`]; [`DEFAULT_FRESH`] without one); after that it is revalidated with
//! `If-None-Match` and the agent's `ETag`. When revalidation fails, the last good card is served
//! (and a warning logged); a card that was never fetched is an error: 502 with a message naming
//! the agent, the URL and what is wrong (unreachable, HTTP status, too large, not JSON).
//!
//! **Rewriting.** Each A2A 1.0 `supportedInterfaces[]` entry (or 0.3 `url` and
//! `additionalInterfaces[]`) for the JSON-RPC or HTTP+JSON binding gets the gateway URL of the
//! agent, `{base}/agents/{name}` (JSON-RPC is served at that URL, REST below it); gRPC entries
//! are dropped because the gateway does not proxy gRPC. `securitySchemes` and
//! `securityRequirements` (0.3: `security`) are replaced by the gateway's own bearer scheme, and
//! per-skill security requirements are removed: callers authenticate to the gateway, never to
//! the agent. Skills the caller may not invoke (AgentPolicy peer-agent grants with `skills`) are
//! removed ([`keep_skills`]) before signing.
//!
//! **Signatures: re-signed, not stripped.** Rewriting invalidates the agent's `signatures[]`. The
//! gateway removes them and signs the rewritten card itself: one JWS (`ES256`, detached payload =
//! the RFC 8785 canonical card without `signatures` and without empty values, as the A2A SDKs
//! verify it) whose protected header carries `kid` and
//! `jku` = `{base}/.well-known/jwks.json`. A client that trusts the gateway's JWKS can thus check
//! that the card it holds is exactly what the gateway published. The gateway has already fetched
//! the original card from the configured agent URL, which is where trust in the agent comes from.
//!
//! The upstream endpoints the gateway calls are taken from the agent's card when it names an
//! interface on the same origin as the configured agent URL, else the configured URL is used.
//!
//! About 500 lines of code, the rest its tests (rewrite, endpoints, signature, caching headers).

use super::sign::{Signer, canonical_json};
use crate::config::AuthConfig;
use crate::gateway::http_client::{HttpClient, failure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest card accepted from an agent.
pub const MAX_CARD_BYTES: usize = 1 << 20;
/// Longest wait for a card.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Freshness without `Cache-Control: max-age`.
pub const DEFAULT_FRESH: Duration = Duration::from_secs(30);
/// Upper bound on the freshness an agent may ask for.
pub const MAX_FRESH: Duration = Duration::from_secs(300);

/// Why a card is not available.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// Could not connect or read.
    #[error("the agent card of '{agent}' could not be fetched from {url}: {detail}")]
    Unreachable {
        /// Agent.
        agent: String,
        /// Card URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// A status other than 200/304.
    #[error("the agent card of '{agent}' at {url} answered HTTP {status}")]
    Status {
        /// Agent.
        agent: String,
        /// Card URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// Larger than [`MAX_CARD_BYTES`].
    #[error("the agent card of '{agent}' at {url} is larger than {MAX_CARD_BYTES} bytes")]
    TooLarge {
        /// Agent.
        agent: String,
        /// Card URL.
        url: String,
    },
    /// Not a JSON object.
    #[error("the agent card of '{agent}' at {url} is not a valid JSON object: {detail}")]
    Invalid {
        /// Agent.
        agent: String,
        /// Card URL.
        url: String,
        /// The parse error.
        detail: String,
    },
}

impl CardError {
    /// The REST-style error body (502).
    pub fn body(&self) -> Value {
        let reason = match self {
            CardError::Unreachable { .. } => "AGENT_UNREACHABLE",
            CardError::Status { .. } => "AGENT_CARD_UNAVAILABLE",
            CardError::TooLarge { .. } => "AGENT_CARD_TOO_LARGE",
            CardError::Invalid { .. } => "AGENT_CARD_INVALID",
        };
        json!({"error": {
            "code": 502,
            "status": "UNAVAILABLE",
            "message": self.to_string(),
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "cairn.dev"}],
        }})
    }

    /// For metrics.
    pub fn category(&self) -> &'static str {
        match self {
            CardError::Unreachable { .. } => "upstream_unreachable",
            CardError::Status { .. } => "upstream_status",
            CardError::TooLarge { .. } => "card_too_large",
            CardError::Invalid { .. } => "card_invalid",
        }
    }
}

#[derive(Clone)]
struct Cached {
    card: Arc<Value>,
    /// [`endpoints`] of the card on the origin of its URL (computed once per card version: the
    /// request path reads it on every call).
    endpoints: Arc<Endpoints>,
    etag: Option<String>,
    checked: Instant,
    fresh_for: Duration,
}

/// Cards by card URL, shared across config versions.
#[derive(Default)]
pub struct CardCache {
    map: Mutex<HashMap<String, Cached>>,
}

fn max_age(headers: &http::HeaderMap) -> Duration {
    let Some(cc) = headers.get(http::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()) else {
        return DEFAULT_FRESH;
    };
    let mut fresh = DEFAULT_FRESH;
    for d in cc.split(',').map(str::trim) {
        let d = d.to_ascii_lowercase();
        if d == "no-cache" || d == "no-store" {
            return Duration::ZERO;
        }
        if let Some(n) = d.strip_prefix("max-age=").and_then(|n| n.trim_matches('"').parse::<u64>().ok()) {
            fresh = Duration::from_secs(n).min(MAX_FRESH);
        }
    }
    fresh
}

impl CardCache {
    /// The card at `url`, from the cache while fresh, else fetched or revalidated.
    pub async fn get(&self, client: &HttpClient, agent: &str, url: &str) -> Result<Arc<Value>, CardError> {
        let prev = self.map.lock().unwrap_or_else(|e| e.into_inner()).get(url).cloned();
        if let Some(p) = &prev
            && p.checked.elapsed() < p.fresh_for
        {
            return Ok(p.card.clone());
        }
        match fetch(client, agent, url, prev.as_ref().and_then(|p| p.etag.as_deref())).await {
            Ok(Fetched::NotModified(headers)) if prev.is_some() => {
                let mut p = prev.expect("checked above");
                p.checked = Instant::now();
                p.fresh_for = max_age(&headers);
                let card = p.card.clone();
                self.map.lock().unwrap_or_else(|e| e.into_inner()).insert(url.to_string(), p);
                Ok(card)
            }
            Ok(Fetched::NotModified(_)) => {
                Err(CardError::Status { agent: agent.into(), url: url.into(), status: 304 })
            }
            Ok(Fetched::Card(card, headers)) => {
                let etag = headers.get(http::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
                let c = Cached {
                    endpoints: Arc::new(endpoints(&card, url)),
                    card: Arc::new(card),
                    etag,
                    checked: Instant::now(),
                    fresh_for: max_age(&headers),
                };
                let card = c.card.clone();
                self.map.lock().unwrap_or_else(|e| e.into_inner()).insert(url.to_string(), c);
                Ok(card)
            }
            Err(e) => match prev {
                Some(p) => {
                    tracing::warn!(agent, url, error = %e, "agent card revalidation failed; serving the last good card");
                    Ok(p.card)
                }
                None => Err(e),
            },
        }
    }

    /// The endpoints of the cached card at `url` (its [`endpoints`] on the origin of `url`,
    /// which is the agent's), fresh or not, without fetching.
    pub fn peek_endpoints(&self, url: &str) -> Option<Arc<Endpoints>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).get(url).map(|c| c.endpoints.clone())
    }
}

/// What a fetch brought.
pub enum Fetched {
    /// A card and the response's headers.
    Card(Value, http::HeaderMap),
    /// `304 Not Modified` (only with an `etag`).
    NotModified(http::HeaderMap),
}

/// Fetches the card at `url` (a JSON object of at most [`MAX_CARD_BYTES`], within
/// [`FETCH_TIMEOUT`]), revalidating `etag` if given.
pub async fn fetch(
    client: &HttpClient,
    agent: &str,
    url: &str,
    etag: Option<&str>,
) -> Result<Fetched, CardError> {
    let unreachable =
        |detail: String| CardError::Unreachable { agent: agent.into(), url: url.into(), detail };
    let mut req = http::Request::get(url).header(http::header::ACCEPT, "application/json");
    if let Some(e) = etag {
        req = req.header(http::header::IF_NONE_MATCH, e);
    }
    let req = req.body(Full::new(Bytes::new())).map_err(|e| unreachable(e.to_string()))?;
    let resp = tokio::time::timeout(FETCH_TIMEOUT, client.request(req))
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(|e| unreachable(failure(&e, url)))?;
    let (parts, body) = resp.into_parts();
    if parts.status == http::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified(parts.headers));
    }
    if parts.status != http::StatusCode::OK {
        return Err(CardError::Status {
            agent: agent.into(),
            url: url.into(),
            status: parts.status.as_u16(),
        });
    }
    if let Some(len) =
        parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && len > MAX_CARD_BYTES as u64
    {
        return Err(CardError::TooLarge { agent: agent.into(), url: url.into() });
    }
    let bytes = tokio::time::timeout(FETCH_TIMEOUT, Limited::new(body, MAX_CARD_BYTES).collect())
        .await
        .map_err(|_| unreachable("timed out reading the card".into()))?
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                CardError::TooLarge { agent: agent.into(), url: url.into() }
            } else {
                unreachable(e.to_string())
            }
        })?
        .to_bytes();
    let card: Value = serde_json::from_slice(&bytes).map_err(|e| CardError::Invalid {
        agent: agent.into(),
        url: url.into(),
        detail: e.to_string(),
    })?;
    if !card.is_object() {
        return Err(CardError::Invalid {
            agent: agent.into(),
            url: url.into(),
            detail: "not an object".into(),
        });
    }
    Ok(Fetched::Card(card, parts.headers))
}

/// The gateway's public base URL as the caller reached it.
pub fn public_base(headers: &http::HeaderMap, uri: &http::Uri) -> String {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_string())
    };
    let proto = first("x-forwarded-proto")
        .filter(|p| p == "http" || p == "https")
        .or_else(|| uri.scheme_str().map(str::to_string))
        .unwrap_or_else(|| "http".into());
    let valid =
        |h: &String| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b'@');
    let host = first("x-forwarded-host")
        .filter(valid)
        .or_else(|| first("host").filter(valid))
        .or_else(|| uri.authority().map(|a| a.to_string()).filter(valid))
        .unwrap_or_else(|| "localhost".into());
    format!("{proto}://{host}")
}

/// Binding names as cards spell them.
fn binding_of(v: Option<&Value>) -> Option<&'static str> {
    let b = v.and_then(Value::as_str)?.to_ascii_uppercase();
    match b.as_str() {
        "JSONRPC" => Some("JSONRPC"),
        "HTTP+JSON" | "REST" | "HTTP_JSON" => Some("HTTP+JSON"),
        "GRPC" => Some("GRPC"),
        _ => None,
    }
}

/// The agent's own endpoints per binding, as its card names them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// JSON-RPC URL.
    pub jsonrpc: Option<String>,
    /// HTTP+JSON base URL.
    pub rest: Option<String>,
    /// The JSON-RPC URL as a request target ([`target`]), parsed once per card version.
    pub jsonrpc_target: Option<(http::Uri, http::HeaderValue)>,
}

/// A URL as an upstream request's URI and `Host` header (host, and the port when the URL names
/// one), so that neither is worked out again per call.
pub fn target(url: &str) -> Result<(http::Uri, http::HeaderValue), TargetError> {
    let uri: http::Uri = url.parse()?;
    let auth = uri.authority().ok_or_else(|| TargetError::NoHost(url.to_string()))?;
    let host = match auth.as_str().rsplit_once('@') {
        Some((_, host)) => host,
        None => auth.as_str(),
    };
    let host = http::HeaderValue::from_str(host)?;
    Ok((uri, host))
}

/// A URL that cannot be an upstream request's target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not a URI.
    #[error("{0}")]
    Uri(#[from] http::uri::InvalidUri),
    /// No host.
    #[error("{0} names no host")]
    NoHost(String),
    /// A host that cannot be a `Host` header.
    #[error("{0}")]
    Host(#[from] http::header::InvalidHeaderValue),
}

fn origin(url: &str) -> Option<(String, String, u16)> {
    let u: http::Uri = url.parse().ok()?;
    let scheme = u.scheme_str()?.to_ascii_lowercase();
    let port = u.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some((scheme, u.host()?.to_ascii_lowercase(), port))
}

/// The endpoints a card names on the origin of `base` (the configured agent URL).
pub fn endpoints(card: &Value, base: &str) -> Endpoints {
    let mut out = Endpoints::default();
    let want = origin(base);
    let mut consider = |url: Option<&Value>, binding: Option<&'static str>| {
        let Some(url) = url.and_then(Value::as_str) else { return };
        if want.is_none() || origin(url) != want {
            return;
        }
        match binding {
            Some("JSONRPC") if out.jsonrpc.is_none() => out.jsonrpc = Some(url.to_string()),
            Some("HTTP+JSON") if out.rest.is_none() => out.rest = Some(url.to_string()),
            _ => {}
        }
    };
    if let Some(list) = card.get("supportedInterfaces").and_then(Value::as_array) {
        for i in list {
            consider(i.get("url"), binding_of(i.get("protocolBinding")));
        }
    }
    if card.get("url").is_some() {
        let preferred = card.get("preferredTransport").map_or(Some("JSONRPC"), |t| binding_of(Some(t)));
        consider(card.get("url"), preferred);
    }
    if let Some(list) = card.get("additionalInterfaces").and_then(Value::as_array) {
        for i in list {
            consider(i.get("url"), binding_of(i.get("transport")));
        }
    }
    out.jsonrpc_target = out.jsonrpc.as_deref().and_then(|u| target(u).ok());
    out
}

/// Rewrites a card for publication at `agent_url` (the gateway URL of the agent): interface URLs,
/// security, no signatures. Deterministic: the same card and URL give the same JSON.
pub fn rewrite(card: &Value, agent_url: &str, auth: &AuthConfig) -> Value {
    let mut c: Map<String, Value> = card.as_object().cloned().unwrap_or_default();
    c.remove("signatures");
    let v1 = c.contains_key("supportedInterfaces");
    if let Some(Value::Array(list)) = c.get_mut("supportedInterfaces") {
        list.retain(|i| matches!(binding_of(i.get("protocolBinding")), Some("JSONRPC" | "HTTP+JSON")));
        for i in list.iter_mut() {
            i["url"] = Value::String(agent_url.to_string());
        }
    }
    if c.contains_key("url") {
        c.insert("url".into(), Value::String(agent_url.to_string()));
        if binding_of(c.get("preferredTransport")) == Some("GRPC") {
            c.insert("preferredTransport".into(), Value::String("JSONRPC".into()));
        }
    }
    if let Some(Value::Array(list)) = c.get_mut("additionalInterfaces") {
        list.retain(|i| matches!(binding_of(i.get("transport")), Some("JSONRPC" | "HTTP+JSON")));
        for i in list.iter_mut() {
            i["url"] = Value::String(agent_url.to_string());
        }
    }
    let description =
        "Credentials for the Cairn agent gateway: a virtual key or a JWT it trusts, as a bearer token";
    for k in ["securitySchemes", "securityRequirements", "security"] {
        c.remove(k);
    }
    if v1 {
        c.insert(
            "securitySchemes".into(),
            json!({"cairn": {"httpAuthSecurityScheme": {"scheme": "Bearer", "description": description}}}),
        );
        if !auth.allow_anonymous {
            c.insert("securityRequirements".into(), json!([{"schemes": {"cairn": {"list": []}}}]));
        }
    } else {
        c.insert(
            "securitySchemes".into(),
            json!({"cairn": {"type": "http", "scheme": "bearer", "description": description}}),
        );
        if !auth.allow_anonymous {
            c.insert("security".into(), json!([{"cairn": []}]));
        }
    }
    if let Some(Value::Array(skills)) = c.get_mut("skills") {
        for s in skills.iter_mut().filter_map(Value::as_object_mut) {
            s.remove("securityRequirements");
            s.remove("security");
        }
    }
    Value::Object(c)
}

/// Keeps only the skills at the indices `visible` (ascending) of a card's `skills`.
pub fn keep_skills(card: &mut Value, visible: &[usize]) {
    if let Some(Value::Array(skills)) = card.get_mut("skills") {
        let mut i = 0;
        skills.retain(|_| {
            i += 1;
            visible.binary_search(&(i - 1)).is_ok()
        });
    }
}

/// A strong ETag over the unsigned rewritten card (signatures are randomised; the content is not).
pub fn etag(unsigned: &Value) -> String {
    let h = Sha256::digest(canonical_json(unsigned).as_bytes());
    format!("\"{}\"", hex::encode(&h[..16]))
}

/// Drops empty strings, arrays and objects (and nulls), recursively, as the A2A SDKs do before
/// canonicalizing a card (a2a-sdk `_clean_empty`); `None` when nothing is left.
pub fn clean_empty(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(items) => {
            let kept: Vec<Value> = items.iter().filter_map(clean_empty).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        Value::Object(map) => {
            let kept: Map<String, Value> =
                map.iter().filter_map(|(k, v)| Some((k.clone(), clean_empty(v)?))).collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        other => Some(other.clone()),
    }
}

/// The JWS payload of a card signature: the RFC 8785 canonical form of the card without
/// `signatures` and without empty values, as the A2A SDKs compute it when they verify.
pub fn signing_payload(card: &Value) -> String {
    let mut c = card.clone();
    if let Some(o) = c.as_object_mut() {
        o.remove("signatures");
    }
    canonical_json(&clean_empty(&c).unwrap_or(Value::Object(Map::new())))
}

/// Signs an unsigned rewritten card: adds `signatures` with one JWS by the gateway's key.
pub fn sign(mut unsigned: Value, signer: &Signer, jku: &str) -> Value {
    let payload = signing_payload(&unsigned);
    let protected = json!({"alg": "ES256", "typ": "JOSE", "kid": signer.kid(), "jku": jku});
    let (protected, signature) = signer.detached(&protected, payload.as_bytes());
    if let Some(o) = unsigned.as_object_mut() {
        o.insert("signatures".into(), json!([{"protected": protected, "signature": signature}]));
    }
    unsigned
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn auth(anon: bool) -> AuthConfig {
        AuthConfig {
            allow_anonymous: anon,
            jwt: vec![],
            service_account_tokens: None,
            virtual_key_salt: "00".into(),
        }
    }

    fn v1_card() -> Value {
        json!({
            "name": "billing", "description": "d", "version": "1",
            "supportedInterfaces": [
                {"url": "http://billing.internal:8000/rpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": "http://billing.internal:8000/rest", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
                {"url": "billing.internal:9000", "protocolBinding": "GRPC", "protocolVersion": "1.0"}
            ],
            "capabilities": {"streaming": true},
            "securitySchemes": {"upstream": {"apiKeySecurityScheme": {"location": "header", "name": "k"}}},
            "securityRequirements": [{"schemes": {"upstream": {"list": []}}}],
            "skills": [{"id": "refund", "name": "r", "description": "", "tags": [], "securityRequirements": []}],
            "signatures": [{"protected": "x", "signature": "y"}]
        })
    }

    #[test]
    fn rewrite_points_at_the_gateway_and_replaces_security() {
        let r = rewrite(&v1_card(), "https://gw.example/agents/billing", &auth(false));
        let ifs = r["supportedInterfaces"].as_array().unwrap();
        assert_eq!(ifs.len(), 2, "gRPC dropped");
        assert!(ifs.iter().all(|i| i["url"] == "https://gw.example/agents/billing"));
        assert!(r["securitySchemes"]["cairn"]["httpAuthSecurityScheme"].is_object());
        assert!(r["securitySchemes"].get("upstream").is_none());
        assert_eq!(r["securityRequirements"][0]["schemes"]["cairn"]["list"], json!([]));
        assert!(r["skills"][0].get("securityRequirements").is_none());
        assert!(r.get("signatures").is_none());
        assert!(rewrite(&v1_card(), "u", &auth(true)).get("securityRequirements").is_none());
        let old = json!({"name": "x", "url": "http://a:1/", "preferredTransport": "GRPC",
            "additionalInterfaces": [{"url": "http://a:1/", "transport": "JSONRPC"}, {"url": "a:2", "transport": "GRPC"}],
            "securitySchemes": {"k": {"type": "apiKey"}}, "security": [{"k": []}]});
        let r = rewrite(&old, "http://gw/agents/x", &auth(false));
        assert_eq!(r["url"], "http://gw/agents/x");
        assert_eq!(r["preferredTransport"], "JSONRPC");
        assert_eq!(r["additionalInterfaces"].as_array().unwrap().len(), 1);
        assert_eq!(r["security"], json!([{"cairn": []}]));
        assert_eq!(r["securitySchemes"]["cairn"]["scheme"], "bearer");
    }

    #[test]
    fn endpoints_only_on_the_configured_origin() {
        let e = endpoints(&v1_card(), "http://billing.internal:8000");
        assert_eq!(e.jsonrpc.as_deref(), Some("http://billing.internal:8000/rpc"));
        assert_eq!(e.rest.as_deref(), Some("http://billing.internal:8000/rest"));
        assert_eq!(endpoints(&v1_card(), "http://elsewhere:8000"), Endpoints::default());
        let old = json!({"url": "http://a:1/rpc"});
        assert_eq!(endpoints(&old, "http://a:1").jsonrpc.as_deref(), Some("http://a:1/rpc"));
        let (uri, host) = endpoints(&old, "http://a:1").jsonrpc_target.unwrap();
        assert_eq!((uri.to_string().as_str(), host.to_str().unwrap()), ("http://a:1/rpc", "a:1"));
    }

    #[test]
    fn request_targets() {
        let (uri, host) = target("https://user:pw@agent.example/a2a").unwrap();
        assert_eq!((uri.path(), host.to_str().unwrap()), ("/a2a", "agent.example"));
        assert_eq!(target("http://10.0.0.1:9000").unwrap().1, "10.0.0.1:9000");
        assert!(target("/relative").unwrap_err().to_string().contains("names no host"));
        assert!(target("http://bad host/").is_err());
    }

    #[test]
    fn signature_verifies_over_the_canonical_card() {
        let signer = Signer::generate();
        let unsigned = rewrite(&v1_card(), "http://gw/agents/billing", &auth(false));
        let signed = sign(unsigned.clone(), &signer, "http://gw/.well-known/jwks.json");
        let sig = &signed["signatures"][0];
        let protected = sig["protected"].as_str().unwrap();
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(protected).unwrap()).unwrap();
        assert_eq!(header["kid"], signer.kid());
        assert_eq!(header["jku"], "http://gw/.well-known/jwks.json");
        let mut stripped = signed.clone();
        stripped.as_object_mut().unwrap().remove("signatures");
        let message = format!("{protected}.{}", URL_SAFE_NO_PAD.encode(signing_payload(&signed)));
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(signer.jwks()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        let ok = jsonwebtoken::crypto::verify(
            sig["signature"].as_str().unwrap(),
            message.as_bytes(),
            &key,
            jsonwebtoken::Algorithm::ES256,
        )
        .unwrap();
        assert!(ok);
        assert_eq!(etag(&unsigned), etag(&stripped));
    }

    #[test]
    fn keep_skills_keeps_the_visible_ones_in_order() {
        let mut c = json!({"skills": [{"id": "a"}, {"id": "b"}, {"id": "c"}]});
        keep_skills(&mut c, &[0, 2]);
        assert_eq!(c["skills"], json!([{"id": "a"}, {"id": "c"}]));
        keep_skills(&mut c, &[]);
        assert_eq!(c["skills"], json!([]));
        let mut none = json!({"name": "x"});
        keep_skills(&mut none, &[0]);
        assert_eq!(none, json!({"name": "x"}));
    }

    #[test]
    fn cache_control() {
        let mut h = http::HeaderMap::new();
        assert_eq!(max_age(&h), DEFAULT_FRESH);
        h.insert(http::header::CACHE_CONTROL, "public, max-age=5".parse().unwrap());
        assert_eq!(max_age(&h), Duration::from_secs(5));
        h.insert(http::header::CACHE_CONTROL, "max-age=99999".parse().unwrap());
        assert_eq!(max_age(&h), MAX_FRESH);
        h.insert(http::header::CACHE_CONTROL, "no-cache".parse().unwrap());
        assert_eq!(max_age(&h), Duration::ZERO);
    }

    #[test]
    fn public_base_prefers_forwarded_headers() {
        use http::{HeaderMap, HeaderValue};
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("gw:8080"));
        assert_eq!(public_base(&h, &http::Uri::default()), "http://gw:8080");
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-host", HeaderValue::from_static("agents.example.com"));
        assert_eq!(public_base(&h, &http::Uri::default()), "https://agents.example.com");
        h.insert("x-forwarded-host", HeaderValue::from_static("evil/x"));
        assert_eq!(public_base(&h, &http::Uri::default()), "https://gw:8080");
    }
}
