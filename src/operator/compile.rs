//! The compile stage: one pure [`crate::compile::compile`] per changed namespace (a gateway's
//! scope is its namespace), over the index's objects and the data of the Secrets that compile
//! names, and the decision of which objects that changes.
//!
//! Namespaces are taken from [`Changes`](super::index::Changes) only after their events are in
//! the stores, so a result is never older than the event that asked for it. The result is cached
//! per namespace ([`Compiler::get`]) and shared by every reconcile there. Then each object of the
//! namespace gets a fingerprint of what its reconcile would do (its own version and its compiled
//! outcome: a gateway's config and diagnostics, another kind's desired status); the objects whose
//! fingerprint moved are queued to their controller. So an AIRoute edit reconciles the gateways
//! whose config it changes, a Secret edit the gateways whose bundle uses it, and nothing else.
//!
//! Secret data is read here (a GET per changed Secret that a compile names): a failed read keeps
//! the namespace's previous result and retries with backoff, so a blip never compiles a config
//! without its credentials.

use super::index::Index;
use super::metrics::Metrics;
use crate::api::{self, Object, ObjectRef};
use crate::compile::{self, CompiledGateway, Diagnostic, Mode, Secrets};
use crate::config::Layer;
use kube::runtime::reflector::{self, Store};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;
use tracing::Instrument;

/// One namespace's compile.
#[derive(Debug)]
pub struct Compiled {
    /// The compile step's output.
    pub output: compile::Output,
    by_object: HashMap<ObjectRef, Vec<usize>>,
}

impl Compiled {
    /// Indexes a compile's output by object.
    pub fn new(output: compile::Output) -> Self {
        let mut by_object: HashMap<ObjectRef, Vec<usize>> = HashMap::new();
        for (i, d) in output.diagnostics.iter().enumerate() {
            by_object.entry(d.object.clone()).or_default().push(i);
        }
        Compiled { output, by_object }
    }

    /// Diagnostics of one object.
    pub fn diagnostics(&self, obj: &ObjectRef) -> Vec<&Diagnostic> {
        self.by_object
            .get(obj)
            .map(|ix| ix.iter().map(|i| &self.output.diagnostics[*i]).collect())
            .unwrap_or_default()
    }

    /// The compiled gateway `name` of `layer`, if its spec compiled.
    pub fn gateway(&self, name: &str, layer: Layer) -> Option<&CompiledGateway> {
        self.output.gateways.iter().find(|g| g.config.gateway.name == name && g.config.gateway.layer == layer)
    }
}

/// Channels to the controllers, one per kind.
pub struct Triggers {
    /// AIGateways.
    pub ai_gateways: UnboundedSender<Arc<api::AIGateway>>,
    /// MCPGateways.
    pub mcp_gateways: UnboundedSender<Arc<api::MCPGateway>>,
    /// AgentGateways.
    pub agent_gateways: UnboundedSender<Arc<api::AgentGateway>>,
    /// AIBackends.
    pub ai_backends: UnboundedSender<Arc<api::AIBackend>>,
    /// AIRoutes.
    pub ai_routes: UnboundedSender<Arc<api::AIRoute>>,
    /// MCPServers.
    pub mcp_servers: UnboundedSender<Arc<api::MCPServer>>,
    /// Agents.
    pub agents: UnboundedSender<Arc<api::Agent>>,
    /// AgentPolicies.
    pub agent_policies: UnboundedSender<Arc<api::AgentPolicy>>,
}

/// The compile stage of one scope.
pub struct Compiler {
    index: Arc<Index>,
    mode: Mode,
    metrics: Arc<Metrics>,
    triggers: Triggers,
    cache: RwLock<HashMap<String, Arc<Compiled>>>,
    fingerprints: Mutex<HashMap<ObjectRef, u64>>,
    queued: Mutex<HashSet<ObjectRef>>,
    failures: Mutex<HashMap<String, u32>>,
    attached: DesiredAttached,
}

/// The status stage's desired status of a non-gateway object (`status::desired_attached`),
/// handed in so this stage does not import the status stage (which imports this one).
pub type DesiredAttached = fn(&Object, &Compiled) -> serde_json::Value;

