//! A gateway's compiled config as it reads it from a file or a ConfigMap: any text is either a
//! config of this version or a `ConfigError`, never a panic; what parses serialises back to a
//! config that parses to the same value (the canonical form the hash is taken over).
#![no_main]

use cairn::config::GatewayConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = GatewayConfig::from_json(text) else { return };
    let canonical = config.to_json();
    let again = GatewayConfig::from_json(&canonical).expect("a config's canonical JSON parses");
    assert_eq!(again, config, "the canonical JSON round-trips");
    assert_eq!(again.hash(), config.hash());
});
