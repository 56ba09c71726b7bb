//! What the agent layer keeps for the whole process, across gateways and config versions: the
//! card cache, the keys generated for gateways whose credentials carry none and its metrics (task
//! owners live in each gateway's store; the client towards agents, under the gateway's egress
//! rule, in each config version).

use super::card::CardCache;
use super::metrics::AgentMetrics;
use super::sign::Signer;
use crate::config::SIGNING_KEY;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Connect timeout towards agents.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// The agent layer's process-wide state.
pub struct AgentShared {
    /// Agent cards.
    pub cards: CardCache,
    /// The layer's metrics.
    pub metrics: AgentMetrics,
    generated: Mutex<HashMap<String, Arc<Signer>>>,
}

impl AgentShared {
    /// State around `metrics`.
    pub fn new(metrics: AgentMetrics) -> AgentShared {
        AgentShared { cards: CardCache::default(), metrics, generated: Mutex::default() }
    }

    /// The key this process generated for `gateway` (the same one for every config version).
    pub fn generated_key(&self, gateway: &str) -> Arc<Signer> {
        let mut map = self.generated.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(gateway.to_string())
            .or_insert_with(|| {
                tracing::warn!(
                    gateway,
                    "no signing key in the credentials ({SIGNING_KEY}): generated one for this process; \
                     identity tokens and card signatures verify only against this process's JWKS"
                );
                Arc::new(Signer::generate())
            })
            .clone()
    }
}
