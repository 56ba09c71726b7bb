//! An AgentPolicy's `effective` and `Ready`, from the namespace's compile (pure): what the policy
//! grants on each gateway, in the names that gateway uses — the models its routes serve that a
//! grant matches, the tools of its servers under their prefixes, the peer agents it publishes
//! with their skills — and whether any gateway enforces it. Subjects are listed up to
//! [`MAX_SUBJECTS`] and counted.

use crate::api::{EffectiveGrants, GatewayGrants, ObjectRef, PeerGrant};
use crate::compile::{CompiledGateway, Output};
use crate::config::{Layer, PolicyRules};
use crate::explain::{kind, served_models};
use crate::operator::status::cond::Cond;
use crate::policy::{client_tool_name, glob_match};
use serde_json::{Map, Value, json};

/// Most subjects an AgentPolicy's status lists (`effective.subjectCount` counts them all).
pub const MAX_SUBJECTS: usize = 100;

fn rules<'a>(g: &'a CompiledGateway, policy: &str) -> Option<&'a PolicyRules> {
    g.config.policy.policies.iter().find(|p| p.name == policy)
}

/// What `policy` grants on one gateway that enforces it.
fn on_gateway(g: &CompiledGateway, p: &PolicyRules) -> GatewayGrants {
    let mut out = GatewayGrants {
        kind: kind(g.config.gateway.layer).into(),
        name: g.config.gateway.name.clone(),
        ..Default::default()
    };
    match g.config.gateway.layer {
        Layer::Ai => {
            out.models = served_models(g)
                .into_iter()
                .filter(|m| p.models.iter().any(|grant| glob_match(&grant.pattern, m)))
                .collect();
        }
        Layer::Mcp => {
            let servers = g.config.mcp.as_ref().map(|m| m.servers.as_slice()).unwrap_or_default();
            for grant in &p.tools {
                if let Some(s) = servers.iter().find(|s| s.name == grant.server) {
                    out.tools.extend(grant.tools.iter().map(|t| client_tool_name(&s.prefix, t)));
                }
            }
            out.tools.sort();
            out.tools.dedup();
        }
        Layer::Agent => {
            let published = g.config.agent.iter().flat_map(|a| &a.agents);
            for a in published {
                for grant in p.agents.iter().filter(|grant| grant.agent == a.name) {
                    out.agents.push(PeerGrant { name: a.name.clone(), skills: grant.skills.clone() });
                }
            }
        }
    }
    out
}

