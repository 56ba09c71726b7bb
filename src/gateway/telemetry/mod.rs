//! Traces: the one place a Cairn process sets up OpenTelemetry (docs/telemetry.md).
//!
//! The process has one tracer provider ([`Traces`]). `tracing` spans are its spans: the
//! subscriber of `cairn run` and `cairn gateway` includes [`Traces::layer`]
//! (`tracing-opentelemetry`), so the spans the core opens for requests and upstream attempts
//! ([`span`]), with the attributes the layers record on them, are the spans exported, and the
//! access and audit lines carry their `trace_id` and `span_id`.
//!
//! A process that is not a gateway (`cairn operator`, whose reconcile spans `main.rs` exports
//! with this provider: the operator names no gateway module) takes the spans of its own targets
//! ([`Traces::for_targets`]) and exports all of them to one endpoint ([`Traces::export_all`]).
//!
//! Export follows each gateway's `telemetry` settings, kept up to date by the supervisor
//! ([`Traces::configure`]): every span carries `cairn.gateway`, and
//! - the sampler is parent-based: a request whose `traceparent` is sampled is sampled, one
//!   whose `traceparent` is not is not, and a trace the gateway starts is sampled at the
//!   gateway's `samplingRatio` (never when it exports nowhere);
//! - finished spans go to their gateway's [`export::Pipeline`] (OTLP over gRPC or HTTP), whose
//!   bounded queue never makes a request wait; spans of gateways without an endpoint are let go.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `cairn_trace_spans_exported_total` | counter | gateway |
//! | `cairn_trace_spans_dropped_total` | counter | gateway, reason (`queue_full`, `export_failed`) |

mod counters;
pub mod export;
pub mod span;

pub use counters::{DropLabels, ExportLabels, TraceMetrics};

use crate::config::{GatewayId, OtlpConfig, TelemetryConfig};
use crate::gateway::http_client::HttpClient;
use arc_swap::ArcSwap;
use export::{ExporterError, Pipeline};
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, SdkTracer, SdkTracerProvider, ShouldSample, SpanData,
    SpanProcessor,
};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::filter::{Filtered, Targets};

/// The span attribute naming a span's gateway (`namespace/name`).
pub const GATEWAY: &str = "cairn.gateway";

/// The route of the spans that name no gateway ([`Traces::export_all`]).
const PROCESS: &str = "";

/// Where one gateway's spans go.
struct Route {
    otlp: OtlpConfig,
    pipeline: Pipeline,
}

type Routes = ArcSwap<HashMap<Arc<str>, Arc<Route>>>;

/// The process's tracer provider and the export settings of its gateways (clones share them).
#[derive(Clone)]
pub struct Traces {
    provider: SdkTracerProvider,
    routes: Arc<Routes>,
    metrics: TraceMetrics,
    targets: Targets,
}

impl Default for Traces {
    fn default() -> Self {
        Self::new()
    }
}

impl Traces {
    /// A gateway process's provider, exporting nothing until a gateway is configured with an
    /// endpoint. It takes the spans of requests (target `cairn::request`).
    pub fn new() -> Traces {
        Traces::for_targets(Targets::new().with_target(span::TARGET, tracing::Level::INFO))
    }

    /// A provider taking the spans (and, as span events, the events inside them) of `targets`,
    /// exporting nothing until [`Traces::configure`] or [`Traces::export_all`] says where.
    pub fn for_targets(targets: Targets) -> Traces {
        let routes: Arc<Routes> = Arc::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(GatewaySampler { routes: routes.clone() })
            .with_span_processor(Router { routes: routes.clone() })
            .build();
        Traces { provider, routes, metrics: TraceMetrics::default(), targets }
    }

