//! The install tests' tools (tests/support/tools.sh, cached under ~/.cache): kubeconform and its
//! schemas, helm-unittest, the Argo CD health judge (gopher-lua), kstatus (cli-utils), BuildKit's
//! Dockerfile parser, the CEL cost report, and published third-party CRDs.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The directory `tools.sh` built. Panics with instructions when `CAIRN_TEST_TOOLS` is not set.
pub fn dir() -> PathBuf {
    match std::env::var_os("CAIRN_TEST_TOOLS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "CAIRN_TEST_TOOLS is not set: run eval \"$(tests/support/platform.sh tools)\" \
             (or tests/run; see tests/support/README.md)"
        ),
    }
}

/// `DIR/bin/NAME` as a command.
pub fn command(name: &str) -> Command {
    Command::new(dir().join("bin").join(name))
}

/// Runs tool `name` with `args`, feeding `stdin`; panics with its stderr unless it succeeds;
/// returns stdout.
pub fn run(name: &str, args: &[&str], stdin: &[u8]) -> String {
    let mut child = command(name)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{name} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Each stdout line of a tool that prints one JSON object per line.
pub fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

/// A published CRD file from `DIR/crds`.
pub fn crd(file: &str) -> PathBuf {
    let p = dir().join("crds").join(file);
    assert!(p.is_file(), "{} is missing: rebuild the tools (tests/support/tools.sh)", p.display());
    p
}

/// Runs `argo-health` (with the health `script`) or `kstatus` over objects, one temp file each:
/// one JSON result (`status`, `message`) per object, in order.
pub fn judge(
    tool: &str,
    script: Option<&std::path::Path>,
    objects: &[serde_json::Value],
) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = script.map(|s| s.display().to_string()).into_iter().collect();
    for (i, o) in objects.iter().enumerate() {
        let p = dir.path().join(format!("{i}.json"));
        std::fs::write(&p, o.to_string()).unwrap();
        args.push(p.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let results = json_lines(&run(tool, &args, b""));
    assert_eq!(results.len(), objects.len());
    results
}
