//! Render: a compiled gateway and its spec in, the child objects out. Pure and deterministic (no
//! timestamps, no randomness: the gateway's generated keys come in with the bundle), so equal
//! inputs give byte-equal objects and an operator restart rewrites nothing. Snapshot-tested
//! (`snapshots/`, bless with `CAIRN_BLESS=1`).
//!
//! One file per child kind; `child.rs` holds the names, labels and owner references they share.

mod child;
mod configmap;
mod deployment;
mod disruption;
mod mcp_server;
mod rbac;
mod secret;
mod service;

pub use child::*;
pub use mcp_server::mcp_server;

use crate::config::{Layer, packed};

/// A gateway's children in the order they are written: identity and permissions first, then the
/// Secret and the config parts, the main ConfigMap last of the config (a gateway that sees a new
/// manifest finds everything it names), then the workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The objects, in write order.
    pub children: Vec<Child>,
    /// The packing manifest written to the main ConfigMap.
    pub manifest: packed::Manifest,
}

/// Renders every child of a gateway.
pub fn gateway(gw: Gateway<'_>, settings: &Settings) -> Result<Rendered, RenderError> {
    if gw.common.listener.port == ADMIN_PORT {
        return Err(RenderError::AdminPort);
    }
    let packed = packed::pack(gw.compiled).map_err(RenderError::TooLarge)?;
    let config_maps = configmap::config_maps(gw, &packed);
    let names: Vec<String> = config_maps.iter().map(|c| c.name.clone()).collect();
    let mut children = Vec::new();
    children.extend(rbac::gateway_rbac(gw, &names));
    children.push(secret::credentials(gw));
    // Parts first, the main ConfigMap (index 0) last.
    let mut config_maps = config_maps;
    let main = config_maps.remove(0);
    children.extend(config_maps);
    children.push(main);
    children.push(service::gateway_service(gw));
    children.push(deployment::gateway_deployment(gw, settings));
    children.extend(disruption::pdb(gw));
    children.extend(disruption::hpa(gw));
    Ok(Rendered { children, manifest: packed.manifest })
}

/// `http://<service>.<namespace>.svc:<port>`: the gateway's in-cluster address.
pub fn address(gateway: &str, namespace: &str, layer: Layer, port: i32) -> String {
    format!("http://{}.{namespace}.svc:{port}", base_name(gateway, layer))
}

#[cfg(test)]
mod tests;
