//! Tests of the index: identification, checks, limits, budgets, explain.

use super::*;
use crate::config::{
    AgentGrantConfig, BudgetAction, BudgetWindow, ModelGrantConfig, PolicyRules, SubjectConfig,
    ToolGrantConfig,
};

const SALT: &str = "0011223344556677";

fn limits(rpm: u64) -> Option<LimitsConfig> {
    Some(LimitsConfig { requests_per_minute: Some(rpm), tokens_per_minute: None })
}

// Grant ids are `<policy>/<kind>/<i>`, as compile gives them; `number` sets them by position.
fn model(pattern: &str, l: Option<LimitsConfig>) -> ModelGrantConfig {
    ModelGrantConfig { id: String::new(), pattern: pattern.into(), limits: l }
}

fn tool(server: &str, tools: &[&str], l: Option<LimitsConfig>) -> ToolGrantConfig {
    let tools = tools.iter().map(|t| t.to_string()).collect();
    ToolGrantConfig { id: String::new(), server: server.into(), prefix: server.into(), tools, limits: l }
}

fn agent(name: &str, skills: &[&str], l: Option<LimitsConfig>) -> AgentGrantConfig {
    let skills = skills.iter().map(|t| t.to_string()).collect();
    AgentGrantConfig { id: String::new(), agent: name.into(), skills, limits: l }
}

fn number(p: &mut PolicyRules) {
    let name = &p.name;
    p.models.iter_mut().enumerate().for_each(|(i, g)| g.id = format!("{name}/models/{i}"));
    p.tools.iter_mut().enumerate().for_each(|(i, g)| g.id = format!("{name}/tools/{i}"));
    p.agents.iter_mut().enumerate().for_each(|(i, g)| g.id = format!("{name}/agents/{i}"));
}

fn budget(policy: &str, i: usize, usd: f64, scope: BudgetScope) -> BudgetConfig {
    BudgetConfig {
        id: format!("{policy}/budgets/{i}"),
        amount_usd: usd,
        window: BudgetWindow::Month,
        scope,
        action: BudgetAction::Block,
    }
}

fn policy(name: &str, subjects: &[&str]) -> PolicyRules {
    PolicyRules {
        name: name.into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        models: vec![],
        tools: vec![],
        agents: vec![],
        budgets: vec![],
    }
}

fn subject(name: &str, identities: Vec<IdentityConfig>) -> SubjectConfig {
    SubjectConfig { name: name.into(), identities, team: None }
}

/// support-bot: named by `support` (gpt-4o*, github search/get, billing-agent refund-*) and by
/// `extra` (claude-*, gpt-4o-mini with its own limit, files read_*); triage: named by `support`
/// only; loner: an Agent no policy names.
fn config(default_action: DefaultAction) -> PolicyConfig {
    let mut support = policy("support", &["support-bot", "triage"]);
    support.models = vec![model("gpt-4o*", limits(60))];
    support.tools = vec![tool("github", &["search_*", "get_*"], limits(30))];
    support.agents = vec![agent("billing-agent", &["refund-*"], None), agent("faq", &[], limits(5))];
    support.budgets = vec![
        budget("support", 0, 50.0, BudgetScope::PerSubject),
        budget("support", 1, 500.0, BudgetScope::Shared),
    ];
    let mut extra = policy("extra", &["support-bot"]);
    extra.models = vec![model("claude-*", None), model("gpt-4o-mini", limits(10))];
    extra.tools = vec![tool("files", &["read_*"], None)];
    extra.agents = vec![agent("billing-agent", &["invoice-?"], limits(2))];
    extra.budgets = vec![budget("extra", 0, 5.0, BudgetScope::PerSubject)];
    PolicyConfig {
        default_action,
        subjects: vec![
            subject(
                "loner",
                vec![IdentityConfig::VirtualKey { hash: hash_virtual_key(SALT, "loner-key-0123456789") }],
            ),
            subject(
                "support-bot",
                vec![
                    IdentityConfig::ServiceAccount { namespace: "agents".into(), name: "support-bot".into() },
                    IdentityConfig::Jwt {
                        issuer: "https://login.example.com".into(),
                        subject: "svc-support".into(),
                    },
                    IdentityConfig::VirtualKey { hash: hash_virtual_key(SALT, "support-key-0123456789") },
                ],
            ),
            subject(
                "triage",
                vec![IdentityConfig::Jwt {
                    issuer: "https://other.example.com".into(),
                    subject: "svc-support".into(),
                }],
            ),
        ],
        policies: vec![extra, support]
            .into_iter()
            .map(|mut p| {
                number(&mut p);
                p
            })
            .collect(),
    }
}

