//! The egress rule for push-notification webhook URLs (against SSRF: a caller must not make an
//! agent POST to the cluster's internal services or a cloud metadata endpoint).
//!
//! A URL is accepted when it is `http` or `https` with a host; when `allowedWebhookHosts` is not
//! empty, the host matches one of its globs; and every address the host resolves to (resolved by
//! the gateway before it forwards the request) is public. Always refused: unspecified, link-local
//! (`169.254.0.0/16`, `fe80::/10`, which includes the cloud metadata address), multicast,
//! broadcast and documentation ranges. Refused unless `allowPrivateNetworks`: loopback, private
//! ranges (`10/8`, `172.16/12`, `192.168/16`, `fc00::/7`), shared address space (`100.64/10`).
//! IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
//!
//! Limitation: the agent resolves the host again when it delivers, so a host whose DNS answer
//! changes between the two lookups (DNS rebinding) is not caught here; agents should check too,
//! as A2A asks them to.

use crate::config::AgentLayerConfig;
use crate::policy::glob_match;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Longest time spent resolving a webhook host.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why an address is refused, if it is.
pub fn refused_address(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4, allow_private),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => refused_v4(v4, allow_private),
            None => refused_v6(v6, allow_private),
        },
    }
}

fn refused_v4(ip: Ipv4Addr, allow_private: bool) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_unspecified() || o[0] == 0 {
        return Some("an unspecified address");
    }
    if ip.is_link_local() {
        return Some("a link-local address");
    }
    if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        return Some("a multicast, broadcast or reserved address");
    }
    if ip.is_documentation() {
        return Some("a documentation address");
    }
    if allow_private {
        return None;
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    if ip.is_private()
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
    {
        return Some("a private-network address");
    }
    None
}

fn refused_v6(ip: Ipv6Addr, allow_private: bool) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if (s[0] & 0xffc0) == 0xfe80 {
        return Some("a link-local address");
    }
    if ip.is_multicast() {
        return Some("a multicast address");
    }
    if s[0] == 0x2001 && s[1] == 0x0db8 {
        return Some("a documentation address");
    }
    if allow_private {
        return None;
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0 {
        return Some("a private-network address");
    }
    None
}

/// Why a push-notification webhook URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRefused {
    /// Not a URL.
    #[error("push notification URL {0:?} is not a URL")]
    NotAUrl(String),
    /// Not http(s).
    #[error("push notification URL {0:?} must be http or https")]
    Scheme(String),
    /// No host.
    #[error("push notification URL {0:?} has no host")]
    NoHost(String),
    /// A host outside `allowedWebhookHosts`.
    #[error("push notification host '{0}' is not among the gateway's allowed webhook hosts")]
    HostNotAllowed(String),
    /// The name did not resolve in time.
    #[error("push notification host '{0}' did not resolve in time")]
    ResolveTimeout(String),
    /// The name does not resolve.
    #[error("push notification host '{host}' does not resolve: {reason}")]
    Unresolvable {
        /// The host.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// The name resolves to nothing.
    #[error("push notification host '{0}' resolves to no address")]
    NoAddress(String),
    /// An address the egress rule refuses.
    #[error("push notification URL {url:?} points to {why} ({ip}), which this gateway does not allow")]
    Address {
        /// The URL.
        url: String,
        /// What kind of address.
        why: &'static str,
        /// The address.
        ip: IpAddr,
    },
}

/// Checks one webhook URL; the error says why it is refused.
pub async fn check_webhook(url: &str, cfg: &AgentLayerConfig) -> Result<(), WebhookRefused> {
    let uri: http::Uri = url.parse().map_err(|_| WebhookRefused::NotAUrl(url.to_string()))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    if scheme != "http" && scheme != "https" {
        return Err(WebhookRefused::Scheme(url.to_string()));
    }
    let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| WebhookRefused::NoHost(url.to_string()))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    if !cfg.allowed_webhook_hosts.is_empty()
        && !cfg.allowed_webhook_hosts.iter().any(|g| glob_match(g, &bare))
    {
        return Err(WebhookRefused::HostNotAllowed(bare));
    }
    let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
    let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => {
            let resolved =
                tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare.as_str(), port)))
                    .await
                    .map_err(|_| WebhookRefused::ResolveTimeout(bare.clone()))?
                    .map_err(|e| WebhookRefused::Unresolvable {
                        host: bare.clone(),
                        reason: e.to_string(),
                    })?;
            resolved.map(|a| a.ip()).collect()
        }
    };
    if addrs.is_empty() {
        return Err(WebhookRefused::NoAddress(bare));
    }
    for ip in addrs {
        if let Some(why) = refused_address(ip, cfg.allow_private_networks) {
            return Err(WebhookRefused::Address { url: url.to_string(), why, ip });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(allow_private: bool, hosts: &[&str]) -> AgentLayerConfig {
        AgentLayerConfig {
            agents: vec![],
            allow_private_networks: allow_private,
            allowed_webhook_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            task_ownership_ttl_ms: 60_000,
            identity_token_ttl_ms: 60_000,
            identity_token_header: "x-cairn-identity".into(),
            allowed_origins: vec![],
        }
    }

    #[test]
    fn addresses() {
        let r = |s: &str, p| refused_address(s.parse().unwrap(), p);
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(r(a, false).is_some(), "{a} must be refused");
            assert!(r(a, true).is_none(), "{a} is allowed with allowPrivateNetworks");
        }
        for a in [
            "169.254.169.254",
            "0.0.0.0",
            "fe80::1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::ffff:169.254.169.254",
        ] {
            assert!(r(a, true).is_some(), "{a} is always refused");
        }
        for a in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(r(a, false).is_none(), "{a} is public");
        }
    }

    #[tokio::test]
    async fn urls() {
        let c = cfg(false, &[]);
        assert!(check_webhook("https://8.8.8.8/hook", &c).await.is_ok());
        for bad in [
            "http://127.0.0.1:9/x",
            "http://[::1]/x",
            "http://169.254.169.254/latest",
            "ftp://8.8.8.8/",
            "not a url",
            "http://localhost:8080/",
        ] {
            assert!(check_webhook(bad, &c).await.is_err(), "{bad}");
        }
        let listed = cfg(false, &["*.example.com"]);
        let e = check_webhook("https://8.8.8.8/hook", &listed).await.unwrap_err();
        assert!(e.to_string().contains("allowed webhook hosts"), "{e}");
        let private = cfg(true, &[]);
        assert!(check_webhook("http://localhost:8080/hook", &private).await.is_ok());
        assert!(check_webhook("http://169.254.169.254/", &private).await.is_err());
    }
}
