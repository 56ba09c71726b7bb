//! What is known about an AI request when it ends: its access-log line (one JSON line on stdout,
//! when `telemetry.accessLog` is on) and its metrics. Never prompt or answer bodies, never keys:
//! only who, what, where it went, how it ended, tokens, cost and timings.

use super::metrics::{AiMetrics, CostLabels, RequestLabels, TimingLabels, TokenLabels};
use super::usage::{Usage, micro_usd_to_usd};
use crate::gateway::clock::rfc3339_now;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
}

impl Record {
    /// A record for a request that just arrived.
    pub fn new(gateway: &Arc<str>, method: &http::Method, path: String) -> Record {
        static NONE: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));
        let none = NONE.clone();
        Record {
            started: Instant::now(),
            gateway: gateway.clone(),
            method: method.clone(),
            path,
            op: "",
            subject: none.clone(),
            model: none.clone(),
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
        }
    }

    /// Emits metrics and, when enabled, the access log line.
    pub fn finish(&self, metrics: &AiMetrics, access_log: bool) {
        let elapsed = self.started.elapsed();
        if !self.op.is_empty() && self.op != "models" {
            let labels = RequestLabels {
                gateway: self.gateway.clone(),
                route: self.route.clone(),
                backend: self.backend.clone(),
                model: self.model.clone(),
                subject: self.subject.clone(),
                outcome: self.outcome,
            };
            metrics.requests.get_or_create(&labels).inc();
            metrics.duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
            if let Some(u) = &self.usage {
                let estimated = if u.estimated { "true" } else { "false" };
                let mut tokens = TokenLabels {
                    gateway: labels.gateway,
                    route: labels.route,
                    backend: labels.backend,
                    model: labels.model,
                    subject: labels.subject,
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
                let TokenLabels { gateway, route, backend, model, subject, .. } = tokens;
                if self.cost_micros > 0 {
                    metrics
                        .cost
                        .get_or_create(&CostLabels {
                            gateway: gateway.clone(),
                            route: route.clone(),
                            backend: backend.clone(),
                            model: model.clone(),
                            subject,
                        })
                        .inc_by(micro_usd_to_usd(self.cost_micros));
                }
                if let Some(ttft) = self.ttft {
                    let timing = TimingLabels { gateway, route, backend, model };
                    metrics.ttft.get_or_create(&timing).observe(ttft.as_secs_f64());
                    if u.output > 1 {
                        let rest = elapsed.saturating_sub(ttft).as_secs_f64();
                        metrics.tpot.get_or_create(&timing).observe(rest / (u.output - 1) as f64);
                    }
                }
            }
        }
        if access_log {
            self.write(elapsed);
        }
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
        };
        crate::gateway::log::write_line(&line);
    }
}
