//! The request path of the agent gateway: routing, identification, policy, task ownership,
//! webhook egress checks, forwarding (bodies unchanged, streams relayed frame by frame), the
//! caller-identity token, `traceparent`, and the audit line and metrics of every call.

use super::AgentRuntime;
use super::card::{self, CardError, Endpoints, error_chain};
use super::egress::check_webhook;
use super::error::{A2aError, Binding, Body, full, json_response};
use super::method::{self, Method, RestRoute};
use super::owners::{self, Owner};
use super::view::{self, CallFacts, Params, ParamsField, RequestError};
use crate::config::{A2aAgentConfig, FailureMode};
use crate::gateway::ai::sse::{SseEvent, SseParser};
use crate::gateway::server::{self, BodyError};
use crate::gateway::state::Shared;
use crate::gateway::store::{Admission, LimitReq, Store, StoreError};
use crate::policy::{Decision, DenyReason, PolicyIndex};
use bytes::Bytes;
use futures_util::FutureExt;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use ring::rand::SecureRandom;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest non-streaming answer read from an agent.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Longest wait for an agent's response headers.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);
/// Connect timeout towards agents.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Labels of one call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabels {
    /// Gateway `namespace/name`.
    pub gateway: Arc<str>,
    /// Agent called (empty when unknown).
    pub agent: Arc<str>,
    /// A2A 1.0 method name, `card` or `directory`.
    pub method: &'static str,
    /// Caller.
    pub subject: Arc<str>,
    /// Outcome category.
    pub outcome: &'static str,
}

/// The agent layer's metrics, registered in the process registry by
/// [`crate::gateway::metrics::Metrics`].
pub struct AgentMetrics {
    /// Calls.
    pub requests: Family<AgentLabels, Counter>,
    /// Call duration (to the last byte for streams).
    pub duration: Family<AgentLabels, Histogram, fn() -> Histogram>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

impl AgentMetrics {
    /// Creates and registers the families.
    pub fn new(registry: &mut Registry) -> AgentMetrics {
        let requests = Family::<AgentLabels, Counter>::default();
        let duration = Family::<AgentLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "cairn_agent_requests",
            "Agent gateway calls, by agent, method and outcome",
            requests.clone(),
        );
        registry.register_with_unit(
            "cairn_agent_request_duration",
            "Agent gateway call duration, to the last byte of streams",
            Unit::Seconds,
            duration.clone(),
        );
        AgentMetrics { requests, duration }
    }
}

/// What is known about a call when it ends: the audit line and the metrics.
#[derive(Clone, Debug)]
struct Audit {
    started: Instant,
    gateway: Arc<str>,
    subject: Arc<str>,
    agent: Arc<str>,
    method: &'static str,
    binding: &'static str,
    skill: Option<String>,
    task_id: Option<String>,
    outcome: &'static str,
    status: u16,
    error: Option<String>,
    trace_id: String,
    /// Also print the line as JSON on stdout (`telemetry.accessLog`).
    access_log: bool,
}

impl Audit {
    fn finish(&self, shared: &Shared) {
        let latency = self.started.elapsed();
        let latency_ms = latency.as_secs_f64() * 1000.0;
        tracing::info!(
            target: "cairn::audit",
            gateway = %self.gateway,
            caller = %self.subject,
            agent = %self.agent,
            method = self.method,
            binding = self.binding,
            skill = self.skill.as_deref(),
            task_id = self.task_id.as_deref(),
            outcome = self.outcome,
            status = self.status,
            latency_ms,
            trace_id = %self.trace_id,
            error = self.error.as_deref(),
            "a2a call"
        );
        if self.access_log {
            let line = json!({
                "time": crate::gateway::access_log::rfc3339(SystemTime::now()),
                "kind": "a2a.call",
                "gateway": &*self.gateway,
                "caller": &*self.subject,
                "agent": &*self.agent,
                "method": self.method,
                "binding": self.binding,
                "skill": self.skill,
                "task_id": self.task_id,
                "outcome": self.outcome,
                "status": self.status,
                "latency_ms": latency_ms,
                "trace_id": self.trace_id,
                "error": self.error,
            });
            let mut s = line.to_string();
            s.push('\n');
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), s.as_bytes());
        }
        let labels = AgentLabels {
            gateway: self.gateway.clone(),
            agent: self.agent.clone(),
            method: self.method,
            subject: self.subject.clone(),
            outcome: self.outcome,
        };
        shared.metrics.agent.requests.get_or_create(&labels).inc();
        shared.metrics.agent.duration.get_or_create(&labels).observe(latency.as_secs_f64());
    }

    fn fail(&mut self, e: &A2aError, binding: Binding) {
        self.outcome = e.category();
        self.status = e.status(binding).as_u16();
        self.error = Some(e.to_string());
    }
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    // The system random source does not fail on supported platforms; zeros would only make
    // the id non-random, never unsafe.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    hex::encode(b)
}

/// Appends a non-zero random id of 8 bytes as lowercase hex (trace and span ids): from the
/// thread's generator (`rand`), not the system source (a system call per id, twice per request).
fn push_trace_hex64(out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = loop {
        let v: u64 = rand::random();
        if v != 0 {
            break v;
        }
    };
    out.extend((0..16).rev().map(|i| HEX[((v >> (i * 4)) & 0xf) as usize] as char));
}

/// The outgoing `traceparent` (same trace, new parent id) and the trace id; a new trace when the
/// request carries none or an invalid one.
pub fn traceparent(headers: &HeaderMap) -> (String, String) {
    let incoming = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::trim);
    let mut tp = String::with_capacity(55);
    if let Some(parts) = incoming.map(|tp| tp.split('-').collect::<Vec<&str>>()) {
        let hex = |s: &str, n: usize| {
            s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        };
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        if parts.len() >= 4
            && hex(parts[0], 2)
            && parts[0] != "ff"
            && hex(parts[1], 32)
            && !zero(parts[1])
            && hex(parts[2], 16)
            && !zero(parts[2])
            && hex(parts[3], 2)
        {
            tp.extend(["00-", parts[1], "-"]);
            push_trace_hex64(&mut tp);
            tp.extend(["-", parts[3]]);
            return (tp, parts[1].to_string());
        }
    }
    tp.push_str("00-");
    push_trace_hex64(&mut tp);
    push_trace_hex64(&mut tp);
    let trace = tp[3..35].to_string();
    tp.push('-');
    push_trace_hex64(&mut tp);
    tp.push_str("-01");
    (tp, trace)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The gateway's public base URL as the caller reached it.
