//! One benchmark request, the way a real client uses the API (with `--query wait=SECONDS`, the
//! upload's own answer is the PNG, in one request). Otherwise: upload the image and get `202`,
//! follow the job's event stream until it is over, then download the PNG. The requests go
//! through `dsobel-client`, the same client as `dsobel submit`.
//!
//! Each step is timed separately, and the job's own stage timings (from the final event's
//! status JSON) are kept, so a slow request can be blamed on the network, the queue or the
//! filter. Nothing is retried: a `429 too-busy` is a failure with its code, as the seed's
//! operators would want to see it.

use std::time::{Duration, Instant};

use dsobel_client::{Client, ClientError, JobResult, JobState, JobStatus, Upload};

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
    pub api_key: Option<dsobel_service::config::SecretString>,
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

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure::new(e.status(), e.code())
    }
}

/// Sends one request of `image` and measures it; never fails, a failure is a [`Record`] with
/// its status and error code. `started` is the benchmark's start (for `start_ms`).
pub async fn one_request(
    client: &Client,
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

async fn steps(
    client: &Client,
    target: &Target,
    image: &BenchImage,
    record: &mut Record,
) -> Result<(), Failure> {
    // 1. Upload.
    let t = Instant::now();
    let id = match client.upload(image.bytes.clone(), &target.query).await? {
        Upload::Finished { id, png } => {
            // `?wait=` answered with the PNG itself: one request did it all.
            record.job_id = id.map(String::from).unwrap_or_default();
            record.upload_ms = Some(t.elapsed().as_secs_f64() * 1e3);
            return check_png(record, &png);
        }
        Upload::Accepted(links) => links.id,
    };
    record.upload_ms = Some(t.elapsed().as_secs_f64() * 1e3);
    record.job_id = id.to_string();

    // 2. Wait: the event stream until the job is over (with /status as the fallback when a
    // stream ends early, e.g. a backend restarting behind a proxy).
    let status = client.follow(&id, |_| {}).await?;
    apply_status(record, &status);
    if status.state != JobState::Done {
        let code = status.error.map_or_else(|| status.state.as_str().to_owned(), |e| e.code.to_string());
        return Err(Failure::new(422, code));
    }

    // 3. Download.
    let t = Instant::now();
    let JobResult::Ready(png) = client.result(&id).await? else {
        return Err(Failure::new(202, "not-ready"));
    };
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

/// Copies the job's size, strips and stage timings into the record.
fn apply_status(record: &mut Record, status: &JobStatus) {
    let timings = status.timings_ms;
    record.queue_wait_ms = timings.queue_wait;
    record.decode_ms = timings.decode;
    record.filter_ms = timings.filter;
    record.encode_ms = timings.encode;
    record.stitch_ms = timings.stitch;
    record.server_total_ms = timings.total;
    record.processing_ms = match (timings.filter, timings.encode) {
        (None, None) => None,
        (f, e) => Some(f.unwrap_or(0.0) + e.unwrap_or(0.0)),
    };
    record.strips = Some(status.strips_total);
    record.width = Some(status.width);
    record.height = Some(status.height);
}
