//! Who is calling: a virtual key, a JWT from a trusted issuer, or a Kubernetes ServiceAccount
//! token — mapped to a subject by [`PolicyIndex::identify`].
//!
//! The credential comes from `Authorization: Bearer <token>` or, for Anthropic clients,
//! `x-api-key: <token>`. A token that parses as a JWT (header, claims, signature) is verified as
//! one; anything else is a virtual key. JWKS are fetched on first use, cached per URI across
//! config reloads, and fetched again when a token names a key id the cache does not know (at most
//! once per [`REFRESH_INTERVAL`] per URI, so forged key ids cannot make the gateway hammer the
//! issuer).
//!
//! ServiceAccount tokens are JWTs whose issuer is the Kubernetes API server. In a pod the gateway
//! discovers that issuer and its JWKS from `https://kubernetes.default.svc` (from
//! `KUBERNETES_SERVICE_HOST`/`_PORT`), authenticating with the pod's own token and trusting the
//! cluster CA (`/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}`).
//! `CAIRN_SA_ISSUER`, `CAIRN_SA_JWKS_URI`, `CAIRN_SA_TOKEN_FILE` and `CAIRN_SA_CA_FILE` override
//! these for gateways running outside the cluster. The environment is read once, at start-up
//! ([`ServiceAccountEnv::from_vars`], called by `Env::from_process` of the core).

use crate::config::{AuthConfig, JwtIssuerConfig};
use crate::gateway::http_client::{self, HttpClient, error_chain};
use crate::policy::{ANONYMOUS, Credential, PolicyIndex};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shortest time between two fetches of one JWKS.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Why a caller is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential, and anonymous callers are not allowed.
    #[error("missing credentials: send an API key as 'Authorization: Bearer <key>'")]
    Missing,
    /// A virtual key no Agent holds.
    #[error("invalid API key")]
    UnknownKey,
    /// A JWT that does not verify, or whose subject is unknown.
    #[error("invalid token: {0}")]
    InvalidToken(String),
}

/// Where a ServiceAccount token's keys come from.
#[derive(Clone)]
struct SaSource {
    issuer: String,
    jwks: Arc<Jwks>,
    audiences: Vec<String>,
}

/// A trusted issuer.
struct Issuer {
    cfg: JwtIssuerConfig,
    jwks: Arc<Jwks>,
}

/// The identity part of one config.
pub struct Identity {
    allow_anonymous: bool,
    salt: String,
    issuers: Vec<Issuer>,
    sa: Option<SaSource>,
}

impl Identity {
    /// Builds the verifier for a config, reusing cached JWKS from `cache`; `sa_env` is where
    /// ServiceAccount tokens are checked.
    pub fn new(auth: &AuthConfig, cache: &JwksCache, sa_env: &ServiceAccountEnv) -> Identity {
        let issuers = auth
            .jwt
            .iter()
            .map(|cfg| {
                let source = match &cfg.jwks_uri {
                    Some(u) => Source::Uri(u.clone()),
                    None => Source::Discovery(cfg.issuer.clone()),
                };
                Issuer { cfg: cfg.clone(), jwks: cache.get(source, None) }
            })
            .collect();
        let sa = auth.service_account_tokens.as_ref().map(|s| {
            let env = sa_env.clone();
            SaSource {
                issuer: env.issuer.clone().unwrap_or_else(|| env.api_server.clone()),
                jwks: cache.get(
                    match &env.jwks_uri {
                        Some(u) => Source::Uri(u.clone()),
                        None => Source::Uri(format!("{}/openid/v1/jwks", env.api_server)),
                    },
                    Some(env),
                ),
                audiences: s.audiences.clone(),
            }
        });
        Identity { allow_anonymous: auth.allow_anonymous, salt: auth.virtual_key_salt.clone(), issuers, sa }
    }

