//! The request path of the AI gateway: identify → read and check the body → policy → route →
//! limits and budgets → attempts with retries and fallback → relay (whole or streamed) →
//! accounting (tokens, cost, budgets, metrics, access log).

use super::cache::{CacheKey, CachedResponse, cache_key, cacheable};
use super::error::{AiError, Body, Front, full};
use super::guardrails::Direction;
use super::routing::{RuleRt, TargetRt, all_ejected, exact_models, find_rule, order_group};
use super::sse::{SseEvent, SseParser};
use super::state::AiRuntime;
use super::translate::{self, ChatToMessagesStream, MessagesToChatStream};
use super::upstream::{Op, SendError, UpBody, UpResponse, send, upstream_op};
use super::usage::{
    StreamKind, StreamUsage, Usage, answer_usage, cost_micro_usd, count_tokens, estimate_request_tokens,
};
use crate::config::{BudgetAction, FailureMode, FallbackOn};
use crate::gateway::access_log::Record;
use crate::gateway::server::{self, BodyError};
use crate::gateway::state::Shared;
use crate::gateway::store::{Admission, BudgetReq, LimitReq, SpendRecord};
use crate::policy::{Decision, window_end};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Request bodies when the config sets no limit.
const DEFAULT_MAX_BODY: u64 = 10 << 20;
/// Largest upstream body read whole (non-streaming answers, error bodies).
const MAX_UPSTREAM_BODY: usize = 64 << 20;

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The fields of a request body read on every request; the rest is checked to be JSON and
/// skipped (the whole document is built only when something needs it).
#[derive(serde::Deserialize)]
struct Head {
    #[serde(default)]
    model: Option<Value>,
    #[serde(default)]
    stream: Option<Value>,
    /// `Some(Value::Null)` for an explicit `null`, `None` when absent.
    #[serde(default, deserialize_with = "present")]
    stream_options: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    <Value as serde::Deserialize>::deserialize(d).map(Some)
}

impl Head {
    fn of(doc: &Value) -> Head {
        Head {
            model: doc.get("model").cloned(),
            stream: doc.get("stream").cloned(),
            stream_options: doc.get("stream_options").cloned(),
        }
    }

    /// Whether the client asked for a usage chunk itself.
    fn asked_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.get("include_usage")).and_then(Value::as_bool)
            == Some(true)
    }
}

/// A request body while the request is admitted: as received, its head, and the whole document
/// once guardrails or the cache needed it.
struct Prompt {
    /// As received; `None` once guardrails changed the document.
    original: Option<Bytes>,
    head: Head,
    doc: Option<Value>,
}

impl Prompt {
    /// Reads the head; a body that is not a JSON object is refused in the caller's format.
    fn parse(bytes: Bytes) -> Result<Prompt, AiError> {
        // (A struct would also read a JSON array, field by field: only an object gets this far.)
        let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        match serde_json::from_slice::<Head>(&bytes).ok().filter(|_| object) {
            Some(head) => Ok(Prompt { original: Some(bytes), head, doc: None }),
            // Not an object, or a repeated key: the document decides (its error is the one the
            // client gets; a repeated key counts last, as in the document).
            None => {
                let doc: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|e| {
                    AiError::BadRequest(format!("We could not parse the JSON body of your request: {e}"))
                })?;
                let doc = Value::Object(doc);
                Ok(Prompt { original: Some(bytes), head: Head::of(&doc), doc: Some(doc) })
            }
        }
    }

    fn doc_mut(&mut self) -> &mut Value {
        let original = &self.original;
        self.doc.get_or_insert_with(|| document(original.as_deref()))
    }

    fn into_shared(self) -> SharedPrompt {
        SharedPrompt {
            asked_usage: self.head.asked_usage(),
            stream_options_absent: self.head.stream_options.is_none(),
            original: self.original,
            doc: self.doc.map(std::sync::OnceLock::from).unwrap_or_default(),
        }
    }
}

/// The whole document of a body already read as a JSON object (an empty object otherwise).
fn document(bytes: Option<&[u8]>) -> Value {
    bytes.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_else(|| Value::Object(Map::new()))
}

/// `object` (the bytes of a JSON object) with one more member before its closing brace, the rest
/// copied as it is. `None` when it does not end with `}`.
fn with_member(object: &[u8], member: &str) -> Option<Bytes> {
    let end = object.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if object[end] != b'}' {
        return None;
    }
    // No member can end with `{`: the object is empty exactly when `{` comes right before.
    let empty =
        object[..end].iter().rposition(|b| !b.is_ascii_whitespace()).is_some_and(|i| object[i] == b'{');
    let mut out = Vec::with_capacity(object.len() + member.len() + 1);
    out.extend_from_slice(&object[..end]);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(member.as_bytes());
    out.extend_from_slice(&object[end..]);
    Some(out.into())
}

/// A request body during its attempts: the whole document is built on first use.
struct SharedPrompt {
    /// As received, when the guardrails left it alone: sent upstream as it is when nothing needs
    /// rewriting.
    original: Option<Bytes>,
    /// The client asked for a usage chunk (`stream_options.include_usage`).
    asked_usage: bool,
    /// The body has no `stream_options` key at all.
    stream_options_absent: bool,
    doc: std::sync::OnceLock<Value>,
}

impl SharedPrompt {
    fn doc(&self) -> &Value {
        self.doc.get_or_init(|| document(self.original.as_deref()))
    }
}

/// Serves one request on an AI gateway. Never fails: every error becomes a response in the
/// caller's format.
pub async fn handle<B>(rt: Arc<AiRuntime>, shared: Arc<Shared>, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path().to_string();
    let front = if path.starts_with("/v1/messages") { Front::Anthropic } else { Front::OpenAi };
    let mut rec = Record::new(&rt.gateway, req.method(), path);
    let access_log = rt.config.telemetry.access_log;
    match serve(&rt, &shared, req, &mut rec).await {
        Ok(Served::Done(resp)) => {
            rec.status = resp.status().as_u16();
            rec.finish(&shared.metrics, access_log);
            resp
        }
        // A stream's task finishes the record.
        Ok(Served::Streaming(resp)) => resp,
        Err(e) => {
            rec.status = e.status().as_u16();
            rec.outcome = e.category();
            rec.error = Some(e.to_string());
            rec.finish(&shared.metrics, access_log);
            e.response(front)
        }
    }
}

enum Served {
    Done(Response<Body>),
    Streaming(Response<Body>),
}