    /// The `tracing` layer whose spans are this provider's: add it to the process's subscriber.
    /// It takes the spans of the provider's targets whatever the log filter says (`RUST_LOG`
    /// chooses what is logged, not what is traced).
    pub fn layer<S>(&self) -> Filtered<OpenTelemetryLayer<S, SdkTracer>, Targets, S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use opentelemetry::trace::TracerProvider;
        use tracing_subscriber::Layer;
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("cairn"))
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(self.targets.clone())
    }

    /// Registers the export counters in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        self.metrics.register(registry);
    }

    /// Follows a gateway's telemetry settings: starts, replaces or stops its export. An exporter
    /// that cannot be built leaves the gateway exporting nothing.
    pub fn configure(
        &self,
        gw: &GatewayId,
        t: &TelemetryConfig,
        http: HttpClient,
    ) -> Result<(), ExporterError> {
        let key: Arc<str> = Arc::from(format!("{}/{}", gw.namespace, gw.name));
        let current = self.routes.load().get(&key).cloned();
        let route = match &t.otlp {
            None => None,
            Some(o) if current.as_ref().is_some_and(|c| c.otlp == *o) => current,
            Some(o) => {
                let resource = resource(gw);
                match Pipeline::start(o, key.clone(), resource, http, self.metrics.clone()) {
                    Ok(pipeline) => Some(Arc::new(Route { otlp: o.clone(), pipeline })),
                    Err(e) => {
                        self.set(&key, None);
                        return Err(e);
                    }
                }
            }
        };
        self.set(&key, route);
        Ok(())
    }

    /// Exports every span that names no gateway (all of a process that is not one) to `otlp`,
    /// as the spans of `service` (`service.name`). It needs a Tokio runtime (the export task).
    pub fn export_all(
        &self,
        service: &str,
        otlp: &OtlpConfig,
        http: HttpClient,
    ) -> Result<(), ExporterError> {
        let key: Arc<str> = Arc::from(PROCESS);
        let mut resource = vec![
            KeyValue::new("service.name", service.to_string()),
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        ];
        resource.extend(instance());
        let pipeline = Pipeline::start(otlp, key.clone(), resource, http, self.metrics.clone())?;
        self.set(&key, Some(Arc::new(Route { otlp: otlp.clone(), pipeline })));
        Ok(())
    }

    /// Stops exporting the spans of `gateway` (`namespace/name`).
    pub fn remove(&self, gateway: &str) {
        self.set(&Arc::from(gateway), None);
    }

    fn set(&self, key: &Arc<str>, route: Option<Arc<Route>>) {
        self.routes.rcu(|m| {
            let mut m = HashMap::clone(m);
            match &route {
                Some(r) => m.insert(key.clone(), r.clone()),
                None => m.remove(key),
            };
            m
        });
    }

    /// Stops every export, giving queued spans up to `grace` to be sent.
    pub async fn shutdown(&self, grace: Duration) {
        let routes = self.routes.swap(Arc::default());
        drop(routes);
        // The pipelines' tasks send what they hold once their queues close; give them time.
        let _ = tokio::time::timeout(grace, async {
            while self.metrics_pending() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    fn metrics_pending(&self) -> bool {
        self.metrics.running.load(std::sync::atomic::Ordering::Acquire) > 0
    }
}

/// What a gateway's spans say about where they come from.
fn resource(gw: &GatewayId) -> Vec<KeyValue> {
    let mut r = vec![
        KeyValue::new("service.name", format!("{}-{}-gateway", gw.name, gw.layer)),
        KeyValue::new("service.namespace", gw.namespace.clone()),
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new(GATEWAY, format!("{}/{}", gw.namespace, gw.name)),
        KeyValue::new("cairn.layer", gw.layer.as_str()),
    ];
    r.extend(instance());
    r
}

/// `service.instance.id`: the pod's name.
fn instance() -> Option<KeyValue> {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty())?;
    Some(KeyValue::new("service.instance.id", host))
}

/// The route of a span: its gateway's, or the process's when it names none.
fn route_of<'a>(
    routes: &'a HashMap<Arc<str>, Arc<Route>>,
    attributes: &[KeyValue],
) -> Option<&'a Arc<Route>> {
    match attributes.iter().find(|kv| kv.key.as_str() == GATEWAY) {
        Some(kv) => routes.get(kv.value.as_str().as_ref()),
        None => routes.get(PROCESS),
    }
}

/// Parent-based sampling with each gateway's ratio (the process's, for spans that name no
/// gateway) for the traces it starts.
#[derive(Clone, Debug)]
struct GatewaySampler {
    routes: Arc<Routes>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route").field("otlp", &self.otlp).finish()
    }
}

impl ShouldSample for GatewaySampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        if let Some(parent) =
            parent_context.map(|cx| cx.span().span_context().clone()).filter(|sc| sc.is_valid())
        {
            let decision =
                if parent.is_sampled() { SamplingDecision::RecordAndSample } else { SamplingDecision::Drop };
            return SamplingResult {
                decision,
                attributes: Vec::new(),
                trace_state: parent.trace_state().clone(),
            };
        }
        let ratio = route_of(&self.routes.load(), attributes).map(|r| r.otlp.sampling_ratio);
        match ratio {
            Some(r) => Sampler::TraceIdRatioBased(r)
                .should_sample(None, trace_id, name, span_kind, attributes, links),
            None => SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: Default::default(),
            },
        }
    }
}

/// Sends each finished span to its gateway's pipeline (the process's, when it names none).
#[derive(Debug)]
struct Router {
    routes: Arc<Routes>,
}

impl SpanProcessor for Router {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let route = route_of(&self.routes.load(), &span.attributes).cloned();
        if let Some(r) = route {
            r.pipeline.push(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}
