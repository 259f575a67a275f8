//! `/status/{id}`, `/result/{id}` and `DELETE /jobs/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::upload::result_response;
use crate::error::ApiError;
use crate::model::{ErrorCode, JobError, JobId, JobState, JobStatus};

/// The job id of a path, checked here once; anything else names no job.
pub(super) fn checked_id(id: &str) -> Result<JobId, ApiError> {
    JobId::parse(id)
        .ok_or_else(|| ApiError::UnknownPath(format!("job {:?}", id.chars().take(64).collect::<String>())))
}

/// The refusal of a job that failed or was cancelled: its own error.
pub(super) fn failed(status: JobStatus) -> ApiError {
    ApiError::JobFailed(status.error.unwrap_or_else(|| JobError::new(ErrorCode::JobFailed, "the job failed")))
}

/// A job done whose PNG is gone before its record: the bytes store lost its data.
pub(super) fn result_lost() -> ApiError {
    ApiError::JobFailed(JobError::new(
        ErrorCode::JobLost,
        "the job finished, but its result was lost with the store's data before it expired; submit the image again",
    ))
}

/// A status (of a job or a batch) that must not be cached (it changes).
pub(super) fn fresh(status: impl serde::Serialize) -> Response {
    let mut response = Json(status).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /result/{id}`: the result file (PNG, TIFF or NPY, as the job asked), `202` with the status while pending, or the job's refusal.
pub(super) async fn result(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = checked_id(&id)?;
    let (status, png) = state.coordinator.status_and_result(&id).await?;
    match status.state {
        JobState::Done => match png {
            Some(file) => Ok(result_response(&state, &status, file)),
            None => Err(result_lost()),
        },
        JobState::Failed | JobState::Cancelled => Err(failed(status)),
        JobState::Queued | JobState::Processing => Ok((StatusCode::ACCEPTED, Json(status)).into_response()),
    }
}

/// `DELETE /jobs/{id}`: cancels the job; answers its status (state `cancelled`).
pub(super) async fn cancel(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = checked_id(&id)?;
    Ok(fresh(state.coordinator.cancel(&id).await?))
}

/// `GET /status/{id}`.
pub(super) async fn status(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = checked_id(&id)?;
    Ok(fresh(state.coordinator.status(&id).await?))
}
