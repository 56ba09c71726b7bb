//! Exact-match response cache for non-streaming requests.
//!
//! The key ([`cache_key`]) is a SHA-256 over the caller's scope (its subject, unless the route
//! shares its cache), the route, the model and the **canonical** request JSON: object keys sorted at
//! every level, no whitespace, and without the fields that do not change the answer (`stream`,
//! `stream_options`, `user`). Two requests that differ only in key order or those fields share an
//! entry; a different caller never sees another's entry unless the route says `shared`.
//!
//! [`ResponseCache`] holds at most `max_entries` entries and `max_bytes` of bodies, each for `ttl`.
//! Eviction is CLOCK (second chance): a cheap approximation of LRU where a hit only sets a bit, so
//! lookups never reorder a list. Expired entries are dropped when met and preferred for eviction.
//! Thread-safe behind one mutex held only for map operations (no IO, no body copies: bodies are
//! [`Bytes`], cloned by reference count).

use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes of bodies a cache holds at most unless told otherwise: 32 MiB.
pub const DEFAULT_MAX_BYTES: usize = 32 << 20;

/// A request's cache key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

/// Top-level request fields left out of the key.
const IGNORED: &[&str] = &["stream", "stream_options", "user"];

/// Whether a request may be served from or stored in the cache: only non-streaming ones.
pub fn cacheable(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool) != Some(true)
}

/// The key of a request. `scope` is the caller's subject, or `None` for a route whose cache is
/// shared between callers.
pub fn cache_key(scope: Option<&str>, route: &str, model: &str, body: &Value) -> CacheKey {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    match scope {
        Some(s) => {
            field(b"caller");
            field(s.as_bytes());
        }
        None => field(b"shared"),
    }
    field(route.as_bytes());
    field(model.as_bytes());
    let mut canon = Vec::with_capacity(256);
    match body {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().filter(|k| !IGNORED.contains(&k.as_str())).collect();
            keys.sort();
            canon.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    canon.push(b',');
                }
                write_canonical(&Value::String(k.clone()), &mut canon);
                canon.push(b':');
                write_canonical(&o[k], &mut canon);
            }
            canon.push(b'}');
        }
        other => write_canonical(other, &mut canon),
    }
    h.update(&canon);
    CacheKey(h.finalize().into())
}

/// Canonical JSON: sorted keys, no whitespace, serde_json's number and string forms.
pub fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k).expect("writing to a Vec");
                out.push(b':');
                write_canonical(&o[k], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        other => serde_json::to_writer(&mut *out, other).expect("writing to a Vec"),
    }
}

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResponse {
    /// HTTP status (only successes are worth storing).
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// The body as sent to the caller.
    pub body: Bytes,
}

impl CachedResponse {
    fn size(&self) -> usize {
        self.body.len() + self.content_type.len() + 64
    }
}

#[derive(Debug)]
struct Slot {
    key: CacheKey,
    value: CachedResponse,
    expires: Instant,
    referenced: bool,
}

#[derive(Debug, Default)]
struct Inner {
    slots: Vec<Option<Slot>>,
    index: HashMap<CacheKey, usize>,
    free: Vec<usize>,
    hand: usize,
    bytes: usize,
}

impl Inner {
    fn remove_at(&mut self, i: usize) {
        if let Some(s) = self.slots[i].take() {
            self.index.remove(&s.key);
            self.bytes -= s.value.size();
            self.free.push(i);
        }
    }

    /// Evicts one entry by CLOCK: expired first met, else the first not referenced since the hand
    /// last passed. Returns false when empty.
    fn evict_one(&mut self, now: Instant) -> bool {
        if self.index.is_empty() {
            return false;
        }
        let n = self.slots.len();
        // Two full turns suffice: the first clears every bit.
        for _ in 0..2 * n + 1 {
            let i = self.hand;
            self.hand = (self.hand + 1) % n;
            let evict = match &mut self.slots[i] {
                None => false,
                Some(s) if s.expires <= now => true,
                Some(s) if s.referenced => {
                    s.referenced = false;
                    false
                }
                Some(_) => true,
            };
            if evict {
                self.remove_at(i);
                return true;
            }
        }
        false
    }
}

/// Counters of a cache, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries held.
    pub entries: usize,
    /// Body bytes held (with a small per-entry overhead).
    pub bytes: usize,
}

