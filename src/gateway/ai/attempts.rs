//! The attempts of an admitted AI request: which backend is tried in which order (priority
//! groups, weights, ejected backends skipped), the upstream body for each (passed through,
//! renamed or translated), the timeouts, and the retries and fallbacks the rule allows. The
//! first usable answer wins and goes on to delivery ([`super::deliver`]); otherwise the last
//! failure is what the client gets.

use super::answer::Failure;
use super::cache::{CacheKey, ResponseCache};
use super::error::{AiError, Front};
use super::exchange::{SendError, UpBody, UpResponse};
use super::metrics::AttemptLabels;
use super::op::{Op, upstream_op};
use super::prompt::{SharedPrompt, with_member};
use super::record::{Record, provider_name};
use super::routing::{RuleRt, TargetRt, all_ejected, order_group};
use super::runtime::AiRuntime;
use super::tokens::estimate_request_tokens;
use super::translate;
use super::upstream::send;
use crate::config::FallbackOn;
use crate::gateway::admission::Admitted;
use crate::gateway::telemetry::span;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Largest upstream body read whole (non-streaming answers, error bodies).
pub const MAX_UPSTREAM_BODY: usize = 64 << 20;

/// Everything an admitted request carries through its attempts (and, once one succeeded, its
/// delivery and accounting).
pub(super) struct Ctx {
    /// Where to store a successful non-streaming answer.
    pub(super) cache_slot: Option<(Arc<ResponseCache>, CacheKey)>,
    pub(super) rt: Arc<AiRuntime>,
    pub(super) op: Op,
    pub(super) front: Front,
    pub(super) stream: bool,
    pub(super) prompt: SharedPrompt,
    pub(super) model: String,
    pub(super) headers: HeaderMap,
    /// The limits and budgets to charge, and whether to (not when the store failed open).
    pub(super) admitted: Admitted,
}

