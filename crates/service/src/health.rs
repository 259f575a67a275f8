//! The health and metrics endpoints, one router for `serve` and `worker`: `/healthz`
//! (liveness), `/readyz` (the broker and the store answer; for a worker, also every worker
//! task attached to the queue; for a backend whose store is above its memory watermark, ready
//! but saying that uploads are refused) and `/metrics` (OpenMetrics text, with the queue depth
//! read fresh from the broker).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::error::ApiError;
use crate::telemetry::Metrics;
use crate::transport::Transport;

/// Longest wait for the broker and the store to answer a readiness check.
const READY_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for the broker's queue depth before `/metrics` answers without refreshing it.
const DEPTH_TIMEOUT: Duration = Duration::from_secs(1);

/// What the endpoints look at.
#[derive(Clone)]
pub struct Health {
    /// The queue and store whose health decides readiness.
    pub transport: Transport,
    /// The metrics `/metrics` renders.
    pub metrics: Metrics,
    /// Ready only once every worker task consumes (a `worker` process: before that, the
    /// broker does not count it, and no strips are planned for it).
    pub needs_consumers: bool,
    /// A backend's coordinator, whose refusal of uploads for a full store `/readyz` reports.
    pub coordinator: Option<std::sync::Arc<crate::coordinator::Coordinator>>,
}

/// `/healthz`, `/readyz` and `/metrics`, for any router state.
pub fn router<S: Clone + Send + Sync + 'static>(health: Health) -> Router<S> {
    Router::new()
        .route("/healthz", get(|| async { axum::Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

async fn readyz(State(health): State<Health>) -> Response {
    let failures = match tokio::time::timeout(READY_TIMEOUT, health.transport.health()).await {
        Ok(Ok(())) => Vec::new(),
        Ok(Err(failures)) => failures,
        Err(_) => vec!["health checks timed out".into()],
    };
    let (slots, consuming) = (health.metrics.worker_slots.get(), health.metrics.consuming.get());
    let failures = if failures.is_empty() && health.needs_consumers && consuming < slots {
        vec![format!("{consuming} of {slots} worker tasks consuming")]
    } else {
        failures
    };
    if failures.is_empty() {
        // A store above its memory watermark refuses uploads, but the backend stays ready:
        // taken out of its load balancer, it could not answer the status and results of the
        // jobs it holds either (and every backend shares the store, so all would go).
        let full = health.coordinator.as_ref().and_then(|c| c.store_full());
        return match full {
            None => axum::Json(json!({ "status": "ready" })).into_response(),
            Some(full) => axum::Json(json!({
                "status": "ready",
                "uploads": "refused",
                "reason": crate::error::JobsError::StoreFull(full).to_string(),
            }))
            .into_response(),
        };
    }
    ApiError::NotReady(failures).into_response()
}

async fn metrics(State(health): State<Health>) -> Response {
    if let Ok(Ok(depth)) = tokio::time::timeout(DEPTH_TIMEOUT, health.transport.queue.depth()).await {
        health.metrics.queue_depth.set(depth as i64);
    }
    let content_type = HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");
    ([(header::CONTENT_TYPE, content_type)], Body::from(health.metrics.render())).into_response()
}
