//! `cairn operator`: turns the eight Cairn kinds into running, configured gateways, and keeps
//! them so.
//!
//! A reconcile flows through one module per stage:
//! [`index`] (watches into stores; the only reads) → [`compile`] (the pure
//! [`crate::compile::compile`] per changed namespace, and which objects that changes) →
//! [`render`] (pure: a compiled gateway and its spec → child objects) → [`apply`] (server-side
//! apply with one field manager, prune) → [`status`] (conditions, written only when changed).
//! [`controller`] wires them per kind; [`leader`] decides which replica writes; [`metrics`]
//! counts and serves `/metrics`, `/healthz`, `/readyz`; [`trace`] opens the spans of reconciles
//! and compiles (exported by `main.rs` when given an OTLP endpoint). The operator's own
//! permissions are the table in [`rbac`].

pub mod answers;
pub mod apply;
pub mod args;
pub mod backoff;
pub mod compile;
pub mod context;
pub mod controller;
pub mod error;
pub mod index;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod rbac;
pub mod render;
pub mod status;
pub mod trace;

use crate::api::{GatewayCommon, Object};
use crate::config::Layer;
use std::net::SocketAddr;
use std::sync::Arc;

/// The layer and shared spec of a gateway object; `None` for the other kinds.
pub fn gateway_spec(obj: &Object) -> Option<(Layer, &GatewayCommon)> {
    match obj {
        Object::AIGateway(g) => Some((Layer::Ai, &g.spec.common)),
        Object::MCPGateway(g) => Some((Layer::Mcp, &g.spec.common)),
        Object::AgentGateway(g) => Some((Layer::Agent, &g.spec.common)),
        _ => None,
    }
}

/// How `cairn operator` runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Namespaces to watch; empty: all.
    pub namespaces: Vec<String>,
    /// The Cairn image and pull policy for gateway pods.
    pub settings: render::Settings,
    /// Cluster DNS domain (for the addresses of deployed MCP servers).
    pub cluster_domain: String,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub http_address: SocketAddr,
    /// Elect a leader through a Lease (off: this replica always writes).
    pub leader_elect: bool,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity (Lease holder, Event reporter).
    pub identity: String,
}

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No usable kubeconfig or in-cluster config.
    #[error("connecting to the Kubernetes API: {0}")]
    Client(#[from] kube::Error),
    /// The HTTP endpoint's address is taken.
    #[error("listening on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    /// The Lease could not be set up.
    #[error("joining the leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
}

impl StartError {
    /// Low-cardinality name.
    pub fn category(&self) -> &'static str {
        match self {
            StartError::Client(_) => "client",
            StartError::Listen(..) => "listen",
            StartError::Lease(_) => "lease",
        }
    }
}

/// Runs the operator until `shutdown` resolves: then it finishes the reconciles in flight,
/// releases the Lease and returns.
pub async fn run(
    opts: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let client = kube::Client::try_default().await?;
    let metrics = Arc::new(metrics::Metrics::new());
    let listener = tokio::net::TcpListener::bind(opts.http_address)
        .await
        .map_err(|e| StartError::Listen(opts.http_address, e))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || -> controller::Shutdown {
        let mut rx = stop_rx.clone();
        Box::pin(async move {
            let _ = rx.wait_for(|s| *s).await;
        })
    };
    tokio::spawn(metrics::serve(listener, metrics.clone(), stopped()));
    tracing::info!(address = %opts.http_address, namespaces = ?opts.namespaces, image = %opts.settings.image,
                   "cairn operator starting");

    let (election, leadership) = if opts.leader_elect {
        let (e, l) = leader::Election::start(
            client.clone(),
            &opts.lease_namespace,
            &opts.lease_name,
            &opts.identity,
            metrics.clone(),
        )
        .await?;
        (Some(e), l)
    } else {
        metrics.set_leader(true);
        (None, leader::Leadership::always())
    };
    let reporter = kube::runtime::events::Reporter {
        controller: "cairn-operator".into(),
        instance: Some(opts.identity.clone()),
    };
    let recorder = kube::runtime::events::Recorder::new(client.clone(), reporter);
    let scopes: Vec<Option<String>> = if opts.namespaces.is_empty() {
        vec![None]
    } else {
        opts.namespaces.iter().cloned().map(Some).collect()
    };
    let runs = scopes.into_iter().map(|namespace| {
        let params = controller::ScopeParams {
            client: client.clone(),
            namespace,
            settings: opts.settings.clone(),
            cluster_domain: opts.cluster_domain.clone(),
            leader: leadership.clone(),
            metrics: metrics.clone(),
            recorder: recorder.clone(),
        };
        controller::run_scope(params, stopped.clone())
    });
    let all = futures_util::future::join_all(runs);
    tokio::pin!(all);
    tokio::select! {
        _ = &mut all => {}
        _ = shutdown => {
            tracing::info!("shutting down: finishing the reconciles in flight");
            let _ = stop_tx.send(true);
            all.await;
        }
    }
    if let Some(e) = election {
        e.release().await;
    }
    tracing::info!("cairn operator stopped");
    Ok(())
}
