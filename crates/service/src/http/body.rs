//! Reading an upload's body: the raw body or the first file part of a multipart form, under
//! the upload limit, an idle timeout and the server's upload memory budget. A JPEG's restart
//! markers are looked for as its bytes arrive ([`RestartScanner`]), so no scan of a whole
//! upload runs on the async threads afterwards; a large raw body of a declared length is also
//! written to the store while it arrives ([`Coordinator::upload_sink`]).
//!
//! An upload refused before its body is read is answered at once, after a short bounded
//! drain, with `Connection: close` ([`refuse_unread`]): the client learns why without the
//! server reading tens of megabytes it will throw away.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use dsobel_codec::{RestartIndex, RestartScanner};
use dsobel_transport::ValueSink;
use futures_util::StreamExt;

use super::options::UploadOptions;
use crate::coordinator::Coordinator;
use crate::error::{ApiError, Limit};

/// The memory budget of upload bodies being received, counted in KiB: an upload reserves its
/// declared length (or the upload limit, when it declares none) before its body is read, and
/// gives it back once its bytes are handed to the coordinator, so that the bodies in memory
/// at once never exceed the budget however many clients send.
#[derive(Clone)]
pub struct UploadMemory {
    kib: std::sync::Arc<tokio::sync::Semaphore>,
    budget: u64,
}

impl UploadMemory {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> UploadMemory {
        let kib = bytes.div_ceil(1024).min(tokio::sync::Semaphore::MAX_PERMITS as u64) as usize;
        UploadMemory { kib: std::sync::Arc::new(tokio::sync::Semaphore::new(kib)), budget: bytes }
    }

    /// Reserves `bytes`, or refuses with `429 too-busy` when the budget is spent.
    pub(super) fn reserve(&self, bytes: u64) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        self.kib.clone().try_acquire_many_owned(kib).map_err(|_| Limit::UploadMemory(self.budget).into())
    }
}

/// The smallest raw body written to the store while it arrives: below it, one write of the
/// whole upload costs less than the parts.
pub(super) const LARGE_UPLOAD_BYTES: u64 = 2 << 20;

/// Chunks of a body received and not yet written to the store, at most.
const QUEUED_PARTS: usize = 64;

/// Longest form field that is not a file (an option's value).
const MAX_FORM_FIELD_BYTES: usize = 4096;

/// What a refused upload's body is read of before the answer, at most: enough for a client
/// that sends its whole (small) body before it reads, bounded so a large one costs little.
const REFUSAL_DRAIN_BYTES: u64 = 256 << 10;
/// How long a refused upload's body is read before the answer, at most.
const REFUSAL_DRAIN_TIME: Duration = Duration::from_millis(500);

/// An upload as read from its request.
pub(super) struct Received {
    /// The image's bytes.
    pub(super) bytes: Bytes,
    /// Whether the bytes are in the store already.
    pub(super) stored: bool,
    /// A JPEG's restart markers, found on the way.
    pub(super) markers: Option<Box<RestartIndex>>,
}

impl Received {
    fn scanned(bytes: Bytes, scanner: RestartScanner, stored: bool) -> Received {
        let markers = scanner.finish(&bytes).map(Box::new);
        Received { bytes, stored, markers }
    }
}

