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
use crate::model::JobId;
use crate::wakeups::JobWatch;

/// How long an event stream waits for a wake-up before it reads its job's state anyway (a
/// wake-up can be missed while the subscription reconnects).
const EVENTS_REREAD: Duration = Duration::from_secs(3);

/// The last status an event stream sent, so that it sends one only when the status changed.
#[derive(Default)]
pub(super) struct LastSent(Option<serde_json::Value>);

impl LastSent {
    /// The event of `status` when it differs from the last one sent: named `progress`, or
    /// `ended` (the word of the state it ended in) once it is over.
    pub(super) fn event(&mut self, status: &impl serde::Serialize, ended: Option<&str>) -> Option<SseEvent> {
        let value = serde_json::to_value(status).unwrap_or_default();
        if self.0.as_ref() == Some(&value) {
            return None;
        }
        let event = SseEvent::default().event(ended.unwrap_or("progress")).data(value.to_string());
        self.0 = Some(value);
        Some(event)
    }
}

/// The state of one `/events` stream between two events.
struct EventStream {
    state: Shared,
    id: JobId,
    wakeups: JobWatch,
    last: LastSent,
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
            let ended = status.state.is_over().then(|| status.state.as_str());
            if let Some(event) = self.last.event(&status, ended) {
                self.finished = ended.is_some();
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
    let stream = EventStream { state, id, wakeups, last: LastSent::default(), finished: false, _slot: slot };
    Ok(sse(futures_util::stream::unfold(stream, |s| s.next_event())))
}
