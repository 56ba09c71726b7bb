//! `cairn::manifest`: every invalid fixture is refused at its stage with its documented message,
//! the examples load cleanly, and the loader's contract (files, folders, positions, defaults,
//! namespaces, Secrets, duplicates) holds.

use cairn::api::Object;
use cairn::manifest::{self, Manifests, Options, Problem, Stage};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Paths relative to the repository root, so messages name files as a user would type them.
fn rel(path: &Path) -> PathBuf {
    path.strip_prefix(repo()).map(Path::to_path_buf).unwrap_or_else(|_| path.to_path_buf())
}

/// Options with a fixed, empty environment: fixtures never depend on the caller's variables.
fn options() -> Options {
    Options::default().with_env(Vec::<(String, String)>::new())
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

fn header<'a>(text: &'a str, key: &str, file: &Path) -> &'a str {
    let n = if key == "stage" { 0 } else { 1 };
    text.lines()
        .nth(n)
        .and_then(|l| l.strip_prefix(&format!("# {key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{}: line {} must be `# {key}: ...`", file.display(), n + 1))
}

#[test]
fn every_invalid_fixture_is_refused_at_its_stage_with_its_message() {
    let dir = repo().join("tests/fixtures/invalid");
    let files = yaml_files(&dir);
    assert!(files.len() >= 40, "expected the fixture set under {}, found {}", dir.display(), files.len());
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in &files {
        let path = rel(file);
        let text = std::fs::read_to_string(file).unwrap();
        let stage = header(&text, "stage", file);
        let expect = header(&text, "expect", file);
        assert!(!expect.is_empty(), "{}: empty `# expect:`", path.display());
        let want = match stage {
            "parse" => Stage::Parse,
            "schema" => Stage::Schema,
            "cel" => Stage::Cel,
            "cross-object" => {
                // Wrong only relative to other objects: each document must pass this module.
                if let Err(problems) = manifest::load(std::slice::from_ref(&path), &options()) {
                    let local: Vec<&Problem> = problems.iter().filter(|p| p.stage != Stage::Parse).collect();
                    if !local.is_empty() {
                        failures.push(format!("{}: cross-object fixture refused: {local:?}", path.display()));
                    }
                }
                continue;
            }
            other => {
                failures.push(format!("{}: unknown stage {other:?}", path.display()));
                continue;
            }
        };
        checked += 1;
        match manifest::load(std::slice::from_ref(&path), &options()) {
            Ok(m) => failures.push(format!("{}: accepted ({} objects)", path.display(), m.objects.len())),
            Err(problems) => {
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                let first = problems.iter().map(|p| p.stage).min();
                match problems.iter().find(|p| p.to_string().contains(expect)) {
                    None => failures.push(format!(
                        "{}: no message contains {expect:?}; got:\n      {}",
                        path.display(),
                        lines.join("\n      ")
                    )),
                    Some(p) if p.stage != want || first != Some(want) => failures.push(format!(
                        "{}: refused at stage {} (first problem at {:?}), the header says {stage}",
                        path.display(),
                        p.stage,
                        first
                    )),
                    Some(p) => assert!(p.position.file.ends_with(file.file_name().unwrap())),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} fixtures misbehave:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn every_cel_rule_has_a_fixture() {
    let mut messages = Vec::new();
    for crd in cairn::api::crds() {
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        collect_rule_messages(&schema, &mut messages);
    }
    assert!(messages.len() >= 15, "found only {} rules", messages.len());
    let fixtures: Vec<String> = yaml_files(&repo().join("tests/fixtures/invalid"))
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .filter(|t| t.starts_with("# stage: cel"))
        .collect();
    for message in messages {
        assert!(
            fixtures.iter().any(|t| t.lines().nth(1).is_some_and(|l| l.contains(&message))),
            "no cel fixture expects the rule message {message:?}"
        );
    }
}

fn collect_rule_messages(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(rules) = map.get("x-kubernetes-validations").and_then(|r| r.as_array()) {
                out.extend(rules.iter().filter_map(|r| r.get("message")?.as_str().map(str::to_owned)));
            }
            map.values().for_each(|c| collect_rule_messages(c, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|c| collect_rule_messages(c, out)),
        _ => {}
    }
}

/// Each scenario under examples/ (a folder, or a manifest file at the top) loads without a
/// problem, and so does the folder as a whole (`cairn validate -f examples/`: scenarios use their
/// own namespaces). Skipped only while examples/ does not exist.
#[test]
fn examples_load_cleanly() {
    let dir = repo().join("examples");
    if !dir.exists() {
        eprintln!("examples/ does not exist yet: skipped");
        return;
    }
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    scenarios.sort();
    assert!(!scenarios.is_empty(), "examples/ exists but holds no scenario folder or manifest");
    let mut failures = Vec::new();
    for scenario in scenarios.iter().chain(std::iter::once(&dir)) {
        let path = rel(scenario);
        match manifest::load(std::slice::from_ref(&path), &Options::default()) {
            Ok(m) if m.objects.is_empty() => failures.push(format!("{}: no Cairn objects", path.display())),
            Ok(_) => {}
            Err(problems) => failures.extend(problems.iter().map(ToString::to_string)),
        }
    }
    assert!(failures.is_empty(), "examples refused:\n  {}", failures.join("\n  "));
}

const SKETCH: &str = r#"# The API sketch of the original design, completed.
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {name: llm, namespace: platform}
spec:
  replicas: 2
  defaultAction: Deny
  listener: {port: 8080}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {name: openai}
spec:
  provider: OpenAI
  url: https://api.openai.com/v1
  credentials: {secretRef: {name: openai-key, key: apiKey}}
  models:
    - {name: gpt-4o-mini, price: {inputPerMillion: 0.15, cachedInputPerMillion: 0.075, outputPerMillion: 0.60}}
---
apiVersion: v1
kind: Secret
metadata: {name: openai-key}
stringData:
  apiKey: ${OPENAI_API_KEY}
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {name: chat}
spec:
  gatewayRefs: [{name: llm}]
  rules:
    - matches: [{model: "gpt-4o*"}]
      backends:
        - {backendRef: {name: openai}, model: gpt-4o-mini, weight: 90}
        - {backendRef: {name: anthropic}, model: claude-haiku-4-5, priority: 1}
      timeouts: {firstToken: 10s, total: 120s}
      guardrails: {request: [{pii: [Email, CreditCard], action: Redact}]}
---
apiVersion: cairn.dev/v1alpha1
kind: MCPServer
metadata: {name: files}
spec:
  gatewayRefs: [{name: tools}]
  deployment:
    image: registry.example.com/mcp/filesystem:1.2
    command: [mcp-server-filesystem, /data]
    sessions: PerSession
---
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {name: support-bot}
spec:
  identity:
    serviceAccount: {name: support-bot}
    virtualKeys: [{secretRef: {name: support-bot-key, key: key}}]
---
apiVersion: cairn.dev/v1alpha1
kind: AgentPolicy
metadata: {name: support}
spec:
  subjects: {agents: [support-bot], selector: {matchLabels: {team: support}}}
  models: [{match: "gpt-4o*", limits: {requestsPerMinute: 60, tokensPerMinute: 100000}}]
  budgets: [{amountUSD: 50, window: Month}]
status:
  spend: [{window: "2026-11", usedUSD: "12.40", limitUSD: "50"}]
"#;

fn sketch() -> Manifests {
    let options = options().with_env([("OPENAI_API_KEY", "sk-test")]);
    manifest::load_str("sketch.yaml", SKETCH, &options).unwrap_or_else(|p| panic!("{p:#?}"))
}

#[test]
fn valid_manifests_become_typed_objects_with_positions_and_defaults() {
    let m = sketch();
    let ids: Vec<String> = m
        .objects
        .iter()
        .map(|d| format!("{}:{} {}/{}", d.position.line, d.kind, d.namespace, d.name))
        .collect();
    assert_eq!(
        ids,
        [
            "2:AIGateway platform/llm",
            "10:AIBackend default/openai",
            "26:AIRoute default/chat",
            "39:MCPServer default/files",
            "49:Agent default/support-bot",
            "57:AgentPolicy default/support",
        ]
    );
    assert_eq!(m.objects[0].position.file, PathBuf::from("sketch.yaml"));
    // Schema defaults are applied, as the API server stores them.
    let Object::MCPServer(files) = &m.objects[3].value else { panic!("not an MCPServer") };
    assert_eq!(files.spec.timeout, "60s");
    assert_eq!(files.spec.tools.allow, ["*"]);
    let deployment = files.spec.deployment.as_ref().unwrap();
    assert_eq!((deployment.port, deployment.path.as_str()), (8080, "/mcp"));
    let Object::AIRoute(chat) = &m.objects[2].value else { panic!("not an AIRoute") };
    assert_eq!(chat.spec.rules[0].fallback_on.len(), 4);
    assert_eq!(chat.spec.rules[0].backends[1].weight, 1);
    let Object::AIBackend(openai) = &m.objects[1].value else { panic!("not an AIBackend") };
    assert_eq!(openai.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(openai.spec.timeouts.connect, "5s");
    // The status of a manifest is not the user's to set: dropped, as on create.
    let Object::AgentPolicy(support) = &m.objects[5].value else { panic!("not an AgentPolicy") };
    assert!(support.status.is_none());
    // Secrets: stringData with the environment expanded.
    assert_eq!(m.secrets.len(), 1);
    assert_eq!(m.secrets[0].position.line, 20);
    assert_eq!(m.secret("default", "openai-key").and_then(|s| s.get_str("apiKey")), Some("sk-test"));
    assert!(m.secret("platform", "openai-key").is_none());
}

#[test]
fn the_default_namespace_is_the_callers() {
    let options = options().with_env([("OPENAI_API_KEY", "k")]).with_namespace("team-a");
    let m = manifest::load_str("sketch.yaml", SKETCH, &options).unwrap();
    let namespaces: Vec<&str> = m.objects.iter().map(|d| d.namespace.as_str()).collect();
    assert_eq!(namespaces, ["platform", "team-a", "team-a", "team-a", "team-a", "team-a"]);
    assert_eq!(m.secrets[0].namespace, "team-a");
}

#[test]
fn problems_print_file_line_object_field_and_message() {
    let text = "apiVersion: cairn.dev/v1alpha1\nkind: AIGateway\nmetadata: {name: llm}\nspec:\n  listener:\n    port: 0\n";
    let problems = manifest::load_str("dir/gw.yaml", text, &options()).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].to_string(),
        "dir/gw.yaml:6: AIGateway/llm: spec.listener.port: Invalid value: 0: spec.listener.port in body should be greater than or equal to 1"
    );
    assert_eq!(problems[0].category(), "schema");
    assert_eq!(problems[0].field.as_deref(), Some("spec.listener.port"));
}

#[test]
fn values_the_api_server_stores_but_the_types_cannot_hold_are_reported() {
    // `int32` is not a format the API server checks, so 3000000000 replicas pass its schema;
    // the operator could not read the object back, so cairn refuses it.
    let text = "apiVersion: cairn.dev/v1alpha1\nkind: AIGateway\nmetadata: {name: llm}\nspec:\n  replicas: 3000000000\n  listener: {port: 80}\n";
    let problems = manifest::load_str("g.yaml", text, &options()).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].stage, Stage::Schema);
    assert!(
        problems[0].to_string().starts_with(
            "g.yaml:1: AIGateway/llm: passes the API server's checks but cannot be read as a AIGateway:"
        ),
        "{}",
        problems[0]
    );
}

#[test]
fn a_rule_on_the_object_itself_is_reported_at_nil_like_the_api_server() {
    let text = "apiVersion: cairn.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: a.b}\nspec:\n  gatewayRefs: [{name: t}]\n  url: http://x\n";
    let problems = manifest::load_str("s.yaml", text, &options()).unwrap_err();
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            r#"s.yaml:1: MCPServer/a.b: <nil>: Invalid value: metadata.name is not a valid tool prefix (^[a-z0-9-]{1,40}$): set spec.prefix"#
        ]
    );
    assert_eq!(problems[0].stage, Stage::Cel);
}

