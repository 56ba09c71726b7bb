//! The stores of a process, and a gateway's handle on its own: what a runtime holds to count,
//! charge and look up, with the failure mode it answers a failing store with and the counter of
//! those failures (`cairn_store_errors_total`).

use super::{MemoryStore, RedisStore, Store, StoreError};
use crate::config::{Credentials, FailureMode, GatewayConfig, StoreConfig};
use crate::gateway::metrics::{Metrics, StoreLabels};
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Every store of the process: a memory store per gateway (kept across its config versions), a
/// Redis store per URL and password (shared by the gateways that name the same one).
#[derive(Default)]
pub struct Stores {
    by_key: Mutex<HashMap<String, Store>>,
}

/// A gateway's store, as one config version of it uses it.
#[derive(Clone)]
pub struct StoreHandle {
    /// The store.
    pub store: Store,
    /// Key prefix of this gateway's counters: `cairn:<namespace>:`.
    pub prefix: String,
    /// The gateway, `namespace/name` (for logs).
    pub gateway: String,
    /// What a failing store means for a request; `None` for the memory store, which cannot fail.
    pub failure_mode: Option<FailureMode>,
    /// Where a gateway that fails open counts while its store fails: a memory store of its own,
    /// kept across config versions (the memory store itself for a gateway without Redis).
    pub local: Store,
    /// `cairn_store_errors_total` of this gateway and store kind.
    errors: Counter,
}

impl StoreHandle {
    /// Counts one failed store operation.
    pub fn failed(&self) {
        self.errors.inc();
    }

    /// Whether requests are refused while the store fails (`failureMode: Closed`); otherwise
    /// they are served and counted in [`StoreHandle::local`].
    pub fn fails_closed(&self) -> bool {
        self.failure_mode == Some(FailureMode::Closed)
    }
}

/// Why a gateway's store cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum StoreSetupError {
    /// The credentials bundle lacks the Redis password the config names.
    #[error("credential {0:?} (Redis password) is missing")]
    MissingPassword(String),
    /// The Redis URL cannot be used.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Stores {
    /// The store `config` names, its Redis password read from `credentials`, as a handle that
    /// counts its failures in `metrics`.
    pub fn handle(
        &self,
        config: &GatewayConfig,
        credentials: &Credentials,
        metrics: &Metrics,
    ) -> Result<StoreHandle, StoreSetupError> {
        let gateway = format!("{}/{}", config.gateway.namespace, config.gateway.name);
        let password = redis_password(config, credentials)?;
        let (store, failure_mode) = self.store(&gateway, config.store.as_ref(), password)?;
        let local = match &store {
            Store::Memory(_) => store.clone(),
            Store::Redis(_) => {
                let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
                map.entry(format!("local:{gateway}"))
                    .or_insert_with(|| Store::Memory(Arc::new(MemoryStore::new())))
                    .clone()
            }
        };
        let errors = metrics
            .store_errors
            .get_or_create(&StoreLabels { gateway: gateway.clone(), store: store.kind() })
            .clone();
        Ok(StoreHandle {
            store,
            prefix: super::namespace_prefix(&config.gateway.namespace),
            gateway,
            failure_mode,
            local,
            errors,
        })
    }

    /// The store for a gateway: its memory store, or the Redis store for the config's URL and
    /// password (also how the operator and `cairn spend` reach a gateway's shared store).
    pub fn store(
        &self,
        gateway: &str,
        config: Option<&StoreConfig>,
        password: Option<&str>,
    ) -> Result<(Store, Option<FailureMode>), StoreError> {
        let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
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
    config: &GatewayConfig,
    credentials: &'a Credentials,
) -> Result<Option<&'a str>, StoreSetupError> {
    match config.store.as_ref().and_then(|s| s.redis_password.as_ref()) {
        Some(r) => {
            Ok(Some(credentials.get(r).ok_or_else(|| StoreSetupError::MissingPassword(r.id.clone()))?))
        }
        None => Ok(None),
    }
}
