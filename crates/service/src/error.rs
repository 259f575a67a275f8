//! The API's errors: one enum, its HTTP status and stable code chosen in one place, and the
//! JSON body `{"error": {"code": "...", "message": "..."}}` of DESIGN §4.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dsobel_codec::{DecodeError, ErrorCode};
use dsobel_transport::TransportError;

/// Everything the API can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The upload could not be decoded (or is not an image at all).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The body is larger than the upload limit.
    #[error("upload of more than {limit} bytes refused (the limit is {limit} bytes)")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// No file in the request.
    #[error("{0}")]
    MissingFile(String),
    /// A bad option.
    #[error("{0}")]
    InvalidOption(String),
    /// The client stopped sending its request body.
    #[error("{0}; the upload was dropped")]
    RequestTimeout(String),
    /// The path exists but not with this method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// The API key is missing or wrong.
    #[error("missing or wrong API key: send Authorization: Bearer <key>")]
    Unauthorized,
    /// No such job, or it expired.
    #[error("no job {0} (unknown, or its result expired)")]
    NotFound(String),
    /// The job failed.
    #[error("{message}")]
    JobFailed {
        /// The job's own error code.
        code: String,
        /// The job's own message.
        message: String,
    },
    /// The job ended (done or failed) before it could be cancelled.
    #[error("job {id} is already {state:?} and cannot be cancelled")]
    JobFinished {
        /// The job id.
        id: String,
        /// How it ended.
        state: crate::model::JobState,
    },
    /// Too many jobs in flight.
    #[error("too many jobs in flight ({limit}); retry in {retry_after} s")]
    TooBusy {
        /// The in-flight limit.
        limit: usize,
        /// Seconds to wait.
        retry_after: u32,
    },
    /// A client went past its request rate or its open event streams.
    #[error("{reason}; retry in {retry_after} s")]
    Throttled {
        /// Which limit, in words.
        reason: String,
        /// Seconds to wait.
        retry_after: u32,
    },
    /// The broker or the store cannot be reached.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<TransportError> for ApiError {
    fn from(e: TransportError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl ApiError {
    /// HTTP status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &str) {
        match self {
            ApiError::Decode(e) => (decode_status(e.code()), e.code().as_str()),
            ApiError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
            ApiError::MissingFile(_) => (StatusCode::BAD_REQUEST, "missing-file"),
            ApiError::InvalidOption(_) => (StatusCode::BAD_REQUEST, "invalid-option"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request-timeout"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            // A job whose upload turned out undecodable in a worker answers as the door would
            // have; any other failure is the job's own.
            ApiError::JobFailed { code, .. } => match refusal_status(code) {
                Some(status) => (status, code.as_str()),
                None => (StatusCode::UNPROCESSABLE_ENTITY, "job-failed"),
            },
            ApiError::JobFinished { .. } => (StatusCode::CONFLICT, "job-finished"),
            ApiError::TooBusy { .. } => (StatusCode::TOO_MANY_REQUESTS, "too-busy"),
            ApiError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::TooBusy { retry_after, .. } | ApiError::Throttled { retry_after, .. } => {
                Some(*retry_after)
            }
            ApiError::Unavailable(_) => Some(5),
            _ => None,
        }
    }
}

/// The HTTP status of a decoder's refusal.
fn decode_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::EmptyInput => StatusCode::BAD_REQUEST,
        ErrorCode::UnsupportedFormat | ErrorCode::UnsupportedImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::CorruptImage => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::ImageTooLarge | ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
    }
}

/// The HTTP status a job that ended with `code` is answered with, when the code has one of its
/// own: a decoder's refusal (as at the door), a cancellation, or a job the store lost (the
/// service's fault, and worth sending again); `None` for other codes.
fn refusal_status(code: &str) -> Option<StatusCode> {
    if code == crate::model::CANCELLED {
        return Some(StatusCode::GONE);
    }
    if code == crate::model::JOB_LOST {
        return Some(StatusCode::SERVICE_UNAVAILABLE);
    }
    ErrorCode::parse(code).map(decode_status)
}

/// The JSON body of an error.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { "code": code, "message": message } })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, code, "request failed");
        } else {
            tracing::debug!(error = %self, code, "request refused");
        }
        let mut message = self.to_string();
        if let ApiError::JobFailed { code: job_code, .. } = &self
            && job_code != code
        {
            message = format!("{message} ({job_code})");
        }
        let mut response = (status, axum::Json(error_body(code, &message))).into_response();
        if let Some(seconds) = self.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
