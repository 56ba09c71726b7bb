//! What every reconcile shares: the client, settings, the scope's index and compile stage, the
//! leader flag, metrics, the Event recorder, and three small memories — what was last applied
//! (so an unchanged child is not sent again), per-object failure counts (backoff), and keys
//! generated but not yet seen back in the index.

use super::compile::Compiler;
use super::index::Index;
use super::leader::Leadership;
use super::metrics::Metrics;
use super::render::{ChildKind, Settings};
use crate::config::Credentials;
use kube::Client;
use kube::runtime::events::Recorder;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Identifies one child: kind, namespace, name.
pub type ChildKey = (ChildKind, String, String);

/// What the operator last wrote for a child: the hash of the body it sent and the
/// `resourceVersion` the API server answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Hash of the applied body.
    pub body: u64,
    /// Resulting version.
    pub version: String,
}

/// Shared by the reconciles of one scope.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Image and pull policy of gateway pods.
    pub settings: Settings,
    /// Reads.
    pub index: Arc<Index>,
    /// Per-namespace compiles.
    pub compiler: Arc<Compiler>,
    /// Whether this replica may write.
    pub leader: Leadership,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Events.
    pub recorder: Recorder,
    /// Last applied bodies.
    pub applied: Mutex<HashMap<ChildKey, Applied>>,
    /// Consecutive failures per object (kind/namespace/name).
    pub failures: Mutex<HashMap<String, u32>>,
    /// Generated keys by gateway UID, until its Secret is in the index.
    pub keys: Mutex<HashMap<String, Credentials>>,
    /// Tools discovered, cards, spend.
    pub answers: super::answers::Answers,
}
