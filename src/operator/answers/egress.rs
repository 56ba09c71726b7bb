//! The egress rule ([`crate::policy::egress`]) for what the operator fetches on the gateways'
//! behalf: the host of a URL is resolved and every address it resolves to must be allowed, for
//! a URL from the configuration (an MCPServer's, an Agent's card) or one that arrives at run
//! time (an interface URL inside an agent card).
//!
//! The check resolves the name once and the HTTP client resolves it again to connect, so a name
//! whose answer changes in between (DNS rebinding) is not caught here; the gateways' own clients,
//! which the operator uses, will close that gap when they check at connect time (issue 16).

use crate::policy::egress::{EgressPolicy, Source, literal_address};
use crate::policy::glob_match;
use std::net::IpAddr;
use std::time::Duration;

/// Longest wait for a name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether the rule lets the operator fetch `url` (from `source`); the error names the URL, the
/// address and the rule. `allowed_hosts` (`spec.egress.allowedHosts`) limits run-time URLs.
pub async fn check(
    url: &str,
    policy: &EgressPolicy,
    allowed_hosts: &[String],
    source: Source,
) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a valid URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} is not an http or https URL"));
    }
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("{url:?} has no host"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    if source == Source::RunTime
        && !allowed_hosts.is_empty()
        && !allowed_hosts.iter().any(|g| glob_match(g, &bare))
    {
        return Err(format!(
            "{url} names host {bare:?}, which is not among the gateway's spec.egress.allowedHosts"
        ));
    }
    let addrs: Vec<IpAddr> = match literal_address(url).map_err(|e| format!("{url:?} {e}"))? {
        Some(ip) => vec![ip],
        None => {
            let port = parsed.port_or_known_default().unwrap_or(80);
            tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare.as_str(), port)))
                .await
                .map_err(|_| {
                    format!("{url}: host {bare:?} did not resolve within {}s", RESOLVE_TIMEOUT.as_secs())
                })?
                .map_err(|e| format!("{url}: host {bare:?} does not resolve: {e}"))?
                .map(|a| a.ip())
                .collect()
        }
    };
    for ip in addrs {
        policy.check(ip, source).map_err(|r| format!("{url} reaches {r}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> EgressPolicy {
        EgressPolicy::default()
    }

    #[tokio::test]
    async fn configured_urls_may_reach_private_networks_but_never_metadata_or_loopback_in_a_cluster() {
        let p = cluster();
        assert_eq!(check("http://10.1.2.3:8000/mcp", &p, &[], Source::Configured).await, Ok(()));
        let e = check("http://169.254.169.254/latest", &p, &[], Source::Configured).await.unwrap_err();
        assert!(
            e.starts_with(
                "http://169.254.169.254/latest reaches 169.254.169.254 is a cloud metadata address"
            ),
            "{e}"
        );
        let e = check("http://localhost:9/x", &p, &[], Source::Configured).await.unwrap_err();
        assert!(
            e.contains(
                "127.0.0.1 is a loopback address: loopback and unspecified addresses are refused in a cluster"
            ),
            "{e}"
        );
        let listed = EgressPolicy { allowed: vec!["127.0.0.1/32".parse().unwrap()], ..cluster() };
        assert_eq!(check("http://127.0.0.1:9/x", &listed, &[], Source::Configured).await, Ok(()));
    }

    #[tokio::test]
    async fn run_time_urls_may_not_reach_private_networks_or_unlisted_hosts() {
        let p = cluster();
        let e = check("http://10.0.0.5/a2a", &p, &[], Source::RunTime).await.unwrap_err();
        assert!(e.contains("10.0.0.5 is a private-network address: URLs that arrive at run time"), "{e}");
        let e = check("https://agent.example.com/a2a", &p, &["*.example.org".into()], Source::RunTime)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            "https://agent.example.com/a2a names host \"agent.example.com\", which is not among the gateway's spec.egress.allowedHosts"
        );
        let e = check("ftp://x/", &p, &[], Source::RunTime).await.unwrap_err();
        assert_eq!(e, "\"ftp://x/\" is not an http or https URL");
        let e = check("not a url", &p, &[], Source::RunTime).await.unwrap_err();
        assert!(e.starts_with("\"not a url\" is not a valid URL"), "{e}");
    }
}