pub fn public_base(headers: &HeaderMap, uri: &http::Uri) -> String {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_string())
    };
    let proto = first("x-forwarded-proto")
        .filter(|p| p == "http" || p == "https")
        .or_else(|| uri.scheme_str().map(str::to_string))
        .unwrap_or_else(|| "http".into());
    let valid =
        |h: &String| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b'@');
    let host = first("x-forwarded-host")
        .filter(valid)
        .or_else(|| first("host").filter(valid))
        .or_else(|| uri.authority().map(|a| a.to_string()).filter(valid))
        .unwrap_or_else(|| "localhost".into());
    format!("{proto}://{host}")
}

/// Whether `subject` has any grant on `agent` (whatever the skill).
fn may_use(policy: &PolicyIndex, subject: &str, agent: &str) -> bool {
    match policy.check_agent(subject, agent, None) {
        Decision::Allow(_) => true,
        Decision::Deny(d) => d.reason == DenyReason::SkillUnknown,
    }
}

/// Serves one request on an agent gateway. Never fails: every error becomes a response in the
/// caller's binding.
pub async fn handle<B>(rt: Arc<AgentRuntime>, shared: Arc<Shared>, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path().to_string();
    let is_get = req.method() == http::Method::GET;
    if let Err(e) = crate::gateway::origin::check(&req, &rt.layer.allowed_origins) {
        // In the binding the request speaks: JSON-RPC is a POST to the agent's own path.
        let agent_path =
            path.strip_prefix("/agents/").is_some_and(|n| !n.trim_end_matches('/').contains('/'));
        let binding =
            if req.method() == http::Method::POST && agent_path { Binding::JsonRpc } else { Binding::Rest };
        return A2aError::Forbidden(e.to_string()).response(binding, &Value::Null);
    }
    if path == "/.well-known/jwks.json" {
        if !is_get {
            return A2aError::NotFound(format!("{} {path}", req.method()))
                .response(Binding::Rest, &Value::Null);
        }
        let mut resp = json_response(StatusCode::OK, &rt.signer.jwks());
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        return resp;
    }
    let Some(rest) = path.strip_prefix("/agents") else {
        return A2aError::NotFound(path.clone()).response(Binding::Rest, &Value::Null);
    };
    if rest.is_empty() || rest == "/" {
        if !is_get {
            return A2aError::NotFound(format!("{} {path}", req.method()))
                .response(Binding::Rest, &Value::Null);
        }
        // Boxed, as is `serve_card`: rarer than calls, and large; unboxed they would make every
        // call's future as large (it is moved into the connection's dispatcher).
        return Box::pin(directory(&rt, &shared, req)).await;
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return A2aError::NotFound(path.clone()).response(Binding::Rest, &Value::Null);
    };
    let (name, sub) = match rest.split_once('/') {
        Some((n, s)) => (n.to_string(), format!("/{s}")),
        None => (rest.to_string(), String::new()),
    };
    let rest_route = match sub.as_str() {
        "" | "/" if req.method() == http::Method::POST => None,
        "/.well-known/agent-card.json" | "/.well-known/agent.json" if is_get => {
            return Box::pin(serve_card(&rt, &shared, &name, req)).await;
        }
        _ => Some(sub.as_str()),
    };
    // One await of `serve_call` (two would each keep room for it in this future).
    serve_call(&rt, &shared, &name, rest_route, req).await
}

fn audit_for(
    rt: &AgentRuntime,
    agent: &str,
    method: &'static str,
    binding: Binding,
    trace_id: String,
) -> Audit {
    Audit {
        started: Instant::now(),
        gateway: rt.gateway_label.clone(),
        subject: Arc::from(""),
        agent: Arc::from(agent),
        method,
        binding: binding.as_str(),
        skill: None,
        task_id: None,
        outcome: "ok",
        status: 200,
        error: None,
        trace_id,
        access_log: rt.config.telemetry.access_log,
    }
}

/// Identifies the caller and finds the agent (an agent the caller may not use does not exist
/// for it only in the directory and card; calls get the policy's refusal).
async fn caller(rt: &AgentRuntime, headers: &HeaderMap) -> Result<String, A2aError> {
    rt.identity.authenticate(headers, &rt.policy).await.map_err(|e| A2aError::Unauthenticated(e.to_string()))
}

async fn read_body<B>(body: B, max: u64) -> Result<Bytes, A2aError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match server::read_body(body, usize::try_from(max).unwrap_or(usize::MAX)).await {
        Ok(b) => Ok(b),
        Err(BodyError::TooLarge(_)) => Err(A2aError::PayloadTooLarge(max)),
        Err(BodyError::Read(e)) => {
            Err(A2aError::InvalidRequest(format!("reading the request body failed: {e}")))
        }
    }
}

/// What a parsed call asks for.
struct Call {
    binding: Binding,
    method: Method,
    rpc_id: Value,
    /// What the gateway reads of the params (or REST body).
    facts: CallFacts,
    /// Task named by the path (REST) or params.
    task_id: Option<String>,
    body: Bytes,
    /// REST: path below the agent and query.
    rest_path: String,
    /// REST: the caller's HTTP method (the agent gets the same).
    http_method: http::Method,
}

/// An error in answering a call, with the JSON-RPC id it answers (`null` before it is known).
type CallError = Box<(A2aError, Value)>;

