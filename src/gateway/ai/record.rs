//! What is known about an AI request when it ends: its access-log line (one JSON line on stdout,
//! when `telemetry.accessLog` is on, with the `trace_id` and `span_id` of its span), its metrics
//! and the GenAI attributes of its span (`gen_ai.*`, `cairn.cost_usd`). Never prompt or answer
//! bodies, never keys: only who, what, where it went, how it ended, tokens, cost and timings.

use super::metrics::{
    CostLabels, GenAiLabels, OperationLabels, RequestLabels, SpendLabels, TimingLabels, TokenLabels,
};
use super::runtime::AiRuntime;
use super::usage::{Usage, micro_usd_to_usd};
use crate::config::ProviderKind;
use crate::gateway::clock::rfc3339_now;
use crate::gateway::telemetry::span::{self, TraceIds};
use serde::Serialize;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tracing::Span;

static NONE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));

/// The GenAI conventions' `gen_ai.operation.name` of an operation (`op` of the record).
pub fn operation_name(op: &str) -> &'static str {
    match op {
        "embeddings" => "embeddings",
        "models" | "" => "",
        _ => "chat",
    }
}

/// The GenAI conventions' `gen_ai.provider.name` of a backend's provider.
pub fn provider_name(p: ProviderKind) -> &'static str {
    match p {
        ProviderKind::Openai => "openai",
        ProviderKind::AzureOpenai => "azure.ai.openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::OpenaiCompatible => "openai_compatible",
        ProviderKind::Bedrock => "aws.bedrock",
        ProviderKind::Echo => "cairn.echo",
    }
}

/// What is known about a request when it ends.
#[derive(Debug, Clone)]
pub struct Record {
    /// When it arrived.
    pub started: Instant,
    /// Gateway `namespace/name`.
    pub gateway: Arc<str>,
    /// Method.
    pub method: http::Method,
    /// Path.
    pub path: String,
    /// Operation (`chat`, `embeddings`, `responses`, `messages`, `models`).
    pub op: &'static str,
    /// Caller, once identified.
    pub subject: Arc<str>,
    /// Requested model.
    pub model: Arc<str>,
    /// Whether a rule names the requested model exactly (not through a glob).
    pub exact_model: bool,
    /// Route name.
    pub route: Arc<str>,
    /// Rule name.
    pub rule: Arc<str>,
    /// Backend that answered last.
    pub backend: Arc<str>,
    /// Model sent upstream.
    pub upstream_model: String,
    /// Stream requested.
    pub stream: bool,
    /// Upstream attempts made.
    pub attempts: u32,
    /// Final status sent.
    pub status: u16,
    /// Outcome category.
    pub outcome: &'static str,
    /// Error message, when it failed.
    pub error: Option<String>,
    /// Usage, when known.
    pub usage: Option<Usage>,
    /// Cost in micro-dollars.
    pub cost_micros: u64,
    /// Time to the first content chunk (streams).
    pub ttft: Option<Duration>,
    /// `gen_ai.provider.name` of the backend that answered last.
    pub provider: &'static str,
    /// The request's span (kept open until the record is written).
    pub span: Span,
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    gateway: &'a str,
    method: &'a str,
    path: &'a str,
    op: &'a str,
    subject: &'a str,
    model: &'a str,
    route: &'a str,
    rule: &'a str,
    backend: &'a str,
    upstream_model: &'a str,
    stream: bool,
    attempts: u32,
    status: u16,
    outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    input_tokens: Option<u64>,
    cached_input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    tokens_estimated: bool,
    cost_usd: f64,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttft_ms: Option<f64>,
    #[serde(flatten)]
    trace: TraceIds,
}

impl Record {
    /// A record for a request that just arrived.
    pub fn new(gateway: &Arc<str>, method: &http::Method, path: String) -> Record {
        let none = NONE.clone();
        Record {
            started: Instant::now(),
            gateway: gateway.clone(),
            method: method.clone(),
            path,
            op: "",
            subject: none.clone(),
            model: none.clone(),
            exact_model: false,
            route: none.clone(),
            rule: none.clone(),
            backend: none,
            upstream_model: String::new(),
            stream: false,
            attempts: 0,
            status: 0,
            outcome: "ok",
            error: None,
            usage: None,
            cost_micros: 0,
            ttft: None,
            provider: "",
            span: Span::current(),
        }
    }

