//! The admin port: `/metrics` (OpenMetrics text), `/healthz` (the process is up), `/readyz`
//! (every gateway of the process serves a complete, valid config) and `/config` (the config each
//! gateway serves: its hash, the credentials digest, layer and port, as JSON).

use crate::gateway::core::Core;
use crate::gateway::server::Shutdown;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

async fn metrics(State(core): State<Arc<Core>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        core.metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(core): State<Arc<Core>>) -> (StatusCode, &'static str) {
    if core.status.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn config(State(core): State<Arc<Core>>) -> impl IntoResponse {
    let body = serde_json::json!({"ready": core.status.is_ready(), "gateways": core.status.configs()});
    ([(header::CONTENT_TYPE, "application/json")], body.to_string())
}

/// Serves the admin endpoints until shutdown.
pub async fn serve(listener: TcpListener, core: Arc<Core>, mut shutdown: Shutdown) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/config", get(config))
        .with_state(core);
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
        tracing::error!(error = %e, "admin server failed");
    }
}

/// Binds the admin port on `address` and serves it in a task until shutdown.
pub async fn start(
    address: SocketAddr,
    core: Arc<Core>,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(address).await?;
    tracing::info!(%address, "admin endpoints (/metrics /healthz /readyz /config)");
    Ok(tokio::spawn(serve(listener, core, shutdown)))
}
