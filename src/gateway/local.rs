//! Running gateways in this process from files: `cairn run -f` (manifests, local mode) and
//! `cairn gateway` (a compiled config and credentials bundle).
//!
//! Both poll their files every [`POLL_INTERVAL`] (modification time and size of every file)
//! rather than using inotify: editors save by rename, Kubernetes swaps mounted ConfigMaps through
//! a `..data` symlink, bind mounts and network filesystems often deliver no events at all, and
//! comparing a few `stat`s twice a second costs nothing while working the same everywhere. On a
//! change the files are read and compiled again and every affected gateway's config is swapped
//! atomically ([`ArcSwap`]): requests in flight finish on the config they started with. A bad
//! edit keeps the last good config and prints what is wrong.

use crate::compile::{CompiledGateway, Mode};
use crate::config::{Credentials, GatewayConfig, Layer};
use crate::gateway::admin::{self, Admin};
use crate::gateway::agent::AgentRuntime;
use crate::gateway::ai::state::AiRuntime;
use crate::gateway::mcp::McpRuntime;
use crate::gateway::server::{self, Shutdown};
use crate::gateway::state::Shared;
use crate::manifest::Options;
use crate::workspace::Workspace;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often files are checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Where to listen.
#[derive(Clone, Debug)]
pub struct Listen {
    /// Address of every listener.
    pub address: IpAddr,
    /// Admin port (`/metrics`, `/healthz`, `/readyz`); `None` serves no admin endpoints.
    pub admin_port: Option<u16>,
}

struct Served {
    port: u16,
    hash: String,
    runtime: LayerRuntime,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The served config of one gateway, by layer.
enum LayerRuntime {
    Ai(Arc<ArcSwap<AiRuntime>>),
    Mcp(Arc<ArcSwap<McpRuntime>>),
    Agent(Arc<ArcSwap<AgentRuntime>>),
}

impl LayerRuntime {
    /// Builds `gw`'s config and swaps it in; an error leaves the current one in service.
    fn swap(&self, gw: &CompiledGateway, shared: &Shared) -> Result<(), String> {
        match self {
            LayerRuntime::Ai(r) => {
                r.store(Arc::new(AiRuntime::build(gw.config.clone(), &gw.credentials, shared)?))
            }
            LayerRuntime::Mcp(r) => {
                r.store(Arc::new(McpRuntime::build(gw.config.clone(), &gw.credentials, shared)?))
            }
            LayerRuntime::Agent(r) => {
                r.store(Arc::new(AgentRuntime::build(gw.config.clone(), &gw.credentials, shared)?))
            }
        }
        Ok(())
    }
}

/// The gateways this process serves, kept in step with the compiled configs.
pub struct Supervisor {
    shared: Arc<Shared>,
    address: IpAddr,
    served: BTreeMap<String, Served>,
    /// Gateways of layers this build does not serve yet, already announced.
    announced: std::collections::BTreeSet<String>,
}

impl Supervisor {
    /// A supervisor serving nothing yet. The tokenizer used for usage estimates (≈ 45 MiB) is
    /// loaded on first use, not here: providers report usage, so most gateways never need it, and
    /// an idle gateway stays small.
    pub fn new(shared: Arc<Shared>, address: IpAddr) -> Self {
        Supervisor { shared, address, served: BTreeMap::new(), announced: Default::default() }
    }

    /// Ports served, by gateway.
    pub fn ports(&self) -> BTreeMap<String, u16> {
        self.served.iter().map(|(k, s)| (k.clone(), s.port)).collect()
    }

    /// Serves exactly `gateways`: starts new ones, swaps changed configs, stops removed ones. A
    /// gateway whose new config cannot be served keeps its previous one. Returns false if any
    /// gateway could not be served.
    pub async fn apply(&mut self, gateways: &[CompiledGateway]) -> bool {
        let mut ok = true;
        let mut keep = std::collections::BTreeSet::new();
        for gw in gateways {
            let id = gw.config.gateway.to_string();
            if !matches!(gw.config.gateway.layer, Layer::Ai | Layer::Mcp | Layer::Agent) {
                if self.announced.insert(id.clone()) {
                    eprintln!(
                        "gateway {id} is not served: the {} layer is not part of this build yet",
                        gw.config.gateway.layer
                    );
                }
                continue;
            }
            keep.insert(id.clone());
            let hash = gw.hash();
            let port = gw.config.listener.port;
            if let Some(s) = self.served.get_mut(&id)
                && s.port == port
            {
                if s.hash == hash {
                    continue;
                }
                match s.runtime.swap(gw, &self.shared) {
                    Ok(()) => {
                        s.hash = hash;
                        self.reload_metric(&id, "ok");
                        eprintln!("gateway {id}: new config in service");
                    }
                    Err(e) => {
                        ok = false;
                        self.reload_metric(&id, "refused");
                        eprintln!("gateway {id}: keeping the previous config: {e}");
                    }
                }
                continue;
            }
            // New, or moved to another port.
            if let Some(old) = self.served.remove(&id) {
                stop(old).await;
            }
            match self.start(gw, hash).await {
                Ok(s) => {
                    eprintln!("gateway {id} listening on {}:{}", self.address, s.port);
                    self.served.insert(id, s);
                }
                Err(e) => {
                    ok = false;
                    eprintln!("gateway {id}: {e}");
                }
            }
        }
        let gone: Vec<String> = self.served.keys().filter(|k| !keep.contains(*k)).cloned().collect();
        for id in gone {
            if let Some(s) = self.served.remove(&id) {
                eprintln!("gateway {id}: no longer configured, stopping");
                stop(s).await;
            }
        }
        ok
    }

