//! The HTTP API of DESIGN §5 on axum.
//!
//! - `middleware`: request counts, the client's rate, the API key;
//! - `body`: reading an upload's body (raw or multipart) under the upload memory budget and
//!   its timeouts, storing a large one while it arrives and finding a JPEG's restart markers
//!   on the way; refusing one before its body is read;
//! - `options`: the options of an upload, from its query and form;
//! - `upload`: `POST /upload`, and `?wait=` answered with the PNG itself;
//! - `jobs`: `/status`, `/result`, `DELETE /jobs`;
//! - `events`: `/events`, Server-Sent Events until the job is over;
//! - `batches`: `/batches`, start, read, follow and cancel a batch.
//!
//! Every refusal and failure goes out through [`ApiError`], which picks its status and code.

mod batches;
mod body;
mod events;
mod jobs;
mod middleware;
mod options;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use body::UploadMemory;

use crate::client_limits::ClientLimits;
use crate::config::SecretString;
use crate::coordinator::Coordinator;
use crate::error::ApiError;
use crate::health;
use crate::telemetry::Metrics;
use crate::web;

/// Shared state of the handlers.
pub struct AppState {
    /// The job coordinator.
    pub coordinator: Arc<Coordinator>,
    /// The batches.
    pub batches: Arc<crate::batch::Batches>,
    /// Metrics of this process.
    pub metrics: Metrics,
    /// The API key, when one is required.
    pub api_key: Option<SecretString>,
    /// Largest upload in bytes.
    pub max_upload_bytes: u64,
    /// The memory budget of upload bodies being received.
    pub upload_memory: UploadMemory,
    /// Cancelled when the server shuts down (ends event streams).
    pub shutdown: CancellationToken,
    /// Where the web page comes from.
    pub page: web::Page,
    /// Longest wait for the next bytes of an upload's body.
    pub body_idle_timeout: Duration,
    /// Longest time an upload's body may take in all.
    pub upload_timeout: Duration,
    /// Request rate and event streams per client.
    pub client_limits: Arc<ClientLimits>,
}

type Shared = Arc<AppState>;

/// The router with every route of the API and the page.
pub fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/upload", post(upload::upload))
        .route("/result/{id}", get(jobs::result))
        .route("/status/{id}", get(jobs::status))
        .route("/events/{id}", get(events::events))
        .route("/jobs/{id}", delete(jobs::cancel))
        .route("/batches", post(batches::start))
        .route("/batches/{id}", get(batches::status).delete(batches::cancel))
        .route("/batches/{id}/events", get(batches::events))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), middleware::require_api_key))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), middleware::limit_rate));
    let mut open = Router::new().route("/api/limits", get(limits)).merge(health::router(health::Health {
        transport: state.coordinator.transport().clone(),
        metrics: state.metrics.clone(),
        needs_consumers: false,
        coordinator: Some(state.coordinator.clone()),
    }));
    for path in web::Page::paths() {
        open = open.route(
            path,
            get(move |State(state): State<Shared>, headers: HeaderMap| async move {
                state.page.serve(path, &headers).unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
            }),
        );
    }
    api.merge(open)
        .fallback(page_or_not_found)
        .method_not_allowed_fallback(|request: Request| async move {
            ApiError::MethodNotAllowed(request.method().as_str().chars().take(16).collect()).into_response()
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::count_requests))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// A file of a page served from a folder (which may hold files the binary does not embed), or
/// the API's 404.
async fn page_or_not_found(State(state): State<Shared>, request: Request) -> Response {
    if request.method() == axum::http::Method::GET
        && let Some(response) = state.page.serve(request.uri().path(), request.headers())
    {
        return response;
    }
    ApiError::UnknownPath("such path".into()).into_response()
}

/// `GET /api/limits`: the upload limits, and the locations batches may use, for clients.
async fn limits(State(state): State<Shared>) -> Json<serde_json::Value> {
    let limits = state.coordinator.config().limits;
    Json(json!({
        "max_upload_bytes": state.max_upload_bytes,
        "max_pixels": limits.max_pixels,
        "max_dimension": limits.max_dimension,
        "batch_stores": state.batches.stores().allow_list().roots().iter().map(ToString::to_string).collect::<Vec<_>>(),
    }))
}
