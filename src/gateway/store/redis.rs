//! Counters in Redis, shared by every replica. Each admission and each charge is one Lua script,
//! so it is atomic: two gateway processes sharing one Redis enforce one limit exactly.

use super::keys::{
    Admission, BudgetReq, LimitReq, StoreError, budget_key, retry_after, rl_expiry, rpm_key, tpm_key,
};
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{IntoConnectionInfo, Script};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// Checks request limits, token limits and blocking budgets, in that order; counts the request
/// against every request limit only when all pass. Returns `{0, 0}` when admitted, or
/// `{kind, i}`: kind 1 = request limit, 2 = token limit, 3 = budget; `i` 1-based within its kind.
///
/// KEYS: request counters, token counters, budget counters.
/// ARGV: counts of each, their limits in the same order, then the request counters' expiry.
const ADMIT: &str = r#"
local nr = tonumber(ARGV[1])
local nt = tonumber(ARGV[2])
local nb = tonumber(ARGV[3])
local base = 3
for i = 1, nr + nt + nb do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used >= tonumber(ARGV[base + i]) then
    if i <= nr then return {1, i} end
    if i <= nr + nt then return {2, i - nr} end
    return {3, i - nr - nt}
  end
end
local expiry = ARGV[base + nr + nt + nb + 1]
for i = 1, nr do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIREAT', KEYS[i], expiry)
end
return {0, 0}
"#;

/// Adds ARGV[1] to every key; ARGV[1 + i] is key i's expiry (unix seconds).
const ADD: &str = r#"
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[1])
  redis.call('EXPIREAT', KEYS[i], ARGV[i + 1])
end
return 0
"#;

/// Charges budgets and records spend. KEYS: the budget counters (ARGV[2] of them), then the
/// spend hashes. ARGV: the amount, the number of budget counters, the spend field, then each
/// key's expiry (unix seconds) in order.
const CHARGE: &str = r#"
local nb = tonumber(ARGV[2])
for i = 1, #KEYS do
  if i <= nb then
    redis.call('INCRBY', KEYS[i], ARGV[1])
  else
    redis.call('HINCRBY', KEYS[i], ARGV[3], ARGV[1])
  end
  redis.call('EXPIREAT', KEYS[i], ARGV[3 + i])
end
return 0
"#;

/// Appends to a sequenced list. KEYS: the list, its counter. ARGV: the item, the length to keep,
/// the TTL in seconds. Items are stored as `<number>:<item>`; returns the number.
const APPEND_SEQ: &str = r#"
local n = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], n .. ':' .. ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return n
"#;

/// Records ARGV[1] under KEYS[1] unless it is held; sets the TTL to ARGV[2] ms either way;
/// returns the value in force.
const CLAIM: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('GET', KEYS[1])
"#;

/// Reads KEYS[1] and refreshes its TTL (ARGV[1] ms).
const LOOKUP: &str = r#"
local v = redis.call('GET', KEYS[1])
if v then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return v
"#;

/// Longest wait for one Redis operation before the failure mode applies.
const OP_TIMEOUT: Duration = Duration::from_millis(1000);

/// Most charges kept while Redis does not answer (beyond, the oldest are dropped, with a warning).
pub const MAX_UNSENT: usize = 100_000;

/// A Redis-backed store. Connects lazily and reconnects by itself; while Redis is down every
/// operation fails fast with [`StoreError`] and the gateway applies its failure mode. A charge
/// (tokens, cost) that fails is kept, and made before the next charge once Redis answers again,
/// so spend served during an outage reaches the shared budgets (a charge whose answer timed out
/// after Redis applied it is made twice: an outage may overcharge, never undercharge).
pub struct RedisStore {
    conn: ConnectionManager,
    admit: Script,
    add: Script,
    charge: Script,
    append_seq: Script,
    claim: Script,
    lookup: Script,
    url: String,
    /// Charges Redis did not take: keys with their expiry, and the amount.
    unsent: Mutex<VecDeque<Charge>>,
}

type Charge = (Vec<(String, u64)>, u64);

