//! Controllers: one kube-runtime Controller per Cairn kind, all fed by the compile stage (which
//! queues an object when what its reconcile would do changed) and by the children they own (a
//! child edited or deleted by hand, a Deployment's readiness). A reconcile reads the namespace's
//! compile, renders, applies, and writes status:
//!
//! - a gateway: [`render::gateway`] → [`apply::children`] → [`status::desired_gateway`];
//! - an MCPServer: its Deployment and Service when it has `deployment`, then its status;
//! - AIRoute, AIBackend, Agent, AgentPolicy: status only.
//!
//! A spec that cannot work (does not compile, cannot be rendered, is refused by the API server)
//! is reported in status and waits for its next edit; any other failure is retried with
//! per-object exponential backoff and jitter. Each object's reconcile is independent: one failing
//! gateway never holds back another.

use super::backoff::backoff_delay;
use super::compile::{Compiled, Compiler, Triggers};
use super::context::Context;
use super::error::{Error, is_invalid};
use super::index::{ChildStreams, Index};
use super::leader::Leadership;
use super::metrics::Metrics;
use super::render::{self, ChildKind, Owner, Settings};
use super::status::{self, GatewayFacts, Programmed};
use super::{apply, gateway_spec, keys, trace};
use crate::api::{self, GatewayCommon, Object};
use crate::compile::Mode;
use crate::config::{Credentials, Layer, packed};
use futures_util::{FutureExt, Stream, StreamExt, future::BoxFuture};
use std::pin::Pin;

/// A future that resolves when the operator is told to stop.
pub type Shutdown = Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>;
use kube::runtime::Controller;
use kube::runtime::controller::{Action, Config};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tracing::Instrument;

/// How often an object is reconciled with nothing changed (a safety net; changes are watched).
const RESYNC: Duration = Duration::from_secs(30 * 60);
/// Reconciles running at once per kind.
const CONCURRENCY: u16 = 8;

/// A Cairn kind the operator reconciles.
pub trait CairnKind:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The kind's name.
    const KIND: &'static str;
    /// As one of [`Object`]'s variants.
    fn wrap(&self) -> Object;
}

macro_rules! cairn_kind {
    ($($t:ident),*) => {$(
        impl CairnKind for api::$t {
            const KIND: &'static str = stringify!($t);
            fn wrap(&self) -> Object {
                Object::$t(self.clone())
            }
        }
    )*};
}
cairn_kind!(AIGateway, MCPGateway, AgentGateway, AIBackend, AIRoute, MCPServer, Agent, AgentPolicy);

fn key(kind: &str, obj: &impl ResourceExt) -> String {
    format!("{kind}/{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

async fn reconcile<K: CairnKind>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let object = obj.wrap();
    ctx.compiler.dequeued(&object.object_ref());
    if !ctx.leader.is_leader() {
        return Ok(Action::await_change());
    }
    let ns = object.namespace().to_string();
    // Before the namespace's first compile (a controller woken by children that exist when the
    // operator starts) there is nothing to do yet, and nothing failed: that compile fingerprints
    // every object of the namespace for the first time and so queues each one, this one included.
    let Some(compiled) = ctx.compiler.get(&ns) else {
        tracing::debug!(kind = K::KIND, namespace = %ns, name = object.name(), "waiting for the namespace's first compile");
        return Ok(Action::await_change());
    };
    let span = trace::reconcile(K::KIND, &ns, object.name());
    let result = async {
        match gateway_spec(&object) {
            Some((layer, common)) => reconcile_gateway(&*obj, &object, layer, common, &compiled, &ctx).await,
            None => reconcile_attached(&*obj, &object, &compiled, &ctx).await,
        }
    }
    .instrument(span.clone())
    .await;
    trace::ended(&span, &result);
    ctx.metrics.reconciled(K::KIND, started.elapsed());
    if result.is_ok() {
        ctx.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&key(K::KIND, &*obj));
    }
    result
}

