//! The egress rule's address classifier, fed URLs as a configuration or a caller would write them
//! and raw IPv6 addresses. It never panics, and agrees with itself: an IPv6 address that carries
//! an IPv4 address is judged as that address; a refusal names the address's class; a metadata,
//! link-local or reserved address is refused for configured URLs unless a listed range holds it;
//! an address inside a listed range is allowed.
//!
//! Input: three lines, `URL`, `CIDR` and flags (`p`: allowPrivateNetworks, `l`: loopback allowed
//! for configured URLs); the URL's first 16 bytes (zero-padded) are also read as an IPv6 address.
#![no_main]

use cairn::policy::egress::{
    AddressClass, EgressPolicy, Source, classify, embedded_v4, literal_address, parse_cidr,
};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    let mut raw = [0u8; 16];
    let n = data.len().min(16);
    raw[..n].copy_from_slice(&data[..n]);
    let v6 = Ipv6Addr::from(raw);
    if let Some(v4) = embedded_v4(v6) {
        assert_eq!(classify(IpAddr::V6(v6)), classify(IpAddr::V4(v4)), "{v6} carries {v4}");
    }
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let (url, cidr, flags) =
        (lines.next().unwrap_or(""), lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let mut policy = EgressPolicy {
        allowed: vec![],
        allow_private_networks: flags.contains('p'),
        allow_loopback: flags.contains('l'),
    };
    let mut addresses = vec![IpAddr::V6(v6)];
    if let Ok(Some(ip)) = literal_address(url) {
        addresses.push(ip);
    }
    for ip in &addresses {
        for source in [Source::Configured, Source::RunTime] {
            let verdict = policy.check(*ip, source);
            if let Err(refusal) = &verdict {
                assert_eq!(refusal.class, classify(*ip));
                assert!(refusal.to_string().starts_with(&ip.to_string()));
            }
            let class = classify(*ip);
            if matches!(class, AddressClass::Metadata | AddressClass::LinkLocal | AddressClass::Reserved) {
                assert!(verdict.is_err(), "{ip} ({class:?}) must be refused without an allowed range");
            }
        }
    }
    if let Ok(net) = parse_cidr(cidr) {
        policy.allowed.push(net);
        for ip in &addresses {
            if net.contains(ip) {
                assert!(policy.check(*ip, Source::Configured).is_ok(), "{ip} is in {net}");
                assert!(policy.check(*ip, Source::RunTime).is_ok(), "{ip} is in {net}");
            }
        }
    }
});
