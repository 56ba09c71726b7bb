//! The config holder of a process: serves exactly the compiled gateways it is given, each on its
//! listener port, and on every new set starts new gateways, swaps changed configs in atomically
//! and stops removed gateways. A gateway whose new config cannot be built keeps serving its
//! previous one. Each outcome is counted (`cairn_config_reloads_total`: `ok` for a new config
//! swapped in, `refused` for one that could not be built), logged once, and the config in
//! service is published for the admin port and `cairn_config_info`.
//!
//! Config sources feed it: files ([`crate::gateway::source::file`], `cairn run`'s manifests
//! through `crate::serve`) or the Kubernetes API ([`crate::gateway::source::kube`]).

use crate::config::CompiledGateway;
use crate::gateway::core::{Core, InService};
use crate::gateway::layer::{BuildError, Holder, Layers};
use crate::gateway::metrics::{ConfigLabels, ReloadLabels, SubjectLabels};
use crate::gateway::server::Shutdown;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

struct Served {
    port: u16,
    hash: String,
    in_service: InService,
    /// The `cairn_subject_info` series of its config.
    subjects: Vec<SubjectLabels>,
    holder: Box<dyn Holder>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Why a gateway could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No layer of this process serves its configs.
    #[error("gateway {0} is not served: this process serves no {1} gateways")]
    NoLayer(String, crate::config::Layer),
    /// The listener port cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The config cannot be built.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// The outcome of [`Supervisor::apply`] for one gateway.
#[derive(Debug)]
pub enum Applied {
    /// Already served with this config.
    Unchanged,
    /// Started, or its new config swapped in.
    Serving,
    /// Not served, or kept on its previous config.
    Refused(ServeError),
}

/// The gateways this process serves, kept in step with the compiled configs.
pub struct Supervisor {
    core: Arc<Core>,
    layers: Layers,
    address: IpAddr,
    served: BTreeMap<String, Served>,
}

impl Supervisor {
    /// A supervisor serving nothing yet.
    pub fn new(core: Arc<Core>, layers: Layers, address: IpAddr) -> Self {
        Supervisor { core, layers, address, served: BTreeMap::new() }
    }

    /// Ports served, by gateway.
    pub fn ports(&self) -> BTreeMap<String, u16> {
        self.served.iter().map(|(k, s)| (k.clone(), s.port)).collect()
    }

    /// Serves exactly `gateways`: starts new ones, swaps changed configs, stops removed ones.
    /// Returns each gateway's outcome, in order.
    pub async fn apply(&mut self, gateways: &[CompiledGateway]) -> Vec<(String, Applied)> {
        let mut out = Vec::new();
        let mut keep = BTreeSet::new();
        for gw in gateways {
            let id = gw.config.gateway.to_string();
            keep.insert(id.clone());
            let applied = self.apply_one(&id, gw).await;
            out.push((id, applied));
        }
        let gone: Vec<String> = self.served.keys().filter(|k| !keep.contains(*k)).cloned().collect();
        for id in gone {
            if let Some(s) = self.served.remove(&id) {
                tracing::info!(gateway = %id, "no longer configured, stopping");
                self.stop(s).await;
            }
        }
        out
    }

    /// [`Supervisor::apply`], true when every gateway is served with its config.
    pub async fn apply_all(&mut self, gateways: &[CompiledGateway]) -> bool {
        self.apply(gateways).await.iter().all(|(_, a)| !matches!(a, Applied::Refused(_)))
    }

    async fn apply_one(&mut self, id: &str, gw: &CompiledGateway) -> Applied {
        let hash = gw.hash();
        let port = gw.config.listener.port;
        if let Some(s) = self.served.get_mut(id)
            && s.port == port
        {
            if s.hash == hash {
                return Applied::Unchanged;
            }
            return match s.holder.swap(gw) {
                Ok(()) => {
                    s.hash = hash;
                    traces(&self.core, gw);
                    let now = InService::of(gw, port);
                    publish(&self.core, Some(&s.in_service), &now);
                    s.in_service = now;
                    s.subjects = subjects(&self.core, &s.subjects, gw);
                    reload(&self.core, &s.in_service.gateway, "ok");
                    tracing::info!(gateway = %id, config_hash = %s.in_service.config_hash, "new config in service");
                    Applied::Serving
                }
                Err(e) => {
                    reload(&self.core, &s.in_service.gateway, "refused");
                    tracing::warn!(gateway = %id, error = %e, "keeping the previous config");
                    Applied::Refused(e.into())
                }
            };
        }
        // New, or moved to another port.
        if let Some(old) = self.served.remove(id) {
            self.stop(old).await;
        }
        match self.start(gw, hash).await {
            Ok(mut s) => {
                traces(&self.core, gw);
                s.subjects = subjects(&self.core, &[], gw);
                tracing::info!(gateway = %id, address = %self.address, port = s.port, config_hash = %s.in_service.config_hash, "listening");
                publish(&self.core, None, &s.in_service);
                self.served.insert(id.to_string(), s);
                Applied::Serving
            }
            Err(e) => {
                if matches!(e, ServeError::Build(_)) {
                    reload(&self.core, &InService::of(gw, port).gateway, "refused");
                }
                tracing::error!(gateway = %id, error = %e, "cannot serve");
                Applied::Refused(e)
            }
        }
    }

