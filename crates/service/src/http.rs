//! The HTTP API of DESIGN §5 on axum: routes, handlers, authentication and request metrics.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, MatchedPath, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use dsobel_codec::RestartScanner;
use dsobel_kernel::{DEFAULT_THRESHOLD, Magnitude, OutputMode};
use dsobel_transport::ValueSink;
use futures_util::Stream;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::client_limits::{ClientLimits, StreamSlot};
use crate::config::{ExposeSecret, SecretString};
use crate::coordinator::{Coordinator, Markers, Submitted, Upload};
use crate::error::{ApiError, JobsError};
use crate::health;
use crate::jobs::JobStatus;
use crate::model::{JobId, JobOptions, JobState};
use crate::telemetry::{Metrics, RequestLabels};
use crate::wakeups::JobWatch;
use crate::web;

/// Shared state of the handlers.
pub struct AppState {
    /// The job coordinator.
    pub coordinator: Arc<Coordinator>,
    /// Metrics of this process.
    pub metrics: Metrics,
    /// The API key, when one is required.
    pub api_key: Option<SecretString>,
    /// Largest upload in bytes.
    pub max_upload_bytes: u64,
    /// The memory budget of upload bodies being received.
    pub upload_memory: UploadMemory,
    /// Cancelled when the server shuts down (ends event streams).
    pub shutdown: CancellationToken,
    /// Where the web page comes from.
    pub page: web::Page,
    /// Longest wait for the next bytes of an upload's body.
    pub body_idle_timeout: Duration,
    /// Longest time an upload's body may take in all.
    pub upload_timeout: Duration,
    /// Request rate and event streams per client.
    pub client_limits: Arc<ClientLimits>,
}

type Shared = Arc<AppState>;

/// The memory budget of upload bodies being received, counted in KiB: an upload reserves its
/// declared length (or the upload limit, when it declares none) before its body is read, and
/// gives it back once its bytes are handed to the coordinator, so that the bodies in memory
/// at once never exceed the budget however many clients send.
#[derive(Clone)]
pub struct UploadMemory {
    kib: Arc<tokio::sync::Semaphore>,
    budget: u64,
}

impl UploadMemory {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> UploadMemory {
        let kib = bytes.div_ceil(1024).min(tokio::sync::Semaphore::MAX_PERMITS as u64) as usize;
        UploadMemory { kib: Arc::new(tokio::sync::Semaphore::new(kib)), budget: bytes }
    }

    /// Reserves `bytes`, or refuses with `429 too-busy` when the budget is spent.
    fn reserve(&self, bytes: u64) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        self.kib.clone().try_acquire_many_owned(kib).map_err(|_| ApiError::Busy {
            reason: format!(
                "the server is receiving as many uploads as its upload memory allows ({} bytes, DSOBEL_UPLOAD_MEMORY_BYTES)",
                self.budget
            ),
            retry_after: 2,
        })
    }
}

/// The router with every route of the API and the page.
pub fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/upload", post(upload))
        .route("/result/{id}", get(result))
        .route("/status/{id}", get(status))
        .route("/events/{id}", get(events))
        .route("/jobs/{id}", delete(cancel))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_api_key))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_rate));
    let mut open = Router::new().route("/api/limits", get(limits)).merge(health::router(health::Health {
        transport: state.coordinator.transport().clone(),
        metrics: state.metrics.clone(),
        needs_consumers: false,
    }));
    for path in web::Page::paths() {
        open = open.route(
            path,
            get(move |State(state): State<Shared>, headers: HeaderMap| async move {
                state.page.serve(path, &headers).unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
            }),
        );
    }
    api.merge(open)
        .fallback(page_or_not_found)
        .method_not_allowed_fallback(|request: Request| async move {
            ApiError::MethodNotAllowed(request.method().as_str().chars().take(16).collect()).into_response()
        })
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// A file of a page served from a folder (which may hold files the binary does not embed), or
/// the API's 404.
async fn page_or_not_found(State(state): State<Shared>, request: Request) -> Response {
    if request.method() == axum::http::Method::GET
        && let Some(response) = state.page.serve(request.uri().path(), request.headers())
    {
        return response;
    }
    ApiError::NotFound("that path".into()).into_response()
}

