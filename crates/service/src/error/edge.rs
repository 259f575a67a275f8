//! The HTTP edge of the errors: [`ApiError`], everything the API refuses or fails with, each
//! mapped to one stable [`ErrorCode`]; every code's HTTP status ([`http_status`]) and retry
//! hint ([`retry_after`]) in one table each; the JSON body of DESIGN §4.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dsobel_api::{ErrorBody, ErrorCode, JobError};
use dsobel_codec::DecodeError;
use dsobel_kernel::OptionError;

use super::{
    BatchError, JobsError, Limit, StoreError, TOO_BUSY_RETRY_SECS, UNAVAILABLE_RETRY_SECS, error_chain,
};

/// Everything the API can refuse or fail with: what the HTTP edge itself decides (the
/// request's shape, its body, the key, the client's rate, readiness), and the job operations'
/// errors.
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
    /// The result format asked for cannot hold the output asked for.
    #[error("{0}")]
    UnsupportedOutputFormat(String),
    /// The client stopped sending its request body.
    #[error("{0}; the upload was dropped")]
    RequestTimeout(String),
    /// The path exists but not with this method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// The API key is missing or wrong.
    #[error("missing or wrong API key: send Authorization: Bearer <key>")]
    Unauthorized,
    /// No such path, or a path whose job id is not one.
    #[error("no {0} here")]
    UnknownPath(String),
    /// The job failed or was cancelled: its own error.
    #[error("{}", .0.message)]
    JobFailed(JobError),
    /// A client went past its request rate or its open event streams.
    #[error("{reason}; retry in {retry_after} s")]
    Throttled {
        /// Which limit, in words.
        reason: String,
        /// Seconds to wait.
        retry_after: u32,
    },
    /// The broker or the store does not answer (readiness), with what failed.
    #[error("not ready: {}", .0.join("; "))]
    NotReady(Vec<String>),
    /// A job operation refused or failed.
    #[error(transparent)]
    Jobs(#[from] JobsError),
    /// A batch operation refused or failed.
    #[error(transparent)]
    Batch(#[from] BatchError),
}

/// The API's code of an object store's error (the same words a batch's manifest uses).
pub fn object_store_code(error: &dsobel_objects::StoreError) -> ErrorCode {
    use dsobel_objects::StoreErrorCode as Code;
    match error.code() {
        Code::NotAllowed => ErrorCode::StoreNotAllowed,
        Code::NotFound => ErrorCode::StoreNotFound,
        Code::Unauthorized => ErrorCode::StoreUnauthorized,
        Code::Unavailable => ErrorCode::StoreUnavailable,
        Code::PayloadTooLarge => ErrorCode::PayloadTooLarge,
        Code::ConfigInvalid | Code::Failed => ErrorCode::StoreFailed,
    }
}

impl From<Limit> for ApiError {
    fn from(limit: Limit) -> Self {
        ApiError::Jobs(JobsError::TooBusy(limit))
    }
}

/// The stable code of a refused combination of options.
pub fn option_code(error: &OptionError) -> ErrorCode {
    match error {
        OptionError::Invalid { .. } => ErrorCode::InvalidOption,
        OptionError::FormatCannotHold { .. } => ErrorCode::UnsupportedOutputFormat,
    }
}

impl From<OptionError> for ApiError {
    fn from(error: OptionError) -> Self {
        match option_code(&error) {
            ErrorCode::UnsupportedOutputFormat => ApiError::UnsupportedOutputFormat(error.to_string()),
            _ => ApiError::InvalidOption(error.to_string()),
        }
    }
}

/// The stable code of a decoder's refusal.
pub fn decode_code(error: &DecodeError) -> ErrorCode {
    use dsobel_codec::ErrorCode as Decode;
    match error.code() {
        Decode::EmptyInput => ErrorCode::EmptyInput,
        Decode::UnsupportedFormat => ErrorCode::UnsupportedFormat,
        Decode::UnsupportedImage => ErrorCode::UnsupportedImage,
        Decode::CorruptImage => ErrorCode::CorruptImage,
        Decode::ImageTooLarge => ErrorCode::ImageTooLarge,
        Decode::PayloadTooLarge => ErrorCode::PayloadTooLarge,
    }
}

/// A job's failure from a decode error: its stable code and its message.
pub fn decode_failure(error: &DecodeError) -> JobError {
    JobError::new(decode_code(error), error.to_string())
}

/// The HTTP status of every code: the one table of the edge.
pub fn http_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::MissingFile | ErrorCode::EmptyInput | ErrorCode::InvalidOption => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::StoreNotAllowed => StatusCode::FORBIDDEN,
        ErrorCode::StoreNotFound => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::StoreUnauthorized | ErrorCode::StoreFailed => StatusCode::BAD_GATEWAY,
        ErrorCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::JobFinished => StatusCode::CONFLICT,
        ErrorCode::Cancelled => StatusCode::GONE,
        ErrorCode::ImageTooLarge | ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedFormat | ErrorCode::UnsupportedImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedOutputFormat
        | ErrorCode::CorruptImage
        | ErrorCode::JobFailed
        | ErrorCode::StripFailed
        | ErrorCode::InputExpired => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::RateLimited | ErrorCode::TooBusy => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable | ErrorCode::JobLost => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal | ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Whether a job that ended with `code` is answered with that code itself (as the door would
/// have refused its upload, or as its cancellation or loss says), rather than `job-failed`.
fn answers_as_itself(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::EmptyInput
            | ErrorCode::UnsupportedFormat
            | ErrorCode::UnsupportedImage
            | ErrorCode::CorruptImage
            | ErrorCode::ImageTooLarge
            | ErrorCode::PayloadTooLarge
            | ErrorCode::Cancelled
            | ErrorCode::JobLost
            | ErrorCode::InvalidOption
            | ErrorCode::UnsupportedOutputFormat
    )
}

impl ApiError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::MissingFile(_) => ErrorCode::MissingFile,
            ApiError::InvalidOption(_) => ErrorCode::InvalidOption,
            ApiError::UnsupportedOutputFormat(_) => ErrorCode::UnsupportedOutputFormat,
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::RequestTimeout(_) => ErrorCode::RequestTimeout,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::UnknownPath(_) => ErrorCode::NotFound,
            ApiError::JobFailed(error) if answers_as_itself(error.code) => error.code,
            ApiError::JobFailed(_) => ErrorCode::JobFailed,
            ApiError::Throttled { .. } => ErrorCode::RateLimited,
            ApiError::NotReady(_) => ErrorCode::Unavailable,
            ApiError::Jobs(e) => match e {
                JobsError::Refused(e) => decode_code(e),
                JobsError::UnknownJob(_) => ErrorCode::NotFound,
                JobsError::AlreadyOver { .. } => ErrorCode::JobFinished,
                JobsError::TooBusy(_) => ErrorCode::TooBusy,
                JobsError::KeyPending
                | JobsError::StoreFull(_)
                | JobsError::TimedOut
                | JobsError::Interrupted
                | JobsError::Store(StoreError::Transport(_)) => ErrorCode::Unavailable,
                JobsError::Store(_) | JobsError::Crashed(_) | JobsError::Inconsistent(_) => {
                    ErrorCode::Internal
                }
            },
            ApiError::Batch(e) => match e {
                BatchError::Objects(e) => object_store_code(e),
                BatchError::UnknownBatch(_) => ErrorCode::NotFound,
                BatchError::AlreadyOver { .. } => ErrorCode::JobFinished,
                BatchError::KeyPending | BatchError::Store(StoreError::Transport(_)) => {
                    ErrorCode::Unavailable
                }
                BatchError::Store(_) => ErrorCode::Internal,
            },
        }
    }

    /// The message a client reads: the error's own words for a refusal (never a library's
    /// internals), the whole chain of causes for a failure of the service, and a failed job's
    /// own code when the answer's code is another.
    fn message(&self, code: ErrorCode) -> String {
        match (self, http_status(code)) {
            (ApiError::NotReady(_), _) => self.to_string(),
            (_, StatusCode::SERVICE_UNAVAILABLE) => format!("service unavailable: {}", error_chain(self)),
            (_, StatusCode::INTERNAL_SERVER_ERROR) => format!("internal error: {}", error_chain(self)),
            (ApiError::JobFailed(error), _) if error.code != code => {
                format!("{} ({})", error.message, error.code)
            }
            _ => self.to_string(),
        }
    }
}

