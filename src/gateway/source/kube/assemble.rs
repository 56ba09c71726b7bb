//! Assembling a gateway's config from the objects the operator wrote, as they stand: the main
//! ConfigMap (manifest and part 0), its parts and the credentials Secret. Pure: no API here.
//!
//! Every object of a config version carries that version's hash; a part or a Secret that does
//! not match the manifest yet is a write in progress (the operator writes the Secret, then the
//! parts, then the main ConfigMap), so the answer is to wait, not to refuse. What can never
//! become valid by waiting — a manifest that does not parse, parts that do not make the config
//! the manifest names, a config for another layer, a credentials bundle that is not one — is
//! refused.

use crate::config::packed::{
    self, CREDENTIALS_ANNOTATION, CREDENTIALS_KEY, GZIP_KEY, HASH_ANNOTATION, MANIFEST_KEY, Manifest,
    TEXT_KEY, UnpackError,
};
use crate::config::{CompiledGateway, ConfigError, Credentials, Layer};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use std::collections::BTreeMap;

/// The objects of one gateway's config as last seen.
#[derive(Default, Clone, Debug)]
pub struct Seen {
    /// The main ConfigMap.
    pub main: Option<ConfigMap>,
    /// Part ConfigMaps by index (1 …).
    pub parts: BTreeMap<usize, ConfigMap>,
    /// The credentials Secret.
    pub secret: Option<Secret>,
}

/// What the objects make now.
#[derive(Debug)]
pub enum Assembled {
    /// Not yet a complete config: a write in progress, or an object not written yet.
    Waiting(String),
    /// A complete, valid config.
    Ready {
        /// The config and its credentials.
        gateway: Box<CompiledGateway>,
        /// Its manifest.
        manifest: Manifest,
    },
    /// A complete config that cannot be served.
    Refused {
        /// The config's hash, when the manifest could be read.
        config_hash: Option<String>,
        /// Why.
        error: Refusal,
    },
}

/// Why a complete config is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The main ConfigMap has no manifest.
    #[error("ConfigMap {0} has no {MANIFEST_KEY}")]
    NoManifest(String),
    /// The manifest, or the parts it names, do not make a config.
    #[error("ConfigMap {config_map}: {source}")]
    Unpack {
        /// The main ConfigMap.
        config_map: String,
        /// Why.
        source: UnpackError,
    },
    /// The main ConfigMap's hash annotation is not its manifest's.
    #[error(
        "ConfigMap {config_map}: annotation {HASH_ANNOTATION} is {found:?}, not the manifest's configHash {expected:?}"
    )]
    Stamp {
        /// The main ConfigMap.
        config_map: String,
        /// The manifest's hash.
        expected: String,
        /// The annotation.
        found: String,
    },
    /// A part lacks its data.
    #[error("ConfigMap {0} has no {GZIP_KEY}")]
    NoPart(String),
    /// The Secret lacks the bundle, or it does not parse, or it is not the one the manifest names.
    #[error("Secret {secret}: {reason}")]
    Credentials {
        /// The Secret.
        secret: String,
        /// Why.
        reason: String,
    },
    /// A config of another layer.
    #[error("the config is for {found}, but this gateway serves --layer {layer}")]
    WrongLayer {
        /// The config's gateway.
        found: crate::config::GatewayId,
        /// `--layer`.
        layer: Layer,
    },
}

