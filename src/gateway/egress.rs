//! The egress rule ([`crate::policy::egress`]) where a gateway meets the network: at connect time
//! in the one HTTP client, and for URLs that arrive at run time.
//!
//! **At connect time.** The connector of every gateway's pool ([`EgressConnector`]) judges the
//! address it is about to connect to: an address literal in the URL before connecting, and for a
//! host name every address the resolver answered, of which only the allowed ones are connected
//! to. What is judged is what the socket connects to, from the same answer, so a name whose DNS
//! answer changes between a check and the connect (DNS rebinding) gains nothing. When no address
//! is allowed, the connect fails with [`EgressRefused`], which the layers find in the error's
//! chain ([`refusal_in`]) and report with the object and the URL.
//!
//! **At run time.** A URL a caller or an upstream hands the gateway to pass on (an A2A
//! push-notification webhook) is judged with [`check_run_time_url`] before it goes anywhere:
//! its host as the WHATWG URL parser reads it (every IPv4 spelling a resolver accepts) and as the
//! HTTP parser reads it (so parsers that disagree cannot smuggle a host past the check), and for
//! a name every address it resolves to.
//!
//! The resolver is the process's ([`SystemResolver`], `getaddrinfo`) unless the core was built
//! with another one ([`Resolve`]), as tests do to make a name resolve to the metadata address.

use crate::policy::egress::{EgressPolicy, Refusal, Source, embedded_v4};
use crate::policy::glob_match;
use futures_util::future::BoxFuture;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioIo;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// Longest time spent resolving the host of a URL that arrived at run time.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Turns a host name into addresses.
pub trait Resolve: Send + Sync + 'static {
    /// Every address `host` resolves to.
    fn resolve(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>>;
}

/// The system's resolver (`getaddrinfo`, on tokio's blocking pool).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let host = host.to_string();
        Box::pin(
            async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).collect()) },
        )
    }
}

/// A connection the egress rule refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRefused {
    /// The host as the URL names it.
    pub host: String,
    /// The address refused and why.
    pub refusal: Refusal,
}

impl fmt::Display for EgressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the gateway's egress rule refuses {}", judged(&self.host, &self.refusal))
    }
}

impl std::error::Error for EgressRefused {}

/// `169.254.169.254, a cloud metadata address: <rule>`, or for a name
/// `host meta.example, which resolves to 169.254.169.254, a cloud metadata address: <rule>`.
fn judged(host: &str, r: &Refusal) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let shown = match r.ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or_else(|| v6.to_string(), |v4| format!("{v6} (that is {v4})")),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let what = format!("{shown}, {}: {}", r.class.describe(), r.rule());
    if bare.parse::<IpAddr>().ok() == Some(r.ip) {
        what
    } else {
        format!("host {bare}, which resolves to {what}")
    }
}

/// The egress refusal in an error's chain, if the error is one.
pub fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a EgressRefused> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(r) = c.downcast_ref::<EgressRefused>() {
            return Some(r);
        }
        cur = c.source();
    }
    None
}

/// An error of a connector.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The resolver of a pool's connector: the addresses the rule allows, or the first refusal.
#[derive(Clone)]
pub struct EgressResolver {
    resolver: Arc<dyn Resolve>,
    policy: Option<Arc<EgressPolicy>>,
}

impl tower_service::Service<Name> for EgressResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let (resolver, policy) = (self.resolver.clone(), self.policy.clone());
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs = resolver.resolve(&host).await?;
            let Some(policy) = policy else {
                return Ok(addrs
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter());
            };
            let mut refused = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|&ip| match policy.check(ip, Source::Configured) {
                    Ok(()) => true,
                    Err(r) => {
                        refused.get_or_insert(r);
                        false
                    }
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(refusal)) => Err(Box::new(EgressRefused { host, refusal }) as BoxError),
                (true, None) => Err(format!("{host} resolves to no address").into()),
                (false, _) => Ok(allowed.into_iter()),
            }
        })
    }
}

/// The TCP connector of a pool: hyper's, with its resolver judged by the egress rule, and
/// address literals judged before connecting. Without a rule it connects anywhere (the JWKS and
/// Kubernetes API clients, whose URLs are not a gateway's).
#[derive(Clone)]
pub struct EgressConnector {
    http: HttpConnector<EgressResolver>,
    policy: Option<Arc<EgressPolicy>>,
}

impl EgressConnector {
    /// A connector resolving with `resolver`, judging with `policy`, configured by `tune`.
    pub fn new(
        resolver: Arc<dyn Resolve>,
        policy: Option<EgressPolicy>,
        tune: impl FnOnce(&mut HttpConnector<EgressResolver>),
    ) -> EgressConnector {
        let policy = policy.map(Arc::new);
        let mut http = HttpConnector::new_with_resolver(EgressResolver { resolver, policy: policy.clone() });
        tune(&mut http);
        EgressConnector { http, policy }
    }
}