/// The body length a request declares (`Content-Length`), if it declares one.
pub(super) fn declared_length(request: &Request) -> Option<u64> {
    request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

/// Whether the request's body is a multipart form.
pub(super) fn is_multipart(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"))
}

/// The body of `request`, failing with [`BodyIdle`] when no bytes arrive for `idle`.
fn idle_limited(request: Request, idle: Duration) -> Request {
    request.map(|body| {
        let chunks = body.into_data_stream();
        Body::from_stream(futures_util::stream::unfold(Some(chunks), move |chunks| async move {
            let mut chunks = chunks?;
            match tokio::time::timeout(idle, chunks.next()).await {
                Ok(Some(chunk)) => Some((chunk, Some(chunks))),
                Ok(None) => None,
                Err(_) => Some((Err(axum::Error::new(BodyIdle(idle))), None)),
            }
        }))
    })
}

/// No byte of a request body arrived for this long.
#[derive(Debug, thiserror::Error)]
#[error("no part of the request body arrived for {} s", .0.as_secs())]
struct BodyIdle(Duration);

/// What a failed body read means: an idle client (408), else a body over the limit (413).
fn body_error(error: &(dyn std::error::Error + 'static), limit: u64) -> ApiError {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(idle) = e.downcast_ref::<BodyIdle>() {
            return ApiError::RequestTimeout(idle.to_string());
        }
        cause = e.source();
    }
    ApiError::PayloadTooLarge { limit }
}

/// How an upload's body is read.
pub(super) struct Reading {
    /// The declared length, if any.
    pub(super) declared: Option<u64>,
    /// The upload limit.
    pub(super) limit: u64,
    /// Longest wait for the next bytes.
    pub(super) idle: Duration,
}

/// Reads the upload: the raw body, or the first file part of a form (whose option fields go
/// into `options`). A large raw body of a declared length is read chunk by chunk and written
/// to `sink`, when given, as it arrives.
pub(super) async fn read_upload(
    request: Request,
    how: Reading,
    options: &mut UploadOptions,
    sink: Option<Box<dyn ValueSink>>,
) -> Result<Received, ApiError> {
    let Reading { declared, limit, idle } = how;
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let request = idle_limited(request, idle);
    if is_multipart(&request) {
        return read_form(request, limit, options).await;
    }
    read_raw(request.into_body(), declared, limit, sink).await
}

/// Reads a raw body, finding a JPEG's restart markers as its chunks arrive, while the chunks
/// also go to `sink`, when given ([`store_parts`]): receiving seldom waits for the store (up
/// to [`QUEUED_PARTS`] chunks wait for it), and the upload is in the store by the time its
/// last byte is in. A sink that fails takes no more (the upload is then stored whole when it
/// is submitted).
async fn read_raw(
    body: Body,
    declared: Option<u64>,
    limit: u64,
    sink: Option<Box<dyn ValueSink>>,
) -> Result<Received, ApiError> {
    let (parts, queued) = tokio::sync::mpsc::channel(QUEUED_PARTS);
    let storing = async move {
        match (sink, declared) {
            (Some(sink), Some(declared)) => store_parts(sink, queued, declared).await,
            _ => false,
        }
    };
    let receiving = async move {
        let mut stream = body.into_data_stream();
        let mut bytes = BytesMut::with_capacity(declared.unwrap_or(0).min(limit) as usize);
        let mut scanner = RestartScanner::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| body_error(&e, limit))?;
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
            // A sink that failed (or none) takes nothing: the send fails, and that is fine.
            let _ = parts.send(chunk).await;
            scanner.feed(&bytes);
        }
        // Dropping the sender ends the storing, which then sets the value.
        drop(parts);
        Ok((bytes.freeze(), scanner))
    };
    let (received, stored) = tokio::join!(receiving, storing);
    let (bytes, scanner) = received?;
    Ok(Received::scanned(bytes, scanner, stored))
}

/// Writes the chunks of a body to `sink` as they come (all that wait, in one write), and sets
/// the value once they end: true when it did. A body that ended short of `declared` (the
/// client went away) leaves the sink unfinished, so the store sets nothing.
async fn store_parts(
    mut sink: Box<dyn ValueSink>,
    mut queued: tokio::sync::mpsc::Receiver<Bytes>,
    declared: u64,
) -> bool {
    let could_not = |e: &dsobel_transport::TransportError| {
        tracing::warn!(error = %e, "could not store the upload as it arrived; it is stored once in");
    };
    let (mut batch, mut written) = (Vec::new(), 0u64);
    while queued.recv_many(&mut batch, QUEUED_PARTS).await > 0 {
        let parts: Vec<&[u8]> = batch.iter().map(|b| b.as_ref()).collect();
        if let Err(e) = sink.write(&parts).await {
            could_not(&e);
            return false;
        }
        written += parts.iter().map(|p| p.len() as u64).sum::<u64>();
        batch.clear();
    }
    if written != declared {
        return false;
    }
    sink.finish().await.inspect_err(could_not).is_ok()
}