    fn reload_metric(&self, id: &str, kind: &str) {
        self.shared
            .metrics
            .reloads
            .get_or_create(&crate::gateway::metrics::GatewayLabels {
                gateway: id.to_string(),
                kind: kind.into(),
            })
            .inc();
    }

    async fn start(&self, gw: &CompiledGateway, hash: String) -> Result<Served, String> {
        let port = gw.config.listener.port;
        let listener = TcpListener::bind(SocketAddr::new(self.address, port))
            .await
            .map_err(|e| format!("cannot listen on {}:{port}: {e}", self.address))?;
        let (stop, rx) = watch::channel(false);
        let (runtime, task) = if gw.config.gateway.layer == Layer::Mcp {
            let rt = Arc::new(ArcSwap::from_pointee(McpRuntime::build(
                gw.config.clone(),
                &gw.credentials,
                &self.shared,
            )?));
            (LayerRuntime::Mcp(rt.clone()), tokio::spawn(crate::gateway::mcp::serve(listener, rt, rx)))
        } else if gw.config.gateway.layer == Layer::Agent {
            let rt = Arc::new(ArcSwap::from_pointee(AgentRuntime::build(
                gw.config.clone(),
                &gw.credentials,
                &self.shared,
            )?));
            (
                LayerRuntime::Agent(rt.clone()),
                tokio::spawn(crate::gateway::agent::serve(listener, rt, self.shared.clone(), rx)),
            )
        } else {
            let rt = Arc::new(ArcSwap::from_pointee(AiRuntime::build(
                gw.config.clone(),
                &gw.credentials,
                &self.shared,
            )?));
            (
                LayerRuntime::Ai(rt.clone()),
                tokio::spawn(server::serve_ai(listener, rt, self.shared.clone(), rx)),
            )
        };
        Ok(Served { port, hash, runtime, stop, task })
    }

    /// Stops every gateway, letting open requests finish.
    pub async fn shutdown(&mut self) {
        let all = std::mem::take(&mut self.served);
        for (_, s) in all {
            stop(s).await;
        }
    }
}

async fn stop(s: Served) {
    let _ = s.stop.send(true);
    let _ = s.task.await;
}

/// Modification time and size of every file under `paths` (folders: `*.yaml`, `*.yml`).
pub fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out, true);
    }
    out.sort();
    out
}

fn walk(p: &Path, out: &mut Vec<(PathBuf, Option<SystemTime>, u64)>, top: bool) {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => {
            if let Ok(entries) = std::fs::read_dir(p) {
                for e in entries.flatten() {
                    walk(&e.path(), out, false);
                }
            }
        }
        Ok(m) => {
            let yaml = p.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if top || yaml {
                out.push((p.to_path_buf(), m.modified().ok(), m.len()));
            }
        }
        Err(_) if top => out.push((p.to_path_buf(), None, 0)),
        Err(_) => {}
    }
}

async fn start_admin(
    listen: &Listen,
    shared: &Arc<Shared>,
    ready: &Arc<AtomicBool>,
    shutdown: &Shutdown,
) -> Result<Option<JoinHandle<()>>, String> {
    let Some(port) = listen.admin_port else { return Ok(None) };
    let listener = TcpListener::bind(SocketAddr::new(listen.address, port))
        .await
        .map_err(|e| format!("cannot listen on admin port {}:{port}: {e}", listen.address))?;
    eprintln!("admin endpoints (/metrics /healthz /readyz) on {}:{port}", listen.address);
    let admin = Admin { shared: shared.clone(), ready: ready.clone() };
    Ok(Some(tokio::spawn(admin::serve(listener, admin, shutdown.clone()))))
}