impl tower_service::Service<http::Uri> for EgressConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        if let (Some(policy), Some(host)) = (&self.policy, uri.host()) {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>()
                && let Err(refusal) = policy.check(ip, Source::Configured)
            {
                let e = EgressRefused { host: host.to_string(), refusal };
                return Box::pin(async move { Err(Box::new(e) as BoxError) });
            }
        }
        let connecting = self.http.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

/// The egress rule of a gateway's config; an `allowedCIDRs` entry that is not a range refuses
/// the config (the compile step never writes one): a [`crate::gateway::layer::BuildError`].
pub fn policy_of(config: &crate::config::GatewayConfig) -> Result<EgressPolicy, EgressConfigError> {
    EgressPolicy::from_config(&config.egress).map_err(EgressConfigError)
}

/// Why a config's egress rule cannot be used (the policy's message).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EgressConfigError(pub String);

/// Why a URL that arrived at run time is refused. The messages start with the URL, so a layer
/// can say what the URL was for before it (`push notification URL "…" …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    /// Not a URL.
    #[error("URL {0:?} is not a URL")]
    NotAUrl(String),
    /// Not http(s).
    #[error("URL {0:?} must be http or https")]
    Scheme(String),
    /// No host.
    #[error("URL {0:?} has no host")]
    NoHost(String),
    /// A host outside `allowedHosts`.
    #[error("URL {url:?} names host {host:?}, which is not among the gateway's spec.egress.allowedHosts")]
    HostNotAllowed {
        /// The URL.
        url: String,
        /// Its host.
        host: String,
    },
    /// The name did not resolve in time.
    #[error("URL {url:?}: host {host:?} did not resolve in time")]
    ResolveTimeout {
        /// The URL.
        url: String,
        /// Its host.
        host: String,
    },
    /// The name does not resolve.
    #[error("URL {url:?}: host {host:?} does not resolve: {reason}")]
    Unresolvable {
        /// The URL.
        url: String,
        /// Its host.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// An address the rule refuses.
    #[error("URL {url:?} reaches {}", judged(host, refusal))]
    Address {
        /// The URL.
        url: String,
        /// Its host, as written.
        host: String,
        /// The address refused and why.
        refusal: Refusal,
    },
}

impl UrlRefused {
    /// Low-cardinality name for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            UrlRefused::NotAUrl(_) | UrlRefused::Scheme(_) | UrlRefused::NoHost(_) => "invalid_url",
            UrlRefused::HostNotAllowed { .. } => "host_not_allowed",
            UrlRefused::ResolveTimeout { .. } | UrlRefused::Unresolvable { .. } => "unresolvable",
            UrlRefused::Address { .. } => "address_refused",
        }
    }
}

/// Judges a URL that arrived at run time by `policy` (as [`Source::RunTime`]) and `allowed_hosts`
/// (globs; empty: any host): every reading of its host, and for a name every address it
/// resolves to with `resolver`, must be allowed.
pub async fn check_run_time_url(
    url: &str,
    policy: &EgressPolicy,
    allowed_hosts: &[String],
    resolver: &dyn Resolve,
) -> Result<(), UrlRefused> {
    let whatwg = url::Url::parse(url).map_err(|_| UrlRefused::NotAUrl(url.to_string()))?;
    if !matches!(whatwg.scheme(), "http" | "https") {
        return Err(UrlRefused::Scheme(url.to_string()));
    }
    let uri: http::Uri = url.parse().map_err(|_| UrlRefused::NotAUrl(url.to_string()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(UrlRefused::Scheme(url.to_string()));
    }
    let no_host = || UrlRefused::NoHost(url.to_string());
    let mut hosts = vec![whatwg.host_str().filter(|h| !h.is_empty()).ok_or_else(no_host)?.to_string()];
    let other = uri.host().filter(|h| !h.is_empty()).ok_or_else(no_host)?;
    // The HTTP parser's host, spelled as the WHATWG parser spells hosts: it differs only where
    // the parsers read different hosts out of the URL.
    let other = url::Url::parse(&format!("http://{other}/"))
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| other.to_string());
    if other != hosts[0] {
        hosts.push(other);
    }
    for host in hosts {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if !allowed_hosts.is_empty() && !allowed_hosts.iter().any(|g| glob_match(g, bare)) {
            return Err(UrlRefused::HostNotAllowed { url: url.to_string(), host: bare.to_string() });
        }
        let addrs = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::time::timeout(RESOLVE_TIMEOUT, resolver.resolve(bare))
                .await
                .map_err(|_| UrlRefused::ResolveTimeout { url: url.to_string(), host: bare.to_string() })?
                .map_err(|e| UrlRefused::Unresolvable {
                    url: url.to_string(),
                    host: bare.to_string(),
                    reason: e.to_string(),
                })?,
        };
        if addrs.is_empty() {
            return Err(UrlRefused::Unresolvable {
                url: url.to_string(),
                host: bare.to_string(),
                reason: "no address".into(),
            });
        }
        for ip in addrs {
            policy.check(ip, Source::RunTime).map_err(|refusal| UrlRefused::Address {
                url: url.to_string(),
                host: host.clone(),
                refusal,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
