//! What the serving commands run, above the gateway: the layers this binary serves, `cairn run`
//! (manifests → [`crate::workspace`] → compiled configs → the gateway core, hot-reloading) and
//! `cairn gateway` (one layer, its config from files or the Kubernetes API). The gateway never
//! sees manifests; this module hands it compiled configs.

use crate::compile::Mode;
use crate::config::Layer;
use crate::gateway::admin;
use crate::gateway::agent::AgentLayer;
use crate::gateway::ai::AiLayer;
use crate::gateway::core::{Core, Env};
use crate::gateway::layer::Layers;
use crate::gateway::mcp::McpLayer;
use crate::gateway::server::Shutdown;
use crate::gateway::source::file::{self, FileError, POLL_INTERVAL, fingerprint};
use crate::gateway::source::kube::{self as cluster, Cluster, ClusterError};
use crate::gateway::supervisor::Supervisor;
use crate::gateway::telemetry::Traces;
use crate::manifest::Options;
use crate::workspace::Workspace;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// How long queued spans may take to be exported when the process stops.
const TRACES_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Where to listen.
#[derive(Clone, Debug)]
pub struct Listen {
    /// Address of every listener.
    pub address: IpAddr,
    /// Admin port (`/metrics`, `/healthz`, `/readyz`, `/config`); `None` serves no admin endpoints.
    pub admin_port: Option<u16>,
}

/// Where `cairn gateway` takes its config from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A compiled config file and a credentials bundle file, polled.
    Files {
        /// The config (JSON, as in the gateway's ConfigMap).
        config: PathBuf,
        /// The credentials bundle.
        credentials: Option<PathBuf>,
    },
    /// The gateway's ConfigMaps and Secret, watched through the Kubernetes API (the client from
    /// the in-cluster config in a pod, `KUBECONFIG` outside one).
    Cluster(Cluster),
}

/// The namespace of `cairn gateway`'s objects: `--namespace`, else `POD_NAMESPACE` (set by the
/// Deployment from the downward API), else the pod's ServiceAccount namespace file.
pub fn cluster_namespace(flag: Option<String>) -> Result<String, ServeError> {
    const SA_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
    flag.filter(|n| !n.is_empty())
        .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
        .or_else(|| {
            std::fs::read_to_string(SA_NAMESPACE).ok().map(|n| n.trim().to_string()).filter(|n| !n.is_empty())
        })
        .ok_or(ServeError::NoNamespace)
}

/// This process as Events name their reporter: the pod's name (`HOSTNAME`).
pub fn instance_name() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "cairn-gateway".to_string())
}

/// Why a serving command stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The admin port cannot be bound.
    #[error("cannot listen on admin port {address}: {source}")]
    Admin {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Configs from files.
    #[error(transparent)]
    File(#[from] FileError),
    /// Configs from the API.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Cluster mode without a namespace.
    #[error("no namespace: pass --namespace, or set POD_NAMESPACE, or run in a pod")]
    NoNamespace,
}

/// The three layers, for a process whose core is `core`.
pub fn layers(core: &Arc<Core>) -> Layers {
    Layers::new().with(AiLayer::new(core)).with(McpLayer::new(core)).with(AgentLayer::new(core))
}

async fn start_admin(
    listen: &Listen,
    core: &Arc<Core>,
    shutdown: &Shutdown,
) -> Result<Option<JoinHandle<()>>, ServeError> {
    let Some(port) = listen.admin_port else { return Ok(None) };
    let address = SocketAddr::new(listen.address, port);
    let task = admin::start(address, core.clone(), shutdown.clone())
        .await
        .map_err(|source| ServeError::Admin { address, source })?;
    Ok(Some(task))
}

/// Loads and compiles manifests for local mode, logging their problems as `cairn validate`
/// reports them.
fn load_manifests(paths: &[PathBuf], options: &Options) -> Workspace {
    let ws = Workspace::load(paths, options, &Mode::Local);
    for line in ws.report() {
        tracing::warn!("{line}");
    }
    ws
}

/// `cairn run -f PATH...`: serves every gateway the manifests define until `shutdown`,
/// reloading when the files change (a bad edit keeps the last good config).
pub async fn run(
    paths: Vec<PathBuf>,
    options: Options,
    listen: Listen,
    traces: Traces,
    mut shutdown: Shutdown,
) -> Result<(), ServeError> {
    let core = Core::with_traces(Env::from_process(), traces);
    let admin = start_admin(&listen, &core, &shutdown).await?;
    let mut sup = Supervisor::new(core.clone(), layers(&core), listen.address);
    let mut seen = fingerprint(&paths);
    let ws = load_manifests(&paths, &options);
    if ws.output.gateways.is_empty() {
        tracing::warn!("no gateway in the manifests yet (define an AIGateway); watching the files");
    }
    let started = sup.apply_all(&ws.output.gateways).await;
    core.status.set_ready(started);
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            _ = interval.tick() => {}
        }
        let now = fingerprint(&paths);
        if now == seen {
            continue;
        }
        seen = now;
        tracing::info!("manifests changed: reloading");
        let ws = load_manifests(&paths, &options);
        if !ws.problems.is_empty() {
            let n = ws.problems.len();
            tracing::warn!(
                "keeping the last good config: {n} document{} failed to load (fix and save again)",
                if n == 1 { "" } else { "s" }
            );
            continue;
        }
        let ok = sup.apply_all(&ws.output.gateways).await;
        core.status.set_ready(ok || core.status.is_ready());
    }
    core.status.set_ready(false);
    sup.shutdown().await;
    core.traces.shutdown(TRACES_GRACE).await;
    if let Some(a) = admin {
        let _ = a.await;
    }
    Ok(())
}

/// `cairn gateway --layer L …`: serves one gateway of layer `layer`, its config from `source`,
/// until `shutdown`.
pub async fn gateway(
    layer: Layer,
    source: Source,
    listen: Listen,
    traces: Traces,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    let core = Core::with_traces(Env::from_process(), traces);
    let admin = start_admin(&listen, &core, &shutdown).await?;
    let mut sup = Supervisor::new(core.clone(), layers(&core), listen.address);
    let result = match source {
        Source::Files { config, credentials } => {
            file::follow(&mut sup, &core, layer, config, credentials, shutdown)
                .await
                .map_err(ServeError::from)
        }
        Source::Cluster(c) => match kube::Client::try_default().await {
            Ok(client) => {
                cluster::follow(&mut sup, &core, layer, c, client, shutdown).await.map_err(ServeError::from)
            }
            Err(e) => Err(ClusterError::Client(e).into()),
        },
    };
    core.status.set_ready(false);
    sup.shutdown().await;
    core.traces.shutdown(TRACES_GRACE).await;
    if let Some(a) = admin {
        // On an error the admin server still runs: it stops with the process.
        if result.is_ok() {
            let _ = a.await;
        } else {
            a.abort();
        }
    }
    result
}
