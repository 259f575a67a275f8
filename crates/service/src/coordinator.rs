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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_codec::{Format, Limits, RestartIndex, probe};
use dsobel_kernel::plan_strips;
use dsobel_kernel::png::stitch;
use futures_util::future::try_join_all;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::ApiError;
use crate::jobs::{self, JobStatus, load_failure, load_record, load_state, record_lost, save_record};
use crate::model::{
    CANCELLED, CUT_DECODE, CUT_RESTART, CUT_WHOLE, Event, ImageTask, JobError, JobId, JobOptions, JobRecord,
    JobState, StripResult, StripSource, StripTask, Task, Timings, now_ms,
};
use crate::retry::until_connected;
use crate::telemetry::{Metrics, OutcomeLabels};
use crate::transport::Transport;
use crate::wakeups::{JobWatch, Wakeups};

/// The thinnest strip a job is cut into, in rows (its halo adds one row above and one below).
pub const MIN_STRIP_ROWS: usize = 4;

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

/// How a job is cut into tasks.
enum Cut {
    /// One whole-image task.
    Whole,
    /// One task that decodes the image and hands out this many strips as their rows appear.
    Decode(usize),
    /// This many strip tasks, each reading its rows from the JPEG's restart intervals.
    Restart(Box<RestartIndex>, usize),
}

impl Cut {
    fn strips(&self) -> usize {
        match self {
            Cut::Whole => 1,
            Cut::Decode(n) | Cut::Restart(_, n) => *n,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Cut::Whole => CUT_WHOLE,
            Cut::Decode(_) => CUT_DECODE,
            Cut::Restart(..) => CUT_RESTART,
        }
    }
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

    /// The queue's consumers and the messages waiting in it, as the broker reports them
    /// (cached for a moment: a burst of uploads asks once).
    async fn queue_load(&self) -> (u32, u64) {
        let cached =
            self.queue_load.lock().ok().and_then(|c| *c).filter(|(at, ..)| at.elapsed() < QUEUE_LOAD_MAX_AGE);
        if let Some((_, consumers, ready)) = cached {
            return (consumers, ready);
        }
        let queue = &self.transport.queue;
        let (consumers, ready) = tokio::join!(queue.consumer_count(), queue.depth());
        let (consumers, ready) = (consumers.unwrap_or(1), ready.unwrap_or(0));
        if let Ok(mut c) = self.queue_load.lock() {
            *c = Some((Instant::now(), consumers, ready));
        }
        (consumers, ready)
    }

    /// How many strips to cut on its own: one per idle worker, but none while tasks wait in
    /// the queue (the workers already have jobs to chew on, and a whole-image task is the
    /// cheapest way through) and no strip under the minimum size. A worker counts as busy for
    /// each job of this backend still in flight.
    async fn auto_strips(&self, width: usize, height: usize) -> usize {
        let (consumers, ready) = self.queue_load().await;
        if ready > 0 {
            return 1;
        }
        let idle = (consumers as usize).saturating_sub(self.in_flight());
        let pixels = (width * height) as u64;
        let most = (pixels / self.config.min_strip_pixels.max(1)).max(1) as usize;
        idle.min(most).clamp(1, height.max(1))
    }

    /// How the job is cut (DESIGN §3). Asked-for strips are cut as asked: from a JPEG's restart
    /// intervals when they can give that many, else by the worker that decodes. On its own
    /// ([`Self::auto_strips`]) a job is split only when its strips can be read from restart
    /// intervals: a split decoded by one worker did not pay in measurements (the decode, which
    /// stays on one worker, is most of the work), so such jobs stay whole, where a worker with
    /// a spare core overlaps the decode with the filter itself.
    async fn cut(
        &self,
        bytes: &[u8],
        format: Format,
        width: usize,
        height: usize,
        asked: Option<u32>,
    ) -> Cut {
        // No strip thinner than MIN_STRIP_ROWS, and no more than the configured maximum: one
        // upload must not turn into thousands of tasks that other jobs wait behind.
        let most = (height / MIN_STRIP_ROWS).clamp(1, self.config.max_strips.max(1));
        let count = match asked {
            Some(n) => (n as usize).clamp(1, most),
            None => self.auto_strips(width, height).await.min(most),
        };
        if count <= 1 {
            return Cut::Whole;
        }
        if format == Format::Jpeg
            && let Some(index) = RestartIndex::read(bytes)
        {
            let possible = count.min(index.max_strips());
            // An explicit count is kept exactly; otherwise fewer strips are fine.
            if possible >= 2 && (asked.is_none() || possible == count) {
                return Cut::Restart(Box::new(index), possible);
            }
        }
        if asked.is_none() {
            return Cut::Whole;
        }
        // Decoded rows travel through the store: no strip's rows over the maximum.
        let least = ((width * height) as u64).div_ceil(self.config.max_strip_bytes.max(1)) as usize;
        Cut::Decode(count.max(least).min(height.max(1)))
    }

