//! What each Agent's A2A card says, and which of its identities resolve.
//!
//! One task per Agent: fetch its card (the agent gateway's fetch, [`crate::gateway::agent::card`]:
//! at most 1 MiB, a JSON object, within 10 s) from `a2a.url` + `a2a.cardPath` under the egress
//! rule of the AgentGateway that publishes it — the card URL as a configured URL, every interface
//! URL the card names on another origin as a URL that arrives at run time — and read its
//! ServiceAccount; again every [`REFETCH`], after a failure 1 s doubling to 8 s. A card that
//! cannot be had, is too large, is not a card or points where the rule refuses is reported in
//! `CardFetched=False`; the last good card stays with the time it was seen.
//!
//! Virtual keys resolve when compile found their Secret key (no `RefNotFound` on the field).

use super::{CONNECT_TIMEOUT, Cache, Hooks, Problem, Tasks, now, push, retry_delay};
use crate::api::{Agent, AgentCardSummary, CardSkill, IdentityStatus, ObjectRef};
use crate::compile::Output;
use crate::compile::Reason;
use crate::gateway::agent::AgentRuntime;
use crate::gateway::agent::card::{CardError, Fetched, fetch};
use crate::gateway::egress::{Resolve, check_run_time_url};
use crate::gateway::http_client::HttpClient;
use crate::operator::status::cond::Cond;
use crate::policy::egress::EgressPolicy;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How often a card (and the ServiceAccount) is read again.
pub const REFETCH: Duration = Duration::from_secs(30);
/// Most skills a status lists.
pub const MAX_SKILLS: usize = 100;

/// Where a card comes from and under which rule.
#[derive(Clone, Debug, PartialEq)]
struct CardSource {
    gateway: String,
    url: String,
    egress: EgressPolicy,
    allowed_hosts: Vec<String>,
}

/// What an agent task fetches; a change restarts it.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    uid: String,
    /// The card, or why it is not fetched (`None`: the agent serves no A2A).
    card: Option<Result<CardSource, Problem>>,
    /// The ServiceAccount (namespace, name).
    service_account: Option<(String, String)>,
}

/// What the operator last saw of one agent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seen {
    /// The last good card.
    pub card: Option<AgentCardSummary>,
    last_ok: Option<Time>,
    /// Why the last fetch failed.
    pub problem: Option<Problem>,
    /// Whether the ServiceAccount exists (`None`: not known).
    pub service_account: Option<bool>,
}

/// Cards and identities of every Agent of a scope.
pub struct Cards {
    hooks: Hooks,
    tasks: Tasks<Target>,
    seen: Arc<Cache<Seen>>,
}

impl Cards {
    /// For the agents of `hooks.index`.
    pub fn new(hooks: Hooks) -> Self {
        Cards { hooks, tasks: Tasks::new(), seen: Arc::new(Cache::new()) }
    }

    fn card_source(&self, agent: &Agent, compiled: &Output) -> Option<Result<CardSource, Problem>> {
        let a2a = agent.spec.a2a.as_ref()?;
        let ns = agent.namespace().unwrap_or_default();
        let mut refs: Vec<&str> = a2a.gateway_refs.iter().map(|r| r.name.as_str()).collect();
        refs.sort();
        for gw in refs {
            let Some(cg) = compiled.gateway(&ns, gw, crate::config::Layer::Agent) else { continue };
            let Some(c) = cg.config.agent.iter().flat_map(|a| &a.agents).find(|x| x.name == agent.name_any())
            else {
                continue;
            };
            let egress = match crate::gateway::egress::policy_of(&cg.config) {
                Ok(e) => e,
                Err(e) => return Some(Err(Problem::new("InvalidEgress", e.to_string()))),
            };
            return Some(Ok(CardSource {
                gateway: gw.to_string(),
                url: AgentRuntime::card_url(c),
                egress,
                allowed_hosts: cg.config.egress.allowed_hosts.clone(),
            }));
        }
        Some(Err(Problem::new(
            "NotPublished",
            "No AgentGateway publishes this agent yet: the operator fetches its card as a gateway that publishes it would",
        )))
    }

    /// Adds `card`, `identities` and `CardFetched` to the status of `agent`.
    pub fn augment(&self, agent: &Agent, compiled: &Output, desired: &mut Value) {
        let ns = agent.namespace().unwrap_or_default();
        let r = ObjectRef::new("Agent", &ns, &agent.name_any());
        let target = Target {
            uid: agent.uid().unwrap_or_default(),
            card: self.card_source(agent, compiled),
            service_account: agent
                .spec
                .identity
                .service_account
                .as_ref()
                .map(|sa| (sa.namespace.clone().unwrap_or_else(|| ns.clone()), sa.name.clone())),
        };
        self.seed(&r, agent);
        if target.card.is_none() && target.service_account.is_none() {
            self.tasks.stop(&r);
            self.seen.remove(&r);
        } else {
            let (hooks, seen) = (self.hooks.clone(), self.seen.clone());
            let r2 = r.clone();
            self.tasks.ensure(&r, target, move |t| run(hooks, seen, r2, t.clone()));
        }
        let seen = self.seen.get(&r).unwrap_or_default();
        let diags: Vec<&crate::compile::Diagnostic> = compiled.diagnostics_for(&r).collect();
        write(agent, &seen, &diags, desired);
    }