fn index(default_action: DefaultAction) -> PolicyIndex {
    PolicyIndex::new(&config(default_action))
}

fn limit_keys(d: &Decision<'_>) -> Vec<String> {
    d.allowed().expect("allowed").limits().map(|l| l.key.to_owned()).collect()
}

fn budget_keys(d: &Decision<'_>) -> Vec<String> {
    d.allowed().expect("allowed").budgets().map(|b| b.key.to_owned()).collect()
}

fn deny_message(d: &Decision<'_>) -> String {
    d.denied().expect("denied").to_string()
}

// ---- identification ----

#[test]
fn identifies_a_virtual_key_by_its_salted_hash() {
    let ix = index(DefaultAction::Deny);
    let cred = Credential::VirtualKey { key: "support-key-0123456789", salt_hex: SALT };
    assert_eq!(ix.identify(cred), Some("support-bot"));
    let loner = Credential::VirtualKey { key: "loner-key-0123456789", salt_hex: SALT };
    assert_eq!(ix.identify(loner), Some("loner"));
}

#[test]
fn a_virtual_key_with_another_salt_or_a_wrong_key_identifies_nobody() {
    let ix = index(DefaultAction::Deny);
    let other_salt = Credential::VirtualKey { key: "support-key-0123456789", salt_hex: "ffff" };
    assert_eq!(ix.identify(other_salt), None);
    let wrong = Credential::VirtualKey { key: "support-key-012345678", salt_hex: SALT };
    assert_eq!(ix.identify(wrong), None);
    // The hash itself presented as a key is not the key.
    let hash = hash_virtual_key(SALT, "support-key-0123456789");
    let as_key = Credential::VirtualKey { key: &hash, salt_hex: SALT };
    assert_eq!(ix.identify(as_key), None);
}

#[test]
fn identifies_a_jwt_by_issuer_and_subject_together() {
    let ix = index(DefaultAction::Deny);
    let jwt = |issuer, subject| Credential::Jwt { issuer, subject };
    assert_eq!(ix.identify(jwt("https://login.example.com", "svc-support")), Some("support-bot"));
    // The same subject claim from another issuer is another caller.
    assert_eq!(ix.identify(jwt("https://other.example.com", "svc-support")), Some("triage"));
    assert_eq!(ix.identify(jwt("https://evil.example.com", "svc-support")), None);
    assert_eq!(ix.identify(jwt("https://login.example.com", "svc-other")), None);
}

#[test]
fn identifies_a_service_account_by_namespace_and_name() {
    let ix = index(DefaultAction::Deny);
    let sa = |namespace, name| Credential::ServiceAccount { namespace, name };
    assert_eq!(ix.identify(sa("agents", "support-bot")), Some("support-bot"));
    assert_eq!(ix.identify(sa("default", "support-bot")), None);
    assert_eq!(ix.identify(sa("agents", "triage")), None);
}

#[test]
fn service_account_usernames_parse_into_credentials() {
    assert_eq!(
        Credential::from_service_account_username("system:serviceaccount:agents:support-bot"),
        Some(Credential::ServiceAccount { namespace: "agents", name: "support-bot" })
    );
    assert_eq!(Credential::from_service_account_username("system:serviceaccount:agents"), None);
    assert_eq!(Credential::from_service_account_username("system:serviceaccount::x"), None);
    assert_eq!(Credential::from_service_account_username("system:serviceaccount:a:b:c"), None);
    assert_eq!(Credential::from_service_account_username("alice"), None);
}

#[test]
fn a_credential_claimed_by_two_subjects_identifies_the_first_by_name() {
    let mut cfg = config(DefaultAction::Deny);
    let dup = IdentityConfig::ServiceAccount { namespace: "agents".into(), name: "support-bot".into() };
    cfg.subjects[2].identities.push(dup); // triage claims support-bot's ServiceAccount too
    let ix = PolicyIndex::new(&cfg);
    let cred = Credential::ServiceAccount { namespace: "agents", name: "support-bot" };
    assert_eq!(ix.identify(cred), Some("support-bot"));
}