fn error_policy<K: CairnKind>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(K::KIND, err.category());
    let attempt = {
        let mut f = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(key(K::KIND, &*obj)).or_default();
        *n += 1;
        *n
    };
    let delay = backoff_delay(attempt);
    tracing::warn!(kind = K::KIND, namespace = ?obj.namespace(), name = %obj.name_any(), error = %err,
                   category = err.category(), attempt, ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

fn owner<K: CairnKind>(obj: &K) -> Result<Owner, Error> {
    Ok(Owner {
        kind: K::KIND.to_string(),
        name: obj.name_any(),
        namespace: obj.namespace().ok_or(Error::Malformed("metadata.namespace"))?,
        uid: obj.uid().ok_or(Error::Malformed("metadata.uid"))?,
    })
}

/// The bundle in the gateway's current Secret, or the keys generated for it and not yet seen
/// back in the index.
fn existing_bundle(ctx: &Context, ns: &str, name: &str, uid: &str) -> Option<Credentials> {
    let from_secret = ctx.index.child_secret(ns, name).and_then(|s| {
        let bytes = s.data.as_ref()?.get(packed::CREDENTIALS_KEY)?;
        Credentials::from_json(std::str::from_utf8(&bytes.0).ok()?).ok()
    });
    from_secret.or_else(|| ctx.keys.lock().unwrap_or_else(|e| e.into_inner()).get(uid).cloned())
}

fn render_reason(e: &render::RenderError) -> &'static str {
    match e {
        render::RenderError::TooLarge(_) => "ConfigTooLarge",
        _ => "Invalid",
    }
}

/// Objects a compiled gateway serves, by kind.
fn attached_counts(compiled: Option<&crate::config::CompiledGateway>) -> BTreeMap<String, i32> {
    let mut out = BTreeMap::new();
    let Some(c) = compiled else { return out };
    if let Some(ai) = &c.config.ai {
        let mut routes: Vec<&str> = ai.rules.iter().map(|r| r.route.as_str()).collect();
        routes.dedup();
        out.insert("AIRoute".into(), routes.len() as i32);
        out.insert("AIBackend".into(), ai.backends.len() as i32);
    }
    if let Some(m) = &c.config.mcp {
        out.insert("MCPServer".into(), m.servers.len() as i32);
    }
    if let Some(a) = &c.config.agent {
        out.insert("Agent".into(), a.agents.len() as i32);
    }
    out
}

