//! The operator's trace spans (docs/telemetry.md): one per reconcile of an object, with a child
//! per stage it runs (`render`, `apply`, `status`), and one per compile of a namespace. They are
//! plain `tracing` spans of target [`TARGET`]; `cairn operator` exports them over OTLP when it is
//! given an endpoint (`--otlp-endpoint`, `OTEL_EXPORTER_OTLP_ENDPOINT`), and the events logged
//! inside them (`pruned`, `generated the gateway's keys`) become span events.
//!
//! Span names are low-cardinality (`reconcile AIGateway`, `compile`); the object is in the
//! attributes: `k8s.namespace.name`, `cairn.kind`, `cairn.name`; the end in `cairn.outcome`
//! (`ok` or `error`; on `error`, `error.type` is the error's category, as in
//! `cairn_operator_reconcile_errors_total`, and the span's status carries the message) and, for
//! a gateway, `cairn.programmed` (`True`, `Invalid`, `NotCompiled`).

use super::error::Error;
use tracing::Span;
use tracing::field::Empty;

/// The target of the operator's spans.
pub const TARGET: &str = "cairn::reconcile";

/// The span of one reconcile of `kind` `namespace/name`.
pub fn reconcile(kind: &'static str, namespace: &str, name: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "reconcile",
        otel.name = %format_args!("reconcile {kind}"),
        otel.status_code = Empty,
        otel.status_description = Empty,
        k8s.namespace.name = namespace,
        cairn.kind = kind,
        cairn.name = name,
        cairn.outcome = Empty,
        cairn.programmed = Empty,
        error.type = Empty,
    )
}

/// The span of one stage of the current reconcile: `render`, `apply` or `status`.
pub fn stage(name: &'static str) -> Span {
    tracing::info_span!(target: TARGET, "stage", otel.name = name, otel.status_code = Empty)
}

/// The span of one compile of `namespace`; [`compiled`] records what came out.
pub fn compile(namespace: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "compile",
        otel.status_code = Empty,
        otel.status_description = Empty,
        k8s.namespace.name = namespace,
        cairn.outcome = Empty,
        error.type = Empty,
        cairn.objects = Empty,
        cairn.gateways = Empty,
        cairn.diagnostics = Empty,
    )
}

/// Records on the current compile span what its compile produced.
pub fn compiled(objects: usize, gateways: usize, diagnostics: usize) {
    let span = Span::current();
    span.record("cairn.objects", objects as u64);
    span.record("cairn.gateways", gateways as u64);
    span.record("cairn.diagnostics", diagnostics as u64);
}

/// Records on the current reconcile span a gateway's `Programmed` state: `True`, `Invalid`
/// (render or the API server refused its objects) or `NotCompiled`.
pub fn programmed(state: &'static str) {
    Span::current().record("cairn.programmed", state);
}

/// Records how `span` ended: `ok`, or `error` with the error's category and message.
pub fn ended<T>(span: &Span, result: &Result<T, Error>) {
    match result {
        Ok(_) => ok(span),
        Err(e) => failed(span, e.category(), &e.to_string()),
    }
}

/// Marks `span` ended well.
pub fn ok(span: &Span) {
    span.record("cairn.outcome", "ok");
}

/// Marks `span` failed: `error.type` is `category`, the status carries `message`.
pub fn failed(span: &Span, category: &'static str, message: &str) {
    span.record("cairn.outcome", "error");
    span.record("error.type", category);
    span.record("otel.status_code", "error");
    span.record("otel.status_description", message);
}
