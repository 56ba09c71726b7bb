//! What changed: the namespaces whose inputs moved since the compile stage last looked (marked by
//! the watches, taken by the compile stage), and the Secrets each namespace's last compile named
//! (an event of one of those marks its namespace).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use tokio::sync::Notify;

/// Namespaces whose inputs changed since the compile stage last looked, and the Secrets each
/// namespace's last compile named.
#[derive(Default)]
pub struct Changes {
    dirty: Mutex<BTreeSet<String>>,
    named_secrets: Mutex<HashMap<String, BTreeSet<String>>>,
    notify: Notify,
}

impl Changes {
    /// Marks a namespace changed and wakes the compile stage.
    pub fn mark(&self, ns: &str) {
        self.dirty.lock().unwrap_or_else(|e| e.into_inner()).insert(ns.to_string());
        self.notify.notify_one();
    }

    /// Takes the changed namespaces, waiting until there is at least one.
    pub async fn next(&self) -> BTreeSet<String> {
        loop {
            let taken = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()));
            if !taken.is_empty() {
                return taken;
            }
            self.notify.notified().await;
        }
    }

    /// Records the Secrets a namespace's compile named.
    pub fn set_named_secrets(&self, ns: &str, names: BTreeSet<String>) {
        self.named_secrets.lock().unwrap_or_else(|e| e.into_inner()).insert(ns.to_string(), names);
    }

    pub(super) fn secret_changed(&self, ns: &str, name: &str) {
        let named = self
            .named_secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(ns)
            .is_some_and(|names| names.contains(name));
        if named {
            self.mark(ns);
        }
    }
}
