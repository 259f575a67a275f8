//! # dsobel-client: the typed client of the dsobel HTTP API
//!
//! One client for every program that talks to a dsobel server: `dsobel submit`, the load
//! generator of `dsobel bench`, and the tests. It knows the API of DESIGN §5: uploads (raw
//! bodies, with options as a query string, `wait=` answered with the PNG itself), `/status`,
//! `/result`, `/events` (read with [`sse::SseParser`], which follows the event-stream format to
//! the letter), and `DELETE /jobs/{id}`. Answers are typed ([`JobStatus`]); refusals come back
//! as [`ClientError::Api`] with the server's stable error code and message.

pub mod sse;

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::sse::SseParser;

pub use dsobel_api::{
    BatchCounts, BatchId, BatchLinks, BatchRequest, BatchState, BatchStatus, Cut, ErrorBody, ErrorCode,
    JobError, JobId, JobLinks, JobOptions, JobState, JobStatus, Timings,
};

/// What an upload got.
#[derive(Debug, Clone)]
pub enum Upload {
    /// `202`: queued; follow the links.
    Accepted(JobLinks),
    /// `200` to an upload with `wait=`: the PNG itself, with the job id the server named.
    Finished {
        /// The job id, when the server named it.
        id: Option<JobId>,
        /// The PNG.
        png: Bytes,
    },
}

/// What `/result/{id}` answered.
#[derive(Debug, Clone)]
pub enum JobResult {
    /// The PNG.
    Ready(Bytes),
    /// Not finished yet.
    Pending(Box<JobStatus>),
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused or failed the request, with its stable code.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code (`http-<status>` when the body had none).
        code: String,
        /// The server's message.
        message: String,
        /// Seconds the server asked to wait (`Retry-After`), if any.
        retry_after: Option<u64>,
    },
    /// No answer: connection, timeout or body errors.
    #[error("cannot reach {base}: {source}")]
    Transport {
        /// The server's base URL.
        base: String,
        /// What went wrong.
        #[source]
        source: reqwest::Error,
    },
    /// An answer that is not what the API promises.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The HTTP status (0 when no answer came).
    pub fn status(&self) -> u16 {
        match self {
            ClientError::Api { status, .. } => *status,
            ClientError::Transport { source, .. } => source.status().map_or(0, |s| s.as_u16()),
            ClientError::Protocol(_) => 0,
        }
    }

    /// A short stable code: the server's, or `timeout`, `connect`, `body`, `request`,
    /// `protocol` when no refusal came.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Api { code, .. } => code,
            ClientError::Transport { source, .. } if source.is_timeout() => "timeout",
            ClientError::Transport { source, .. } if source.is_connect() => "connect",
            ClientError::Transport { source, .. } if source.is_body() || source.is_decode() => "body",
            ClientError::Transport { .. } => "request",
            ClientError::Protocol(_) => "protocol",
        }
    }

    /// `429 too-busy` or `503`: worth retrying after [`ClientError::retry_after`].
    pub fn is_busy(&self) -> bool {
        matches!(self.status(), 429 | 503)
    }

    /// Seconds the server asked to wait before retrying.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ClientError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A `reqwest` client builder that can always build: it installs rustls's ring provider as the
/// process's TLS provider first (once; nothing happens when one is installed already). A
/// build that links reqwest's rustls without a provider (the object stores do, to avoid a
/// large C build) would otherwise panic when a client is built, even for `http://` URLs.
pub fn http_builder() -> reqwest::ClientBuilder {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // rustls marks ring's provider deprecated for its lack of post-quantum key exchange;
        // it is the provider the rest of dsobel uses (Redis TLS, object stores).
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// A client of one dsobel server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<SecretString>,
}

impl Client {
    /// A client of the server at `base` (`http://127.0.0.1:8080`), with its API key if it
    /// wants one (an empty key counts as none).
    pub fn new(base: &str, key: Option<SecretString>) -> Client {
        let http = http_builder().build().expect("an HTTP client with default settings builds");
        Client::with_http(http, base, key)
    }

    /// The same, on a configured `reqwest` client (pool sizes, timeouts).
    pub fn with_http(http: reqwest::Client, base: &str, key: Option<SecretString>) -> Client {
        let key = key.filter(|k| !k.expose_secret().is_empty());
        Client { http, base: base.trim_end_matches('/').to_owned(), key }
    }