    /// Starts from what a stored status says (after a restart or a new leader), so that an
    /// agent whose card did not change changes nothing.
    fn seed(&self, r: &ObjectRef, agent: &Agent) {
        let Some(st) = &agent.status else { return };
        if self.seen.get(r).is_some() {
            return;
        }
        self.seen.update(r, |s| {
            *s = Seen {
                card: st.card.clone(),
                last_ok: None,
                problem: Problem::stored(&st.conditions, "CardFetched"),
                service_account: st
                    .identities
                    .iter()
                    .find(|i| i.kind == "ServiceAccount")
                    .and_then(|i| i.found),
            }
        });
    }
}

/// The status fields of what was seen.
fn write(agent: &Agent, seen: &Seen, diags: &[&crate::compile::Diagnostic], desired: &mut Value) {
    let status = desired.as_object_mut().expect("status is an object");
    let ns = agent.namespace().unwrap_or_default();
    let id = &agent.spec.identity;
    let mut ids = Vec::new();
    if let Some(sa) = &id.service_account {
        ids.push(IdentityStatus {
            kind: "ServiceAccount".into(),
            name: format!("{}/{}", sa.namespace.as_deref().unwrap_or(&ns), sa.name),
            found: seen.service_account,
        });
    }
    for (i, vk) in id.virtual_keys.iter().enumerate() {
        let field = format!("spec.identity.virtualKeys[{i}].secretRef");
        let missing = diags.iter().any(|d| d.field == field && d.reason == Reason::RefNotFound);
        ids.push(IdentityStatus {
            kind: "VirtualKey".into(),
            name: format!("{}/{}", vk.secret_ref.name, vk.secret_ref.key),
            found: Some(!missing),
        });
    }
    for j in &id.jwt {
        ids.push(IdentityStatus {
            kind: "JWT".into(),
            name: format!("{} sub={}", j.issuer, j.subject),
            found: None,
        });
    }
    if !ids.is_empty() {
        status.insert("identities".into(), json!(ids));
    }
    if agent.spec.a2a.is_none() {
        return;
    }
    if let Some(c) = &seen.card {
        status.insert("card".into(), json!(c));
    }
    let cond = match (&seen.problem, &seen.card) {
        (Some(p), _) => Cond::new("CardFetched", false, &p.reason, p.message.clone()),
        (None, Some(c)) => Cond::new(
            "CardFetched",
            true,
            "Fetched",
            format!("Card {:?} with {} skills", c.name, c.skills.len()),
        ),
        (None, None) => return,
    };
    push(desired, cond);
}

/// The task of one agent.
async fn run(hooks: Hooks, seen: Arc<Cache<Seen>>, r: ObjectRef, t: Target) {
    // The gateway's own client under the publishing gateway's egress rule, judged where it
    // connects.
    let connect = CONNECT_TIMEOUT.as_millis() as u64;
    let client = match &t.card {
        Some(Ok(src)) => hooks.clients.for_gateway(connect, &src.egress),
        _ => hooks.clients.for_gateway(connect, &EgressPolicy::default()),
    };
    let resolver = hooks.clients.resolver_arc();
    let mut failures = 0u32;
    loop {
        if hooks.ended(&r, &t.uid, &seen) {
            return;
        }
        let sa = match &t.service_account {
            Some((ns, name)) => service_account_exists(&hooks.client, ns, name).await,
            None => None,
        };
        let card = match &t.card {
            None => None,
            Some(Err(p)) => Some(Err(p.clone())),
            Some(Ok(src)) => Some(fetch_card(&client, &*resolver, &r.name, src).await),
        };
        let failed = matches!(card, Some(Err(_)));
        if failed && failures == 0 && seen.get(&r).is_some_and(|s| s.problem.is_none() && s.card.is_some()) {
            // Once more before saying so: a kept-alive connection the agent closed is no outage.
            failures = 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let changed = seen.update(&r, |s| {
            s.service_account = sa;
            match card {
                None => {}
                Some(Ok(mut c)) => {
                    let at = now();
                    let same = s
                        .card
                        .as_ref()
                        .is_some_and(|old| AgentCardSummary { seen_at: None, ..old.clone() } == c);
                    c.seen_at = if same && s.problem.is_none() {
                        s.card.as_ref().and_then(|o| o.seen_at.clone())
                    } else {
                        Some(at.clone())
                    };
                    s.card = Some(c);
                    s.problem = None;
                    s.last_ok = Some(at);
                }
                Some(Err(p)) => {
                    if s.problem.is_none()
                        && let Some(c) = s.card.as_mut()
                    {
                        c.seen_at = s.last_ok.clone();
                    }
                    s.problem = Some(p);
                }
            }
        });
        if changed {
            hooks.poke(&r);
        }
        let delay = if failed {
            failures += 1;
            retry_delay(failures - 1)
        } else {
            failures = 0;
            REFETCH
        };
        tokio::time::sleep(delay).await;
    }
}

/// Whether the ServiceAccount exists; `None` when it cannot be told (no permission, API down).
async fn service_account_exists(client: &kube::Client, ns: &str, name: &str) -> Option<bool> {
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), ns);
    match tokio::time::timeout(super::FETCH_TIMEOUT, api.get_metadata_opt(name)).await {
        Ok(Ok(found)) => Some(found.is_some()),
        Ok(Err(e)) => {
            tracing::debug!(namespace = ns, name, error = %e, "reading a ServiceAccount failed");
            None
        }
        Err(_) => None,
    }
}

