//! The audit of every agent-gateway call and the layer's metrics. One audit event per call
//! (caller, agent, method, binding, skill, task id, outcome, status, latency, trace id): a
//! `tracing` event (target `cairn::audit`), and with `telemetry.accessLog` the same as one JSON
//! line (`"kind": "a2a.call"`) on stdout like the other layers' lines.
//! The counts go to [`super::metrics`].

use super::error::{A2aError, Binding};
use super::metrics::{AgentLabels, AgentMetrics};
use super::runtime::AgentRuntime;
use crate::gateway::clock::rfc3339_now;
use crate::gateway::log::write_line;
use crate::gateway::response::Body;
use http::Response;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

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
    pub(super) trace_id: String,
    /// Also print the line as JSON on stdout (`telemetry.accessLog`).
    pub(super) access_log: bool,
}

impl Audit {
    /// Writes the audit event (and line) and counts the call.
    pub(super) fn finish(&self, metrics: &AgentMetrics) {
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
                "time": rfc3339_now(),
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
            write_line(&line);
        }
        let labels = AgentLabels {
            gateway: self.gateway.clone(),
            agent: self.agent.clone(),
            method: self.method,
            subject: self.subject.clone(),
            outcome: self.outcome,
        };
        metrics.requests.get_or_create(&labels).inc();
        metrics.duration.get_or_create(&labels).observe(latency.as_secs_f64());
    }

    /// Notes the error the call ends with.
    pub(super) fn fail(&mut self, e: &A2aError, binding: Binding) {
        self.outcome = e.category();
        self.status = e.status(binding).as_u16();
        self.error = Some(e.to_string());
    }
}

/// The audit of a call that just arrived.
pub(super) fn audit_for(
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
