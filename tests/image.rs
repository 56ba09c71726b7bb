//! The container image, as far as a machine without a container engine can check it.
//!
//! - The Dockerfile, read by BuildKit's own parser (`dockerfile-check`, tests/support/tools.sh):
//!   a build stage and a distroless final stage that holds only the binary, a numeric non-root
//!   user, `ENTRYPOINT ["cairn"]` in exec form, the OCI labels, no lint warning.
//! - The binary: the build stage's own `cargo build` command, taken from the parsed Dockerfile and
//!   run here as the build stage runs it, gives a static executable that works.
//!
//! What is not checked here: pulling the base images, the image build itself, multi-arch.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{repo_root, tools};

fn dockerfile() -> Value {
    let path = repo_root().join("Dockerfile");
    serde_json::from_str(&tools::run("dockerfile-check", &[path.to_str().unwrap()], b"")).unwrap()
}

fn stage<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage named {name:?}"))
}

fn commands<'a>(stage: &'a Value, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    stage["commands"].as_array().unwrap().iter().filter(move |c| c["name"].as_str() == Some(name))
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_ships_only_the_binary_as_a_numeric_non_root_user() {
    let report = dockerfile();
    assert_eq!(report["warnings"], serde_json::json!([]), "BuildKit's linter warns");
    let stages = report["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2, "a build stage and the final stage");
    let build = stage(&report, "build");
    assert!(build["base"].as_str().unwrap().starts_with("docker.io/library/rust:"), "{}", build["base"]);

    let last = stages.last().unwrap();
    let base = last["base"].as_str().unwrap();
    assert!(base.starts_with("gcr.io/distroless/static") || base == "scratch", "final base {base}");
    // Only the binary comes in, from the build stage; nothing runs in the final stage (no shell).
    let copies: Vec<&Value> = commands(last, "COPY").collect();
    assert_eq!(copies.len(), 1, "one COPY in the final stage: {copies:?}");
    assert_eq!(copies[0]["from"], "build");
    assert!(copies[0]["code"].as_str().unwrap().ends_with(" /usr/local/bin/cairn"), "{}", copies[0]["code"]);
    for c in last["commands"].as_array().unwrap() {
        assert!(
            matches!(c["name"].as_str().unwrap(), "COPY" | "USER" | "ENTRYPOINT" | "LABEL" | "ARG"),
            "unexpected instruction in the final stage: {}",
            c["code"]
        );
    }
    // A numeric user and group, not root: runAsNonRoot can verify a number, not a name.
    let user = last["user"].as_str().unwrap();
    let (uid, gid) = user.split_once(':').unwrap_or_else(|| panic!("USER {user:?} is not uid:gid"));
    let (uid, gid): (u32, u32) = (uid.parse().expect("numeric uid"), gid.parse().expect("numeric gid"));
    assert!(uid != 0 && gid != 0, "USER {user} is root");
    let entrypoint = commands(last, "ENTRYPOINT").last().expect("an ENTRYPOINT");
    assert_eq!(entrypoint["exec"], true, "ENTRYPOINT in exec (JSON) form");
    assert_eq!(entrypoint["args"], serde_json::json!(["cairn"]));

    // OCI labels; the version is the crate's.
    let labels = &last["labels"];
    for key in ["title", "description", "licenses", "version", "revision"] {
        assert!(
            labels.get(format!("org.opencontainers.image.{key}")).is_some(),
            "no OCI label {key}: {labels}"
        );
    }
    assert_eq!(labels["org.opencontainers.image.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(labels["org.opencontainers.image.licenses"], env!("CARGO_PKG_LICENSE"));
    assert_eq!(labels["org.opencontainers.image.description"], env!("CARGO_PKG_DESCRIPTION"));
}

/// The build stage's `cargo build` command line (shell form), and the path it leaves the binary at.
fn build_command(report: &Value) -> (String, String) {
    let build = stage(report, "build");
    let cargo: Vec<&Value> = commands(build, "RUN")
        .filter(|c| c["args"][0].as_str().is_some_and(|a| a.starts_with("cargo build")))
        .collect();
    assert_eq!(cargo.len(), 1, "one `cargo build` RUN in the build stage");
    let install = commands(build, "RUN")
        .find(|c| c["args"][0].as_str().is_some_and(|a| a.starts_with("install ")))
        .expect("a RUN that installs the binary");
    // `install [OPTIONS] "target/<triple>/release/cairn" /out/cairn`: the path under target/.
    let words =
        sh(&format!("set -- {}; shift $(($# - 2)); echo \"$1\"", install["args"][0].as_str().unwrap()));
    (cargo[0]["args"][0].as_str().unwrap().to_string(), words.trim().to_string())
}

fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "sh -c {script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// True when the ELF executable has no program interpreter (PT_INTERP): the kernel runs it
/// directly, so it cannot depend on any shared library.
fn is_static_elf(path: &Path) -> bool {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!(elf[4], 2, "64-bit ELF expected");
    assert_eq!(elf[5], 1, "little-endian ELF expected");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    assert!(phnum > 0, "no program headers");
    const PT_INTERP: u32 = 3;
    !(0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == PT_INTERP
    })
}

#[test]
fn the_release_binary_builds_with_the_dockerfiles_command_and_is_static() {
    let report = dockerfile();
    // The same compiler as the image's build stage.
    let rust = report["metaArgs"]["RUST_VERSION"].as_str().expect("ARG RUST_VERSION").to_string();
    let rustc = sh("rustc --version");
    assert!(
        rustc.starts_with(&format!("rustc {rust} ")),
        "the Dockerfile builds with Rust {rust}, this machine has {rustc}: keep them equal"
    );
    let (command, binary) = build_command(&report);
    // Run as the build stage runs it (`sh -c`), in the build context (the repository). Only the
    // target directory differs: CI's (CARGO_TARGET_DIR) or target/.
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(repo_root())
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "`{command}` failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let binary = target_dir.join(binary.strip_prefix("target/").expect("a path under target/"));
    assert!(is_static_elf(&binary), "{} has a program interpreter: not static", binary.display());

    let version = Command::new(&binary).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("cairn {}", env!("CARGO_PKG_VERSION"))
    );
    // It does real work: the CRDs it writes are the checked-in ones.
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(&binary).args(["crds", "--out"]).arg(dir.path()).status().unwrap();
    assert!(status.success());
    for file in support::yaml_files(&repo_root().join("crds")) {
        let name = file.file_name().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(name)).unwrap(),
            std::fs::read_to_string(&file).unwrap(),
            "{name:?} from the static binary"
        );
    }
}

#[test]
fn an_elf_with_an_interpreter_is_not_static() {
    // The check above can fail: the test binary itself is dynamically linked (glibc).
    let me = std::env::current_exe().unwrap();
    assert!(!is_static_elf(&me), "{} looks static", me.display());
}
