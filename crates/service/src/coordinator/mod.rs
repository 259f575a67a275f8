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
//! The work is split by responsibility: `intake` (store the upload, write the record, publish
//! the task(s)), `cut` (how many strips, and how they are read), `settle` (stitch, finish,
//! fail, cancel, dead letters), `loops` (the wake-up listener, the sweeper, the dead-letter
//! consumer), `local` (the jobs this backend holds) and `replicas` (each replica's heartbeat,
//! the load of the whole system that admission and the strip count use, and the takeover of
//! a stopped replica's jobs). Every task the
//! coordinator starts in the background is owned by its [`Background`], bounded, and waited
//! for (or stopped, giving back its lock) at shutdown.

mod cut;
mod intake;
mod local;
mod loops;
mod replicas;
mod settle;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dsobel_codec::{Limits, RestartIndex};
use dsobel_transport::Listener;
use tokio::sync::Semaphore;

use crate::background::Background;
use crate::error::JobsError;
use crate::jobs::{self, status_from};
use crate::locks::lock;
use crate::model::{JobId, JobRecord, JobState, JobStatus, ReplicaId, job_lost};
use crate::telemetry::Metrics;
use crate::transport::Transport;
use crate::wakeups::{JobWatch, Wakeups};

pub use intake::IDEMPOTENCY_CLAIM;
use local::LocalJobs;
pub use replicas::FullShard;
use replicas::SystemLoad;

/// The thinnest strip a job is cut into, in rows (its halo adds one row above and one below).
pub const MIN_STRIP_ROWS: usize = 4;

/// An upload as received: the id its job will have, its bytes, whether they are already in
/// the store under the job's upload key (written as they arrived, through
/// [`Coordinator::upload_sink`]), and its restart markers, found while it arrived.
pub struct Upload {
    /// The job's id, if the upload makes a job.
    pub id: JobId,
    /// The upload's bytes.
    pub bytes: Bytes,
    /// Whether the bytes are stored already.
    pub stored: bool,
    /// A JPEG's restart markers, looked for while the upload arrived
    /// ([`dsobel_codec::RestartScanner`]); `None` when it has none a split can use.
    pub markers: Option<Box<RestartIndex>>,
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
    /// Jobs in flight in this backend before 429.
    pub max_jobs_in_flight: usize,
    /// Jobs the whole system holds beyond one per consuming worker before 429: how many may
    /// wait in the queue.
    pub max_queued_jobs: u64,
    /// Sweeper period.
    pub sweep_interval: Duration,
    /// Deliveries of a strip before the queue dead-letters it (for the failure message).
    pub max_deliveries: u32,
    /// Most strips one job may be cut into, whatever `fragments` asks.
    pub max_strips: usize,
    /// Most stitches run in the background at once (wake-ups past it are left to the sweeper).
    pub max_background_stitches: usize,
    /// The part of a store shard's memory limit past which uploads are refused (before the
    /// store itself refuses writes).
    pub memory_watermark: f64,
    /// Lifetime of a batch's record and item lines (for a dead-lettered item's line).
    pub batch_ttl: Duration,
    /// Fault drill: each stitch waits this long while holding its job's lock.
    pub stitch_delay: Duration,
}

/// The coordinator of one backend process.
pub struct Coordinator {
    transport: Transport,
    config: CoordinatorConfig,
    metrics: Metrics,
    wakeups: Wakeups,
    /// Jobs accepted by this process and not finished.
    local: LocalJobs,
    /// This replica's id.
    replica: ReplicaId,
    /// What the last beat learnt of the whole system.
    system_load: Mutex<Option<SystemLoad>>,
    /// The tasks this coordinator started in the background.
    background: Background,
    /// Jobs a background stitch of this process is working on.
    stitching: Mutex<HashSet<JobId>>,
    /// Room for background stitches ([`CoordinatorConfig::max_background_stitches`]).
    stitch_slots: Arc<Semaphore>,
}

impl Coordinator {
    /// A coordinator over a transport, hearing wake-ups through `listener` (this process's
    /// one listener of the notifier).
    pub fn new(
        transport: Transport,
        config: CoordinatorConfig,
        metrics: Metrics,
        listener: Arc<dyn Listener>,
    ) -> Arc<Self> {
        let stitch_slots = Arc::new(Semaphore::new(config.max_background_stitches.max(1)));
        Arc::new(Coordinator {
            wakeups: Wakeups::new(listener, transport.keys.clone()),
            transport,
            local: LocalJobs::new(metrics.clone()),
            config,
            metrics,
            replica: ReplicaId::random(),
            system_load: Mutex::new(None),
            background: Background::new(),
            stitching: Mutex::new(HashSet::new()),
            stitch_slots,
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

    /// The tasks this coordinator runs in the background (for the HTTP layer's own, and for
    /// shutdown).
    pub fn background(&self) -> &Background {
        &self.background
    }

    /// Starts watching job `id`'s wake-ups (for `/events` and `?wait=`).
    pub async fn watch(&self, id: &JobId) -> JobWatch {
        self.wakeups.watch(id).await
    }

    /// This replica's id.
    pub fn replica(&self) -> &ReplicaId {
        &self.replica
    }

    /// Whether this backend is stitching job `id` in the background right now.
    pub fn is_stitching(&self, id: &JobId) -> bool {
        lock(&self.stitching, "jobs being stitched").contains(id)
    }

    /// The status of a job. A job this backend accepted and still holds is never unknown:
    /// if the store lost it, it reads failed (`job-lost`) at once, before the sweeper records
    /// that.
    pub async fn status(&self, id: &JobId) -> Result<JobStatus, JobsError> {
        let answer = jobs::status(&self.transport, id).await;
        if let Err(JobsError::UnknownJob(_)) = answer
            && let Some(held) = self.held_but_lost(id)
        {
            return Ok(held);
        }
        answer
    }

    /// The status of a job and, once it is done, its PNG, in one round trip to the store (a
    /// job this backend holds is never unknown, as for [`Self::status`]).
    pub async fn status_and_result(&self, id: &JobId) -> Result<(JobStatus, Option<Bytes>), JobsError> {
        let answer = jobs::status_and_result(&self.transport, id).await;
        if let Err(JobsError::UnknownJob(_)) = answer
            && let Some(held) = self.held_but_lost(id)
        {
            return Ok((held, None));
        }
        answer
    }

    /// The status of a job this backend holds whose record the store no longer has.
    fn held_but_lost(&self, id: &JobId) -> Option<JobStatus> {
        let record = self.local.get(id)?.ended(Some(job_lost()));
        let error = record.error.clone();
        Some(status_from(record, JobState::Failed, 0, error))
    }

    /// Stops the background tasks: each gets `grace` to finish; a stitch still running after
    /// it lets its job's lock go. True when all finished in time.
    pub async fn stop_background(&self, grace: Duration) -> bool {
        self.background.stop(grace).await
    }
}