    /// Emits metrics, the span's attributes and, when enabled, the access log line.
    pub fn finish(&self, rt: &AiRuntime) {
        let elapsed = self.started.elapsed();
        let metrics = &rt.metrics;
        let subject = if rt.config.telemetry.subject_labels { self.subject.clone() } else { NONE.clone() };
        let operation = operation_name(self.op);
        let failed = self.outcome != "ok" && self.outcome != "cache_hit";
        // The requested model is a label value when a rule names it, or when a provider served
        // it; a failed request through a glob (or no rule) names a model the caller chose.
        let model = if self.exact_model || !failed { self.model.clone() } else { NONE.clone() };
        if !operation.is_empty() {
            let labels = RequestLabels {
                gateway: self.gateway.clone(),
                route: self.route.clone(),
                backend: self.backend.clone(),
                gen_ai_request_model: model,
                subject: subject.clone(),
                outcome: self.outcome,
            };
            metrics.requests.get_or_create(&labels).inc();
            let op = GenAiLabels {
                gateway: labels.gateway.clone(),
                route: labels.route.clone(),
                backend: labels.backend.clone(),
                subject: subject.clone(),
                gen_ai_operation_name: operation,
                gen_ai_provider_name: self.provider,
                gen_ai_request_model: labels.gen_ai_request_model.clone(),
            };
            let error_type = if failed { self.outcome } else { "" };
            metrics
                .duration
                .get_or_create(&OperationLabels { op: op.clone(), error_type })
                .observe(elapsed.as_secs_f64());
            if let Some(u) = &self.usage {
                let estimated = if u.estimated { "true" } else { "false" };
                let mut tokens = TokenLabels {
                    op,
                    gen_ai_response_model: if self.upstream_model.is_empty() {
                        NONE.clone()
                    } else {
                        Arc::from(self.upstream_model.as_str())
                    },
                    gen_ai_token_type: "input",
                    estimated,
                };
                for (ty, n) in [("input", u.input), ("output", u.output), ("cached_input", u.cached_input)] {
                    if ty == "cached_input" && n == 0 {
                        continue;
                    }
                    tokens.gen_ai_token_type = ty;
                    metrics.tokens.get_or_create(&tokens).observe(n as f64);
                }
                let GenAiLabels { gateway, route, backend, gen_ai_request_model: model, subject, .. } =
                    tokens.op;
                if self.cost_micros > 0 {
                    let usd = micro_usd_to_usd(self.cost_micros);
                    metrics
                        .cost
                        .get_or_create(&CostLabels {
                            gateway: gateway.clone(),
                            route: route.clone(),
                            backend: backend.clone(),
                            gen_ai_request_model: model.clone(),
                            subject,
                        })
                        .inc_by(usd);
                    self.spend(rt, usd);
                }
                if let Some(ttft) = self.ttft {
                    let timing = TimingLabels { gateway, route, backend, gen_ai_request_model: model };
                    metrics.ttft.get_or_create(&timing).observe(ttft.as_secs_f64());
                    if u.output > 1 {
                        let rest = elapsed.saturating_sub(ttft).as_secs_f64();
                        metrics.tpot.get_or_create(&timing).observe(rest / (u.output - 1) as f64);
                    }
                }
            }
        }
        self.annotate(operation, failed);
        if rt.config.telemetry.access_log {
            self.write(elapsed);
        }
    }

    /// Counts the cost once for each policy that names the caller.
    fn spend(&self, rt: &AiRuntime, usd: f64) {
        let mut any = false;
        for p in rt.policy.policies_of(&self.subject) {
            any = true;
            let labels = SpendLabels { gateway: self.gateway.clone(), policy: Arc::from(p) };
            rt.metrics.spend.get_or_create(&labels).inc_by(usd);
        }
        if !any {
            let labels = SpendLabels { gateway: self.gateway.clone(), policy: NONE.clone() };
            rt.metrics.spend.get_or_create(&labels).inc_by(usd);
        }
    }

    /// The GenAI attributes of the request's span; its end is now.
    fn annotate(&self, operation: &'static str, failed: bool) {
        let s = &self.span;
        if !operation.is_empty() {
            span::attr(s, "gen_ai.operation.name", operation);
            span::name(s, format!("{operation} {}", self.model));
        }
        if !self.model.is_empty() {
            span::attr(s, "gen_ai.request.model", self.model.to_string());
        }
        if !self.upstream_model.is_empty() {
            span::attr(s, "gen_ai.response.model", self.upstream_model.clone());
        }
        if !self.provider.is_empty() {
            span::attr(s, "gen_ai.provider.name", self.provider);
        }
        if let Some(u) = &self.usage {
            span::attr(s, "gen_ai.usage.input_tokens", u.input as i64);
            span::attr(s, "gen_ai.usage.output_tokens", u.output as i64);
        }
        span::attr(s, "cairn.cost_usd", micro_usd_to_usd(self.cost_micros));
        if !self.route.is_empty() {
            span::attr(s, "cairn.route", self.route.to_string());
        }
        if !self.backend.is_empty() {
            span::attr(s, "cairn.backend", self.backend.to_string());
        }
        span::attr(s, "cairn.attempts", i64::from(self.attempts));
        span::attr(s, "cairn.outcome", self.outcome);
        span::attr(s, "http.response.status_code", i64::from(self.status));
        if failed {
            span::failed(s, self.outcome, self.error.clone().unwrap_or_else(|| self.outcome.to_string()));
        }
        span::end_now(s);
    }

    fn write(&self, elapsed: Duration) {
        let line = Line {
            ts: rfc3339_now(),
            gateway: &self.gateway,
            method: self.method.as_str(),
            path: &self.path,
            op: self.op,
            subject: &self.subject,
            model: &self.model,
            route: &self.route,
            rule: &self.rule,
            backend: &self.backend,
            upstream_model: &self.upstream_model,
            stream: self.stream,
            attempts: self.attempts,
            status: self.status,
            outcome: self.outcome,
            error: self.error.as_deref(),
            input_tokens: self.usage.map(|u| u.input),
            cached_input_tokens: self.usage.map(|u| u.cached_input),
            output_tokens: self.usage.map(|u| u.output),
            tokens_estimated: self.usage.is_some_and(|u| u.estimated),
            cost_usd: micro_usd_to_usd(self.cost_micros),
            duration_ms: elapsed.as_secs_f64() * 1e3,
            ttft_ms: self.ttft.map(|d| d.as_secs_f64() * 1e3),
            trace: span::ids(&self.span),
        };
        crate::gateway::log::write_line(&line);
    }
}