    async fn start(&self, gw: &CompiledGateway, hash: String) -> Result<Served, ServeError> {
        let layer = gw.config.gateway.layer;
        let Some(serves) = self.layers.get(layer) else {
            return Err(ServeError::NoLayer(gw.config.gateway.to_string(), layer));
        };
        let port = gw.config.listener.port;
        let address = SocketAddr::new(self.address, port);
        let listener =
            TcpListener::bind(address).await.map_err(|source| ServeError::Listen { address, source })?;
        let (stop, rx) = watch::channel(false);
        let (holder, task) = serves.start(listener, gw, rx)?;
        Ok(Served {
            port,
            hash,
            in_service: InService::of(gw, port),
            subjects: Vec::new(),
            holder,
            stop,
            task,
        })
    }

    async fn stop(&self, s: Served) {
        unpublish(&self.core, &s.in_service);
        subjects_gone(&self.core, &s.subjects);
        self.core.traces.remove(&s.in_service.gateway);
        let _ = s.stop.send(true);
        let _ = s.task.await;
    }

    /// Stops every gateway, letting open requests finish.
    pub async fn shutdown(&mut self) {
        let all = std::mem::take(&mut self.served);
        for (_, s) in all {
            self.stop(s).await;
        }
    }
}

/// Follows the gateway's telemetry settings (an exporter that cannot be built is logged; the
/// gateway serves, exporting nothing).
fn traces(core: &Core, gw: &CompiledGateway) {
    if let Err(e) = core.traces.configure(&gw.config.gateway, &gw.config.telemetry, core.http.unrestricted(0))
    {
        tracing::warn!(gateway = %gw.config.gateway, error = %e, "traces are not exported");
    }
}

/// Publishes the subjects of `gw` in `cairn_subject_info` (when it labels metrics by subject),
/// replacing `before`.
fn subjects(core: &Core, before: &[SubjectLabels], gw: &CompiledGateway) -> Vec<SubjectLabels> {
    subjects_gone(core, before);
    if !gw.config.telemetry.subject_labels {
        return Vec::new();
    }
    let gateway = format!("{}/{}", gw.config.gateway.namespace, gw.config.gateway.name);
    let now: Vec<SubjectLabels> = gw
        .config
        .policy
        .subjects
        .iter()
        .map(|s| SubjectLabels {
            gateway: gateway.clone(),
            subject: s.name.clone(),
            team: s.team.clone().unwrap_or_default(),
        })
        .collect();
    for l in &now {
        core.metrics.subjects.get_or_create(l).set(1);
    }
    now
}

fn subjects_gone(core: &Core, gone: &[SubjectLabels]) {
    for l in gone {
        core.metrics.subjects.remove(l);
    }
}

fn reload(core: &Core, gateway: &str, result: &'static str) {
    core.metrics.reloads.get_or_create(&ReloadLabels { gateway: gateway.to_string(), result }).inc();
}

fn config_labels(s: &InService) -> ConfigLabels {
    ConfigLabels { gateway: s.gateway.clone(), layer: s.layer.as_str(), hash: s.config_hash.clone() }
}

/// Publishes `now` as the config in service (replacing `before`).
fn publish(core: &Core, before: Option<&InService>, now: &InService) {
    if let Some(b) = before {
        core.metrics.config.remove(&config_labels(b));
    }
    core.metrics.config.get_or_create(&config_labels(now)).set(1);
    core.status.serving(now.clone());
}

fn unpublish(core: &Core, s: &InService) {
    core.metrics.config.remove(&config_labels(s));
    core.status.stopped(&s.gateway);
}

/// A shutdown channel that turns `true` on SIGINT or SIGTERM.
pub fn shutdown_on_signal() -> Shutdown {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        crate::gateway::server::signal().await;
        tracing::info!("shutting down: finishing open requests");
        let _ = tx.send(true);
    });
    rx
}
