//! Limit and budget counters: in memory (per process) or in Redis (shared by every replica).
//!
//! # Semantics (both implementations)
//!
//! **Request and token limits** count in fixed 60-second windows aligned to the clock (minute
//! `unix_seconds / 60`). Fixed windows are exact and cheap in Redis (one counter per key and
//! minute, one round trip per request), and make "two replicas sharing one Redis enforce one
//! limit exactly" true without clock-synchronised GCRA state; the price is that a caller can spend
//! up to twice its limit across a window boundary, which is the usual trade-off of this scheme.
//! `Retry-After` is the time left in the current window.
//!
//! * requests per minute: admission checks every limit of the call and, only if all pass,
//!   counts the request against all of them, atomically (a Lua script in Redis, one lock in
//!   memory) — concurrent requests can never overshoot.
//! * tokens per minute: admission refuses when a window is already exhausted; the real token
//!   count is charged after the response ([`Store::charge_tokens`]), so one request can take a
//!   window past its limit, and the next request then waits for the next window.
//!
//! **Budgets** count integer micro-dollars per budget key and calendar window
//! ([`crate::policy::window_key`]); the counter expires at the window's end. A `Block` budget
//! refuses calls once the spend reached the amount; charging happens after the response with the
//! real cost.
//!
//! In memory, counters are per process (approximate across replicas, lost on restart). In Redis
//! they are shared and survive gateway restarts.
//!
//! **Spend records** ([`Store::charge_budgets`] with a [`SpendRecord`], Redis only) add each
//! priced call's cost to one hash per calendar window — `<prefix>spend:<window key>` for the day,
//! the ISO week and the month of the call — under the field `["<gateway>","<subject>","<model>"]`
//! (a JSON array: names cannot be confused whatever they contain), in the same script that
//! charges the budgets, so the two always agree. Each hash expires [`SPEND_RETENTION_SECONDS`]
//! after its window ends. `cairn spend` reads them ([`Store::spend_report`]). The memory store
//! keeps no spend records: nothing outside the gateway process could read them.
//!
//! **Sequenced lists** ([`Store::append_seq`], [`Store::seq_list`]) hold short-lived logs such as
//! the MCP gateway's SSE replay buffers: each item gets the next number of its list's counter
//! (atomic, so replicas sharing Redis never hand out one number twice), a list keeps only its
//! last `max_len` items and expires `ttl` seconds after its last append. In memory the number of
//! lists is bounded too ([`MAX_SEQ_LISTS`]; past it the list closest to expiry goes).
//! **Claims** ([`Store::claim`], [`Store::lookup`]) are first-writer-wins string records with a
//! sliding TTL (the agent gateway's task owners): a claim records its value unless a live one
//! exists, and both refresh the TTL. In Redis one script each (`SET NX PX`, `PEXPIRE`), under
//! `<prefix>claim:<key>`.

mod handle;
mod keys;
mod memory;
mod redis;

pub use handle::{StoreHandle, StoreSetupError, Stores, redis_password};
pub use keys::{
    Admission, BudgetReq, LimitReq, MAX_SEQ_LISTS, SPEND_RETENTION_SECONDS, SpendLine, SpendRecord,
    StoreError, WINDOW_SECONDS, minute, namespace_prefix, retry_after,
};
pub use memory::MemoryStore;
pub use redis::RedisStore;

use keys::{
    budget_key, claim_key, parse_spend_field, rl_expiry, spend_field, spend_key, spend_keys, tpm_key,
};
use std::sync::Arc;

/// Memory or Redis, behind one type. The Redis futures are boxed: they are large, and unboxed
/// they would make every request's future (which holds one across an await) as large, memory
/// store or not; a Redis call is a network round trip, so one allocation is nothing beside it.
#[derive(Clone)]
pub enum Store {
    /// Per process.
    Memory(Arc<MemoryStore>),
    /// Shared.
    Redis(Arc<RedisStore>),
}

impl Store {
    /// Which kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// Checks every limit and blocking budget; counts the request when all pass.
    pub async fn admit(
        &self,
        prefix: &str,
        now: u64,
        limits: &[LimitReq],
        budgets: &[BudgetReq],
    ) -> Result<Admission, StoreError> {
        if limits.is_empty() && budgets.iter().all(|b| !b.block) {
            return Ok(Admission::Allowed);
        }
        match self {
            Store::Memory(m) => Ok(m.admit(prefix, now, limits, budgets)),
            Store::Redis(r) => Box::pin(r.admit(prefix, now, limits, budgets)).await,
        }
    }

    /// Charges used tokens to every token limit.
    pub async fn charge_tokens(
        &self,
        prefix: &str,
        now: u64,
        limits: &[LimitReq],
        tokens: u64,
    ) -> Result<(), StoreError> {
        let keys: Vec<(String, u64)> = limits
            .iter()
            .filter(|l| l.tpm.is_some())
            .map(|l| (tpm_key(prefix, &l.key, now), rl_expiry(now)))
            .collect();
        self.add(keys, tokens).await
    }

