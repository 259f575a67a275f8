//! What can go wrong with object storage, each with a stable kebab-case code.
//!
//! Every failure of this crate is a [`StoreError`]; its [`StoreError::code`] is what the HTTP
//! API and the batch manifest show. The errors the stores themselves raise (the
//! `object_store` crate's) are sorted into these kinds by [`classify`], and their text passes
//! through a [`Redactor`] first, so no credential the stores were configured with can reach a
//! message, a log line or a manifest.

use std::fmt;

/// A failure of an object-storage operation, or a refusal of a location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The location is not under any allowed root, uses a scheme that is never allowed
    /// (`http://`, ...), is malformed, or tries to escape its root (`..`, `%2e`, ...).
    /// The HTTP layer answers 403.
    #[error("location not allowed: {reason}")]
    NotAllowed {
        /// Why, in words (the location in it is cleaned of anything that looks like a secret).
        reason: String,
    },
    /// The bucket or the object does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was missing.
        what: String,
    },
    /// The store refused the credentials (missing, wrong, expired, or without the right).
    #[error("the store refused the credentials: {detail}")]
    Unauthorized {
        /// What the store said, without secrets.
        detail: String,
    },
    /// The store cannot be reached or is overloaded; worth a retry later.
    #[error("the store is unavailable: {detail}")]
    Unavailable {
        /// What happened.
        detail: String,
    },
    /// The object is larger than the caller's limit; nothing more than the limit was read.
    #[error("object {key} has more than {limit} bytes")]
    TooLarge {
        /// The key, within its bucket.
        key: String,
        /// The limit.
        limit: u64,
    },
    /// The configuration of the stores is invalid (the allow-list, a cloud setting). Only
    /// raised while starting, never for a client's request.
    #[error("invalid object-storage configuration: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
    /// Any other failure.
    #[error("object storage failed: {detail}")]
    Failed {
        /// What happened.
        detail: String,
    },
}

/// The stable, kebab-case codes of [`StoreError`], as used in JSON errors and manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreErrorCode {
    /// `store-not-allowed` (HTTP 403)
    NotAllowed,
    /// `store-not-found`
    NotFound,
    /// `store-unauthorized`
    Unauthorized,
    /// `store-unavailable` (transient: retry)
    Unavailable,
    /// `payload-too-large`: the same code an upload over the byte limit gets
    PayloadTooLarge,
    /// `store-config-invalid` (at start-up only)
    ConfigInvalid,
    /// `store-failed`
    Failed,
}

impl StoreErrorCode {
    /// Every code, for mapping a stored code string back (see [`StoreErrorCode::parse`]).
    pub const ALL: [StoreErrorCode; 7] = [
        StoreErrorCode::NotAllowed,
        StoreErrorCode::NotFound,
        StoreErrorCode::Unauthorized,
        StoreErrorCode::Unavailable,
        StoreErrorCode::PayloadTooLarge,
        StoreErrorCode::ConfigInvalid,
        StoreErrorCode::Failed,
    ];

    /// The code whose string is `code`, if it is one of these.
    pub fn parse(code: &str) -> Option<StoreErrorCode> {
        StoreErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The code as a string.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreErrorCode::NotAllowed => "store-not-allowed",
            StoreErrorCode::NotFound => "store-not-found",
            StoreErrorCode::Unauthorized => "store-unauthorized",
            StoreErrorCode::Unavailable => "store-unavailable",
            StoreErrorCode::PayloadTooLarge => "payload-too-large",
            StoreErrorCode::ConfigInvalid => "store-config-invalid",
            StoreErrorCode::Failed => "store-failed",
        }
    }
}

impl fmt::Display for StoreErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StoreError {
    /// The stable code of this error.
    pub fn code(&self) -> StoreErrorCode {
        match self {
            StoreError::NotAllowed { .. } => StoreErrorCode::NotAllowed,
            StoreError::NotFound { .. } => StoreErrorCode::NotFound,
            StoreError::Unauthorized { .. } => StoreErrorCode::Unauthorized,
            StoreError::Unavailable { .. } => StoreErrorCode::Unavailable,
            StoreError::TooLarge { .. } => StoreErrorCode::PayloadTooLarge,
            StoreError::Config { .. } => StoreErrorCode::ConfigInvalid,
            StoreError::Failed { .. } => StoreErrorCode::Failed,
        }
    }

    /// True when the same operation may well succeed later (the store was unreachable or
    /// overloaded): a worker hands its task back instead of recording the item as failed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    pub(crate) fn not_allowed(reason: impl Into<String>) -> StoreError {
        StoreError::NotAllowed { reason: reason.into() }
    }

    pub(crate) fn failed(detail: impl Into<String>) -> StoreError {
        StoreError::Failed { detail: detail.into() }
    }
}

/// Result type of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The longest text taken from a store's own error message.
const MAX_DETAIL: usize = 600;

