//! One audit line per tool call, and the MCP layer's Prometheus metrics.
//!
//! The audit line is one JSON object on stdout (like the AI layer's access log), with `time`,
//! `kind` (`mcp.tool_call`), `gateway`, `subject`, `session` (a short digest: ids are bearer
//! secrets), `server`, `tool`, `arguments_sha256` (hex SHA-256 of the arguments' JSON; the
//! arguments themselves only when the server sets `auditArguments`), `outcome` (`ok`,
//! `tool_error`, `error`, `forbidden`, `not_exposed`, `rate_limited`, `timeout`,
//! `backend_error`, `session_gone`, `client_gone`, `store_unavailable`), `latency_ms`, and the
//! `trace_id` and `span_id` of the request's span. `subject` in the metrics is the Agent only when
//! the gateway sets `telemetry.subjectLabels` (empty otherwise).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `cairn_mcp_tool_calls_total` | counter | gateway, server, tool, subject, outcome |
//! | `cairn_mcp_tool_call_duration_seconds` | histogram | gateway, server, tool, outcome |
//! | `cairn_mcp_backend_errors_total` | counter | gateway, server, operation |
//! | `cairn_mcp_sessions_total` | counter | gateway, era |
//! | `cairn_mcp_dropped_messages_total` | counter | gateway, reason |
//!
//! A dropped message is one a backend sent on its standalone stream (a server→client request
//! or notification) that never reached the client: `session_ended` (the session was deleted or
//! expired before the client listened), `buffer_full` (more waiting than a session buffers; see
//! [`super::streams`]).

use crate::gateway::metrics::Denials;
use crate::gateway::telemetry::span::{self, TraceIds};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Span;

/// Labels of a tool call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// Gateway `namespace/name`.
    pub gateway: String,
    /// MCPServer name.
    pub server: String,
    /// Unprefixed tool name.
    pub tool: String,
    /// Caller.
    pub subject: String,
    /// Outcome.
    pub outcome: String,
}

/// Labels of a call duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DurationLabels {
    /// Gateway.
    pub gateway: String,
    /// MCPServer name.
    pub server: String,
    /// Tool.
    pub tool: String,
    /// Outcome.
    pub outcome: String,
}

/// Labels of a backend failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// Gateway.
    pub gateway: String,
    /// MCPServer name.
    pub server: String,
    /// What failed (`initialize`, `tools/list`, …).
    pub operation: String,
}

/// Labels of sessions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabels {
    /// Gateway.
    pub gateway: String,
    /// `session` or `stateless`.
    pub era: String,
}

/// Labels of dropped messages.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DroppedLabels {
    /// Gateway.
    pub gateway: String,
    /// `session_ended` or `buffer_full`.
    pub reason: String,
}

/// The MCP layer's metrics, registered in the process's registry when the layer is created;
/// clones share the counters.
#[derive(Clone)]
pub struct McpMetrics {
    /// Tool calls.
    pub calls: Family<CallLabels, Counter>,
    /// Tool call durations.
    pub durations: Family<DurationLabels, Histogram, fn() -> Histogram>,
    /// Backend failures.
    pub backend_errors: Family<BackendLabels, Counter>,
    /// Sessions opened (session era) or stateless requests served.
    pub sessions: Family<SessionLabels, Counter>,
    /// Server→client messages that never reached the client.
    pub dropped: Family<DroppedLabels, Counter>,
    /// The core's denial counter.
    pub denials: Denials,
    /// The call counter and duration histogram of each label set seen, looked up without
    /// building the label sets (see [`McpMetrics::count_call`]).
    resolved: Arc<Mutex<HashMap<Vec<u8>, CallHandles>>>,
}

/// The metrics of one (gateway, server, tool, subject, outcome).
struct CallHandles {
    calls: Counter,
    duration: Histogram,
}

/// Most label sets whose handles are kept (more are counted through the families).
const RESOLVED_MAX: usize = 4096;

fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