/// Adds `effective` and the `Ready` condition of AgentPolicy `policy` to its desired status.
pub fn fill(policy: &ObjectRef, out: &Output, accepted: bool, status: &mut Map<String, Value>) {
    let enforcing: Vec<(&CompiledGateway, &PolicyRules)> = out
        .gateways
        .iter()
        .filter(|g| g.config.gateway.namespace == policy.namespace)
        .filter_map(|g| Some((g, rules(g, &policy.name)?)))
        .collect();
    if let Some(e) = out.effective.get(policy) {
        let mut e: EffectiveGrants = e.clone();
        e.subject_count = Some(i32::try_from(e.subjects.len()).unwrap_or(i32::MAX));
        e.subjects.truncate(MAX_SUBJECTS);
        e.gateways = enforcing.iter().map(|(g, p)| on_gateway(g, p)).collect();
        status.insert("effective".into(), json!(e));
    }
    let ready = if !accepted {
        Cond::new(
            "Ready",
            false,
            "Invalid",
            "The policy is not accepted (see Accepted), so no gateway enforces it",
        )
    } else if enforcing.is_empty() {
        Cond::new(
            "Ready",
            false,
            "NoGateway",
            format!(
                "No AIGateway, MCPGateway or AgentGateway of namespace {:?} has a valid config, so nothing enforces the policy",
                policy.namespace
            ),
        )
    } else {
        let names: Vec<String> = enforcing
            .iter()
            .map(|(g, _)| format!("{} {}", kind(g.config.gateway.layer), g.config.gateway.name))
            .collect();
        Cond::new("Ready", true, "Enforced", format!("Enforced by {}", names.join(", ")))
    };
    if let Some(Value::Array(conds)) = status.get_mut("conditions") {
        conds.push(ready.to_json());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::Mode;
    use crate::manifest::{Options, load_str};

    const YAML: &str = r#"
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {name: llm}
spec: {listener: {port: 8080}}
---
apiVersion: cairn.dev/v1alpha1
kind: MCPGateway
metadata: {name: tools}
spec: {listener: {port: 8081}}
---
apiVersion: cairn.dev/v1alpha1
kind: AgentGateway
metadata: {name: agents}
spec: {listener: {port: 8082}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {name: echo}
spec: {provider: Echo, models: [{name: echo-1}, {name: echo-2}]}
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {name: r}
spec:
  gatewayRefs: [{name: llm}]
  rules:
    - matches: [{model: echo-1}]
      backends: [{backendRef: {name: echo}, model: echo-1}]
    - matches: [{model: echo-2}]
      backends: [{backendRef: {name: echo}, model: echo-2}]
---
apiVersion: cairn.dev/v1alpha1
kind: MCPServer
metadata: {name: gh}
spec: {gatewayRefs: [{name: tools}], prefix: github, url: "http://mcp.example.com/mcp"}
---
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {name: billing, labels: {team: support}}
spec: {a2a: {url: "http://billing.example.com", gatewayRefs: [{name: agents}]}}
---
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {name: bot}
spec: {identity: {serviceAccount: {name: bot}}}
---
apiVersion: cairn.dev/v1alpha1
kind: AgentPolicy
metadata: {name: p}
spec:
  subjects: {agents: [bot], selector: {matchLabels: {team: support}}}
  models: [{match: "echo-1"}]
  tools: [{server: gh, tools: ["search_*"]}]
  agents: [{name: billing, skills: [refund-lookup]}]
"#;

    fn status(yaml: &str) -> Map<String, Value> {
        let m = load_str("t.yaml", yaml, &Options::default()).unwrap();
        let out = crate::workspace::compile_manifests(&m, &Mode::Cluster { domain: "cluster.local".into() });
        let mut status = Map::new();
        status.insert("conditions".into(), json!([]));
        fill(&ObjectRef::new("AgentPolicy", "default", "p"), &out, true, &mut status);
        status
    }

    #[test]
    fn grants_per_gateway_in_the_gateways_names_with_subjects_by_name_and_label() {
        let s = status(YAML);
        let e = &s["effective"];
        assert_eq!(e["subjects"], json!(["billing", "bot"]));
        assert_eq!(e["subjectCount"], 2);
        assert_eq!(
            e["gateways"],
            json!([
                {"kind": "AgentGateway", "name": "agents", "agents": [{"name": "billing", "skills": ["refund-lookup"]}]},
                {"kind": "AIGateway", "name": "llm", "models": ["echo-1"]},
                {"kind": "MCPGateway", "name": "tools", "tools": ["github__search_*"]},
            ])
        );
        assert_eq!(s["conditions"][0]["type"], "Ready");
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(
            s["conditions"][0]["message"],
            "Enforced by AgentGateway agents, AIGateway llm, MCPGateway tools"
        );
    }

    #[test]
    fn without_a_gateway_nothing_enforces_the_policy() {
        let yaml: String =
            YAML.split("---").filter(|d| !d.contains("Gateway\n")).collect::<Vec<_>>().join("---");
        let s = status(&yaml);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][0]["reason"], "NoGateway");
        assert_eq!(
            s["conditions"][0]["message"],
            "No AIGateway, MCPGateway or AgentGateway of namespace \"default\" has a valid config, so nothing enforces the policy"
        );
        assert!(s["effective"].get("gateways").is_none());
    }

    #[test]
    fn subjects_are_bounded_and_counted() {
        let mut yaml = YAML.to_string();
        for i in 0..150 {
            yaml.push_str(&format!(
                "---\napiVersion: cairn.dev/v1alpha1\nkind: Agent\nmetadata: {{name: a{i:03}, labels: {{team: support}}}}\nspec: {{identity: {{serviceAccount: {{name: a}}}}}}\n"
            ));
        }
        let s = status(&yaml);
        assert_eq!(s["effective"]["subjects"].as_array().unwrap().len(), MAX_SUBJECTS);
        assert_eq!(s["effective"]["subjectCount"], 152);
    }
}