/// The attempt that succeeded: its target and upstream model, the answer's head and, for
/// streams, its first chunk.
pub(super) struct Won {
    pub(super) target: TargetRt,
    pub(super) upstream_model: String,
    pub(super) resp: UpResponse,
    pub(super) first: Option<Bytes>,
    /// When the answer (or its first chunk) arrived.
    pub(super) at: Instant,
    /// The rule's total deadline.
    pub(super) deadline: Option<Instant>,
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

pub(super) fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

pub(super) fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
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

pub(super) async fn read_all(body: &mut UpBody, limit: Option<Duration>) -> Result<Bytes, AiError> {
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
    /// Tries the rule's targets: priority groups in order, weighted within a group, retried and
    /// fallen back on as the rule says. The first usable answer wins; otherwise the last failure
    /// is what the client gets.
    pub(super) async fn run(self, rule: &RuleRt, rec: &mut Record) -> Result<(Ctx, Won), Failure> {
        let started = rec.started;
        let timeouts = &rule.cfg.timeouts;
        let deadline = timeouts.total_ms.map(|ms| started + Duration::from_millis(ms));
        let first_token = timeouts.first_token_ms.map(Duration::from_millis);
        let retries = rule.cfg.retries.as_ref().map_or(0, |r| r.attempts);
        let health = &self.rt.health;
        if let Some(r) = &rule.cfg.retries {
            health.retry_deposit(&self.rt.gateway, r.budget_percent);
        }
        let ejected_all = all_ejected(rule, self.op, health);
        let mut last: Option<Failure> = None;
        for group in &rule.groups {
            let order = order_group(group, self.op, health, ejected_all);
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
                rec.provider = provider_name(target.backend.provider);
                let attempt = self.attempt_span(rec, target, &upstream_model);
                let outcome = self
                    .attempt(target, &upstream_model, deadline, first_token, &attempt)
                    .instrument(attempt.clone())
                    .await;
                let result = match &outcome {
                    Attempt::Ok { .. } => "ok",
                    Attempt::Retryable { cond: FallbackOn::RateLimited, .. } => "rate_limited",
                    Attempt::Retryable { cond: FallbackOn::ServerError, .. } => "server_error",
                    Attempt::Retryable { cond: FallbackOn::Timeout, .. } => "timeout",
                    Attempt::Retryable { cond: FallbackOn::ConnectError, .. } => "connect_error",
                    Attempt::Final(_) => "client_error",
                };
                span::attr(&attempt, "cairn.attempt.result", result);
                match &outcome {
                    Attempt::Ok { resp, .. } => {
                        span::attr(&attempt, "http.response.status_code", i64::from(resp.status.as_u16()));
                    }
                    Attempt::Retryable { last, .. } | Attempt::Final(last) => {
                        span::failed(&attempt, result, last.describe());
                    }
                }
                drop(attempt);
                self.rt
                    .metrics
                    .attempts
                    .get_or_create(&AttemptLabels {
                        gateway: self.rt.gateway.clone(),
                        backend: target.backend.name.clone(),
                        result,
                    })
                    .inc();
                match outcome {
                    Attempt::Ok { resp, first, at } => {
                        health.record_success(&target.backend.health_key);
                        let won = Won { target: target.clone(), upstream_model, resp, first, at, deadline };
                        return Ok((self, won));
                    }
                    Attempt::Final(f) => return Err(f),
                    Attempt::Retryable { cond, last: failure } => {
                        let ej = &rule.cfg.ejection;
                        if health.record_failure(
                            &target.backend.health_key,
                            ej.consecutive_failures,
                            Duration::from_millis(ej.cooldown_ms),
                        ) {
                            tracing::warn!(gateway = %self.rt.gateway, backend = %target.backend.name,
                                cooldown_ms = ej.cooldown_ms, "backend ejected after consecutive failures");
                        }
                        if !rule.falls_back_on(cond) {
                            return Err(failure);
                        }
                        last = Some(failure);
                        if remaining(deadline).is_some_and(|d| d.is_zero()) {
                            break;
                        }
                        if tries < retries && health.retry_take(&self.rt.gateway) {
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
            Some(f) => Err(f),
            // No target serves the operation: the route cannot do what was asked, and no upstream
            // failed (a 400, not a 502).
            None => Err(Failure::Gateway(AiError::Unsupported(format!(
                "no backend of route {} rule {} can serve {} requests",
                rule.cfg.route,
                rule.cfg.name,
                self.op.as_str()
            )))),
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

    /// The client span of one attempt on `target`: a child of the request's span, with the
    /// GenAI attributes of the upstream call.
    fn attempt_span(&self, rec: &Record, target: &TargetRt, upstream_model: &str) -> tracing::Span {
        let operation = super::record::operation_name(self.op.as_str());
        let s = span::upstream(&rec.span, &self.rt.gateway, &format!("{operation} {upstream_model}"));
        span::attr(&s, "gen_ai.operation.name", operation);
        span::attr(&s, "gen_ai.request.model", upstream_model.to_string());
        span::attr(&s, "gen_ai.provider.name", rec.provider);
        span::attr(&s, "cairn.backend", target.backend.name.to_string());
        span::attr(&s, "cairn.attempt", i64::from(rec.attempts));
        span::subject(&s, &rec.subject);
        span::decision(&s, true, "granted");
        s
    }

    async fn attempt(
        &self,
        target: &TargetRt,
        upstream_model: &str,
        deadline: Option<Instant>,
        first_token: Option<Duration>,
        attempt: &tracing::Span,
    ) -> Attempt {
        let body = match self.upstream_body(target, upstream_model) {
            Ok(b) => b,
            Err(e) => return Attempt::Final(Failure::Gateway(e)),
        };
        let up = upstream_op(target.backend.provider, self.op);
        let limit = min_opt(remaining(deadline), first_token);
        let sent = within(limit, send(&target.backend, up, body, &self.headers, attempt)).await;
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

    /// Input tokens of the request counted locally, for when the provider reports none.
    pub(super) fn estimated_input(&self) -> u64 {
        estimate_request_tokens(&self.model, self.prompt.doc())
    }
}
