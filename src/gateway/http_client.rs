//! The one HTTP client of a gateway process: upstream LLM providers, MCP servers, agents, agent
//! cards and JWKS all go through it. hyper-util's pooled client over rustls: TCP_NODELAY,
//! HTTP/1.1 keep-alive and HTTP/2 where the server offers it over TLS, the web PKI roots (or the
//! roots given, for the cluster CA), idle connections kept 90 s. Clients differ only by connect
//! timeout; [`HttpClients`] keeps one per timeout for the process, so every gateway and config
//! version shares the pools.

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The pooled client type (cheap to clone: clones share the pool).
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How long an idle pooled connection is kept.
pub const POOL_IDLE: Duration = Duration::from_secs(90);
/// Most idle connections kept per host.
pub const POOL_MAX_IDLE_PER_HOST: usize = 256;
/// TCP keep-alive probes on upstream connections.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Clients by connect timeout, one pool each, for the whole process.
#[derive(Default)]
pub struct HttpClients {
    by_timeout: Mutex<HashMap<u64, HttpClient>>,
}

impl HttpClients {
    /// The client with this connect timeout in milliseconds (0: none); resolve it once per
    /// backend and config version, not per request.
    pub fn get(&self, connect_timeout_ms: u64) -> HttpClient {
        let mut map = self.by_timeout.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(connect_timeout_ms).or_insert_with(|| build(connect_timeout_ms)).clone()
    }
}

/// A client that trusts only `roots` (the cluster CA), with a pool of its own.
pub fn with_roots(roots: rustls::RootCertStore) -> Result<HttpClient, rustls::Error> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(connector(0));
    Ok(pool(https))
}

fn build(connect_timeout_ms: u64) -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(connector(connect_timeout_ms));
    pool(https)
}

fn connector(connect_timeout_ms: u64) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    if connect_timeout_ms > 0 {
        http.set_connect_timeout(Some(Duration::from_millis(connect_timeout_ms)));
    }
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http
}

fn pool(https: hyper_rustls::HttpsConnector<HttpConnector>) -> HttpClient {
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .build(https)
}

/// An error and its sources, for messages (a source whose text is already in the message is
/// not repeated).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
