//! Talking to a dsobel server: jobs through the typed client (`dsobel-client`), metrics read
//! from `/metrics` (a missing metric fails the test, it never reads as 0), and a raw request
//! for the few answers the typed client has no call for (`/readyz`, `/metrics`, `/events`
//! read whole) or for requests made wrong on purpose.
//!
//! The async functions serve async tests; [`Backend`] is the same for synchronous tests (each
//! call runs on one runtime shared by the test threads).

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_client::{Client, ClientError, JobId, JobResult, JobState, JobStatus, Upload};
use dsobel_kernel::FilterParams;

use crate::images::{decode_png, expected};

/// How long one request may take before it counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The value of metric line `name` (with its labels, e.g.
/// `dsobel_jobs_finished_total{outcome="done"}`) in a `/metrics` page; panics naming the metric
/// when the page has no such line.
pub fn metric_in(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map(|value| {
            value.trim().parse().unwrap_or_else(|e| panic!("metric {name} has the value {value:?}: {e}"))
        })
        .unwrap_or_else(|| panic!("the metric {name} is missing from /metrics:\n{page}"))
}

/// `/metrics` of the server at `base` (`http://host:port`).
pub async fn metrics_page(http: &reqwest::Client, base: &str) -> String {
    let response = http.get(format!("{base}/metrics")).send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200, "GET {base}/metrics");
    response.text().await.expect("the /metrics page")
}

/// One metric of the server at `base` ([`metric_in`]).
pub async fn metric(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    metric_in(&metrics_page(http, base).await, name)
}

/// Uploads `bytes` with `query` and returns the job's id; panics unless the answer is `202`.
pub async fn submit(client: &Client, bytes: Vec<u8>, query: &str) -> JobId {
    match client.upload(bytes, query).await {
        Ok(Upload::Accepted(links)) => links.id,
        Ok(Upload::Finished { .. }) => panic!("upload?{query}: 200 with a PNG where 202 was expected"),
        Err(e) => panic!("upload?{query}: {e}"),
    }
}