/// Serves an A2A call: JSON-RPC when `sub` is `None` (a POST to the agent's URL), else the REST
/// route `sub` below it. Identification, the agent, the body and the binding's own checks come
/// first; then [`forward`].
async fn serve_call<B>(
    rt: &AgentRuntime,
    shared: &Arc<Shared>,
    agent: &str,
    sub: Option<&str>,
    req: Request<B>,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let binding = if sub.is_some() { Binding::Rest } else { Binding::JsonRpc };
    let (parts, body) = req.into_parts();
    let (tp, trace_id) = traceparent(&parts.headers);
    let mut audit = audit_for(rt, agent, "unknown", binding, trace_id);
    let result: Result<(&A2aAgentConfig, Call), CallError> = async {
        let null = |e: A2aError| Box::new((e, Value::Null));
        audit.subject = Arc::from(caller(rt, &parts.headers).await.map_err(null)?);
        let agent_cfg =
            rt.agents.get(agent).ok_or_else(|| null(A2aError::UnknownAgent(agent.to_string())))?;
        let call = match sub {
            None => {
                let bytes = read_body(body, rt.max_body).await.map_err(null)?;
                let call = jsonrpc_call(bytes)?;
                audit.method = call.method.as_str();
                method::version(&parts.headers).map_err(|e| Box::new((e, call.rpc_id.clone())))?;
                call
            }
            Some(sub) => {
                let RestRoute { method: m, task_id } =
                    method::rest_route(&parts.method, sub).ok_or_else(|| {
                        null(A2aError::NotFound(format!("{} /agents/{agent}{sub}", parts.method)))
                    })?;
                audit.method = m.as_str();
                method::version(&parts.headers).map_err(null)?;
                let bytes = read_body(body, rt.max_body).await.map_err(null)?;
                let rest_path = match parts.uri.query() {
                    Some(q) => format!("{sub}?{q}"),
                    None => sub.to_string(),
                };
                rest_call(m, task_id, bytes, rest_path, parts.method.clone()).map_err(null)?
            }
        };
        if call.method.sends() && !call.facts.message_is_object {
            let field = if sub.is_some() { "'message'" } else { "'params.message'" };
            return Err(Box::new((
                A2aError::InvalidParams(format!("{field} must be an object")),
                call.rpc_id,
            )));
        }
        Ok((agent_cfg, call))
    }
    .await;
    match result {
        Ok((agent_cfg, call)) => forward(rt, shared, agent_cfg, call, &parts.headers, tp, audit).await,
        Err(b) => fail(shared, audit, b.0, binding, &b.1),
    }
}

/// A JSON-RPC request: envelope checks (`jsonrpc`, `id`, `method`, `params`), the method and
/// the fields of its params the gateway reads ([`view`]); the body itself is forwarded as it came.
fn jsonrpc_call(bytes: Bytes) -> Result<Call, CallError> {
    let mut env = match view::request(&bytes) {
        Ok(env) => env,
        Err(RequestError::Parse(e)) => return Err(Box::new((A2aError::Parse(e), Value::Null))),
        Err(RequestError::NotAnObject { batch }) => {
            let what = if batch {
                "batch requests are not supported by A2A"
            } else {
                "the request must be a JSON object"
            };
            return Err(Box::new((A2aError::InvalidRequest(what.into()), Value::Null)));
        }
        Err(RequestError::Envelope(e)) => {
            return Err(Box::new((A2aError::InvalidRequest(e), Value::Null)));
        }
        Err(RequestError::Params(e, id)) => {
            let id = id.filter(|i| i.is_string() || i.is_i64() || i.is_u64()).unwrap_or(Value::Null);
            return Err(Box::new((A2aError::InvalidParams(format!("'params': {e}")), id)));
        }
    };
    let id: Value = env.id.take().unwrap_or(Value::Null);
    let id_ok = match &id {
        Value::String(_) => true,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    };
    if !id_ok {
        return Err(Box::new((
            A2aError::InvalidRequest("'id' must be a string or an integer".into()),
            Value::Null,
        )));
    }
    let bad = |e: A2aError| Err(Box::new((e, id.clone())));
    if !env.version_ok() {
        return bad(A2aError::InvalidRequest("'jsonrpc' must be \"2.0\"".into()));
    }
    let Some(name) = env.method() else {
        return bad(A2aError::InvalidRequest("'method' must be a string".into()));
    };
    let Some((m, _)) = Method::from_jsonrpc(&name) else {
        return bad(A2aError::MethodNotFound(name));
    };
    let facts = match env.params {
        ParamsField::Absent | ParamsField::Null => Params::default().facts(m),
        ParamsField::Object(p) => p.facts(m),
        ParamsField::Other => return bad(A2aError::InvalidParams("'params' must be an object".into())),
    };
    if m.on_task() && facts.task_id.is_none() {
        return bad(A2aError::InvalidParams(
            "the task id is required ('params.id', or 'params.taskId')".into(),
        ));
    }
    Ok(Call {
        binding: Binding::JsonRpc,
        method: m,
        rpc_id: id,
        task_id: facts.task_id.clone(),
        facts,
        body: bytes,
        rest_path: String::new(),
        http_method: http::Method::POST,
    })
}

/// A REST request: the body of route `m` (empty for most reads, a JSON object otherwise).
fn rest_call(
    m: Method,
    task_id: Option<String>,
    bytes: Bytes,
    rest_path: String,
    http_method: http::Method,
) -> Result<Call, A2aError> {
    let facts = if bytes.iter().all(u8::is_ascii_whitespace) {
        if m.sends() {
            return Err(A2aError::InvalidParams(
                "the request body must be a JSON object with 'message'".into(),
            ));
        }
        CallFacts::default()
    } else {
        match view::rest_params(&bytes) {
            Ok(p) => p.facts(m),
            Err(e) if !e.is_data() => return Err(A2aError::Parse(e.to_string())),
            Err(_) if !bytes.trim_ascii_start().starts_with(b"{") => {
                return Err(A2aError::InvalidParams("the request body must be a JSON object".into()));
            }
            Err(e) => return Err(A2aError::InvalidParams(e.to_string())),
        }
    };
    Ok(Call {
        binding: Binding::Rest,
        method: m,
        rpc_id: Value::Null,
        facts,
        task_id,
        body: bytes,
        rest_path,
        http_method,
    })
}

