//! How a compiled config travels through the Kubernetes API to the gateway pods: the operator
//! packs it into one or more ConfigMaps, a gateway in cluster mode watches them and unpacks.
//! Pure: no Kubernetes types here, only the bytes and names both sides agree on.
//!
//! - The gateway's main ConfigMap (`<base>`) holds [`MANIFEST_KEY`] (a [`Manifest`]) and part 0.
//!   A config that fits in one part uncompressed is stored as text under [`TEXT_KEY`] in `data`, so
//!   `kubectl get configmap -o yaml` shows it. Larger configs are gzip-compressed (above
//!   [`COMPRESS_ABOVE`] bytes) and, if the compressed bytes exceed [`PART_BYTES`], split into up
//!   to [`MAX_PARTS`] parts, each under [`GZIP_KEY`] in `binaryData`; part `i > 0` lives in the
//!   ConfigMap [`part_name`]`(base, i)`. Every ConfigMap of a config carries the annotation
//!   [`HASH_ANNOTATION`] with the manifest's `configHash`, so a gateway assembles a config only
//!   from parts of the same version and never swaps in a partial one.
//! - The credentials travel in the gateway's Secret as one JSON object under [`CREDENTIALS_KEY`]
//!   ([`Credentials::to_json`]); the Secret carries [`CREDENTIALS_ANNOTATION`] with
//!   [`Credentials::digest`], which the manifest names too, so a gateway that sees a new config
//!   before the Secret it needs waits for that Secret instead of refusing the config. The digest
//!   covers the gateway's own generated keys (256 random bits each, always in the bundle in
//!   cluster mode), so it reveals nothing about the other values.
//! - Packing is deterministic (gzip without a timestamp, fixed level): equal configs give equal
//!   objects, so an operator restart rewrites nothing.

use super::{CompiledGateway, ConfigError, Credentials, GatewayConfig};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

/// Key of the [`Manifest`] in the main ConfigMap's `data`.
pub const MANIFEST_KEY: &str = "manifest.json";
/// Key of an uncompressed config in the main ConfigMap's `data`.
pub const TEXT_KEY: &str = "config.json";
/// Key of a compressed part in a ConfigMap's `binaryData`.
pub const GZIP_KEY: &str = "config.json.gz";
/// Key of the credentials bundle in the gateway's Secret.
pub const CREDENTIALS_KEY: &str = "credentials.json";
/// Annotation on every ConfigMap of a config: the manifest's `configHash`.
pub const HASH_ANNOTATION: &str = "cairn.dev/config-hash";
/// Annotation on the gateway's Secret: [`Credentials::digest`] of its bundle.
pub const CREDENTIALS_ANNOTATION: &str = "cairn.dev/credentials-digest";
/// Configs larger than this (bytes of JSON) are stored gzip-compressed.
pub const COMPRESS_ABOVE: usize = 128 * 1024;
/// Most bytes of one part: a ConfigMap holds at most 1 MiB of data, and the manifest, the
/// metadata and the margin the API server needs take the rest.
pub const PART_BYTES: usize = 768 * 1024;
/// Most parts of one config (so at most 6 MiB compressed, typically 40+ MiB of JSON).
pub const MAX_PARTS: usize = 8;
/// Largest uncompressed config a gateway accepts (bounds decompression).
pub const MAX_CONFIG_BYTES: u64 = 256 * 1024 * 1024;
/// Version of the packing format.
pub const FORMAT: u32 = 1;

/// How the parts are encoded.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// One part, the config's JSON text, under [`TEXT_KEY`].
    Identity,
    /// The gzip stream of the JSON text, split into parts under [`GZIP_KEY`].
    Gzip,
}

/// What the main ConfigMap says about the config it carries.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// [`GatewayConfig::hash`]: SHA-256 of the config's JSON text, hex.
    pub config_hash: String,
    /// [`Credentials::digest`] of the bundle this config was compiled with.
    pub credentials_digest: String,
    /// Encoding of the parts.
    pub encoding: Encoding,
    /// Number of parts (1 to [`MAX_PARTS`]).
    pub parts: u32,
    /// Bytes of the JSON text.
    pub size: u64,
    /// Bytes of all parts together.
    pub packed_size: u64,
}

