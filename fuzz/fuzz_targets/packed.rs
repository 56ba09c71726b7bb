//! What a gateway in cluster mode reads from its ConfigMaps: a manifest (JSON text) and up to
//! `MAX_PARTS` parts of bytes (the config's text, or a gzip stream split in parts). Any input is
//! unpacked to a config or refused with an `UnpackError`: no panic, no inflation past the
//! manifest's size, and what unpacks is a config that reads back from its canonical JSON.
//!
//! Input: the manifest's JSON on the first line, then the bytes of the parts, cut into as many
//! equal slices as the manifest names (fewer when the bytes run short, which unpack refuses).
#![no_main]

use cairn::config::GatewayConfig;
use cairn::config::packed::{Manifest, unpack};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else { return };
    let Ok(manifest) = std::str::from_utf8(&data[..newline]) else { return };
    let Ok(manifest) = Manifest::from_json(manifest) else { return };
    let rest = &data[newline + 1..];
    let n = manifest.parts as usize;
    let parts: Vec<&[u8]> = rest.chunks(rest.len().div_ceil(n).max(1)).collect();
    match unpack(&manifest, &parts) {
        Ok(config) => {
            let again =
                GatewayConfig::from_json(&config.to_json()).expect("a config's canonical JSON parses");
            assert_eq!(again, config);
        }
        Err(e) => {
            // Every refusal has a message and a metrics category.
            assert!(!e.to_string().is_empty());
            assert!(!e.category().is_empty());
        }
    }
});