async fn count_requests(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = method_label(request.method()).to_owned();
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels { route, method, status: response.status().as_u16() })
        .inc();
    response
}

/// The method as a metric label: the standard ones by name, anything else `other`, so that
/// made-up methods from unauthenticated clients cannot create new series without end.
fn method_label(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT"];
    KNOWN.into_iter().find(|known| method.as_str() == *known).unwrap_or("other")
}

/// Constant-time comparison (`subtle`), so the key cannot be guessed byte by byte from timings.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// The address a request comes from, as [`ClientLimits::client`] decides.
fn client_of(
    state: &AppState,
    request_extensions: &axum::http::Extensions,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer = request_extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    state.client_limits.client(peer, headers)
}

/// Refuses a request past its client's rate (checked before the API key, so guessing keys is
/// limited too).
async fn limit_rate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let client = client_of(&state, request.extensions(), request.headers());
    match state.client_limits.check_rate(client) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

async fn require_api_key(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let Some(key) = &state.api_key else { return next.run(request).await };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    // Browsers cannot set headers on EventSource or <img>: GETs (only) may pass ?access_token=.
    let reads = matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let from_query =
        request.uri().query().filter(|_| reads).and_then(|q| {
            q.split('&').find_map(|pair| pair.strip_prefix("access_token=")).map(str::to_owned)
        });
    match bearer.or(from_query) {
        Some(given) if same_secret(given.as_bytes(), key.expose_secret().as_bytes()) => {
            next.run(request).await
        }
        _ => ApiError::Unauthorized.into_response(),
    }
}

const KNOWN_OPTIONS: [&str; 6] = ["threshold", "magnitude", "output", "fragments", "wait", "access_token"];

/// Options of one upload, gathered from the query and the form.
#[derive(Debug, Default)]
struct UploadOptions {
    fields: HashMap<String, String>,
}

impl UploadOptions {
    fn set(&mut self, name: &str, value: String) -> Result<(), ApiError> {
        if !KNOWN_OPTIONS.contains(&name) {
            return Err(ApiError::InvalidOption(format!(
                "unknown option {name:?}; known options: threshold, magnitude, output, fragments, wait"
            )));
        }
        self.fields.insert(name.to_owned(), value);
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    fn job_options(&self) -> Result<JobOptions, ApiError> {
        let threshold = match self.get("threshold") {
            None => DEFAULT_THRESHOLD,
            Some(t) => t.parse::<u16>().map_err(|_| {
                ApiError::InvalidOption(format!("threshold must be an integer from 0 to 65535, not {t:?}"))
            })?,
        };
        let magnitude = match self.get("magnitude") {
            None => Magnitude::L2,
            Some(m) => m.parse().map_err(|e| ApiError::InvalidOption(format!("{e}")))?,
        };
        let output = match self.get("output") {
            None => OutputMode::Binary,
            Some(o) => o.parse().map_err(|e| ApiError::InvalidOption(format!("{e}")))?,
        };
        let fragments = match self.get("fragments") {
            None | Some("auto") => None,
            Some(f) => Some(f.parse::<u32>().ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| {
                ApiError::InvalidOption(format!(
                    "fragments must be \"auto\" or an integer from 1 to 10000, not {f:?}"
                ))
            })?),
        };
        Ok(JobOptions { threshold, magnitude, output, fragments })
    }

