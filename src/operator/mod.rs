//! `cairn operator`: turns the eight Cairn kinds into running, configured gateways.
//!
//! A reconcile flows through one module per stage: index (reads) → compile (pure, shared with
//! local mode) → render (pure) → apply (server-side apply, one field manager) → status.

pub mod rbac;