#[test]
fn type_errors_stop_the_cel_rules_as_on_the_api_server() {
    let text = "apiVersion: cairn.dev/v1alpha1\nkind: AIGateway\nmetadata: {name: llm}\nspec:\n  replicas: x\n  autoscaling: {maxReplicas: 2}\n  listener: {port: 80}\n";
    let problems = manifest::load_str("g.yaml", text, &options()).unwrap_err();
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            r#"g.yaml:5: AIGateway/llm: spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
            "g.yaml:1: AIGateway/llm: <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ]
    );
}

#[test]
fn a_v1_list_is_read_item_by_item() {
    let text = "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: cairn.dev/v1alpha1\n    kind: AIGateway\n    metadata: {name: a}\n    spec: {listener: {port: 80}}\n  - apiVersion: cairn.dev/v1alpha1\n    kind: AIGateway\n    metadata: {name: b}\n    spec:\n      listener: {port: 0}\n";
    let problems = manifest::load_str("l.yaml", text, &options()).unwrap_err();
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "l.yaml:12: AIGateway/b: spec.listener.port: Invalid value: 0: spec.listener.port in body should be greater than or equal to 1"
        ]
    );
    let good = text.replace("port: 0", "port: 81");
    let m = manifest::load_str("l.yaml", &good, &options()).unwrap();
    let at: Vec<(u64, &str)> = m.objects.iter().map(|d| (d.position.line, d.name.as_str())).collect();
    assert_eq!(at, [(4, "a"), (8, "b")]);
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