fn op_of(method: &Method, path: &str) -> Result<Option<Op>, AiError> {
    let path = path.trim_end_matches('/');
    let (op, want) = match path {
        "/v1/models" => (None, Method::GET),
        "/v1/chat/completions" => (Some(Op::Chat), Method::POST),
        "/v1/embeddings" => (Some(Op::Embeddings), Method::POST),
        "/v1/responses" => (Some(Op::Responses), Method::POST),
        "/v1/messages" => (Some(Op::Messages), Method::POST),
        _ => return Err(AiError::UnknownPath(path.to_string())),
    };
    if *method != want {
        return Err(AiError::MethodNotAllowed(method.to_string()));
    }
    Ok(op)
}

async fn serve<B>(
    rt: &Arc<AiRuntime>,
    shared: &Arc<Shared>,
    req: Request<B>,
    rec: &mut Record,
) -> Result<Served, AiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let op = op_of(&parts.method, parts.uri.path())?;
    rec.op = op.map_or("models", Op::as_str);
    let subject = rt
        .identity
        .authenticate(&parts.headers, &rt.policy)
        .await
        .map_err(|e| AiError::Unauthorized(e.to_string()))?;
    rec.subject = Arc::from(subject.as_str());
    let Some(op) = op else {
        return Ok(Served::Done(models(rt, &subject)));
    };

    // The body, bounded.
    let max = if rt.max_body == 0 { DEFAULT_MAX_BODY } else { rt.max_body };
    let declared =
        parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(AiError::TooLarge(max));
    }
    let bytes = match server::read_body(body, usize::try_from(max).unwrap_or(usize::MAX)).await {
        Ok(b) => b,
        Err(BodyError::TooLarge(_)) => return Err(AiError::TooLarge(max)),
        Err(BodyError::Read(e)) => {
            return Err(AiError::BadRequest(format!("could not read the request body: {e}")));
        }
    };
    let mut prompt = Prompt::parse(bytes)?;
    let model = match prompt.head.model.take() {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(Value::String(_)) | None | Some(Value::Null) => return Err(AiError::MissingModel),
        Some(_) => return Err(AiError::BadRequest("'model' must be a string".into())),
    };
    rec.model = Arc::from(model.as_str());
    let stream = op != Op::Embeddings && prompt.head.stream.as_ref().and_then(Value::as_bool) == Some(true);
    rec.stream = stream;

    // Policy, then route.
    let (limits, budgets) = match rt.policy.check_model(&subject, &model) {
        Decision::Deny(d) => return Err(AiError::Forbidden(d.to_string())),
        Decision::Allow(a) => {
            let now = unix_now();
            let limits: Vec<LimitReq> = a
                .limits()
                .filter(|l| l.limits.requests_per_minute.is_some() || l.limits.tokens_per_minute.is_some())
                .map(|l| LimitReq {
                    key: l.key.to_string(),
                    rpm: l.limits.requests_per_minute,
                    tpm: l.limits.tokens_per_minute,
                })
                .collect();
            let budgets: Vec<BudgetReq> = a
                .budgets()
                .map(|b| BudgetReq {
                    key: b.counter(now),
                    limit_micros: (b.budget.amount_usd.max(0.0) * 1e6).round() as u64,
                    block: b.budget.action == BudgetAction::Block,
                    expires_at: window_end(b.budget.window, now),
                })
                .collect();
            (limits, budgets)
        }
    };
    let rule =
        find_rule(&rt.rules, &model, &parts.headers).ok_or_else(|| AiError::ModelNotFound(model.clone()))?;
    rec.route = rule.route.clone();
    rec.rule = rule.name.clone();

    // Request guardrails: refuse, or redact before anything leaves the gateway.
    if !rule.request_guardrails.is_empty() {
        let redacted = rule
            .request_guardrails
            .apply(Direction::Request, prompt.doc_mut())
            .map_err(|e| AiError::Guardrail(e.to_string()))?;
        if redacted {
            prompt.original = None;
        }
    }

    // Limits and budgets.
    let mut charge = true;
    match rt.store.admit(&rt.store_prefix, unix_now(), &limits, &budgets).await {
        Ok(Admission::Allowed) => {}
        Ok(Admission::RateLimited { key, what, limit, retry_after }) => {
            return Err(AiError::RateLimited {
                message: format!(
                    "Rate limit reached for {what} per minute (limit {limit}, counter {key}); try again in {retry_after}s."
                ),
                retry_after,
            });
        }
        Ok(Admission::OverBudget { key }) => {
            return Err(AiError::OverBudget(format!(
                "You exceeded your current quota: budget {key} is spent for this window."
            )));
        }
        Err(e) => {
            shared
                .metrics
                .store_errors
                .get_or_create(&crate::gateway::metrics::GatewayLabels {
                    gateway: rt.gateway.to_string(),
                    kind: rt.store.kind().to_string(),
                })
                .inc();
            if rt.failure_mode == Some(FailureMode::Closed) {
                return Err(AiError::StoreUnavailable(format!(
                    "{e}; this gateway fails closed, so requests are refused until the store is back"
                )));
            }
            tracing::warn!(gateway = %rt.gateway, error = %e, "limits store unavailable; failing open");
            charge = false;
        }
    }

    // Exact-match cache (non-streaming only).
    let mut cache_slot = None;
    if let Some(cache) = &rule.cache
        && !stream
    {
        let v = prompt.doc_mut();
        if cacheable(v) {
            let scope = (!rule.cfg.cache.as_ref().is_some_and(|c| c.shared)).then_some(subject.as_str());
            let key = cache_key(scope, &rule.cfg.route, &model, v);
            if let Some(hit) = cache.get(&key, Instant::now()) {
                rec.outcome = "cache_hit";
                rec.usage = Some(Usage::default());
                let mut r =
                    json_response(StatusCode::from_u16(hit.status).unwrap_or(StatusCode::OK), hit.body);
                r.headers_mut().insert("x-cairn-cache", HeaderValue::from_static("hit"));
                return Ok(Served::Done(r));
            }
            cache_slot = Some((cache.clone(), key));
        }
    }

    let ctx = Ctx {
        cache_slot,
        rt: rt.clone(),
        shared: shared.clone(),
        op,
        front: if op == Op::Messages { Front::Anthropic } else { Front::OpenAi },
        stream,
        prompt: prompt.into_shared(),
        model,
        headers: parts.headers,
        limits,
        budgets,
        charge,
    };
    ctx.run(rule, rec).await
}

