//! The egress policy: which addresses a gateway may connect to, one rule for the three layers
//! (against server-side request forgery: a URL must not make a gateway reach the cloud metadata
//! endpoint, the node, or the pod itself).
//!
//! Pure: addresses in, a verdict out. The compile step applies it to the URLs of the
//! configuration whose host is an address literal (in every spelling a resolver accepts); the
//! gateways apply it to what a name resolves to when they connect, and to URLs that arrive at run
//! time (push-notification webhooks, URLs from agent cards or OAuth metadata).
//!
//! # The rule
//!
//! Every address falls in one [`AddressClass`]. Where the URL came from ([`Source`]) decides:
//!
//! | class | configured URL (AIBackend, MCPServer, Agent) | URL that arrives at run time |
//! |---|---|---|
//! | public, documentation | allowed | allowed (documentation: refused) |
//! | private (`10/8`, `172.16/12`, `192.168/16`, `100.64/10`, `198.18/15`, `fc00::/7`) | allowed: in-cluster servers live there | refused unless `allowPrivateNetworks` |
//! | loopback (`127/8`, `::1`, `localhost`), unspecified (`0/8`, `::`) | allowed in local mode, refused in a cluster (a pod's loopback is the pod) | loopback: as private; unspecified: refused |
//! | link-local (`169.254/16`, `fe80::/10`), cloud metadata | refused | refused |
//! | multicast, broadcast, reserved | refused | refused |
//!
//! An address inside one of the gateway's `allowedCIDRs` is allowed whatever its class. The cloud
//! metadata addresses are `169.254.169.254` (AWS, GCP, Azure, OCI, DigitalOcean), `169.254.170.2`
//! (AWS ECS task credentials), `fd00:ec2::254` (AWS over IPv6) and `100.100.100.200` (Alibaba):
//! each is refused even where its range (private, for the last two) is allowed.
//!
//! IPv6 addresses that carry an IPv4 address — IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
//! (`::a.b.c.d`), NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`) and 6to4 (`2002::/16`) — are judged as
//! the IPv4 address they reach.

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of address an IP address is, for the egress rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressClass {
    /// Globally routable.
    Public,
    /// A private network: RFC 1918, shared address space (`100.64/10`), benchmarking
    /// (`198.18/15`), unique-local and site-local IPv6.
    Private,
    /// The host itself: `127/8`, `::1`.
    Loopback,
    /// `0.0.0.0/8` and `::`, which reach the host itself on Linux.
    Unspecified,
    /// `169.254/16`, `fe80::/10`: the link, where clouds serve instance metadata.
    LinkLocal,
    /// A cloud instance-metadata endpoint.
    Metadata,
    /// Multicast, broadcast, IETF-reserved and discard-only ranges.
    Reserved,
    /// Documentation ranges (`192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`).
    Documentation,
}

impl AddressClass {
    /// The class as a phrase: "a link-local address".
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "a public address",
            AddressClass::Private => "a private-network address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Unspecified => "an unspecified address (it reaches this host)",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::Metadata => "a cloud metadata address",
            AddressClass::Reserved => "a multicast, broadcast or reserved address",
            AddressClass::Documentation => "a documentation address",
        }
    }

    /// Low-cardinality name for metrics.
    pub fn category(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Private => "private",
            AddressClass::Loopback => "loopback",
            AddressClass::Unspecified => "unspecified",
            AddressClass::LinkLocal => "link_local",
            AddressClass::Metadata => "metadata",
            AddressClass::Reserved => "reserved",
            AddressClass::Documentation => "documentation",
        }
    }
}

const METADATA_V4: [Ipv4Addr; 3] =
    [Ipv4Addr::new(169, 254, 169, 254), Ipv4Addr::new(169, 254, 170, 2), Ipv4Addr::new(100, 100, 100, 200)];
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// The class of an address (IPv6 forms that carry an IPv4 address are judged as that address).
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