// ---- default action, anonymous ----

#[test]
fn default_deny_refuses_callers_no_policy_names() {
    let ix = index(DefaultAction::Deny);
    for who in [ANONYMOUS, "loner", "not-an-agent"] {
        let d = ix.check_model(who, "gpt-4o");
        assert!(!d.is_allowed(), "{who}");
        assert_eq!(d.denied().unwrap().reason, DenyReason::DefaultDeny);
        assert!(!ix.check_tool(who, "github", "search_code").is_allowed());
        assert!(!ix.check_agent(who, "faq", None).is_allowed());
    }
    assert_eq!(
        deny_message(&ix.check_model(ANONYMOUS, "gpt-4o")),
        "no AgentPolicy names caller 'anonymous' and the gateway's defaultAction is Deny"
    );
}

#[test]
fn default_allow_allows_everything_without_limits_or_budgets_to_callers_no_policy_names() {
    let ix = index(DefaultAction::Allow);
    for who in [ANONYMOUS, "loner", "not-an-agent"] {
        let d = ix.check_model(who, "o3-pro");
        let a = d.allowed().expect("allowed by default");
        assert!(a.by_default());
        assert_eq!(a.limits().count(), 0);
        assert_eq!(a.budgets().count(), 0);
        assert!(ix.check_tool(who, "anything", "rm_rf").is_allowed());
        assert!(ix.check_agent(who, "billing-agent", Some("x")).is_allowed());
    }
}

#[test]
fn default_allow_does_not_widen_what_named_subjects_may_do() {
    let ix = index(DefaultAction::Allow);
    let d = ix.check_model("support-bot", "o3-pro");
    assert!(!d.is_allowed());
    assert_eq!(d.denied().unwrap().reason, DenyReason::NotGranted);
    // triage is named only by `support`, which grants no files tools.
    assert!(!ix.check_tool("triage", "files", "read_file").is_allowed());
}

#[test]
fn a_policy_naming_anonymous_makes_anonymous_a_named_subject() {
    let mut cfg = config(DefaultAction::Allow);
    let mut anon = policy("public", &[ANONYMOUS]);
    anon.models = vec![model("gpt-4o-mini", limits(1))];
    number(&mut anon);
    cfg.policies.push(anon);
    let ix = PolicyIndex::new(&cfg);
    let d = ix.check_model(ANONYMOUS, "gpt-4o-mini");
    assert_eq!(limit_keys(&d), ["public/models/0/anonymous"]);
    let d = ix.check_model(ANONYMOUS, "gpt-4o");
    assert_eq!(deny_message(&d), "caller 'anonymous' is not granted model 'gpt-4o' by any AgentPolicy");
}

// ---- additive grants ----

#[test]
fn grants_of_several_policies_add_up() {
    let ix = index(DefaultAction::Deny);
    // From `support`:
    assert!(ix.check_model("support-bot", "gpt-4o").is_allowed());
    assert!(ix.check_tool("support-bot", "github", "search_code").is_allowed());
    // From `extra`:
    assert!(ix.check_model("support-bot", "claude-sonnet-4").is_allowed());
    assert!(ix.check_tool("support-bot", "files", "read_file").is_allowed());
    // triage has only `support`:
    assert!(ix.check_model("triage", "gpt-4o").is_allowed());
    assert!(!ix.check_model("triage", "claude-sonnet-4").is_allowed());
    assert_eq!(ix.policies_of("support-bot").collect::<Vec<_>>(), ["extra", "support"]);
    assert_eq!(ix.policies_of("triage").collect::<Vec<_>>(), ["support"]);
    assert_eq!(ix.policies_of("loner").count(), 0);
    assert!(ix.is_named("triage") && !ix.is_named("loner"));
}

