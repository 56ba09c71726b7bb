//! Cairn: a Kubernetes operator for the three gateway layers of an AI platform.
//!
//! See `DESIGN.md` for the architecture. Stages, and the direction of their dependencies:
//! [`api`] (CRD types) and [`config`] (the compiled per-gateway contract) know nothing of each
//! other; [`policy`] evaluates the policy part of a compiled config; [`compile`] turns resources
//! into configs; [`manifest`] reads YAML manifests and checks them as the API server would.
#![forbid(unsafe_code)]

pub mod api;
pub mod manifest;
pub mod compile;
pub mod config;
pub mod policy;
pub mod gateway;
pub mod workspace;
pub mod explain;
