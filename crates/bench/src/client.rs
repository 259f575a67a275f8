//! One benchmark request, the way a real client uses the API (with `--query wait=SECONDS`, the
//! upload's own answer is the PNG, in one request). Otherwise: upload the image and get `202`,
//! follow the job's event stream until it is done or failed, then download the PNG.
//!
//! Each step is timed separately, and the job's own stage timings (from the final event's
//! status JSON) are kept, so a slow request can be blamed on the network, the queue or the
//! filter. Nothing is retried: a `429 too-busy` is a failure with its code, as the seed's
//! operators would want to see it.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::images::BenchImage;
use crate::record::Record;

/// Where and how requests are sent.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL without a trailing slash (`http://127.0.0.1:8080`).
    pub base: String,
    /// Extra upload options as a query string without `?` (`threshold=80&output=magnitude`).
    pub query: String,
    /// Bearer token, when the server wants one.
    pub api_key: Option<String>,
    /// Longest time one request (upload, wait and download) may take.
    pub timeout: Duration,
}

/// Why a request failed: the HTTP status (0 when none came) and an error code.
struct Failure {
    status: u16,
    code: String,
}

impl Failure {
    fn new(status: u16, code: impl Into<String>) -> Failure {
        Failure { status, code: code.into() }
    }
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Failure {
        let code = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect"
        } else if e.is_body() || e.is_decode() {
            "body"
        } else {
            "request"
        };
        Failure::new(e.status().map(|s| s.as_u16()).unwrap_or(0), code)
    }
}

/// Sends one request of `image` and measures it; never fails, a failure is a [`Record`] with
/// its status and error code. `started` is the benchmark's start (for `start_ms`).
pub async fn one_request(
    client: &reqwest::Client,
    target: &Target,
    image: &BenchImage,
    concurrency: usize,
    started: Instant,
) -> Record {
    let t0 = Instant::now();
    let mut record = Record {
        image_kb: image.kilobytes(),
        concurrency,
        image: image.label.clone(),
        width: image.dimensions.map(|d| d.0),
        height: image.dimensions.map(|d| d.1),
        start_ms: t0.duration_since(started).as_secs_f64() * 1e3,
        ..Record::default()
    };
    let outcome = tokio::time::timeout(target.timeout, steps(client, target, image, &mut record)).await;
    record.elapsed_ms = t0.elapsed().as_secs_f64() * 1e3;
    match outcome {
        Ok(Ok(())) => {
            record.status = 200;
        }
        Ok(Err(failure)) => {
            record.status = failure.status;
            record.error = failure.code;
        }
        Err(_) => {
            record.status = 0;
            record.error = "timeout".into();
        }
    }
    record
}

fn authorized(request: reqwest::RequestBuilder, target: &Target) -> reqwest::RequestBuilder {
    match &target.api_key {
        Some(key) => request.bearer_auth(key),
        None => request,
    }
}

/// The error code of a refusal: the API's `{"error":{"code"}}`, else `http-NNN`.
async fn refusal(response: reqwest::Response) -> Failure {
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("http-{status}"));
    Failure::new(status, code)
}

async fn steps(
    client: &reqwest::Client,
    target: &Target,
    image: &BenchImage,
    record: &mut Record,
) -> Result<(), Failure> {
    // 1. Upload.
    let t = Instant::now();
    let url = if target.query.is_empty() {
        format!("{}/upload", target.base)
    } else {
        format!("{}/upload?{}", target.base, target.query)
    };
    let response = authorized(client.post(url), target)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(image.bytes.clone())
        .send()
        .await?;
    if response.status().as_u16() == 200 {
        // `?wait=` answered with the PNG itself: one request did it all.
        if let Some(id) = response.headers().get("x-dsobel-job-id").and_then(|v| v.to_str().ok()) {
            record.job_id = id.to_owned();
        }
        let png = response.bytes().await?;
        record.upload_ms = Some(t.elapsed().as_secs_f64() * 1e3);
        return check_png(record, &png);
    }
    if response.status().as_u16() != 202 {
        return Err(refusal(response).await);
    }
    let accepted: Value = response.json().await?;
    record.upload_ms = Some(t.elapsed().as_secs_f64() * 1e3);
    let id = accepted["id"].as_str().ok_or_else(|| Failure::new(202, "no-job-id"))?.to_owned();
    record.job_id = id.clone();

    // 2. Wait: the event stream until done or failed (with /status as the fallback when a
    // stream ends early, e.g. a backend restarting behind a proxy).
    let status = wait_finished(client, target, &id).await?;
    apply_status(record, &status);
    if status["state"] == "failed" {
        let code = status["error"]["code"].as_str().unwrap_or("failed").to_owned();
        return Err(Failure::new(422, code));
    }

    // 3. Download.
    let t = Instant::now();
    let response = authorized(client.get(format!("{}/result/{id}", target.base)), target).send().await?;
    if response.status().as_u16() != 200 {
        return Err(refusal(response).await);
    }
    let png = response.bytes().await?;
    record.download_ms = Some(t.elapsed().as_secs_f64() * 1e3);
    check_png(record, &png)
}