#[test]
fn a_named_subject_gets_nothing_beyond_its_grants() {
    let ix = index(DefaultAction::Deny);
    let d = ix.check_model("support-bot", "gpt-4");
    assert_eq!(deny_message(&d), "agent 'support-bot' is not granted model 'gpt-4' by any AgentPolicy");
    assert_eq!(d.denied().unwrap().reason.category(), "not-granted");
    let d = ix.check_tool("support-bot", "github", "delete_repo");
    assert_eq!(
        deny_message(&d),
        "agent 'support-bot' is not granted tool 'delete_repo' of MCPServer 'github' by any AgentPolicy"
    );
    // A tool glob of one server does not grant the same name on another server.
    assert!(!ix.check_tool("support-bot", "gitlab", "search_code").is_allowed());
    assert!(!ix.check_tool("support-bot", "files", "write_file").is_allowed());
}

#[test]
fn a_policy_with_only_a_budget_still_makes_its_subject_named() {
    let mut cfg = config(DefaultAction::Allow);
    let mut b = policy("cap", &["loner"]);
    b.budgets = vec![budget("cap", 0, 1.0, BudgetScope::PerSubject)];
    cfg.policies.push(b);
    let ix = PolicyIndex::new(&cfg);
    assert!(!ix.check_model("loner", "gpt-4o").is_allowed());
    assert_eq!(ix.effective("loner").basis, Basis::Policies);
}

// ---- limits ----

#[test]
fn limits_of_every_grant_that_allows_the_call_apply() {
    let ix = index(DefaultAction::Deny);
    // gpt-4o-mini: `extra` grants it with 10 rpm, `support` with gpt-4o* at 60 rpm.
    let d = ix.check_model("support-bot", "gpt-4o-mini");
    assert_eq!(limit_keys(&d), ["extra/models/1/support-bot", "support/models/0/support-bot"]);
    let rpms: Vec<_> =
        d.allowed().unwrap().limits().map(|l| (l.policy, l.limits.requests_per_minute)).collect();
    assert_eq!(rpms, [("extra", Some(10)), ("support", Some(60))]);
    // gpt-4o: only `support` matches.
    assert_eq!(limit_keys(&ix.check_model("support-bot", "gpt-4o")), ["support/models/0/support-bot"]);
    // claude: granted without limits.
    assert_eq!(limit_keys(&ix.check_model("support-bot", "claude-3")), Vec::<String>::new());
}

#[test]
fn limit_keys_are_per_subject() {
    let ix = index(DefaultAction::Deny);
    assert_eq!(limit_keys(&ix.check_model("triage", "gpt-4o-mini")), ["support/models/0/triage"]);
    assert_eq!(limit_keys(&ix.check_tool("triage", "github", "get_issue")), ["support/tools/0/triage"]);
    assert_eq!(
        limit_keys(&ix.check_tool("support-bot", "github", "get_issue")),
        ["support/tools/0/support-bot"]
    );
}

#[test]
fn limits_are_those_of_the_kind_checked() {
    let ix = index(DefaultAction::Deny);
    // faq is agent grant 1 of `support`, 5 rpm; model grant 1 of `support` does not exist.
    let d = ix.check_agent("triage", "faq", Some("anything"));
    let l: Vec<_> = d.allowed().unwrap().limits().collect();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].key, "support/agents/1/triage");
    assert_eq!(l[0].limits.requests_per_minute, Some(5));
    // files tools are granted without limits even though `extra` has limited model grants.
    assert_eq!(limit_keys(&ix.check_tool("support-bot", "files", "read_x")), Vec::<String>::new());
}

// ---- budgets ----

#[test]
fn budgets_of_every_naming_policy_apply_to_model_calls() {
    let ix = index(DefaultAction::Deny);
    // claude-* comes from `extra` only, but `support`'s budgets name support-bot too.
    let d = ix.check_model("support-bot", "claude-3");
    assert_eq!(
        budget_keys(&d),
        ["extra/budgets/0/support-bot", "support/budgets/0/support-bot", "support/budgets/1"]
    );
    let amounts: Vec<_> = d.allowed().unwrap().budgets().map(|b| b.budget.amount_usd).collect();
    assert_eq!(amounts, [5.0, 50.0, 500.0]);
}

