//! The backend's job coordinator: accept an upload, queue its task(s), and stitch the result
//! when every strip of a split job is stored.
//!
//! The backend never decodes pixels. It reads the upload's header, stores the compressed bytes
//! once and publishes either one whole-image task (a worker decodes, filters, encodes and
//! finishes the job) or, when one image's latency matters, strip tasks (DESIGN §3): read from
//! a JPEG's restart intervals, or handed out by the worker that decodes the image.
//!
//! Stitching is driven by wake-ups (a worker publishes `strip <id>` after storing a strip) and,
//! in case a wake-up is missed, by a sweeper over the set of pending jobs; a lock in the store
//! makes sure one backend stitches each job once, however many replicas run or restart. Dead
//! letters are consumed here too: each turns its job `failed` with the reason.
//!
//! The work is split by responsibility: `intake` (probe the header, store the upload, write
//! the record, publish the task(s)), `settle` (stitch, finish, fail, cancel, clean up, dead
//! letters) and `loops` (the wake-up listener, the sweeper, the dead-letter consumer).

mod intake;
mod loops;
mod settle;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_codec::{Format, Limits, RestartIndex, probe};
use dsobel_kernel::plan_strips;
use dsobel_kernel::png::stitch;
use dsobel_transport::ValueSink;
use futures_util::future::try_join_all;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{Crashed, JobsError, error_chain};
use crate::jobs::{self, JobStatus, load_failure, load_record, load_state, record_lost, save_record};
use crate::model::{
    CANCELLED, CUT_DECODE, CUT_RESTART, CUT_WHOLE, Event, INPUT_EXPIRED, ImageTask, JobError, JobId,
    JobOptions, JobRecord, JobState, STRIP_FAILED, StripResult, StripSource, StripTask, Task, Timings,
    now_ms,
};
use crate::retry::until_connected;
use crate::telemetry::{Metrics, OutcomeLabels};
use crate::transport::Transport;
use crate::wakeups::{JobWatch, Wakeups};

/// The thinnest strip a job is cut into, in rows (its halo adds one row above and one below).
pub const MIN_STRIP_ROWS: usize = 4;

/// An upload as received: the id its job will have, its bytes, and whether they are already
/// in the store under the job's upload key (written as they arrived, through
/// [`Coordinator::upload_sink`]).
pub struct Upload {
    /// The job's id, if the upload makes a job.
    pub id: JobId,
    /// The upload's bytes.
    pub bytes: Bytes,
    /// Whether the bytes are stored already.
    pub stored: bool,
    /// A JPEG's restart markers, if they were found while the upload arrived.
    pub markers: Markers,
}

/// What is known of an upload's restart markers before it is cut.
pub enum Markers {
    /// Not looked for yet: the cut reads them if it needs them.
    Unscanned,
    /// Found while the upload arrived ([`dsobel_codec::RestartScanner`]).
    Indexed(Box<RestartIndex>),
    /// Looked for: the upload has none that a split can use.
    Unusable,
}

/// What an upload with an idempotency key became.
pub enum Submitted {
    /// A new job, as [`Coordinator::submit`] makes it.
    New(Box<JobRecord>, JobWatch),
    /// The job an earlier upload with the same key made (its id), and a watch of it.
    Earlier(JobId, JobWatch),
}

/// Settings of the coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Decode limits.
    pub limits: Limits,
    /// Lifetime of results and job records.
    pub result_ttl: Duration,
    /// Lifetime of strip inputs and partial results.
    pub work_ttl: Duration,
    /// Smallest automatic strip, in pixels.
    pub min_strip_pixels: u64,
    /// Largest strip input, in bytes.
    pub max_strip_bytes: u64,
    /// Deflate level of the strips.
    pub compression: u8,
    /// Jobs in flight before 429.
    pub max_jobs_in_flight: usize,
    /// Sweeper period.
    pub sweep_interval: Duration,
    /// Deliveries of a strip before the queue dead-letters it (for the failure message).
    pub max_deliveries: u32,
    /// Most strips one job may be cut into, whatever `fragments` asks.
    pub max_strips: usize,
}

/// Longest time an upload may spend talking to the queue and the store before it is answered
/// with 503.
const TRANSPORT_DEADLINE: Duration = Duration::from_secs(10);

/// How long an idempotency key is held before its job's record is stored: three times the
/// bound on a submission, so that only a backend that died mid-submission leaves it unused.
pub const IDEMPOTENCY_CLAIM: Duration = Duration::from_secs(30);
/// How long the broker's counts of consumers and waiting messages are reused.
const QUEUE_LOAD_MAX_AGE: Duration = Duration::from_millis(250);
/// How long the stitch lock is held at most (a stitcher that dies frees it after this).
const STITCH_LOCK_TTL: Duration = Duration::from_secs(60);

/// The coordinator of one backend process.
pub struct Coordinator {
    transport: Transport,
    config: CoordinatorConfig,
    metrics: Metrics,
    wakeups: Wakeups,
    /// Jobs accepted by this process and not finished: the in-flight count for backpressure.
    local_jobs: Mutex<HashMap<JobId, JobRecord>>,
    /// The broker's last answer on consumers and waiting messages, and when it came.
    queue_load: Mutex<Option<(Instant, u32, u64)>>,
}

impl Coordinator {
    /// A coordinator over a transport.
    pub fn new(transport: Transport, config: CoordinatorConfig, metrics: Metrics) -> Arc<Self> {
        Arc::new(Coordinator {
            transport,
            config,
            metrics,
            wakeups: Wakeups::default(),
            local_jobs: Mutex::new(HashMap::new()),
            queue_load: Mutex::new(None),
        })
    }

    /// The transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The settings.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// Starts watching job `id`'s wake-ups (for `/events` and `?wait=`).
    pub fn watch(&self, id: &str) -> JobWatch {
        self.wakeups.watch(id)
    }

    fn in_flight(&self) -> usize {
        self.local_jobs.lock().map(|j| j.len()).unwrap_or(0)
    }

    fn local_finish(&self, id: &str) {
        let removed = self.local_jobs.lock().map(|mut j| j.remove(id).is_some()).unwrap_or(false);
        if removed {
            self.metrics.jobs_in_flight.dec();
        }
    }

    /// The status of a job.
    pub async fn status(&self, id: &str) -> Result<JobStatus, JobsError> {
        jobs::status(&self.transport, id).await
    }

    /// The PNG of a finished job.
    pub async fn result_png(&self, id: &str) -> Result<Option<Bytes>, JobsError> {
        Ok(self.transport.store.get(&self.transport.keys.result(id)).await?)
    }

    /// The status of a job and, once it is done, its PNG, in one round trip to the store.
    pub async fn status_and_result(&self, id: &str) -> Result<(JobStatus, Option<Bytes>), JobsError> {
        jobs::status_and_result(&self.transport, id).await
    }
}