fn fail(shared: &Shared, mut audit: Audit, e: A2aError, binding: Binding, id: &Value) -> Response<Body> {
    audit.fail(&e, binding);
    audit.finish(shared);
    e.response(binding, id)
}

/// Counts a store error in `cairn_store_errors_total`.
fn store_error(shared: &Shared, gateway: &str, store: &Store) {
    shared
        .metrics
        .store_errors
        .get_or_create(&crate::gateway::metrics::GatewayLabels {
            gateway: gateway.to_string(),
            kind: store.kind().to_string(),
        })
        .inc();
}

/// The owner of a task, from the gateway's store.
async fn owner_of(
    rt: &AgentRuntime,
    shared: &Shared,
    agent: &str,
    task: &str,
) -> Result<Option<Owner>, A2aError> {
    let ttl = Duration::from_millis(rt.layer.task_ownership_ttl_ms);
    owners::get(&rt.store, &rt.store_prefix, &owners::key(&rt.gateway, agent, task), ttl).await.map_err(|e| {
        store_error(shared, &rt.gateway, &rt.store);
        A2aError::StoreUnavailable(format!("task ownership cannot be checked: {}", e.0))
    })
}

/// The task's owner if it is `subject`; TaskNotFound otherwise (also for tasks never seen).
async fn owned_by(
    rt: &AgentRuntime,
    shared: &Shared,
    agent: &str,
    task: &str,
    subject: &str,
) -> Result<Owner, A2aError> {
    match owner_of(rt, shared, agent, task).await? {
        Some(o) if o.subject == subject => Ok(o),
        _ => Err(A2aError::TaskNotFound(task.to_string())),
    }
}

/// Records `owner` for a task the call revealed (the first claim wins).
async fn claim(rt: &AgentRuntime, shared: &Shared, agent: &str, task: &str, owner: &Owner) {
    let ttl = Duration::from_millis(rt.layer.task_ownership_ttl_ms);
    let key = owners::key(&rt.gateway, agent, task);
    if let Err(e) = owners::claim(&rt.store, &rt.store_prefix, &key, owner, ttl).await {
        store_error(shared, &rt.gateway, &rt.store);
        tracing::warn!(gateway = %rt.gateway, agent, task, error = %e, "recording the task's owner failed");
    }
}

/// Policy, ownership, limits and webhook checks of a call; returns the owner record for tasks the
/// call creates (caller and skill).
async fn authorize(
    rt: &AgentRuntime,
    shared: &Shared,
    agent: &str,
    call: &Call,
    audit: &mut Audit,
) -> Result<Owner, A2aError> {
    let subject = audit.subject.to_string();
    let mut skill = None;
    let decision = if call.method.sends() {
        skill = call.facts.skill.clone();
        if let Some(t) = &call.facts.message_task_id {
            audit.task_id = Some(t.clone());
            let o = owned_by(rt, shared, agent, t, &subject).await?;
            skill = skill.or(o.skill);
        }
        audit.skill = skill.clone();
        Some(rt.policy.check_agent(&subject, agent, skill.as_deref()))
    } else if call.method.on_task() {
        let t = call.task_id.clone().unwrap_or_default();
        audit.task_id = Some(t.clone());
        let o = owned_by(rt, shared, agent, &t, &subject).await?;
        skill = o.skill;
        audit.skill = skill.clone();
        Some(rt.policy.check_agent(&subject, agent, skill.as_deref()))
    } else {
        None
    };
    let limits: Vec<LimitReq> = match decision {
        Some(Decision::Deny(d)) => return Err(A2aError::Forbidden(d.to_string())),
        Some(Decision::Allow(a)) => a
            .limits()
            .filter_map(|l| {
                l.limits.requests_per_minute.map(|rpm| LimitReq {
                    key: l.key.to_string(),
                    rpm: Some(rpm),
                    tpm: None,
                })
            })
            .collect(),
        None => {
            if !may_use(&rt.policy, &subject, agent) {
                return Err(match rt.policy.check_agent(&subject, agent, None) {
                    Decision::Deny(d) => A2aError::Forbidden(d.to_string()),
                    Decision::Allow(_) => {
                        A2aError::Forbidden(format!("caller '{subject}' may not use agent '{agent}'"))
                    }
                });
            }
            vec![]
        }
    };
    if !limits.is_empty() {
        match rt.store.admit(&rt.store_prefix, unix_now(), &limits, &[]).await {
            Ok(Admission::Allowed) => {}
            Ok(Admission::RateLimited { key, what, limit, retry_after }) => {
                return Err(A2aError::RateLimited {
                    message: format!("rate limit of {limit} {what} per minute reached ({key})"),
                    retry_after,
                });
            }
            Ok(Admission::OverBudget { key }) => {
                return Err(A2aError::RateLimited {
                    message: format!("budget {key} is spent"),
                    retry_after: 60,
                });
            }
            Err(e) => {
                store_error(shared, &rt.gateway, &rt.store);
                if rt.failure_mode != Some(FailureMode::Open) {
                    return Err(A2aError::StoreUnavailable(e.to_string()));
                }
                tracing::warn!(gateway = %rt.gateway, error = %e, "limits store unavailable; failing open");
            }
        }
    }
    for url in &call.facts.webhook_urls {
        check_webhook(url, &rt.layer).await.map_err(A2aError::InvalidParams)?;
    }
    Ok(Owner { subject, skill })
}

