//! The gateway's ConfigMaps: the packed config (`config::packed`), the main one holding the
//! manifest and part 0, one more per further part; each stamped with the config hash.

use super::child::{Child, ChildKind, Gateway, base_name, config_map_name, gateway_labels, meta};
use crate::config::packed::{self, Encoding, Packed};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

/// The ConfigMaps of a packed config, main first (`<base>-config`, then `…-config-1` …).
pub(super) fn config_maps(gw: Gateway<'_>, packed: &Packed) -> Vec<Child> {
    let owner = gw.owner;
    let main_name = config_map_name(&owner.name, gw.layer);
    debug_assert_eq!(main_name, format!("{}-config", base_name(&owner.name, gw.layer)));
    let labels = gateway_labels(&owner.name, gw.layer);
    let hash = &packed.manifest.config_hash;
    packed
        .parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let name = packed::part_name(&main_name, i);
            let mut m = meta(owner, &name, &labels);
            m["annotations"] = json!({packed::HASH_ANNOTATION: hash});
            let mut data = Map::new();
            let mut binary = Map::new();
            if i == 0 {
                data.insert(packed::MANIFEST_KEY.into(), Value::String(packed.manifest.to_json()));
            }
            match packed.manifest.encoding {
                Encoding::Identity => {
                    let text = String::from_utf8_lossy(part).into_owned();
                    data.insert(packed::TEXT_KEY.into(), Value::String(text));
                }
                Encoding::Gzip => {
                    binary.insert(packed::GZIP_KEY.into(), Value::String(STANDARD.encode(part)));
                }
            }
            let mut rest = Map::new();
            if !data.is_empty() {
                rest.insert("data".into(), Value::Object(data));
            }
            if !binary.is_empty() {
                rest.insert("binaryData".into(), Value::Object(binary));
            }
            Child::new(ChildKind::ConfigMap, &name, m, Value::Object(rest))
        })
        .collect()
}
