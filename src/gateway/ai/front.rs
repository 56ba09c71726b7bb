//! The front of the AI gateway, the first stages of a request: route the path to an operation,
//! identify the caller, read and check the body, ask the policy, choose the rule, apply request
//! guardrails, count the call against limits and budgets, answer from the cache; then hand the
//! admitted request to its attempts ([`super::attempts`]) and the answer to delivery
//! ([`super::deliver`]). Every error becomes a response in the caller's format here.

use super::answer::Served;
use super::attempts::Ctx;
use super::cache::{cache_key, cacheable};
use super::error::{AiError, Front};
use super::guardrails::Direction;
use super::op::Op;
use super::prompt::Prompt;
use super::record::Record;
use super::routing::{exact_models, find_rule};
use super::runtime::AiRuntime;
use super::usage::Usage;
use crate::config::Layer;
use crate::gateway::response::{Body, json};
use crate::gateway::server::{self, BodyError};
use crate::gateway::telemetry::span;
use crate::gateway::{admission, limits};
use crate::policy::Target;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// Request bodies when the config sets no limit.
pub const DEFAULT_MAX_BODY: u64 = 10 << 20;

/// Serves one request on an AI gateway. Never fails: every error becomes a response in the
/// caller's format.
pub async fn handle<B>(rt: Arc<AiRuntime>, req: Request<B>) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path().to_string();
    let front = if path.starts_with("/v1/messages") { Front::Anthropic } else { Front::OpenAi };
    let mut rec = Record::new(&rt.gateway, req.method(), path);
    match serve(&rt, req, &mut rec).await {
        Ok(Served::Done(resp)) => {
            rec.status = resp.status().as_u16();
            rec.finish(&rt);
            resp
        }
        // A stream's body finishes the record.
        Ok(Served::Streaming(resp)) => resp,
        Err(e) => {
            rec.status = e.status().as_u16();
            rec.outcome = e.category();
            rec.error = Some(e.to_string());
            rec.finish(&rt);
            e.response(front)
        }
    }
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

async fn serve<B>(rt: &Arc<AiRuntime>, req: Request<B>, rec: &mut Record) -> Result<Served, AiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    limits::check_headers(&parts.headers)?;
    let op = op_of(&parts.method, parts.uri.path())?;
    rec.op = op.map_or("models", Op::as_str);
    let subject = match rt.identity.authenticate(&parts.headers, &rt.policy).await {
        Ok(s) => s,
        Err(e) => {
            admission::refused("unauthenticated", &rec.span, &rt.metrics.denials, &rt.gateway, Layer::Ai);
            return Err(AiError::Unauthorized(e.to_string()));
        }
    };
    rec.subject = Arc::from(subject.as_str());
    span::subject(&rec.span, &subject);
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
    limits::check_json_depth(&bytes)?;
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
    let grant = admission::check(&subject, Target::Model(&model), &rt.policy);
    admission::record(
        grant.as_ref().map(|g| g.by_default),
        &rec.span,
        &rt.metrics.denials,
        &rt.gateway,
        Layer::Ai,
    );
    let grant = grant?;
    let rule =
        find_rule(&rt.rules, &model, &parts.headers).ok_or_else(|| AiError::ModelNotFound(model.clone()))?;
    rec.route = rule.route.clone();
    rec.rule = rule.name.clone();
    rec.exact_model = exact_models(rule).any(|m| m == model);

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
    let admitted = grant.count(&rt.store).await;
    if let Err(r) = &admitted {
        admission::refused(r.reason(), &rec.span, &rt.metrics.denials, &rt.gateway, Layer::Ai);
    }
    let admitted = admitted?;

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
                let mut r = json(StatusCode::from_u16(hit.status).unwrap_or(StatusCode::OK), hit.body);
                r.headers_mut().insert("x-cairn-cache", HeaderValue::from_static("hit"));
                return Ok(Served::Done(r));
            }
            cache_slot = Some((cache.clone(), key));
        }
    }

    let ctx = Ctx {
        cache_slot,
        rt: rt.clone(),
        op,
        front: if op == Op::Messages { Front::Anthropic } else { Front::OpenAi },
        stream,
        prompt: prompt.into_shared(),
        model,
        headers: parts.headers,
        admitted,
    };
    match ctx.run(rule, rec).await {
        Ok((ctx, won)) => super::deliver::deliver(ctx, won, rule, rec).await,
        Err(failure) => failure.into_response(rec),
    }
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
    json(StatusCode::OK, serde_json::json!({"object": "list", "data": data}).to_string())
}
