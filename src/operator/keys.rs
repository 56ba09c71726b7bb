//! A gateway's own generated keys, which its credentials bundle always carries in cluster mode:
//! the MCP session-sealing key and the agent gateway's token-signing key. Generated once from the
//! system CSPRNG, then read back from the gateway's existing Secret at every reconcile (and after
//! an operator restart), so sessions and tokens survive config changes. Never logged.

use crate::config::{Credentials, SESSION_KEY, SIGNING_KEY};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

/// Copies the generated keys from `existing` (the bundle in the gateway's current Secret) into
/// `bundle`, generating whichever is missing or unusable. Returns the ids generated now.
pub fn carry_or_generate(existing: Option<&Credentials>, bundle: &mut Credentials) -> Vec<&'static str> {
    let mut generated = Vec::new();
    let kept = |id: &str, ok: fn(&str) -> bool| existing.and_then(|c| c.0.get(id)).filter(|v| ok(v)).cloned();
    let session = kept(SESSION_KEY, valid_session_key).unwrap_or_else(|| {
        generated.push(SESSION_KEY);
        session_key()
    });
    let signing = kept(SIGNING_KEY, valid_signing_key).unwrap_or_else(|| {
        generated.push(SIGNING_KEY);
        signing_key()
    });
    bundle.0.insert(SESSION_KEY.to_string(), session);
    bundle.0.insert(SIGNING_KEY.to_string(), signing);
    generated
}

/// 256 random bits, hex.
fn session_key() -> String {
    let mut b = [0u8; 32];
    SystemRandom::new().fill(&mut b).expect("the system random source works");
    hex::encode(b)
}

fn valid_session_key(v: &str) -> bool {
    v.len() >= 32
}

/// A fresh P-256 private key, PKCS#8 PEM (what the agent gateway reads).
fn signing_key() -> String {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .expect("the system random source works");
    let b64 = STANDARD.encode(doc.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

fn valid_signing_key(v: &str) -> bool {
    let body: String = v.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    STANDARD.decode(body).ok().is_some_and(|der| {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new()).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_generated_once_then_carried_over() {
        let mut first = Credentials::default();
        assert_eq!(carry_or_generate(None, &mut first), vec![SESSION_KEY, SIGNING_KEY]);
        assert_eq!(first.0[SESSION_KEY].len(), 64);
        assert!(valid_signing_key(&first.0[SIGNING_KEY]));

        let mut second = Credentials::default();
        second.0.insert("secret/ns/openai/apiKey".into(), "sk".into());
        assert!(carry_or_generate(Some(&first), &mut second).is_empty());
        assert_eq!(second.0[SESSION_KEY], first.0[SESSION_KEY]);
        assert_eq!(second.0[SIGNING_KEY], first.0[SIGNING_KEY]);
        assert_eq!(second.0.len(), 3);

        let mut other = Credentials::default();
        carry_or_generate(None, &mut other);
        assert_ne!(other.0[SESSION_KEY], first.0[SESSION_KEY], "each gateway gets its own keys");
    }

    #[test]
    fn an_unusable_key_is_replaced() {
        let mut broken = Credentials::default();
        broken.0.insert(SESSION_KEY.into(), "short".into());
        broken.0.insert(SIGNING_KEY.into(), "not a key".into());
        let mut bundle = Credentials::default();
        assert_eq!(carry_or_generate(Some(&broken), &mut bundle), vec![SESSION_KEY, SIGNING_KEY]);
        assert_ne!(bundle.0[SESSION_KEY], "short");
    }
}