/// The IPv4 address an IPv6 address reaches, when it carries one: IPv4-mapped, IPv4-compatible
/// (deprecated, but still parsed), NAT64 (well-known and local-use prefixes) and 6to4.
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let zero_prefix = s[..5].iter().all(|&x| x == 0);
    if zero_prefix && s[5] == 0xffff {
        return Some(low);
    }
    // `::a.b.c.d`, but not `::` and `::1`, which are IPv6's own.
    if zero_prefix && s[5] == 0 && (s[6] != 0 || s[7] > 1) {
        return Some(low);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && (s[2..6].iter().all(|&x| x == 0) || s[2] == 1) {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    None
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if METADATA_V4.contains(&ip) {
        AddressClass::Metadata
    } else if a == 0 {
        AddressClass::Unspecified
    } else if a == 127 {
        AddressClass::Loopback
    } else if a == 169 && b == 254 {
        AddressClass::LinkLocal
    } else if a >= 224 || (a == 192 && b == 0 && c == 0) {
        // 224/4 multicast, 240/4 reserved, 255.255.255.255 broadcast, 192.0.0/24 IETF.
        AddressClass::Reserved
    } else if ip.is_documentation() {
        AddressClass::Documentation
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) || (a == 198 && (b & 0xfe) == 18) {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    if ip == METADATA_V6 {
        AddressClass::Metadata
    } else if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if (s[0] & 0xffc0) == 0xfe80 {
        AddressClass::LinkLocal
    } else if ip.is_multicast() || (s[0] == 0x0100 && s[1..4].iter().all(|&x| x == 0)) {
        // ff00::/8, and 100::/64 (discard-only).
        AddressClass::Reserved
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        AddressClass::Documentation
    } else if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0 {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

/// Where a URL came from: the trust it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Written by whoever configures the gateway (an AIBackend's, MCPServer's or Agent's URL).
    Configured,
    /// Arrived while serving, from a caller or an upstream (a push-notification webhook, a URL in
    /// an agent card or in OAuth metadata).
    RunTime,
}

/// One gateway's egress rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct EgressPolicy {
    /// Ranges allowed whatever their class (`spec.egress.allowedCIDRs`).
    pub allowed: Vec<IpNet>,
    /// URLs that arrive at run time may reach loopback and private networks
    /// (`spec.egress.allowPrivateNetworks`).
    pub allow_private_networks: bool,
    /// Configured URLs may reach loopback and unspecified addresses: local mode, where the
    /// gateway and the servers it calls share a host.
    pub allow_loopback: bool,
}

/// Why an address is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The address.
    pub ip: IpAddr,
    /// Its class.
    pub class: AddressClass,
    /// Where the URL came from.
    pub source: Source,
    /// Whether the policy allowed loopback for configured URLs (to word the rule).
    loopback_mode: bool,
}

impl Refusal {
    /// The rule that refuses it, with the field that would allow it.
    pub fn rule(&self) -> &'static str {
        use AddressClass::*;
        match (self.source, self.class) {
            (Source::Configured, Loopback | Unspecified) if !self.loopback_mode => {
                "loopback and unspecified addresses are refused in a cluster, where they reach the \
                 gateway's own pod, unless spec.egress.allowedCIDRs lists them"
            }
            (Source::Configured, _) => {
                "link-local, cloud metadata, multicast and reserved addresses are refused unless \
                 spec.egress.allowedCIDRs lists them"
            }
            (Source::RunTime, Loopback | Private) => {
                "URLs that arrive at run time may reach loopback and private networks only with \
                 spec.egress.allowPrivateNetworks, or where spec.egress.allowedCIDRs lists them"
            }
            (Source::RunTime, _) => {
                "URLs that arrive at run time may reach only public addresses, unless \
                 spec.egress.allowedCIDRs lists them"
            }
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is {}: {}", self.ip, self.class.describe(), self.rule())
    }
}

impl EgressPolicy {
    /// The rule a compiled config states; the error names the `allowedCIDRs` entry that is not
    /// a range (the compile step reports those and leaves them out, so only a hand-written config
    /// has one).
    pub fn from_config(c: &crate::config::EgressConfig) -> Result<EgressPolicy, String> {
        let allowed = c
            .allowed_cidrs
            .iter()
            .enumerate()
            .map(|(i, s)| parse_cidr(s).map_err(|e| format!("allowedCIDRs[{i}]: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(EgressPolicy {
            allowed,
            allow_private_networks: c.allow_private_networks,
            allow_loopback: c.allow_loopback,
        })
    }

    /// Whether the gateway may connect to `ip` for a URL from `source`.
    pub fn check(&self, ip: IpAddr, source: Source) -> Result<(), Refusal> {
        let class = classify(ip);
        if self.is_listed(ip) {
            return Ok(());
        }
        use AddressClass::*;
        let allowed = match (source, class) {
            (_, Public) => true,
            (Source::Configured, Private | Documentation) => true,
            (Source::Configured, Loopback | Unspecified) => self.allow_loopback,
            (Source::RunTime, Loopback | Private) => self.allow_private_networks,
            _ => false,
        };
        if allowed { Ok(()) } else { Err(Refusal { ip, class, source, loopback_mode: self.allow_loopback }) }
    }

    /// Whether `ip` (or the IPv4 address it carries) is inside an allowed range.
    fn is_listed(&self, ip: IpAddr) -> bool {
        let v4 = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allowed.iter().any(|net| net.contains(&ip) || v4.is_some_and(|v4| net.contains(&v4)))
    }
}

/// Why an entry of `allowedCIDRs` is not a range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Neither an address nor a range.
    #[error("{0:?} is not an address range in CIDR notation")]
    NotCidr(String),
    /// A range written with host bits set (`10.0.0.1/8`).
    #[error("{given:?} has host bits set; the range is {range}")]
    HostBits {
        /// As written.
        given: String,
        /// The range it would be.
        range: IpNet,
    },
}

/// Parses one entry of `allowedCIDRs`: a range (`169.254.169.254/32`, `fe80::/10`) or a single
/// address. The error says what is wrong.
pub fn parse_cidr(s: &str) -> Result<IpNet, CidrError> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net: IpNet = s.parse().map_err(|_| CidrError::NotCidr(s.to_string()))?;
    if net.trunc() != net {
        return Err(CidrError::HostBits { given: s.to_string(), range: net.trunc() });
    }
    Ok(net)
}