/// Follows job `id` by its status until it is over (done, failed or cancelled) and returns that
/// status; panics with the last status seen after `limit`.
pub async fn wait_job(client: &Client, id: &JobId, limit: Duration) -> JobStatus {
    let started = Instant::now();
    loop {
        let last = match client.status(id).await {
            Ok(status) if status.state.is_over() => return status,
            Ok(status) => format!("{status:?}"),
            Err(e) => e.to_string(),
        };
        assert!(started.elapsed() < limit, "job {id} not over after {limit:?}; last seen: {last}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The PNG of a finished job; panics on any other answer.
pub async fn result_png(client: &Client, id: &JobId) -> Bytes {
    match client.result(id).await {
        Ok(JobResult::Ready(png)) => png,
        Ok(JobResult::Pending(status)) => panic!("job {id} is not finished: {status:?}"),
        Err(e) => panic!("/result/{id}: {e}"),
    }
}

/// The runtime of [`Backend`]'s calls, shared by every test thread.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
});

/// A raw answer of [`http`].
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics, showing the body, when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One raw request to `address` (`host:port`); `None` when the server cannot be reached or
/// does not answer in 30 s.
pub fn http(
    method: &str,
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Response> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
    let url = format!("http://{address}{path}");
    let body = body.to_vec();
    let headers: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    RUNTIME.block_on(async move {
        let client = dsobel_client::http_builder().timeout(REQUEST_TIMEOUT).build().ok()?;
        let mut request = client.request(method, url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = response.bytes().await.ok()?.to_vec();
        Some(Response { status, headers, body })
    })
}

/// A dsobel server (a backend, or a worker's health endpoints) for synchronous tests: the
/// typed client's calls, and metrics.
#[derive(Debug, Clone)]
pub struct Backend {
    /// `host:port`.
    pub address: String,
    client: Client,
    http: reqwest::Client,
}

impl Backend {
    /// The server at `address` (`host:port`).
    pub fn new(address: &str) -> Backend {
        let http = dsobel_client::http_builder().timeout(REQUEST_TIMEOUT).build().expect("an HTTP client");
        let client = Client::with_http(http.clone(), &format!("http://{address}"), None);
        Backend { address: address.to_owned(), client, http }
    }

    /// The typed client, for calls this type does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs one of the async helpers on the shared runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        RUNTIME.block_on(future)
    }

    /// Whether `/readyz` answers `200` now.
    pub fn is_ready(&self) -> bool {
        http("GET", &self.address, "/readyz", &[], b"").is_some_and(|r| r.status == 200)
    }

    /// `/readyz`'s status now (`None`: no answer).
    pub fn readyz(&self) -> Option<u16> {
        http("GET", &self.address, "/readyz", &[], b"").map(|r| r.status)
    }

    /// An upload of `bytes` with `query`, as the client answered it.
    pub fn upload(&self, bytes: &[u8], query: &str) -> Result<Upload, ClientError> {
        RUNTIME.block_on(self.client.upload(bytes.to_vec(), query))
    }

    /// An upload with an `Idempotency-Key`.
    pub fn upload_once(&self, bytes: &[u8], query: &str, key: &str) -> Result<Upload, ClientError> {
        RUNTIME.block_on(self.client.upload_once(bytes.to_vec(), query, Some(key)))
    }

    /// Uploads and returns the job's id (panics unless `202`).
    pub fn submit(&self, bytes: &[u8], query: &str) -> JobId {
        RUNTIME.block_on(submit(&self.client, bytes.to_vec(), query))
    }

    /// The job's status, as the client answered it.
    pub fn try_status(&self, id: &JobId) -> Result<JobStatus, ClientError> {
        RUNTIME.block_on(self.client.status(id))
    }

    /// The job's status (panics on a refusal).
    pub fn status(&self, id: &JobId) -> JobStatus {
        self.try_status(id).unwrap_or_else(|e| panic!("/status/{id}: {e}"))
    }

    /// Waits for the job to be over ([`wait_job`]).
    pub fn wait_job(&self, id: &JobId, limit: Duration) -> JobStatus {
        RUNTIME.block_on(wait_job(&self.client, id, limit))
    }

    /// Waits for the job to be over and checks it is done.
    pub fn wait_done(&self, id: &JobId, limit: Duration) -> JobStatus {
        let status = self.wait_job(id, limit);
        assert_eq!(status.state, JobState::Done, "job {id}: {status:?}");
        status
    }

    /// `/result/{id}`, as the client answered it.
    pub fn result(&self, id: &JobId) -> Result<JobResult, ClientError> {
        RUNTIME.block_on(self.client.result(id))
    }

    /// The PNG of a finished job (panics on any other answer).
    pub fn result_png(&self, id: &JobId) -> Bytes {
        RUNTIME.block_on(result_png(&self.client, id))
    }

    /// Cancels the job, as the client answered it.
    pub fn cancel(&self, id: &JobId) -> Result<JobStatus, ClientError> {
        RUNTIME.block_on(self.client.cancel(id))
    }

    /// Fetches a finished job's PNG and checks it against the scalar reference (default
    /// options).
    pub fn assert_exact(&self, id: &JobId, luma: &[u8], w: u32, h: u32) {
        let (dw, dh, pixels) = decode_png(&self.result_png(id));
        assert_eq!((dw, dh), (w, h), "job {id}: size");
        let want = expected(luma, w, h, &FilterParams::default());
        assert!(pixels == want, "job {id}: the result differs from the reference");
    }

    /// A metric's value now ([`metric_in`]: panics when the metric is missing).
    pub fn metric(&self, name: &str) -> f64 {
        RUNTIME.block_on(metric(&self.http, &format!("http://{}", self.address), name))
    }

    /// A raw request ([`http`]).
    pub fn http(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Option<Response> {
        http(method, &self.address, path, headers, body)
    }
}

#[cfg(test)]
mod tests {
    use super::metric_in;

    #[test]
    fn a_metric_is_read_with_its_labels_and_a_missing_one_fails() {
        let page = "# HELP x\nx_total 3\nx_total{a=\"b\"} 4.5\nxy_total 9\n";
        assert_eq!(metric_in(page, "x_total"), 3.0);
        assert_eq!(metric_in(page, "x_total{a=\"b\"}"), 4.5);
        let missing = std::panic::catch_unwind(|| metric_in(page, "y_total")).unwrap_err();
        let message = missing.downcast_ref::<String>().unwrap();
        assert!(message.contains("the metric y_total is missing"), "{message}");
    }
}