impl Manifest {
    /// The manifest as stored under [`MANIFEST_KEY`].
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("manifest always serializes")
    }

    /// Parses a stored manifest.
    pub fn from_json(text: &str) -> Result<Self, UnpackError> {
        let m: Manifest = serde_json::from_str(text).map_err(UnpackError::Manifest)?;
        if m.format != FORMAT {
            return Err(UnpackError::Format(m.format));
        }
        if m.parts == 0 || m.parts as usize > MAX_PARTS {
            return Err(UnpackError::PartCount(m.parts));
        }
        Ok(m)
    }
}

/// A packed config: the manifest and the bytes of each part (part 0 goes into the main ConfigMap).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packed {
    /// The manifest.
    pub manifest: Manifest,
    /// Part bytes: the JSON text for [`Encoding::Identity`], slices of the gzip stream otherwise.
    pub parts: Vec<Vec<u8>>,
}

/// Name of the ConfigMap holding part `index` of the config whose main ConfigMap is `base`.
pub fn part_name(base: &str, index: usize) -> String {
    if index == 0 { base.to_string() } else { format!("{base}-{index}") }
}

/// Why a config cannot be packed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackError {
    /// Too large even compressed and split.
    #[error(
        "the compiled config is {size} bytes ({packed} gzip-compressed), more than the {limit} bytes \
         that {MAX_PARTS} ConfigMaps of {PART_BYTES} bytes hold"
    )]
    TooLarge {
        /// Bytes of JSON.
        size: usize,
        /// Bytes compressed.
        packed: usize,
        /// What fits.
        limit: usize,
    },
}

impl PackError {
    /// Low-cardinality name for metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            PackError::TooLarge { .. } => "config_too_large",
        }
    }
}

/// Why stored parts do not make a config.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The manifest is not valid JSON of the expected shape.
    #[error("{MANIFEST_KEY} is not a valid manifest: {0}")]
    Manifest(serde_json::Error),
    /// Written by another packing format.
    #[error("{MANIFEST_KEY} has format {0}; this gateway reads format {FORMAT}")]
    Format(u32),
    /// A part count outside 1..=MAX_PARTS.
    #[error("{MANIFEST_KEY} names {0} parts; a config has 1 to {MAX_PARTS}")]
    PartCount(u32),
    /// Fewer or more parts than the manifest names.
    #[error("the manifest names {expected} parts, {found} were given")]
    Parts {
        /// Named by the manifest.
        expected: u32,
        /// Given.
        found: usize,
    },
    /// The gzip stream is corrupt, or inflates beyond the manifest's size.
    #[error("the compressed config does not inflate to the {size} bytes the manifest names: {reason}")]
    Inflate {
        /// Size the manifest names.
        size: u64,
        /// What went wrong.
        reason: String,
    },
    /// The bytes are not the config the manifest names.
    #[error("the config's SHA-256 is {found}, not the manifest's {expected}")]
    Integrity {
        /// From the manifest.
        expected: String,
        /// Of the bytes.
        found: String,
    },
    /// Not UTF-8 text.
    #[error("the config is not UTF-8 text")]
    NotText,
    /// Not a valid config of this version.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl UnpackError {
    /// Low-cardinality name for metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            UnpackError::Manifest(_) | UnpackError::Format(_) | UnpackError::PartCount(_) => "manifest",
            UnpackError::Parts { .. } | UnpackError::Inflate { .. } | UnpackError::Integrity { .. } => {
                "corrupt"
            }
            UnpackError::NotText | UnpackError::Config(_) => "invalid_config",
        }
    }
}

/// Packs a compiled gateway's config (the credentials travel in the Secret; only their digest is
/// named here).
pub fn pack(gw: &CompiledGateway) -> Result<Packed, PackError> {
    pack_text(&gw.config.to_json(), &gw.credentials)
}

