//! The audit of every agent-gateway call and the layer's metrics. One audit event per call
//! (caller, agent, method, binding, skill, task id, context id, outcome, status, latency, trace
//! and span id): a `tracing` event (target `cairn::audit`), and with `telemetry.accessLog` the
//! same as one JSON line (`"kind": "a2a.call"`) on stdout like the other layers' lines. The call's
//! span gets the A2A attributes (`a2a.method`, `a2a.task.id`, `a2a.context.id`, `a2a.agent`,
//! `a2a.skill`, with the GenAI conventions' `invoke_agent` operation). The counts go to
//! [`super::metrics`] (the subject only with `telemetry.subjectLabels`).

use super::error::{A2aError, Binding};
use super::metrics::{AgentLabels, AgentMetrics};
use super::runtime::AgentRuntime;
use crate::gateway::clock::rfc3339_now;
use crate::gateway::log::write_line;
use crate::gateway::response::Body;
use crate::gateway::telemetry::span::{self, TraceIds};
use http::Response;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use tracing::Span;

/// What is known about a call when it ends: the audit line and the metrics.
#[derive(Clone, Debug)]
pub(super) struct Audit {
    pub(super) started: Instant,
    pub(super) gateway: Arc<str>,
    pub(super) subject: Arc<str>,
    pub(super) agent: Arc<str>,
    pub(super) method: &'static str,
    pub(super) binding: &'static str,
    pub(super) skill: Option<String>,
    pub(super) task_id: Option<String>,
    pub(super) outcome: &'static str,
    pub(super) status: u16,
    pub(super) error: Option<String>,
    pub(super) context_id: Option<String>,
    /// The call's span.
    pub(super) span: Span,
    /// Also print the line as JSON on stdout (`telemetry.accessLog`).
    pub(super) access_log: bool,
    /// Label metrics with the subject (`telemetry.subjectLabels`).
    pub(super) subject_labels: bool,
}

impl Audit {
    /// Writes the audit event (and line) and counts the call.
    pub(super) fn finish(&self, metrics: &AgentMetrics) {
        let latency = self.started.elapsed();
        let latency_ms = latency.as_secs_f64() * 1000.0;
        self.annotate();
        let TraceIds { trace_id, span_id } = span::ids(&self.span);
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
            context_id = self.context_id.as_deref(),
            trace_id = trace_id.as_deref(),
            span_id = span_id.as_deref(),
            error = self.error.as_deref(),
            "a2a call"
        );
        if self.access_log {
            let line = json!({
                "time": rfc3339_now(),
                "kind": "a2a.call",
                "gateway": &*self.gateway,
                "caller": &*self.subject,
                "agent": &*self.agent,
                "method": self.method,
                "binding": self.binding,
                "skill": self.skill,
                "task_id": self.task_id,
                "context_id": self.context_id,
                "outcome": self.outcome,
                "status": self.status,
                "latency_ms": latency_ms,
                "trace_id": trace_id,
                "span_id": span_id,
                "error": self.error,
            });
            write_line(&line);
        }
        // An agent the gateway does not know is named by the caller: not a label value.
        let agent = if self.outcome == "unknown_agent" { Arc::from("") } else { self.agent.clone() };
        let labels = AgentLabels {
            gateway: self.gateway.clone(),
            agent,
            method: self.method,
            subject: if self.subject_labels { self.subject.clone() } else { Arc::from("") },
            outcome: self.outcome,
        };
        metrics.requests.get_or_create(&labels).inc();
        metrics.duration.get_or_create(&labels).observe(latency.as_secs_f64());
    }

    /// The A2A attributes of the call's span; its end is now.
    fn annotate(&self) {
        let s = &self.span;
        span::name(s, format!("{} {}", self.method, self.agent));
        span::attr(s, "gen_ai.operation.name", "invoke_agent");
        span::attr(s, "gen_ai.agent.name", self.agent.to_string());
        span::attr(s, "a2a.method", self.method);
        span::attr(s, "a2a.agent", self.agent.to_string());
        span::attr(s, "a2a.binding", self.binding);
        if let Some(t) = &self.task_id {
            span::attr(s, "a2a.task.id", t.clone());
        }
        if let Some(c) = &self.context_id {
            span::attr(s, "a2a.context.id", c.clone());
        }
        if let Some(k) = &self.skill {
            span::attr(s, "a2a.skill", k.clone());
        }
        span::attr(s, "cairn.outcome", self.outcome);
        span::attr(s, "http.response.status_code", i64::from(self.status));
        if self.outcome != "ok" {
            span::failed(s, self.outcome, self.error.clone().unwrap_or_else(|| self.outcome.to_string()));
        }
        span::end_now(s);
    }

    /// Notes the error the call ends with.
    pub(super) fn fail(&mut self, e: &A2aError, binding: Binding) {
        self.outcome = e.category();
        self.status = e.status(binding).as_u16();
        self.error = Some(e.to_string());
    }
}

/// The audit of a call that just arrived.
pub(super) fn audit_for(rt: &AgentRuntime, agent: &str, method: &'static str, binding: Binding) -> Audit {
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
        context_id: None,
        span: Span::current(),
        access_log: rt.config.telemetry.access_log,
        subject_labels: rt.config.telemetry.subject_labels,
    }
}

/// Ends a call with `e`: audited, counted, answered in the binding.
pub(super) fn fail(
    mut audit: Audit,
    metrics: &AgentMetrics,
    e: A2aError,
    binding: Binding,
    id: &Value,
) -> Response<Body> {
    audit.fail(&e, binding);
    audit.finish(metrics);
    e.response(binding, id)
}
