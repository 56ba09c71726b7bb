//! Configs from the Kubernetes API (`cairn gateway --namespace NS --config-map B-config --secret
//! B-credentials`, what the operator's Deployments run; docs/architecture.md and the contract in
//! `crate::config::packed`).
//!
//! The gateway watches exactly its objects, by name: the main ConfigMap, the part ConfigMaps its
//! manifest names (watched as the manifest names them: the Role lists exactly the current parts)
//! and the credentials Secret ([`watch`]). After every change it assembles what it sees
//! ([`assemble`]): a write in progress (a part or the Secret of another version, an object not
//! written yet) is waited for; a complete config is built and swapped in by the supervisor; a
//! config that cannot be served is refused — the last good one keeps serving, the refusal is
//! counted (`cairn_config_reloads_total{result="refused"}`), logged once, and written as one
//! `ConfigRefused` Event on the gateway object ([`event`]). `/readyz` turns 200 once the first
//! complete, valid config serves. At start-up the gateway checks it may list its ConfigMap and
//! Secret by name: a Role that does not allow it is an error naming the object, not a silent
//! wait.

pub mod assemble;
pub mod event;
pub mod watch;

use crate::config::Layer;
use crate::gateway::core::Core;
use crate::gateway::metrics::ReloadLabels;
use crate::gateway::server::Shutdown;
use crate::gateway::supervisor::{Applied, Supervisor};
use assemble::{Assembled, Seen, assemble};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use std::collections::BTreeMap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use watch::{Slot, Update};

/// Where a gateway's config lives in the cluster.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The namespace of its objects.
    pub namespace: String,
    /// The main ConfigMap (`<base>-config`).
    pub config_map: String,
    /// The credentials Secret (`<base>-credentials`).
    pub secret: String,
    /// This process, as Events name their reporter (the pod's name).
    pub instance: String,
}

/// Why configs from the API cannot be followed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No client: no in-cluster config and no usable kubeconfig.
    #[error("cannot reach the Kubernetes API: {0}")]
    Client(#[source] kube::Error),
    /// The gateway's ServiceAccount may not read one of its objects.
    #[error(
        "this gateway may not list {kind} {name} in namespace {namespace} ({reason}): its Role must \
         allow get, list and watch on it by resourceNames"
    )]
    Forbidden {
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The namespace.
        namespace: String,
        /// The API server's answer.
        reason: String,
    },
}

/// The config of the gateway, as it stands.
struct State {
    seen: Seen,
    /// The part watches, by index (their number follows the manifest).
    parts: BTreeMap<usize, JoinHandle<()>>,
    /// The last refusal reported (config hash and message), reported once.
    refused: Option<(Option<String>, String)>,
    /// The last wait logged.
    waiting: Option<String>,
}

/// Follows the config in `cluster` through `sup` until `shutdown`.
pub async fn follow(
    sup: &mut Supervisor,
    core: &Core,
    layer: Layer,
    cluster: Cluster,
    client: kube::Client,
    mut shutdown: Shutdown,
) -> Result<(), ClusterError> {
    let ns = &cluster.namespace;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    check_access(&config_maps, "ConfigMap", &cluster.config_map, ns).await?;
    check_access(&secrets, "Secret", &cluster.secret, ns).await?;
    let (cm_tx, mut cm_rx) = mpsc::channel::<Update<ConfigMap>>(16);
    let (secret_tx, mut secret_rx) = mpsc::channel::<Update<Secret>>(4);
    let main = watch::spawn(config_maps.clone(), cluster.config_map.clone(), Slot::Main, cm_tx.clone());
    let credentials = watch::spawn(secrets, cluster.secret.clone(), Slot::Secret, secret_tx);
    tracing::info!(namespace = %ns, config_map = %cluster.config_map, secret = %cluster.secret, "watching the gateway's config");
    let mut state = State { seen: Seen::default(), parts: BTreeMap::new(), refused: None, waiting: None };
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            Some(u) = cm_rx.recv() => state.config_map(u),
            Some(u) = secret_rx.recv() => state.seen.secret = u.object,
        }
        // Take whatever else arrived meanwhile before assembling (the operator writes the
        // Secret, the parts and the main ConfigMap in quick succession).
        while let Ok(u) = cm_rx.try_recv() {
            state.config_map(u);
        }
        while let Ok(u) = secret_rx.try_recv() {
            state.seen.secret = u.object;
        }
        state.watch_parts(&config_maps, &cluster.config_map, &cm_tx);
        match assemble(&state.seen, &cluster.config_map, &cluster.secret, layer) {
            Assembled::Waiting(why) => {
                if state.waiting.as_ref() != Some(&why) {
                    tracing::info!(reason = %why, "waiting for the config to be complete");
                    state.waiting = Some(why);
                }
            }
            Assembled::Refused { config_hash, error } => {
                state.waiting = None;
                let message = format!(
                    "config refused ({}): {error}; the last good config keeps serving",
                    error.category()
                );
                state.refuse(core, &cluster, layer, &client, config_hash, message, None, true);
            }
            Assembled::Ready { gateway, manifest } => {
                state.waiting = None;
                let gateway_id =
                    format!("{}/{}", gateway.config.gateway.namespace, gateway.config.gateway.name);
                match sup.apply(std::slice::from_ref(&*gateway)).await.pop() {
                    Some((_, Applied::Refused(e))) => {
                        let message = format!("config refused: {e}; the last good config keeps serving");
                        let hash = Some(manifest.config_hash.clone());
                        // The supervisor counted it.
                        state.refuse(core, &cluster, layer, &client, hash, message, Some(gateway_id), false);
                    }
                    _ => {
                        state.refused = None;
                        core.status.set_ready(true);
                    }
                }
            }
        }
    }
    main.abort();
    credentials.abort();
    for (_, p) in std::mem::take(&mut state.parts) {
        p.abort();
    }
    Ok(())
}

