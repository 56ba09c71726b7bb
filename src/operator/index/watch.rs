//! The watches behind the index's stores: each one drives a `kube-runtime` watcher into a
//! reflector store on its own task, strips what the operator never reads, counts restarts and
//! errors, tells the index when its first list is complete, and (for the Cairn kinds) marks a
//! namespace changed when what compile reads of an object changed.

use super::changes::Changes;
use crate::operator::metrics::Metrics;
use futures_util::{Stream, StreamExt};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Room for events not yet taken by a subscriber of a shared child watch.
const SHARED_BUFFER: usize = 1024;

pub(super) fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Drops what the operator never reads and the API server repeats on every object.
pub(super) fn slim<K: ResourceExt>(obj: &mut K) {
    obj.managed_fields_mut().clear();
    obj.annotations_mut().remove(LAST_APPLIED);
}

/// How many stores hold their first complete list. (Counted here rather than by waiting on the
/// stores: kube-runtime's `Store::wait_until_ready` wakes only the last of several waiters, and
/// the controllers already wait on the Cairn stores.)
pub(super) type Synced = Arc<tokio::sync::watch::Sender<usize>>;
/// Stores per scope: eight Cairn kinds, Secret metadata, nine child kinds.
pub(super) const STORES: usize = 18;

/// What a watch event did, after the store holds it.
pub(super) enum Touch<'a, K> {
    /// A relist starts.
    Relist,
    /// An object was created or changed (or listed).
    Apply(&'a K),
    /// An object was deleted.
    Delete(&'a K),
    /// A relist (not the first list) is complete.
    Relisted,
}

/// Drives a watch into a store on its own task, counting restarts; `on_event` runs for each
/// event after the store holds it.
pub(super) fn drive<K, S>(
    kind: &'static str,
    stream: S,
    metrics: Arc<Metrics>,
    synced: Synced,
    mut on_event: impl FnMut(Touch<'_, K>) + Send + 'static,
) where
    K: Resource + Clone + Send + Sync + 'static,
    S: Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut inits = 0u64;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => {
                    inits += 1;
                    if inits > 1 {
                        metrics.watch_restart(kind);
                    }
                    on_event(Touch::Relist);
                }
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => on_event(Touch::Apply(&o)),
                Ok(watcher::Event::Delete(o)) => on_event(Touch::Delete(&o)),
                Ok(watcher::Event::InitDone) => {
                    if inits == 1 {
                        tracing::debug!(store = kind, "cache synced");
                        synced.send_modify(|n| *n += 1);
                    } else {
                        on_event(Touch::Relisted);
                    }
                }
                Err(e) => {
                    metrics.watch_error(kind);
                    tracing::warn!(kind, error = %e, "watch failed; retrying with backoff");
                }
            }
        }
    });
}

/// A Cairn kind: full objects. An event marks its namespace changed when what compile reads of
/// the object may have changed — its `generation` (the spec), labels (policy selectors) or
/// existence — and not for the operator's own status writes, which would otherwise recompile the
/// namespace once per status written.
pub(super) fn cairn_store<K>(
    kind: &'static str,
    client: &Client,
    ns: Option<&str>,
    metrics: &Arc<Metrics>,
    changes: &Arc<Changes>,
    synced: &Synced,
) -> Store<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api::<K>(client, ns), watcher::Config::default())
        .default_backoff()
        .modify(slim)
        .reflect(writer);
    let changes = changes.clone();
    let mut seen: HashMap<(String, String), u64> = HashMap::new();
    let mut before_relist: BTreeSet<String> = BTreeSet::new();
    let key = |o: &K| (o.namespace().unwrap_or_default(), o.name_any());
    drive(kind, stream, metrics.clone(), synced.clone(), move |touch: Touch<'_, K>| match touch {
        Touch::Relist => {
            before_relist = seen.keys().map(|(ns, _)| ns.clone()).collect();
            seen.clear();
        }
        Touch::Apply(o) => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&(o.meta().generation, &o.meta().labels, o.meta().uid.as_deref()), &mut h);
            let (k, v) = (key(o), std::hash::Hasher::finish(&h));
            if seen.insert(k.clone(), v) != Some(v) {
                changes.mark(&k.0);
            }
        }
        Touch::Delete(o) => {
            let k = key(o);
            seen.remove(&k);
            changes.mark(&k.0);
        }
        // Objects deleted while the watch was down leave no Delete: recompile every namespace
        // that had objects before.
        Touch::Relisted => {
            for ns in std::mem::take(&mut before_relist) {
                changes.mark(&ns);
            }
        }
    });
    reader
}

/// A child kind, shared between the controllers that own it.
pub(super) fn child_writer<K>() -> (Store<K>, Writer<K>)
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    reflector::store_shared(SHARED_BUFFER)
}

pub(super) fn drive_child<K, S>(
    kind: &'static str,
    stream: S,
    writer: Writer<K>,
    metrics: &Arc<Metrics>,
    synced: &Synced,
) where
    K: Resource<DynamicType = ()> + ResourceExt + Clone + Debug + Send + Sync + 'static,
    S: Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
{
    let stream = stream.default_backoff().modify(slim).reflect_shared(writer);
    drive(kind, stream, metrics.clone(), synced.clone(), |_: Touch<'_, K>| {});
}
