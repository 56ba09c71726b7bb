//! Sessions without sticky routing.
//!
//! The `Mcp-Session-Id` the gateway hands out *is* the session: the caller's subject, the
//! negotiated version, the time it was opened and the session id (and version) of every backend
//! it opened, sealed with ChaCha20-Poly1305 under the gateway's [`crate::config::SESSION_KEY`]
//! and bound to the gateway's name (associated data). Any replica holding the key opens it; a
//! tampered id, one sealed by another gateway or key, or an expired one opens to nothing, and the
//! client gets `404` and initializes again.
//!
//! Idle expiry: a session lives `idle` after it was opened or last used. The last use is known
//! per replica (a small map of hashed ids); a replica that never saw a session uses its opening
//! time, so with several replicas a session can end early, never late — the spec lets servers
//! end sessions at any time.
//!
//! Opening an id (base64, AEAD, JSON) is memoised per config version in a small bounded cache
//! keyed by the whole id ([`Sealer::open_session`]): an id is authenticated when it first opens
//! and cannot change, so the same text always opens to the same state. Expiry and ended
//! sessions do not depend on it: [`Activity`] is asked on every request.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Prefix of sealed ids (format version).
const PREFIX: &str = "c1.";

/// A backend's side of a session.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BackendSession {
    /// The backend's `Mcp-Session-Id`, if it gave one.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The version negotiated with the backend.
    #[serde(rename = "v")]
    pub version: String,
}

/// What a sealed session id holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SessionState {
    /// Caller.
    #[serde(rename = "u")]
    pub subject: String,
    /// Version negotiated with the client.
    #[serde(rename = "v")]
    pub version: String,
    /// Opened at, seconds since the epoch.
    #[serde(rename = "t")]
    pub opened: u64,
    /// Random part: two sessions opened at once differ.
    #[serde(rename = "r")]
    pub nonce: u64,
    /// Backend sessions by server prefix; servers that failed to initialize are absent.
    #[serde(rename = "b")]
    pub backends: BTreeMap<String, BackendSession>,
}

/// Backend sessions by server prefix, in a slice sorted by prefix: what a request looks up, kept
/// compact for [`Sealer::open_session`]'s cache (a `BTreeMap` node holds room for 11 entries).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backends(Box<[(String, BackendSession)]>);

impl Backends {
    /// The backend session of the server with `prefix`.
    pub fn get(&self, prefix: &str) -> Option<&BackendSession> {
        let i = self.0.binary_search_by(|(p, _)| p.as_str().cmp(prefix)).ok()?;
        Some(&self.0[i].1)
    }

    /// Whether the server with `prefix` has a backend session.
    pub fn contains_key(&self, prefix: &str) -> bool {
        self.get(prefix).is_some()
    }

    /// How many servers have one.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<BTreeMap<String, BackendSession>> for Backends {
    fn from(m: BTreeMap<String, BackendSession>) -> Self {
        Backends(m.into_iter().collect())
    }
}

/// An opened session id: its state, and what the gateway derives from the id on every request
/// (both from one SHA-256 of the id).
#[derive(Debug)]
pub struct OpenSession {
    /// Caller.
    pub subject: String,
    /// Version negotiated with the client.
    pub version: String,
    /// Opened at, seconds since the epoch.
    pub opened: u64,
    /// The state's random part.
    pub nonce: u64,
    /// Backend sessions by server prefix.
    pub backends: Arc<Backends>,
    /// The id's key in [`Activity`].
    pub key: SessionKey,
    /// The id as the audit line names it (ids are bearer secrets): hex of the first 8 bytes of
    /// its SHA-256.
    pub digest: String,
}

impl OpenSession {
    fn new(id: &str, state: SessionState) -> OpenSession {
        let d = Sha256::digest(id.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&d[..16]);
        OpenSession {
            subject: state.subject,
            version: state.version,
            opened: state.opened,
            nonce: state.nonce,
            backends: Arc::new(state.backends.into()),
            key: SessionKey(key),
            digest: hex::encode(&d[..8]),
        }
    }
}

/// Ids opened per generation of the cache: at most twice as many are kept. An entry is the id
/// (~0.3 KiB with one backend, ~1 KiB with ten) and its state.
const OPENED_PER_GENERATION: usize = 1024;

/// Recently opened ids, in two generations: a full current generation becomes the previous one
/// (the one before is dropped), and a hit in the previous one moves back to the current, so the
/// ids in use stay and the cache never holds more than two generations.
#[derive(Default)]
struct Opened {
    current: HashMap<Box<str>, Arc<OpenSession>>,
    previous: HashMap<Box<str>, Arc<OpenSession>>,
}

