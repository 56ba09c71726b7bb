//! Cairn: a Kubernetes operator for the three gateway layers of an AI platform.
//!
//! The architecture is `docs/architecture.md`: the stages, the direction of their dependencies
//! (checked by `tests/architecture.rs`), the layout file by file, and how one request of each
//! layer and one reconcile flow through the files. In short: [`api`] (CRD types) and [`config`]
//! (the compiled per-gateway contract) know nothing of each other; [`policy`] evaluates the
//! policy part of a compiled config; [`compile`] turns resources into configs (pure, shared by
//! the operator and local mode); [`manifest`] reads YAML manifests and checks them as the API
//! server would; [`gateway`] serves compiled configs (it sees [`config`] and [`policy`] only);
//! [`operator`] reconciles the resources into gateway pods; [`serve`], [`workspace`] and
//! [`explain`] serve the CLI.
#![forbid(unsafe_code)]

pub mod api;
pub mod cluster;
pub mod compile;
pub mod config;
pub mod explain;
pub mod gateway;
pub mod manifest;
pub mod operator;
pub mod policy;
pub mod serve;
pub mod spend;
pub mod workspace;