#[test]
fn per_subject_budget_keys_differ_and_shared_keys_coincide() {
    let ix = index(DefaultAction::Deny);
    let a = budget_keys(&ix.check_model("support-bot", "gpt-4o"));
    let b = budget_keys(&ix.check_model("triage", "gpt-4o"));
    assert!(a.contains(&"support/budgets/0/support-bot".to_string()));
    assert!(b.contains(&"support/budgets/0/triage".to_string()));
    assert!(a.contains(&"support/budgets/1".to_string()));
    assert!(b.contains(&"support/budgets/1".to_string()));
    assert!(!b.iter().any(|k| k.starts_with("extra/")));
}

#[test]
fn budgets_do_not_apply_to_tool_or_agent_calls() {
    let ix = index(DefaultAction::Deny);
    assert_eq!(budget_keys(&ix.check_tool("support-bot", "github", "get_x")), Vec::<String>::new());
    assert_eq!(budget_keys(&ix.check_agent("support-bot", "faq", None)), Vec::<String>::new());
}

// ---- agents and skills ----

#[test]
fn skill_grants_allow_matching_skills_only() {
    let ix = index(DefaultAction::Deny);
    // support: billing-agent refund-*; extra: billing-agent invoice-?
    assert!(ix.check_agent("support-bot", "billing-agent", Some("refund-lookup")).is_allowed());
    assert!(ix.check_agent("support-bot", "billing-agent", Some("invoice-1")).is_allowed());
    assert!(!ix.check_agent("support-bot", "billing-agent", Some("invoice-12")).is_allowed());
    // triage only has refund-*
    assert!(!ix.check_agent("triage", "billing-agent", Some("invoice-1")).is_allowed());
    let d = ix.check_agent("triage", "billing-agent", Some("delete-account"));
    assert_eq!(d.denied().unwrap().reason, DenyReason::SkillNotGranted);
    assert_eq!(
        deny_message(&d),
        "agent 'triage' is not granted skill 'delete-account' of agent 'billing-agent' by any AgentPolicy"
    );
}

#[test]
fn skill_limits_come_only_from_grants_matching_the_skill() {
    let ix = index(DefaultAction::Deny);
    assert_eq!(
        limit_keys(&ix.check_agent("support-bot", "billing-agent", Some("invoice-1"))),
        ["extra/agents/0/support-bot"]
    );
    assert_eq!(
        limit_keys(&ix.check_agent("support-bot", "billing-agent", Some("refund-x"))),
        Vec::<String>::new()
    );
}

#[test]
fn an_unknown_skill_is_allowed_only_by_a_grant_without_skills() {
    let ix = index(DefaultAction::Deny);
    // faq is granted with no skill list: any skill, and an unknown one.
    assert!(ix.check_agent("triage", "faq", None).is_allowed());
    assert!(ix.check_agent("triage", "faq", Some("whatever")).is_allowed());
    // billing-agent is granted only for listed skills.
    let d = ix.check_agent("support-bot", "billing-agent", None);
    assert_eq!(d.denied().unwrap().reason, DenyReason::SkillUnknown);
    assert_eq!(
        deny_message(&d),
        "agent 'support-bot' is granted agent 'billing-agent' only for some skills, and the skill this call invokes is not known"
    );
}

#[test]
fn an_ungranted_agent_is_refused_as_not_granted() {
    let ix = index(DefaultAction::Deny);
    let d = ix.check_agent("support-bot", "ops-agent", Some("restart"));
    assert_eq!(d.denied().unwrap().reason, DenyReason::NotGranted);
    assert_eq!(deny_message(&d), "agent 'support-bot' is not granted agent 'ops-agent' by any AgentPolicy");
    // Agent names are exact, not globs or prefixes.
    assert!(!ix.check_agent("triage", "faq-2", None).is_allowed());
}

// ---- tools ----

#[test]
fn tool_names_split_at_the_first_separator() {
    assert_eq!(split_tool_name("github__search_code"), Some(("github", "search_code")));
    assert_eq!(split_tool_name("github__get__nested"), Some(("github", "get__nested")));
    assert_eq!(split_tool_name("github_search"), None);
    assert_eq!(split_tool_name("__x"), None);
    assert_eq!(split_tool_name("github__"), None);
}

// ---- explain ----

