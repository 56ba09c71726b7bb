//! A resolver the tests control, for the gateway core ([`cairn::gateway::core::Core::with_resolver`]):
//! the names below resolve where a test needs them (a name at the cloud metadata address cannot be
//! had from DNS here); any other name goes to the system's resolver, as in production.

use cairn::gateway::egress::{Resolve, SystemResolver};
use futures_util::future::BoxFuture;
use std::net::IpAddr;
use std::sync::Arc;

/// Resolves to the cloud metadata address (169.254.169.254).
pub const METADATA: &str = "metadata.test";
/// Resolves to a link-local address (169.254.10.10).
pub const LINK_LOCAL: &str = "link-local.test";
/// Resolves to the IPv4-mapped form of the metadata address.
pub const MAPPED_METADATA: &str = "mapped-metadata.test";
/// Resolves to 10.0.0.7 (a private network).
pub const PRIVATE: &str = "private.test";
/// Resolves to 127.0.0.1, where the tests' upstreams listen.
pub const HERE: &str = "here.test";

/// The test names, then the system's resolver.
pub struct Hosts;

impl Resolve for Hosts {
    fn resolve(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let fixed = match host {
            METADATA => "169.254.169.254",
            LINK_LOCAL => "169.254.10.10",
            MAPPED_METADATA => "::ffff:169.254.169.254",
            PRIVATE => "10.0.0.7",
            HERE => "127.0.0.1",
            other => return SystemResolver.resolve(other),
        };
        let ip: IpAddr = fixed.parse().expect("a test address");
        Box::pin(async move { Ok(vec![ip]) })
    }
}

/// The resolver, for `Core::with_resolver`.
pub fn resolver() -> Arc<dyn Resolve> {
    Arc::new(Hosts)
}