fn pack_text(text: &str, credentials: &Credentials) -> Result<Packed, PackError> {
    let config_hash = hex::encode(Sha256::digest(text.as_bytes()));
    let credentials_digest = credentials.digest();
    let size = text.len();
    if size <= COMPRESS_ABOVE.min(PART_BYTES) {
        let manifest = Manifest {
            format: FORMAT,
            config_hash,
            credentials_digest,
            encoding: Encoding::Identity,
            parts: 1,
            size: size as u64,
            packed_size: size as u64,
        };
        return Ok(Packed { manifest, parts: vec![text.as_bytes().to_vec()] });
    }
    let gz = gzip(text.as_bytes());
    let limit = PART_BYTES * MAX_PARTS;
    if gz.len() > limit {
        return Err(PackError::TooLarge { size, packed: gz.len(), limit });
    }
    let parts: Vec<Vec<u8>> = gz.chunks(PART_BYTES).map(<[u8]>::to_vec).collect();
    let manifest = Manifest {
        format: FORMAT,
        config_hash,
        credentials_digest,
        encoding: Encoding::Gzip,
        parts: parts.len() as u32,
        size: size as u64,
        packed_size: gz.len() as u64,
    };
    Ok(Packed { manifest, parts })
}

/// Deterministic gzip: fixed level, no file name, modification time 0.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::new(6));
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Assembles the config from its parts, in order, and checks it against the manifest: part
/// count, decompressed size (bounded, so a corrupt or hostile stream cannot inflate without
/// limit), SHA-256, then the config's own version and shape.
pub fn unpack(manifest: &Manifest, parts: &[&[u8]]) -> Result<GatewayConfig, UnpackError> {
    if parts.len() != manifest.parts as usize {
        return Err(UnpackError::Parts { expected: manifest.parts, found: parts.len() });
    }
    let bytes = match manifest.encoding {
        Encoding::Identity => parts.concat(),
        Encoding::Gzip => {
            let size = manifest.size;
            let inflate_err = |reason: String| UnpackError::Inflate { size, reason };
            if size > MAX_CONFIG_BYTES {
                return Err(inflate_err(format!("more than the {MAX_CONFIG_BYTES} bytes a gateway accepts")));
            }
            let stream = parts.concat();
            let mut out = Vec::with_capacity(size as usize);
            flate2::read::GzDecoder::new(stream.as_slice())
                .take(size + 1)
                .read_to_end(&mut out)
                .map_err(|e| inflate_err(e.to_string()))?;
            if out.len() as u64 != size {
                return Err(inflate_err(format!("it inflates to {} bytes", out.len())));
            }
            out
        }
    };
    let found = hex::encode(Sha256::digest(&bytes));
    if found != manifest.config_hash {
        return Err(UnpackError::Integrity { expected: manifest.config_hash.clone(), found });
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| UnpackError::NotText)?;
    Ok(GatewayConfig::from_json(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials([("cairn/session-key".to_string(), "k".repeat(64))].into_iter().collect())
    }

    /// A syntactically valid config text of about `n` bytes that compresses poorly (hex noise in a
    /// field the config does not have: only pack/unpack framing is exercised, not parsing).
    fn noise(n: usize) -> String {
        let mut out = String::with_capacity(n + 64);
        let mut h = Sha256::digest(b"seed").to_vec();
        while out.len() < n {
            h = Sha256::digest(&h).to_vec();
            out.push_str(&hex::encode(&h));
        }
        format!("{{\"noise\":\"{out}\"}}")
    }

    fn refs(p: &Packed) -> Vec<&[u8]> {
        p.parts.iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn small_configs_stay_readable_text_in_one_part() {
        let p = pack_text("{\"version\":1}", &credentials()).unwrap();
        assert_eq!(p.manifest.encoding, Encoding::Identity);
        assert_eq!(p.parts, vec![b"{\"version\":1}".to_vec()]);
        assert_eq!(p.manifest.credentials_digest, credentials().digest());
        let m = Manifest::from_json(&p.manifest.to_json()).unwrap();
        assert_eq!(m, p.manifest);
    }

    #[test]
    fn large_configs_are_compressed_split_and_reassembled_byte_for_byte() {
        let text = noise(3 * PART_BYTES);
        let p = pack_text(&text, &credentials()).unwrap();
        assert_eq!(p.manifest.encoding, Encoding::Gzip);
        assert!(p.manifest.parts >= 2, "{:?}", p.manifest);
        assert!(p.parts.iter().all(|part| part.len() <= PART_BYTES));
        // unpack checks the hash before parsing; the noise is not a GatewayConfig, so the
        // integrity check passing is what shows the bytes came back whole.
        match unpack(&p.manifest, &refs(&p)) {
            Err(UnpackError::Config(_)) => {}
            other => panic!("expected the config parse to be what fails, got {other:?}"),
        }
        assert_eq!(pack_text(&text, &credentials()).unwrap(), p, "packing is deterministic");
    }

    #[test]
    fn too_large_is_refused_with_sizes() {
        let text = noise(PART_BYTES * MAX_PARTS * 3);
        let e = pack_text(&text, &credentials()).unwrap_err();
        let PackError::TooLarge { size, packed, limit } = e.clone();
        assert_eq!(size, text.len());
        assert!(packed > limit);
        assert!(e.to_string().contains(&format!("{size} bytes")), "{e}");
        assert_eq!(e.category(), "config_too_large");
    }

    #[test]
    fn damaged_or_mismatched_parts_are_refused() {
        let text = noise(2 * PART_BYTES);
        let p = pack_text(&text, &credentials()).unwrap();
        let mut parts = refs(&p);
        parts.pop();
        let e = unpack(&p.manifest, &parts).unwrap_err();
        assert!(e.to_string().starts_with("the manifest names"), "{e}");

        let mut bad = p.parts.clone();
        let last = bad.len() - 1;
        let mid = bad[last].len() / 2;
        bad[last][mid] ^= 0xff;
        let bad_refs: Vec<&[u8]> = bad.iter().map(Vec::as_slice).collect();
        let e = unpack(&p.manifest, &bad_refs).unwrap_err();
        assert_eq!(e.category(), "corrupt", "{e}");

        let small = pack_text("{\"version\":1}", &credentials()).unwrap();
        let e = unpack(&small.manifest, &[b"{\"version\":2}".as_slice()]).unwrap_err();
        assert!(matches!(e, UnpackError::Integrity { .. }), "{e}");
    }

    #[test]
    fn a_hostile_size_is_not_inflated() {
        let p = pack_text(&noise(2 * COMPRESS_ABOVE), &credentials()).unwrap();
        let mut m = p.manifest.clone();
        m.size = MAX_CONFIG_BYTES + 1;
        let e = unpack(&m, &refs(&p)).unwrap_err();
        assert!(e.to_string().contains("more than the"), "{e}");
        m.size = p.manifest.size - 1;
        let e = unpack(&m, &refs(&p)).unwrap_err();
        assert!(e.to_string().contains("inflates to"), "{e}");
    }

    #[test]
    fn manifests_of_another_format_or_part_count_are_refused() {
        let e = Manifest::from_json(r#"{"format":2,"configHash":"","credentialsDigest":"","encoding":"gzip","parts":1,"size":0,"packedSize":0}"#).unwrap_err();
        assert_eq!(e.to_string(), "manifest.json has format 2; this gateway reads format 1");
        let e = Manifest::from_json(r#"{"format":1,"configHash":"","credentialsDigest":"","encoding":"gzip","parts":9,"size":0,"packedSize":0}"#).unwrap_err();
        assert_eq!(e.to_string(), "manifest.json names 9 parts; a config has 1 to 8");
        assert_eq!(part_name("llm-ai-gateway", 0), "llm-ai-gateway");
        assert_eq!(part_name("llm-ai-gateway", 2), "llm-ai-gateway-2");
    }
}