/// The agent's endpoints, from its card when it can be had: the cached card as it is (cards are
/// revalidated when they are served, not on every call), else a fetch.
async fn endpoints(shared: &Shared, agent: &A2aAgentConfig) -> Arc<Endpoints> {
    let url = AgentRuntime::card_url(agent);
    if let Some(e) = shared.agent.cards.peek_endpoints(&url) {
        return e;
    }
    let client = shared.clients.get(CONNECT_TIMEOUT_MS);
    // Boxed: a card fetch is rare and its future large.
    match Box::pin(shared.agent.cards.get(&client, &agent.name, &url)).await {
        Ok(c) => Arc::new(card::endpoints(&c, &agent.url)),
        Err(_) => Arc::default(),
    }
}

fn identity_token(
    rt: &AgentRuntime,
    subject: &str,
    agent: &str,
    owner: &Owner,
    task: Option<&str>,
) -> String {
    let now = unix_now();
    let ttl = rt.layer.identity_token_ttl_ms.div_ceil(1000).max(1);
    let key = (subject.to_string(), agent.to_string(), task.map(str::to_string), owner.skill.clone());
    // A token is reused for the first half of its lifetime (signing costs more than the rest of
    // the hop); the callee always gets at least half the configured lifetime. Sound because the
    // claims are exactly the key (caller, agent, task, skill) plus times and a `jti`: a reused
    // token says nothing the new call would not. The algorithm stays ES256 rather than a cheaper
    // one: HS256 would need a secret shared with every agent (not verifiable from the JWKS), and
    // EdDSA, though cheaper, is not accepted by every JWT library agents use; with reuse, signing
    // happens once per key and half-lifetime, not per call.
    let reuse_until = |exp: u64| exp.saturating_sub(ttl.div_ceil(2));
    {
        let cache = rt.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, exp)) = cache.get(&key)
            && now < reuse_until(*exp)
        {
            return token.clone();
        }
    }
    let mut claims = json!({
        "iss": rt.issuer,
        "sub": subject,
        "aud": agent,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": random_hex(16),
        "gateway": rt.gateway,
        "agent": agent,
    });
    if let Some(t) = task {
        claims["task_id"] = Value::String(t.to_string());
    }
    if let Some(s) = &owner.skill {
        claims["skill"] = Value::String(s.clone());
    }
    let token = rt.signer.jwt(&claims);
    let mut cache = rt.tokens.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= TOKEN_CACHE_ENTRIES {
        cache.retain(|_, (_, exp)| now < reuse_until(*exp));
        if cache.len() >= TOKEN_CACHE_ENTRIES {
            cache.clear();
        }
    }
    cache.insert(key, (token.clone(), now + ttl));
    token
}

/// Most identity tokens kept for reuse per config version.
const TOKEN_CACHE_ENTRIES: usize = 10_000;

/// Headers passed from the caller to the agent; everything else (credentials, cookies,
/// hop-by-hop headers) stays at the gateway.
const FORWARD_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("a2a-version"),
    HeaderName::from_static("a2a-extensions"),
    header::ACCEPT_LANGUAGE,
    HeaderName::from_static("tracestate"),
    header::USER_AGENT,
];
/// Headers passed from the agent to the caller besides `content-type`.
const RETURN_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("a2a-version"),
    HeaderName::from_static("a2a-extensions"),
    header::CACHE_CONTROL,
];
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