impl McpMetrics {
    /// Registers the MCP metrics in `registry`.
    pub fn new(registry: &mut Registry, denials: Denials) -> Self {
        let calls = Family::<CallLabels, Counter>::default();
        let durations = Family::<DurationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            seconds as fn() -> Histogram,
        );
        let backend_errors = Family::<BackendLabels, Counter>::default();
        let sessions = Family::<SessionLabels, Counter>::default();
        registry.register("cairn_mcp_tool_calls", "MCP tool calls, by outcome", calls.clone());
        registry.register_with_unit(
            "cairn_mcp_tool_call_duration",
            "Time from receiving a tool call to its response",
            Unit::Seconds,
            durations.clone(),
        );
        registry.register(
            "cairn_mcp_backend_errors",
            "MCP server failures (a failing server is left out of lists)",
            backend_errors.clone(),
        );
        registry.register("cairn_mcp_sessions", "MCP sessions opened", sessions.clone());
        let dropped = Family::<DroppedLabels, Counter>::default();
        registry.register(
            "cairn_mcp_dropped_messages",
            "Server-to-client MCP messages (requests, notifications) that never reached the client",
            dropped.clone(),
        );
        McpMetrics {
            calls,
            durations,
            backend_errors,
            sessions,
            dropped,
            denials,
            resolved: Default::default(),
        }
    }

    /// Counts a tool call and observes its duration.
    pub fn count_call(
        &self,
        gateway: &str,
        server: &str,
        tool: &str,
        subject: &str,
        outcome: &str,
        secs: f64,
    ) {
        // The key of the label set, written into a buffer each thread reuses: each part with its
        // length before it, so no two label sets share a key.
        thread_local! {
            static KEY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        KEY.with_borrow_mut(|key| {
            key.clear();
            for part in [gateway, server, tool, subject, outcome] {
                key.extend_from_slice(&(part.len() as u64).to_le_bytes());
                key.extend_from_slice(part.as_bytes());
            }
            let mut resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(h) = resolved.get(key.as_slice()) {
                h.calls.inc();
                h.duration.observe(secs);
                return;
            }
            let h = CallHandles {
                calls: self
                    .calls
                    .get_or_create(&CallLabels {
                        gateway: gateway.into(),
                        server: server.into(),
                        tool: tool.into(),
                        subject: subject.into(),
                        outcome: outcome.into(),
                    })
                    .clone(),
                duration: self
                    .durations
                    .get_or_create(&DurationLabels {
                        gateway: gateway.into(),
                        server: server.into(),
                        tool: tool.into(),
                        outcome: outcome.into(),
                    })
                    .clone(),
            };
            h.calls.inc();
            h.duration.observe(secs);
            if resolved.len() < RESOLVED_MAX {
                resolved.insert(key.clone(), h);
            }
        });
    }

    /// Counts `n` server→client messages dropped for `reason`, and logs it.
    pub fn dropped(&self, gateway: &str, reason: &str, n: u64) {
        if n == 0 {
            return;
        }
        tracing::warn!(target: "cairn::mcp", gateway, reason, n, "MCP server-to-client messages dropped");
        self.dropped
            .get_or_create(&DroppedLabels { gateway: gateway.into(), reason: reason.into() })
            .inc_by(n);
    }

    /// Counts a backend failure and logs it.
    pub fn backend_error(&self, gateway: &str, server: &str, operation: &str, error: &dyn std::fmt::Display) {
        tracing::warn!(target: "cairn::mcp", gateway, server, operation, error = %error, "MCP server failed; left out");
        self.backend_errors
            .get_or_create(&BackendLabels {
                gateway: gateway.into(),
                server: server.into(),
                operation: operation.into(),
            })
            .inc();
    }
}

/// Hex SHA-256 of a JSON value's serialization (`null` when absent).
pub fn digest(arguments: Option<&Value>) -> String {
    let mut h = Sha256::new();
    serde_json::to_writer(&mut h, arguments.unwrap_or(&Value::Null)).expect("json");
    hex64(&h.finalize().into())
}

/// Lower-case hex of a SHA-256 (`hex::encode` goes char by char, ten times slower).
fn hex64(sha: &[u8; 32]) -> String {
    let mut out = [0u8; 64];
    hex::encode_to_slice(sha, &mut out).expect("64 hex digits for 32 bytes");
    String::from_utf8(out.to_vec()).expect("hex is ASCII")
}

/// What the audit line keeps of a call's arguments: their digest, and the arguments themselves
/// when the server asks for them to be logged. Taken when the call arrives, so the arguments
/// need not be copied to outlive the request that goes on to the server.
pub struct Arguments {
    sha256: String,
    logged: Option<Value>,
}

impl Arguments {
    /// The digest of `arguments`, and a copy of them if `log`.
    pub fn new(arguments: Option<&Value>, log: bool) -> Self {
        Arguments { sha256: digest(arguments), logged: if log { arguments.cloned() } else { None } }
    }

    /// The same from the arguments as sent (JSON read before): the digest is of their
    /// serialization as a value, as [`Arguments::new`]'s, whatever the spacing or escapes sent.
    pub fn from_raw(arguments: Option<&serde_json::value::RawValue>, log: bool) -> Self {
        match arguments {
            // Already the serialization: hashed as it is, no value built.
            Some(a) if !log && super::wire::is_canonical(a.get()) => {
                Arguments { sha256: hex64(&Sha256::digest(a.get()).into()), logged: None }
            }
            _ => {
                let value: Option<Value> =
                    arguments.map(|a| serde_json::from_str(a.get()).expect("arguments were read as JSON"));
                Arguments { sha256: digest(value.as_ref()), logged: if log { value } else { None } }
            }
        }
    }
}