impl Opened {
    fn get(&mut self, id: &str) -> Option<Arc<OpenSession>> {
        if let Some(s) = self.current.get(id) {
            return Some(s.clone());
        }
        let s = self.previous.remove(id)?;
        self.insert(id, s.clone());
        Some(s)
    }

    fn insert(&mut self, id: &str, s: Arc<OpenSession>) {
        if self.current.len() >= OPENED_PER_GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(id.into(), s);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// Seals and opens session ids for one gateway.
pub struct Sealer {
    key: LessSafeKey,
    aad: Vec<u8>,
    rng: SystemRandom,
    opened: Mutex<Opened>,
}

impl Sealer {
    /// A sealer with a key derived from `secret` (the credential's text), bound to `gateway`.
    pub fn new(secret: &str, gateway: &str) -> Sealer {
        let mut h = Sha256::new();
        h.update(b"cairn mcp session key v1\0");
        h.update(secret.as_bytes());
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &h.finalize()).expect("32-byte key"));
        Sealer { key, aad: gateway.as_bytes().to_vec(), rng: SystemRandom::new(), opened: Default::default() }
    }

    /// A random secret, for local mode when the bundle has none.
    pub fn random_secret() -> String {
        let mut b = [0u8; 32];
        SystemRandom::new().fill(&mut b).expect("system randomness");
        hex::encode(b)
    }

    /// A random number for [`SessionState::nonce`].
    pub fn random_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        self.rng.fill(&mut b).expect("system randomness");
        u64::from_le_bytes(b)
    }

    /// The session id for `state`: visible ASCII only.
    pub fn seal(&self, state: &SessionState) -> String {
        self.seal_value(state)
    }

    /// The state sealed in `id`, or `None` if it was not sealed by this key for this gateway.
    pub fn open(&self, id: &str) -> Option<SessionState> {
        self.open_value(id)
    }

    /// The session `id` names, or `None` if it was not sealed by this key for this gateway; the
    /// same as [`Sealer::open`], remembered for the ids used recently.
    pub fn open_session(&self, id: &str) -> Option<Arc<OpenSession>> {
        if let Some(s) = self.opened.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Some(s);
        }
        let s = Arc::new(OpenSession::new(id, self.open(id)?));
        self.opened.lock().unwrap_or_else(|e| e.into_inner()).insert(id, s.clone());
        Some(s)
    }

    /// Forgets `id` (an ended session: it would only take room).
    pub fn forget(&self, id: &str) {
        let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        opened.current.remove(id);
        opened.previous.remove(id);
    }

    /// Any value sealed the same way (opaque, tamper-evident, visible ASCII), such as list
    /// cursors.
    pub fn seal_value<T: Serialize>(&self, value: &T) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("system randomness");
        let mut buf = serde_json::to_vec(value).expect("sealed values serialize");
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&self.aad), &mut buf)
            .expect("sealing cannot fail for small inputs");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The value sealed in `sealed`, or `None` if it was not sealed by this key for this gateway
    /// or is not a `T`.
    pub fn open_value<T: serde::de::DeserializeOwned>(&self, sealed: &str) -> Option<T> {
        let raw = URL_SAFE_NO_PAD.decode(sealed.strip_prefix(PREFIX)?).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let mut buf = rest.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self.key.open_in_place(nonce, Aad::from(&self.aad), &mut buf).ok()?;
        serde_json::from_slice(plain).ok()
    }
}

/// Per-replica memory of session use: last activity and ended sessions, keyed by a hash of the id.
#[derive(Default)]
pub struct Activity {
    inner: Mutex<ActivityInner>,
}

#[derive(Default)]
struct ActivityInner {
    last_seen: HashMap<SessionKey, u64>,
    ended: HashMap<SessionKey, u64>,
}

/// A session's key in [`Activity`]: the first 16 bytes of its id's SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey([u8; 16]);

impl SessionKey {
    /// The key of `id`.
    pub fn of(id: &str) -> SessionKey {
        let d = Sha256::digest(id.as_bytes());
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        SessionKey(k)
    }
}

/// Most entries kept before expired ones are swept.
const SWEEP_AT: usize = 4096;