/// Reads a multipart form: its first file part is the image (its restart markers looked for
/// as it arrives), its other fields options. Every byte of every part counts against the
/// limit, files after the first and option fields included.
async fn read_form(request: Request, limit: u64, options: &mut UploadOptions) -> Result<Received, ApiError> {
    let too_large = || ApiError::PayloadTooLarge { limit };
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::MissingFile(format!("unreadable form: {e}")))?;
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        if let ApiError::RequestTimeout(idle) = body_error(&e, limit) {
            ApiError::RequestTimeout(idle)
        } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::MissingFile(format!("unreadable form: {e}"))
        }
    };
    let mut image: Option<(Bytes, RestartScanner)> = None;
    let mut seen = 0u64;
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        let is_file = field.file_name().is_some();
        let name = field.name().unwrap_or_default().to_owned();
        let keep = !is_file || image.is_none();
        let mut bytes = BytesMut::new();
        let mut scanner = RestartScanner::new();
        while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
            seen += chunk.len() as u64;
            if seen > limit {
                return Err(too_large());
            }
            if !is_file && bytes.len() + chunk.len() > MAX_FORM_FIELD_BYTES {
                return Err(ApiError::InvalidOption(format!(
                    "form field {name:?} is longer than {MAX_FORM_FIELD_BYTES} bytes"
                )));
            }
            if keep {
                bytes.extend_from_slice(&chunk);
                if is_file {
                    scanner.feed(&bytes);
                }
            }
        }
        if !is_file {
            let value = std::str::from_utf8(&bytes)
                .map(str::to_owned)
                .map_err(|_| ApiError::InvalidOption(format!("form field {name:?} is not UTF-8 text")))?;
            options.set(&name, value)?;
        } else if keep {
            image = Some((bytes.freeze(), scanner));
        }
    }
    let (bytes, scanner) = image.ok_or_else(|| {
        ApiError::MissingFile("the form has no file part; attach the image as a file".into())
    })?;
    Ok(Received::scanned(bytes, scanner, false))
}

/// Answers an upload refused before its body was read: after reading (and dropping) at most
/// [`REFUSAL_DRAIN_BYTES`] of the body for at most [`REFUSAL_DRAIN_TIME`] (a client that
/// sends a small body before it reads gets the answer rather than a reset), with
/// `Connection: close`, so the rest of the body is never read.
pub(super) async fn refuse_unread(request: Request, refusal: ApiError) -> Response {
    let mut stream = request.into_body().into_data_stream();
    let drain = async {
        let mut seen = 0u64;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen >= REFUSAL_DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(REFUSAL_DRAIN_TIME, drain).await;
    let mut response = refusal.into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Where the raw body of `request`, for job `id`, is stored while it arrives, if it is large
/// enough to gain from that and the store takes parts: a future that holds no reference to the
/// request.
pub(super) fn upload_sink<'a>(
    coordinator: &'a Coordinator,
    request: &Request,
    id: &'a crate::model::JobId,
    limit: u64,
) -> impl Future<Output = Option<Box<dyn ValueSink>>> + Send + 'a {
    let declared = declared_length(request).filter(|len| *len >= LARGE_UPLOAD_BYTES && *len <= limit);
    let raw = !is_multipart(request);
    async move {
        match declared {
            Some(len) if raw => coordinator.upload_sink(id, len).await,
            _ => None,
        }
    }
}
