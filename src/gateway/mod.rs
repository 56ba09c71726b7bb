//! The gateway data planes.
//!
//! [`local`] runs gateways in this process from files (`cairn run`, `cairn gateway`);
//! [`server`] serves one gateway's listener; [`ai`] is layer 1's request path; [`identity`],
//! [`store`], [`metrics`], [`origin`] and [`access_log`] are shared by the layers; [`state`] is what a process
//! keeps across config versions; [`admin`] serves `/metrics`, `/healthz` and `/readyz`.

pub mod access_log;
pub mod admin;
pub mod agent;
pub mod ai;
pub mod identity;
pub mod local;
pub mod mcp;
pub mod metrics;
pub mod origin;
pub mod server;
pub mod state;
pub mod store;
