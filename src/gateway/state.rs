//! What a gateway process keeps across config versions: metrics, the upstream clients, JWKS
//! caches, backend health (ejection), retry budgets and limit stores. A config reload builds a new
//! runtime around the same [`Shared`], so counters and health survive it.

use crate::config::{FailureMode, StoreConfig};
use crate::gateway::ai::upstream::Clients;
use crate::gateway::identity::JwksCache;
use crate::gateway::metrics::Metrics;
use crate::gateway::store::{MemoryStore, RedisStore, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Process-wide state shared by every gateway and config version.
#[derive(Default)]
pub struct Shared {
    /// Metrics registry.
    pub metrics: Metrics,
    /// Upstream HTTP clients.
    pub clients: Clients,
    /// JWKS caches.
    pub jwks: JwksCache,
    /// The agent layer's card cache, task owners and generated keys.
    pub agent: crate::gateway::agent::AgentShared,
    /// Backend health by `gateway/backend`.
    health: Mutex<HashMap<String, Health>>,
    /// Retry budgets by gateway.
    retry: Mutex<HashMap<String, RetryBudget>>,
    /// Stores by gateway (memory) or by URL and password digest (Redis).
    stores: Mutex<HashMap<String, Store>>,
}

#[derive(Default, Clone, Copy)]
struct Health {
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
}

/// Retries allowed: a reserve of [`RETRY_RESERVE`], refilled by `percent`% of each request.
struct RetryBudget {
    tokens: f64,
}

/// Retries a gateway may make before its budget must be refilled by traffic.
pub const RETRY_RESERVE: f64 = 10.0;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// A fresh process state.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Whether a backend is ejected now.
    pub fn is_ejected(&self, key: &str) -> bool {
        lock(&self.health).get(key).and_then(|h| h.ejected_until).is_some_and(|t| t > Instant::now())
    }

    /// Records a successful attempt: the failure streak ends.
    pub fn record_success(&self, key: &str) {
        let mut map = lock(&self.health);
        if let Some(h) = map.get_mut(key) {
            *h = Health::default();
        }
    }

    /// Records a failed attempt; ejects the backend for `cooldown` after `threshold` consecutive
    /// failures (0: never). Returns whether this failure ejected it.
    pub fn record_failure(&self, key: &str, threshold: u32, cooldown: Duration) -> bool {
        let mut map = lock(&self.health);
        let h = map.entry(key.to_string()).or_default();
        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
        if threshold > 0 && h.consecutive_failures >= threshold {
            h.consecutive_failures = 0;
            h.ejected_until = Some(Instant::now() + cooldown);
            return true;
        }
        false
    }

    /// Deposits a request's share into the gateway's retry budget.
    pub fn retry_deposit(&self, gateway: &str, percent: u32) {
        let mut map = lock(&self.retry);
        let b = map.entry(gateway.to_string()).or_insert(RetryBudget { tokens: RETRY_RESERVE });
        b.tokens = (b.tokens + f64::from(percent) / 100.0).min(RETRY_RESERVE);
    }

    /// Takes one retry from the budget, if it has one.
    pub fn retry_take(&self, gateway: &str) -> bool {
        let mut map = lock(&self.retry);
        let b = map.entry(gateway.to_string()).or_insert(RetryBudget { tokens: RETRY_RESERVE });
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The store a compiled config names, its Redis password read from the credentials bundle.
    /// `Err` says what is missing or wrong, for the reload log.
    pub fn store_for(
        &self,
        config: &crate::config::GatewayConfig,
        credentials: &crate::config::Credentials,
    ) -> Result<(Store, Option<FailureMode>), String> {
        let gateway = format!("{}/{}", config.gateway.namespace, config.gateway.name);
        let password = redis_password(config, credentials)?;
        self.store(&gateway, config.store.as_ref(), password).map_err(|e| e.to_string())
    }

    /// The store for a gateway: its memory store (kept across reloads), or the Redis store for
    /// the config's URL and password (shared by gateways naming the same one).
    pub fn store(
        &self,
        gateway: &str,
        config: Option<&StoreConfig>,
        password: Option<&str>,
    ) -> Result<(Store, Option<FailureMode>), StoreError> {
        let mut map = lock(&self.stores);
        match config {
            None => {
                let key = format!("memory:{gateway}");
                let s = map.entry(key).or_insert_with(|| Store::Memory(Arc::new(MemoryStore::new())));
                Ok((s.clone(), None))
            }
            Some(c) => {
                use sha2::Digest;
                let digest = hex::encode(sha2::Sha256::digest(password.unwrap_or_default().as_bytes()));
                let key = format!("redis:{}:{digest}", c.redis_url);
                if let Some(s) = map.get(&key) {
                    return Ok((s.clone(), Some(c.failure_mode)));
                }
                let s = Store::Redis(Arc::new(RedisStore::new(&c.redis_url, password)?));
                map.insert(key, s.clone());
                Ok((s, Some(c.failure_mode)))
            }
        }
    }
}

/// The Redis password a config names, from the credentials bundle; `Ok(None)` when it names none.
pub fn redis_password<'a>(
    config: &crate::config::GatewayConfig,
    credentials: &'a crate::config::Credentials,
) -> Result<Option<&'a str>, String> {
    match config.store.as_ref().and_then(|s| s.redis_password.as_ref()) {
        Some(r) => credentials
            .get(r)
            .map(Some)
            .ok_or_else(|| format!("credential {:?} (Redis password) is missing", r.id)),
        None => Ok(None),
    }
}
