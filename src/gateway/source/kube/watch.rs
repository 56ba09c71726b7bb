//! Watching one object by name (`fieldSelector=metadata.name=<name>`, the only list and watch a
//! Role with `resourceNames` allows), with kube-runtime's watcher: it lists, then watches,
//! and when the watch breaks (the API server restarts or goes away) it backs off and lists
//! again, so a gateway resumes by itself. What it sees goes to the source's loop as
//! [`Update`]s: the object as it stands after every change, `None` once it is gone.

use futures_util::StreamExt;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Which of a gateway's objects an update is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The main ConfigMap.
    Main,
    /// Part `i` (≥ 1).
    Part(usize),
    /// The credentials Secret.
    Secret,
}

/// One object as it now stands.
#[derive(Debug)]
pub struct Update<K> {
    /// Which.
    pub slot: Slot,
    /// The object, or `None` when there is none (yet).
    pub object: Option<K>,
}

/// Watches the object `name` of `api` in a task of its own, sending its state on `tx` after the
/// first list and after every change, until `tx` closes or the task is aborted.
pub fn spawn<K>(api: Api<K>, name: String, slot: Slot, tx: mpsc::Sender<Update<K>>) -> JoinHandle<()>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        // Objects of a list in progress (a restart lists again), sent when it is complete.
        let mut listed: Option<Option<K>> = None;
        while let Some(event) = stream.next().await {
            let object = match event {
                Ok(Event::Init) => {
                    listed = Some(None);
                    continue;
                }
                Ok(Event::InitApply(o)) => {
                    listed = Some(Some(o));
                    continue;
                }
                Ok(Event::InitDone) => listed.take().flatten(),
                Ok(Event::Apply(o)) => Some(o),
                Ok(Event::Delete(_)) => None,
                Err(e) => {
                    tracing::warn!(object = %name, error = %e, "watch interrupted; resuming with backoff");
                    continue;
                }
            };
            if tx.send(Update { slot, object }).await.is_err() {
                return;
            }
        }
    })
}

/// Whether this process may list the object `name` of `api` (by name, as its watch will):
/// `Err` is the API's answer, for a refusal (`403`) to be reported as such at start-up.
pub async fn may_list<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    api.list_metadata(&ListParams::default().fields(&format!("metadata.name={name}"))).await.map(|_| ())
}
