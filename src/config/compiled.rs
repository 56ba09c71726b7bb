//! A compiled gateway: its config and the credentials bundle it needs, as the compile step hands
//! them to the operator (which writes them to the API) and to local mode (which serves them).

use super::{ConfigError, Credentials, GatewayConfig};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// A gateway's config and the secrets it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledGateway {
    /// The config (no secrets in it).
    pub config: GatewayConfig,
    /// Credentials referenced by the config.
    pub credentials: Credentials,
}

impl CompiledGateway {
    /// Hash of config and credentials together: a gateway reloads exactly when something it uses
    /// changed.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.config.hash().as_bytes());
        h.update(self.credentials.digest().as_bytes());
        hex::encode(h.finalize())
    }
}

impl Credentials {
    /// The bundle as one JSON object of credential id to value: the form of the credentials file
    /// of `cairn gateway --credentials` and of the `credentials.json` key of a gateway's Secret
    /// (credential ids such as `cairn/session-key` are not valid Secret keys, so the bundle
    /// travels as one value).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("a map of strings always serializes")
    }

    /// Parses [`Credentials::to_json`]'s form.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let map: BTreeMap<String, String> = serde_json::from_str(text).map_err(ConfigError::Credentials)?;
        Ok(Credentials(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_through_json_and_name_the_expected_form_when_wrong() {
        let c = Credentials(BTreeMap::from([("cairn/session-key".into(), "k".into())]));
        assert_eq!(Credentials::from_json(&c.to_json()).unwrap(), c);
        let e = Credentials::from_json("[1]").unwrap_err().to_string();
        assert!(e.starts_with("expected a JSON object of credential id to value"), "{e}");
    }
}
