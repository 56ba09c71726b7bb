//! The `Origin` check against DNS rebinding, shared by the fronts that browsers can reach with
//! credentials in hand (the MCP gateway, whose transport spec says servers "MUST validate the
//! `Origin` header on all incoming connections", and the agent gateway).
//!
//! The rule: a request without `Origin` (SDKs, agents, curl: anything that is not a browser
//! page) passes; a present `Origin` passes when it is listed in `allowedOrigins` (exactly,
//! case-insensitively, or `*` for any), or when it is the gateway's own origin (its host and port
//! equal the request's `Host`, the port defaulting by the origin's scheme, so `http://[::1]:8080`
//! matches `Host: [::1]:8080`) **and** that host is one no outside DNS can point elsewhere: an IP
//! address, `localhost` (or `*.localhost`), a single-label name, or a cluster name (`*.svc`,
//! `*.cluster.local`). Anything else, `null` included, is refused (`403`, in the front's error
//! format).
//!
//! Why not every same-host origin: DNS rebinding is exactly a page whose origin *is* the request's
//! host — `http://evil.example:8080` re-resolved to `127.0.0.1`, so the browser sends
//! `Origin: http://evil.example:8080` with `Host: evil.example:8080`. Comparing the two alone
//! would let it through. A public name the gateway really serves under (an Ingress host) is
//! listed in `allowedOrigins` when a browser page on it must call the gateway.

use http::Request;

/// Why an `Origin` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// Present, and neither the gateway's own nor allowed.
    #[error(
        "Forbidden: Origin {0} is not allowed: allowedOrigins does not list it (a page on the gateway's own host counts only for IP addresses, localhost and cluster names, against DNS rebinding)"
    )]
    NotAllowed(String),
}

impl OriginError {
    /// Low-cardinality label for metrics and logs.
    pub fn category(&self) -> &'static str {
        "origin_not_allowed"
    }
}

/// Checks the `Origin` of `req` against `allowed` and the request's own host.
pub fn check<B>(req: &Request<B>, allowed: &[String]) -> Result<(), OriginError> {
    let Some(origin) = req.headers().get(http::header::ORIGIN) else { return Ok(()) };
    let refused =
        || OriginError::NotAllowed(String::from_utf8_lossy(origin.as_bytes()).chars().take(200).collect());
    let origin = origin.to_str().map_err(|_| refused())?.trim();
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    if listed(allowed, origin) || host.is_some_and(|h| same_host(origin, h)) {
        Ok(())
    } else {
        Err(refused())
    }
}

fn listed(allowed: &[String], origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    allowed.iter().any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as `host`
/// (`host[:port]`, a `Host` header), ports defaulting by the origin's scheme.
fn same_host(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    match (split_port(authority, default), split_port(host, default)) {
        (Some((h1, p1)), Some((h2, p2))) => p1 == p2 && h1.eq_ignore_ascii_case(h2) && rebind_proof(h2),
        _ => false,
    }
}

/// Whether `host` (no port) is a name no outside DNS server can make point at the gateway: an
/// IP literal, `localhost`, a single label, or a cluster Service name.
fn rebind_proof(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    if bracketed.is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
        || host.parse::<std::net::Ipv4Addr>().is_ok()
    {
        return true;
    }
    host == "localhost"
        || !host.contains('.')
        || [".localhost", ".svc", ".cluster.local"].iter().any(|s| host.ends_with(s))
}

/// `host[:port]` (IPv6 in brackets) → host and port, `default` when none is given.
fn split_port(authority: &str, default: u16) -> Option<(&str, u16)> {
    if authority.is_empty() || authority.contains(['/', '@']) {
        return None;
    }
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(origin: Option<&str>, host: &str) -> Request<()> {
        let mut b = Request::builder().uri("/mcp").header("host", host);
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn absent_same_host_allowed_and_foreign_origins() {
        let allowed = vec!["https://app.example.com".to_string()];
        let cases = [
            (None, "gw:8080", true),
            (Some("http://gw:8080"), "gw:8080", true),
            (Some("http://GW:8080"), "gw:8080", true),
            (Some("http://127.0.0.1:8080"), "127.0.0.1:8080", true),
            (Some("http://localhost:8080"), "localhost:8080", true),
            (Some("http://gw.team.svc:8080"), "gw.team.svc:8080", true),
            (Some("http://gw.team.svc.cluster.local"), "gw.team.svc.cluster.local:80", true),
            (Some("http://[::1]:8080"), "[::1]:8080", true),
            // DNS rebinding: the attacker's name re-resolved to the gateway; Origin equals Host.
            (Some("http://evil.example.com:8080"), "evil.example.com:8080", false),
            (Some("https://gw.example.com"), "gw.example.com", false),
            (Some("https://gw.example.com"), "gw.example.com:443", false),
            (Some("https://app.example.com"), "gw:8080", true),
            (Some("https://app.example.com/"), "gw:8080", true),
            (Some("http://gw:9090"), "gw:8080", false),
            (Some("https://gw:8080"), "gw:8080", true),
            (Some("http://gw.example.com"), "gw.example.com:443", false),
            (Some("http://evil.example.com"), "gw:8080", false),
            (Some("null"), "gw:8080", false),
            (Some("http://evil.example.com@gw:8080"), "gw:8080", false),
        ];
        for (origin, host, ok) in cases {
            assert_eq!(check(&req(origin, host), &allowed).is_ok(), ok, "{origin:?} at {host}");
        }
        assert!(check(&req(Some("http://evil.example.com"), "gw"), &["*".to_string()]).is_ok());
        let public = ["https://gw.example.com".to_string()];
        assert!(check(&req(Some("https://gw.example.com"), "gw.example.com"), &public).is_ok(), "listed");
        let e = check(&req(Some("http://evil.example.com"), "gw"), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Forbidden: Origin http://evil.example.com is not allowed: allowedOrigins does not list it (a page on the gateway's own host counts only for IP addresses, localhost and cluster names, against DNS rebinding)"
        );
    }
}
