//! The operator's metrics (Prometheus text format) and its HTTP endpoint: `/metrics`, `/healthz`
//! (the process runs), `/readyz` (every cache holds its first complete list; on the leader and on
//! a standby alike).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: &'static str,
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    kind: &'static str,
    operation: &'static str,
}

type Hist = Family<KindLabels, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Everything the operator counts.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Hist,
    compile: Hist,
    queue: Family<KindLabels, Gauge>,
    watch_restarts: Family<KindLabels, Counter>,
    watch_errors: Family<KindLabels, Counter>,
    writes: Family<WriteLabels, Counter>,
    leader: Gauge,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cairn_operator");
        let reconciles = Family::<KindLabels, Counter>::default();
        registry.register("reconciles", "Reconciles by kind of the reconciled object", reconciles.clone());
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register("reconcile_errors", "Failed reconciles by kind and error category", errors.clone());
        let duration = Hist::new_with_constructor(seconds as fn() -> Histogram);
        registry.register("reconcile_duration_seconds", "Time of one reconcile by kind", duration.clone());
        let compile = Hist::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "compile_duration_seconds",
            "Time of one namespace's compile (reads of changed Secrets included)",
            compile.clone(),
        );
        let queue = Family::<KindLabels, Gauge>::default();
        registry.register(
            "queue_depth",
            "Objects the compile stage queued for a reconcile that has not started yet",
            queue.clone(),
        );
        let watch_restarts = Family::<KindLabels, Counter>::default();
        registry.register(
            "watch_restarts",
            "Watches that relisted after the first list",
            watch_restarts.clone(),
        );
        let watch_errors = Family::<KindLabels, Counter>::default();
        registry.register("watch_errors", "Watch errors (each retried with backoff)", watch_errors.clone());
        let writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "writes",
            "Write requests by kind of the object and operation: apply (the object changed), \
             apply_unchanged (the API server found nothing to change), status, delete (prune)",
            writes.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica holds the leader Lease", leader.clone());
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            compile,
            queue,
            watch_restarts,
            watch_errors,
            writes,
            leader,
            ready: AtomicBool::new(false),
        }
    }

    /// One reconcile of `kind` took `elapsed`.
    pub fn reconciled(&self, kind: &'static str, elapsed: Duration) {
        self.reconciles.get_or_create(&KindLabels { kind }).inc();
        self.duration.get_or_create(&KindLabels { kind }).observe(elapsed.as_secs_f64());
    }

    /// A reconcile of `kind` failed.
    pub fn error(&self, kind: &'static str, category: &'static str) {
        self.errors.get_or_create(&ErrorLabels { kind, category }).inc();
    }

    /// One namespace compiled in `elapsed`.
    pub fn compiled(&self, elapsed: Duration) {
        self.compile.get_or_create(&KindLabels { kind: "Namespace" }).observe(elapsed.as_secs_f64());
    }

    /// Queue depth of `kind` moved by `delta`.
    pub fn queue(&self, kind: &'static str, delta: i64) {
        self.queue.get_or_create(&KindLabels { kind }).inc_by(delta);
    }

    /// A watch of `kind` relisted.
    pub fn watch_restart(&self, kind: &'static str) {
        self.watch_restarts.get_or_create(&KindLabels { kind }).inc();
    }

    /// A watch of `kind` failed.
    pub fn watch_error(&self, kind: &'static str) {
        self.watch_errors.get_or_create(&KindLabels { kind }).inc();
    }

    /// A write request.
    pub fn wrote(&self, kind: &'static str, operation: &'static str) {
        self.writes.get_or_create(&WriteLabels { kind, operation }).inc();
    }

    /// Leader state.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Caches synced.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Whether the caches are synced.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let m = metrics.clone();
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = m.is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = metrics.encode();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body) }
            }),
        );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
