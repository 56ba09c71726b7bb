//! The `Origin` check against DNS rebinding, shared by the fronts that browsers can reach with
//! credentials in hand (the MCP gateway, whose transport spec says servers "MUST validate the
//! `Origin` header on all incoming connections", and the agent gateway).
//!
//! The rule: a request without `Origin` (SDKs, agents, curl: anything that is not a browser
//! page) passes; a present `Origin` passes when it is the gateway's own origin (its host and
//! port equal the request's `Host`, the port defaulting by the origin's scheme, so
//! `https://gw.example.com` matches `Host: gw.example.com` and `gw.example.com:443`) or listed in
//! `allowedOrigins` (exactly, case-insensitively, or `*` for any); anything else, `null`
//! included, is refused (`403`, in the front's error format).

use http::Request;

/// Why an `Origin` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// Present, and neither the gateway's own nor allowed.
    #[error(
        "Forbidden: Origin {0} is not allowed: it is not this gateway's host, and allowedOrigins does not list it"
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
        (Some((h1, p1)), Some((h2, p2))) => p1 == p2 && h1.eq_ignore_ascii_case(h2),
        _ => false,
    }
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
            (Some("https://gw.example.com"), "gw.example.com", true),
            (Some("https://gw.example.com"), "gw.example.com:443", true),
            (Some("http://[::1]:8080"), "[::1]:8080", true),
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
        let e = check(&req(Some("http://evil.example.com"), "gw"), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Forbidden: Origin http://evil.example.com is not allowed: it is not this gateway's host, and allowedOrigins does not list it"
        );
    }
}
