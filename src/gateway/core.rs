//! The core a gateway process serves its layers with: what every gateway and every config
//! version of the process shares. It never names a layer; a layer is a value
//! ([`crate::gateway::layer::Layer`]) that holds an `Arc<Core>` and registers its own metrics
//! here.
//!
//! | part | what it is |
//! |---|---|
//! | [`Core::metrics`] | the one Prometheus registry, with the core's families |
//! | [`Core::http`] | the one HTTP client (a pool per connect timeout and egress rule) |
//! | [`Core::jwks`] | JWKS caches of trusted issuers, across config versions |
//! | [`Core::stores`] | the limits stores (memory per gateway, Redis per URL) |
//! | [`Core::env`] | the process environment, read once at start-up |
//! | [`Core::status`] | readiness and the config each gateway serves, for the admin port |
//! | [`Core::traces`] | the tracer provider and each gateway's OTLP export |
//!
//! The listener is [`crate::gateway::server`], the admin port [`crate::gateway::admin`], the
//! config holder and its atomic swap [`crate::gateway::supervisor`] (fed by a config source:
//! files or the Kubernetes API, [`crate::gateway::source`]); the clock is
//! [`crate::gateway::clock`] and the access/audit writer [`crate::gateway::log`].

use crate::config::{CompiledGateway, Credentials, GatewayConfig};
use crate::gateway::egress::Resolve;
use crate::gateway::http_client::HttpClients;
use crate::gateway::identity::{JwksCache, ServiceAccountEnv};
use crate::gateway::metrics::Metrics;
use crate::gateway::store::{StoreHandle, StoreSetupError, Stores};
use crate::gateway::telemetry::Traces;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What the environment of the process says, read once at start-up.
#[derive(Clone, Debug)]
pub struct Env {
    /// Where ServiceAccount tokens are verified.
    pub service_account: ServiceAccountEnv,
}

impl Env {
    /// Reads the process environment.
    pub fn from_process() -> Env {
        Env { service_account: ServiceAccountEnv::from_vars(|k| std::env::var(k).ok()) }
    }
}

/// What every gateway of the process shares.
pub struct Core {
    /// The metrics registry.
    pub metrics: Metrics,
    /// The HTTP client.
    pub http: HttpClients,
    /// JWKS caches.
    pub jwks: JwksCache,
    /// Limits stores.
    pub stores: Stores,
    /// The environment, as read at start-up.
    pub env: Env,
    /// Readiness and configs in service.
    pub status: Status,
    /// Traces: the provider whose `tracing` layer the process installed, and the export.
    pub traces: Traces,
}

impl Core {
    /// A core for a process whose environment is `env`, with a tracer provider of its own (no
    /// span is exported unless its `tracing` layer is installed: [`Core::with_traces`]).
    pub fn new(env: Env) -> Arc<Core> {
        Core::build(env, HttpClients::default(), Traces::new())
    }

    /// A core whose spans are those of `traces` (the provider of the process's `tracing` layer).
    pub fn with_traces(env: Env, traces: Traces) -> Arc<Core> {
        Core::build(env, HttpClients::default(), traces)
    }

    /// A core whose clients resolve host names with `resolver` instead of the system's (tests
    /// make a name resolve where they need it).
    pub fn with_resolver(env: Env, resolver: Arc<dyn Resolve>) -> Arc<Core> {
        Core::build(env, HttpClients::with_resolver(resolver), Traces::new())
    }

    fn build(env: Env, http: HttpClients, traces: Traces) -> Arc<Core> {
        let metrics = Metrics::new();
        metrics.register(|r| traces.register(r));
        Arc::new(Core {
            metrics,
            jwks: JwksCache::new(http.unrestricted(0)),
            http,
            stores: Stores::default(),
            env,
            status: Status::default(),
            traces,
        })
    }

    /// The store handle of a gateway's config version.
    pub fn store_for(
        &self,
        config: &GatewayConfig,
        credentials: &Credentials,
    ) -> Result<StoreHandle, StoreSetupError> {
        self.stores.handle(config, credentials, &self.metrics)
    }
}

/// What the admin port reports: whether the process is ready, and the config each gateway
/// serves.
#[derive(Default)]
pub struct Status {
    ready: AtomicBool,
    configs: Mutex<BTreeMap<String, InService>>,
}

/// The config a gateway serves.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InService {
    /// `namespace/name`.
    pub gateway: String,
    /// Its layer.
    pub layer: crate::config::Layer,
    /// SHA-256 of the config's JSON.
    pub config_hash: String,
    /// Digest of the credentials bundle.
    pub credentials_digest: String,
    /// Listener port.
    pub port: u16,
}

impl InService {
    /// What serving `gw` on `port` reports.
    pub fn of(gw: &CompiledGateway, port: u16) -> InService {
        InService {
            gateway: format!("{}/{}", gw.config.gateway.namespace, gw.config.gateway.name),
            layer: gw.config.gateway.layer,
            config_hash: gw.config.hash(),
            credentials_digest: gw.credentials.digest(),
            port,
        }
    }
}

impl Status {
    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Sets readiness.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Records the config a gateway now serves.
    pub fn serving(&self, s: InService) {
        self.configs.lock().unwrap_or_else(|e| e.into_inner()).insert(s.gateway.clone(), s);
    }

    /// Forgets a gateway that is no longer served.
    pub fn stopped(&self, gateway: &str) {
        self.configs.lock().unwrap_or_else(|e| e.into_inner()).remove(gateway);
    }

    /// The configs in service, by gateway.
    pub fn configs(&self) -> Vec<InService> {
        self.configs.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }
}
