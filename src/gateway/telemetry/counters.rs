//! The export counters of the traces (`cairn_trace_spans_exported_total`,
//! `cairn_trace_spans_dropped_total`), shared by the tracer provider and its export pipelines.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Labels of exported spans.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExportLabels {
    /// Gateway `namespace/name`.
    pub gateway: Arc<str>,
}

/// Labels of dropped spans.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// Gateway `namespace/name`.
    pub gateway: Arc<str>,
    /// `queue_full` or `export_failed`.
    pub reason: &'static str,
}

/// The export counters (clones share the series).
#[derive(Clone, Default)]
pub struct TraceMetrics {
    exported: Family<ExportLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
    /// Export tasks still running (they finish once their queue is closed and sent).
    pub(super) running: Arc<std::sync::atomic::AtomicUsize>,
}

impl TraceMetrics {
    pub(super) fn exported(&self, gateway: &Arc<str>, n: u64) {
        self.exported.get_or_create(&ExportLabels { gateway: gateway.clone() }).inc_by(n);
    }

    pub(super) fn dropped(&self, gateway: &Arc<str>, reason: &'static str, n: u64) {
        self.dropped.get_or_create(&DropLabels { gateway: gateway.clone(), reason }).inc_by(n);
    }

    /// Registers the counters in `registry`.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "cairn_trace_spans_exported",
            "Spans sent to the gateway's OTLP endpoint",
            self.exported.clone(),
        );
        registry.register(
            "cairn_trace_spans_dropped",
            "Spans not exported: the export queue was full, or the endpoint failed",
            self.dropped.clone(),
        );
    }
}