    /// Refuses new work while this backend has its maximum of jobs in flight (checked before an
    /// upload's body is read, and again when it is submitted).
    pub fn admit(&self) -> Result<(), ApiError> {
        if self.in_flight() >= self.config.max_jobs_in_flight {
            return Err(ApiError::TooBusy { limit: self.config.max_jobs_in_flight, retry_after: 2 });
        }
        Ok(())
    }

    /// Accepts an upload: reads its header (format, size, limits; no pixel is decoded), stores
    /// its bytes once, records the job and queues its task(s). The watch of the job's wake-ups
    /// is taken before its task is published, so the caller cannot miss one.
    pub async fn submit(&self, bytes: Bytes, options: JobOptions) -> Result<(JobRecord, JobWatch), ApiError> {
        self.submit_as(JobId::random(), bytes, options).await
    }

    /// [`Self::submit`] under an idempotency key: the first upload with `key` (within the
    /// result TTL) makes the job; a later one gets that job's id back instead of a new job.
    /// A refused upload leaves the key free, so a corrected one can use it.
    pub async fn submit_once(
        &self,
        key: &str,
        bytes: Bytes,
        options: JobOptions,
    ) -> Result<Submitted, ApiError> {
        let t = &self.transport;
        let claim = t.keys.idempotency(key);
        let id = JobId::random();
        if !t.store.put_if_absent(&claim, Bytes::from(id.to_string()), self.config.result_ttl).await?
            && let Some(earlier) = t.store.get(&claim).await?
        {
            let earlier = JobId::parse(&String::from_utf8_lossy(&earlier))
                .ok_or_else(|| ApiError::Internal("an idempotency key names no job id".into()))?;
            let watch = self.watch(&earlier);
            return Ok(Submitted::Earlier(earlier, watch));
        }
        match self.submit_as(id, bytes, options).await {
            Ok((record, watch)) => Ok(Submitted::New(Box::new(record), watch)),
            Err(e) => {
                let _ = t.store.delete(&[claim]).await;
                Err(e)
            }
        }
    }