impl Refusal {
    /// Low-cardinality name for metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            Refusal::NoManifest(_) | Refusal::Stamp { .. } => "manifest",
            Refusal::Unpack { source, .. } => source.category(),
            Refusal::NoPart(_) => "corrupt",
            Refusal::Credentials { .. } => "credentials",
            Refusal::WrongLayer { .. } => "wrong_layer",
        }
    }
}

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Assembles what `seen` holds into the config of a `layer` gateway whose main ConfigMap is
/// `config_map` and Secret `secret`.
pub fn assemble(seen: &Seen, config_map: &str, secret: &str, layer: Layer) -> Assembled {
    let refuse = |config_hash: Option<&str>, error| Assembled::Refused {
        config_hash: config_hash.map(str::to_string),
        error,
    };
    let Some(main) = &seen.main else {
        return Assembled::Waiting(format!("ConfigMap {config_map} not found"));
    };
    let data = main.data.as_ref();
    let Some(text) = data.and_then(|d| d.get(MANIFEST_KEY)) else {
        return refuse(None, Refusal::NoManifest(config_map.to_string()));
    };
    let manifest = match Manifest::from_json(text) {
        Ok(m) => m,
        Err(source) => return refuse(None, Refusal::Unpack { config_map: config_map.to_string(), source }),
    };
    let hash = Some(manifest.config_hash.as_str());
    let stamp = annotation(&main.metadata, HASH_ANNOTATION).unwrap_or_default();
    if stamp != manifest.config_hash {
        let error = Refusal::Stamp {
            config_map: config_map.to_string(),
            expected: manifest.config_hash.clone(),
            found: stamp.to_string(),
        };
        return refuse(hash, error);
    }
    // Part 0 lives in the main ConfigMap: text in `data`, or gzip in `binaryData`.
    let part0 = match manifest.encoding {
        packed::Encoding::Identity => data.and_then(|d| d.get(TEXT_KEY)).map(|t| t.as_bytes()),
        packed::Encoding::Gzip => {
            main.binary_data.as_ref().and_then(|b| b.get(GZIP_KEY)).map(|b| b.0.as_slice())
        }
    };
    let Some(part0) = part0 else { return refuse(hash, Refusal::NoPart(config_map.to_string())) };
    let mut parts: Vec<&[u8]> = vec![part0];
    for i in 1..manifest.parts as usize {
        let name = packed::part_name(config_map, i);
        let Some(cm) = seen.parts.get(&i) else {
            return Assembled::Waiting(format!(
                "ConfigMap {name} (part {i} of {}) not found",
                manifest.parts
            ));
        };
        if annotation(&cm.metadata, HASH_ANNOTATION) != Some(manifest.config_hash.as_str()) {
            return Assembled::Waiting(format!("ConfigMap {name} is of another config version"));
        }
        match cm.binary_data.as_ref().and_then(|b| b.get(GZIP_KEY)) {
            Some(b) => parts.push(b.0.as_slice()),
            None => return refuse(hash, Refusal::NoPart(name)),
        }
    }
    let Some(s) = &seen.secret else { return Assembled::Waiting(format!("Secret {secret} not found")) };
    if annotation(&s.metadata, CREDENTIALS_ANNOTATION) != Some(manifest.credentials_digest.as_str()) {
        return Assembled::Waiting(format!("Secret {secret} does not hold this config's credentials yet"));
    }
    let bad_credentials = |reason: String| Refusal::Credentials { secret: secret.to_string(), reason };
    let Some(bundle) = s.data.as_ref().and_then(|d| d.get(CREDENTIALS_KEY)) else {
        return refuse(hash, bad_credentials(format!("no {CREDENTIALS_KEY}")));
    };
    let credentials = match std::str::from_utf8(&bundle.0)
        .map_err(|_| "the bundle is not UTF-8 text".to_string())
        .and_then(|t| Credentials::from_json(t).map_err(|e: ConfigError| e.to_string()))
    {
        Ok(c) => c,
        Err(reason) => return refuse(hash, bad_credentials(reason)),
    };
    if credentials.digest() != manifest.credentials_digest {
        return refuse(hash, bad_credentials("the bundle's digest is not its annotation's".into()));
    }
    let config = match packed::unpack(&manifest, &parts) {
        Ok(c) => c,
        Err(source) => return refuse(hash, Refusal::Unpack { config_map: config_map.to_string(), source }),
    };
    if config.gateway.layer != layer {
        return refuse(hash, Refusal::WrongLayer { found: config.gateway, layer });
    }
    Assembled::Ready { gateway: Box::new(CompiledGateway { config, credentials }), manifest }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const CM: &str = "llm-ai-gateway-config";
    const SECRET: &str = "llm-ai-gateway-credentials";

    /// A valid AI gateway config; `models` backend models pad it (random names compress badly).
    fn compiled(models: usize) -> CompiledGateway {
        let models: Vec<serde_json::Value> = (0..models)
            .map(|i| {
                use sha2::Digest;
                let name = hex::encode(sha2::Sha256::digest(i.to_le_bytes()));
                serde_json::json!({"name": name, "kind": "chat"})
            })
            .collect();
        let config: GatewayConfig = serde_json::from_value(serde_json::json!({
            "version": 1,
            "gateway": {"namespace": "ns", "name": "llm", "layer": "ai"},
            "listener": {"port": 8080, "maxRequestBytes": 1024},
            "auth": {"allowAnonymous": true, "virtualKeySalt": "00"},
            "telemetry": {"accessLog": false},
            "policy": {"defaultAction": "allow"},
            "ai": {"backends": [{"name": "echo", "provider": "echo", "url": "", "connectTimeoutMs": 1000,
                                 "models": models}], "rules": []}
        }))
        .expect("a valid config");
        let credentials = Credentials([("cairn/session-key".to_string(), "k".repeat(64))].into());
        CompiledGateway { config, credentials }
    }

    fn meta(name: &str, hash: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            annotations: Some([(HASH_ANNOTATION.to_string(), hash.to_string())].into()),
            ..Default::default()
        }
    }

    /// The objects as the operator writes them (the contract in `config::packed`).
    fn written(gw: &CompiledGateway) -> Seen {
        let p = packed::pack(gw).expect("packs");
        let hash = p.manifest.config_hash.clone();
        let mut main = ConfigMap { metadata: meta(CM, &hash), ..Default::default() };
        let mut data = BTreeMap::from([(MANIFEST_KEY.to_string(), p.manifest.to_json())]);
        match p.manifest.encoding {
            packed::Encoding::Identity => {
                data.insert(TEXT_KEY.into(), String::from_utf8(p.parts[0].clone()).unwrap());
            }
            packed::Encoding::Gzip => {
                main.binary_data = Some([(GZIP_KEY.to_string(), ByteString(p.parts[0].clone()))].into());
            }
        }
        main.data = Some(data);
        let parts = (1..p.parts.len())
            .map(|i| {
                let cm = ConfigMap {
                    metadata: meta(&packed::part_name(CM, i), &hash),
                    binary_data: Some([(GZIP_KEY.to_string(), ByteString(p.parts[i].clone()))].into()),
                    ..Default::default()
                };
                (i, cm)
            })
            .collect();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(SECRET.into()),
                annotations: Some([(CREDENTIALS_ANNOTATION.to_string(), gw.credentials.digest())].into()),
                ..Default::default()
            },
            data: Some(
                [(CREDENTIALS_KEY.to_string(), ByteString(gw.credentials.to_json().into_bytes()))].into(),
            ),
            ..Default::default()
        };
        Seen { main: Some(main), parts, secret: Some(secret) }
    }

    fn outcome(seen: &Seen) -> String {
        match assemble(seen, CM, SECRET, Layer::Ai) {
            Assembled::Waiting(why) => format!("waiting: {why}"),
            Assembled::Ready { gateway, .. } => format!("ready: {}", gateway.config.gateway),
            Assembled::Refused { error, .. } => format!("refused ({}): {error}", error.category()),
        }
    }

    #[test]
    fn what_the_operator_writes_assembles_into_the_config() {
        let gw = compiled(1);
        match assemble(&written(&gw), CM, SECRET, Layer::Ai) {
            Assembled::Ready { gateway, manifest } => {
                assert_eq!(*gateway, gw);
                assert_eq!(manifest.config_hash, gw.config.hash(), "the hash in service is the config's");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_config_split_into_gzip_parts_assembles_only_when_every_part_is_of_its_version() {
        let gw = compiled(50_000);
        let mut seen = written(&gw);
        assert!(seen.parts.len() >= 2, "{} parts", seen.parts.len() + 1);
        assert_eq!(outcome(&seen), "ready: ns/llm (ai)");
        // A part still of the previous version: a write in progress.
        let old = seen.parts.get_mut(&2).unwrap();
        old.metadata.annotations = Some([(HASH_ANNOTATION.to_string(), "previous".to_string())].into());
        let name = packed::part_name(CM, 2);
        assert_eq!(outcome(&seen), format!("waiting: ConfigMap {name} is of another config version"));
        seen.parts.remove(&2);
        assert!(
            outcome(&seen).starts_with(&format!("waiting: ConfigMap {name} (part 2 of ")),
            "{}",
            outcome(&seen)
        );
    }

    #[test]
    fn a_secret_lagging_the_config_is_waited_for() {
        let mut seen = written(&compiled(1));
        let secret = seen.secret.as_mut().unwrap();
        secret.metadata.annotations =
            Some([(CREDENTIALS_ANNOTATION.to_string(), "older".to_string())].into());
        assert_eq!(
            outcome(&seen),
            format!("waiting: Secret {SECRET} does not hold this config's credentials yet")
        );
        seen.secret = None;
        assert_eq!(outcome(&seen), format!("waiting: Secret {SECRET} not found"));
        seen.main = None;
        assert_eq!(outcome(&seen), format!("waiting: ConfigMap {CM} not found"));
    }

    #[test]
    fn what_waiting_cannot_fix_is_refused_with_the_reason() {
        let gw = compiled(1);
        // config.json edited by hand: the bytes are not the manifest's.
        let mut seen = written(&gw);
        let data = seen.main.as_mut().unwrap().data.as_mut().unwrap();
        data.insert(TEXT_KEY.into(), data[TEXT_KEY].replace("8080", "8081"));
        let o = outcome(&seen);
        assert!(
            o.starts_with(&format!("refused (corrupt): ConfigMap {CM}: the config's SHA-256 is ")),
            "{o}"
        );
        // The manifest is not JSON.
        let mut seen = written(&gw);
        seen.main.as_mut().unwrap().data.as_mut().unwrap().insert(MANIFEST_KEY.into(), "{".into());
        assert!(outcome(&seen).starts_with(&format!(
            "refused (manifest): ConfigMap {CM}: manifest.json is not a valid manifest"
        )));
        // The main ConfigMap's stamp is not its manifest's.
        let mut seen = written(&gw);
        seen.main.as_mut().unwrap().metadata.annotations =
            Some([(HASH_ANNOTATION.to_string(), "x".to_string())].into());
        assert!(outcome(&seen).contains("annotation cairn.dev/config-hash is \"x\""), "{}", outcome(&seen));
        // The bundle is not one.
        let mut seen = written(&gw);
        seen.secret.as_mut().unwrap().data =
            Some([(CREDENTIALS_KEY.to_string(), ByteString(b"[1]".to_vec()))].into());
        assert!(
            outcome(&seen)
                .starts_with(&format!("refused (credentials): Secret {SECRET}: expected a JSON object"))
        );
        // A config of another layer.
        let o = match assemble(&written(&gw), CM, SECRET, Layer::Mcp) {
            Assembled::Refused { error, config_hash } => {
                assert_eq!(config_hash, Some(gw.config.hash()));
                error.to_string()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(o, "the config is for ns/llm (ai), but this gateway serves --layer mcp");
    }
}