/// `GET /v1/models`: the exact model names of the rules the caller may use.
fn models(rt: &AiRuntime, subject: &str) -> Response<Body> {
    let mut seen = std::collections::BTreeMap::new();
    for rule in &rt.rules {
        for m in exact_models(rule) {
            if rt.policy.check_model(subject, m).is_allowed() {
                seen.entry(m.to_string()).or_insert_with(|| rule.cfg.route.clone());
            }
        }
    }
    let data: Vec<Value> = seen
        .into_iter()
        .map(|(id, route)| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": route}))
        .collect();
    json_response(StatusCode::OK, serde_json::json!({"object": "list", "data": data}).to_string().into())
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Everything an admitted request carries through its attempts.
struct Ctx {
    /// Where to store a successful non-streaming answer.
    cache_slot: Option<(Arc<super::cache::ResponseCache>, CacheKey)>,
    rt: Arc<AiRuntime>,
    shared: Arc<Shared>,
    op: Op,
    front: Front,
    stream: bool,
    prompt: SharedPrompt,
    model: String,
    headers: HeaderMap,
    limits: Vec<LimitReq>,
    budgets: Vec<BudgetReq>,
    /// False when the store failed open at admission: nothing is charged.
    charge: bool,
}

/// How an attempt ended.
enum Attempt {
    /// A usable answer: headers and, for streams, the first chunk.
    Ok { resp: UpResponse, first: Option<Bytes>, at: Instant },
    /// A failure the rule may fall back on (`cond`), with what the client gets if it is the last.
    Retryable { cond: FallbackOn, last: Failure },
    /// Final as it is (the caller's 4xx, or a failure the rule does not fall back on).
    Final(Failure),
}

/// What a failed request answers.
enum Failure {
    /// The upstream's own error, passed through (its format is the front end's).
    Upstream { status: StatusCode, headers: HeaderMap, body: Bytes },
    /// A gateway error.
    Gateway(AiError),
}

impl Failure {
    fn into_response(self, rec: &mut Record) -> Result<Served, AiError> {
        match self {
            Failure::Gateway(e) => Err(e),
            Failure::Upstream { status, headers, body } => {
                rec.outcome = if status == StatusCode::TOO_MANY_REQUESTS {
                    "upstream_rate_limited"
                } else if status.is_server_error() {
                    "upstream_error"
                } else {
                    "upstream_client_error"
                };
                rec.error = Some(format!("upstream answered {status}"));
                let mut r = Response::new(full(body));
                *r.status_mut() = status;
                for name in [http::header::CONTENT_TYPE, http::header::RETRY_AFTER] {
                    if let Some(v) = headers.get(&name) {
                        r.headers_mut().insert(name, v.clone());
                    }
                }
                Ok(Served::Done(r))
            }
        }
    }
}

fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

async fn within<F: std::future::Future>(limit: Option<Duration>, f: F) -> Option<F::Output> {
    match limit {
        Some(d) => tokio::time::timeout(d, f).await.ok(),
        None => Some(f.await),
    }
}

async fn read_all(body: &mut UpBody, limit: Option<Duration>) -> Result<Bytes, AiError> {
    let read = async {
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| AiError::BadGateway(format!("upstream body failed: {e}")))?;
            if buf.len() + chunk.len() > MAX_UPSTREAM_BODY {
                return Err(AiError::BadGateway("upstream answer is too large".into()));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    within(limit, read)
        .await
        .unwrap_or_else(|| Err(AiError::GatewayTimeout("upstream answer timed out".into())))
}

impl Ctx {
    async fn run(self, rule: &RuleRt, rec: &mut Record) -> Result<Served, AiError> {
        let started = rec.started;
        let timeouts = &rule.cfg.timeouts;
        let deadline = timeouts.total_ms.map(|ms| started + Duration::from_millis(ms));
        let first_token = timeouts.first_token_ms.map(Duration::from_millis);
        let retries = rule.cfg.retries.as_ref().map_or(0, |r| r.attempts);
        if let Some(r) = &rule.cfg.retries {
            self.shared.retry_deposit(&self.rt.gateway, r.budget_percent);
        }
        let ejected_all = all_ejected(rule, self.op, &self.shared);
        let mut last: Option<Failure> = None;
        for group in &rule.groups {
            let order = order_group(group, self.op, &self.shared, ejected_all);
            if order.is_empty() {
                continue;
            }
            let mut tries = 0u32;
            let mut next = 0usize;
            loop {
                let target = &order[next % order.len()];
                next += 1;
                rec.attempts += 1;
                rec.backend = target.backend.name.clone();
                let upstream_model = target.model.clone().unwrap_or_else(|| self.model.clone());
                rec.upstream_model = upstream_model.clone();
                let outcome = self.attempt(target, &upstream_model, deadline, first_token).await;
                let result = match &outcome {
                    Attempt::Ok { .. } => "ok",
                    Attempt::Retryable { cond: FallbackOn::RateLimited, .. } => "rate_limited",
                    Attempt::Retryable { cond: FallbackOn::ServerError, .. } => "server_error",
                    Attempt::Retryable { cond: FallbackOn::Timeout, .. } => "timeout",
                    Attempt::Retryable { cond: FallbackOn::ConnectError, .. } => "connect_error",
                    Attempt::Final(_) => "client_error",
                };
                self.shared
                    .metrics
                    .attempts
                    .get_or_create(&crate::gateway::metrics::AttemptLabels {
                        gateway: self.rt.gateway.clone(),
                        backend: target.backend.name.clone(),
                        result,
                    })
                    .inc();
                match outcome {
                    Attempt::Ok { resp, first, at } => {
                        self.shared.record_success(&target.backend.health_key);
                        return self
                            .deliver(target, &upstream_model, resp, first, at, deadline, rule, rec)
                            .await;
                    }
                    Attempt::Final(f) => return f.into_response(rec),
                    Attempt::Retryable { cond, last: failure } => {
                        let ej = &rule.cfg.ejection;
                        if self.shared.record_failure(
                            &target.backend.health_key,
                            ej.consecutive_failures,
                            Duration::from_millis(ej.cooldown_ms),
                        ) {
                            tracing::warn!(gateway = %self.rt.gateway, backend = %target.backend.name,
                                cooldown_ms = ej.cooldown_ms, "backend ejected after consecutive failures");
                        }
                        if !rule.falls_back_on(cond) {
                            return failure.into_response(rec);
                        }
                        last = Some(failure);
                        if remaining(deadline).is_some_and(|d| d.is_zero()) {
                            break;
                        }
                        if tries < retries && self.shared.retry_take(&self.rt.gateway) {
                            tries += 1;
                            continue;
                        }
                        break;
                    }
                }
            }
            if remaining(deadline).is_some_and(|d| d.is_zero()) {
                break;
            }
        }
        match last {
            Some(f) => f.into_response(rec),
            // No target serves the operation: the route cannot do what was asked, and no upstream
            // failed (a 400, not a 502).
            None => Err(AiError::Unsupported(format!(
                "no backend of route {} rule {} can serve {} requests",
                rule.cfg.route,
                rule.cfg.name,
                self.op.as_str()
            ))),
        }
    }

    /// The upstream body for one target: the body as received when nothing needs rewriting; with
    /// only the usage request added for a chat stream whose client did not ask for usage (appended
    /// to the received bytes when it has no `stream_options`); otherwise rebuilt with the
    /// upstream model, translated when the backend speaks the other API.
    fn upstream_body(&self, target: &TargetRt, upstream_model: &str) -> Result<Bytes, AiError> {
        let up = upstream_op(target.backend.provider, self.op);
        let inject = up == self.op && self.op == Op::Chat && self.stream && !self.prompt.asked_usage;
        if let Some(original) = &self.prompt.original
            && up == self.op
            && upstream_model == self.model
        {
            if !inject {
                return Ok(original.clone());
            }
            if self.prompt.stream_options_absent
                && let Some(body) = with_member(original, r#""stream_options":{"include_usage":true}"#)
            {
                return Ok(body);
            }
        }
        let mut body = if up == self.op {
            self.prompt.doc().as_object().cloned().unwrap_or_default()
        } else {
            let out = match up {
                Op::Messages => translate::chat_to_messages_request(self.prompt.doc()),
                _ => translate::messages_to_chat_request(self.prompt.doc()),
            }
            .map_err(|e| AiError::BadRequest(e.to_string()))?;
            match out {
                Value::Object(m) => m,
                _ => return Err(AiError::BadRequest("the request could not be translated".into())),
            }
        };
        body.insert("model".into(), Value::String(upstream_model.to_string()));
        if inject {
            let opts = body.entry("stream_options").or_insert_with(|| Value::Object(Map::new()));
            if !opts.is_object() {
                *opts = Value::Object(Map::new());
            }
            if let Value::Object(o) = opts {
                o.insert("include_usage".into(), Value::Bool(true));
            }
        }
        Ok(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()))
    }

    async fn attempt(
        &self,
        target: &TargetRt,
        upstream_model: &str,
        deadline: Option<Instant>,
        first_token: Option<Duration>,
    ) -> Attempt {
        let body = match self.upstream_body(target, upstream_model) {
            Ok(b) => b,
            Err(e) => return Attempt::Final(Failure::Gateway(e)),
        };
        let up = upstream_op(target.backend.provider, self.op);
        let limit = min_opt(remaining(deadline), first_token);
        let sent = within(limit, send(&target.backend, up, body, &self.headers)).await;
        let mut resp = match sent {
            None => {
                return Attempt::Retryable {
                    cond: FallbackOn::Timeout,
                    last: Failure::Gateway(AiError::GatewayTimeout(format!(
                        "backend {} did not answer in time",
                        target.backend.name
                    ))),
                };
            }
            Some(Err(SendError::Connect(e))) => {
                return Attempt::Retryable {
                    cond: FallbackOn::ConnectError,
                    last: Failure::Gateway(AiError::BadGateway(format!(
                        "cannot connect to backend {}: {e}",
                        target.backend.name
                    ))),
                };
            }
            Some(Err(SendError::Other(e))) => {
                return Attempt::Retryable {
                    cond: FallbackOn::ServerError,
                    last: Failure::Gateway(AiError::BadGateway(format!(
                        "backend {} failed: {e}",
                        target.backend.name
                    ))),
                };
            }
            Some(Ok(r)) => r,
        };
        let status = resp.status;
        if !status.is_success() {
            let body = read_all(&mut resp.body, Some(remaining(deadline).unwrap_or(Duration::from_secs(30))))
                .await
                .unwrap_or_default();
            let failure = if up == self.op {
                Failure::Upstream { status, headers: resp.headers, body }
            } else {
                // The upstream's error in the caller's format.
                let (code, v) = match up {
                    Op::Messages => translate::anthropic_error_to_openai(status.as_u16(), &body),
                    _ => translate::openai_error_to_anthropic(status.as_u16(), &body),
                };
                let mut headers = HeaderMap::new();
                headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                if let Some(r) = resp.headers.get(http::header::RETRY_AFTER) {
                    headers.insert(http::header::RETRY_AFTER, r.clone());
                }
                Failure::Upstream {
                    status: StatusCode::from_u16(code).unwrap_or(status),
                    headers,
                    body: Bytes::from(v.to_string()),
                }
            };
            return if status == StatusCode::TOO_MANY_REQUESTS {
                Attempt::Retryable { cond: FallbackOn::RateLimited, last: failure }
            } else if status.is_server_error() {
                Attempt::Retryable { cond: FallbackOn::ServerError, last: failure }
            } else {
                Attempt::Final(failure)
            };
        }
        if !self.stream {
            return Attempt::Ok { resp, first: None, at: Instant::now() };
        }
        // A stream is committed only once its first chunk arrived in time.
        let limit = min_opt(remaining(deadline), first_token);
        match within(limit, resp.body.next()).await {
            None => Attempt::Retryable {
                cond: FallbackOn::Timeout,
                last: Failure::Gateway(AiError::GatewayTimeout(format!(
                    "backend {} sent no first token in time",
                    target.backend.name
                ))),
            },
            Some(Some(Ok(first))) => Attempt::Ok { resp, first: Some(first), at: Instant::now() },
            Some(Some(Err(e))) => Attempt::Retryable {
                cond: FallbackOn::ServerError,
                last: Failure::Gateway(AiError::BadGateway(format!(
                    "backend {} broke the stream: {e}",
                    target.backend.name
                ))),
            },
            Some(None) => Attempt::Retryable {
                cond: FallbackOn::ServerError,
                last: Failure::Gateway(AiError::BadGateway(format!(
                    "backend {} ended the stream before any event",
                    target.backend.name
                ))),
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        mut self,
        target: &TargetRt,
        upstream_model: &str,
        mut resp: UpResponse,
        first: Option<Bytes>,
        first_at: Instant,
        deadline: Option<Instant>,
        rule: &RuleRt,
        rec: &mut Record,
    ) -> Result<Served, AiError> {
        let price = target.backend.models.get(upstream_model).cloned();
        if !self.stream {
            let body = read_all(&mut resp.body, remaining(deadline)).await?;
            let not_json = || {
                AiError::BadGateway(format!(
                    "backend {} answered something that is not JSON",
                    target.backend.name
                ))
            };
            let up = upstream_op(target.backend.provider, self.op);
            // The answer is only parsed whole to translate it or to count its text; otherwise its
            // bytes go to the client untouched.
            let (usage, parsed) = match answer_usage(&body, up == Op::Messages).map_err(|_| not_json())? {
                Some(usage) if up == self.op => (usage, None),
                reported => {
                    let parsed: Value = serde_json::from_slice(&body).map_err(|_| not_json())?;
                    let usage = reported.unwrap_or_else(|| Usage {
                        input: self.estimated_input(),
                        cached_input: 0,
                        output: count_tokens(upstream_model, &answer_text(&parsed)),
                        estimated: true,
                    });
                    (usage, Some(parsed))
                }
            };
            let mut body = match (self.op, up, &parsed) {
                (Op::Chat, Op::Messages, Some(parsed)) => {
                    Bytes::from(translate::messages_to_chat_response(parsed, unix_now()).to_string())
                }
                (Op::Messages, Op::Chat, Some(parsed)) => {
                    Bytes::from(translate::chat_to_messages_response(parsed).to_string())
                }
                _ => body,
            };
            self.account(usage, price.as_ref(), rec);
            if !rule.response_guardrails.is_empty() {
                let mut v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let changed = rule
                    .response_guardrails
                    .apply(Direction::Response, &mut v)
                    .map_err(|e| AiError::Guardrail(e.to_string()))?;
                if changed {
                    body = Bytes::from(v.to_string());
                }
            }
            if let Some((cache, key)) = &self.cache_slot {
                let value = CachedResponse {
                    status: 200,
                    content_type: "application/json".into(),
                    body: body.clone(),
                };
                cache.insert(*key, value, Instant::now());
            }
            let mut r = Response::new(full(body));
            r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(Served::Done(r));
        }

        let idle = rule.cfg.timeouts.idle_ms.map(Duration::from_millis);
        let up_op = upstream_op(target.backend.provider, self.op);
        // The gateway asked for a usage chunk the client did not: hide it from the client.
        let strip_usage = up_op == Op::Chat && self.op == Op::Chat && !self.prompt.asked_usage;
        let translator = match (self.op, up_op) {
            (Op::Chat, Op::Messages) => Translator::MessagesToChat(Box::new(MessagesToChatStream::new(
                &self.model,
                unix_now(),
                self.prompt.asked_usage,
            ))),
            (Op::Messages, Op::Chat) => Translator::ChatToMessages(Box::new(ChatToMessagesStream::new(
                &self.model,
                self.estimated_input(),
            ))),
            _ => Translator::None,
        };
        let kind = match up_op {
            Op::Messages => StreamKind::Anthropic,
            Op::Responses => StreamKind::OpenAiResponses,
            _ => StreamKind::OpenAiChat,
        };
        let mut rec = rec.clone();
        rec.status = 200;
        let mut relay =
            Relay::new(self.op, strip_usage, translator, StreamUsage::new(kind, upstream_model), rec.started);
        relay.guardrails = (!rule.response_guardrails.is_empty()).then(|| rule.response_guardrails.clone());
        let body = RelayBody {
            relay,
            upstream: Some(resp.body),
            first: first.map(|c| (c, first_at)),
            out: VecDeque::new(),
            idle,
            deadline,
            timer: None,
            waiting: false,
            settle: Some(Settle { ctx: self, rec, price }),
        };
        let mut r = Response::new(BodyExt::boxed(body));
        let h = r.headers_mut();
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Ok(Served::Streaming(r))
    }

    /// Input tokens of the request counted locally, for when the provider reports none.
    fn estimated_input(&self) -> u64 {
        estimate_request_tokens(&self.model, self.prompt.doc())
    }

    /// Prices `usage` into the record and charges tokens and cost to the limits and budgets the
    /// request was admitted under (once: it takes them). The answer does not wait for the charge:
    /// the memory store completes it in place, a Redis round trip goes on in a task of its own,
    /// which also lands when the client has already gone.
    fn account(&mut self, usage: Usage, price: Option<&crate::config::AiModelConfig>, rec: &mut Record) {
        let micros = price.and_then(|m| m.price.as_ref()).map_or(0, |p| cost_micro_usd(&usage, p));
        rec.usage = Some(usage);
        rec.cost_micros = micros;
        if !self.charge {
            return;
        }
        let (rt, shared) = (self.rt.clone(), self.shared.clone());
        let (limits, budgets) = (std::mem::take(&mut self.limits), std::mem::take(&mut self.budgets));
        let (subject, model) = (rec.subject.clone(), rec.model.clone());
        run_soon(async move {
            let store = &rt.store;
            let prefix = &rt.store_prefix;
            let now = unix_now();
            let spend = SpendRecord { gateway: &rt.config.gateway.name, subject: &subject, model: &model };
            let r1 = store.charge_tokens(prefix, now, &limits, usage.total()).await;
            let r2 = store.charge_budgets(prefix, &budgets, Some(&spend), now, micros).await;
            for r in [r1, r2] {
                if let Err(e) = r {
                    tracing::warn!(gateway = %rt.gateway, error = %e, "charging usage failed");
                    shared
                        .metrics
                        .store_errors
                        .get_or_create(&crate::gateway::metrics::GatewayLabels {
                            gateway: rt.gateway.to_string(),
                            kind: store.kind().to_string(),
                        })
                        .inc();
                }
            }
        });
    }
}

/// Runs `fut` as far as it goes now, and the rest in a task of its own: work that completes in
/// place (the memory store) is done before this returns, work that waits (network) does not hold
/// up the caller.
fn run_soon(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    let mut fut = Box::pin(fut);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    if fut.as_mut().poll(&mut cx).is_pending() {
        // A stream's body may be dropped where no runtime runs (at shutdown): the charge is lost
        // then rather than panicking in a destructor.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(fut);
            }
            Err(_) => tracing::warn!("no runtime to finish charging usage"),
        }
    }
}

/// Text of a whole (non-streamed) answer, for estimation.
fn answer_text(v: &Value) -> String {
    let mut out = String::new();
    if let Some(Value::Array(choices)) = v.get("choices") {
        for c in choices {
            if let Some(Value::String(s)) = c.pointer("/message/content") {
                out.push_str(s);
            }
        }
    }
    if let Some(Value::Array(blocks)) = v.get("content") {
        for b in blocks {
            if let Some(Value::String(s)) = b.get("text") {
                out.push_str(s);
            }
        }
    }
    out
}

/// How a relayed stream ended.
enum StreamEnd {
    /// Upstream finished properly.
    Complete,
    /// The client went away (the upstream request is cancelled).
    ClientGone,
    /// Upstream broke, stalled or sent garbage.
    Broken(AiError),
}

/// Forwards a stream event by event, capturing usage and hiding the usage chunk the gateway asked
/// for on the client's behalf.
struct Relay {
    /// Response guardrails applied to each event.
    guardrails: Option<Arc<super::guardrails::Guardrails>>,
    /// A guardrail refused an event: the stream ends with this error.
    refused: Option<AiError>,
    op: Op,
    strip_usage: bool,
    translator: Translator,
    parser: SseParser,
    /// Usage reported by the upstream, or counted from its text.
    meter: StreamUsage,
    ttft: Option<Duration>,
    finished: bool,
    /// When the request arrived (the time to first token counts from it).
    started: Instant,
    /// Events of the chunk being relayed, and whether each reaches the client (both kept to
    /// reuse their allocations).
    events: Vec<SseEvent>,
    kept: Vec<bool>,
}

impl Relay {
    fn new(op: Op, strip_usage: bool, translator: Translator, meter: StreamUsage, started: Instant) -> Self {
        Relay {
            guardrails: None,
            refused: None,
            op,
            strip_usage,
            translator,
            parser: SseParser::default(),
            meter,
            ttft: None,
            finished: false,
            started,
            events: Vec::new(),
            kept: Vec::new(),
        }
    }

    /// The events the client gets for one upstream event.
    fn convert(&mut self, ev: SseEvent) -> Vec<SseEvent> {
        let parsed = if ev.is_done() { None } else { serde_json::from_str::<Value>(&ev.data).ok() };
        if let Some(v) = &parsed {
            self.meter.observe(ev.event.as_deref(), v);
        }
        let mut out: Vec<SseEvent> = match &mut self.translator {
            Translator::None => {
                if self.inspect(&ev, parsed.as_ref()) {
                    vec![ev]
                } else {
                    vec![]
                }
            }
            Translator::MessagesToChat(t) => t.on_event(ev.event.as_deref(), &ev.data),
            Translator::ChatToMessages(t) => t.on_data(&ev.data),
        };
        if !matches!(self.translator, Translator::None) {
            out.retain(|e| {
                let v = serde_json::from_str::<Value>(&e.data).ok();
                self.inspect(e, v.as_ref())
            });
        }
        if let Some(g) = &self.guardrails {
            for ev in &mut out {
                let Ok(mut v) = serde_json::from_str::<Value>(&ev.data) else { continue };
                match g.apply(Direction::Response, &mut v) {
                    Ok(true) => ev.data = v.to_string(),
                    Ok(false) => {}
                    Err(e) => {
                        self.refused = Some(AiError::Guardrail(e.to_string()));
                        return vec![];
                    }
                }
            }
        }
        out
    }

    /// Events that close a translated stream whose upstream ended early (or an error event).
    fn finish_translation(&mut self) -> Vec<SseEvent> {
        let out = match &mut self.translator {
            Translator::ChatToMessages(t) => t.finish(),
            _ => vec![],
        };
        out.into_iter()
            .filter(|e| {
                let v = serde_json::from_str::<Value>(&e.data).ok();
                self.inspect(e, v.as_ref())
            })
            .collect()
    }

    /// Takes one upstream chunk (arrived at `at`) and queues what the client gets for it in
    /// `out`. When the events of the chunk reach the client unchanged, the chunk's own bytes are
    /// forwarded. `Err` ends the stream (malformed stream, refused by a guardrail).
    fn feed(&mut self, chunk: Bytes, at: Instant, out: &mut VecDeque<Bytes>) -> Result<(), AiError> {
        let plain = matches!(self.translator, Translator::None) && self.guardrails.is_none();
        let whole_before = self.parser.at_event_boundary();
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        if let Err(e) = self.parser.push_into(&chunk, &mut events) {
            return Err(AiError::BadGateway(format!("upstream stream is malformed: {e}")));
        }
        let queued = out.len();
        if plain {
            let mut kept = std::mem::take(&mut self.kept);
            kept.clear();
            for ev in &events {
                kept.push(self.pass(ev));
            }
            if !events.is_empty()
                && whole_before
                && self.parser.at_event_boundary()
                && kept.iter().all(|k| *k)
            {
                out.push_back(chunk);
            } else {
                let mut buf = BytesMut::new();
                for (ev, keep) in events.iter().zip(&kept) {
                    if *keep {
                        ev.encode_into(&mut buf);
                    }
                }
                if !buf.is_empty() {
                    out.push_back(buf.freeze());
                }
            }
            self.kept = kept;
        } else {
            let mut converted = Vec::new();
            for ev in events.drain(..) {
                converted.extend(self.convert(ev));
            }
            if let Some(e) = self.refused.take() {
                return Err(e);
            }
            let mut buf = BytesMut::new();
            for ev in &converted {
                ev.encode_into(&mut buf);
            }
            if !buf.is_empty() {
                out.push_back(buf.freeze());
            }
        }
        self.events = events;
        if out.len() > queued && self.ttft.is_none() {
            self.ttft = Some(at.saturating_duration_since(self.started));
        }
        Ok(())
    }

    /// The upstream body ended: how the stream ends, with the closing events of a translation
    /// queued in `out`.
    fn end_of_body(&mut self, out: &mut VecDeque<Bytes>) -> StreamEnd {
        if self.finished {
            return StreamEnd::Complete;
        }
        if matches!(self.translator, Translator::ChatToMessages(_)) {
            for ev in self.finish_translation() {
                out.push_back(ev.encode());
            }
            if self.finished {
                return StreamEnd::Complete;
            }
        }
        StreamEnd::Broken(AiError::BadGateway("upstream stream ended before its final event".into()))
    }

    /// Whether an event of a stream relayed as it is reaches the client; notes its usage and
    /// whether it ends the stream. Chat Completions chunks are read with the small typed reader,
    /// other APIs' events parsed whole.
    fn pass(&mut self, ev: &SseEvent) -> bool {
        if ev.is_done() {
            self.finished = true;
            return true;
        }
        if self.op == Op::Chat && self.meter.kind() == StreamKind::OpenAiChat {
            let Some(chunk) = self.meter.observe_chat_chunk(&ev.data) else { return true };
            return !(self.strip_usage && chunk.usage_only);
        }
        let parsed = serde_json::from_str::<Value>(&ev.data).ok();
        if let Some(v) = &parsed {
            self.meter.observe(ev.event.as_deref(), v);
        }
        self.inspect(ev, parsed.as_ref())
    }

    /// Notes the end of a stream in the caller's API; `false` hides the event from the client
    /// (the usage chunk the gateway asked for on its behalf).
    fn inspect(&mut self, ev: &SseEvent, v: Option<&Value>) -> bool {
        if ev.is_done() {
            self.finished = true;
            return true;
        }
        let Some(v) = v else { return true };
        match self.op {
            Op::Chat => {
                let usage_only = v.get("usage").is_some_and(Value::is_object)
                    && v.get("choices").and_then(Value::as_array).is_some_and(|c| c.is_empty());
                if self.strip_usage && usage_only {
                    return false;
                }
            }
            Op::Messages => {
                if v.get("type").and_then(Value::as_str) == Some("message_stop") {
                    self.finished = true;
                }
            }
            Op::Responses => {
                if matches!(
                    v.get("type").and_then(Value::as_str),
                    Some("response.completed" | "response.incomplete" | "response.failed")
                ) {
                    self.finished = true;
                }
            }
            Op::Embeddings => {}
        }
        true
    }
}

/// Stream translation between the caller's API and the backend's.
enum Translator {
    /// Same API on both sides.
    None,
    /// Anthropic events to OpenAI chunks (chat front, Anthropic backend).
    MessagesToChat(Box<MessagesToChatStream>),
    /// OpenAI chunks to Anthropic events (messages front, OpenAI-type backend).
    ChatToMessages(Box<ChatToMessagesStream>),
}

/// What a stream owes once it ends: the request's context and record, to charge and log it.
struct Settle {
    ctx: Ctx,
    rec: Record,
    price: Option<crate::config::AiModelConfig>,
}

/// The body of a streamed answer: it relays the upstream body as hyper polls it (no task of its
/// own). When the client goes away hyper drops it; dropping it drops the upstream body, which
/// cancels the upstream request, and charges the usage seen so far.
struct RelayBody {
    relay: Relay,
    /// `None` once the stream ended (dropping it cancels the upstream request).
    upstream: Option<UpBody>,
    /// The first chunk, read while the attempt was still open, and when it arrived.
    first: Option<(Bytes, Instant)>,
    /// Bytes for the client not yet handed to hyper.
    out: VecDeque<Bytes>,
    idle: Option<Duration>,
    deadline: Option<Instant>,
    /// Wait bound for the next upstream chunk (idle timeout or the request deadline), armed when
    /// a wait begins.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A wait for the next upstream chunk is under way (`timer` is armed for it).
    waiting: bool,
    /// `None` once the stream was charged and logged.
    settle: Option<Settle>,
}

impl RelayBody {
    /// Ends the stream once: stops reading upstream, queues an error event for a broken stream,
    /// charges the usage and writes the access log.
    fn end(&mut self, end: StreamEnd) {
        let Some(Settle { mut ctx, mut rec, price }) = self.settle.take() else { return };
        // Dropping the upstream body cancels the upstream request.
        self.upstream = None;
        self.timer = None;
        rec.ttft = self.relay.ttft;
        match end {
            StreamEnd::Complete => {}
            StreamEnd::ClientGone => {
                rec.outcome = "client_disconnected";
                rec.status = 499;
            }
            StreamEnd::Broken(e) => {
                rec.outcome = e.category();
                rec.error = Some(e.to_string());
                // The client gets the error as the stream's last event.
                self.out.push_back(e.stream_event(ctx.front));
            }
        }
        // Count the prompt only when the provider reported nothing.
        let estimate = if self.relay.meter.reported() { 0 } else { ctx.estimated_input() };
        let usage = self.relay.meter.usage(estimate);
        ctx.account(usage, price.as_ref(), &mut rec);
        rec.finish(&ctx.shared.metrics, ctx.rt.config.telemetry.access_log);
    }

    /// The next upstream chunk and when it arrived; `Err` ends the stream.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<(Bytes, Instant)>, AiError>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Ok(Some(first)));
        }
        let Some(body) = self.upstream.as_mut() else { return Poll::Ready(Ok(None)) };
        match body.poll_next(cx) {
            Poll::Ready(next) => {
                self.waiting = false;
                match next {
                    None => Poll::Ready(Ok(None)),
                    Some(Ok(c)) => Poll::Ready(Ok(Some((c, Instant::now())))),
                    Some(Err(e)) => {
                        Poll::Ready(Err(AiError::BadGateway(format!("upstream stream broke: {e}"))))
                    }
                }
            }
            Poll::Pending => {
                if !self.waiting {
                    // A wait begins: arm the bound (one timer per stream, re-armed per wait).
                    self.waiting = true;
                    match min_opt(remaining(self.deadline), self.idle) {
                        None => self.timer = None,
                        Some(limit) => {
                            let at = tokio::time::Instant::now() + limit;
                            match &mut self.timer {
                                Some(t) => t.as_mut().reset(at),
                                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
                            }
                        }
                    }
                }
                match self.timer.as_mut().map(|t| t.as_mut().poll(cx)) {
                    Some(Poll::Ready(())) => {
                        Poll::Ready(Err(AiError::GatewayTimeout("upstream stream stalled".into())))
                    }
                    _ => Poll::Pending,
                }
            }
        }
    }
}

impl hyper::body::Body for RelayBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if let Some(b) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(hyper::body::Frame::data(b))));
            }
            if this.settle.is_none() {
                return Poll::Ready(None);
            }
            match std::task::ready!(this.poll_chunk(cx)) {
                Ok(Some((chunk, at))) => {
                    if let Err(e) = this.relay.feed(chunk, at, &mut this.out) {
                        this.end(StreamEnd::Broken(e));
                    }
                }
                Ok(None) => {
                    let end = this.relay.end_of_body(&mut this.out);
                    this.end(end);
                }
                Err(e) => this.end(StreamEnd::Broken(e)),
            }
        }
    }
}