impl Compiler {
    /// A compile stage over `index`, queueing into `triggers`.
    pub fn new(
        index: Arc<Index>,
        mode: Mode,
        metrics: Arc<Metrics>,
        triggers: Triggers,
        attached: DesiredAttached,
    ) -> Self {
        Compiler {
            attached,
            index,
            mode,
            metrics,
            triggers,
            cache: RwLock::new(HashMap::new()),
            fingerprints: Mutex::new(HashMap::new()),
            queued: Mutex::new(HashSet::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The latest compile of a namespace.
    pub fn get(&self, ns: &str) -> Option<Arc<Compiled>> {
        self.cache.read().unwrap_or_else(|e| e.into_inner()).get(ns).cloned()
    }

    /// A reconcile of `obj` started: it is no longer queued.
    pub fn dequeued(&self, obj: &ObjectRef) {
        if self.queued.lock().unwrap_or_else(|e| e.into_inner()).remove(obj) {
            self.metrics.queue(kind_label(&obj.kind), -1);
        }
    }

    /// Runs until the process ends: waits for every cache, then compiles each namespace whenever
    /// its inputs change.
    pub async fn run(self: Arc<Self>) {
        self.index.ready().await;
        self.metrics.set_ready();
        tracing::info!(namespace = ?self.index.namespace, "caches synced");
        for ns in self.index.namespaces() {
            self.index.changes.mark(&ns);
        }
        loop {
            for ns in self.index.changes.next().await {
                let span = super::trace::compile(&ns);
                match self.compile_namespace(&ns).instrument(span.clone()).await {
                    Ok(()) => {
                        super::trace::ok(&span);
                        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&ns);
                    }
                    Err(e) => {
                        super::trace::failed(&span, "secret_read", &e.to_string());
                        let attempt = {
                            let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
                            let n = f.entry(ns.clone()).or_default();
                            *n += 1;
                            *n
                        };
                        let delay = super::backoff::backoff_delay(attempt);
                        tracing::warn!(namespace = %ns, error = %e, ?delay, "reading a Secret failed; \
                                       keeping the namespace's last compile and retrying");
                        let changes = self.index.changes.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            changes.mark(&ns);
                        });
                    }
                }
            }
        }
    }

    async fn compile_namespace(&self, ns: &str) -> Result<(), kube::Error> {
        let started = Instant::now();
        let objects = self.index.objects(ns);
        if objects.is_empty() {
            self.cache.write().unwrap_or_else(|e| e.into_inner()).remove(ns);
            self.index.changes.set_named_secrets(ns, BTreeSet::new());
            self.index.retain_secrets(ns, &BTreeSet::new());
            self.fingerprints.lock().unwrap_or_else(|e| e.into_inner()).retain(|o, _| o.namespace != ns);
            return Ok(());
        }
        let mut names: BTreeSet<String> = self
            .get(ns)
            .map(|c| c.output.secrets_named.iter().filter(|(n, _)| n == ns).map(|(_, s)| s.clone()).collect())
            .unwrap_or_default();
        // Secret lookups depend on the objects only, so the second round names nothing new.
        let output = loop {
            let mut secrets = Secrets::new();
            for name in &names {
                if let Some(data) = self.index.secret_data(ns, name).await? {
                    secrets.insert((ns.to_string(), name.clone()), (*data).clone());
                }
            }
            let output =
                compile::compile(compile::Input { objects: &objects, secrets: &secrets, mode: &self.mode });
            let named: BTreeSet<String> =
                output.secrets_named.iter().filter(|(n, _)| n == ns).map(|(_, s)| s.clone()).collect();
            if named.is_subset(&names) {
                self.index.changes.set_named_secrets(ns, named.clone());
                self.index.retain_secrets(ns, &named);
                break output;
            }
            names.extend(named);
        };
        let compiled = Arc::new(Compiled::new(output));
        self.cache.write().unwrap_or_else(|e| e.into_inner()).insert(ns.to_string(), compiled.clone());
        self.metrics.compiled(started.elapsed());
        super::trace::compiled(
            objects.len(),
            compiled.output.gateways.len(),
            compiled.output.diagnostics.len(),
        );
        tracing::debug!(namespace = ns, objects = objects.len(), gateways = compiled.output.gateways.len(),
                        diagnostics = compiled.output.diagnostics.len(), elapsed = ?started.elapsed(), "compiled");
        self.queue_changed(ns, &objects, &compiled);
        Ok(())
    }

    /// Queues every object of `ns` whose fingerprint moved.
    fn queue_changed(&self, ns: &str, objects: &[Object], compiled: &Compiled) {
        let mut fingerprints = self.fingerprints.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = HashSet::new();
        for obj in objects {
            let r = obj.object_ref();
            let fp = fingerprint(obj, compiled, self.attached);
            seen.insert(r.clone());
            if fingerprints.insert(r.clone(), fp) == Some(fp) {
                continue;
            }
            self.queue(&r);
        }
        fingerprints.retain(|o, _| o.namespace != ns || seen.contains(o));
    }

