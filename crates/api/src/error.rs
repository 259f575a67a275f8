//! Stable error codes and the error body of every refusal.

use serde::{Deserialize, Serialize};

/// Every stable code the API answers with: a request's refusal (`{"error": {"code", ...}}`)
/// or the reason a job failed (its status's `error.code`). Kebab-case on the wire. A code this
/// build does not know (a newer server) reads as [`ErrorCode::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// An empty body, or a form with no file part.
    MissingFile,
    /// An empty file.
    EmptyInput,
    /// An unknown option, or a value out of range.
    InvalidOption,
    /// The result format cannot hold the output asked for (the message names those that can).
    UnsupportedOutputFormat,
    /// The API key is missing or wrong.
    Unauthorized,
    /// The path exists, not with this method.
    MethodNotAllowed,
    /// The upload's body stalled or took too long.
    RequestTimeout,
    /// Unknown job id, or its result expired.
    NotFound,
    /// `DELETE` of a job that is already done or failed.
    JobFinished,
    /// The job was cancelled.
    Cancelled,
    /// More pixels, or a wider or taller image, than the limits.
    ImageTooLarge,
    /// More bytes than the upload limit.
    PayloadTooLarge,
    /// Not an image format dsobel reads.
    UnsupportedFormat,
    /// A JPEG coded in a way dsobel does not decode.
    UnsupportedImage,
    /// The image cannot be decoded.
    CorruptImage,
    /// The job failed for another reason (its status has its own code).
    JobFailed,
    /// A client went past its request rate or its open event streams.
    RateLimited,
    /// The server is at one of its own limits.
    TooBusy,
    /// The queue or the store cannot be reached, or the store is full.
    Unavailable,
    /// The store lost the job before it finished.
    JobLost,
    /// A task of the job could not be processed.
    StripFailed,
    /// The upload expired from the store before a worker took it.
    InputExpired,
    /// A batch's location is not under an allowed root (`DSOBEL_BATCH_STORES`), or is not an
    /// object store at all (`http(s)://`).
    StoreNotAllowed,
    /// A batch's bucket, or an object it names, does not exist.
    StoreNotFound,
    /// The object store refused the credentials.
    StoreUnauthorized,
    /// The object store cannot be reached now (try again).
    StoreUnavailable,
    /// The object store failed otherwise.
    StoreFailed,
    /// A bug.
    Internal,
    /// A code this build does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every known code.
    pub const ALL: [ErrorCode; 28] = [
        ErrorCode::MissingFile,
        ErrorCode::EmptyInput,
        ErrorCode::InvalidOption,
        ErrorCode::UnsupportedOutputFormat,
        ErrorCode::Unauthorized,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::NotFound,
        ErrorCode::JobFinished,
        ErrorCode::Cancelled,
        ErrorCode::ImageTooLarge,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedFormat,
        ErrorCode::UnsupportedImage,
        ErrorCode::CorruptImage,
        ErrorCode::JobFailed,
        ErrorCode::RateLimited,
        ErrorCode::TooBusy,
        ErrorCode::Unavailable,
        ErrorCode::JobLost,
        ErrorCode::StripFailed,
        ErrorCode::InputExpired,
        ErrorCode::StoreNotAllowed,
        ErrorCode::StoreNotFound,
        ErrorCode::StoreUnauthorized,
        ErrorCode::StoreUnavailable,
        ErrorCode::StoreFailed,
        ErrorCode::Internal,
    ];

    /// The code's text, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MissingFile => "missing-file",
            ErrorCode::EmptyInput => "empty-input",
            ErrorCode::InvalidOption => "invalid-option",
            ErrorCode::UnsupportedOutputFormat => "unsupported-output-format",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::MethodNotAllowed => "method-not-allowed",
            ErrorCode::RequestTimeout => "request-timeout",
            ErrorCode::NotFound => "not-found",
            ErrorCode::JobFinished => "job-finished",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::ImageTooLarge => "image-too-large",
            ErrorCode::PayloadTooLarge => "payload-too-large",
            ErrorCode::UnsupportedFormat => "unsupported-format",
            ErrorCode::UnsupportedImage => "unsupported-image",
            ErrorCode::CorruptImage => "corrupt-image",
            ErrorCode::JobFailed => "job-failed",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::TooBusy => "too-busy",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::JobLost => "job-lost",
            ErrorCode::StripFailed => "strip-failed",
            ErrorCode::InputExpired => "input-expired",
            ErrorCode::StoreNotAllowed => "store-not-allowed",
            ErrorCode::StoreNotFound => "store-not-found",
            ErrorCode::StoreUnauthorized => "store-unauthorized",
            ErrorCode::StoreUnavailable => "store-unavailable",
            ErrorCode::StoreFailed => "store-failed",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job failed (or a request was refused): a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// The stable code.
    pub code: ErrorCode,
    /// What happened, for people.
    pub message: String,
}

impl JobError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> JobError {
        JobError { code, message: message.into() }
    }
}

/// The JSON body of every refusal: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The code and the message.
    pub error: JobError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_and_write_as_their_words() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        assert_eq!(serde_json::from_str::<ErrorCode>("\"from-the-future\"").unwrap(), ErrorCode::Unknown);
    }
}
