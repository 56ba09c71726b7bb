//! The egress rule at compile time: a configured URL (an AIBackend's, MCPServer's or Agent's)
//! whose host is an address literal is judged by the gateway's rule ([`crate::policy::egress`])
//! here, so a URL at the cloud metadata address is refused with a diagnostic naming the object,
//! the URL and the rule, instead of being fetched. A refused URL leaves its object off that
//! gateway (less access, never more); host names are judged when the gateway connects.

use super::{Diags, Index, Mode, Reason};
use crate::api::{self, Object};
use crate::config;
use crate::policy::egress::{EgressPolicy, Source, literal_address, parse_cidr};

/// One gateway's egress rule, for checking the URLs of the objects attached to it.
pub(crate) struct Egress<'a> {
    gateway: &'a Object,
    policy: EgressPolicy,
    /// `spec.egress.allowedHosts`, for the gateway's config.
    allowed_hosts: Vec<String>,
}

impl<'a> Egress<'a> {
    /// The rule of `gateway` (an AIGateway, MCPGateway or AgentGateway) in this compile's mode,
    /// with a diagnostic on the gateway for each `allowedCIDRs` entry that is not a range (the
    /// entry is ignored).
    pub(crate) fn of(index: &Index<'_>, gateway: &'a Object, diags: &mut Diags) -> Self {
        let spec = match gateway {
            Object::AIGateway(g) => &g.spec.common.egress,
            Object::MCPGateway(g) => &g.spec.common.egress,
            Object::AgentGateway(g) => &g.spec.common.egress,
            _ => &api::Egress::default(),
        };
        let mut allowed = Vec::with_capacity(spec.allowed_cidrs.len());
        for (i, cidr) in spec.allowed_cidrs.iter().enumerate() {
            match parse_cidr(cidr) {
                Ok(net) => allowed.push(net),
                Err(e) => diags.push(
                    gateway,
                    format!("spec.egress.allowedCIDRs[{i}]"),
                    Reason::Invalid,
                    e.to_string(),
                ),
            }
        }
        let policy = EgressPolicy {
            allowed,
            allow_private_networks: spec.allow_private_networks,
            allow_loopback: *index.mode == Mode::Local,
        };
        Egress { gateway, policy, allowed_hosts: spec.allowed_hosts.clone() }
    }

    /// The rule as the gateway's config states it, for what it judges at connect time and at
    /// run time (the `allowedCIDRs` entries that are ranges, normalised).
    pub(crate) fn config(&self) -> config::EgressConfig {
        config::EgressConfig {
            allowed_cidrs: self.policy.allowed.iter().map(ToString::to_string).collect(),
            allow_private_networks: self.policy.allow_private_networks,
            allow_loopback: self.policy.allow_loopback,
            allowed_hosts: self.allowed_hosts.clone(),
        }
    }