/// Fetches, checks and summarises one card.
async fn fetch_card(
    client: &HttpClient,
    resolver: &dyn Resolve,
    agent: &str,
    src: &CardSource,
) -> Result<AgentCardSummary, Problem> {
    let card = match fetch(client, agent, &src.url, None).await {
        Ok(Fetched::Card(card, _)) => card,
        Ok(Fetched::NotModified(_)) => {
            return Err(Problem::new(
                "UnexpectedStatus",
                format!("{} answered 304 to a request without a validator", src.url),
            ));
        }
        Err(e) => {
            if let CardError::Unreachable { detail, .. } = &e
                && detail.contains("egress rule refuses")
            {
                return Err(Problem::new("EgressRefused", format!("AgentGateway {:?}: {e}", src.gateway)));
            }
            let reason = match e {
                CardError::Unreachable { .. } => "Unreachable",
                CardError::Status { .. } => "UnexpectedStatus",
                CardError::TooLarge { .. } => "CardTooLarge",
                CardError::Invalid { .. } => "InvalidCard",
            };
            return Err(Problem::new(reason, e.to_string()));
        }
    };
    for url in interface_urls(&card) {
        // The gateway uses only http(s) interfaces (gRPC `host:port` entries it drops), and
        // those on the agent's origin are as trusted as the configured URL.
        let http = url::Url::parse(&url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !http || same_origin(&url, &src.url) {
            continue;
        }
        check_run_time_url(&url, &src.egress, &src.allowed_hosts, resolver).await.map_err(|e| {
            Problem::new(
                "EgressRefused",
                format!("AgentGateway {:?} refuses a URL the card names: {e}", src.gateway),
            )
        })?;
    }
    summary(&card).map_err(|m| Problem::new("InvalidCard", format!("the agent card at {}: {m}", src.url)))
}

/// Every interface URL a card names (A2A 1.0 `supportedInterfaces`, 0.3 `url` and
/// `additionalInterfaces`).
fn interface_urls(card: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |v: Option<&Value>| {
        if let Some(u) = v.and_then(Value::as_str) {
            out.push(u.to_string());
        }
    };
    add(card.get("url"));
    for key in ["supportedInterfaces", "additionalInterfaces"] {
        for i in card.get(key).and_then(Value::as_array).into_iter().flatten() {
            add(i.get("url"));
        }
    }
    out
}

fn same_origin(a: &str, b: &str) -> bool {
    let origin = |u: &str| url::Url::parse(u).ok().map(|u| u.origin());
    origin(a).is_some_and(|x| Some(x) == origin(b))
}

/// The name, version and skills of a card.
fn summary(card: &Value) -> Result<AgentCardSummary, String> {
    let name = card.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).ok_or("it has no name")?;
    let skills = match card.get("skills") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .take(MAX_SKILLS)
            .map(|s| {
                let id = s.get("id").and_then(Value::as_str).ok_or("a skill has no id")?;
                Ok(CardSkill {
                    id: id.to_string(),
                    name: s.get("name").and_then(Value::as_str).map(str::to_string),
                })
            })
            .collect::<Result<_, &str>>()?,
        Some(_) => return Err("its skills are not a list".into()),
    };
    Ok(AgentCardSummary {
        name: name.to_string(),
        version: card.get("version").and_then(Value::as_str).map(str::to_string),
        skills,
        seen_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::egress::SystemResolver;

    #[test]
    fn a_card_gives_its_name_version_and_skills() {
        let card = json!({"name": "Billing", "version": "1.2.0", "skills": [
            {"id": "refund-lookup", "name": "Refund lookup"}, {"id": "invoice"}]});
        let s = summary(&card).unwrap();
        assert_eq!(s.name, "Billing");
        assert_eq!(s.version.as_deref(), Some("1.2.0"));
        assert_eq!(
            s.skills,
            vec![
                CardSkill { id: "refund-lookup".into(), name: Some("Refund lookup".into()) },
                CardSkill { id: "invoice".into(), name: None }
            ]
        );
        assert_eq!(summary(&json!({"skills": []})).unwrap_err(), "it has no name");
        assert_eq!(
            summary(&json!({"name": "x", "skills": [{"name": "y"}]})).unwrap_err(),
            "a skill has no id"
        );
        assert_eq!(summary(&json!({"name": "x", "skills": {}})).unwrap_err(), "its skills are not a list");
    }

    #[test]
    fn interface_urls_of_both_a2a_versions_and_origins() {
        let card = json!({"url": "http://a:1/rpc", "supportedInterfaces": [{"url": "http://10.0.0.5/a2a"}],
                          "additionalInterfaces": [{"url": "https://b/x"}]});
        assert_eq!(interface_urls(&card), ["http://a:1/rpc", "http://10.0.0.5/a2a", "https://b/x"]);
        assert!(same_origin("http://a:1/rpc", "http://a:1/.well-known/agent-card.json"));
        assert!(!same_origin("http://a:2/rpc", "http://a:1/"));
        assert!(!same_origin("https://a:1/", "http://a:1/"));
    }

    #[tokio::test]
    async fn a_card_pointing_at_a_private_address_is_refused_and_said() {
        // An agent on loopback (allowed by allowedCIDRs) whose card names a private address.
        let body = json!({"name": "evil", "supportedInterfaces": [{"url": "http://10.0.0.5/a2a", "protocolBinding": "JSONRPC"}]});
        let src = served_once("/.well-known/agent-card.json", body.to_string()).await;
        let p = fetch_card(&client(&src), &SystemResolver, "evil", &src).await.unwrap_err();
        assert_eq!(p.reason, "EgressRefused");
        assert!(
            p.message.starts_with("AgentGateway \"agents\" refuses a URL the card names: URL \"http://10.0.0.5/a2a\" reaches 10.0.0.5, a private-network address: URLs that arrive at run time"),
            "{}",
            p.message
        );
    }

    #[tokio::test]
    async fn a_card_too_large_is_refused_and_said() {
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(crate::gateway::agent::card::MAX_CARD_BYTES));
        let src = served_once("/card", big).await;
        let p = fetch_card(&client(&src), &SystemResolver, "big", &src).await.unwrap_err();
        assert_eq!(p.reason, "CardTooLarge");
        assert_eq!(p.message, format!("the agent card of 'big' at {} is larger than 1048576 bytes", src.url));
    }

    #[tokio::test]
    async fn a_card_url_the_rule_refuses_is_not_fetched() {
        let src = CardSource {
            gateway: "agents".into(),
            url: "http://127.0.0.1:9/card".into(),
            egress: EgressPolicy::default(),
            allowed_hosts: vec![],
        };
        let p = fetch_card(&client(&src), &SystemResolver, "a", &src).await.unwrap_err();
        assert_eq!(p.reason, "EgressRefused");
        assert!(
            p.message.starts_with("AgentGateway \"agents\": the agent card of 'a' could not be fetched from http://127.0.0.1:9/card: "),
            "{}",
            p.message
        );
        assert!(
            p.message.contains("the gateway's egress rule refuses 127.0.0.1, a loopback address"),
            "{}",
            p.message
        );
    }

    fn client(src: &CardSource) -> HttpClient {
        crate::gateway::http_client::HttpClients::default().for_gateway(1000, &src.egress)
    }

    /// The card at `path` of a loopback server that answers one request with `body` as JSON,
    /// fetched as AgentGateway `agents` whose egress rule allows loopback.
    async fn served_once(path: &str, body: String) -> CardSource {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        tokio::spawn(serve_once(listener, body));
        CardSource {
            gateway: "agents".into(),
            url,
            egress: EgressPolicy { allowed: vec!["127.0.0.1/32".parse().unwrap()], ..Default::default() },
            allowed_hosts: vec![],
        }
    }

    /// Answers one HTTP request with `body` as JSON.
    async fn serve_once(listener: tokio::net::TcpListener, body: String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = sock.write_all(head.as_bytes()).await;
        let _ = sock.write_all(body.as_bytes()).await;
    }
}
