//! A backend of one config version, ready for requests: its provider, URL, credential headers
//! resolved from the bundle, prices by model, and its pooled client.

use crate::config::{AiBackendConfig, AiModelConfig, Credentials, ProviderKind};
use crate::gateway::http_client::HttpClient;
use crate::gateway::layer::BuildError;
use http::{HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::Arc;

/// A backend with its headers resolved.
pub struct BackendRt {
    /// Name.
    pub name: Arc<str>,
    /// Provider family.
    pub provider: ProviderKind,
    /// Base URL.
    pub url: String,
    /// Headers to send (credentials included).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Models by provider name.
    pub models: HashMap<String, AiModelConfig>,
    /// Connect timeout.
    pub connect_timeout_ms: u64,
    /// The pooled client for that connect timeout (shared with every backend that has it).
    pub client: HttpClient,
    /// Health key ([`super::health::Health`]): `gateway/backend`.
    pub health_key: String,
}

impl BackendRt {
    /// Resolves backend `b` of gateway `gateway` against the credentials bundle.
    pub fn build(
        gateway: &str,
        b: &AiBackendConfig,
        credentials: &Credentials,
        client: HttpClient,
    ) -> Result<BackendRt, BuildError> {
        let owner = || format!("backend {}", b.name);
        let mut headers = Vec::new();
        for h in &b.headers {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| BuildError::invalid(owner(), format!("invalid header name {:?}", h.name)))?;
            let value = match (&h.value, &h.credential) {
                (_, Some(c)) => credentials
                    .get(c)
                    .ok_or_else(|| BuildError::MissingCredential { owner: owner(), id: c.id.clone() })?
                    .to_string(),
                (Some(v), None) => v.clone(),
                (None, None) => String::new(),
            };
            let value = HeaderValue::from_str(&format!("{}{}", h.prefix, value.trim())).map_err(|_| {
                BuildError::invalid(owner(), format!("header {} has a value that cannot be sent", h.name))
            })?;
            headers.push((name, value));
        }
        Ok(BackendRt {
            name: b.name.as_str().into(),
            provider: b.provider,
            url: b.url.clone(),
            headers,
            models: b.models.iter().map(|m| (m.name.clone(), m.clone())).collect(),
            connect_timeout_ms: b.connect_timeout_ms,
            client,
            health_key: format!("{gateway}/{}", b.name),
        })
    }
}
