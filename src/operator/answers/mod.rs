//! Answers in status: what each policy grants and has spent, the tools each MCPServer offers, what
//! each Agent's card says and which of its identities resolve.
//!
//! [`effective`] is pure (the compile has everything it needs) and part of the status the
//! compile stage fingerprints. The rest comes from outside the cluster — an MCP server, an agent,
//! the gateways' Redis — so it is fetched beside the status stage, never inside a reconcile:
//! one task per MCPServer ([`discovery`]), per Agent ([`card`]) and per namespace with budgets
//! ([`spend`]), each with its own timeout and backoff, so one slow server never delays another
//! object's reconcile. A task keeps its latest result in a cache with the time it was seen, and
//! queues its object's reconcile when the result changes; the reconcile adds the cached result
//! to the desired status ([`Answers::augment`]), and [`events`] turns the changes the status
//! write makes into Events. Tasks run on the leader only, end when their object goes, and are
//! restarted when what they fetch (URL, credentials, egress rule) changes.

pub mod card;
pub mod discovery;
pub mod effective;
pub mod events;
pub mod spend;

use super::index::Index;
use super::leader::Leadership;
use super::status::cond::Cond;
use crate::api::{Object, ObjectRef};
use crate::compile::Output;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::reflector;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest wait for one discovery, card fetch or store read.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait to connect to an MCP server or an agent.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Retry delay after the first failure; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between two tries at something that is down, so that it is seen back within
/// seconds.
const MAX_RETRY: Duration = Duration::from_secs(8);

/// Runs a function on the latest compile of a namespace, if there is one (how the answers read
/// the compile stage without importing it).
pub type WithCompile = Arc<dyn Fn(&str, &mut dyn FnMut(&Output)) + Send + Sync>;

/// What the answer tasks need from the rest of the operator.
#[derive(Clone)]
pub struct Hooks {
    /// The watched objects.
    pub index: Arc<Index>,
    /// Runs the function on the latest compile of a namespace, if there is one.
    pub with_compile: WithCompile,
    /// Queues an object's reconcile.
    pub queue: Arc<dyn Fn(&ObjectRef) + Send + Sync>,
    /// Whether this replica writes.
    pub leader: Leadership,
    /// API client (ServiceAccount reads).
    pub client: kube::Client,
    /// The gateways' HTTP clients (one per egress rule, judged where they connect), for MCP
    /// servers and agent cards.
    pub clients: Arc<crate::gateway::http_client::HttpClients>,
}

impl Hooks {
    /// Whether the object still exists with this UID and this replica leads: a task that finds
    /// either false ends.
    fn alive(&self, r: &ObjectRef, uid: &str) -> bool {
        fn has<K>(store: &reflector::Store<K>, r: &ObjectRef, uid: &str) -> bool
        where
            K: reflector::Lookup<DynamicType = ()> + kube::Resource + Clone + 'static,
        {
            let key = reflector::ObjectRef::<K>::new(&r.name).within(&r.namespace);
            store.get(&key).is_some_and(|o| o.meta().uid.as_deref() == Some(uid))
        }
        let c = &self.index.cairn;
        self.leader.is_leader()
            && match r.kind.as_str() {
                "MCPServer" => has(&c.mcp_servers, r, uid),
                "Agent" => has(&c.agents, r, uid),
                "AgentPolicy" => has(&c.agent_policies, r, uid),
                _ => false,
            }
    }

    /// Whether the task of `r` should end: the object is gone (then its cached answer goes too)
    /// or this replica no longer leads (the answer stays for when it leads again).
    fn ended<V: Clone + PartialEq>(&self, r: &ObjectRef, uid: &str, cache: &Cache<V>) -> bool {
        if self.alive(r, uid) {
            return false;
        }
        if self.leader.is_leader() {
            cache.remove(r);
        }
        true
    }

    /// Queues the object's reconcile (its answer changed).
    fn poke(&self, r: &ObjectRef) {
        (self.queue)(r);
    }
}

/// The answers of one scope.
pub struct Answers {
    discovery: discovery::Discovery,
    cards: card::Cards,
    spend: spend::SpendWatch,
}