/// Lists `name` the way its watch will, once: a `401`/`403` is an error naming the object.
async fn check_access<K>(
    api: &Api<K>,
    kind: &'static str,
    name: &str,
    namespace: &str,
) -> Result<(), ClusterError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match watch::may_list(api, name).await {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 401 || s.code == 403 => Err(ClusterError::Forbidden {
            kind,
            name: name.to_string(),
            namespace: namespace.to_string(),
            reason: s.message.clone(),
        }),
        // Not reachable now: the watch keeps trying.
        Err(e) => {
            tracing::warn!(kind, object = name, error = %e, "cannot check access yet");
            Ok(())
        }
    }
}

impl State {
    fn config_map(&mut self, u: Update<ConfigMap>) {
        match u.slot {
            Slot::Main => self.seen.main = u.object,
            Slot::Part(i) => match u.object {
                Some(cm) if self.parts.contains_key(&i) => {
                    self.seen.parts.insert(i, cm);
                }
                _ => {
                    self.seen.parts.remove(&i);
                }
            },
            Slot::Secret => {}
        }
    }

    /// Watches exactly the parts the current manifest names.
    fn watch_parts(&mut self, api: &Api<ConfigMap>, config_map: &str, tx: &mpsc::Sender<Update<ConfigMap>>) {
        let wanted = self
            .seen
            .main
            .as_ref()
            .and_then(|m| m.data.as_ref()?.get(crate::config::packed::MANIFEST_KEY))
            .and_then(|t| crate::config::packed::Manifest::from_json(t).ok())
            .map_or(1, |m| m.parts as usize);
        let gone: Vec<usize> = self.parts.keys().copied().filter(|i| *i >= wanted).collect();
        for i in gone {
            if let Some(h) = self.parts.remove(&i) {
                h.abort();
            }
            self.seen.parts.remove(&i);
        }
        for i in 1..wanted {
            self.parts.entry(i).or_insert_with(|| {
                let name = crate::config::packed::part_name(config_map, i);
                watch::spawn(api.clone(), name, Slot::Part(i), tx.clone())
            });
        }
    }

    /// Reports a refused config once: the reload metric (unless the supervisor counted it), one
    /// log line, one Event.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        core: &Core,
        cluster: &Cluster,
        layer: Layer,
        client: &kube::Client,
        config_hash: Option<String>,
        message: String,
        gateway: Option<String>,
        count: bool,
    ) {
        let key = (config_hash, message);
        if self.refused.as_ref() == Some(&key) {
            return;
        }
        let message = key.1.clone();
        self.refused = Some(key);
        let object = event::involved(self.seen.main.as_ref(), &cluster.namespace, &cluster.config_map, layer);
        let gateway = gateway
            .unwrap_or_else(|| format!("{}/{}", cluster.namespace, object.name.clone().unwrap_or_default()));
        if count {
            core.metrics
                .reloads
                .get_or_create(&ReloadLabels { gateway: gateway.clone(), result: "refused" })
                .inc();
        }
        tracing::warn!(%gateway, "{message}");
        let (client, instance) = (client.clone(), cluster.instance.clone());
        tokio::spawn(async move {
            if let Err(e) = event::refused(client, object, message, instance).await {
                tracing::warn!(%gateway, error = %e, "could not write the ConfigRefused event");
            }
        });
    }
}
