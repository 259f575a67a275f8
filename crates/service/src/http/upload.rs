//! `POST /upload`: checks what can be checked before the body (options in the query,
//! admission, the upload memory), reads the body, submits the job, and answers `202` with its
//! links, or with `?wait=` the PNG itself (or the job's refusal) when it is ready in time.

use std::time::Duration;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::body::{Reading, Received, declared_length, read_upload, refuse_unread, upload_sink};
use super::options::{UploadOptions, idempotency_key};
use super::{AppState, Shared};
use crate::coordinator::{Submitted, Upload};
use crate::error::{ApiError, JobsError};
use crate::model::{JobId, JobLinks, JobState, JobStatus};
use crate::wakeups::JobWatch;

/// How often a `?wait=` request reads its job when no wake-up comes.
const WAIT_RECHECK: Duration = Duration::from_secs(1);

/// The answer of a finished job: its result file (with the media type and file name of its
/// format), cached as long as results are kept.
pub(super) fn result_response(state: &AppState, status: &JobStatus, file: Bytes) -> Response {
    let (id, format) = (&status.id, status.options.format);
    let mut response = (StatusCode::OK, file).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.media_type()));
    let max_age = state.coordinator.config().result_ttl.as_secs();
    if let Ok(v) = HeaderValue::from_str(&format!("private, max-age={max_age}, immutable")) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    if let Ok(v) =
        HeaderValue::from_str(&format!("inline; filename=\"dsobel-{}.{}\"", id.short(), format.extension()))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        headers.insert("x-dsobel-job-id", v);
    }
    response
}

/// `POST /upload`.
pub(super) async fn upload(
    State(state): State<Shared>,
    Query(query): Query<Vec<(String, String)>>,
    request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    let declared = declared_length(&request);
    let mut options = UploadOptions::default();
    // A raw body's options are all in the query: a bad combination is refused before a byte
    // of the body is read (a form's fields may still complete the query's, so its check waits).
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/"));
    let early = query
        .into_iter()
        .try_for_each(|(name, value)| options.set(&name, value))
        .and_then(|()| if multipart { Ok(()) } else { options.job_options().map(|_| ()) })
        .and_then(|()| Ok(state.coordinator.admit()?))
        .and_then(|()| state.upload_memory.reserve(declared.unwrap_or(u64::MAX).min(state.max_upload_bytes)));
    let reserved = match early {
        Ok(reserved) => reserved,
        Err(refusal) => return Ok(refuse_unread(request, refusal).await),
    };
    let receiving = std::time::Instant::now();
    let id = JobId::random();
    // A large raw body goes to the store while it arrives.
    let sink = upload_sink(&state.coordinator, &request, &id, state.max_upload_bytes).await;
    let how = Reading { declared, limit: state.max_upload_bytes, idle: state.body_idle_timeout };
    let reading = read_upload(request, how, &mut options, sink);
    let Received { bytes, stored, markers } =
        tokio::time::timeout(state.upload_timeout, reading).await.map_err(|_| {
            ApiError::RequestTimeout(format!(
                "the upload's body took longer than {} s in all",
                state.upload_timeout.as_secs()
            ))
        })??;
    tracing::debug!(
        job_id = %id,
        bytes = bytes.len(),
        receive_ms = receiving.elapsed().as_secs_f64() * 1e3,
        stored_as_received = stored,
        "upload received"
    );
    let checked = if bytes.is_empty() {
        Err(ApiError::MissingFile(
            "no image in the request: send the image as the body, or as a file part of a multipart form"
                .into(),
        ))
    } else {
        options.wait().and_then(|wait| Ok((wait, options.job_options()?, idempotency_key(&headers)?)))
    };
    let (wait, job_options, key) = match checked {
        Ok(checked) => checked,
        Err(refusal) => {
            if stored {
                state.coordinator.discard_upload(&id);
            }
            return Err(refusal);
        }
    };
    let upload = Upload { id, bytes, stored, markers };
    let (id, mut watch, replayed) = match key {
        Some(key) => match state.coordinator.submit_once(&key, upload, job_options).await? {
            Submitted::New(record, watch) => (record.id, watch, false),
            Submitted::Earlier(id, watch) => (id, watch, true),
        },
        None => {
            let (record, watch) = state.coordinator.submit(upload, job_options).await?;
            (record.id, watch, false)
        }
    };
    // The upload's bytes are stored and dropped: its memory goes back before any waiting.
    drop(reserved);
    let mut response = match wait {
        Some(wait) => wait_for_result(&state, &id, &mut watch, wait, replayed).await?,
        None => None,
    }
    .unwrap_or_else(|| {
        let mut response = (StatusCode::ACCEPTED, Json(JobLinks::of(&id))).into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("/result/{id}")) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        response
    });
    if replayed {
        response.headers_mut().insert("idempotency-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Waits until the job is over or `wait` passes: its PNG, its refusal, or `None` (still
/// running). A new job's first news is usually a wake-up (the watch was taken before it was
/// queued, so one that came already is kept); a replayed one may be over already, or not yet
/// stored by the upload that made it, so it is read at once and a missing record is waited for.
/// The job is also read every [`WAIT_RECHECK`] without news: a wake-up published while this
/// process's subscription was reconnecting is never heard.
async fn wait_for_result(
    state: &AppState,
    id: &JobId,
    watch: &mut JobWatch,
    wait: Duration,
    replayed: bool,
) -> Result<Option<Response>, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut read_now = replayed;
    loop {
        if !read_now {
            watch.wait((tokio::time::Instant::now() + WAIT_RECHECK).min(deadline)).await;
        }
        read_now = false;
        match state.coordinator.status_and_result(id).await {
            Ok((status, png)) => match status.state {
                JobState::Done => match png {
                    Some(file) => return Ok(Some(result_response(state, &status, file))),
                    None => return Err(super::jobs::result_lost()),
                },
                JobState::Failed | JobState::Cancelled => return Err(super::jobs::failed(status)),
                JobState::Queued | JobState::Processing => {}
            },
            Err(JobsError::UnknownJob(_)) if replayed => {}
            Err(e) => return Err(e.into()),
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
    }
}
