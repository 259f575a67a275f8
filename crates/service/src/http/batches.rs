//! `/batches`: start a batch (`POST`, JSON), read it (`GET /batches/{id}`), follow it
//! (`GET /batches/{id}/events`, Server-Sent Events) and cancel it (`DELETE`).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;

use super::Shared;
use super::events::{LastSent, sse, stream_slot};
use super::jobs::fresh;
use super::options::idempotency_key;
use crate::client_limits::StreamSlot;
use crate::error::{ApiError, BatchError};
use crate::model::{BatchId, BatchRequest};

/// The largest request body of `POST /batches`.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How often an event stream reads its batch's status.
const EVENTS_EVERY: Duration = Duration::from_millis(500);

fn checked_id(id: &str) -> Result<BatchId, ApiError> {
    BatchId::parse(id)
        .ok_or_else(|| ApiError::UnknownPath(format!("batch {:?}", id.chars().take(64).collect::<String>())))
}

/// `POST /batches`: `202` with the batch's links (`200` with an earlier batch's, for a
/// repeated `Idempotency-Key`).
pub(super) async fn start(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::InvalidOption(format!(
            "a batch request has at most {MAX_REQUEST_BYTES} bytes of JSON"
        )));
    }
    let request: BatchRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::InvalidOption(format!(
            "the body must be JSON {{\"source\": URL, \"destination\": URL, \"options\": {{...}}}}: {e}"
        ))
    })?;
    request.options.validate()?;
    let (links, new) = state.batches.start(request, key.as_deref()).await?;
    let status = if new { StatusCode::ACCEPTED } else { StatusCode::OK };
    let mut response = (status, Json(&links)).into_response();
    if let Ok(location) = HeaderValue::from_str(&links.status_url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /batches/{id}`.
pub(super) async fn status(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = checked_id(&id)?;
    Ok(fresh(state.batches.status(&id).await?))
}

/// `DELETE /batches/{id}`: cancels the batch; answers its status (state `cancelled`).
pub(super) async fn cancel(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = checked_id(&id)?;
    Ok(fresh(state.batches.cancel(&id).await?))
}

/// The state of one batch event stream between two events.
struct BatchEvents {
    state: Shared,
    id: BatchId,
    last: LastSent,
    finished: bool,
    _slot: StreamSlot,
}

impl BatchEvents {
    async fn next_event(mut self) -> Option<(Result<SseEvent, Infallible>, BatchEvents)> {
        if self.finished {
            return None;
        }
        loop {
            match self.state.batches.status(&self.id).await {
                Ok(status) => {
                    let ended = status.state.is_over().then(|| status.state.as_str());
                    if let Some(event) = self.last.event(&status, ended) {
                        self.finished = ended.is_some();
                        return Some((Ok(event), self));
                    }
                }
                Err(BatchError::UnknownBatch(_)) => return None,
                Err(_) => {} // the store does not answer: try again shortly
            }
            tokio::select! {
                _ = tokio::time::sleep(EVENTS_EVERY) => {}
                _ = self.state.shutdown.cancelled() => return None,
            }
        }
    }
}

/// `GET /batches/{id}/events`: a `progress` event whenever the counts change, then `done`,
/// `failed` or `cancelled`, each with the status JSON.
pub(super) async fn events(
    State(state): State<Shared>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let id = checked_id(&id)?;
    let slot = stream_slot(&state, &request)?;
    state.batches.status(&id).await?;
    let stream = BatchEvents { state, id, last: LastSent::default(), finished: false, _slot: slot };
    Ok(sse(futures_util::stream::unfold(stream, |s| s.next_event())))
}
