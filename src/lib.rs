//! Cairn: a Kubernetes operator for the three gateway layers of an AI platform.
//!
//! See `DESIGN.md` for the architecture. Stages, and the direction of their dependencies:
//! [`api`] (CRD types) and [`config`] (the compiled per-gateway contract) know nothing of each
//! other; [`policy`] evaluates the policy part of a compiled config; [`compile`] turns resources
//! into configs; [`manifest`] reads YAML manifests and checks them as the API server would;
//! [`workspace`] and [`explain`] serve the CLI; [`gateway`] serves compiled configs (it sees
//! [`config`] and [`policy`], never the CRD types).
#![forbid(unsafe_code)]

pub mod api;
pub mod compile;
pub mod config;
pub mod explain;
pub mod gateway;
pub mod manifest;
pub mod operator;
pub mod policy;
pub mod serve;
pub mod workspace;
