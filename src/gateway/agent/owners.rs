//! Task ownership: which caller created a task through the gateway. A task belongs to the caller
//! whose call first revealed its id (the answer to `SendMessage`, or the first event of
//! `SendStreamingMessage` that names it); later calls on the task by anyone else are answered
//! as if the task did not exist. An entry lives `taskOwnershipTtlMs` after its last use.
//!
//! Kept in memory per process: with several replicas, a task is known only to the replica that
//! created it (the limits store has no string values yet to share it through Redis).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Who owns a task, and the skill it was created for (`None`: not known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Caller subject.
    pub subject: String,
    /// Skill named when the task was created.
    pub skill: Option<String>,
}

struct Entry {
    owner: Owner,
    expires: Instant,
}

/// Task id → owner, with expiry.
#[derive(Default)]
pub struct Owners {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    /// Sweep expired entries when the map grows past this.
    sweep_at: usize,
}

/// The key of a task: gateway, agent and task id.
pub fn key(gateway: &str, agent: &str, task: &str) -> String {
    format!("{gateway}\u{0}{agent}\u{0}{task}")
}

impl Owners {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `owner` for `key` unless another live owner holds it. Returns the owner in force.
    pub fn claim(&self, key: &str, owner: Owner, ttl: Duration) -> Owner {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.map.len() >= inner.sweep_at.max(1024) {
            inner.map.retain(|_, e| e.expires > now);
            inner.sweep_at = inner.map.len() * 2;
        }
        let entry = inner
            .map
            .entry(key.to_string())
            .or_insert_with(|| Entry { owner: owner.clone(), expires: now + ttl });
        if entry.expires <= now {
            entry.owner = owner;
        }
        entry.expires = now + ttl;
        entry.owner.clone()
    }

    /// The live owner of `key`, refreshing its expiry.
    pub fn get(&self, key: &str, ttl: Duration) -> Option<Owner> {
        let now = Instant::now();
        let mut inner = self.lock();
        let e = inner.map.get_mut(key)?;
        if e.expires <= now {
            inner.map.remove(key);
            return None;
        }
        e.expires = now + ttl;
        Some(e.owner.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> Owner {
        Owner { subject: s.into(), skill: None }
    }

    #[test]
    fn first_claim_wins_until_it_expires() {
        let owners = Owners::default();
        let k = key("ns/gw", "billing", "t1");
        let ttl = Duration::from_secs(60);
        assert_eq!(owners.claim(&k, o("alice"), ttl).subject, "alice");
        assert_eq!(owners.claim(&k, o("bob"), ttl).subject, "alice");
        assert_eq!(owners.get(&k, ttl).unwrap().subject, "alice");
        assert_eq!(owners.get(&key("ns/gw", "other", "t1"), ttl), None);
        let short = Owners::default();
        short.claim(&k, o("alice"), Duration::ZERO);
        assert_eq!(short.get(&k, ttl), None);
        assert_eq!(short.claim(&k, o("bob"), ttl).subject, "bob");
    }
}
