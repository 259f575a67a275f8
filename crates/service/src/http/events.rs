//! `GET /events/{id}`: Server-Sent Events of one job, a `progress` event whenever its status
//! changes, then `done`, `failed` or `cancelled`, each carrying the status JSON. Woken by the
//! job's wake-ups, and re-reading its state every few seconds in case one is missed.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;

use super::Shared;
use super::jobs::checked_id;
use super::middleware::client_of;
use crate::client_limits::StreamSlot;
use crate::error::{ApiError, JobsError};
use crate::model::{JobId, JobState};
use crate::wakeups::JobWatch;

/// How long an event stream waits for a wake-up before it reads its job's state anyway (a
/// wake-up can be missed while the subscription reconnects).
const EVENTS_REREAD: Duration = Duration::from_secs(3);

/// The state of one `/events` stream between two events.
struct EventStream {
    state: Shared,
    id: JobId,
    wakeups: JobWatch,
    last: Option<serde_json::Value>,
    finished: bool,
    /// This stream's place in the per-client and per-server counts, given back with it.
    _slot: StreamSlot,
}

impl EventStream {
    async fn next_event(mut self) -> Option<(Result<SseEvent, Infallible>, EventStream)> {
        if self.finished {
            return None;
        }
        loop {
            let status = match self.state.coordinator.status(&self.id).await {
                Ok(s) => s,
                Err(JobsError::UnknownJob(_)) => return None,
                Err(_) => {
                    // Store unavailable: keep the stream and try again shortly.
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = self.state.shutdown.cancelled() => return None,
                    }
                }
            };
            let value = serde_json::to_value(&status).unwrap_or_default();
            if self.last.as_ref() != Some(&value) {
                let name = match status.state {
                    JobState::Queued | JobState::Processing => "progress",
                    over => over.as_str(),
                };
                self.finished = status.state.is_over();
                self.last = Some(value.clone());
                let event = SseEvent::default().event(name).data(value.to_string());
                return Some((Ok(event), self));
            }
            // Wait for a wake-up about this job, or re-read after a while in case one is missed.
            let reread = tokio::time::Instant::now() + EVENTS_REREAD;
            tokio::select! {
                _ = self.wakeups.wait(reread) => {}
                _ = self.state.shutdown.cancelled() => return None,
            }
        }
    }
}

/// A place for one more event stream of the request's client (refused past the client's or
/// the server's cap).
pub(super) fn stream_slot(state: &Shared, request: &Request) -> Result<StreamSlot, ApiError> {
    let client = client_of(state, request.extensions(), request.headers());
    state.client_limits.open_stream(client)
}

/// The response of an event stream, with a comment every 15 s to keep proxies from closing it.
pub(super) fn sse<S>(events: S) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>>
where
    S: Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
{
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// `GET /events/{id}`.
pub(super) async fn events(
    State(state): State<Shared>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let id = checked_id(&id)?;
    let slot = stream_slot(&state, &request)?;
    let wakeups = state.coordinator.watch(&id).await;
    state.coordinator.status(&id).await?;
    let stream = EventStream { state, id, wakeups, last: None, finished: false, _slot: slot };
    Ok(sse(futures_util::stream::unfold(stream, |s| s.next_event())))
}