const GATEWAY: &str = "apiVersion: cairn.dev/v1alpha1\nkind: AIGateway\nmetadata: {name: NAME}\nspec: {listener: {port: 8080}}\n";

#[test]
fn folders_are_read_recursively_in_sorted_order_yaml_and_yml_only() {
    let dir = tree(&[
        ("b.yaml", &GATEWAY.replace("NAME", "b")),
        ("a/z.yml", &GATEWAY.replace("NAME", "az")),
        ("a/c.yaml", &format!("{}---\n{}", GATEWAY.replace("NAME", "ac1"), GATEWAY.replace("NAME", "ac2"))),
        ("notes.txt", "not yaml"),
        (".hidden/x.yaml", "this: [is not read"),
    ]);
    let m = manifest::load(&[dir.path().to_path_buf()], &options()).unwrap();
    let seen: Vec<(String, u64)> = m
        .objects
        .iter()
        .map(|d| (format!("{}:{}", rel_to(&d.position.file, dir.path()), d.name), d.position.line))
        .collect();
    assert_eq!(
        seen,
        [
            ("a/c.yaml:ac1".into(), 1),
            ("a/c.yaml:ac2".into(), 6),
            ("a/z.yml:az".into(), 1),
            ("b.yaml:b".into(), 1)
        ]
    );
}