#[allow(clippy::too_many_arguments)]
async fn forward(
    rt: &AgentRuntime,
    shared: &Arc<Shared>,
    agent: &A2aAgentConfig,
    call: Call,
    headers: &HeaderMap,
    traceparent: String,
    mut audit: Audit,
) -> Response<Body> {
    let binding = call.binding;
    let owner = match authorize(rt, shared, &agent.name, &call, &mut audit).await {
        Ok(o) => o,
        Err(e) => return fail(shared, audit, e, binding, &call.rpc_id),
    };
    let ep = endpoints(shared, agent).await;
    let target = match binding {
        Binding::JsonRpc => match &ep.jsonrpc_target {
            Some(t) => Ok(t.clone()),
            None => card::target(&agent.url),
        },
        Binding::Rest => card::target(&format!(
            "{}{}",
            ep.rest.as_deref().unwrap_or(&agent.url).trim_end_matches('/'),
            call.rest_path
        )),
    };
    let (uri, host) = match target {
        Ok(t) => t,
        Err(detail) => {
            let e = A2aError::Unreachable {
                agent: agent.name.clone(),
                detail: format!("bad upstream request: {detail}"),
            };
            return fail(shared, audit, e, binding, &call.rpc_id);
        }
    };
    let mut up = Request::new(Full::new(call.body.clone()));
    *up.method_mut() = match binding {
        Binding::JsonRpc => http::Method::POST,
        Binding::Rest => call.http_method.clone(),
    };
    *up.uri_mut() = uri;
    let h = up.headers_mut();
    h.reserve(10);
    h.insert(header::HOST, host);
    for name in &FORWARD_HEADERS {
        for v in headers.get_all(name) {
            h.append(name.clone(), v.clone());
        }
    }
    if !call.body.is_empty() {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json"));
        h.insert(header::CONTENT_TYPE, content_type);
    }
    let accept = match (headers.get(header::ACCEPT), call.method.streams()) {
        (Some(a), _) => a.clone(),
        (None, true) => HeaderValue::from_static("text/event-stream"),
        (None, false) => HeaderValue::from_static("application/json"),
    };
    h.insert(header::ACCEPT, accept);
    if let Ok(tp) = HeaderValue::from_str(&traceparent) {
        h.insert(TRACEPARENT, tp);
    }
    let token = identity_token(rt, &audit.subject, &agent.name, &owner, audit.task_id.as_deref());
    match HeaderValue::from_str(&token) {
        Ok(t) => h.insert(rt.token_header.clone(), t),
        Err(e) => {
            let e = A2aError::Unreachable {
                agent: agent.name.clone(),
                detail: format!("bad upstream request: {e}"),
            };
            return fail(shared, audit, e, binding, &call.rpc_id);
        }
    };
    let client = shared.clients.get(CONNECT_TIMEOUT_MS);
    let resp = match tokio::time::timeout(RESPONSE_TIMEOUT, client.request(up)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let e = A2aError::Unreachable { agent: agent.name.clone(), detail: error_chain(&e) };
            return fail(shared, audit, e, binding, &call.rpc_id);
        }
        Err(_) => {
            let e = A2aError::Unreachable { agent: agent.name.clone(), detail: "no response in time".into() };
            return fail(shared, audit, e, binding, &call.rpc_id);
        }
    };
    let (parts, body) = resp.into_parts();
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
    let mut out = Response::builder().status(parts.status);
    for name in std::iter::once(&header::CONTENT_TYPE).chain(&RETURN_HEADERS) {
        for v in parts.headers.get_all(name) {
            out = out.header(name, v);
        }
    }
    audit.status = parts.status.as_u16();
    if is_sse {
        out = out.header("x-accel-buffering", "no");
        if !parts.headers.contains_key(header::CACHE_CONTROL) {
            out = out.header(header::CACHE_CONTROL, "no-cache");
        }
        if !parts.status.is_success() {
            audit.outcome = "agent_error";
        }
        let relay = Relay {
            inner: body,
            parser: SseParser::default(),
            scratch: Vec::new(),
            ctx: Some(StreamCtx {
                shared: shared.clone(),
                gateway: rt.gateway.clone(),
                agent: agent.name.clone(),
                owner,
                ttl: Duration::from_millis(rt.layer.task_ownership_ttl_ms),
                store: rt.store.clone(),
                prefix: rt.store_prefix.clone(),
                claims: call.method.sends() && audit.task_id.is_none(),
                binding,
                rpc_id: call.rpc_id.clone(),
                audit,
            }),
            done: false,
            held: None,
            pending: None,
        };
        return out.body(relay.boxed()).unwrap_or_else(|_| Response::new(full("")));
    }
    let bytes = match Limited::new(body, MAX_RESPONSE_BYTES).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let e = A2aError::InvalidAgentResponse {
                agent: agent.name.clone(),
                detail: format!("reading the answer failed: {e}"),
            };
            return fail(shared, audit, e, binding, &call.rpc_id);
        }
    };
    let rpc = binding == Binding::JsonRpc;
    let Ok(facts) = view::answer_facts(rpc, &bytes) else {
        let detail = format!("HTTP {} with a body that is not JSON", parts.status.as_u16());
        let e = A2aError::InvalidAgentResponse { agent: agent.name.clone(), detail };
        return fail(shared, audit, e, binding, &call.rpc_id);
    };
    // The answer proper: a JSON-RPC result, or a successful REST body.
    let answered = match (&facts.error, rpc) {
        (Some(message), true) => {
            audit.outcome = "agent_error";
            audit.error = message.clone();
            false
        }
        (None, true) => facts.has_result,
        (_, false) if parts.status.is_success() => true,
        (message, false) => {
            audit.outcome = "agent_error";
            audit.error = message.clone().flatten();
            false
        }
    };
    let mut body = bytes;
    if answered {
        if call.method.sends()
            && audit.task_id.is_none()
            && let Some(t) = facts.task_id
        {
            claim(rt, shared, &agent.name, &t, &owner).await;
            audit.task_id = Some(t);
        }
        if matches!(call.method, Method::ListTasks | Method::GetExtendedAgentCard) {
            // The two answers the gateway rewrites: only here is the answer built as a document.
            // (It was read as JSON above; never relay it unfiltered should building it fail.)
            let mut v = match serde_json::from_slice::<Value>(&body) {
                Ok(v) => v,
                Err(e) => {
                    let detail = format!("the answer cannot be read: {e}");
                    let e = A2aError::InvalidAgentResponse { agent: agent.name.clone(), detail };
                    return fail(shared, audit, e, binding, &call.rpc_id);
                }
            };
            let answer = if rpc { v.get_mut("result") } else { Some(&mut v) };
            if let Some(answer) = answer {
                match call.method {
                    Method::ListTasks => {
                        let ids: Vec<String> = answer
                            .get("tasks")
                            .or(Some(&*answer))
                            .and_then(Value::as_array)
                            .map(|ts| {
                                ts.iter().filter_map(|t| t.get("id")?.as_str().map(str::to_string)).collect()
                            })
                            .unwrap_or_default();
                        let checks = ids.iter().map(|t| owned_by(rt, shared, &agent.name, t, &audit.subject));
                        let mut mine = std::collections::HashSet::new();
                        for (t, r) in ids.iter().zip(futures_util::future::join_all(checks).await) {
                            match r {
                                Ok(_) => {
                                    mine.insert(t.clone());
                                }
                                Err(A2aError::TaskNotFound(_)) => {}
                                Err(e) => return fail(shared, audit, e, binding, &call.rpc_id),
                            }
                        }
                        filter_tasks(answer, |t| mine.contains(t));
                    }
                    _ if answer.is_object() => {
                        let base = public_base(headers, &http::Uri::default());
                        let visible = visible_skills(&rt.policy, &audit.subject, &agent.name, answer);
                        *answer = publish_card(rt, answer, &agent.name, &base, &visible).1;
                    }
                    _ => {}
                }
                body = Bytes::from(v.to_string());
            }
        }
    }
    audit.finish(shared);
    out.body(full(body)).unwrap_or_else(|_| Response::new(full("")))
}

/// Keeps only the tasks `keep` accepts in a ListTasks answer; `totalSize` becomes the number kept.
fn filter_tasks(answer: &mut Value, keep: impl Fn(&str) -> bool) {
    if let Some(Value::Array(tasks)) = answer.get_mut("tasks") {
        tasks.retain(|t| t.get("id").and_then(Value::as_str).is_some_and(&keep));
        let n = tasks.len();
        if answer.get("totalSize").is_some() {
            answer["totalSize"] = json!(n);
        }
    } else if let Value::Array(tasks) = answer {
        tasks.retain(|t| t.get("id").and_then(Value::as_str).is_some_and(&keep));
    }
}

