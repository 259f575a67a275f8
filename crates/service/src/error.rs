//! Errors, in three layers. [`StoreError`] is what reading and writing job state can fail
//! with; [`JobsError`] is what the job operations (intake, settlement, status, cancel) refuse
//! or fail with; [`ApiError`] is the HTTP edge, which maps every one of them to a status and a
//! stable code in one place and answers with the JSON body
//! `{"error": {"code": "...", "message": "..."}}` of DESIGN §4. Each error keeps its cause as
//! its `source`, and logs print the whole chain ([`error_chain`]).

use std::error::Error;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dsobel_codec::{DecodeError, ErrorCode};
use dsobel_transport::TransportError;

use crate::model::JobState;

/// What reading or writing job state in the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis or RabbitMQ (or the in-memory transport) refused or did not answer.
    #[error("the store or the queue failed")]
    Transport(#[from] TransportError),
    /// A value in the store is not what dsobel writes.
    #[error("unreadable {what} of job {id}")]
    Unreadable {
        /// Which value (`record`).
        what: &'static str,
        /// The job.
        id: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be written as JSON (a bug).
    #[error("cannot write the {what} of job {id}")]
    Unwritable {
        /// Which value (`record`, `failure`).
        what: &'static str,
        /// The job.
        id: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The store answered a different number of values than keys were asked for.
    #[error("the store answered {got} values for {asked} keys")]
    WrongCount {
        /// Keys asked for.
        asked: usize,
        /// Values answered.
        got: usize,
    },
}

/// What the job operations refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The upload is not an image dsobel takes (read from its header).
    #[error(transparent)]
    Refused(#[from] DecodeError),
    /// No such job, or it expired.
    #[error("no job {0} (unknown, or its result expired)")]
    UnknownJob(String),
    /// The job ended (done or failed) before it could be cancelled.
    #[error("job {id} is already {state:?} and cannot be cancelled")]
    AlreadyOver {
        /// The job id.
        id: String,
        /// How it ended.
        state: JobState,
    },
    /// This backend has its maximum of jobs in flight.
    #[error("too many jobs in flight ({limit}); retry in {TOO_BUSY_RETRY_SECS} s")]
    TooBusy {
        /// The in-flight limit.
        limit: usize,
    },
    /// An upload with the same idempotency key is still being accepted, or was cut off.
    #[error(
        "an upload with this Idempotency-Key is still being accepted, or was cut off; send it again in a few seconds"
    )]
    KeyPending,
    /// The queue or the store did not answer within the bound on a submission.
    #[error("the queue or the store did not answer in time")]
    TimedOut,
    /// Reading or writing job state failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A step run on a task of its own crashed (a bug).
    #[error(transparent)]
    Crashed(#[from] Crashed),
    /// The stored state of a job contradicts itself (a bug, or a store that lost part of it).
    #[error("{0}")]
    Inconsistent(String),
}

/// A step run on a task of its own (a blocking decode, a stitch, a store write) that panicked
/// or was cancelled: a bug, kept with its cause.
#[derive(Debug, thiserror::Error)]
#[error("{what} crashed")]
pub struct Crashed {
    /// Which step.
    pub what: &'static str,
    /// The panic or cancellation.
    #[source]
    pub source: tokio::task::JoinError,
}

impl From<TransportError> for JobsError {
    fn from(e: TransportError) -> Self {
        JobsError::Store(StoreError::Transport(e))
    }
}

/// Seconds a client is told to wait when a backend has its maximum of jobs in flight.
pub const TOO_BUSY_RETRY_SECS: u32 = 2;

/// Seconds a client is told to wait when the store or the queue is out.
const UNAVAILABLE_RETRY_SECS: u32 = 5;

/// An error and its causes, outermost first, joined with `": "`.
pub fn error_chain(error: &dyn Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !chain.ends_with(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        source = cause.source();
    }
    chain
}

/// Everything the API can refuse or fail with: what the HTTP edge itself decides (the
/// request's shape, its body, the key, the client's rate), and the job operations' errors.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
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
    /// The server is at a limit of its own (not the client's): retry later.
    #[error("{reason}; retry in {retry_after} s")]
    Busy {
        /// Which limit, in words.
        reason: String,
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
    /// A job operation refused or failed.
    #[error(transparent)]
    Jobs(#[from] JobsError),
}

impl ApiError {
    /// HTTP status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &str) {
        match self {
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge.as_str())
            }
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
            ApiError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            ApiError::Busy { .. } => (StatusCode::TOO_MANY_REQUESTS, "too-busy"),
            ApiError::Jobs(e) => match e {
                JobsError::Refused(e) => (decode_status(e.code()), e.code().as_str()),
                JobsError::UnknownJob(_) => (StatusCode::NOT_FOUND, "not-found"),
                JobsError::AlreadyOver { .. } => (StatusCode::CONFLICT, "job-finished"),
                JobsError::TooBusy { .. } => (StatusCode::TOO_MANY_REQUESTS, "too-busy"),
                JobsError::KeyPending | JobsError::TimedOut | JobsError::Store(StoreError::Transport(_)) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
                }
                JobsError::Store(_) | JobsError::Crashed(_) | JobsError::Inconsistent(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                }
            },
        }
    }

    fn retry_after(&self) -> Option<u32> {
        match self {
            ApiError::Throttled { retry_after, .. } | ApiError::Busy { retry_after, .. } => {
                Some(*retry_after)
            }
            ApiError::Jobs(JobsError::TooBusy { .. }) => Some(TOO_BUSY_RETRY_SECS),
            _ if self.status_and_code().0 == StatusCode::SERVICE_UNAVAILABLE => Some(UNAVAILABLE_RETRY_SECS),
            _ => None,
        }
    }

    /// The message a client reads: the error's own words for a refusal (never a library's
    /// internals), and the whole chain of causes for a failure of the service.
    fn message(&self) -> String {
        match self.status_and_code().0 {
            StatusCode::SERVICE_UNAVAILABLE => format!("service unavailable: {}", error_chain(self)),
            StatusCode::INTERNAL_SERVER_ERROR => format!("internal error: {}", error_chain(self)),
            _ => self.to_string(),
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
            tracing::error!(error = %error_chain(&self), code, "request failed");
        } else {
            tracing::debug!(error = %error_chain(&self), code, "request refused");
        }
        let mut message = self.message();
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(error: impl Into<ApiError>) -> (StatusCode, String, Option<String>) {
        let response = error.into().into_response();
        let retry = response.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_owned());
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let (code, message) =
            (json["error"]["code"].as_str().unwrap(), json["error"]["message"].as_str().unwrap());
        (status, format!("{code} | {message}"), retry)
    }

    #[tokio::test]
    async fn job_errors_are_mapped_at_the_edge_with_their_causes_for_failures_only() {
        let outage = JobsError::from(TransportError::Unavailable {
            service: "redis",
            detail: "MGET: broken pipe".into(),
        });
        let (status, text, retry) = answer(outage).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            text.starts_with("unavailable | service unavailable: the store or the queue failed: "),
            "{text}"
        );
        assert!(text.ends_with("MGET: broken pipe"), "{text}");
        assert_eq!(retry.as_deref(), Some("5"));

        let (status, text, retry) = answer(JobsError::TooBusy { limit: 3 }).await;
        assert_eq!((status, retry.as_deref()), (StatusCode::TOO_MANY_REQUESTS, Some("2")));
        assert!(text.starts_with("too-busy | too many jobs in flight (3)"), "{text}");

        let (status, text, _) = answer(JobsError::UnknownJob("abc".into())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(text.starts_with("not-found | no job abc"), "{text}");

        let unreadable = serde_json::from_slice::<u8>(b"{").unwrap_err();
        let corrupt = StoreError::Unreadable { what: "record", id: "abc".into(), source: unreadable };
        let (status, text, retry) = answer(JobsError::from(corrupt)).await;
        assert_eq!((status, retry), (StatusCode::INTERNAL_SERVER_ERROR, None));
        assert!(
            text.starts_with("internal | internal error: unreadable record of job abc: invalid type"),
            "{text}"
        );
    }

    #[test]
    fn a_chain_names_every_cause_once() {
        let outage = JobsError::from(TransportError::Unavailable {
            service: "redis",
            detail: "connect: refused".into(),
        });
        assert_eq!(
            error_chain(&outage),
            "the store or the queue failed: redis unavailable: connect: refused"
        );
    }
}