fn rel_to(path: &Path, base: &Path) -> String {
    path.strip_prefix(base).unwrap().display().to_string()
}

#[test]
fn empty_folders_missing_paths_and_cross_file_duplicates_are_problems() {
    let dir = tree(&[
        ("one/gw.yaml", &GATEWAY.replace("NAME", "llm")),
        ("two/gw.yaml", &format!("# again\n{}", GATEWAY.replace("NAME", "llm"))),
        ("empty/readme.txt", "nothing"),
    ]);
    let empty = dir.path().join("empty");
    let missing = dir.path().join("missing.yaml");
    let (manifests, problems) = manifest::load_lenient(
        &[dir.path().join("one"), dir.path().join("two"), empty.clone(), missing.clone()],
        &options(),
    );
    assert_eq!(manifests.objects.len(), 1, "the first definition is kept");
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0], format!("{}: no manifests (*.yaml or *.yml) in this folder", empty.display()));
    assert!(lines[1].starts_with(&format!("{}: cannot read: ", missing.display())), "{}", lines[1]);
    let two = dir.path().join("two/gw.yaml");
    let one = dir.path().join("one/gw.yaml");
    assert_eq!(
        lines[2],
        format!(
            "{}:2: AIGateway/llm: duplicate: AIGateway \"llm\" in namespace \"default\" is also defined at {}:1",
            two.display(),
            one.display()
        )
    );
    // Same name in another namespace is another object.
    let other = format!(
        "{}---\n{}",
        GATEWAY.replace("NAME", "llm"),
        GATEWAY.replace("NAME", "llm").replace("{name: llm}", "{name: llm, namespace: b}")
    );
    assert_eq!(manifest::load_str("x.yaml", &other, &options()).unwrap().objects.len(), 2);
}