/// The indices of the card's skills `subject` may invoke on `agent` (a skill without an `id` only
/// with a grant without a skill list, as a call naming no skill).
fn visible_skills(policy: &PolicyIndex, subject: &str, agent: &str, card: &Value) -> Vec<usize> {
    let Some(skills) = card.get("skills").and_then(Value::as_array) else { return vec![] };
    skills
        .iter()
        .enumerate()
        .filter(|(_, s)| policy.check_agent(subject, agent, s.get("id").and_then(Value::as_str)).is_allowed())
        .map(|(i, _)| i)
        .collect()
}

/// A card as published: rewritten, only the skills at `visible`, its ETag (over the unsigned
/// form), and signed.
fn publish_card(
    rt: &AgentRuntime,
    upstream: &Value,
    agent: &str,
    base: &str,
    visible: &[usize],
) -> (String, Value) {
    let mut unsigned = card::rewrite(upstream, &format!("{base}/agents/{agent}"), &rt.config.auth);
    card::keep_skills(&mut unsigned, visible);
    let etag = card::etag(&unsigned);
    (etag, card::sign(unsigned, &rt.signer, &format!("{base}/.well-known/jwks.json")))
}

/// [`publish_card`] of the agent's cached card for `subject`, signed once per (agent, public
/// base, visible skills) and card version, not per caller or call: callers that see the same
/// skills share one signed card.
fn published_card(
    rt: &AgentRuntime,
    upstream: &Arc<Value>,
    agent: &str,
    base: &str,
    subject: &str,
) -> Arc<(String, Value)> {
    let key = (agent.to_string(), base.to_string(), visible_skills(&rt.policy, subject, agent, upstream));
    {
        let cache = rt.signed_cards.lock().unwrap_or_else(|e| e.into_inner());
        // Same card version: the same `Arc` (the card cache replaces it when the card changes).
        if let Some((card, published)) = cache.get(&key)
            && Arc::ptr_eq(card, upstream)
        {
            return published.clone();
        }
    }
    let published = Arc::new(publish_card(rt, upstream, agent, base, &key.2));
    let mut cache = rt.signed_cards.lock().unwrap_or_else(|e| e.into_inner());
    // The public base comes from the request's Host: bound what callers can make us keep.
    if cache.len() >= super::SIGNED_CARD_ENTRIES {
        cache.clear();
    }
    cache.insert(key, (upstream.clone(), published.clone()));
    published
}

async fn serve_card<B>(rt: &AgentRuntime, shared: &Shared, agent: &str, req: Request<B>) -> Response<Body> {
    let (_, trace_id) = traceparent(req.headers());
    let mut audit = audit_for(rt, agent, "card", Binding::Rest, trace_id);
    let subject = match caller(rt, req.headers()).await {
        Ok(s) => s,
        Err(e) => return fail(shared, audit, e, Binding::Rest, &Value::Null),
    };
    audit.subject = Arc::from(subject.as_str());
    let Some(cfg) = rt.agents.get(agent).filter(|_| may_use(&rt.policy, &subject, agent)) else {
        return fail(shared, audit, A2aError::UnknownAgent(agent.to_string()), Binding::Rest, &Value::Null);
    };
    let client = shared.clients.get(CONNECT_TIMEOUT_MS);
    let upstream = match shared.agent.cards.get(&client, agent, &AgentRuntime::card_url(cfg)).await {
        Ok(c) => c,
        Err(e) => return card_error(shared, audit, &e),
    };
    let base = public_base(req.headers(), req.uri());
    let published = published_card(rt, &upstream, agent, &base, &subject);
    let (etag, signed) = (&published.0, &published.1);
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if not_modified {
        audit.status = 304;
        let mut r = Response::new(full(""));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        json_response(StatusCode::OK, signed)
    };
    if let Ok(v) = HeaderValue::from_str(etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=30"));
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Authorization, Host"));
    audit.finish(shared);
    resp
}

fn card_error(shared: &Shared, mut audit: Audit, e: &CardError) -> Response<Body> {
    audit.outcome = e.category();
    audit.status = 502;
    audit.error = Some(e.to_string());
    audit.finish(shared);
    json_response(StatusCode::BAD_GATEWAY, &e.body())
}

async fn directory<B>(rt: &AgentRuntime, shared: &Shared, req: Request<B>) -> Response<Body> {
    let (_, trace_id) = traceparent(req.headers());
    let mut audit = audit_for(rt, "", "directory", Binding::Rest, trace_id);
    let subject = match caller(rt, req.headers()).await {
        Ok(s) => s,
        Err(e) => return fail(shared, audit, e, Binding::Rest, &Value::Null),
    };
    audit.subject = Arc::from(subject.as_str());
    let base = public_base(req.headers(), req.uri());
    let client = shared.clients.get(CONNECT_TIMEOUT_MS);
    let mut visible: Vec<&A2aAgentConfig> =
        rt.agents.values().filter(|a| may_use(&rt.policy, &subject, &a.name)).collect();
    visible.sort_by(|a, b| a.name.cmp(&b.name));
    let fetches = visible.iter().map(|a| {
        let client = client.clone();
        async move { (*a, shared.agent.cards.get(&client, &a.name, &AgentRuntime::card_url(a)).await) }
    });
    let mut agents = Vec::new();
    for (a, card) in futures_util::future::join_all(fetches).await {
        let url = format!("{base}/agents/{}", a.name);
        let mut entry = json!({"name": a.name, "url": url});
        if let Some(d) = &a.description {
            entry["description"] = json!(d);
        }
        match card {
            Ok(c) => entry["card"] = published_card(rt, &c, &a.name, &base, &subject).1.clone(),
            Err(e) => entry["error"] = json!(e.to_string()),
        }
        agents.push(entry);
    }
    audit.finish(shared);
    let mut resp = json_response(StatusCode::OK, &json!({"agents": agents}));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    resp
}

/// What a relayed stream needs when it inspects events and when it ends.
struct StreamCtx {
    shared: Arc<Shared>,
    gateway: String,
    agent: String,
    owner: Owner,
    ttl: Duration,
    /// Where task owners are kept, and the key prefix there.
    store: Store,
    prefix: String,
    /// Whether the first task id seen is claimed for the caller.
    claims: bool,
    binding: Binding,
    rpc_id: Value,
    audit: Audit,
}

/// A claim in Redis that must finish before the event revealing the task is relayed.
type PendingClaim = tokio::task::JoinHandle<Result<Owner, StoreError>>;

impl StreamCtx {
    fn inspect(&mut self, ev: &SseEvent) -> Option<PendingClaim> {
        // Once the task is known only errors matter, and an event without the bytes `"error"`
        // has none: most events are relayed without being parsed.
        if self.audit.task_id.is_some() && !ev.data.contains("\"error\"") {
            return None;
        }
        let rpc = self.binding == Binding::JsonRpc;
        let Ok(facts) = view::answer_facts(rpc, ev.data.as_bytes()) else { return None };
        if let Some(message) = facts.error {
            self.audit.outcome = "agent_error";
            if rpc {
                self.audit.error = message;
            }
            return None;
        }
        let t = facts.task_id.filter(|_| self.audit.task_id.is_none())?;
        self.audit.task_id = Some(t.clone());
        if !self.claims {
            return None;
        }
        let (store, prefix, owner, ttl) =
            (self.store.clone(), self.prefix.clone(), self.owner.clone(), self.ttl);
        let key = owners::key(&self.gateway, &self.agent, &t);
        let claim = async move { owners::claim(&store, &prefix, &key, &owner, ttl).await };
        if let Store::Memory(_) = &self.store {
            // The memory store answers without waiting: no task, no held event.
            return match claim.now_or_never() {
                Some(Ok(_)) | None => None,
                Some(Err(e)) => {
                    tracing::warn!(gateway = %self.gateway, agent = %self.agent, error = %e, "recording the task's owner failed");
                    None
                }
            };
        }
        Some(tokio::spawn(claim))
    }
}

/// Relays an agent's SSE body to the caller frame by frame, unchanged, inspecting the events on
/// the way (task ids for ownership, errors for the audit). A stream that breaks ends with one
/// error event in the caller's binding.
struct Relay {
    inner: Incoming,
    parser: SseParser,
    scratch: Vec<SseEvent>,
    ctx: Option<StreamCtx>,
    done: bool,
    /// A data frame held back until `pending` finishes.
    held: Option<Bytes>,
    pending: Option<PendingClaim>,
}

impl Relay {
    fn finish(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            ctx.audit.finish(&ctx.shared);
        }
    }
}