    /// Queues one object to its controller (once while it waits); also how the status answers
    /// that come from outside the cluster (tools discovered, a card, spend) ask for a reconcile
    /// when they change.
    pub fn queue(&self, r: &ObjectRef) {
        if self.send(r) && self.queued.lock().unwrap_or_else(|e| e.into_inner()).insert(r.clone()) {
            self.metrics.queue(kind_label(&r.kind), 1);
        }
    }

    fn send(&self, o: &ObjectRef) -> bool {
        fn from<K>(store: &Store<K>, tx: &UnboundedSender<Arc<K>>, o: &ObjectRef) -> bool
        where
            K: kube::runtime::reflector::Lookup<DynamicType = ()> + Clone + 'static,
        {
            let r = reflector::ObjectRef::<K>::new(&o.name).within(&o.namespace);
            store.get(&r).is_some_and(|k| tx.send(k).is_ok())
        }
        let (c, t) = (&self.index.cairn, &self.triggers);
        match o.kind.as_str() {
            "AIGateway" => from(&c.ai_gateways, &t.ai_gateways, o),
            "MCPGateway" => from(&c.mcp_gateways, &t.mcp_gateways, o),
            "AgentGateway" => from(&c.agent_gateways, &t.agent_gateways, o),
            "AIBackend" => from(&c.ai_backends, &t.ai_backends, o),
            "AIRoute" => from(&c.ai_routes, &t.ai_routes, o),
            "MCPServer" => from(&c.mcp_servers, &t.mcp_servers, o),
            "Agent" => from(&c.agents, &t.agents, o),
            "AgentPolicy" => from(&c.agent_policies, &t.agent_policies, o),
            _ => false,
        }
    }
}

/// What a reconcile of `obj` would do, hashed: its generation (its spec; not its
/// `resourceVersion`, which the operator's own status writes move), and for a gateway its
/// compiled config (credentials included) and diagnostics, for another kind its desired status.
fn fingerprint(obj: &Object, compiled: &Compiled, attached: DesiredAttached) -> u64 {
    let mut h = DefaultHasher::new();
    (obj.meta().uid.as_deref(), obj.meta().generation).hash(&mut h);
    match super::gateway_spec(obj) {
        Some((layer, _)) => {
            compiled.gateway(obj.name(), layer).map(CompiledGateway::hash).hash(&mut h);
            for d in compiled.diagnostics(&obj.object_ref()) {
                d.to_string().hash(&mut h);
            }
        }
        None => attached(obj, compiled).to_string().hash(&mut h),
    }
    h.finish()
}

/// The kind as a `'static` label.
pub fn kind_label(kind: &str) -> &'static str {
    api::KINDS.iter().find(|k| **k == kind).copied().unwrap_or("Unknown")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Options;

    const YAML: &str = r#"
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {name: a}
spec: {listener: {port: 8080}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIGateway
metadata: {name: b}
spec: {listener: {port: 8080}}
---
apiVersion: cairn.dev/v1alpha1
kind: AIBackend
metadata: {name: echo}
spec: {provider: Echo, models: [{name: echo-1}]}
---
apiVersion: cairn.dev/v1alpha1
kind: AIRoute
metadata: {name: only-a}
spec:
  gatewayRefs: [{name: a}]
  rules: [{matches: [{model: MODEL}], backends: [{backendRef: {name: echo}, model: echo-1}]}]
"#;

    fn fingerprints(model: &str) -> HashMap<String, u64> {
        let yaml = YAML.replace("MODEL", model);
        let m = crate::manifest::load_str("t.yaml", &yaml, &Options::default()).unwrap();
        let out = crate::workspace::compile_manifests(&m, &Mode::Cluster { domain: "cluster.local".into() });
        let compiled = Compiled::new(out);
        m.objects
            .iter()
            .map(|d| {
                (
                    d.value.name().to_string(),
                    fingerprint(&d.value, &compiled, crate::operator::status::desired_attached),
                )
            })
            .collect()
    }

    #[test]
    fn a_route_edit_moves_its_gateway_and_itself_and_nothing_else() {
        let before = fingerprints("gpt-4o");
        let after = fingerprints("gpt-4.1");
        assert_ne!(before["a"], after["a"], "the route's gateway is reconciled");
        assert_eq!(before["b"], after["b"], "the other gateway is not");
        assert_eq!(before["echo"], after["echo"], "the backend's status does not change");
        assert_eq!(before["only-a"], after["only-a"], "nor does the route's (same version, same status)");
        assert_eq!(fingerprints("gpt-4o"), before, "fingerprints are deterministic");
    }
}