    /// The subject making a request with these headers.
    pub async fn authenticate(&self, headers: &HeaderMap, policy: &PolicyIndex) -> Result<String, AuthError> {
        let Some(token) = credential(headers) else {
            return if self.allow_anonymous { Ok(ANONYMOUS.to_string()) } else { Err(AuthError::Missing) };
        };
        if let Some(jwt) = looks_like_jwt(token) {
            return self.verify_jwt(token, jwt, policy).await;
        }
        policy
            .identify(Credential::VirtualKey { key: token, salt_hex: &self.salt })
            .map(str::to_string)
            .ok_or(AuthError::UnknownKey)
    }

    async fn verify_jwt(
        &self,
        token: &str,
        header: jsonwebtoken::Header,
        policy: &PolicyIndex,
    ) -> Result<String, AuthError> {
        let claims = unverified_claims(token)?;
        let iss = claims.get("iss").and_then(|v| v.as_str()).unwrap_or_default();
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256 | Algorithm::RS384 | Algorithm::ES384) {
            return Err(AuthError::InvalidToken(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let kid = header.kid.clone().unwrap_or_default();
        if let Some(issuer) = self.issuers.iter().find(|i| i.cfg.issuer == iss) {
            let claims = verify(token, header.alg, &kid, &issuer.jwks, iss, &issuer.cfg.audiences).await?;
            let sub = claims
                .get(&issuer.cfg.subject_claim)
                .and_then(|v| v.as_str())
                .ok_or_else(|| AuthError::InvalidToken(format!("no '{}' claim", issuer.cfg.subject_claim)))?;
            return policy
                .identify(Credential::Jwt { issuer: iss, subject: sub })
                .map(str::to_string)
                .ok_or_else(|| {
                    AuthError::InvalidToken(format!("no Agent has subject '{sub}' of issuer '{iss}'"))
                });
        }
        if let Some(sa) = &self.sa
            && sa.issuer == iss
        {
            let claims = verify(token, header.alg, &kid, &sa.jwks, iss, &sa.audiences).await?;
            let sub = claims.get("sub").and_then(|v| v.as_str()).unwrap_or_default();
            let cred = Credential::from_service_account_username(sub)
                .ok_or_else(|| AuthError::InvalidToken(format!("'{sub}' is not a ServiceAccount")))?;
            return policy
                .identify(cred)
                .map(str::to_string)
                .ok_or_else(|| AuthError::InvalidToken(format!("no Agent uses ServiceAccount '{sub}'")));
        }
        Err(AuthError::InvalidToken(format!("issuer '{iss}' is not trusted")))
    }
}

async fn verify(
    token: &str,
    alg: Algorithm,
    kid: &str,
    jwks: &Jwks,
    iss: &str,
    audiences: &[String],
) -> Result<serde_json::Value, AuthError> {
    let key = jwks.key(kid).await?;
    let mut v = Validation::new(alg);
    v.set_issuer(&[iss]);
    v.set_audience(audiences);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.leeway = 30;
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| AuthError::InvalidToken(e.to_string()))
}

/// The token a request presents.
pub fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .or_else(|| v.strip_prefix("BEARER "))
            .unwrap_or(v)
            .trim();
        if !token.is_empty() {
            return Some(token);
        }
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim).filter(|t| !t.is_empty())
}

/// The claims of a JWT before verification (only to find its issuer).
fn unverified_claims(token: &str) -> Result<serde_json::Value, AuthError> {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| AuthError::InvalidToken(format!("unreadable claims: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| AuthError::InvalidToken(format!("unreadable claims: {e}")))
}

/// The header of `token` if it is shaped like a JWT.
fn looks_like_jwt(token: &str) -> Option<jsonwebtoken::Header> {
    if token.matches('.').count() != 2 || !token.starts_with("eyJ") {
        return None;
    }
    jsonwebtoken::decode_header(token).ok()
}

/// Where a JWKS is found.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Source {
    /// This URI.
    Uri(String),
    /// OIDC discovery from this issuer.
    Discovery(String),
}

/// How to reach the Kubernetes API server from this process, to verify ServiceAccount tokens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceAccountEnv {
    api_server: String,
    issuer: Option<String>,
    jwks_uri: Option<String>,
    token_file: String,
    ca_file: String,
}