    fn wait(&self) -> Result<Option<Duration>, ApiError> {
        match self.get("wait") {
            None => Ok(None),
            Some(w) => w
                .parse::<f64>()
                .ok()
                .filter(|s| (0.0..=300.0).contains(s))
                .map(|s| Some(Duration::from_secs_f64(s)))
                .ok_or_else(|| {
                    ApiError::InvalidOption(format!(
                        "wait must be a number of seconds from 0 to 300, not {w:?}"
                    ))
                }),
        }
    }
}

/// Reads the image bytes and form options of an upload, enforcing the size limit as it reads.
/// The body of `request`, failing with [`BodyIdle`] when no bytes arrive for `idle`.
fn idle_limited(request: Request, idle: Duration) -> Request {
    request.map(|body| {
        let chunks = body.into_data_stream();
        Body::from_stream(futures_util::stream::unfold(Some(chunks), move |chunks| async move {
            let mut chunks = chunks?;
            match tokio::time::timeout(idle, futures_util::StreamExt::next(&mut chunks)).await {
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

/// The body length a request declares (`Content-Length`), if it declares one.
fn declared_length(request: &Request) -> Option<u64> {
    request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

/// Whether the request's body is a multipart form.
fn is_multipart(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"))
}

/// The smallest raw body read chunk by chunk ([`read_large_body`]): stored while it arrives
/// where the store takes parts, its restart markers found on the way. Below it, one write of
/// the whole upload costs less than the parts, and a scan afterwards little.
const LARGE_UPLOAD_BYTES: u64 = 2 << 20;

/// An upload as read from its request.
struct Received {
    bytes: Bytes,
    /// Whether the bytes are in the store already.
    stored: bool,
    /// A JPEG's restart markers, when they were looked for on the way.
    markers: Markers,
}

impl Received {
    fn whole(bytes: Bytes) -> Received {
        Received { bytes, stored: false, markers: Markers::Unscanned }
    }
}

/// Reads the upload: the raw body, or the first file part of a form (whose option fields go
/// into `options`). A large raw body of a declared length is read chunk by chunk and written
/// to `sink`, when given, as it arrives.
async fn read_upload(
    request: Request,
    declared: Option<u64>,
    limit: u64,
    idle: Duration,
    options: &mut UploadOptions,
    sink: Option<Box<dyn ValueSink>>,
) -> Result<Received, ApiError> {
    let request = idle_limited(request, idle);
    let too_large = || ApiError::PayloadTooLarge { limit };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    if !is_multipart(&request) {
        return match declared {
            Some(declared) if declared >= LARGE_UPLOAD_BYTES => {
                read_large_body(request.into_body(), declared, limit, sink).await
            }
            _ => axum::body::to_bytes(request.into_body(), limit as usize)
                .await
                .map(Received::whole)
                .map_err(|e| body_error(&e, limit)),
        };
    }
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::MissingFile(format!("unreadable form: {e}")))?;
    let mut image: Option<Bytes> = None;
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        if let ApiError::RequestTimeout(idle) = body_error(&e, limit) {
            ApiError::RequestTimeout(idle)
        } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::MissingFile(format!("unreadable form: {e}"))
        }
    };
    // Every byte of every part counts against the limit, files after the first and option
    // fields included.
    let mut seen = 0u64;
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        let is_file = field.file_name().is_some();
        let name = field.name().unwrap_or_default().to_owned();
        let mut bytes = BytesMut::new();
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
            if !is_file || image.is_none() {
                bytes.extend_from_slice(&chunk);
            }
        }
        if !is_file {
            let value = std::str::from_utf8(&bytes)
                .map(str::to_owned)
                .map_err(|_| ApiError::InvalidOption(format!("form field {name:?} is not UTF-8 text")))?;
            options.set(&name, value)?;
        } else if image.is_none() {
            image = Some(bytes.freeze());
        }
    }
    image
        .map(Received::whole)
        .ok_or_else(|| ApiError::MissingFile("the form has no file part; attach the image as a file".into()))
}

/// Chunks of a body received and not yet written to the store, at most.
const QUEUED_PARTS: usize = 64;

/// Reads a raw body of `declared` bytes whole, finding a JPEG's restart markers as its
/// chunks arrive ([`RestartScanner`]), while a task of its own writes the chunks to `sink`,
/// when given ([`store_parts`]): receiving seldom waits for the store (up to [`QUEUED_PARTS`]
/// chunks wait for it), and the upload is in the store by the time its last byte is in. A sink
/// that fails is dropped (the upload is then stored whole when it is submitted).
async fn read_large_body(
    body: Body,
    declared: u64,
    limit: u64,
    sink: Option<Box<dyn ValueSink>>,
) -> Result<Received, ApiError> {
    use futures_util::StreamExt;
    let (parts, queued) = tokio::sync::mpsc::channel(QUEUED_PARTS);
    let storing = sink.map(|sink| tokio::spawn(store_parts(sink, queued, declared)));
    let mut stream = body.into_data_stream();
    let mut bytes = BytesMut::with_capacity(declared.min(limit) as usize);
    let mut scanner = RestartScanner::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| body_error(&e, limit))?;
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        bytes.extend_from_slice(&chunk);
        if storing.is_some() {
            // A sink that failed takes no more: the upload is then stored whole.
            let _ = parts.send(chunk).await;
        }
        scanner.feed(&bytes);
    }
    drop(parts);
    let stored = match storing {
        Some(storing) => storing.await.unwrap_or(false),
        None => false,
    };
    let bytes = bytes.freeze();
    let markers = match scanner.finish(&bytes) {
        Some(index) => Markers::Indexed(Box::new(index)),
        None => Markers::Unusable,
    };
    Ok(Received { bytes, stored, markers })
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

/// Longest form field that is not a file (an option's value).
const MAX_FORM_FIELD_BYTES: usize = 4096;

/// Reads a request body to its end without keeping it, up to `limit` bytes and 10 seconds.
async fn discard_body(request: Request, limit: u64) {
    use futures_util::StreamExt;
    let mut stream = request.into_body().into_data_stream();
    let mut seen = 0u64;
    let drain = async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), drain).await;
}