/// Why a URL's host cannot be judged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("is not a valid URL ({0})")]
    Invalid(String),
    /// A URL without a host.
    #[error("has no host")]
    NoHost,
}

/// Host names whose address is fixed wherever they resolve: `localhost` and its subdomains
/// (RFC 6761), and Google Cloud's metadata name.
fn well_known_name(host: &str) -> Option<IpAddr> {
    let host = host.trim_end_matches('.');
    if host == "localhost" || host.ends_with(".localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    if host == "metadata.google.internal" {
        return Some(IpAddr::V4(METADATA_V4[0]));
    }
    None
}

/// The address a URL's host names without a DNS lookup, if it names one: an IP literal in any
/// spelling a resolver accepts — dotted, decimal (`2852039166`), octal (`0251.0376.0251.0376`),
/// hex (`0xa9fea9fe`), shortened (`169.254.43518`), bracketed IPv6 (`[::ffff:169.254.169.254]`)
/// — or a [well-known name](well_known_name). `None` for other names, which are judged at
/// connect time.
///
/// Uses the WHATWG URL parser, which reads IPv4 spellings the way `inet_aton` (and so
/// `getaddrinfo`) does, so a host that the gateway's resolver would turn into an address is
/// turned into the same one here.
pub fn literal_address(url: &str) -> Result<Option<IpAddr>, UrlError> {
    let parsed = url::Url::parse(url).map_err(|e| UrlError::Invalid(e.to_string()))?;
    match parsed.host() {
        Some(url::Host::Ipv4(ip)) => Ok(Some(IpAddr::V4(ip))),
        Some(url::Host::Ipv6(ip)) => Ok(Some(IpAddr::V6(ip))),
        Some(url::Host::Domain(name)) if !name.is_empty() => Ok(well_known_name(name)),
        _ => Err(UrlError::NoHost),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddressClass::*;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn every_range_has_its_class() {
        let table = [
            ("8.8.8.8", Public),
            ("2606:4700::1111", Public),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("198.18.0.1", Private),
            ("fd12::1", Private),
            ("fec0::1", Private),
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("::1", Loopback),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("::", Unspecified),
            ("169.254.0.1", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("169.254.169.254", Metadata),
            ("169.254.170.2", Metadata),
            ("100.100.100.200", Metadata),
            ("fd00:ec2::254", Metadata),
            ("224.0.0.1", Reserved),
            ("240.0.0.1", Reserved),
            ("255.255.255.255", Reserved),
            ("192.0.0.8", Reserved),
            ("ff02::1", Reserved),
            ("100::1", Reserved),
            ("192.0.2.1", Documentation),
            ("198.51.100.1", Documentation),
            ("203.0.113.1", Documentation),
            ("2001:db8::1", Documentation),
            ("172.32.0.1", Public),
            ("100.128.0.1", Public),
        ];
        for (ip, want) in table {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_that_carry_ipv4_are_judged_as_that_address() {
        for ip in [
            "::ffff:169.254.169.254",
            "::ffff:a9fe:a9fe",
            "::169.254.169.254",
            "64:ff9b::169.254.169.254",
            "64:ff9b:1::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
        ] {
            assert_eq!(class(ip), Metadata, "{ip}");
        }
        assert_eq!(class("::ffff:127.0.0.1"), Loopback);
        assert_eq!(class("::ffff:10.0.0.1"), Private);
        assert_eq!(class("::ffff:8.8.8.8"), Public);
        assert_eq!(class("::2"), Unspecified, "::0.0.0.2 is IPv4-compatible 0.0.0.2");
    }

    fn policy(cidrs: &[&str], private: bool, loopback: bool) -> EgressPolicy {
        EgressPolicy {
            allowed: cidrs.iter().map(|c| parse_cidr(c).unwrap()).collect(),
            allow_private_networks: private,
            allow_loopback: loopback,
        }
    }

    fn ok(p: &EgressPolicy, ip: &str, source: Source) -> bool {
        p.check(ip.parse().unwrap(), source).is_ok()
    }

    #[test]
    fn configured_urls_reach_private_networks_but_not_the_link_or_metadata() {
        let cluster = policy(&[], false, false);
        let local = policy(&[], false, true);
        for ip in ["10.0.0.5", "192.168.1.1", "fd12::1", "8.8.8.8", "192.0.2.1"] {
            assert!(ok(&cluster, ip, Source::Configured), "{ip}");
        }
        for ip in
            ["169.254.169.254", "169.254.1.1", "fe80::1", "fd00:ec2::254", "100.100.100.200", "224.0.0.1"]
        {
            assert!(!ok(&cluster, ip, Source::Configured), "{ip}");
            assert!(!ok(&local, ip, Source::Configured), "{ip} is refused in local mode too");
        }
        for ip in ["127.0.0.1", "::1", "0.0.0.0", "::ffff:127.0.0.1"] {
            assert!(!ok(&cluster, ip, Source::Configured), "{ip} in a cluster");
            assert!(ok(&local, ip, Source::Configured), "{ip} in local mode");
        }
        let e = cluster.check("127.0.0.1".parse().unwrap(), Source::Configured).unwrap_err();
        assert_eq!(
            e.to_string(),
            "127.0.0.1 is a loopback address: loopback and unspecified addresses are refused in a \
             cluster, where they reach the gateway's own pod, unless spec.egress.allowedCIDRs lists them"
        );
        let e = local.check("169.254.169.254".parse().unwrap(), Source::Configured).unwrap_err();
        assert_eq!(
            e.to_string(),
            "169.254.169.254 is a cloud metadata address: link-local, cloud metadata, multicast and \
             reserved addresses are refused unless spec.egress.allowedCIDRs lists them"
        );
    }

    #[test]
    fn run_time_urls_reach_only_public_addresses_unless_allowed() {
        let strict = policy(&[], false, true);
        for ip in
            ["127.0.0.1", "10.0.0.1", "::1", "fd12::1", "0.0.0.0", "169.254.169.254", "fe80::1", "192.0.2.1"]
        {
            assert!(!ok(&strict, ip, Source::RunTime), "{ip}");
        }
        assert!(ok(&strict, "8.8.8.8", Source::RunTime));
        let private = policy(&[], true, false);
        for ip in ["127.0.0.1", "10.0.0.1", "::1", "fd12::1"] {
            assert!(ok(&private, ip, Source::RunTime), "{ip}");
        }
        for ip in ["0.0.0.0", "169.254.169.254", "fe80::1", "::ffff:169.254.169.254"] {
            assert!(!ok(&private, ip, Source::RunTime), "{ip}");
        }
        let e = strict.check("10.0.0.1".parse().unwrap(), Source::RunTime).unwrap_err();
        assert!(e.to_string().contains("only with spec.egress.allowPrivateNetworks"), "{e}");
    }

    #[test]
    fn allowed_cidrs_allow_any_class_including_the_mapped_forms() {
        let p = policy(&["169.254.169.254/32", "127.0.0.0/8", "fe80::/10"], false, false);
        for source in [Source::Configured, Source::RunTime] {
            for ip in ["169.254.169.254", "::ffff:169.254.169.254", "127.0.0.7", "fe80::9"] {
                assert!(ok(&p, ip, source), "{ip} {source:?}");
            }
            assert!(!ok(&p, "169.254.169.253", source));
        }
    }

    #[test]
    fn cidrs_parse_or_say_why_not() {
        assert_eq!(parse_cidr("169.254.169.254").unwrap().to_string(), "169.254.169.254/32");
        assert_eq!(parse_cidr("fe80::/10").unwrap().to_string(), "fe80::/10");
        assert_eq!(parse_cidr("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            parse_cidr("10.0.0.1/8").unwrap_err().to_string(),
            "\"10.0.0.1/8\" has host bits set; the range is 10.0.0.0/8"
        );
        assert_eq!(
            parse_cidr("10.0.0.0/33").unwrap_err().to_string(),
            "\"10.0.0.0/33\" is not an address range in CIDR notation"
        );
        assert!(parse_cidr("metadata").is_err());
    }

    #[test]
    fn every_spelling_of_an_address_literal_is_read_as_the_resolver_reads_it() {
        let meta: IpAddr = "169.254.169.254".parse().unwrap();
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://2852039166/",
            "http://0xa9fea9fe/",
            "http://0xA9.0xFE.0xA9.0xFE/",
            "http://0251.0376.0251.0376/",
            "http://0251.254.169.254:80/",
            "http://169.254.43518/",
            "http://169.16689662/",
            "https://169.254.169.254.:8443/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://user:pw@169.254.169.254/",
        ] {
            assert_eq!(literal_address(url), Ok(Some(meta)), "{url}");
        }
        assert_eq!(
            literal_address("http://[::ffff:169.254.169.254]/"),
            Ok(Some("::ffff:a9fe:a9fe".parse().unwrap()))
        );
        assert_eq!(literal_address("http://[fd00:ec2::254]/"), Ok(Some("fd00:ec2::254".parse().unwrap())));
        for local in ["http://localhost:8080", "http://LOCALHOST./", "http://api.localhost/"] {
            assert_eq!(literal_address(local), Ok(Some("127.0.0.1".parse().unwrap())), "{local}");
        }
        assert_eq!(literal_address("https://api.openai.com/v1"), Ok(None));
        assert_eq!(literal_address("http://billing.agents.svc.cluster.local:8000"), Ok(None));
        assert_eq!(literal_address("http://0x/"), Ok(Some("0.0.0.0".parse().unwrap())));
        assert!(matches!(literal_address("not a url"), Err(UrlError::Invalid(_))));
        assert!(matches!(literal_address("http://[::1/"), Err(UrlError::Invalid(_))));
        assert_eq!(literal_address("unix:/run/x.sock"), Err(UrlError::NoHost));
    }
}
