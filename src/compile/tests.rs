//! Cross-object rules of the compile step, each pinned by a test.

use super::*;
use crate::config::{IdentityConfig, McpEndpoint};

/// Typed objects and Secrets from a multi-document YAML string (namespace `default` when unset).
fn objects(yaml: &str) -> (Vec<Object>, Secrets) {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml).expect("test YAML parses");
    let mut objs = Vec::new();
    let mut secrets = Secrets::new();
    for mut d in docs {
        if d.is_null() {
            continue;
        }
        if d["metadata"]["namespace"].is_null() {
            d["metadata"]["namespace"] = "default".into();
        }
        let kind = d["kind"].as_str().expect("kind").to_string();
        if kind == "Secret" {
            let ns = d["metadata"]["namespace"].as_str().unwrap().to_string();
            let name = d["metadata"]["name"].as_str().unwrap().to_string();
            let data = d["stringData"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect())
                .unwrap_or_default();
            secrets.insert((ns, name), data);
            continue;
        }
        let o = match kind.as_str() {
            "AIGateway" => Object::AIGateway(serde_json::from_value(d).unwrap()),
            "AIBackend" => Object::AIBackend(serde_json::from_value(d).unwrap()),
            "AIRoute" => Object::AIRoute(serde_json::from_value(d).unwrap()),
            "MCPGateway" => Object::MCPGateway(serde_json::from_value(d).unwrap()),
            "MCPServer" => Object::MCPServer(serde_json::from_value(d).unwrap()),
            "AgentGateway" => Object::AgentGateway(serde_json::from_value(d).unwrap()),
            "Agent" => Object::Agent(serde_json::from_value(d).unwrap()),
            "AgentPolicy" => Object::AgentPolicy(serde_json::from_value(d).unwrap()),
            k => panic!("unknown kind {k}"),
        };
        objs.push(o);
    }
    (objs, secrets)
}

fn run(yaml: &str, mode: Mode) -> Output {
    let (objs, secrets) = objects(yaml);
    compile(Input { objects: &objs, secrets: &secrets, mode: &mode })
}

fn local(yaml: &str) -> Output {
    run(yaml, Mode::Local)
}

fn messages(out: &Output) -> Vec<String> {
    out.diagnostics.iter().map(ToString::to_string).collect()
}

fn gateway<'a>(out: &'a Output, name: &str) -> &'a CompiledGateway {
    out.gateways.iter().find(|g| g.config.gateway.name == name).expect("gateway compiled")
}

const AI: &str = r#"
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {name: llm}
spec: {listener: {port: 8080}}
---
apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {openai: sk-live-secret-value}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {name: openai}
spec:
  provider: OpenAI
  credentials: {secretRef: {name: keys, key: openai}}
  models: [{name: gpt-4o-mini, price: {inputPerMillion: 0.15, outputPerMillion: 0.6}}]
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {name: good}
spec:
  gatewayRefs: [{name: llm}]
  rules:
    - matches: [{model: gpt-4o-mini}]
      backends: [{backendRef: {name: openai}}]
"#;

#[test]
fn a_valid_ai_setup_compiles_without_diagnostics() {
    let out = local(AI);
    assert_eq!(messages(&out), Vec::<String>::new());
    let g = gateway(&out, "llm");
    let ai = g.config.ai.as_ref().unwrap();
    assert_eq!(ai.rules.len(), 1);
    assert_eq!(ai.backends[0].url, "https://api.openai.com/v1");
    assert_eq!(ai.backends[0].headers[0].name, "Authorization");
    assert_eq!(ai.backends[0].headers[0].prefix, "Bearer ");
}

#[test]
fn provider_keys_live_only_in_the_credentials_bundle() {
    let out = local(AI);
    let g = gateway(&out, "llm");
    assert!(!g.config.to_json().contains("sk-live-secret-value"));
    let r = g.config.ai.as_ref().unwrap().backends[0].headers[0].credential.clone().unwrap();
    assert_eq!(g.credentials.get(&r), Some("sk-live-secret-value"));
    assert!(!format!("{:?}", g.credentials).contains("sk-live"), "Debug must not print secrets");
}