#[test]
fn effective_lists_the_union_with_contributing_policies() {
    let ix = index(DefaultAction::Deny);
    let e = ix.effective("support-bot");
    assert_eq!(e.basis, Basis::Policies);
    assert_eq!(e.policies, ["extra", "support"]);
    let models: Vec<_> = e.models.iter().map(|m| (m.pattern.as_str(), m.policy.as_str())).collect();
    assert_eq!(models, [("claude-*", "extra"), ("gpt-4o-mini", "extra"), ("gpt-4o*", "support")]);
    let tools: Vec<_> = e.tools.iter().map(|t| t.tool.as_str()).collect();
    assert_eq!(tools, ["files__read_*", "github__search_*", "github__get_*"]);
    let agents: Vec<_> = e.agents.iter().map(|a| (a.agent.as_str(), a.skills.join(","))).collect();
    assert_eq!(
        agents,
        [
            ("billing-agent", "invoice-?".to_string()),
            ("billing-agent", "refund-*".to_string()),
            ("faq", String::new())
        ]
    );
    let limits: Vec<_> = e.limits.iter().map(|l| (l.key.as_str(), l.applies_to.as_str())).collect();
    assert_eq!(
        limits,
        [
            ("extra/models/1/support-bot", "model 'gpt-4o-mini'"),
            ("support/models/0/support-bot", "model 'gpt-4o*'"),
            ("support/tools/0/support-bot", "tools 'github__search_*', 'github__get_*'"),
            ("extra/agents/0/support-bot", "agent 'billing-agent'"),
            ("support/agents/1/support-bot", "agent 'faq'"),
        ]
    );
    let budgets: Vec<_> = e.budgets.iter().map(|b| b.key.as_str()).collect();
    assert_eq!(
        budgets,
        ["extra/budgets/0/support-bot", "support/budgets/0/support-bot", "support/budgets/1"]
    );
}

#[test]
fn effective_of_an_unnamed_subject_is_the_default_action() {
    let e = index(DefaultAction::Allow).effective("loner");
    assert_eq!(e.basis, Basis::DefaultAllow);
    assert!(e.policies.is_empty() && e.models.is_empty() && e.limits.is_empty());
    assert_eq!(index(DefaultAction::Deny).effective(ANONYMOUS).basis, Basis::DefaultDeny);
}

#[test]
fn effective_serialises_for_explain_output() {
    let e = index(DefaultAction::Deny).effective("triage");
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["basis"], "policies");
    assert_eq!(json["limits"][0]["appliesTo"], "model 'gpt-4o*'");
    assert_eq!(json["limits"][0]["limits"]["requestsPerMinute"], 60);
    assert_eq!(json["budgets"][1]["budget"]["scope"], "shared");
}

#[test]
fn subjects_lists_known_and_named_subjects_once_sorted() {
    let mut cfg = config(DefaultAction::Deny);
    cfg.policies.push(policy("ghosts", &["ghost", "triage"]));
    let ix = PolicyIndex::new(&cfg);
    assert_eq!(ix.subjects().collect::<Vec<_>>(), ["ghost", "loner", "support-bot", "triage"]);
}

#[test]
fn a_subject_listed_twice_by_one_policy_gets_each_limit_once() {
    let mut cfg = config(DefaultAction::Deny);
    cfg.policies[1].subjects.push("triage".into()); // support names triage twice
    let ix = PolicyIndex::new(&cfg);
    assert_eq!(limit_keys(&ix.check_model("triage", "gpt-4o")), ["support/models/0/triage"]);
    assert_eq!(ix.policies_of("triage").collect::<Vec<_>>(), ["support"]);
}

#[test]
fn who_can_lists_the_subjects_a_check_allows() {
    let ix = index(DefaultAction::Deny);
    assert_eq!(ix.who_can(Target::Model("gpt-4o")), ["support-bot", "triage"]);
    assert_eq!(ix.who_can(Target::Model("claude-3")), ["support-bot"]);
    assert_eq!(ix.who_can(Target::Tool { server: "files", tool: "read_a" }), ["support-bot"]);
    let invoice = Target::Agent { agent: "billing-agent", skill: Some("invoice-1") };
    assert_eq!(ix.who_can(invoice), ["support-bot"]);
    assert!(ix.who_can(Target::Model("o3")).is_empty());
    // Under default Allow, Agents no policy names may use what no grant names.
    let ix = index(DefaultAction::Allow);
    assert_eq!(ix.who_can(Target::Model("o3")), ["loner"]);
}