fn job_links(id: &str) -> serde_json::Value {
    json!({
        "id": id,
        "status_url": format!("/status/{id}"),
        "result_url": format!("/result/{id}"),
        "events_url": format!("/events/{id}"),
    })
}

fn png_response(id: &str, png: Bytes) -> Response {
    let mut response = (StatusCode::OK, png).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600, immutable"));
    if let Ok(v) =
        HeaderValue::from_str(&format!("inline; filename=\"dsobel-{}.png\"", &id[..8.min(id.len())]))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert("x-dsobel-job-id", v);
    }
    response
}

async fn upload(
    State(state): State<Shared>,
    Query(query): Query<Vec<(String, String)>>,
    request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    let declared = declared_length(&request);
    let mut options = UploadOptions::default();
    let early = query
        .into_iter()
        .try_for_each(|(name, value)| options.set(&name, value))
        .and_then(|()| Ok(state.coordinator.admit()?))
        .and_then(|()| state.upload_memory.reserve(declared.unwrap_or(u64::MAX).min(state.max_upload_bytes)));
    let reserved = match early {
        Ok(reserved) => reserved,
        Err(refusal) => {
            // Refused before reading the image: read and drop the body anyway (never keeping
            // it), so the client, still sending, gets the answer instead of a reset connection.
            discard_body(request, state.max_upload_bytes).await;
            return Err(refusal);
        }
    };
    // A large raw body goes to the store while it arrives.
    let receiving = std::time::Instant::now();
    let id = JobId::random();
    let sink = match declared {
        Some(len)
            if len >= LARGE_UPLOAD_BYTES && len <= state.max_upload_bytes && !is_multipart(&request) =>
        {
            state.coordinator.upload_sink(&id, len).await
        }
        _ => None,
    };
    let reading =
        read_upload(request, declared, state.max_upload_bytes, state.body_idle_timeout, &mut options, sink);
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
    if bytes.is_empty() {
        return Err(ApiError::MissingFile(
            "no image in the request: send the image as the body, or as a file part of a multipart form"
                .into(),
        ));
    }
    let checked =
        options.wait().and_then(|wait| Ok((wait, options.job_options()?, idempotency_key(&headers)?)));
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
        let mut response = (StatusCode::ACCEPTED, Json(job_links(&id))).into_response();
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

/// The `Idempotency-Key` header, if any: 1 to 128 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::InvalidOption("Idempotency-Key must be 1 to 128 visible ASCII characters".into())
    })
}