impl RedisStore {
    /// A store for `url` (`redis://host:port[/db]`), with an optional password.
    pub fn new(url: &str, password: Option<&str>) -> Result<Self, StoreError> {
        let mut info =
            url.into_connection_info().map_err(|e| StoreError(format!("redis URL {url:?}: {e}")))?;
        if let Some(pw) = password {
            let settings = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(settings);
        }
        let client =
            ::redis::Client::open(info).map_err(|e| StoreError(format!("redis URL {url:?}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError(format!("redis {url}: {e}")))?;
        Ok(RedisStore {
            conn,
            admit: Script::new(ADMIT),
            add: Script::new(ADD),
            charge: Script::new(CHARGE),
            append_seq: Script::new(APPEND_SEQ),
            claim: Script::new(CLAIM),
            lookup: Script::new(LOOKUP),
            url: url.to_string(),
            unsent: Mutex::default(),
        })
    }

    /// The URL (without password).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(super) async fn admit(
        &self,
        prefix: &str,
        now: u64,
        limits: &[LimitReq],
        budgets: &[BudgetReq],
    ) -> Result<Admission, StoreError> {
        let rpm: Vec<&LimitReq> = limits.iter().filter(|l| l.rpm.is_some()).collect();
        let tpm: Vec<&LimitReq> = limits.iter().filter(|l| l.tpm.is_some()).collect();
        let blocking: Vec<&BudgetReq> = budgets.iter().filter(|b| b.block).collect();
        let mut inv = self.admit.prepare_invoke();
        for l in &rpm {
            inv.key(rpm_key(prefix, &l.key, now));
        }
        for l in &tpm {
            inv.key(tpm_key(prefix, &l.key, now));
        }
        for b in &blocking {
            inv.key(budget_key(prefix, &b.key));
        }
        inv.arg(rpm.len()).arg(tpm.len()).arg(blocking.len());
        for l in &rpm {
            inv.arg(l.rpm.unwrap_or(u64::MAX));
        }
        for l in &tpm {
            inv.arg(l.tpm.unwrap_or(u64::MAX));
        }
        for b in &blocking {
            inv.arg(b.limit_micros);
        }
        inv.arg(rl_expiry(now));
        let mut conn = self.conn.clone();
        let (kind, i): (u32, usize) = tokio::time::timeout(OP_TIMEOUT, inv.invoke_async(&mut conn))
            .await
            .map_err(|_| StoreError(format!("redis {}: timed out", self.url)))?
            .map_err(|e| StoreError(format!("redis {}: {e}", self.url)))?;
        let at = i.saturating_sub(1);
        Ok(match kind {
            1 if at < rpm.len() => Admission::RateLimited {
                key: rpm[at].key.clone(),
                what: "requests",
                limit: rpm[at].rpm.unwrap_or_default(),
                retry_after: retry_after(now),
            },
            2 if at < tpm.len() => Admission::RateLimited {
                key: tpm[at].key.clone(),
                what: "tokens",
                limit: tpm[at].tpm.unwrap_or_default(),
                retry_after: retry_after(now),
            },
            3 if at < blocking.len() => Admission::OverBudget { key: blocking[at].key.clone() },
            _ => Admission::Allowed,
        })
    }

    pub(super) async fn add(&self, keys: &[(String, u64)], amount: u64) -> Result<(), StoreError> {
        self.send_unsent().await;
        let r = self.add_now(keys, amount).await;
        if r.is_err() {
            self.keep((keys.to_vec(), amount));
        }
        r
    }

    /// Charges kept for later, waiting to be made.
    pub fn unsent(&self) -> usize {
        self.unsent.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn keep(&self, charge: Charge) {
        let mut q = self.unsent.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= MAX_UNSENT {
            q.pop_front();
            tracing::warn!(url = %self.url, "redis: more than {MAX_UNSENT} charges waiting; the oldest is dropped");
        }
        q.push_back(charge);
    }

    /// Makes the kept charges, oldest first, until one fails (it and the rest stay kept).
    async fn send_unsent(&self) {
        let waiting: Vec<Charge> = {
            let mut q = self.unsent.lock().unwrap_or_else(|e| e.into_inner());
            if q.is_empty() {
                return;
            }
            q.drain(..).collect()
        };
        let n = waiting.len();
        let mut rest = waiting.into_iter();
        while let Some((keys, amount)) = rest.next() {
            if self.add_now(&keys, amount).await.is_err() {
                let mut q = self.unsent.lock().unwrap_or_else(|e| e.into_inner());
                for c in std::iter::once((keys, amount)).chain(rest).rev() {
                    q.push_front(c);
                }
                return;
            }
        }
        tracing::info!(url = %self.url, charges = n, "redis answers again: the charges kept meanwhile are made");
    }

    async fn add_now(&self, keys: &[(String, u64)], amount: u64) -> Result<(), StoreError> {
        let mut inv = self.add.prepare_invoke();
        inv.arg(amount);
        for (k, exp) in keys {
            inv.key(k.as_str());
            inv.arg(*exp);
        }
        let mut conn = self.conn.clone();
        let _: i64 = tokio::time::timeout(OP_TIMEOUT, inv.invoke_async(&mut conn))
            .await
            .map_err(|_| StoreError(format!("redis {}: timed out", self.url)))?
            .map_err(|e| StoreError(format!("redis {}: {e}", self.url)))?;
        Ok(())
    }

    pub(super) async fn charge(
        &self,
        budgets: &[(String, u64)],
        spend: &[(String, u64)],
        field: &str,
        amount: u64,
    ) -> Result<(), StoreError> {
        let mut inv = self.charge.prepare_invoke();
        inv.arg(amount).arg(budgets.len()).arg(field);
        for (k, exp) in budgets.iter().chain(spend) {
            inv.key(k.as_str());
            inv.arg(*exp);
        }
        let _: i64 = self.invoke(inv).await?;
        Ok(())
    }

    pub(super) async fn get_many(&self, keys: &[String]) -> Result<Vec<u64>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let v: Vec<Option<u64>> =
            tokio::time::timeout(OP_TIMEOUT, ::redis::cmd("MGET").arg(keys).query_async(&mut conn))
                .await
                .map_err(|_| StoreError(format!("redis {}: timed out", self.url)))?
                .map_err(|e| StoreError(format!("redis {}: {e}", self.url)))?;
        Ok(v.into_iter().map(Option::unwrap_or_default).collect())
    }

    pub(super) async fn hash(&self, key: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let mut conn = self.conn.clone();
        let map: std::collections::HashMap<String, u64> =
            tokio::time::timeout(OP_TIMEOUT, ::redis::cmd("HGETALL").arg(key).query_async(&mut conn))
                .await
                .map_err(|_| StoreError(format!("redis {}: timed out", self.url)))?
                .map_err(|e| StoreError(format!("redis {}: {e}", self.url)))?;
        Ok(map.into_iter().collect())
    }

    pub(super) async fn get(&self, key: &str) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let v: Option<u64> =
            tokio::time::timeout(OP_TIMEOUT, ::redis::cmd("GET").arg(key).query_async(&mut conn))
                .await
                .map_err(|_| StoreError(format!("redis {}: timed out", self.url)))?
                .map_err(|e| StoreError(format!("redis {}: {e}", self.url)))?;
        Ok(v.unwrap_or(0))
    }

    pub(super) async fn append_seq(
        &self,
        key: &str,
        item: &str,
        max_len: usize,
        ttl_secs: u64,
    ) -> Result<u64, StoreError> {
        let mut inv = self.append_seq.prepare_invoke();
        inv.key(key).key(format!("{key}:n")).arg(item).arg(max_len).arg(ttl_secs.max(1));
        self.invoke(inv).await
    }

    pub(super) async fn seq_list(&self, key: &str) -> Result<Option<Vec<(u64, String)>>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = tokio::time::timeout(
            OP_TIMEOUT,
            ::redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query_async(&mut conn),
        )
        .await
        .map_err(|_| StoreError(format!("redis {}: timed out", self.url)))?
        .map_err(|e| StoreError(format!("redis {}: {e}", self.url)))?;
        if raw.is_empty() {
            return Ok(None);
        }
        let items = raw
            .into_iter()
            .filter_map(|s| {
                let (n, item) = s.split_once(':')?;
                Some((n.parse().ok()?, item.to_string()))
            })
            .collect();
        Ok(Some(items))
    }

    pub(super) async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<String, StoreError> {
        let mut inv = self.claim.prepare_invoke();
        inv.key(key).arg(value).arg(ttl.as_millis().max(1) as u64);
        let v: Option<String> = self.invoke(inv).await?;
        Ok(v.unwrap_or_else(|| value.to_string()))
    }

    pub(super) async fn lookup(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        let mut inv = self.lookup.prepare_invoke();
        inv.key(key).arg(ttl.as_millis().max(1) as u64);
        self.invoke(inv).await
    }

    async fn invoke<T: ::redis::FromRedisValue>(
        &self,
        inv: ::redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        tokio::time::timeout(OP_TIMEOUT, inv.invoke_async(&mut conn))
            .await
            .map_err(|_| StoreError(format!("redis {}: timed out", self.url)))?
            .map_err(|e| StoreError(format!("redis {}: {e}", self.url)))
    }
}