impl Activity {
    /// Whether a session opened at `opened` is live at `now` (seconds), given `idle_secs`; if so,
    /// records this use.
    pub fn touch(&self, k: SessionKey, opened: u64, now: u64, idle_secs: u64) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.ended.contains_key(&k) {
            return false;
        }
        let last = g.last_seen.get(&k).copied().unwrap_or(opened).max(opened);
        if now.saturating_sub(last) > idle_secs {
            g.last_seen.remove(&k);
            return false;
        }
        if g.last_seen.len() >= SWEEP_AT {
            g.last_seen.retain(|_, t| now.saturating_sub(*t) <= idle_secs);
            g.ended.retain(|_, t| now.saturating_sub(*t) <= idle_secs);
        }
        g.last_seen.insert(k, now);
        true
    }

    /// Whether a session opened at `opened` is still live at `now` (as [`Activity::touch`] would
    /// answer), without recording a use.
    pub fn live(&self, k: SessionKey, opened: u64, now: u64, idle_secs: u64) -> bool {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let last = g.last_seen.get(&k).copied().unwrap_or(opened).max(opened);
        !g.ended.contains_key(&k) && now.saturating_sub(last) <= idle_secs
    }

    /// Records that a session ended (DELETE).
    pub fn end(&self, k: SessionKey, now: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.last_seen.remove(&k);
        g.ended.insert(k, now);
    }

    /// Sessions this replica remembers.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).last_seen.len()
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SessionState {
        SessionState {
            subject: "bot".into(),
            version: "2025-06-18".into(),
            opened: 1000,
            nonce: 7,
            backends: [
                (
                    "gh".to_string(),
                    BackendSession { id: Some("abc-123".into()), version: "2025-06-18".into() },
                ),
                ("fs".to_string(), BackendSession { id: None, version: "2025-03-26".into() }),
            ]
            .into(),
        }
    }

    #[test]
    fn seals_and_opens_across_instances() {
        let a = Sealer::new("k", "ns/tools");
        let b = Sealer::new("k", "ns/tools");
        let id = a.seal(&state());
        assert!(super::super::protocol::valid_session_id(&id), "{id}");
        assert_eq!(b.open(&id), Some(state()));
        assert_ne!(a.seal(&state()), id, "fresh nonce each time");
    }

    #[test]
    fn refuses_tampering_other_keys_and_other_gateways() {
        let a = Sealer::new("k", "ns/tools");
        let id = a.seal(&state());
        let mut bytes = id.clone().into_bytes();
        let i = bytes.len() - 5;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(a.open(&String::from_utf8(bytes).unwrap()), None);
        assert_eq!(Sealer::new("other", "ns/tools").open(&id), None);
        assert_eq!(Sealer::new("k", "ns/other").open(&id), None);
        assert_eq!(a.open("c1."), None);
        assert_eq!(a.open("garbage"), None);
        assert_eq!(a.open(&id[..id.len() - 1]), None);
    }

    #[test]
    fn idle_expiry() {
        let act = Activity::default();
        let [s, t, u] = ["s", "t", "u"].map(SessionKey::of);
        assert!(act.touch(s, 100, 150, 60));
        assert!(act.touch(s, 100, 200, 60), "last use at 150 keeps it alive");
        assert!(!act.touch(s, 100, 261, 60));
        assert!(!act.touch(t, 100, 161, 60), "never seen: idle since it was opened");
        assert!(act.touch(u, 100, 100, 60));
        act.end(u, 101);
        assert!(!act.touch(u, 100, 102, 60));
    }

    #[test]
    fn opened_sessions_are_remembered_within_bounds() {
        let a = Sealer::new("k", "ns/tools");
        let id = a.seal(&state());
        let s = a.open_session(&id).unwrap();
        assert_eq!((s.subject.as_str(), s.nonce, s.backends.len()), ("bot", 7, 2));
        assert_eq!(s.key, SessionKey::of(&id));
        assert!(Arc::ptr_eq(&s, &a.open_session(&id).unwrap()), "the second open is the cached one");
        assert_eq!(s.backends.get("gh").and_then(|b| b.id.as_deref()), Some("abc-123"));
        assert_eq!(s.backends.get("fs").map(|b| b.version.as_str()), Some("2025-03-26"));
        assert!(!s.backends.contains_key("other"));
        a.forget(&id);
        assert!(!Arc::ptr_eq(&s, &a.open_session(&id).unwrap()), "forgotten, opened again");
        // What does not open is not remembered, and is refused every time.
        let mut forged = id.clone().into_bytes();
        let i = forged.len() - 5;
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(a.open_session(&forged).is_none());
        assert!(a.open_session(&forged).is_none());
        assert!(Sealer::new("other", "ns/tools").open_session(&id).is_none());
        // Bounded: two generations at most; the ids in use stay.
        for _ in 0..3 * OPENED_PER_GENERATION {
            let other = a.seal(&state());
            a.open_session(&other).unwrap();
            a.open_session(&id).unwrap();
        }
        let cache = a.opened.lock().unwrap();
        assert!(cache.len() <= 2 * OPENED_PER_GENERATION, "{}", cache.len());
        assert!(cache.current.contains_key(id.as_str()));
    }
}