/// Removes configured secrets from text before it goes into an error.
///
/// Holds the values of every credential setting (access keys, secret keys, session tokens,
/// service-account keys); [`Redactor::clean`] replaces each occurrence with `[redacted]`.
/// Values shorter than 4 characters are not taken (they would mangle ordinary words; no real
/// credential is that short).
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// Adds a secret value to remove.
    pub(crate) fn add(&mut self, secret: &str) {
        if secret.len() >= 4 && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
            // Longest first, so a secret that contains another is removed whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` without any secret, without control characters, and cut to a readable length.
    pub(crate) fn clean(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "[redacted]");
            }
        }
        let mut cleaned: String =
            text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_DETAIL).collect();
        if text.chars().count() > MAX_DETAIL {
            cleaned.push('…');
        }
        cleaned
    }
}

/// Sorts an error of the `object_store` crate into a [`StoreError`], saying what was being
/// done (`doing`, e.g. "get s3://bucket/key"), its text cleaned by `redactor`.
pub(crate) fn classify(error: object_store::Error, doing: &str, redactor: &Redactor) -> StoreError {
    use object_store::Error as E;
    let text = redactor.clean(&error_chain(&error));
    let detail = format!("{doing}: {text}");
    match &error {
        E::NotFound { .. } => StoreError::NotFound { what: detail },
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => StoreError::Unauthorized { detail },
        E::UnknownConfigurationKey { .. } => StoreError::Config { detail },
        E::Generic { .. } => classify_generic(&error, &text, detail),
        _ => StoreError::Failed { detail },
    }
}

/// A `Generic` error carries the HTTP outcome in its chain: a transport failure (connection
/// refused, timeout) or a status the client did not map (list and multipart requests keep
/// theirs in the message).
fn classify_generic(error: &object_store::Error, text: &str, detail: String) -> StoreError {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(http) = current.downcast_ref::<HttpError>() {
            match http.kind() {
                HttpErrorKind::Connect
                | HttpErrorKind::Request
                | HttpErrorKind::Timeout
                | HttpErrorKind::Interrupted => return StoreError::Unavailable { detail },
                _ => {}
            }
        }
        source = current.source();
    }
    match http_status(text) {
        Some(404) => StoreError::NotFound { what: detail },
        Some(401 | 403) => StoreError::Unauthorized { detail },
        Some(408 | 429 | 500..=599) => StoreError::Unavailable { detail },
        _ if ["NoSuchBucket", "NoSuchKey"].iter().any(|code| text.contains(code)) => {
            StoreError::NotFound { what: detail }
        }
        _ if ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken"]
            .iter()
            .any(|code| text.contains(code)) =>
        {
            StoreError::Unauthorized { detail }
        }
        _ => StoreError::Failed { detail },
    }
}

/// The HTTP status named in an `object_store` request error ("... status code: 403 Forbidden").
fn http_status(text: &str) -> Option<u16> {
    const MARKER: &str = "status code: ";
    let at = text.find(MARKER)? + MARKER.len();
    text.get(at..at + 3)?.parse().ok()
}

/// The error's message followed by those of its sources, each once.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(current) = source {
        let message = current.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = current.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in StoreErrorCode::ALL {
            assert_eq!(StoreErrorCode::parse(code.as_str()), Some(code));
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{code}");
        }
        assert_eq!(StoreErrorCode::parse("store-nope"), None);
    }

    #[test]
    fn redactor_removes_every_secret_and_controls() {
        let mut redactor = Redactor::default();
        redactor.add("AKIAEXAMPLEKEY");
        redactor.add("s3cr3t/with+chars");
        redactor.add("abc"); // too short to be taken
        let cleaned = redactor.clean("key AKIAEXAMPLEKEY secret s3cr3t/with+chars\nabc\r\u{1b}[31m");
        assert!(!cleaned.contains("AKIAEXAMPLEKEY"));
        assert!(!cleaned.contains("s3cr3t"));
        assert!(cleaned.contains("abc"));
        assert!(!cleaned.chars().any(char::is_control), "{cleaned:?}");
        assert!(redactor.clean(&"x".repeat(5000)).chars().count() <= MAX_DETAIL + 1);
    }

    #[test]
    fn statuses_are_read_from_request_errors() {
        assert_eq!(http_status("Server returned non-2xx status code: 403 Forbidden: <xml>"), Some(403));
        assert_eq!(http_status("no status here"), None);
        assert_eq!(http_status("status code: 5"), None);
    }

    #[test]
    fn kinds_of_store_errors() {
        let redactor = Redactor::default();
        let missing = object_store::Error::NotFound { path: "k".into(), source: "gone".into() };
        assert_eq!(classify(missing, "get", &redactor).code(), StoreErrorCode::NotFound);
        let denied = object_store::Error::PermissionDenied { path: "k".into(), source: "no".into() };
        assert_eq!(classify(denied, "get", &redactor).code(), StoreErrorCode::Unauthorized);
        let busy = object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 503 Service Unavailable: SlowDown".into(),
        };
        let busy = classify(busy, "list", &redactor);
        assert_eq!(busy.code(), StoreErrorCode::Unavailable);
        assert!(busy.is_transient());
        let bucket = object_store::Error::Generic { store: "S3", source: "<Code>NoSuchBucket</Code>".into() };
        assert_eq!(classify(bucket, "list", &redactor).code(), StoreErrorCode::NotFound);
        let other = object_store::Error::Generic { store: "S3", source: "odd".into() };
        assert_eq!(classify(other, "list", &redactor).code(), StoreErrorCode::Failed);
    }
}
