//! The operator's own permissions, in one place: every API request `cairn operator` makes is
//! covered by exactly one row of [`RULES`], and nothing else is asked for. The Helm chart's
//! ClusterRole (or, for `--namespace`, its Roles) is generated from and checked against this
//! table ([`cluster_role`] renders it).
//!
//! Why each row is there:
//! - the eight Cairn kinds: read (index) and write `status` (status stage); the operator never
//!   writes `spec`.
//! - Secrets: `list`/`watch` for a metadata-only watch of all Secrets (to learn when a referenced
//!   one changes), `get` to read the few that compiled configs reference, and `create`/`patch` for
//!   each gateway's credentials Secret (server-side apply creates on first write).
//! - the children of a gateway (ConfigMaps, ServiceAccounts, Roles, RoleBindings, Deployments,
//!   Services, PodDisruptionBudgets, HorizontalPodAutoscalers) and of an MCPServer with
//!   `deployment` (Deployments, Services): read into the index, written by server-side apply,
//!   and `delete` for the ones that can stop being rendered (config part ConfigMaps, PDB, HPA,
//!   an MCPServer's Deployment and Service). Everything else goes with its owner through
//!   garbage collection.
//! - Events: `events.k8s.io` for the operator's own Events; core `events` because a gateway's
//!   Role grants its pods `create`/`patch` on them, and RBAC lets a subject grant only what it
//!   holds.
//! - the gateway Role also grants `get`/`list`/`watch` on ConfigMaps and Secrets, which the rows
//!   above already hold.
//! - Leases: the leader-election Lease (`get`, `create`, `patch`).

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// One permission row: an API group, its resources and the verbs used on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// API group (`""` is the core group).
    pub group: &'static str,
    /// Resources (plural, with `/status` for the status subresource).
    pub resources: &'static [&'static str],
    /// Verbs.
    pub verbs: &'static [&'static str],
}

const READ: &[&str] = &["get", "list", "watch"];
const CHILD: &[&str] = &["get", "list", "watch", "create", "patch"];
const PRUNABLE_CHILD: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

/// Everything `cairn operator` does against the API.
pub const RULES: &[Rule] = &[
    Rule {
        group: "cairn.dev",
        resources: &[
            "aigateways",
            "aibackends",
            "airoutes",
            "mcpgateways",
            "mcpservers",
            "agentgateways",
            "agents",
            "agentpolicies",
        ],
        verbs: READ,
    },
    Rule {
        group: "cairn.dev",
        resources: &[
            "aigateways/status",
            "aibackends/status",
            "airoutes/status",
            "mcpgateways/status",
            "mcpservers/status",
            "agentgateways/status",
            "agents/status",
            "agentpolicies/status",
        ],
        verbs: &["get", "patch"],
    },
    Rule { group: "", resources: &["secrets", "serviceaccounts"], verbs: CHILD },
    Rule { group: "", resources: &["configmaps", "services"], verbs: PRUNABLE_CHILD },
    Rule { group: "apps", resources: &["deployments"], verbs: PRUNABLE_CHILD },
    Rule { group: "policy", resources: &["poddisruptionbudgets"], verbs: PRUNABLE_CHILD },
    Rule { group: "autoscaling", resources: &["horizontalpodautoscalers"], verbs: PRUNABLE_CHILD },
    Rule { group: "rbac.authorization.k8s.io", resources: &["roles", "rolebindings"], verbs: CHILD },
    Rule { group: "", resources: &["events"], verbs: &["create", "patch"] },
    Rule { group: "events.k8s.io", resources: &["events"], verbs: &["create", "patch"] },
    Rule { group: "coordination.k8s.io", resources: &["leases"], verbs: &["get", "create", "patch"] },
];

/// The rows as RBAC policy rules.
pub fn policy_rules() -> Vec<PolicyRule> {
    RULES
        .iter()
        .map(|r| PolicyRule {
            api_groups: Some(vec![r.group.to_string()]),
            resources: Some(r.resources.iter().map(|s| s.to_string()).collect()),
            verbs: r.verbs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .collect()
}

/// A ClusterRole named `name` holding [`RULES`] (what the chart installs for a cluster-wide
/// operator; a namespaced one gets the same rules in a Role per watched namespace, plus the
/// Lease rule in its own namespace).
pub fn cluster_role(name: &str) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta { name: Some(name.to_string()), ..Default::default() },
        rules: Some(policy_rules()),
        ..Default::default()
    }
}

/// Whether [`RULES`] allow `verb` on `resource` of `group`.
pub fn allows(group: &str, resource: &str, verb: &str) -> bool {
    RULES.iter().any(|r| r.group == group && r.resources.contains(&resource) && r.verbs.contains(&verb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cairn_kind_is_read_and_has_its_status_written_but_never_its_spec() {
        for crd in crate::api::crds() {
            let plural = crd.spec.names.plural;
            for verb in ["get", "list", "watch"] {
                assert!(allows("cairn.dev", &plural, verb), "{plural} {verb}");
            }
            assert!(allows("cairn.dev", &format!("{plural}/status"), "patch"), "{plural}/status");
            assert!(!allows("cairn.dev", &plural, "patch"), "the operator never writes {plural} spec");
        }
    }

    #[test]
    fn the_gateway_role_grants_nothing_the_operator_lacks() {
        // RBAC refuses a Role granting more than its creator holds (escalation check).
        for (group, resource, verbs) in [
            ("", "configmaps", ["get", "list", "watch"].as_slice()),
            ("", "secrets", &["get", "list", "watch"]),
            ("", "events", &["create", "patch"]),
        ] {
            for verb in verbs {
                assert!(allows(group, resource, verb), "{resource} {verb}");
            }
        }
    }

    #[test]
    fn rules_render_one_policy_rule_per_row_without_duplicates() {
        let role = cluster_role("cairn-operator");
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), RULES.len());
        let mut seen = std::collections::BTreeSet::new();
        for r in RULES {
            for res in r.resources {
                assert!(seen.insert((r.group, *res)), "{}/{res} appears twice", r.group);
            }
        }
    }
}