    /// Charges a cost to every budget and, in Redis, records it as `spend`'s (see the module
    /// documentation), in one atomic step; `now` picks the spend records' windows.
    pub async fn charge_budgets(
        &self,
        prefix: &str,
        budgets: &[BudgetReq],
        spend: Option<&SpendRecord<'_>>,
        now: u64,
        micros: u64,
    ) -> Result<(), StoreError> {
        let keys: Vec<(String, u64)> =
            budgets.iter().map(|b| (budget_key(prefix, &b.key), b.expires_at)).collect();
        match (self, spend) {
            (Store::Redis(r), Some(spend)) if micros > 0 => {
                Box::pin(r.charge(&keys, &spend_keys(prefix, now), &spend_field(spend), micros)).await
            }
            _ => self.add(keys, micros).await,
        }
    }

    /// The spend recorded for a budget key, in micro-dollars.
    pub async fn budget_spend(&self, prefix: &str, key: &str) -> Result<u64, StoreError> {
        let k = budget_key(prefix, key);
        match self {
            Store::Memory(m) => Ok(m.get(&k)),
            Store::Redis(r) => Box::pin(r.get(&k)).await,
        }
    }

    /// The spend recorded for each of `keys` (budget counter keys with their window), in
    /// micro-dollars, in one round trip; 0 for a counter never charged.
    pub async fn budget_spends(&self, prefix: &str, keys: &[String]) -> Result<Vec<u64>, StoreError> {
        let full: Vec<String> = keys.iter().map(|k| budget_key(prefix, k)).collect();
        match self {
            Store::Memory(m) => Ok(full.iter().map(|k| m.get(k)).collect()),
            Store::Redis(r) => Box::pin(r.get_many(&full)).await,
        }
    }

    /// The spend records of one window (a [`crate::policy::window_key`]: `2026-12`,
    /// `2026-W49`, `2026-12-03`), sorted; empty for a memory store, which keeps none.
    pub async fn spend_report(&self, prefix: &str, window: &str) -> Result<Vec<SpendLine>, StoreError> {
        let raw = match self {
            Store::Memory(_) => return Ok(Vec::new()),
            Store::Redis(r) => Box::pin(r.hash(&spend_key(prefix, window))).await?,
        };
        let mut lines: Vec<SpendLine> = raw
            .into_iter()
            .filter_map(|(field, micros)| {
                let (gateway, subject, model) = parse_spend_field(&field)?;
                Some(SpendLine { gateway, subject, model, micros })
            })
            .collect();
        lines.sort();
        Ok(lines)
    }

    /// Appends `item` to the sequenced list `key` and returns its number (1, 2, … per list);
    /// the list keeps its last `max_len` items and expires `ttl_secs` after this append.
    pub async fn append_seq(
        &self,
        key: &str,
        item: &str,
        max_len: usize,
        ttl_secs: u64,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.append_seq(key, item, max_len.max(1), ttl_secs)),
            Store::Redis(r) => Box::pin(r.append_seq(key, item, max_len.max(1), ttl_secs)).await,
        }
    }

    /// The items a sequenced list still holds, oldest first, with their numbers; `None` when
    /// there is no such list (never made, or expired).
    pub async fn seq_list(&self, key: &str) -> Result<Option<Vec<(u64, String)>>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.seq_list(key)),
            Store::Redis(r) => Box::pin(r.seq_list(key)).await,
        }
    }

    /// Records `value` under `key` unless a live record exists; refreshes the record's TTL to
    /// `ttl`. Returns the value in force (the existing one, or `value`).
    pub async fn claim(
        &self,
        prefix: &str,
        key: &str,
        value: &str,
        ttl: std::time::Duration,
    ) -> Result<String, StoreError> {
        let k = claim_key(prefix, key);
        match self {
            Store::Memory(m) => Ok(m.claim(&k, value, ttl)),
            Store::Redis(r) => Box::pin(r.claim(&k, value, ttl)).await,
        }
    }

    /// The live record under `key`, its TTL refreshed to `ttl`.
    pub async fn lookup(
        &self,
        prefix: &str,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        let k = claim_key(prefix, key);
        match self {
            Store::Memory(m) => Ok(m.lookup(&k, ttl)),
            Store::Redis(r) => Box::pin(r.lookup(&k, ttl)).await,
        }
    }

    async fn add(&self, keys: Vec<(String, u64)>, amount: u64) -> Result<(), StoreError> {
        if keys.is_empty() || amount == 0 {
            return Ok(());
        }
        match self {
            Store::Memory(m) => {
                m.add(&keys, amount);
                Ok(())
            }
            Store::Redis(r) => Box::pin(r.add(&keys, amount)).await,
        }
    }
}

#[cfg(test)]
mod tests;
