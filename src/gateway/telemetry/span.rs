//! The spans of a request, as the core opens them and the layers fill them in: the request's
//! server span (a child of the W3C trace context its headers carry), the client spans of its
//! upstream attempts, the context written into upstream requests (`traceparent`, `tracestate`,
//! `baggage`), and the ids a log line carries.
//!
//! Layers only record attributes ([`attr`], [`subject`], [`decision`], [`failed`]); the span
//! names and kinds, the sampling and the export are the core's. Without the `tracing` layer of
//! [`super::Traces`] in the process's subscriber (an embedding, some tests) every call here is a
//! cheap no-op and nothing is propagated.

use crate::config::Layer;
use http::HeaderMap;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use serde::Serialize;
use std::sync::LazyLock;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of the spans the core opens (the only ones the tracer takes).
pub const TARGET: &str = "cairn::request";

/// W3C Trace Context and Baggage.
static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(|| {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
});

/// The server span of one request to `gateway` (`namespace/name`), a child of the trace context
/// in `headers` when they carry one. Its name is `METHOD path` until the layer names it
/// ([`name`]).
pub fn request(gateway: &str, layer: Layer, method: &http::Method, path: &str, headers: &HeaderMap) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        otel.name = %format_args!("{method} {path}"),
        otel.kind = "server",
        otel.status_code = Empty,
        cairn.gateway = gateway,
        cairn.layer = layer.as_str(),
        http.request.method = %method,
        url.path = path,
    );
    if headers.contains_key("traceparent") || headers.contains_key("baggage") {
        let cx = PROPAGATOR.extract(&HeaderExtractor(headers));
        let _ = span.set_parent(cx);
    }
    span
}

/// The client span of one upstream call made for the request of `parent` (an attempt: retries
/// and fallbacks are siblings), named `name`.
pub fn upstream(parent: &Span, gateway: &str, name: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        parent: parent,
        "upstream",
        otel.name = name,
        otel.kind = "client",
        otel.status_code = Empty,
        cairn.gateway = gateway,
    )
}

/// Writes the trace context of `span` (and the baggage it carries) into the headers of an
/// upstream request, replacing any the caller sent.
pub fn inject(span: &Span, headers: &mut HeaderMap) {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        PROPAGATOR.inject_context(&cx, &mut HeaderInjector(headers));
    }
}

/// Renames the span (`chat gpt-4o`, `tools/call search`, `SendMessage billing`), before or
/// after it started.
pub fn name(span: &Span, name: impl Into<String>) {
    span.context().span().update_name(name.into());
}

/// Sets one attribute.
pub fn attr(span: &Span, key: &'static str, value: impl Into<opentelemetry::Value>) {
    span.set_attribute(key, value);
}

/// Records the caller.
pub fn subject(span: &Span, subject: &str) {
    span.set_attribute("cairn.subject", subject.to_string());
}

/// Records the policy's decision: `allow` or `deny`, and why (`granted`, `default-allow`, or a
/// refusal's reason such as `not-granted`, `rate_limited`, `unauthenticated`).
pub fn decision(span: &Span, allowed: bool, reason: &'static str) {
    span.set_attribute("cairn.policy.decision", if allowed { "allow" } else { "deny" });
    span.set_attribute("cairn.policy.reason", reason);
}

/// Marks the span failed: `error.type` is the low-cardinality category, the status carries the
/// message.
pub fn failed(span: &Span, category: &'static str, message: impl Into<String>) {
    span.set_attribute("error.type", category);
    span.set_status(Status::error(message.into()));
}

/// Ends the span's timing now (a span ends when its last handle is dropped, timed at the last
/// time it was entered: a stream's record enters it when the stream ends).
pub fn end_now(span: &Span) {
    span.in_scope(|| {});
}

/// The ids a log line carries to join its trace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TraceIds {
    /// 32 hex digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// 16 hex digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
}

/// The trace and span id of `span`, when it has them.
pub fn ids(span: &Span) -> TraceIds {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return TraceIds::default();
    }
    TraceIds { trace_id: Some(sc.trace_id().to_string()), span_id: Some(sc.span_id().to_string()) }
}
