//! One gateway's span export: a bounded queue in front of an OTLP exporter (gRPC or HTTP), and a
//! task that sends the queue in batches. A request never waits for it: a span that finds the
//! queue full is dropped and counted (`cairn_trace_spans_dropped_total{reason="queue_full"}`),
//! and so are the spans of a batch the endpoint refused or did not take in time
//! (`reason="export_failed"`).
//!
//! Hand-written around the SDK's exporter rather than the SDK's `BatchSpanProcessor`: that one
//! keeps its count of dropped spans private (it only logs it at shutdown), and the drop metric
//! is what tells an operator that traces are missing.

use super::counters::TraceMetrics;
use crate::config::{OtlpConfig, OtlpProtocol};
use crate::gateway::http_client::{HttpClient, error_chain};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// Spans waiting for export, per gateway, before new ones are dropped.
pub const QUEUE: usize = 4096;
/// Most spans sent in one export call.
pub const BATCH: usize = 512;
/// Longest a span waits for its batch to fill.
pub const DELAY: Duration = Duration::from_millis(500);
/// Longest one export call may take (the exporter's own timeout too).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a gateway's exporter cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("OTLP exporter for {endpoint}: {reason}")]
pub struct ExporterError {
    /// The endpoint.
    pub endpoint: String,
    /// The exporter's message.
    pub reason: String,
}

/// The queue of one gateway's spans and its export task (stopped when the pipeline is dropped,
/// after sending what was queued).
pub struct Pipeline {
    tx: mpsc::Sender<SpanData>,
    gateway: Arc<str>,
    metrics: TraceMetrics,
}

impl Pipeline {
    /// Starts exporting to `otlp` the spans of `gateway` (a `layer` gateway), described by
    /// `resource`.
    pub fn start(
        otlp: &OtlpConfig,
        gateway: Arc<str>,
        resource: Vec<KeyValue>,
        http: HttpClient,
        metrics: TraceMetrics,
    ) -> Result<Pipeline, ExporterError> {
        let err = |e: &(dyn std::error::Error + 'static)| ExporterError {
            endpoint: otlp.endpoint.clone(),
            reason: error_chain(e),
        };
        let mut exporter = match otlp.protocol {
            OtlpProtocol::Grpc => {
                let mut b = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(otlp.endpoint.clone())
                    .with_timeout(EXPORT_TIMEOUT);
                if otlp.endpoint.starts_with("https://") {
                    b = b.with_tls_config(
                        opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                            .with_enabled_roots(),
                    );
                }
                b.build().map_err(|e| err(&e))?
            }
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(otlp.endpoint.clone())
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_timeout(EXPORT_TIMEOUT)
                .with_http_client(Client(http))
                .build()
                .map_err(|e| err(&e))?,
        };
        exporter.set_resource(&Resource::builder_empty().with_attributes(resource).build());
        let (tx, rx) = mpsc::channel(QUEUE);
        metrics.running.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(run(exporter, rx, gateway.clone(), metrics.clone()));
        Ok(Pipeline { tx, gateway, metrics })
    }

    /// Queues a finished span; drops it (counted) when the queue is full.
    pub fn push(&self, span: SpanData) {
        if self.tx.try_send(span).is_err() {
            self.metrics.dropped(&self.gateway, "queue_full", 1);
        }
    }
}

async fn run(
    exporter: opentelemetry_otlp::SpanExporter,
    mut rx: mpsc::Receiver<SpanData>,
    gateway: Arc<str>,
    metrics: TraceMetrics,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + DELAY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let spans = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        match tokio::time::timeout(EXPORT_TIMEOUT * 2, exporter.export(spans)).await {
            Ok(Ok(())) => metrics.exported(&gateway, n),
            Ok(Err(e)) => {
                metrics.dropped(&gateway, "export_failed", n);
                tracing::debug!(gateway = %gateway, error = %e, spans = n, "span export failed");
            }
            Err(_) => {
                metrics.dropped(&gateway, "export_failed", n);
                tracing::debug!(gateway = %gateway, spans = n, "span export timed out");
            }
        }
    }
    let _ = exporter.shutdown();
    metrics.running.fetch_sub(1, Ordering::AcqRel);
}

/// The gateway's HTTP client as the OTLP HTTP exporter's client.
#[derive(Clone)]
struct Client(HttpClient);

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cairn HTTP client")
    }
}

/// Largest answer read from an OTLP endpoint.
const MAX_ANSWER: usize = 4 << 20;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let resp = self.0.request(http::Request::from_parts(parts, Full::new(body))).await?;
        let (parts, body) = resp.into_parts();
        let body = http_body_util::Limited::new(body, MAX_ANSWER).collect().await?.to_bytes();
        Ok(http::Response::from_parts(parts, body))
    }
}
