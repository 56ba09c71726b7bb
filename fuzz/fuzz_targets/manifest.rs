//! `cairn validate` on one file: YAML text → documents checked against the CRD schemas and CEL
//! rules → compiled for a cluster and for local mode, with every problem reported as a line.
//! Any text gives problems or configs, never a panic; every compiled config serialises to JSON
//! that a gateway reads back.
#![no_main]

use cairn::compile::Mode;
use cairn::config::GatewayConfig;
use cairn::manifest::{self, Options};
use cairn::workspace::compile_manifests;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // No process environment: `${NAME}` in a Secret resolves only to this empty set.
    let options = Options::default().with_env(std::iter::empty::<(String, String)>());
    let manifests = match manifest::load_str("fuzz.yaml", text, &options) {
        Ok(m) => m,
        Err(problems) => {
            for p in problems {
                assert!(!p.to_string().is_empty());
            }
            return;
        }
    };
    for mode in [Mode::Local, Mode::Cluster { domain: "cluster.local".into() }] {
        let output = compile_manifests(&manifests, &mode);
        for d in &output.diagnostics {
            assert!(!d.to_string().is_empty());
        }
        for gw in &output.gateways {
            let json = gw.config.to_json();
            let back = GatewayConfig::from_json(&json).expect("a compiled config reads back");
            assert_eq!(back, gw.config);
        }
    }
});