/// Records the result's size; a body that is not a PNG is a failure.
fn check_png(record: &mut Record, png: &[u8]) -> Result<(), Failure> {
    record.result_bytes = Some(png.len() as u64);
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(Failure::new(200, "not-png"));
    }
    Ok(())
}

/// Follows `/events/{id}` to the `done` or `failed` event and returns its status JSON.
async fn wait_finished(client: &reqwest::Client, target: &Target, id: &str) -> Result<Value, Failure> {
    loop {
        let response = authorized(client.get(format!("{}/events/{id}", target.base)), target).send().await?;
        if response.status().as_u16() != 200 {
            return Err(refusal(response).await);
        }
        if let Some(status) = read_events(response).await? {
            return Ok(status);
        }
        // The stream ended without a final event: ask once, then follow the stream again.
        let response = authorized(client.get(format!("{}/status/{id}", target.base)), target).send().await?;
        if response.status().as_u16() != 200 {
            return Err(refusal(response).await);
        }
        let status: Value = response.json().await?;
        if matches!(status["state"].as_str(), Some("done" | "failed")) {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads Server-Sent Events until one named `done` or `failed`; `None` when the stream ends
/// first.
async fn read_events(mut response: reqwest::Response) -> Result<Option<Value>, Failure> {
    let mut buffer: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        buffer.extend_from_slice(&chunk);
        // Events end with a blank line.
        while let Some(end) = find_event_end(&buffer) {
            let event: Vec<u8> = buffer.drain(..end.0 + end.1).collect();
            let text = String::from_utf8_lossy(&event[..end.0]);
            let mut name = "message";
            let mut data = String::new();
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if matches!(name, "done" | "failed") {
                let status = serde_json::from_str(&data).map_err(|_| Failure::new(200, "bad-event"))?;
                return Ok(Some(status));
            }
        }
    }
    Ok(None)
}

/// The end of the first complete event: (its length, the separator's length).
fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    let crlf = buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|p| (p, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Copies the job's size, strips and stage timings into the record.
fn apply_status(record: &mut Record, status: &Value) {
    let timing = |name: &str| status["timings_ms"][name].as_f64();
    record.queue_wait_ms = timing("queue_wait");
    record.decode_ms = timing("decode");
    record.filter_ms = timing("filter");
    record.encode_ms = timing("encode");
    record.stitch_ms = timing("stitch");
    record.server_total_ms = timing("total");
    record.processing_ms = match (record.filter_ms, record.encode_ms) {
        (None, None) => None,
        (f, e) => Some(f.unwrap_or(0.0) + e.unwrap_or(0.0)),
    };
    record.strips = status["strips_total"].as_u64().map(|s| s as u32);
    if let (Some(w), Some(h)) = (status["width"].as_u64(), status["height"].as_u64()) {
        record.width = Some(w as u32);
        record.height = Some(h as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_boundaries() {
        assert_eq!(find_event_end(b"event: a\ndata: 1\n\nrest"), Some((16, 2)));
        assert_eq!(find_event_end(b"event: a\r\ndata: 1\r\n\r\n"), Some((17, 4)));
        assert_eq!(find_event_end(b"event: a\ndata: 1\n"), None);
    }
}