impl ServiceAccountEnv {
    /// From environment variables as `var` reads them (`KUBERNETES_SERVICE_HOST`/`_PORT`,
    /// `CAIRN_SA_ISSUER`, `CAIRN_SA_JWKS_URI`, `CAIRN_SA_TOKEN_FILE`, `CAIRN_SA_CA_FILE`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
        let var = |k: &str| var(k).filter(|v| !v.is_empty());
        let api_server = match (var("KUBERNETES_SERVICE_HOST"), var("KUBERNETES_SERVICE_PORT")) {
            (Some(h), Some(p)) if h.contains(':') => format!("https://[{h}]:{p}"),
            (Some(h), Some(p)) => format!("https://{h}:{p}"),
            _ => "https://kubernetes.default.svc".to_string(),
        };
        ServiceAccountEnv {
            api_server,
            issuer: var("CAIRN_SA_ISSUER"),
            jwks_uri: var("CAIRN_SA_JWKS_URI"),
            token_file: var("CAIRN_SA_TOKEN_FILE").unwrap_or_else(|| format!("{SA_DIR}/token")),
            ca_file: var("CAIRN_SA_CA_FILE").unwrap_or_else(|| format!("{SA_DIR}/ca.crt")),
        }
    }
}

type JwksKey = (Source, Option<ServiceAccountEnv>);

/// JWKS caches by source, shared by every config version of a process.
pub struct JwksCache {
    by_source: Mutex<HashMap<JwksKey, Arc<Jwks>>>,
    /// The process's client (issuers on the web PKI).
    client: HttpClient,
}

impl JwksCache {
    /// An empty cache fetching with `client`.
    pub fn new(client: HttpClient) -> Self {
        JwksCache { by_source: Mutex::default(), client }
    }

    fn get(&self, source: Source, sa: Option<ServiceAccountEnv>) -> Arc<Jwks> {
        let mut map = self.by_source.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((source.clone(), sa.clone()))
            .or_insert_with(|| Arc::new(Jwks::new(source, sa, self.client.clone())))
            .clone()
    }
}

/// Why a JWKS could not be had.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The cluster CA or the ServiceAccount token file cannot be used.
    #[error("cluster CA {file}: {detail}")]
    ClusterCa {
        /// The CA file.
        file: String,
        /// What is wrong.
        detail: String,
    },
    /// A request failed (network, status, timeout).
    #[error("{uri}: {detail}")]
    Fetch {
        /// What was fetched.
        uri: String,
        /// What went wrong.
        detail: String,
    },
    /// The discovery document names no `jwks_uri`.
    #[error("discovery document has no jwks_uri")]
    NoJwksUri,
}

/// One JWKS: keys by id, refreshed on an unknown id.
struct Jwks {
    source: Source,
    sa: Option<ServiceAccountEnv>,
    client: HttpClient,
    keys: ArcSwap<HashMap<String, DecodingKey>>,
    fetches: tokio::sync::Mutex<Fetches>,
}

/// When the keys were fetched.
#[derive(Default)]
struct Fetches {
    /// Keys were loaded once.
    loaded: bool,
    /// Last attempt (any outcome).
    last_attempt: Option<Instant>,
    /// Last refresh after the first load (the one [`REFRESH_INTERVAL`] limits).
    last_refresh: Option<Instant>,
}

/// Shortest time between two attempts while the keys were never loaded (issuer unreachable).
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

impl Jwks {
    fn new(source: Source, sa: Option<ServiceAccountEnv>, client: HttpClient) -> Self {
        Jwks { source, sa, client, keys: ArcSwap::from_pointee(HashMap::new()), fetches: Default::default() }
    }