/// The seconds a client is told to wait before trying again, for the answers worth retrying.
pub fn retry_after(error: &ApiError, code: ErrorCode) -> Option<u32> {
    match (error, code) {
        (ApiError::Throttled { retry_after, .. }, _) => Some(*retry_after),
        (_, ErrorCode::TooBusy) => Some(TOO_BUSY_RETRY_SECS),
        (_, code) if http_status(code) == StatusCode::SERVICE_UNAVAILABLE => Some(UNAVAILABLE_RETRY_SECS),
        _ => None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status = http_status(code);
        if status.is_server_error() && code != ErrorCode::Unavailable && code != ErrorCode::JobLost {
            tracing::error!(error = %error_chain(&self), %code, "request failed");
        } else {
            tracing::debug!(error = %error_chain(&self), %code, "request refused");
        }
        let body = ErrorBody { error: JobError::new(code, self.message(code)) };
        let mut json = serde_json::to_value(&body).expect("an error body serialises");
        if let ApiError::NotReady(checks) = &self {
            json["checks"] = serde_json::json!(checks);
        }
        let mut response = (status, axum::Json(json)).into_response();
        if let Some(seconds) = retry_after(&self, code) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use dsobel_api::JobId;
    use dsobel_transport::TransportError;

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

        let (status, text, retry) = answer(JobsError::TooBusy(Limit::JobsInFlight(3))).await;
        assert_eq!((status, retry.as_deref()), (StatusCode::TOO_MANY_REQUESTS, Some("2")));
        assert!(text.starts_with("too-busy | too many jobs in flight (3"), "{text}");

        let id = JobId::random();
        let (status, text, _) = answer(JobsError::UnknownJob(id.clone())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(text.starts_with(&format!("not-found | no job {id}")), "{text}");

        let unreadable = serde_json::from_slice::<u8>(b"{").unwrap_err();
        let corrupt = StoreError::Unreadable { what: "record", id: id.clone(), source: unreadable };
        let (status, text, retry) = answer(JobsError::from(corrupt)).await;
        assert_eq!((status, retry), (StatusCode::INTERNAL_SERVER_ERROR, None));
        assert!(
            text.starts_with(&format!(
                "internal | internal error: unreadable record of job {id}: invalid type"
            )),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_failed_job_answers_with_its_door_code_or_job_failed() {
        let corrupt = JobError::new(ErrorCode::CorruptImage, "corrupt JPEG image: bad Huffman code");
        let (status, text, _) = answer(ApiError::JobFailed(corrupt)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(text, "corrupt-image | corrupt JPEG image: bad Huffman code");
        let strip = JobError::new(ErrorCode::StripFailed, "strip 2 of 4 cannot be processed");
        let (status, text, _) = answer(ApiError::JobFailed(strip)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(text, "job-failed | strip 2 of 4 cannot be processed (strip-failed)");
        let (status, text, retry) = answer(ApiError::JobFailed(crate::model::job_lost())).await;
        assert_eq!((status, retry.as_deref()), (StatusCode::SERVICE_UNAVAILABLE, Some("5")));
        assert!(text.starts_with("job-lost | service unavailable: the result store"), "{text}");
        let cancelled = JobError::new(ErrorCode::Cancelled, "the job was cancelled");
        assert_eq!(answer(ApiError::JobFailed(cancelled)).await.0, StatusCode::GONE);
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