#[test]
fn no_input_makes_the_loader_panic() {
    let nasty = [
        "",
        "~",
        "---\n---\n",
        "[1, 2]",
        "kind: 7\napiVersion: v1",
        "apiVersion: v1\nkind: Secret\nmetadata: []\n",
        "apiVersion: v1\nkind: Secret\ndata: 5\nstringData: {a: 1}\nmetadata: {name: s}\n",
        "apiVersion: cairn.dev/v1alpha1\nkind: AIGateway\nmetadata: 5\nspec: 5\n",
        "apiVersion: cairn.dev/v1alpha1\nkind: AIGateway\nmetadata: {name: a}\nspec: {listener: {port: 99999999999999999999}}\n",
        "apiVersion: cairn.dev/v1alpha1\nkind: AIRoute\nmetadata: {name: a}\nspec: {gatewayRefs: [null, 1, [], {}], rules: [{backends: null}]}\n",
        "apiVersion: cairn.dev/v1alpha1\nkind: AgentPolicy\nmetadata: {name: a, labels: {x: 1}}\nspec: {subjects: null, budgets: [{amountUSD: .inf}]}\n",
        "a: &a [*a]\n",
        "a: !!binary aGk=\nb: !custom x\n",
        "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{",
    ];
    for text in nasty {
        let result = std::panic::catch_unwind(|| manifest::load_str("n.yaml", text, &options()));
        assert!(result.is_ok(), "panicked on {text:?}");
    }
}

/// Every prefix of every fixture and example (cut every 13 bytes) is refused or accepted,
/// never a panic: truncated files are what an editor saves halfway.
#[test]
fn truncated_manifests_never_panic() {
    let mut files = yaml_files(&repo().join("tests/fixtures/invalid"));
    for dir in ["quickstart", "mcp-tools", "agents", "platform"] {
        let path = repo().join("examples").join(dir);
        if path.is_dir() {
            files.extend(yaml_files(&path));
        }
    }
    let options = options();
    let mut loads = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let cuts = (0..text.len()).step_by(13).filter(|i| text.is_char_boundary(*i));
        for cut in cuts {
            let prefix = &text[..cut];
            let result = std::panic::catch_unwind(|| manifest::load_str("cut.yaml", prefix, &options));
            assert!(result.is_ok(), "{} cut at byte {cut} panicked", file.display());
            loads += 1;
        }
    }
    assert!(loads > 1000, "only {loads} loads");
}
