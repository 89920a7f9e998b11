//! Operations endpoints outside `/api/v1`: liveness, readiness, Prometheus metrics.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError {
            retry_after: Some(crate::error::RETRY_AFTER_SECS),
            ..ApiError::unavailable("database unreachable")
        }
    })?;
    Ok(Json(json!({"status": "ready"})))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = state.metrics.render();
    let depth = state.store.queue_depth().await.ok();
    let circuits = state.store.circuit_counts(crate::now_ms()).await.ok();
    crate::metrics::render_gauges(&mut body, depth, circuits);
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
