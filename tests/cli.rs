//! The `cairn` command line: `validate`, `explain` and `crds` on the examples and the fixtures.
//!
//! Snapshots of the compiled examples live in tests/snapshots/; after an intended change run
//! `CAIRN_BLESS=1 cargo test --test cli` and review the diff.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).current_dir(root()).output().expect("cairn runs")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    assert!(v.len() >= 4, "expected the four example folders, found {v:?}");
    v
}

#[test]
fn every_example_validates() {
    for dir in examples() {
        let rel = dir.strip_prefix(root()).unwrap().to_str().unwrap().to_string();
        let out = cairn(&["validate", "-f", &rel]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{rel} failed:\n{stdout}{stderr}");
        assert!(stdout.is_empty(), "{rel} printed problems:\n{stdout}");
        assert!(stderr.starts_with("valid: "), "{stderr}");
    }
    let out = cairn(&["validate", "-f", "examples"]);
    assert!(out.status.success(), "the whole examples/ folder must validate:\n{:?}", text(&out));
}

/// The compiled configs of an example, without secret values, as checked-in JSON.
fn snapshot(dir: &Path) -> String {
    use cairn::compile::Mode;
    let ws = cairn::workspace::Workspace::load(
        &[dir.to_path_buf()],
        &cairn::manifest::Options::default().with_env([("OPENAI_API_KEY", "sk-test")]),
        &Mode::Cluster { domain: "cluster.local".into() },
    );
    assert!(ws.problems.is_empty(), "{:?}", ws.problems);
    let gateways: Vec<serde_json::Value> = ws
        .output
        .gateways
        .iter()
        .map(|g| {
            serde_json::json!({
                "gateway": g.config.gateway.to_string(),
                "hash": g.hash(),
                "credentialIds": g.credentials.0.keys().collect::<Vec<_>>(),
                "config": serde_json::from_str::<serde_json::Value>(&g.config.to_json()).unwrap(),
            })
        })
        .collect();
    let diagnostics: Vec<String> = ws.output.diagnostics.iter().map(ToString::to_string).collect();
    serde_json::to_string_pretty(&serde_json::json!({"gateways": gateways, "diagnostics": diagnostics}))
        .unwrap()
        + "\n"
}

#[test]
fn every_example_compiles_to_its_checked_in_snapshot() {
    let bless = std::env::var_os("CAIRN_BLESS").is_some();
    let mut drift = Vec::new();
    for dir in examples() {
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let path = root().join("tests/snapshots").join(format!("{name}.json"));
        let now = snapshot(&dir);
        if bless {
            std::fs::write(&path, &now).unwrap();
        }
        let before = std::fs::read_to_string(&path).unwrap_or_default();
        if before != now {
            drift.push(name.clone());
        }
        // Secrets never reach a snapshot (nor a config).
        for secret in
            ["sk-openai-replace-me", "cairn-vk-support-bot-0123456789abcdef", "ghp_example_token_replace_me"]
        {
            assert!(!now.contains(secret), "{secret} leaked into the compiled config of {name}");
        }
    }
    assert!(
        drift.is_empty(),
        "compiled configs changed for {drift:?}; if intended: CAIRN_BLESS=1 cargo test --test cli"
    );
}

/// (stage, expected message) from a fixture's two header lines.
fn header(path: &Path) -> (String, String) {
    let body = std::fs::read_to_string(path).unwrap();
    let mut lines = body.lines();
    let stage = lines.next().and_then(|l| l.strip_prefix("# stage: ")).map(str::to_string);
    let expect = lines.next().and_then(|l| l.strip_prefix("# expect: ")).map(str::to_string);
    (
        stage.unwrap_or_else(|| panic!("{} lacks `# stage:`", path.display())),
        expect.unwrap_or_else(|| panic!("{} lacks `# expect:`", path.display())),
    )
}

#[test]
fn every_invalid_fixture_is_refused_by_cairn_validate_with_its_message() {
    let dir = root().join("tests/fixtures/invalid");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    fixtures.sort();
    assert!(fixtures.len() >= 40, "only {} fixtures", fixtures.len());
    let mut failures = Vec::new();
    for f in &fixtures {
        let (stage, expect) = header(f);
        let rel = f.strip_prefix(root()).unwrap().to_str().unwrap();
        let out = cairn(&["validate", "-f", rel]);
        let (stdout, stderr) = text(&out);
        if out.status.code() != Some(1) {
            failures.push(format!("{rel}: exit {:?}, want 1\n{stdout}{stderr}", out.status.code()));
        } else if !stdout.contains(&expect) {
            failures.push(format!("{rel} ({stage}): want {expect:?}\n got: {stdout}{stderr}"));
        } else if !stdout.lines().any(|l| l.starts_with(rel) && l.contains(&expect)) {
            failures.push(format!("{rel}: the message must start with the file name: {stdout}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn cross_object_problems_carry_the_file_and_line_of_the_offending_object() {
    let out = cairn(&["validate", "-f", "tests/fixtures/invalid/cross-route-missing-backend.yaml"]);
    let (stdout, _) = text(&out);
    let want = "tests/fixtures/invalid/cross-route-missing-backend.yaml:8: AIRoute/chat: \
                spec.rules[0].backends[0].backendRef.name: AIBackend \"nope\" not found in namespace \"default\"";
    assert!(stdout.lines().any(|l| l == want), "{stdout}");
}

#[test]
fn an_empty_folder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = cairn(&["validate", "-f", dir.path().to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("no manifests"), "{stdout}");
}

#[test]
fn the_operator_refuses_an_otlp_endpoint_that_is_not_a_url_or_an_unknown_protocol() {
    let out = cairn(&["operator", "--otlp-endpoint", "otel-collector:4317"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid value 'otel-collector:4317' for '--otlp-endpoint <OTLP_ENDPOINT>': an OTLP endpoint is an http:// or https:// URL, such as http://otel-collector:4317"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["operator", "--otlp-endpoint", "http://otel-collector:4318"])
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .output()
        .expect("cairn runs");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'http/json' for '--otlp-protocol <OTLP_PROTOCOL>'"), "{stderr}");
    assert!(stderr.contains("[possible values: grpc, http/protobuf]"), "{stderr}");
}

#[test]
fn explain_agent_lists_models_tools_agents_limits_and_budgets() {
    let out = cairn(&["explain", "-f", "examples/platform", "-n", "platform", "agent", "support-bot"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for want in [
        "Agent support-bot (namespace platform)",
        "identities: ServiceAccount platform/support-bot, virtual key",
        "policies:   support",
        "models:     gpt-4o* (support), claude-haiku-4-5 (support)",
        "tools:      github__search_* (support), github__get_* (support), files__read_* (support)",
        "agents:     billing-agent [skills refund-lookup] (support)",
        "limit:      model 'gpt-4o*': 60 requests/min, 100000 tokens/min (support)",
        "budget:     $50.00 per Month, PerSubject, Block (support)",
        "AIGateway llm: claude-haiku-4-5, gpt-4o*",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
}

#[test]
fn explain_who_can_answers_per_gateway() {
    let (stdout, _) = text(&cairn(&[
        "explain",
        "-f",
        "examples/platform",
        "-n",
        "platform",
        "who-can",
        "tool",
        "github__search_code",
    ]));
    assert!(stdout.contains("MCPGateway tools: support-bot (via support)"), "{stdout}");
    let (stdout, _) = text(&cairn(&[
        "explain",
        "-f",
        "examples/platform",
        "-n",
        "platform",
        "who-can",
        "tool",
        "github__delete_repo",
    ]));
    assert!(
        stdout.contains(r#"nobody: MCPServer "github" hides "delete_repo" with its tools allow/deny filter"#),
        "{stdout}"
    );
    let (stdout, _) = text(&cairn(&[
        "explain",
        "-f",
        "examples/platform",
        "-n",
        "platform",
        "who-can",
        "model",
        "gpt-4o-mini",
    ]));
    assert!(
        stdout.contains("AIGateway llm: billing-agent (via billing), support-bot (via support)"),
        "{stdout}"
    );
    let (stdout, _) = text(&cairn(&[
        "explain",
        "-f",
        "examples/platform",
        "-n",
        "platform",
        "who-can",
        "agent",
        "billing-agent",
        "--skill",
        "refunds-issue",
    ]));
    assert!(stdout.contains("AgentGateway agents: nobody"), "{stdout}");
    let (stdout, _) =
        text(&cairn(&["explain", "-f", "examples/quickstart", "who-can", "model", "gpt-4o-mini"]));
    assert!(
        stdout.contains(
            "any caller no AgentPolicy names (defaultAction Allow), anonymous callers without credentials"
        ),
        "{stdout}"
    );
}

/// A server whose names pass through (`prefix: ""`): it validates, the policy grants its tools by
/// their own names, and `explain` shows and routes them as clients see them.
#[test]
fn explain_and_validate_an_unprefixed_server() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"apiVersion: cairn.dev/v1alpha1
kind: MCPGateway
metadata: {name: tools}
spec: {listener: {port: 8081}, defaultAction: Deny}
---
apiVersion: cairn.dev/v1alpha1
kind: MCPServer
metadata: {name: files}
spec: {gatewayRefs: [{name: tools}], prefix: "", url: "https://mcp.example.com/files"}
---
apiVersion: cairn.dev/v1alpha1
kind: MCPServer
metadata: {name: github}
spec: {gatewayRefs: [{name: tools}], url: "https://mcp.example.com/github"}
---
apiVersion: v1
kind: Secret
metadata: {name: bot-key}
stringData: {key: cairn-vk-bot-0123456789abcdef}
---
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {name: bot}
spec: {identity: {virtualKeys: [{secretRef: {name: bot-key, key: key}}]}}
---
apiVersion: cairn.dev/v1alpha1
kind: AgentPolicy
metadata: {name: readers}
spec:
  subjects: {agents: [bot]}
  tools: [{server: files, tools: ["read_*"]}, {server: github, tools: ["search_*"]}]
"#;
    let path = dir.path().join("tools.yaml");
    std::fs::write(&path, yaml).unwrap();
    let f = path.to_str().unwrap();
    let out = cairn(&["validate", "-f", f]);
    assert!(out.status.success(), "{:?}", text(&out));
    let (stdout, _) = text(&cairn(&["explain", "-f", f, "agent", "bot"]));
    assert!(stdout.contains("MCPGateway tools: read_*, github__search_*"), "{stdout}");
    let (stdout, _) = text(&cairn(&["explain", "-f", f, "who-can", "tool", "read_file"]));
    assert!(stdout.contains("MCPGateway tools: bot (via readers)"), "{stdout}");
    let (stdout, _) = text(&cairn(&["explain", "-f", f, "who-can", "tool", "github__search_code"]));
    assert!(stdout.contains("MCPGateway tools: bot (via readers)"), "{stdout}");
    // The files server's write_file is not granted; github's read_file is not github__read_file.
    for tool in ["write_file", "github__read_file"] {
        let (stdout, _) = text(&cairn(&["explain", "-f", f, "who-can", "tool", tool]));
        assert!(stdout.contains("MCPGateway tools: nobody"), "{tool}: {stdout}");
    }
}

#[test]
fn explain_errors_name_what_is_wrong() {
    let out = cairn(&["explain", "-f", "examples/platform", "-n", "platform", "agent", "ghost"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains(
            r#"error: no Agent named "ghost" in namespace "platform" (known: billing-agent, support-bot)"#
        ),
        "{stderr}"
    );
    let out = cairn(&["explain", "-f", "examples/platform", "-n", "platform", "who-can", "tool", "search"]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains(r#"MCPGateway tools: nobody: no MCPServer on this gateway serves "search": use <prefix>__<tool> (no server here passes names through unprefixed)"#),
        "{stdout}"
    );
    let out = cairn(&["explain", "-f", "examples/platform", "-n", "elsewhere", "agent", "x"]);
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains(
            r#"error: namespace "elsewhere" has no AIGateway, MCPGateway or AgentGateway that compiled"#
        ),
        "{stderr}"
    );
}

#[test]
fn crds_to_stdout_are_the_checked_in_files() {
    let out = cairn(&["crds", "--out", "-"]);
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    for (name, yaml) in cairn::api::crd_files().unwrap() {
        assert!(printed.contains(&yaml), "{name} not printed");
    }
}