impl hyper::body::Body for Relay {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        loop {
            if let Some(p) = this.pending.as_mut() {
                let done = match Pin::new(p).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                };
                this.pending = None;
                let done = done.unwrap_or_else(|e| Err(StoreError(e.to_string())));
                if let (Err(e), Some(ctx)) = (done, this.ctx.as_ref()) {
                    store_error(&ctx.shared, &ctx.gateway, &ctx.store);
                    tracing::warn!(gateway = %ctx.gateway, agent = %ctx.agent, error = %e, "recording the task's owner failed");
                }
            }
            if let Some(data) = this.held.take() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers are not relayed.
                    let Ok(data) = frame.into_data() else { continue };
                    this.scratch.clear();
                    if this.parser.push_into(&data, &mut this.scratch).is_ok()
                        && let Some(ctx) = this.ctx.as_mut()
                    {
                        for ev in &this.scratch {
                            if let Some(p) = ctx.inspect(ev) {
                                this.pending = Some(p);
                            }
                        }
                    }
                    this.held = Some(data);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    let event = match this.ctx.as_mut() {
                        Some(ctx) => {
                            let err = A2aError::Unreachable {
                                agent: ctx.agent.clone(),
                                detail: format!("the event stream broke: {}", error_chain(&e)),
                            };
                            ctx.audit.outcome = "upstream_broken";
                            ctx.audit.error = Some(err.to_string());
                            err.stream_event(ctx.binding, &ctx.rpc_id)
                        }
                        None => Bytes::new(),
                    };
                    this.finish();
                    return Poll::Ready(Some(Ok(Frame::data(event))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    this.finish();
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.held.is_none()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.as_mut()
            && !self.done
        {
            ctx.audit.outcome = "client_gone";
        }
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_continued_or_started() {
        let mut h = HeaderMap::new();
        let (tp, trace) = traceparent(&h);
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!((parts[0], parts[1], parts[3]), ("00", trace.as_str(), "01"));
        assert_eq!(parts[2].len(), 16);
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let (tp, trace) = traceparent(&h);
        assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!tp.contains("00f067aa0ba902b7"), "a new parent id");
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        );
        assert_ne!(traceparent(&h).1, "00000000000000000000000000000000");
    }

    #[test]
    fn list_answers_keep_only_the_callers_tasks() {
        let mut v =
            json!({"tasks": [{"id": "a"}, {"id": "b"}, {"id": "c"}], "totalSize": 3, "nextPageToken": ""});
        filter_tasks(&mut v, |t| t != "b");
        assert_eq!(v["tasks"], json!([{"id": "a"}, {"id": "c"}]));
        assert_eq!(v["totalSize"], 2);
    }

    #[test]
    fn public_base_prefers_forwarded_headers() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("gw:8080"));
        assert_eq!(public_base(&h, &http::Uri::default()), "http://gw:8080");
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-host", HeaderValue::from_static("agents.example.com"));
        assert_eq!(public_base(&h, &http::Uri::default()), "https://agents.example.com");
        h.insert("x-forwarded-host", HeaderValue::from_static("evil/x"));
        assert_eq!(public_base(&h, &http::Uri::default()), "https://gw:8080");
    }
}