impl Drop for RelayBody {
    fn drop(&mut self) {
        // Still owing the charge: the client went away before the stream ended.
        self.end(StreamEnd::ClientGone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::ai::sse::encode_done;
    use serde_json::json;

    #[test]
    fn the_head_is_read_without_the_document() {
        let p = Prompt::parse(Bytes::from_static(
            br#" {"messages":[{"role":"user","content":"hi"}],"model":"m","stream":true}"#,
        ))
        .unwrap();
        assert!(p.doc.is_none());
        assert_eq!(p.head.model, Some(json!("m")));
        assert_eq!(p.head.stream, Some(json!(true)));
        let shared = p.into_shared();
        assert!(!shared.asked_usage && shared.stream_options_absent);
        assert_eq!(shared.doc()["messages"][0]["content"], "hi");

        let p = Prompt::parse(Bytes::from_static(br#"{"model":"m","stream_options":null}"#)).unwrap();
        assert!(!p.into_shared().stream_options_absent, "an explicit null is not absent");
        let p =
            Prompt::parse(Bytes::from_static(br#"{"model":"m","stream_options":{"include_usage":true}}"#))
                .unwrap();
        assert!(p.into_shared().asked_usage);
    }

    #[test]
    fn only_a_json_object_is_a_request_body() {
        let message = |b: &'static [u8]| match Prompt::parse(Bytes::from_static(b)) {
            Err(e) => e.to_string(),
            Ok(_) => "accepted".into(),
        };
        assert!(message(br#"["m", true]"#).contains("could not parse the JSON body"), "{}", message(b"[]"));
        assert!(message(b"{not json").contains("could not parse the JSON body"));
        // A repeated key: the last one counts, as in the document.
        let p = Prompt::parse(Bytes::from_static(br#"{"model":"a","model":"b"}"#)).unwrap();
        assert_eq!(p.head.model, Some(json!("b")));
        assert!(p.doc.is_some());
    }

    #[test]
    fn a_member_is_appended_without_touching_the_rest() {
        let m = r#""stream_options":{"include_usage":true}"#;
        let out = with_member(br#"{"model":"m", "x":{"y":[1]}} "#, m).unwrap();
        assert_eq!(&out[..], br#"{"model":"m", "x":{"y":[1]},"stream_options":{"include_usage":true}} "#);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(&with_member(b"{ }", m).unwrap()[..], br#"{ "stream_options":{"include_usage":true}}"#);
        assert!(with_member(b"[1]", m).is_none());
    }

    fn chat_relay(strip_usage: bool) -> Relay {
        let meter = StreamUsage::new(StreamKind::OpenAiChat, "gpt-4o");
        Relay::new(Op::Chat, strip_usage, Translator::None, meter, Instant::now())
    }

    fn relay_chunks(relay: &mut Relay, chunks: &[&'static [u8]]) -> Vec<Bytes> {
        let mut out = VecDeque::new();
        for c in chunks {
            relay.feed(Bytes::from_static(c), Instant::now(), &mut out).unwrap();
        }
        out.into()
    }

    #[test]
    fn whole_chat_chunks_are_forwarded_as_they_came() {
        let mut relay = chat_relay(true);
        let first: &[u8] = b"data:{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n";
        let done: &[u8] = b": keep-alive\ndata: [DONE]\n\n";
        let out = relay_chunks(&mut relay, &[first, done]);
        assert_eq!(out, [Bytes::from_static(first), Bytes::from_static(done)]);
        assert!(relay.ttft.is_some());
        assert!(relay.finished, "[DONE] ends a chat stream");
        assert_eq!(relay.meter.usage(0).output, count_tokens("gpt-4o", "Hi"));
    }

    #[test]
    fn the_usage_chunk_the_gateway_asked_for_is_hidden() {
        let usage: &[u8] =
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n";
        let chunk: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n";
        let mut relay = chat_relay(true);
        let mut mixed = chunk.to_vec();
        mixed.extend_from_slice(usage);
        mixed.extend_from_slice(b"data: [DONE]\n\n");
        let mut out = VecDeque::new();
        relay.feed(Bytes::from(mixed), Instant::now(), &mut out).unwrap();
        let expected = [chunk, b"data: [DONE]\n\n".as_slice()].concat();
        assert_eq!(Vec::from(out), [Bytes::from(expected)]);
        assert_eq!(relay.meter.usage(0), Usage { input: 3, cached_input: 0, output: 1, estimated: false });

        // A usage-only chunk alone in its piece yields nothing; the client asked for it: it passes.
        assert!(relay_chunks(&mut chat_relay(true), &[usage]).is_empty());
        assert_eq!(relay_chunks(&mut chat_relay(false), &[usage]), [Bytes::from_static(usage)]);
    }

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let mut relay = chat_relay(true);
        let out = relay_chunks(
            &mut relay,
            &[b"data: {\"choices\":[{\"delta\":", b"{\"content\":\"x\"}}]}\n\ndata: [DO", b"NE]\n\n"],
        );
        assert_eq!(
            out,
            [Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"), encode_done()]
        );
        assert!(relay.finished);
    }

    #[test]
    fn a_malformed_chat_event_is_passed_on_uncounted() {
        let mut relay = chat_relay(true);
        let bad: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"oops\n\n";
        assert_eq!(relay_chunks(&mut relay, &[bad]), [Bytes::from_static(bad)]);
        assert!(!relay.finished);
        assert_eq!(relay.meter.usage(0).output, 0);
        // A stream that ends there did not finish.
        let mut out = VecDeque::new();
        let StreamEnd::Broken(e) = relay.end_of_body(&mut out) else {
            panic!("a stream without [DONE] is broken")
        };
        assert_eq!(e.to_string(), "upstream stream ended before its final event");
        // Bytes that are not an event stream end the relay.
        let e = relay.feed(Bytes::from_static(b"data: \xff\n\n"), Instant::now(), &mut out).unwrap_err();
        assert!(e.to_string().contains("upstream stream is malformed"), "{e}");
    }
}