/// Loads and compiles manifests for local mode, printing problems as `cairn validate` does.
fn load_manifests(paths: &[PathBuf], options: &Options) -> Workspace {
    let ws = Workspace::load(paths, options, &Mode::Local);
    for line in ws.report() {
        eprintln!("{line}");
    }
    ws
}

/// `cairn run -f PATH...`: serves every gateway the manifests define until `shutdown`.
pub async fn run(
    paths: Vec<PathBuf>,
    options: Options,
    listen: Listen,
    mut shutdown: Shutdown,
) -> Result<(), String> {
    let shared = Shared::new();
    let ready = Arc::new(AtomicBool::new(false));
    let admin = start_admin(&listen, &shared, &ready, &shutdown).await?;
    let mut sup = Supervisor::new(shared.clone(), listen.address);
    let mut seen = fingerprint(&paths);
    let ws = load_manifests(&paths, &options);
    if ws.output.gateways.is_empty() {
        eprintln!("no gateway in the manifests yet (define an AIGateway); watching the files");
    }
    let started = sup.apply(&ws.output.gateways).await;
    ready.store(started, Ordering::Release);
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
        eprintln!("manifests changed: reloading");
        let ws = load_manifests(&paths, &options);
        if !ws.problems.is_empty() {
            eprintln!(
                "keeping the last good config: {} document{} failed to load (fix and save again)",
                ws.problems.len(),
                if ws.problems.len() == 1 { "" } else { "s" }
            );
            continue;
        }
        let ok = sup.apply(&ws.output.gateways).await;
        ready.store(ok || ready.load(Ordering::Acquire), Ordering::Release);
    }
    ready.store(false, Ordering::Release);
    sup.shutdown().await;
    if let Some(a) = admin {
        let _ = a.await;
    }
    Ok(())
}

/// Reads a compiled config and a credentials bundle (`{"id": "value", ...}`).
pub fn read_compiled(config: &Path, credentials: Option<&Path>) -> Result<CompiledGateway, String> {
    let text = std::fs::read_to_string(config).map_err(|e| format!("reading {}: {e}", config.display()))?;
    let config_parsed = GatewayConfig::from_json(&text).map_err(|e| format!("{}: {e}", config.display()))?;
    let credentials = match credentials {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            Credentials::from_json(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => Credentials::default(),
    };
    Ok(CompiledGateway { config: config_parsed, credentials })
}

/// `cairn gateway --layer ai --config FILE --credentials FILE`: serves one compiled config,
/// reloading it when either file changes.
pub async fn gateway(
    layer: Layer,
    config: PathBuf,
    credentials: Option<PathBuf>,
    listen: Listen,
    mut shutdown: Shutdown,
) -> Result<(), String> {
    if !matches!(layer, Layer::Ai | Layer::Mcp | Layer::Agent) {
        return Err(format!(
            "the {layer} layer is not part of this build yet; only --layer ai and mcp are served"
        ));
    }
    let first = read_compiled(&config, credentials.as_deref())?;
    if first.config.gateway.layer != layer {
        return Err(format!(
            "{} is a config for {}, not for --layer {layer}",
            config.display(),
            first.config.gateway
        ));
    }
    let shared = Shared::new();
    let ready = Arc::new(AtomicBool::new(false));
    let admin = start_admin(&listen, &shared, &ready, &shutdown).await?;
    let mut sup = Supervisor::new(shared.clone(), listen.address);
    if !sup.apply(std::slice::from_ref(&first)).await {
        sup.shutdown().await;
        return Err(format!("cannot serve {}", first.config.gateway));
    }
    ready.store(true, Ordering::Release);
    let mut files = vec![config.clone()];
    files.extend(credentials.clone());
    let mut seen = fingerprint(&files);
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            _ = interval.tick() => {}
        }
        let now = fingerprint(&files);
        if now == seen {
            continue;
        }
        seen = now;
        match read_compiled(&config, credentials.as_deref()) {
            Ok(c) if c.config.gateway.layer == layer => {
                sup.apply(std::slice::from_ref(&c)).await;
            }
            Ok(c) => eprintln!("keeping the last good config: the new one is for {}", c.config.gateway),
            Err(e) => eprintln!("keeping the last good config: {e}"),
        }
    }
    ready.store(false, Ordering::Release);
    sup.shutdown().await;
    if let Some(a) = admin {
        let _ = a.await;
    }
    Ok(())
}

/// A shutdown channel that turns `true` on SIGINT or SIGTERM.
pub fn shutdown_on_signal() -> Shutdown {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        server::signal().await;
        eprintln!("shutting down: finishing open requests");
        let _ = tx.send(true);
    });
    rx
}