impl Answers {
    /// Answers for the objects of `hooks.index`.
    pub fn new(hooks: Hooks) -> Self {
        Answers {
            discovery: discovery::Discovery::new(hooks.clone()),
            cards: card::Cards::new(hooks.clone()),
            spend: spend::SpendWatch::new(hooks),
        }
    }

    /// Adds what is known from outside the cluster to `desired` (the status the compile gives
    /// `object`), and makes sure a task keeps it current.
    pub fn augment(&self, object: &Object, compiled: &Output, desired: &mut Value) {
        match object {
            Object::MCPServer(s) => self.discovery.augment(s, compiled, desired),
            Object::Agent(a) => self.cards.augment(a, compiled, desired),
            Object::AgentPolicy(p) => self.spend.augment(p, compiled, desired),
            _ => {}
        }
    }
}

/// Appends a condition to a desired status.
fn push(desired: &mut Value, cond: Cond) {
    if let Some(Value::Array(list)) = desired.get_mut("conditions") {
        list.push(cond.to_json());
    }
}

/// The delay before try `attempt` (1, 2, …) after failures: 1 s doubling to 8 s, times a random
/// factor in [0.75, 1).
fn retry_delay(attempt: u32) -> Duration {
    super::backoff::doubling(FIRST_RETRY, MAX_RETRY, attempt, 0.75)
}

/// Now, to the second (as status shows times).
fn now() -> Time {
    let t = k8s_openapi::jiff::Timestamp::now();
    Time(k8s_openapi::jiff::Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// A problem seen while fetching, for a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// PascalCase reason.
    pub reason: String,
    /// What went wrong.
    pub message: String,
}

impl Problem {
    fn new(reason: &str, message: impl Into<String>) -> Self {
        Problem { reason: reason.into(), message: message.into() }
    }

    /// The problem a stored condition of `type_` reports, if it is `False` (after a restart,
    /// what the status says until the first fetch).
    fn stored(
        conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        type_: &str,
    ) -> Option<Self> {
        let c = conditions.iter().find(|c| c.type_ == type_ && c.status == "False")?;
        Some(Problem::new(&c.reason, c.message.clone()))
    }
}

/// One task per object, with what it fetches; restarted when that changes.
struct Tasks<T> {
    map: Mutex<HashMap<ObjectRef, (T, tokio::task::JoinHandle<()>)>>,
}

impl<T: PartialEq> Tasks<T> {
    fn new() -> Self {
        Tasks { map: Mutex::new(HashMap::new()) }
    }

    /// Runs `start(target)` for `r` unless a task with the same target runs already.
    fn ensure<F: Future<Output = ()> + Send + 'static>(
        &self,
        r: &ObjectRef,
        target: T,
        start: impl FnOnce(&T) -> F,
    ) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, h)) = map.get(r)
            && *t == target
            && !h.is_finished()
        {
            return;
        }
        let handle = tokio::spawn(start(&target));
        if let Some((_, old)) = map.insert(r.clone(), (target, handle)) {
            old.abort();
        }
    }

    /// Stops the task of `r`, if any.
    fn stop(&self, r: &ObjectRef) {
        if let Some((_, h)) = self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(r) {
            h.abort();
        }
    }
}

/// Latest results by object.
struct Cache<V>(Mutex<HashMap<ObjectRef, V>>);

impl<V: Clone + PartialEq> Cache<V> {
    fn new() -> Self {
        Cache(Mutex::new(HashMap::new()))
    }

    fn get(&self, r: &ObjectRef) -> Option<V> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(r).cloned()
    }

    /// Applies `f` to the entry of `r` (a default one if none); returns whether it changed.
    fn update(&self, r: &ObjectRef, f: impl FnOnce(&mut V)) -> bool
    where
        V: Default,
    {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(r.clone()).or_default();
        let before = entry.clone();
        f(entry);
        *entry != before
    }

    fn remove(&self, r: &ObjectRef) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_one_second_to_eight_with_jitter() {
        for (attempt, base) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (60, 8.0)] {
            for _ in 0..20 {
                let d = retry_delay(attempt).as_secs_f64();
                assert!(d >= base * 0.75 && d < base, "attempt {attempt}: {d}");
            }
        }
    }
}