#[test]
fn a_route_to_a_missing_backend_is_reported_and_the_good_route_still_compiles() {
    let yaml = format!(
        "{AI}---\n{}",
        r#"apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {name: broken}
spec:
  gatewayRefs: [{name: llm}]
  rules:
    - matches: [{model: other}]
      backends: [{backendRef: {name: nope}}]
"#
    );
    let out = local(&yaml);
    let m = messages(&out);
    assert!(m.contains(&r#"AIRoute/broken: spec.rules[0].backends[0].backendRef.name: AIBackend "nope" not found in namespace "default""#.to_string()), "{m:?}");
    assert!(
        m.contains(
            &"AIRoute/broken: spec.rules[0].backends: no usable backend: the rule is not served".to_string()
        ),
        "{m:?}"
    );
    let rules = &gateway(&out, "llm").config.ai.as_ref().unwrap().rules;
    assert_eq!(rules.iter().map(|r| r.route.as_str()).collect::<Vec<_>>(), ["good"]);
}

#[test]
fn a_missing_secret_or_key_names_the_field_and_drops_only_that_backend() {
    let yaml = AI.replace("key: openai}", "key: anthropic}");
    let out = local(&yaml);
    let m = messages(&out);
    assert!(m.contains(&r#"AIBackend/openai: spec.credentials.secretRef: Secret "keys" has no key "anthropic" (it has: openai)"#.to_string()), "{m:?}");
    let yaml = AI.replace("name: keys, key", "name: gone, key");
    let m = messages(&local(&yaml));
    assert!(m.contains(&r#"AIBackend/openai: spec.credentials.secretRef: Secret "gone" not found in namespace "default""#.to_string()), "{m:?}");
    assert!(
        m.iter().any(|x| x.starts_with(
            "AIRoute/good: spec.rules[0].backends[0].backendRef.name: AIBackend \"openai\" is not usable"
        )),
        "{m:?}"
    );
}

#[test]
fn a_route_on_a_gateway_of_the_wrong_layer_is_refused() {
    let yaml = r#"
apiVersion: cairn.dev/v1alpha1
kind: MCPGateway
metadata: {name: tools}
spec: {listener: {port: 8081}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {name: echo}
spec: {provider: Echo}
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {name: chat}
spec:
  gatewayRefs: [{name: tools}, {name: missing}]
  rules: [{matches: [{model: m}], backends: [{backendRef: {name: echo}}]}]
"#;
    let m = messages(&local(yaml));
    assert!(m.contains(&r#"AIRoute/chat: spec.gatewayRefs[0].name: "tools" is an MCPGateway, but a AIRoute attaches only to an AIGateway"#.to_string()), "{m:?}");
    assert!(m.contains(&r#"AIRoute/chat: spec.gatewayRefs[1].name: AIGateway "missing" not found in namespace "default""#.to_string()), "{m:?}");
}

#[test]
fn a_backend_that_does_not_list_the_model_is_refused() {
    let yaml = AI.replace(
        "backends: [{backendRef: {name: openai}}]",
        "backends: [{backendRef: {name: openai}, model: gpt-5}]",
    );
    let m = messages(&local(&yaml));
    assert!(m.contains(&r#"AIRoute/good: spec.rules[0].backends[0].model: AIBackend "openai" does not serve model "gpt-5" (it lists: gpt-4o-mini)"#.to_string()), "{m:?}");
}

const MCP: &str = r#"
apiVersion: cairn.dev/v1alpha1
kind: MCPGateway
metadata: {name: tools}
spec: {listener: {port: 8081}}
---
apiVersion: cairn.dev/v1alpha1
kind: MCPServer
metadata: {name: alpha}
spec: {gatewayRefs: [{name: tools}], prefix: gh, url: "http://a.example/mcp"}
---
apiVersion: cairn.dev/v1alpha1
kind: MCPServer
metadata: {name: beta}
spec: {gatewayRefs: [{name: tools}], prefix: gh, url: "http://b.example/mcp"}
---
apiVersion: cairn.dev/v1alpha1
kind: MCPServer
metadata: {name: files}
spec:
  gatewayRefs: [{name: tools}]
  deployment: {image: "img:1", command: [mcp-files, /data], transport: Stdio}
"#;

#[test]
fn two_servers_claiming_one_prefix_keep_the_first_by_name() {
    let out = local(MCP);
    let m = messages(&out);
    assert!(m.contains(&r#"MCPServer/beta: spec.prefix: tool prefix "gh" is already used by MCPServer "alpha" on MCPGateway "tools""#.to_string()), "{m:?}");
    let servers = &gateway(&out, "tools").config.mcp.as_ref().unwrap().servers;
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["files", "alpha"], "sorted by prefix: files < gh");
}

#[test]
fn deployed_servers_are_reached_by_service_in_a_cluster_and_run_locally_in_local_mode() {
    let out = run(MCP, Mode::Cluster { domain: "cluster.local".into() });
    let files = &gateway(&out, "tools").config.mcp.as_ref().unwrap().servers[0];
    assert_eq!(
        files.endpoint,
        McpEndpoint::Http { url: "http://files-mcp-server.default.svc.cluster.local:8080/mcp".into() }
    );
    let out = local(MCP);
    let files = &gateway(&out, "tools").config.mcp.as_ref().unwrap().servers[0];
    assert!(
        matches!(&files.endpoint, McpEndpoint::Stdio { command, per_session: true, .. } if command == &["mcp-files", "/data"])
    );
}

#[test]
fn local_mode_cannot_run_an_http_image_and_says_so() {
    let yaml = MCP.replace("transport: Stdio", "transport: StreamableHTTP");
    let out = local(&yaml);
    let d = out.diagnostics.iter().find(|d| d.object.name == "files").expect("diagnostic");
    assert_eq!(d.severity, Severity::Warning);
    assert!(d.message.contains("local mode runs only Stdio deployments"), "{d}");
}

const POLICY: &str = r#"
apiVersion: cairn.dev/v1alpha1
kind: AgentGateway
metadata: {name: agents}
spec: {listener: {port: 8082}}
---
apiVersion: v1
kind: Secret
metadata: {name: k}
stringData: {a: abcdefghijklmnopqrstuvwxyz, short: abc}
---
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {name: bot, labels: {team: support}}
spec:
  identity:
    serviceAccount: {name: bot-sa}
    virtualKeys: [{secretRef: {name: k, key: a}}]
---
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {name: peer}
spec:
  a2a: {url: "http://peer:8000/", gatewayRefs: [{name: agents}]}
---
apiVersion: cairn.dev/v1alpha1
kind: AgentPolicy
metadata: {name: p}
spec:
  subjects: {agents: [bot, ghost], selector: {matchLabels: {team: support}}}
  models: [{match: "gpt-*"}]
  tools: [{server: nowhere}]
  agents: [{name: peer, skills: [s1]}, {name: bot}]
"#;

#[test]
fn policies_drop_unknown_subjects_servers_and_non_a2a_agents_with_a_diagnostic_each() {
    let out = local(POLICY);
    let m = messages(&out);
    for want in [
        r#"AgentPolicy/p: spec.subjects.agents[1]: Agent "ghost" not found in namespace "default""#,
        r#"AgentPolicy/p: spec.tools[0].server: MCPServer "nowhere" not found in namespace "default""#,
        r#"AgentPolicy/p: spec.agents[1].name: Agent "bot" serves no A2A endpoint (spec.a2a), so it cannot be called"#,
    ] {
        assert!(m.contains(&want.to_string()), "missing {want}\n in {m:?}");
    }
    let policy = &gateway(&out, "agents").config.policy.policies[0];
    assert_eq!(policy.subjects, ["bot"]);
    assert!(policy.tools.is_empty());
    assert_eq!(policy.agents.len(), 1);
    let eff = &out.effective[&ObjectRef::new("AgentPolicy", "default", "p")];
    assert_eq!(eff.agents, ["peer"]);
    assert_eq!(eff.models, ["gpt-*"]);
}

#[test]
fn a_dropped_grant_shifts_no_other_grant_id() {
    // `bot` (no A2A endpoint) is dropped; `peer` keeps the id of its place in the spec, so its
    // limit counters stay the same whether or not the grant before it compiles.
    let out = local(&POLICY.replace(
        "agents: [{name: peer, skills: [s1]}, {name: bot}]",
        "agents: [{name: bot}, {name: peer, skills: [s1]}]",
    ));
    let policy = &gateway(&out, "agents").config.policy.policies[0];
    let ids: Vec<&str> = policy.agents.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["p/agents/1"]);
    assert_eq!(policy.models[0].id, "p/models/0");
}

#[test]
fn virtual_keys_appear_only_as_salted_hashes() {
    let out = local(POLICY);
    let g = gateway(&out, "agents");
    let json = g.config.to_json();
    assert!(!json.contains("abcdefghijklmnopqrstuvwxyz"));
    let bot = g.config.policy.subjects.iter().find(|s| s.name == "bot").unwrap();
    let salt = &g.config.auth.virtual_key_salt;
    assert!(bot.identities.contains(&IdentityConfig::VirtualKey {
        hash: crate::config::hash_virtual_key(salt, "abcdefghijklmnopqrstuvwxyz")
    }));
    assert!(
        bot.identities
            .contains(&IdentityConfig::ServiceAccount { namespace: "default".into(), name: "bot-sa".into() })
    );
}

#[test]
fn short_or_shared_virtual_keys_are_refused() {
    let yaml = POLICY.replace(
        "key: a}}]\n---\napiVersion: cairn.dev/v1alpha1\nkind: Agent\nmetadata: {name: peer}",
        "key: short}}]\n---\napiVersion: cairn.dev/v1alpha1\nkind: Agent\nmetadata: {name: peer}",
    );
    let m = messages(&local(&yaml));
    assert!(m.iter().any(|x| x.contains("is shorter than 16 characters")), "{m:?}");
    let yaml = POLICY.replace(
        "spec:\n  a2a: {url",
        "spec:\n  identity: {virtualKeys: [{secretRef: {name: k, key: a}}]}\n  a2a: {url",
    );
    let m = messages(&local(&yaml));
    assert!(m.contains(&r#"Agent/peer: spec.identity.virtualKeys[0].secretRef: the same virtual key is already the identity of Agent "bot""#.to_string()), "{m:?}");
}

#[test]
fn duplicate_objects_are_reported() {
    let yaml = format!(
        "{AI}---\n{}",
        "apiVersion: cairn.dev/v1alpha1\nkind: AIBackend\nmetadata: {name: openai}\nspec: {provider: Echo}\n"
    );
    let m = messages(&local(&yaml));
    assert!(
        m.contains(&r#"AIBackend/openai: metadata.name: duplicate AIBackend named "openai""#.to_string()),
        "{m:?}"
    );
}

#[test]
fn output_is_deterministic_whatever_the_input_order() {
    let all = format!("{AI}---\n{MCP}---\n{}", POLICY.replace("port: 8082", "port: 8083"));
    let (mut objs, secrets) = objects(&all);
    let mode = Mode::Local;
    let a = compile(Input { objects: &objs, secrets: &secrets, mode: &mode });
    objs.reverse();
    let b = compile(Input { objects: &objs, secrets: &secrets, mode: &mode });
    let hashes =
        |o: &Output| o.gateways.iter().map(|g| (g.config.gateway.name.clone(), g.hash())).collect::<Vec<_>>();
    assert_eq!(hashes(&a), hashes(&b));
    assert_eq!(a.diagnostics, b.diagnostics);
    assert_eq!(a.gateways.len(), 3);
}

#[test]
fn two_local_gateways_on_one_port_conflict() {
    let yaml = format!("{AI}---\n{}", MCP.replace("port: 8081", "port: 8080"));
    let m = messages(&local(&yaml));
    assert!(
        m.contains(
            &"MCPGateway/tools: spec.listener.port: port 8080 is already used by AIGateway/llm".to_string()
        ),
        "{m:?}"
    );
}

#[test]
fn a_guardrail_regex_that_does_not_compile_keeps_the_rule_from_being_served() {
    let yaml = AI.replace(
        "backends: [{backendRef: {name: openai}}]",
        "backends: [{backendRef: {name: openai}}]\n      guardrails: {request: [{regex: [\"(unclosed\"], action: Deny}]}",
    );
    let out = local(&yaml);
    let m = messages(&out);
    assert!(
        m.iter().any(|x| x.starts_with(r#"AIRoute/good: spec.rules[0].guardrails.request[0].regex[0]: invalid regular expression "(unclosed""#)),
        "{m:?}"
    );
    assert!(gateway(&out, "llm").config.ai.as_ref().unwrap().rules.is_empty());
}

#[test]
fn an_agent_may_not_take_the_anonymous_subject_name() {
    let yaml = POLICY.replace("metadata: {name: peer}", "metadata: {name: anonymous}");
    let out = local(&yaml);
    let m = messages(&out);
    assert!(
        m.contains(&r#"Agent/anonymous: metadata.name: the name "anonymous" is reserved for callers without credentials; rename the Agent"#.to_string()),
        "{m:?}"
    );
    let subjects = &gateway(&out, "agents").config.policy.subjects;
    assert!(subjects.iter().all(|s| s.name != "anonymous"));
}

/// The gateways' defaults are stated once, in `config`: a gateway spec that sets nothing
/// compiles (through the API's schema defaults) to exactly them.
#[test]
fn spec_defaults_compile_to_the_config_defaults() {
    let out = local(
        r#"
apiVersion: cairn.dev/v1alpha1
kind: AgentGateway
metadata: {name: agents}
spec: {listener: {port: 8082}}
---
apiVersion: cairn.dev/v1alpha1
kind: MCPGateway
metadata: {name: tools}
spec: {listener: {port: 8081}}
"#,
    );
    assert_eq!(messages(&out), Vec::<String>::new());
    assert_eq!(gateway(&out, "agents").config.agent, Some(crate::config::AgentLayerConfig::default()));
    let mcp = gateway(&out, "tools").config.mcp.clone().unwrap();
    assert_eq!(mcp.session_idle_timeout_ms, crate::config::McpConfig::default().session_idle_timeout_ms);
}

#[test]
fn every_secret_looked_up_is_named_whether_found_or_not() {
    let yaml = format!(
        "{AI}\n---\napiVersion: cairn.dev/v1alpha1\nkind: AIGateway\nmetadata: {{name: other}}\nspec:\n  \
         listener: {{port: 8081}}\n  store: {{redis: {{url: \"redis://r:6379\", passwordSecretRef: {{name: missing, key: k}}}}}}\n"
    );
    let out = local(&yaml);
    let named: Vec<(&str, &str)> = out.secrets_named.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    assert_eq!(named, vec![("default", "keys"), ("default", "missing")]);
}
