//! Counters in process memory: one lock around a map, so every admission is atomic.

use super::keys::{
    Admission, BudgetReq, LimitReq, MAX_SEQ_LISTS, budget_key, retry_after, rl_expiry, rpm_key, tpm_key,
};
use crate::gateway::clock::unix_now;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counters held by this process only.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Key → (value, unix second at which it expires).
    counters: HashMap<String, (u64, u64)>,
    /// Admissions since the last sweep of expired counters.
    since_sweep: u32,
    /// Sequenced lists by key.
    lists: HashMap<String, SeqList>,
    /// Claims ([`super::Store::claim`]): key → (value, expiry).
    claims: HashMap<String, (String, Instant)>,
    /// Sweep expired claims when the map grows past this.
    claims_sweep_at: usize,
}

/// A sequenced list: the last number handed out, the items kept, the unix second it expires.
struct SeqList {
    last: u64,
    items: VecDeque<(u64, String)>,
    expires: u64,
}

impl Inner {
    fn value(&self, key: &str, now: u64) -> u64 {
        match self.counters.get(key) {
            Some(&(v, exp)) if exp > now => v,
            _ => 0,
        }
    }

    fn add(&mut self, key: &str, amount: u64, expires_at: u64, now: u64) {
        let e = self.counters.entry(key.to_string()).or_insert((0, expires_at));
        if e.1 <= now {
            *e = (0, expires_at);
        }
        e.0 = e.0.saturating_add(amount);
        e.1 = expires_at;
    }

    fn sweep(&mut self, now: u64) {
        self.since_sweep += 1;
        if self.since_sweep >= 4096 {
            self.since_sweep = 0;
            self.counters.retain(|_, (_, exp)| *exp > now);
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is a
        // single insert), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn admit(
        &self,
        prefix: &str,
        now: u64,
        limits: &[LimitReq],
        budgets: &[BudgetReq],
    ) -> Admission {
        let mut inner = self.lock();
        inner.sweep(now);
        for l in limits {
            if let Some(rpm) = l.rpm
                && inner.value(&rpm_key(prefix, &l.key, now), now) >= rpm
            {
                return Admission::RateLimited {
                    key: l.key.clone(),
                    what: "requests",
                    limit: rpm,
                    retry_after: retry_after(now),
                };
            }
        }
        for l in limits {
            if let Some(tpm) = l.tpm
                && inner.value(&tpm_key(prefix, &l.key, now), now) >= tpm
            {
                return Admission::RateLimited {
                    key: l.key.clone(),
                    what: "tokens",
                    limit: tpm,
                    retry_after: retry_after(now),
                };
            }
        }
        for b in budgets.iter().filter(|b| b.block) {
            if inner.value(&budget_key(prefix, &b.key), now) >= b.limit_micros {
                return Admission::OverBudget { key: b.key.clone() };
            }
        }
        for l in limits.iter().filter(|l| l.rpm.is_some()) {
            inner.add(&rpm_key(prefix, &l.key, now), 1, rl_expiry(now), now);
        }
        Admission::Allowed
    }

    pub(super) fn add(&self, keys: &[(String, u64)], amount: u64) {
        let now = unix_now();
        let mut inner = self.lock();
        for (k, exp) in keys {
            inner.add(k, amount, *exp, now);
        }
    }

    pub(super) fn get(&self, key: &str) -> u64 {
        self.lock().value(key, unix_now())
    }

    pub(super) fn append_seq(&self, key: &str, item: &str, max_len: usize, ttl_secs: u64) -> u64 {
        let now = unix_now();
        let mut inner = self.lock();
        let lists = &mut inner.lists;
        if lists.get(key).is_some_and(|l| l.expires <= now) {
            lists.remove(key);
        }
        if !lists.contains_key(key) && lists.len() >= MAX_SEQ_LISTS {
            lists.retain(|_, l| l.expires > now);
            if lists.len() >= MAX_SEQ_LISTS
                && let Some(k) = lists.iter().min_by_key(|(_, l)| l.expires).map(|(k, _)| k.clone())
            {
                lists.remove(&k);
            }
        }
        let l =
            lists.entry(key.to_string()).or_insert(SeqList { last: 0, items: VecDeque::new(), expires: 0 });
        l.last += 1;
        l.items.push_back((l.last, item.to_string()));
        while l.items.len() > max_len {
            l.items.pop_front();
        }
        l.expires = now + ttl_secs;
        l.last
    }

    pub(super) fn seq_list(&self, key: &str) -> Option<Vec<(u64, String)>> {
        let inner = self.lock();
        let l = inner.lists.get(key).filter(|l| l.expires > unix_now())?;
        Some(l.items.iter().cloned().collect())
    }

    pub(super) fn claim(&self, key: &str, value: &str, ttl: Duration) -> String {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.claims.len() >= inner.claims_sweep_at.max(1024) {
            inner.claims.retain(|_, (_, exp)| *exp > now);
            inner.claims_sweep_at = inner.claims.len() * 2;
        }
        let e = inner.claims.entry(key.to_string()).or_insert_with(|| (value.to_string(), now + ttl));
        if e.1 <= now {
            e.0 = value.to_string();
        }
        e.1 = now + ttl;
        e.0.clone()
    }

    pub(super) fn lookup(&self, key: &str, ttl: Duration) -> Option<String> {
        let now = Instant::now();
        let mut inner = self.lock();
        let e = inner.claims.get_mut(key)?;
        if e.1 <= now {
            inner.claims.remove(key);
            return None;
        }
        e.1 = now + ttl;
        Some(e.0.clone())
    }
}