    /// The server's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(key) => request.bearer_auth(key.expose_secret()),
            None => request,
        }
    }

    async fn send(&self, request: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        request.send().await.map_err(|source| self.transport(source))
    }

    fn transport(&self, source: reqwest::Error) -> ClientError {
        ClientError::Transport { base: self.base.clone(), source }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, ClientError> {
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(format!("unreadable JSON: {e}")))
    }

    /// The JSON answer of a request that succeeds with `200`; the refusal otherwise.
    async fn ok_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
    ) -> Result<T, ClientError> {
        let response = self.send(self.request(method, path)).await?;
        if response.status() != StatusCode::OK {
            return Err(refusal(response).await);
        }
        self.json(response).await
    }

    /// Uploads `body` (the image's bytes) with `query` (`threshold=80&wait=30`, no `?`).
    pub async fn upload(&self, body: impl Into<reqwest::Body>, query: &str) -> Result<Upload, ClientError> {
        self.upload_once(body, query, None).await
    }

    /// [`Client::upload`] with an `Idempotency-Key`: sent again with the same key (after a lost
    /// answer, or a retry), the upload gets the job the first one made instead of a new one.
    pub async fn upload_once(
        &self,
        body: impl Into<reqwest::Body>,
        query: &str,
        key: Option<&str>,
    ) -> Result<Upload, ClientError> {
        let query = query.trim_start_matches('?');
        let path = if query.is_empty() { "/upload".to_owned() } else { format!("/upload?{query}") };
        let mut request = self.request(Method::POST, &path).body(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = self.send(request).await?;
        match response.status() {
            StatusCode::ACCEPTED => Ok(Upload::Accepted(self.json(response).await?)),
            StatusCode::OK => {
                let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok());
                let id = header("x-dsobel-job-id")
                    .or_else(|| header("location").and_then(|l| l.rsplit('/').next()))
                    .and_then(JobId::parse);
                let png = response.bytes().await.map_err(|e| self.transport(e))?;
                Ok(Upload::Finished { id, png })
            }
            _ => Err(refusal(response).await),
        }
    }

    /// The job's status.
    pub async fn status(&self, id: &JobId) -> Result<JobStatus, ClientError> {
        self.ok_json(Method::GET, &format!("/status/{id}")).await
    }

    /// The job's PNG, or its status while it is not finished.
    pub async fn result(&self, id: &JobId) -> Result<JobResult, ClientError> {
        let response = self.send(self.request(Method::GET, &format!("/result/{id}"))).await?;
        match response.status() {
            StatusCode::OK => Ok(JobResult::Ready(response.bytes().await.map_err(|e| self.transport(e))?)),
            StatusCode::ACCEPTED => Ok(JobResult::Pending(Box::new(self.json(response).await?))),
            _ => Err(refusal(response).await),
        }
    }

    /// Cancels the job (`DELETE /jobs/{id}`); returns its status, `cancelled`.
    pub async fn cancel(&self, id: &JobId) -> Result<JobStatus, ClientError> {
        self.ok_json(Method::DELETE, &format!("/jobs/{id}")).await
    }

    /// Starts a batch (`POST /batches`); with an `Idempotency-Key`, a repeated request gets
    /// the batch the first one started.
    pub async fn start_batch(
        &self,
        request: &BatchRequest,
        key: Option<&str>,
    ) -> Result<BatchLinks, ClientError> {
        let mut builder = self.request(Method::POST, "/batches").json(request);
        if let Some(key) = key {
            builder = builder.header("idempotency-key", key);
        }
        let response = self.send(builder).await?;
        match response.status() {
            StatusCode::ACCEPTED | StatusCode::OK => self.json(response).await,
            _ => Err(refusal(response).await),
        }
    }

    /// A batch's status.
    pub async fn batch_status(&self, id: &BatchId) -> Result<BatchStatus, ClientError> {
        self.ok_json(Method::GET, &format!("/batches/{id}")).await
    }

    /// Cancels a batch (`DELETE /batches/{id}`); returns its status, `cancelled`.
    pub async fn cancel_batch(&self, id: &BatchId) -> Result<BatchStatus, ClientError> {
        self.ok_json(Method::DELETE, &format!("/batches/{id}")).await
    }

    /// Follows a batch until it is over, calling `progress` with its status five times a
    /// second; returns the final status.
    pub async fn follow_batch(
        &self,
        id: &BatchId,
        mut progress: impl FnMut(&BatchStatus),
    ) -> Result<BatchStatus, ClientError> {
        loop {
            let status = self.batch_status(id).await?;
            progress(&status);
            if status.state.is_over() {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Follows the job until it is over, calling `progress` with every status seen: its event
    /// stream, or `/status` every half second when the stream cannot be had or breaks.
    /// Returns the final status (done, failed or cancelled).
    pub async fn follow(
        &self,
        id: &JobId,
        mut progress: impl FnMut(&JobStatus),
    ) -> Result<JobStatus, ClientError> {
        if let Some(status) = self.follow_events(id, &mut progress).await? {
            return Ok(status);
        }
        loop {
            let status = self.status(id).await?;
            progress(&status);
            if status.state.is_over() {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The event stream until the job is over; `None` when it broke before.
    async fn follow_events(
        &self,
        id: &JobId,
        progress: &mut impl FnMut(&JobStatus),
    ) -> Result<Option<JobStatus>, ClientError> {
        let request = self.request(Method::GET, &format!("/events/{id}"));
        let Ok(response) = request.send().await else { return Ok(None) };
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED => return Err(refusal(response).await),
            _ => return Ok(None),
        }
        let mut parser = SseParser::new();
        let mut body = response.bytes_stream();
        while let Some(Ok(chunk)) = body.next().await {
            for event in parser.feed(&chunk) {
                let status: JobStatus = serde_json::from_str(&event.data)
                    .map_err(|e| ClientError::Protocol(format!("unreadable {} event: {e}", event.event)))?;
                progress(&status);
                if status.state.is_over() {
                    return Ok(Some(status));
                }
            }
        }
        Ok(None)
    }
}

/// The error of a refused request, from its JSON body `{"error": {"code", "message"}}`.
pub async fn refusal(response: reqwest::Response) -> ClientError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    // The code is kept as text: a newer server's code is shown as it is.
    #[derive(Deserialize)]
    struct Detail {
        code: String,
        message: String,
    }
    #[derive(Deserialize)]
    struct Body {
        error: Detail,
    }
    let body = response.bytes().await.ok().and_then(|b| serde_json::from_slice::<Body>(&b).ok());
    match body {
        Some(Body { error }) => {
            ClientError::Api { status, code: error.code, message: error.message, retry_after }
        }
        None => ClientError::Api {
            status,
            code: format!("http-{status}"),
            message: format!("the server answered HTTP {status}"),
            retry_after,
        },
    }
}