    /// Whether the gateway may use `url`, configured at `field` of `obj`; a diagnostic on `obj`
    /// when not.
    pub(crate) fn allows(&self, obj: &Object, field: &str, url: &str, diags: &mut Diags) -> bool {
        let ip = match literal_address(url) {
            Ok(Some(ip)) => ip,
            Ok(None) => return true,
            Err(e) => {
                diags.push(obj, field, Reason::Invalid, format!("url {url:?} {e}"));
                return false;
            }
        };
        match self.policy.check(ip, Source::Configured) {
            Ok(()) => true,
            Err(refusal) => {
                diags.push(
                    obj,
                    field,
                    Reason::Invalid,
                    format!(
                        "url {url:?} reaches {ip}, {}, which the egress rule of {} refuses: {}",
                        refusal.class.describe(),
                        self.gateway.object_ref(),
                        refusal.rule()
                    ),
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::compile::{Mode, Output};
    use crate::manifest::{Options, load_str};
    use crate::workspace::compile_manifests;

    fn compile(yaml: &str, mode: &Mode) -> Output {
        let m =
            load_str("egress.yaml", yaml, &Options::default()).expect("the manifests pass their own checks");
        compile_manifests(&m, mode)
    }

    fn cluster() -> Mode {
        Mode::Cluster { domain: "cluster.local".into() }
    }

    fn messages(out: &Output) -> Vec<String> {
        out.diagnostics.iter().map(ToString::to_string).collect()
    }

    /// One gateway of each layer, each with one object at `url`, and the gateways' `egress`.
    fn three_layers(url: &str, egress: &str) -> String {
        format!(
            r#"
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {{name: llm}}
spec: {{listener: {{port: 8080}}, egress: {egress}}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {{name: vllm}}
spec: {{provider: OpenAICompatible, url: "{url}"}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {{name: chat}}
spec:
  gatewayRefs: [{{name: llm}}]
  rules: [{{matches: [{{model: m}}], backends: [{{backendRef: {{name: vllm}}}}]}}]
---
apiVersion: cairn.dev/v1alpha1
kind: MCPGateway
metadata: {{name: tools}}
spec: {{listener: {{port: 8081}}, egress: {egress}}}
---
apiVersion: cairn.dev/v1alpha1
kind: MCPServer
metadata: {{name: files}}
spec: {{gatewayRefs: [{{name: tools}}], url: "{url}"}}
---
apiVersion: cairn.dev/v1alpha1
kind: AgentGateway
metadata: {{name: agents}}
spec: {{listener: {{port: 8082}}, egress: {egress}}}
---
apiVersion: cairn.dev/v1alpha1
kind: Agent
metadata: {{name: bot}}
spec: {{a2a: {{url: "{url}", gatewayRefs: [{{name: agents}}]}}}}
"#
        )
    }

    /// How many of the three objects their gateways serve.
    fn served(out: &Output) -> usize {
        out.gateways
            .iter()
            .map(|g| {
                let c = &g.config;
                c.ai.as_ref().map_or(0, |a| a.backends.len())
                    + c.mcp.as_ref().map_or(0, |m| m.servers.len())
                    + c.agent.as_ref().map_or(0, |a| a.agents.len())
            })
            .sum()
    }

    #[test]
    fn metadata_and_link_local_literals_are_refused_in_every_spelling_on_every_layer() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/latest/meta-data/",
            "http://0xa9fea9fe/",
            "http://0251.0376.0251.0376/",
            "http://169.254.43518/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]:8080/",
            "http://metadata.google.internal/computeMetadata/v1",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/latest/meta-data",
            "http://169.254.10.20:8000",
            "http://[fe80::1]:8000",
        ] {
            for mode in [Mode::Local, cluster()] {
                let out = compile(&three_layers(url, "{}"), &mode);
                assert_eq!(served(&out), 0, "{url} in {mode:?} must be served by no gateway");
                let msgs = messages(&out);
                for (object, gateway) in [
                    ("AIBackend/vllm", "AIGateway/llm"),
                    ("MCPServer/files", "MCPGateway/tools"),
                    ("Agent/bot", "AgentGateway/agents"),
                ] {
                    let field = if object == "Agent/bot" { "spec.a2a.url" } else { "spec.url" };
                    let want = format!("{object}: {field}: url {url:?} reaches ");
                    let line = msgs
                        .iter()
                        .find(|m| m.starts_with(&want))
                        .unwrap_or_else(|| panic!("{want} in {msgs:#?}"));
                    assert!(line.contains(&format!("which the egress rule of {gateway} refuses: link-local, cloud metadata, multicast and reserved addresses are refused unless spec.egress.allowedCIDRs lists them")), "{line}");
                }
            }
        }
        let out = compile(&three_layers("http://2852039166/latest", "{}"), &cluster());
        assert!(messages(&out).contains(&"MCPServer/files: spec.url: url \"http://2852039166/latest\" reaches 169.254.169.254, a cloud metadata address, which the egress rule of MCPGateway/tools refuses: link-local, cloud metadata, multicast and reserved addresses are refused unless spec.egress.allowedCIDRs lists them".to_string()), "{:#?}", messages(&out));
    }

    #[test]
    fn loopback_is_refused_in_a_cluster_and_served_in_local_mode() {
        for url in [
            "http://127.0.0.1:9000/v1",
            "http://localhost:9000",
            "http://[::1]:9000",
            "http://0.0.0.0:9000",
            "http://2130706433:9000",
        ] {
            let out = compile(&three_layers(url, "{}"), &Mode::Local);
            assert_eq!(served(&out), 3, "{url} in local mode: {:#?}", messages(&out));
            let out = compile(&three_layers(url, "{}"), &cluster());
            assert_eq!(served(&out), 0, "{url} in a cluster");
            assert!(
                messages(&out).iter().any(|m| m.starts_with(&format!("MCPServer/files: spec.url: url {url:?} reaches"))
                    && m.ends_with("refuses: loopback and unspecified addresses are refused in a cluster, where they reach the gateway's own pod, unless spec.egress.allowedCIDRs lists them")),
                "{:#?}",
                messages(&out)
            );
        }
    }

    #[test]
    fn private_ranges_public_hosts_and_cluster_services_are_served() {
        for url in [
            "http://10.0.3.7:8000",
            "http://192.168.1.20/mcp",
            "http://[fd12:3456::1]:8000",
            "http://search.tools.svc.cluster.local:8080/mcp",
            "https://api.example.com/v1",
        ] {
            let out = compile(&three_layers(url, "{}"), &cluster());
            assert_eq!(served(&out), 3, "{url}: {:#?}", messages(&out));
        }
    }

    #[test]
    fn allowed_cidrs_let_a_gateway_reach_what_the_rule_refuses() {
        let egress = r#"{allowedCIDRs: ["169.254.169.254/32", "127.0.0.1"]}"#;
        for url in [
            "http://169.254.169.254/",
            "http://2852039166/",
            "http://[::ffff:169.254.169.254]/",
            "http://127.0.0.1:9000",
        ] {
            let out = compile(&three_layers(url, egress), &cluster());
            assert_eq!(served(&out), 3, "{url}: {:#?}", messages(&out));
        }
        let out = compile(&three_layers("http://169.254.169.253/", egress), &cluster());
        assert_eq!(served(&out), 0, "only the listed address");
    }

    #[test]
    fn an_allowed_cidr_that_is_not_a_range_is_reported_and_ignored() {
        let egress = r#"{allowedCIDRs: ["169.254.0.0/16x", "10.1.2.3/8"]}"#;
        let out = compile(&three_layers("http://169.254.1.1/", egress), &cluster());
        let msgs = messages(&out);
        assert!(msgs.contains(&"AIGateway/llm: spec.egress.allowedCIDRs[0]: \"169.254.0.0/16x\" is not an address range in CIDR notation".to_string()), "{msgs:#?}");
        assert!(msgs.contains(&"AgentGateway/agents: spec.egress.allowedCIDRs[1]: \"10.1.2.3/8\" has host bits set; the range is 10.0.0.0/8".to_string()), "{msgs:#?}");
        assert_eq!(served(&out), 0);
        assert_eq!(out.gateways.len(), 3, "the gateways themselves still compile");
    }
}