/// Waits until the job is over or `wait` passes: its PNG, its refusal, or `None` (still
/// running). A new job's first news is usually a wake-up (the watch was taken before it was
/// queued, so one that came already is kept); a replayed one may be over already, or not yet
/// stored by the upload that made it, so it is read at once and a missing record is waited for.
/// The job is also read every [`WAIT_RECHECK`] without news: a wake-up published while this
/// process's subscription was reconnecting is never heard.
async fn wait_for_result(
    state: &AppState,
    id: &str,
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
                JobState::Done => {
                    if let Some(png) = png {
                        return Ok(Some(png_response(id, png)));
                    }
                }
                JobState::Failed | JobState::Cancelled => return Err(failed(&status)),
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

/// How often a `?wait=` request reads its job when no wake-up comes.
const WAIT_RECHECK: Duration = Duration::from_secs(1);

fn failed(status: &JobStatus) -> ApiError {
    let error = status
        .error
        .clone()
        .unwrap_or(crate::model::JobError { code: "unknown".into(), message: "the job failed".into() });
    ApiError::JobFailed { code: error.code, message: error.message }
}

/// The job id of a path, checked here once; anything else is an unknown job.
fn checked_id(id: &str) -> Result<JobId, ApiError> {
    JobId::parse(id).ok_or_else(|| ApiError::NotFound(id.chars().take(64).collect()))
}

async fn result(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = checked_id(&id)?;
    let (status, png) = state.coordinator.status_and_result(&id).await?;
    match status.state {
        JobState::Done => match png {
            Some(png) => Ok(png_response(&id, png)),
            None => Err(ApiError::NotFound(id.to_string())),
        },
        JobState::Failed | JobState::Cancelled => Err(failed(&status)),
        JobState::Queued | JobState::Processing => Ok((StatusCode::ACCEPTED, Json(status)).into_response()),
    }
}

/// `DELETE /jobs/{id}`: cancels the job; answers its status (state `cancelled`).
async fn cancel(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = checked_id(&id)?;
    let status = state.coordinator.cancel(&id).await?;
    let mut response = Json(status).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn status(State(state): State<Shared>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = checked_id(&id)?;
    let status = state.coordinator.status(&id).await?;
    let mut response = Json(status).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

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
                    JobState::Done => "done",
                    JobState::Failed => "failed",
                    JobState::Cancelled => "cancelled",
                    JobState::Queued | JobState::Processing => "progress",
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

async fn events(
    State(state): State<Shared>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let id = checked_id(&id)?;
    let client = client_of(&state, request.extensions(), request.headers());
    let slot = state.client_limits.open_stream(client)?;
    let wakeups = state.coordinator.watch(&id);
    state.coordinator.status(&id).await?;
    let stream = EventStream { state, id, wakeups, last: None, finished: false, _slot: slot };
    let events = futures_util::stream::unfold(stream, |s| s.next_event());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

async fn limits(State(state): State<Shared>) -> Json<serde_json::Value> {
    let limits = state.coordinator.config().limits;
    Json(json!({
        "max_upload_bytes": state.max_upload_bytes,
        "max_pixels": limits.max_pixels,
        "max_dimension": limits.max_dimension,
    }))
}