    async fn submit_as(
        &self,
        id: JobId,
        bytes: Bytes,
        options: JobOptions,
    ) -> Result<(JobRecord, JobWatch), ApiError> {
        self.admit()?;
        let created_ms = now_ms();
        // Header checks first: a pixel bomb or a non-image is refused here, at the door.
        let probe = probe(&bytes, &self.config.limits)?;
        let (width, height) = probe.upright();
        let watch = self.wakeups.watch(&id);
        let span = tracing::info_span!("job", job_id = %id);
        async {
            let started = Instant::now();
            let t = &self.transport;
            let upload_key = t.keys.upload(&id);
            let input_bytes = bytes.len() as u64;
            // The upload goes to the store on a task of its own while the cut is decided: for a
            // large JPEG, finding its restart markers takes milliseconds that the write covers.
            let store_upload = tokio::spawn({
                let (store, key, bytes, ttl) =
                    (t.store.clone(), upload_key.clone(), bytes.clone(), self.config.work_ttl);
                async move { store.put(&key, bytes, ttl).await }
            });
            let stop_storing = store_upload.abort_handle();
            let cut =
                self.cut(&bytes, probe.format, width as usize, height as usize, options.fragments).await;
            drop(bytes);
            let tasks = self.tasks(&id, &upload_key, &cut, width as usize, height as usize, &options);
            let record = JobRecord {
                id: id.clone(),
                state: JobState::Queued,
                strips_total: cut.strips() as u32,
                width,
                height,
                input_bytes,
                result_bytes: None,
                options,
                timings: Timings::default(),
                error: None,
                created_ms,
                compression: self.config.compression,
                cut: cut.name().to_owned(),
            };
            let queue_it = async {
                store_upload
                    .await
                    .map_err(|e| ApiError::Internal(format!("storing the upload crashed: {e}")))??;
                save_record(t, &record, self.config.result_ttl).await?;
                t.store.set_add(&t.keys.pending(), &id, self.config.result_ttl).await?;
                if let Ok(mut jobs) = self.local_jobs.lock() {
                    jobs.insert(id.clone(), record.clone());
                    self.metrics.jobs_in_flight.inc();
                }
                try_join_all(tasks.iter().map(|task| t.queue.publish(task.to_body()))).await?;
                Ok::<(), ApiError>(())
            };
            let outcome = tokio::time::timeout(TRANSPORT_DEADLINE, queue_it).await;
            stop_storing.abort();
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(self.abandon(&id, e).await),
                Err(_) => {
                    let e = ApiError::Unavailable("the queue or the store did not answer in time".into());
                    return Err(self.abandon(&id, e).await);
                }
            }
            tracing::info!(
                width,
                height,
                strips = record.strips_total,
                cut = cut.name(),
                queued_ms = started.elapsed().as_secs_f64() * 1e3,
                "job queued"
            );
            Ok((record, watch))
        }
        .instrument(span)
        .await
    }

    /// The tasks of a job, as [`Self::cut`] decided.
    fn tasks(
        &self,
        id: &JobId,
        upload_key: &str,
        cut: &Cut,
        width: usize,
        height: usize,
        options: &JobOptions,
    ) -> Vec<Task> {
        let compression = self.config.compression;
        let image = |strips: usize| {
            Task::Image(ImageTask {
                job_id: id.clone(),
                upload_key: upload_key.to_owned(),
                strips: strips as u32,
                options: *options,
                compression,
                max_pixels: self.config.limits.max_pixels,
                max_dimension: self.config.limits.max_dimension,
                enqueued_ms: now_ms(),
            })
        };
        match cut {
            Cut::Whole => vec![image(1)],
            Cut::Decode(count) => vec![image(*count)],
            Cut::Restart(index, count) => plan_strips(width, height, *count)
                .iter()
                .map(|spec| {
                    let part = index.strip_bytes(spec);
                    let source = StripSource::Jpeg {
                        upload_key: upload_key.to_owned(),
                        header_end: part.header.end,
                        scan_start: part.scan.start,
                        scan_end: part.scan.end,
                        first_interval: part.first_interval,
                    };
                    Task::Strip(StripTask::new(id, spec, options, compression, source))
                })
                .collect(),
        }
    }

    /// Cleans up what a failed submission left behind (best effort) and passes the error on.
    async fn abandon(&self, id: &str, error: ApiError) -> ApiError {
        tracing::warn!(job_id = %id, error = %error, "upload abandoned");
        self.local_finish(id);
        let t = &self.transport;
        let keys = vec![t.keys.upload(id), t.keys.job(id)];
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = t.store.delete(&keys).await;
            let _ = t.store.set_remove(&t.keys.pending(), id).await;
        })
        .await;
        error
    }

    /// The status of a job.
    pub async fn status(&self, id: &str) -> Result<JobStatus, ApiError> {
        jobs::status(&self.transport, id).await
    }

    /// The PNG of a finished job.
    pub async fn result_png(&self, id: &str) -> Result<Option<Bytes>, ApiError> {
        Ok(self.transport.store.get(&self.transport.keys.result(id)).await?)
    }

    /// The status of a job and, once it is done, its PNG, in one round trip to the store.
    pub async fn status_and_result(&self, id: &str) -> Result<(JobStatus, Option<Bytes>), ApiError> {
        jobs::status_and_result(&self.transport, id).await
    }

    /// Stitches the job if all its strips are stored and nobody else is stitching it. Returns
    /// whether this call stitched it.
    pub async fn try_stitch(&self, id: &JobId) -> Result<bool, ApiError> {
        let t = &self.transport;
        let Some((mut record, failure)) = load_state(t, id).await? else {
            t.store.set_remove(&t.keys.pending(), id).await?;
            return Ok(false);
        };
        if record.state.is_over() {
            self.settle_finished(id, record.state).await?;
            return Ok(false);
        }
        if let Some(failure) = failure {
            self.finish_failed(record, failure).await?;
            return Ok(false);
        }
        // A whole-image job is finished by its worker; nothing to stitch.
        if record.is_whole() {
            return Ok(false);
        }
        if t.store.hash_len(&t.keys.strips(id)).await? < record.strips_total as u64 {
            return Ok(false);
        }
        if !t.store.put_if_absent(&t.keys.stitch_lock(id), Bytes::from_static(b"1"), STITCH_LOCK_TTL).await? {
            return Ok(false);
        }
        let started = Instant::now();
        let strips_key = t.keys.strips(id);
        let mut strips = Vec::with_capacity(record.strips_total as usize);
        for index in 0..record.strips_total {
            let bytes = t.store.hash_get(&strips_key, &index.to_string()).await?;
            match bytes.as_deref().and_then(StripResult::from_bytes) {
                Some(strip) => strips.push(strip),
                None => {
                    // Expired or unreadable: let the lock go so a later sweep can decide.
                    t.store.delete(&[t.keys.stitch_lock(id)]).await?;
                    return Err(ApiError::Internal(format!(
                        "strip {index} of job {id} is missing or unreadable"
                    )));
                }
            }
        }
        // Queue wait (longest) and filter/encode (summed) over the strips just read.
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let queue_wait = strips.iter().map(|s| ms(s.queue_wait)).fold(0.0, f64::max);
        let filter = strips.iter().map(|s| ms(s.filter)).sum();
        let encode = strips.iter().map(|s| ms(s.encode)).sum();
        let output = record.options.output;
        let (width, height) = (record.width, record.height);
        let png = tokio::task::spawn_blocking(move || {
            stitch(width, height, output, strips.iter().map(|s| &s.encoded)).into()
        })
        .await
        .map_err(|e| ApiError::Internal(format!("stitcher crashed: {e}")))?;
        let png: Bytes = png;
        let stitch_time = started.elapsed();
        t.store.put(&t.keys.result(id), png.clone(), self.config.result_ttl).await?;
        record.state = JobState::Done;
        record.result_bytes = Some(png.len() as u64);
        record.timings = Timings {
            queue_wait: Some(queue_wait),
            filter: Some(filter),
            encode: Some(encode),
            stitch: Some(ms(stitch_time)),
            total: Some(now_ms().saturating_sub(record.created_ms) as f64),
            ..record.timings
        };
        save_record(t, &record, self.config.result_ttl).await?;
        self.metrics.stitch.observe(stitch_time.as_secs_f64());
        self.metrics.stitches.inc();
        if let Some(total) = record.timings.total {
            self.metrics.job_duration.observe(total / 1e3);
        }
        self.metrics.jobs_finished.get_or_create(&OutcomeLabels { outcome: "done".into() }).inc();
        self.cleanup(id, record.strips_total).await;
        let _ = t.notifier.publish(&Event::Done(id.clone()).encode()).await;
        // This process may not hear its own wake-up (its subscription may be reconnecting).
        self.wakeups.wake(id);
        self.local_finish(id);
        tracing::info!(
            job_id = %id,
            bytes = png.len(),
            stitch_ms = stitch_time.as_secs_f64() * 1e3,
            "job done"
        );
        Ok(true)
    }

    /// Deletes a finished job's upload, strip inputs and partial results, and takes it off the
    /// pending set.
    async fn cleanup(&self, id: &str, strips: u32) {
        let t = &self.transport;
        let mut keys: Vec<String> = (0..strips).map(|i| t.keys.input(id, i)).collect();
        keys.push(t.keys.strips(id));
        keys.push(t.keys.upload(id));
        keys.push(t.keys.started(id));
        if let Err(e) = t.store.delete(&keys).await {
            tracing::warn!(job_id = %id, error = %e, "could not delete a finished job's work keys; they will expire");
        }
        let _ = t.store.set_remove(&t.keys.pending(), id).await;
    }

    async fn settle_finished(&self, id: &str, state: JobState) -> Result<(), ApiError> {
        self.transport.store.set_remove(&self.transport.keys.pending(), id).await?;
        if state.is_over() {
            self.local_finish(id);
        }
        Ok(())
    }

    async fn finish_failed(&self, mut record: JobRecord, failure: JobError) -> Result<(), ApiError> {
        let id = record.id.clone();
        let cancelled = failure.code == CANCELLED;
        record.state = if cancelled { JobState::Cancelled } else { JobState::Failed };
        record.error = Some(failure.clone());
        record.timings.total = Some(now_ms().saturating_sub(record.created_ms) as f64);
        save_record(&self.transport, &record, self.config.result_ttl).await?;
        self.cleanup(&id, record.strips_total).await;
        let outcome = if cancelled { "cancelled" } else { "failed" };
        self.metrics.jobs_finished.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
        self.wakeups.wake(&id);
        self.local_finish(&id);
        if cancelled {
            tracing::info!(job_id = %id, "job cancelled");
        } else {
            tracing::warn!(job_id = %id, code = %failure.code, message = %failure.message, "job failed");
        }
        Ok(())
    }

    /// Cancels a job that is not over: its queued tasks are dropped by the workers that take
    /// them (they find the job over), its work keys are deleted, and every backend is woken.
    /// Cancelling a cancelled job again is answered the same; a job that ended otherwise
    /// cannot be cancelled.
    pub async fn cancel(&self, id: &JobId) -> Result<JobStatus, ApiError> {
        let t = &self.transport;
        let status = jobs::status(t, id).await?;
        match status.state {
            JobState::Cancelled => return Ok(status),
            JobState::Done | JobState::Failed => {
                return Err(ApiError::JobFinished { id: id.to_string(), state: status.state });
            }
            JobState::Queued | JobState::Processing => {}
        }
        let error = JobError { code: CANCELLED.into(), message: "the job was cancelled".into() };
        jobs::mark_failed(t, id, &error, self.config.result_ttl).await?;
        // The first reason wins: a failure recorded just before this cancel stands.
        let Some((record, failure)) = load_state(t, id).await? else {
            return Err(ApiError::NotFound(id.to_string()));
        };
        let failure = failure.unwrap_or(error);
        if failure.code != CANCELLED {
            self.finish_failed(record, failure).await?;
            return Err(ApiError::JobFinished { id: id.to_string(), state: JobState::Failed });
        }
        self.finish_failed(record, failure).await?;
        jobs::status(t, id).await
    }

    /// Marks a job failed because one of its tasks was dead-lettered.
    pub async fn fail_from_dead_letter(&self, task: &Task) -> Result<(), ApiError> {
        let error = JobError {
            code: "strip-failed".into(),
            message: format!(
                "{} could not be processed (gave up after {} deliveries)",
                task.describe(),
                self.config.max_deliveries
            ),
        };
        let id = task.job_id();
        jobs::mark_failed(&self.transport, id, &error, self.config.result_ttl).await?;
        if let Some(record) = load_record(&self.transport, id).await?
            && record.state != JobState::Done
        {
            let failure = load_failure(&self.transport, id).await?.unwrap_or(error);
            self.finish_failed(record, failure).await?;
        }
        Ok(())
    }

    /// Waits until no job is pending (or `deadline` passes); true when all are settled.
    pub async fn drain(&self, deadline: Duration) -> bool {
        let t = &self.transport;
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            match t.store.set_members(&t.keys.pending()).await {
                Ok(pending) if pending.is_empty() => return true,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        false
    }

    /// Runs the background duties until `shutdown`: wake-ups, the sweeper, dead letters.
    pub async fn run_background(self: Arc<Self>, shutdown: CancellationToken) {
        tokio::join!(
            self.clone().listen(shutdown.clone()),
            self.clone().sweep(shutdown.clone()),
            self.clone().drain_dead_letters(shutdown)
        );
    }

    async fn listen(self: Arc<Self>, shutdown: CancellationToken) {
        let notifier = &self.transport.notifier;
        while let Some(mut subscription) =
            until_connected("cannot subscribe to wake-ups", &shutdown, || notifier.subscribe()).await
        {
            loop {
                let message = tokio::select! {
                    m = subscription.next() => m,
                    _ = shutdown.cancelled() => return,
                };
                let Some(message) = message else { break };
                let Some(event) = Event::decode(&message) else { continue };
                self.wakeups.wake(event.job_id());
                match event {
                    Event::StripDone(id) => {
                        let me = self.clone();
                        tokio::spawn(async move {
                            if let Err(e) = me.try_stitch(&id).await {
                                tracing::warn!(job_id = %id, error = %e, "stitch attempt failed; the sweeper will retry");
                            }
                        });
                    }
                    Event::Done(id) => self.local_finish(&id),
                    Event::Failed(id) => {
                        let me = self.clone();
                        tokio::spawn(async move {
                            let _ = me.try_stitch(&id).await;
                        });
                    }
                }
            }
            tracing::warn!("wake-up subscription lost; resubscribing");
        }
    }

    async fn sweep(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! { _ = tick.tick() => {}, _ = shutdown.cancelled() => return }
            // Read before the pending set: a job is in the pending set before it is counted
            // here, so a job of this list missing from that set has finished, or the store
            // lost it.
            let local: Vec<JobRecord> =
                self.local_jobs.lock().map(|j| j.values().cloned().collect()).unwrap_or_default();
            // Members that are not job ids (none are written) are left alone.
            let pending: Vec<JobId> =
                match self.transport.store.set_members(&self.transport.keys.pending()).await {
                    Ok(p) => p.iter().filter_map(|m| JobId::parse(m)).collect(),
                    Err(e) => {
                        tracing::debug!(error = %e, "sweep skipped: store unavailable");
                        continue;
                    }
                };
            for id in &pending {
                if let Err(e) = self.try_stitch(id).await {
                    tracing::debug!(job_id = %id, error = %e, "sweep could not settle job");
                }
            }
            let pending: HashSet<&JobId> = pending.iter().collect();
            for record in local.into_iter().filter(|r| !pending.contains(&r.id)) {
                self.settle_unlisted(record).await;
            }
        }
    }

    /// A job accepted here that is no longer pending: finished elsewhere (a worker, another
    /// replica) with a wake-up this process missed, or lost with the store's data (a restart
    /// without persistence, a flush), which its record's absence tells. A lost job fails with
    /// a reason a person can act on, rebuilt from this process's copy of its record.
    async fn settle_unlisted(&self, record: JobRecord) {
        let t = &self.transport;
        let id = record.id.clone();
        match load_record(t, &id).await {
            Ok(Some(_)) => self.local_finish(&id),
            Ok(None) => match record_lost(t, record, self.config.result_ttl).await {
                Ok(()) => {
                    tracing::warn!(job_id = %id, "the store lost this job; it ends failed");
                    self.metrics
                        .jobs_finished
                        .get_or_create(&OutcomeLabels { outcome: "failed".into() })
                        .inc();
                    self.wakeups.wake(&id);
                    self.local_finish(&id);
                }
                Err(e) => tracing::debug!(job_id = %id, error = %e, "could not record a lost job yet"),
            },
            Err(e) => tracing::debug!(job_id = %id, error = %e, "could not check a job yet"),
        }
    }

    async fn drain_dead_letters(self: Arc<Self>, shutdown: CancellationToken) {
        let queue = &self.transport.queue;
        while let Some(mut consumer) =
            until_connected("cannot consume dead letters", &shutdown, || queue.consume_dead_letters(4)).await
        {
            loop {
                let delivery =
                    tokio::select! { d = consumer.next() => d, _ = shutdown.cancelled() => return };
                let Some(Ok(delivery)) = delivery else { break };
                match serde_json::from_slice::<Task>(&delivery.payload) {
                    Ok(task) => match self.fail_from_dead_letter(&task).await {
                        Ok(()) => {
                            self.metrics.dead_letters.inc();
                            let _ = delivery.ack().await;
                        }
                        Err(e) => {
                            tracing::warn!(job_id = %task.job_id(), error = %e, "could not record a dead letter; will retry");
                            let _ = delivery.requeue().await;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "dropping an unreadable dead letter");
                        let _ = delivery.ack().await;
                    }
                }
            }
        }
    }
}
