//! Task ownership: which caller created a task through the gateway. A task belongs to the caller
//! whose call first revealed its id (the answer to `SendMessage`, or the first event of
//! `SendStreamingMessage` that names it); later calls on the task by anyone else are answered
//! as if the task did not exist. An entry lives `taskOwnershipTtlMs` after its last use.
//!
//! Kept in memory per process when the gateway names no store; with `store.redis`, kept in that
//! Redis (key `<prefix>task-owner:<gateway>:<agent>:<task>`, `PX` = the TTL, claimed with
//! `SET NX` in one script) so that every replica knows every task. While Redis is down, calls on
//! tasks are refused with 503 whatever the failure mode: ownership cannot be proven, and serving
//! them would hand tasks to whoever asks.

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{IntoConnectionInfo, Script};
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

/// Claims `KEYS[1]` for `ARGV[1]` unless it is held; refreshes the TTL (`ARGV[2]` ms); returns
/// the value in force.
const CLAIM: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('GET', KEYS[1])
"#;

/// Reads `KEYS[1]` and refreshes its TTL (`ARGV[1]` ms).
const LOOKUP: &str = r#"
local v = redis.call('GET', KEYS[1])
if v then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return v
"#;

/// Longest wait for Redis.
const OP_TIMEOUT: Duration = Duration::from_millis(1000);

/// Task owners in Redis, shared by the replicas of a gateway.
#[derive(Clone)]
pub struct RedisOwners {
    conn: ConnectionManager,
    url: String,
    prefix: String,
    claim: std::sync::Arc<Script>,
    lookup: std::sync::Arc<Script>,
}

fn encode(o: &Owner) -> String {
    serde_json::json!({"subject": o.subject, "skill": o.skill}).to_string()
}

fn decode(s: &str) -> Option<Owner> {
    let v: serde_json::Value = serde_json::from_str(s).ok()?;
    Some(Owner {
        subject: v.get("subject")?.as_str()?.to_string(),
        skill: v.get("skill").and_then(|s| s.as_str()).map(str::to_string),
    })
}

impl RedisOwners {
    /// Owners in the Redis at `url` (connected lazily, as the limits store does), keys under
    /// `prefix`.
    pub fn new(url: &str, password: Option<&str>, prefix: &str) -> Result<Self, String> {
        let mut info = url.into_connection_info().map_err(|e| format!("redis URL {url:?}: {e}"))?;
        if let Some(pw) = password {
            let settings = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(settings);
        }
        let client = ::redis::Client::open(info).map_err(|e| format!("redis URL {url:?}: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("redis {url}: {e}"))?;
        Ok(RedisOwners {
            conn,
            url: url.to_string(),
            prefix: prefix.to_string(),
            claim: std::sync::Arc::new(Script::new(CLAIM)),
            lookup: std::sync::Arc::new(Script::new(LOOKUP)),
        })
    }

    fn redis_key(&self, gateway: &str, agent: &str, task: &str) -> String {
        format!("{}task-owner:{gateway}:{agent}:{task}", self.prefix)
    }

    /// [`Owners::claim`] in Redis.
    pub async fn claim(
        &self,
        gateway: &str,
        agent: &str,
        task: &str,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<Owner, String> {
        let mut inv = self.claim.prepare_invoke();
        inv.key(self.redis_key(gateway, agent, task)).arg(encode(owner)).arg(ttl.as_millis().max(1) as u64);
        let mut conn = self.conn.clone();
        let v: Option<String> = tokio::time::timeout(OP_TIMEOUT, inv.invoke_async(&mut conn))
            .await
            .map_err(|_| format!("redis {}: timed out", self.url))?
            .map_err(|e| format!("redis {}: {e}", self.url))?;
        Ok(v.as_deref().and_then(decode).unwrap_or_else(|| owner.clone()))
    }

    /// [`Owners::get`] in Redis.
    pub async fn get(
        &self,
        gateway: &str,
        agent: &str,
        task: &str,
        ttl: Duration,
    ) -> Result<Option<Owner>, String> {
        let mut inv = self.lookup.prepare_invoke();
        inv.key(self.redis_key(gateway, agent, task)).arg(ttl.as_millis().max(1) as u64);
        let mut conn = self.conn.clone();
        let v: Option<String> = tokio::time::timeout(OP_TIMEOUT, inv.invoke_async(&mut conn))
            .await
            .map_err(|_| format!("redis {}: timed out", self.url))?
            .map_err(|e| format!("redis {}: {e}", self.url))?;
        Ok(v.as_deref().and_then(decode))
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

    #[test]
    fn owners_round_trip_through_their_redis_form() {
        let o = Owner { subject: "alice".into(), skill: Some("refund".into()) };
        assert_eq!(decode(&encode(&o)), Some(o));
        let n = Owner { subject: "bob".into(), skill: None };
        assert_eq!(decode(&encode(&n)), Some(n));
        assert_eq!(decode("not json"), None);
    }
}