/// A bounded, thread-safe, TTL + CLOCK response cache.
#[derive(Debug)]
pub struct ResponseCache {
    inner: Mutex<Inner>,
    ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
}

impl ResponseCache {
    /// A cache of at most `max_entries` entries and `max_bytes` bytes, entries living `ttl`.
    pub fn new(max_entries: usize, ttl: Duration, max_bytes: usize) -> Self {
        ResponseCache { inner: Mutex::new(Inner::default()), ttl, max_entries: max_entries.max(1), max_bytes }
    }

    /// A cache for a route's [`crate::config::CacheConfig`], with [`DEFAULT_MAX_BYTES`].
    pub fn from_config(c: &crate::config::CacheConfig) -> Self {
        Self::new(c.max_entries as usize, Duration::from_millis(c.ttl_ms), DEFAULT_MAX_BYTES)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent in a way that matters
        // for a cache; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live entry for `key`, if any.
    pub fn get(&self, key: &CacheKey, now: Instant) -> Option<CachedResponse> {
        let mut g = self.lock();
        let i = *g.index.get(key)?;
        let expired = g.slots[i].as_ref().is_none_or(|s| s.expires <= now);
        if expired {
            g.remove_at(i);
            return None;
        }
        let s = g.slots[i].as_mut().expect("indexed slot is occupied");
        s.referenced = true;
        Some(s.value.clone())
    }

    /// Stores `value` under `key` (replacing any previous entry), evicting as needed. A value
    /// larger than an eighth of the byte bound is not stored (one response must not flush the
    /// cache). Returns whether it was stored.
    pub fn insert(&self, key: CacheKey, value: CachedResponse, now: Instant) -> bool {
        let size = value.size();
        if size > self.max_bytes / 8 {
            return false;
        }
        let mut g = self.lock();
        if let Some(&i) = g.index.get(&key) {
            g.remove_at(i);
        }
        while g.index.len() >= self.max_entries || g.bytes + size > self.max_bytes {
            if !g.evict_one(now) {
                break;
            }
        }
        let slot = Slot { key, value, expires: now + self.ttl, referenced: false };
        let i = match g.free.pop() {
            Some(i) => {
                g.slots[i] = Some(slot);
                i
            }
            None => {
                g.slots.push(Some(slot));
                g.slots.len() - 1
            }
        };
        g.index.insert(key, i);
        g.bytes += size;
        true
    }

    /// Entries and bytes held.
    pub fn stats(&self) -> CacheStats {
        let g = self.lock();
        CacheStats { entries: g.index.len(), bytes: g.bytes }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        *self.lock() = Inner::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resp(body: &str) -> CachedResponse {
        CachedResponse {
            status: 200,
            content_type: "application/json".into(),
            body: Bytes::from(body.to_owned()),
        }
    }

    fn key(n: u32) -> CacheKey {
        cache_key(None, "r", "m", &json!({"n": n}))
    }

    #[test]
    fn key_ignores_key_order_stream_and_user_but_not_content() {
        let a = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5, "user": "x", "stream": false});
        let b = json!({"temperature": 0.5, "stream_options": {"include_usage": true}, "messages": [{"content": "hi", "role": "user"}], "model": "m"});
        assert_eq!(cache_key(Some("alice"), "chat", "m", &a), cache_key(Some("alice"), "chat", "m", &b));
        let c = json!({"model": "m", "messages": [{"role": "user", "content": "hi!"}], "temperature": 0.5});
        assert_ne!(cache_key(Some("alice"), "chat", "m", &a), cache_key(Some("alice"), "chat", "m", &c));
        let d = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.6});
        assert_ne!(cache_key(Some("alice"), "chat", "m", &a), cache_key(Some("alice"), "chat", "m", &d));
    }

    #[test]
    fn key_is_scoped_to_caller_route_and_model() {
        let b = json!({"messages": []});
        let k = cache_key(Some("alice"), "chat", "m", &b);
        assert_ne!(k, cache_key(Some("bob"), "chat", "m", &b));
        assert_ne!(k, cache_key(None, "chat", "m", &b));
        assert_ne!(k, cache_key(Some("alice"), "other", "m", &b));
        assert_ne!(k, cache_key(Some("alice"), "chat", "m2", &b));
        // Length-prefixed fields: moving a boundary changes the key.
        assert_ne!(cache_key(Some("ab"), "c", "m", &b), cache_key(Some("a"), "bc", "m", &b));
    }

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let mut out = Vec::new();
        write_canonical(&json!({"b": [{"z": 1, "a": "x"}], "a": null}), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":null,"b":[{"a":"x","z":1}]}"#);
    }

    #[test]
    fn only_non_streaming_requests_are_cacheable() {
        assert!(cacheable(&json!({"stream": false})));
        assert!(cacheable(&json!({})));
        assert!(!cacheable(&json!({"stream": true})));
    }

    #[test]
    fn hit_miss_and_ttl_expiry() {
        let c = ResponseCache::new(10, Duration::from_secs(60), 1 << 20);
        let t0 = Instant::now();
        assert_eq!(c.get(&key(1), t0), None);
        assert!(c.insert(key(1), resp("one"), t0));
        assert_eq!(c.get(&key(1), t0 + Duration::from_secs(59)), Some(resp("one")));
        assert_eq!(c.get(&key(1), t0 + Duration::from_secs(60)), None);
        assert_eq!(c.stats().entries, 0, "expired entry dropped on lookup");
    }

    #[test]
    fn replacing_a_key_keeps_one_entry() {
        let c = ResponseCache::new(10, Duration::from_secs(60), 1 << 20);
        let t0 = Instant::now();
        c.insert(key(1), resp("one"), t0);
        c.insert(key(1), resp("uno"), t0);
        assert_eq!(c.stats().entries, 1);
        assert_eq!(c.get(&key(1), t0).unwrap().body, Bytes::from("uno"));
    }

    #[test]
    fn clock_eviction_spares_recently_used_entries() {
        let c = ResponseCache::new(3, Duration::from_secs(60), 1 << 20);
        let t0 = Instant::now();
        for n in 1..=3 {
            c.insert(key(n), resp("x"), t0);
        }
        // Touch 1 and 3; inserting 4 must evict 2.
        c.get(&key(1), t0);
        c.get(&key(3), t0);
        c.insert(key(4), resp("x"), t0);
        assert_eq!(c.stats().entries, 3);
        assert!(c.get(&key(2), t0).is_none());
        for n in [1, 3, 4] {
            assert!(c.get(&key(n), t0).is_some(), "{n}");
        }
    }

    #[test]
    fn expired_entries_are_evicted_first() {
        let c = ResponseCache::new(2, Duration::from_secs(10), 1 << 20);
        let t0 = Instant::now();
        c.insert(key(1), resp("x"), t0);
        c.insert(key(2), resp("x"), t0 + Duration::from_secs(5));
        c.get(&key(1), t0);
        c.get(&key(2), t0);
        c.insert(key(3), resp("x"), t0 + Duration::from_secs(11));
        assert!(c.get(&key(1), t0 + Duration::from_secs(11)).is_none());
        assert!(c.get(&key(2), t0 + Duration::from_secs(11)).is_some());
    }

    #[test]
    fn byte_bound_holds_and_huge_bodies_are_refused() {
        let body = "x".repeat(1000);
        let c = ResponseCache::new(1000, Duration::from_secs(60), 16 * 1024);
        let t0 = Instant::now();
        for n in 0..100 {
            c.insert(key(n), resp(&body), t0);
            assert!(c.stats().bytes <= 16 * 1024);
        }
        assert!(c.stats().entries < 16);
        assert!(!c.insert(key(999), resp(&"y".repeat(4000)), t0));
    }

    #[test]
    fn many_threads_share_one_cache() {
        let c = std::sync::Arc::new(ResponseCache::new(64, Duration::from_secs(60), 1 << 20));
        let t0 = Instant::now();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for n in 0..500 {
                        let k = key(t * 1000 + n % 100);
                        if c.get(&k, t0).is_none() {
                            c.insert(k, resp("v"), t0);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let s = c.stats();
        assert!(s.entries <= 64 && s.entries > 0, "{s:?}");
        c.clear();
        assert_eq!(c.stats(), CacheStats::default());
    }

    #[test]
    fn from_config_uses_ttl_and_entries() {
        let c = ResponseCache::from_config(&crate::config::CacheConfig {
            ttl_ms: 1000,
            shared: false,
            max_entries: 2,
        });
        let t0 = Instant::now();
        for n in 0..5 {
            c.insert(key(n), resp("x"), t0);
        }
        assert_eq!(c.stats().entries, 2);
        assert!(c.get(&key(4), t0 + Duration::from_millis(999)).is_some());
        assert!(c.get(&key(4), t0 + Duration::from_millis(1000)).is_none());
    }
}
