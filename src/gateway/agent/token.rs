//! The caller-identity token an agent receives instead of the caller's credentials: a JWT the
//! gateway signs (`iss` the gateway, `sub` the caller, `aud` the agent, the task and skill when
//! known), verifiable with the gateway's `/.well-known/jwks.json`, reused for the first half of
//! its lifetime.

use super::owners::Owner;
use super::runtime::AgentRuntime;
use crate::gateway::clock::unix_now;
use ring::rand::SecureRandom;
use serde_json::{Value, json};

/// `n` random bytes from the system source, as hex (token ids).
fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    // The system random source does not fail on supported platforms; zeros would only make
    // the id non-random, never unsafe.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    hex::encode(b)
}

/// The caller-identity token the agent receives for this call.
pub(super) fn identity_token(
    rt: &AgentRuntime,
    subject: &str,
    agent: &str,
    owner: &Owner,
    task: Option<&str>,
) -> String {
    let now = unix_now();
    let ttl = rt.layer.identity_token_ttl_ms.div_ceil(1000).max(1);
    let key = (subject.to_string(), agent.to_string(), task.map(str::to_string), owner.skill.clone());
    // A token is reused for the first half of its lifetime (signing costs more than the rest of
    // the hop); the callee always gets at least half the configured lifetime. Sound because the
    // claims are exactly the key (caller, agent, task, skill) plus times and a `jti`: a reused
    // token says nothing the new call would not. The algorithm stays ES256 rather than a cheaper
    // one: HS256 would need a secret shared with every agent (not verifiable from the JWKS), and
    // EdDSA, though cheaper, is not accepted by every JWT library agents use; with reuse, signing
    // happens once per key and half-lifetime, not per call.
    let reuse_until = |exp: u64| exp.saturating_sub(ttl.div_ceil(2));
    {
        let cache = rt.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, exp)) = cache.get(&key)
            && now < reuse_until(*exp)
        {
            return token.clone();
        }
    }
    let mut claims = json!({
        "iss": rt.issuer,
        "sub": subject,
        "aud": agent,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": random_hex(16),
        "gateway": rt.gateway,
        "agent": agent,
    });
    if let Some(t) = task {
        claims["task_id"] = Value::String(t.to_string());
    }
    if let Some(s) = &owner.skill {
        claims["skill"] = Value::String(s.clone());
    }
    let token = rt.signer.jwt(&claims);
    let mut cache = rt.tokens.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= TOKEN_CACHE_ENTRIES {
        cache.retain(|_, (_, exp)| now < reuse_until(*exp));
        if cache.len() >= TOKEN_CACHE_ENTRIES {
            cache.clear();
        }
    }
    cache.insert(key, (token.clone(), now + ttl));
    token
}

/// Most identity tokens kept for reuse per config version.
const TOKEN_CACHE_ENTRIES: usize = 10_000;