async fn reconcile_gateway<K: CairnKind>(
    obj: &K,
    object: &Object,
    layer: Layer,
    common: &GatewayCommon,
    compiled: &Compiled,
    ctx: &Context,
) -> Result<Action, Error> {
    let owner = owner(obj)?;
    let ns = owner.namespace.as_str();
    let diagnostics = compiled.diagnostics(&object.object_ref());
    let gateway = compiled.gateway(&owner.name, layer);
    let programmed = match gateway {
        None => Programmed::NotCompiled,
        Some(cg) => {
            let mut bundle = cg.clone();
            let secret = render::secret_name(&owner.name, layer);
            let existing = existing_bundle(ctx, ns, &secret, &owner.uid);
            let generated = keys::carry_or_generate(existing.as_ref(), &mut bundle.credentials);
            if !generated.is_empty() {
                tracing::info!(gateway = %owner.name, namespace = ns, keys = ?generated, "generated the gateway's keys");
                let mut own = Credentials::default();
                for id in [crate::config::SESSION_KEY, crate::config::SIGNING_KEY] {
                    own.0.insert(id.into(), bundle.credentials.0[id].clone());
                }
                ctx.keys.lock().unwrap_or_else(|e| e.into_inner()).insert(owner.uid.clone(), own);
            }
            let gw = render::Gateway { owner: &owner, layer, common, compiled: &bundle };
            match trace::stage("render").in_scope(|| render::gateway(gw, &ctx.settings)) {
                Err(e) => Programmed::Invalid { reason: render_reason(&e).into(), message: e.to_string() },
                Ok(rendered) => match apply::children(ctx, &owner, &rendered.children, &ChildKind::PRUNABLE)
                    .instrument(trace::stage("apply"))
                    .await
                {
                    Ok(_) => Programmed::Yes(rendered.manifest.config_hash),
                    Err(Error::Apply { kind, name, source }) if is_invalid(&source) => Programmed::Invalid {
                        reason: "Invalid".into(),
                        message: format!("the API server refuses {kind} {name}: {}", api_message(&source)),
                    },
                    Err(e) => return Err(e),
                },
            }
        }
    };
    trace::programmed(match programmed {
        Programmed::Yes(_) => "True",
        Programmed::Invalid { .. } => "Invalid",
        Programmed::NotCompiled => "NotCompiled",
    });
    let base = render::base_name(&owner.name, layer);
    let deployment = ctx.index.child_deployment(ns, &base);
    let attached = attached_counts(gateway);
    let stored = serde_json::to_value(obj).ok();
    let previous_hash = stored
        .as_ref()
        .and_then(|v| v.pointer("/status/configHash"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let desired = status::desired_gateway(GatewayFacts {
        name: &owner.name,
        namespace: ns,
        layer,
        port: common.listener.port,
        diagnostics: &diagnostics,
        programmed: &programmed,
        deployment: deployment.as_deref(),
        attached: &attached,
        previous_hash: previous_hash.as_deref(),
    });
    status::write(ctx, obj, desired).instrument(trace::stage("status")).await?;
    Ok(match programmed {
        Programmed::Yes(_) => Action::requeue(RESYNC),
        _ => Action::await_change(),
    })
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

async fn reconcile_attached<K: CairnKind>(
    obj: &K,
    object: &Object,
    compiled: &Compiled,
    ctx: &Context,
) -> Result<Action, Error> {
    let mut desired = status::desired_attached(object, compiled);
    ctx.answers.augment(object, &compiled.output, &mut desired);
    if let Object::MCPServer(server) = object {
        let owner = owner(obj)?;
        let prunable = [ChildKind::Deployment, ChildKind::Service];
        match trace::stage("render").in_scope(|| render::mcp_server(&owner, &server.spec, &ctx.settings)) {
            Err(e) => status::push_condition(&mut desired, "Programmed", false, "Invalid", e.to_string()),
            Ok(children) => match apply::children(ctx, &owner, &children, &prunable)
                .instrument(trace::stage("apply"))
                .await
            {
                Err(Error::Apply { kind, name, source }) if is_invalid(&source) => status::push_condition(
                    &mut desired,
                    "Programmed",
                    false,
                    "Invalid",
                    format!("the API server refuses {kind} {name}: {}", api_message(&source)),
                ),
                Err(e) => return Err(e),
                Ok(_) if server.spec.deployment.is_none() => {}
                Ok(_) => {
                    status::push_condition(
                        &mut desired,
                        "Programmed",
                        true,
                        "Programmed",
                        "Deployment and Service written",
                    );
                    let name = api::deployed_server_name(&owner.name);
                    let ready = ctx
                        .index
                        .child_deployment(&owner.namespace, &name)
                        .and_then(|d| d.status.as_ref()?.ready_replicas)
                        .unwrap_or(0);
                    let (ok, reason) = if ready >= 1 { (true, "Ready") } else { (false, "NoReadyPods") };
                    status::push_condition(&mut desired, "Ready", ok, reason, format!("{ready} pods ready"));
                }
            },
        }
    }
    status::write(ctx, obj, desired).instrument(trace::stage("status")).await?;
    Ok(Action::requeue(RESYNC))
}

fn channel_stream<T: Send + 'static>(rx: UnboundedReceiver<T>) -> impl Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

fn controller<K: CairnKind>(
    store: Store<K>,
    queue: UnboundedReceiver<Arc<K>>,
    owns: Option<ChildStreams>,
    ctx: Arc<Context>,
    shutdown: Shutdown,
) -> BoxFuture<'static, ()> {
    let mut c = Controller::for_shared_stream(channel_stream(queue), store);
    if let Some(s) = owns {
        macro_rules! own {
            ($($field:ident),*) => {$(
                if let Some(h) = s.$field {
                    c = c.owns_shared_stream(h);
                }
            )*};
        }
        own!(config_maps, secrets, service_accounts, roles, role_bindings, services, deployments, pdbs, hpas);
    }
    c.reconcile_all_on(ctx.leader.acquired())
        .graceful_shutdown_on(shutdown)
        .with_config(Config::default().concurrency(CONCURRENCY))
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|_| async {})
        .boxed()
}

/// What one scope needs from the process.
pub struct ScopeParams {
    /// API client.
    pub client: Client,
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    /// Image settings.
    pub settings: Settings,
    /// Cluster DNS domain.
    pub cluster_domain: String,
    /// Leader flag.
    pub leader: Leadership,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Events.
    pub recorder: Recorder,
}

/// Runs the index, the compile stage and the eight controllers of one scope until `shutdown`
/// resolves and the reconciles in flight have finished.
pub async fn run_scope(p: ScopeParams, shutdown: impl Fn() -> Shutdown) {
    let (index, subs) = Index::start(p.client.clone(), p.namespace.clone(), p.metrics.clone());
    let (ai_gw_tx, ai_gw_rx) = unbounded_channel();
    let (mcp_gw_tx, mcp_gw_rx) = unbounded_channel();
    let (agent_gw_tx, agent_gw_rx) = unbounded_channel();
    let (backend_tx, backend_rx) = unbounded_channel();
    let (route_tx, route_rx) = unbounded_channel();
    let (server_tx, server_rx) = unbounded_channel();
    let (agent_tx, agent_rx) = unbounded_channel();
    let (policy_tx, policy_rx) = unbounded_channel();
    let triggers = Triggers {
        ai_gateways: ai_gw_tx,
        mcp_gateways: mcp_gw_tx,
        agent_gateways: agent_gw_tx,
        ai_backends: backend_tx,
        ai_routes: route_tx,
        mcp_servers: server_tx,
        agents: agent_tx,
        agent_policies: policy_tx,
    };
    let mode = Mode::Cluster { domain: p.cluster_domain.clone() };
    let compiler =
        Arc::new(Compiler::new(index.clone(), mode, p.metrics.clone(), triggers, status::desired_attached));
    tokio::spawn(compiler.clone().run());
    let (latest, queue) = (compiler.clone(), compiler.clone());
    let answers = super::answers::Answers::new(super::answers::Hooks {
        index: index.clone(),
        with_compile: Arc::new(move |ns, f| {
            if let Some(c) = latest.get(ns) {
                f(&c.output);
            }
        }),
        queue: Arc::new(move |r| queue.queue(r)),
        leader: p.leader.clone(),
        client: p.client.clone(),
        clients: Arc::new(crate::gateway::http_client::HttpClients::default()),
    });
    let ctx = Arc::new(Context {
        client: p.client,
        settings: p.settings,
        index: index.clone(),
        compiler,
        answers,
        leader: p.leader,
        metrics: p.metrics,
        recorder: p.recorder,
        applied: Default::default(),
        failures: Default::default(),
        keys: Default::default(),
    });
    let c = &index.cairn;
    let controllers = vec![
        controller(c.ai_gateways.clone(), ai_gw_rx, Some(subs.ai), ctx.clone(), shutdown()),
        controller(c.mcp_gateways.clone(), mcp_gw_rx, Some(subs.mcp), ctx.clone(), shutdown()),
        controller(c.agent_gateways.clone(), agent_gw_rx, Some(subs.agent), ctx.clone(), shutdown()),
        controller(c.mcp_servers.clone(), server_rx, Some(subs.mcp_server), ctx.clone(), shutdown()),
        controller(c.ai_backends.clone(), backend_rx, None, ctx.clone(), shutdown()),
        controller(c.ai_routes.clone(), route_rx, None, ctx.clone(), shutdown()),
        controller(c.agents.clone(), agent_rx, None, ctx.clone(), shutdown()),
        controller(c.agent_policies.clone(), policy_rx, None, ctx.clone(), shutdown()),
    ];
    futures_util::future::join_all(controllers).await;
}