/// The audit line, as written.
#[derive(serde::Serialize)]
struct AuditLine<'a> {
    time: String,
    kind: &'static str,
    gateway: &'a str,
    subject: &'a str,
    session: &'a str,
    server: &'a str,
    tool: &'a str,
    arguments_sha256: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a Value>,
    outcome: &'a str,
    latency_ms: f64,
    #[serde(flatten)]
    trace: TraceIds,
}

/// One tool call, for the audit line and the metrics.
pub struct ToolCall<'a> {
    /// Where to count it.
    pub metrics: &'a McpMetrics,
    /// Gateway.
    pub gateway: &'a str,
    /// Caller.
    pub subject: &'a str,
    /// The session as the audit line names it ([`crate::gateway::mcp::session::OpenSession::digest`]:
    /// ids are credentials), empty for stateless calls.
    pub session: &'a str,
    /// MCPServer name.
    pub server: &'a str,
    /// Unprefixed tool.
    pub tool: &'a str,
    /// Arguments.
    pub arguments: &'a Arguments,
    /// The request's span.
    pub span: &'a Span,
    /// Whether metrics carry the subject (`telemetry.subjectLabels`).
    pub subject_labels: bool,
}

impl ToolCall<'_> {
    /// Writes the audit line, counts the call and ends its span.
    pub fn finish(&self, outcome: &'static str, latency: Duration) {
        span::attr(self.span, "cairn.outcome", outcome);
        if outcome != "ok" {
            span::failed(self.span, outcome, format!("tool call ended: {outcome}"));
        }
        span::end_now(self.span);
        let latency_ms = latency.as_secs_f64() * 1000.0;
        let time = crate::gateway::clock::rfc3339_now();
        let line = AuditLine {
            time,
            kind: "mcp.tool_call",
            gateway: self.gateway,
            subject: self.subject,
            session: self.session,
            server: self.server,
            tool: self.tool,
            arguments_sha256: &self.arguments.sha256,
            arguments: self.arguments.logged.as_ref(),
            outcome,
            latency_ms,
            trace: span::ids(self.span),
        };
        crate::gateway::log::write_line(&line);
        self.metrics.count_call(
            self.gateway,
            self.server,
            // A tool the server does not expose is named by the caller: not a label value.
            if outcome == "not_exposed" { "" } else { self.tool },
            if self.subject_labels { self.subject } else { "" },
            outcome,
            latency.as_secs_f64(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_as_sent_digest_as_their_value() {
        for raw in [
            r#"{"q":"x","n":1,"deep":{"a":[true,false,null,-12,"é ☃"]}}"#,
            r#"{ "q" : "x" }"#,
            r#"{"q":"a\"b\u0041\/"}"#,
            r#"{"n":1.0,"m":1e3,"k":-0,"big":123456789012345678901234}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"o":{"a":1,"b":{"a":2},"a":3}}"#,
            r#"[1,2,{"a":"b"}]"#,
            r#""text""#,
            r#"null"#,
            "{}",
        ] {
            let r: &serde_json::value::RawValue = serde_json::from_str(raw).unwrap();
            let v: Value = serde_json::from_str(raw).unwrap();
            for log in [false, true] {
                let got = Arguments::from_raw(Some(r), log);
                let want = Arguments::new(Some(&v), log);
                assert_eq!(got.sha256, want.sha256, "{raw}");
                assert_eq!(got.logged, want.logged, "{raw}");
            }
        }
        assert_eq!(Arguments::from_raw(None, false).sha256, Arguments::new(None, false).sha256);
    }

    #[test]
    fn digest_is_stable_and_metrics_encode() {
        let a = serde_json::json!({"q": "x"});
        assert_eq!(digest(Some(&a)), digest(Some(&a.clone())));
        assert_ne!(digest(Some(&a)), digest(None));
        let mut registry = Registry::default();
        let metrics = McpMetrics::new(&mut registry, Denials::default());
        ToolCall {
            metrics: &metrics,
            gateway: "ns/gw",
            subject: "bot",
            session: "s",
            server: "gh",
            tool: "search",
            arguments: &Arguments::new(Some(&a), false),
            span: &Span::none(),
            subject_labels: true,
        }
        .finish("ok", Duration::from_millis(3));
        // Counted again through the resolved handles, and a label set that only differs in
        // where its parts split is a label set of its own.
        for (server, tool) in [("gh", "search"), ("g", "hsearch")] {
            metrics.count_call("ns/gw", server, tool, "bot", "ok", 0.001);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("cairn_mcp_tool_calls_total{gateway=\"ns/gw\",server=\"gh\",tool=\"search\",subject=\"bot\",outcome=\"ok\"} 2"), "{text}");
        assert!(text.contains("cairn_mcp_tool_calls_total{gateway=\"ns/gw\",server=\"g\",tool=\"hsearch\",subject=\"bot\",outcome=\"ok\"} 1"), "{text}");
        assert!(text.contains("cairn_mcp_tool_call_duration_seconds_count{gateway=\"ns/gw\",server=\"gh\",tool=\"search\",outcome=\"ok\"} 2"), "{text}");
    }
}
