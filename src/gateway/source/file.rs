//! Configs from files: `cairn gateway --config F [--credentials F]` (a compiled config and its
//! credentials bundle), and the polling `cairn run` uses for its manifests.
//!
//! Files are polled every [`POLL_INTERVAL`] (modification time and size of every file) rather
//! than watched with inotify: editors save by rename, Kubernetes swaps mounted ConfigMaps through
//! a `..data` symlink, bind mounts and network filesystems often deliver no events at all, and
//! comparing a few `stat`s twice a second costs nothing while working the same everywhere.

use crate::config::{CompiledGateway, ConfigError, Credentials, GatewayConfig, GatewayId, Layer};
use crate::gateway::core::Core;
use crate::gateway::server::Shutdown;
use crate::gateway::supervisor::{Applied, Supervisor};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How often files are checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Modification time and size of every file of a set.
pub type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// Why configs from files cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A file cannot be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a valid config or credentials bundle.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ConfigError,
    },
    /// The config is for another layer than `--layer`.
    #[error("{} is a config for {gateway}, not for --layer {layer}", path.display())]
    WrongLayer {
        /// The file.
        path: PathBuf,
        /// The config's gateway.
        gateway: GatewayId,
        /// `--layer`.
        layer: Layer,
    },
    /// The first config cannot be served.
    #[error("cannot serve {gateway}: {reason}")]
    NotServed {
        /// The gateway.
        gateway: GatewayId,
        /// Why.
        reason: String,
    },
}

/// Modification time and size of every file under `paths` (folders: `*.yaml`, `*.yml`).
pub fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out, true);
    }
    out.sort();
    out
}

fn walk(p: &Path, out: &mut Fingerprint, top: bool) {
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

/// Reads a compiled config and a credentials bundle (`{"id": "value", ...}`).
pub fn read_compiled(config: &Path, credentials: Option<&Path>) -> Result<CompiledGateway, FileError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| FileError::Read { path: path.to_path_buf(), source })
    };
    let parse = |path: &Path, source| FileError::Parse { path: path.to_path_buf(), source };
    let parsed = GatewayConfig::from_json(&read(config)?).map_err(|e| parse(config, e))?;
    let credentials = match credentials {
        Some(p) => Credentials::from_json(&read(p)?).map_err(|e| parse(p, e))?,
        None => Credentials::default(),
    };
    Ok(CompiledGateway { config: parsed, credentials })
}

/// Reads the files and checks the config is for `layer`.
fn read_for(layer: Layer, config: &Path, credentials: Option<&Path>) -> Result<CompiledGateway, FileError> {
    let c = read_compiled(config, credentials)?;
    if c.config.gateway.layer != layer {
        return Err(FileError::WrongLayer { path: config.to_path_buf(), gateway: c.config.gateway, layer });
    }
    Ok(c)
}

/// Serves the config in `config` (with `credentials`) through `sup` until `shutdown`, reloading
/// when either file changes; ready once the first config serves. A first config that cannot be
/// read or served is an error; a later one is logged and the last good config keeps serving.
pub async fn follow(
    sup: &mut Supervisor,
    core: &Core,
    layer: Layer,
    config: PathBuf,
    credentials: Option<PathBuf>,
    mut shutdown: Shutdown,
) -> Result<(), FileError> {
    let first = read_for(layer, &config, credentials.as_deref())?;
    if let Some((_, Applied::Refused(e))) = sup.apply(std::slice::from_ref(&first)).await.pop() {
        return Err(FileError::NotServed { gateway: first.config.gateway, reason: e.to_string() });
    }
    core.status.set_ready(true);
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
        match read_for(layer, &config, credentials.as_deref()) {
            Ok(c) => {
                sup.apply(std::slice::from_ref(&c)).await;
            }
            Err(e) => tracing::warn!(error = %e, "keeping the last good config"),
        }
    }
    Ok(())
}
