use super::*;
use crate::policy::egress::parse_cidr;
use std::collections::HashMap;

/// Names resolve where the test says; anything else does not resolve.
struct Hosts(HashMap<&'static str, Vec<IpAddr>>);

impl Resolve for Hosts {
    fn resolve(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let r = self.0.get(host).cloned().ok_or_else(|| std::io::Error::other("no such host"));
        Box::pin(async move { r })
    }
}

fn hosts() -> Hosts {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    Hosts(HashMap::from([
        ("metadata.test", vec![ip("169.254.169.254")]),
        ("public.test", vec![ip("8.8.8.8")]),
        ("mixed.test", vec![ip("8.8.8.8"), ip("10.0.0.1")]),
        ("lan.test", vec![ip("10.1.2.3")]),
        ("v6meta.test", vec![ip("::ffff:169.254.169.254")]),
    ]))
}

fn policy(cidrs: &[&str], private: bool) -> EgressPolicy {
    EgressPolicy {
        allowed: cidrs.iter().map(|c| parse_cidr(c).unwrap()).collect(),
        allow_private_networks: private,
        allow_loopback: false,
    }
}

async fn check(url: &str, p: &EgressPolicy, allowed_hosts: &[&str]) -> Result<(), String> {
    let allowed_hosts: Vec<String> = allowed_hosts.iter().map(|s| s.to_string()).collect();
    check_run_time_url(url, p, &allowed_hosts, &hosts()).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn run_time_urls_refuse_the_metadata_address_in_every_spelling() {
    let strict = policy(&[], false);
    let rule = "URLs that arrive at run time may reach only public addresses, unless \
                spec.egress.allowedCIDRs lists them";
    let mapped = "::ffff:169.254.169.254 (that is 169.254.169.254)";
    for (url, ip) in [
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("http://2852039166/latest/meta-data", "169.254.169.254"),
        ("http://0xa9fea9fe/", "169.254.169.254"),
        ("http://0251.0376.0251.0376/", "169.254.169.254"),
        ("http://169.254.43518/", "169.254.169.254"),
        ("http://[::ffff:169.254.169.254]/", mapped),
        ("http://[::ffff:a9fe:a9fe]:8080/x", mapped),
        ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe (that is 169.254.169.254)"),
    ] {
        let e = check(url, &strict, &[]).await.unwrap_err();
        assert_eq!(e, format!("URL {url:?} reaches {ip}, a cloud metadata address: {rule}"), "{url}");
    }
    let e = check("http://metadata.test/hook", &strict, &[]).await.unwrap_err();
    assert_eq!(
        e,
        format!(
            "URL \"http://metadata.test/hook\" reaches host metadata.test, which resolves to \
             169.254.169.254, a cloud metadata address: {rule}"
        )
    );
    let e = check("http://v6meta.test/hook", &strict, &[]).await.unwrap_err();
    assert!(e.contains(&format!("resolves to {mapped}, a cloud metadata address")), "{e}");
}

#[tokio::test]
async fn run_time_urls_refuse_loopback_link_local_private_and_unspecified_unless_allowed() {
    let strict = policy(&[], false);
    let private_rule = "URLs that arrive at run time may reach loopback and private networks only \
                        with spec.egress.allowPrivateNetworks, or where spec.egress.allowedCIDRs lists them";
    for (url, ip, class) in [
        ("http://127.0.0.1:9/hook", "127.0.0.1", "a loopback address"),
        ("http://2130706433/hook", "127.0.0.1", "a loopback address"),
        ("http://[::1]/hook", "::1", "a loopback address"),
        ("http://10.0.0.7/hook", "10.0.0.7", "a private-network address"),
        ("http://[::ffff:10.0.0.7]/hook", "::ffff:10.0.0.7 (that is 10.0.0.7)", "a private-network address"),
    ] {
        let e = check(url, &strict, &[]).await.unwrap_err();
        assert_eq!(e, format!("URL {url:?} reaches {ip}, {class}: {private_rule}"), "{url}");
    }
    let e = check("http://lan.test/hook", &strict, &[]).await.unwrap_err();
    assert!(e.contains("host lan.test, which resolves to 10.1.2.3, a private-network address"), "{e}");
    let e = check("http://mixed.test/hook", &strict, &[]).await.unwrap_err();
    assert!(e.contains("resolves to 10.0.0.1"), "every address of a name must be allowed: {e}");
    for (url, class) in [
        ("http://0.0.0.0/", "an unspecified address (it reaches this host)"),
        ("http://[::]/", "an unspecified address (it reaches this host)"),
        ("http://169.254.1.1/", "a link-local address"),
        ("http://[fe80::1]/", "a link-local address"),
    ] {
        for p in [&strict, &policy(&[], true)] {
            let e = check(url, p, &[]).await.unwrap_err();
            assert!(e.contains(class) && e.contains("may reach only public addresses"), "{url}: {e}");
        }
    }
    let private = policy(&[], true);
    for url in ["http://127.0.0.1:9/hook", "http://10.0.0.7/hook", "http://lan.test/hook", "http://[::1]/"] {
        assert_eq!(check(url, &private, &[]).await, Ok(()), "{url} with allowPrivateNetworks");
    }
    let listed = policy(&["169.254.169.254/32"], false);
    assert_eq!(check("http://2852039166/", &listed, &[]).await, Ok(()), "allowedCIDRs allows it");
    assert_eq!(check("http://metadata.test/", &listed, &[]).await, Ok(()));
    assert_eq!(check("https://public.test/hook", &strict, &[]).await, Ok(()));
    assert_eq!(check("https://8.8.8.8/hook", &strict, &[]).await, Ok(()));
}

#[tokio::test]
async fn run_time_urls_say_what_else_is_wrong() {
    let strict = policy(&[], false);
    let cases = [
        ("not a url", "URL \"not a url\" is not a URL"),
        ("file:///etc/passwd", "URL \"file:///etc/passwd\" must be http or https"),
        ("ftp://8.8.8.8/", "URL \"ftp://8.8.8.8/\" must be http or https"),
        (
            "http://nowhere.test/",
            "URL \"http://nowhere.test/\": host \"nowhere.test\" does not resolve: no such host",
        ),
    ];
    for (url, want) in cases {
        assert_eq!(check(url, &strict, &[]).await.unwrap_err(), want);
    }
    assert_eq!(
        check("https://public.test/hook", &strict, &["*.example.com"]).await.unwrap_err(),
        "URL \"https://public.test/hook\" names host \"public.test\", which is not among the gateway's \
         spec.egress.allowedHosts"
    );
    assert_eq!(check("https://public.test/hook", &strict, &["*.test"]).await, Ok(()));
}

/// The client towards a name that resolves to the metadata address never connects: the connect
/// fails with the refusal, and a literal address is refused before any resolution.
#[tokio::test]
async fn the_connector_refuses_what_a_name_resolves_to() {
    let clients = crate::gateway::http_client::HttpClients::with_resolver(Arc::new(hosts()));
    let client = clients.for_gateway(1000, &policy(&[], false));
    for (url, want) in [
        (
            "http://metadata.test/latest/meta-data",
            "url \"http://metadata.test/latest/meta-data\": the gateway's egress rule refuses host \
             metadata.test, which resolves to 169.254.169.254, a cloud metadata address: link-local, \
             cloud metadata, multicast and reserved addresses are refused unless \
             spec.egress.allowedCIDRs lists them",
        ),
        (
            "http://169.254.169.254/latest/meta-data",
            "url \"http://169.254.169.254/latest/meta-data\": the gateway's egress rule refuses \
             169.254.169.254, a cloud metadata address: link-local, cloud metadata, multicast and \
             reserved addresses are refused unless spec.egress.allowedCIDRs lists them",
        ),
        (
            "http://[::ffff:169.254.169.254]/",
            "url \"http://[::ffff:169.254.169.254]/\": the gateway's egress rule refuses \
             ::ffff:169.254.169.254 (that is 169.254.169.254), a cloud metadata address: link-local, \
             cloud metadata, multicast and reserved addresses are refused unless \
             spec.egress.allowedCIDRs lists them",
        ),
    ] {
        let req = http::Request::get(url).body(http_body_util::Full::new(bytes::Bytes::new())).unwrap();
        let e = client.request(req).await.expect_err("refused");
        assert!(e.is_connect(), "a connect error, so the layers treat it as one");
        assert_eq!(crate::gateway::http_client::failure(&e, url), want);
    }
}

/// A name resolving to loopback is refused in a cluster and reached once `allowedCIDRs` lists
/// it; the client without a rule reaches it too.
#[tokio::test]
async fn the_connector_connects_where_the_rule_allows() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
        }
    });
    let mut h = hosts();
    h.0.insert("here.test", vec!["127.0.0.1".parse().unwrap()]);
    let clients = crate::gateway::http_client::HttpClients::with_resolver(Arc::new(h));
    let url = format!("http://here.test:{port}/");
    let get = || http::Request::get(&url).body(http_body_util::Full::new(bytes::Bytes::new())).unwrap();
    let e = clients
        .for_gateway(1000, &policy(&[], false))
        .request(get())
        .await
        .expect_err("loopback in a cluster");
    assert!(refusal_in(&e).is_some_and(|r| r.refusal.ip.is_loopback()), "{e:?}");
    let listed = clients.for_gateway(1000, &policy(&["127.0.0.1/32"], false));
    assert_eq!(listed.request(get()).await.expect("allowed").status(), 204);
    assert_eq!(clients.unrestricted(1000).request(get()).await.expect("no rule").status(), 204);
}