    fn lookup(&self, kid: &str) -> Option<DecodingKey> {
        let keys = self.keys.load();
        match keys.get(kid) {
            Some(k) => Some(k.clone()),
            // A token without `kid` against a set with exactly one key.
            None if kid.is_empty() && keys.len() == 1 => keys.values().next().cloned(),
            None => None,
        }
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        if let Some(k) = self.lookup(kid) {
            return Ok(k);
        }
        {
            let mut f = self.fetches.lock().await;
            // Someone else may have refreshed while we waited.
            if let Some(k) = self.lookup(kid) {
                return Ok(k);
            }
            let allowed = if f.loaded {
                f.last_refresh.is_none_or(|t| t.elapsed() >= REFRESH_INTERVAL)
            } else {
                f.last_attempt.is_none_or(|t| t.elapsed() >= RETRY_INTERVAL)
            };
            if allowed {
                let now = Instant::now();
                f.last_attempt = Some(now);
                if f.loaded {
                    f.last_refresh = Some(now);
                }
                match self.fetch().await {
                    Ok(keys) => {
                        f.loaded = true;
                        self.keys.store(Arc::new(keys));
                    }
                    Err(e) => {
                        tracing::warn!(source = ?self.source, error = %e, "fetching JWKS failed");
                        return Err(AuthError::InvalidToken(format!("signing keys unavailable: {e}")));
                    }
                }
            }
        }
        self.lookup(kid).ok_or_else(|| AuthError::InvalidToken(format!("unknown signing key id '{kid}'")))
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, JwksError> {
        let (client, bearer) = match &self.sa {
            Some(env) => {
                let client = ca_client(&env.ca_file)?;
                let token = std::fs::read_to_string(&env.token_file).ok().map(|t| t.trim().to_string());
                (client, token)
            }
            None => (self.client.clone(), None),
        };
        let uri = match &self.source {
            Source::Uri(u) => u.clone(),
            Source::Discovery(issuer) => {
                let doc = get_json(
                    &client,
                    &format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')),
                    bearer.as_deref(),
                )
                .await?;
                doc.get("jwks_uri").and_then(|v| v.as_str()).ok_or(JwksError::NoJwksUri)?.to_string()
            }
        };
        let doc = get_json(&client, &uri, bearer.as_deref()).await?;
        let set: JwkSet = serde_json::from_value(doc)
            .map_err(|e| JwksError::Fetch { uri: uri.clone(), detail: format!("not a JWK set: {e}") })?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let Ok(k) = DecodingKey::from_jwk(jwk) {
                keys.insert(jwk.common.key_id.clone().unwrap_or_default(), k);
            }
        }
        Ok(keys)
    }
}

/// A client trusting only the cluster CA in `ca_file` (read on every fetch: it may be rotated).
fn ca_client(ca_file: &str) -> Result<HttpClient, JwksError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let bad = |detail: String| JwksError::ClusterCa { file: ca_file.to_string(), detail };
    let pem = std::fs::read(ca_file).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
    }
    http_client::with_roots(roots).map_err(|e| bad(e.to_string()))
}

async fn get_json(
    client: &HttpClient,
    uri: &str,
    bearer: Option<&str>,
) -> Result<serde_json::Value, JwksError> {
    let fail = |detail: String| JwksError::Fetch { uri: uri.to_string(), detail };
    let mut req =
        http::Request::get(uri).header(http::header::ACCEPT, "application/json, application/jwk-set+json");
    if let Some(t) = bearer {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::new())).map_err(|e| fail(e.to_string()))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(|e| fail(error_chain(&e)))?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| fail(e.to_string()))?
        .to_bytes();
    if !status.is_success() {
        return Err(fail(format!("HTTP {status}")));
    }
    serde_json::from_slice(&body).map_err(|e| fail(e.to_string()))
}
