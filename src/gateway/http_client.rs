//! The one HTTP client of a gateway process: upstream LLM providers, MCP servers, agents, agent
//! cards and JWKS all go through it. hyper-util's pooled client over rustls: TCP_NODELAY,
//! HTTP/1.1 keep-alive and HTTP/2 where the server offers it over TLS, the web PKI roots (or the
//! roots given, for the cluster CA), idle connections kept 90 s, and the gateway's egress rule
//! judged where it connects ([`crate::gateway::egress`]). Clients differ by connect timeout and
//! egress rule; [`HttpClients`] keeps one per pair for the process, so every config version (and
//! every gateway with the same rule) shares the pools.

use crate::gateway::egress::{EgressConnector, EgressResolver, Resolve, SystemResolver};
use crate::policy::egress::EgressPolicy;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The pooled client type (cheap to clone: clones share the pool).
pub type HttpClient = Client<hyper_rustls::HttpsConnector<EgressConnector>, Full<Bytes>>;

/// How long an idle pooled connection is kept.
pub const POOL_IDLE: Duration = Duration::from_secs(90);
/// Most idle connections kept per host.
pub const POOL_MAX_IDLE_PER_HOST: usize = 256;
/// TCP keep-alive probes on upstream connections.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Clients by connect timeout and egress rule, one pool each, for the whole process.
pub struct HttpClients {
    resolver: Arc<dyn Resolve>,
    pools: Mutex<HashMap<(u64, Option<EgressPolicy>), HttpClient>>,
}

impl Default for HttpClients {
    fn default() -> Self {
        HttpClients::with_resolver(Arc::new(SystemResolver))
    }
}

impl HttpClients {
    /// Clients resolving host names with `resolver`.
    pub fn with_resolver(resolver: Arc<dyn Resolve>) -> HttpClients {
        HttpClients { resolver, pools: Mutex::default() }
    }

    /// The resolver every client (and the run-time URL check) uses.
    pub fn resolver_arc(&self) -> Arc<dyn Resolve> {
        self.resolver.clone()
    }

    /// The client towards what a gateway's config names (upstreams, MCP servers, agents) with
    /// this connect timeout in milliseconds (0: none), connecting only where `egress` allows
    /// ([`crate::gateway::egress`]); resolve it once per backend and config version, not per
    /// request.
    pub fn for_gateway(&self, connect_timeout_ms: u64, egress: &EgressPolicy) -> HttpClient {
        self.pooled(connect_timeout_ms, Some(egress))
    }

    /// A client under no gateway's egress rule, for what the process itself fetches (JWKS of
    /// trusted issuers, the OTLP endpoint), with this connect timeout.
    pub fn unrestricted(&self, connect_timeout_ms: u64) -> HttpClient {
        self.pooled(connect_timeout_ms, None)
    }

    fn pooled(&self, connect_timeout_ms: u64, egress: Option<&EgressPolicy>) -> HttpClient {
        let mut map = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((connect_timeout_ms, egress.cloned()))
            .or_insert_with(|| {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_webpki_roots()
                    .https_or_http()
                    .enable_all_versions()
                    .wrap_connector(connector(self.resolver.clone(), egress.cloned(), connect_timeout_ms));
                pool(https)
            })
            .clone()
    }
}

/// A client that trusts only `roots` (the cluster CA), with a pool of its own, under no egress
/// rule.
pub fn with_roots(roots: rustls::RootCertStore) -> Result<HttpClient, rustls::Error> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(connector(Arc::new(SystemResolver), None, 0));
    Ok(pool(https))
}

fn connector(
    resolver: Arc<dyn Resolve>,
    egress: Option<EgressPolicy>,
    connect_timeout_ms: u64,
) -> EgressConnector {
    EgressConnector::new(resolver, egress, |http: &mut HttpConnector<EgressResolver>| {
        http.set_nodelay(true);
        http.enforce_http(false);
        if connect_timeout_ms > 0 {
            http.set_connect_timeout(Some(Duration::from_millis(connect_timeout_ms)));
        }
        http.set_keepalive(Some(TCP_KEEPALIVE));
    })
}

fn pool(https: hyper_rustls::HttpsConnector<EgressConnector>) -> HttpClient {
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

/// What a request to `url` that failed with `e` says: the egress rule's refusal with the URL
/// when that is why ([`crate::gateway::egress`]), else the error and its sources.
pub fn failure(e: &(dyn std::error::Error + 'static), url: &str) -> String {
    match crate::gateway::egress::refusal_in(e) {
        Some(r) => format!("url {url:?}: {r}"),
        None => error_chain(e),
    }
}
