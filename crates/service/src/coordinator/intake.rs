//! Intake: an upload's header is probed, its bytes stored once, its record written and its
//! task(s) published, cut as [`super::cut`] decides. Idempotency keys make a resent upload
//! find the job the first one made.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_codec::probe;
use dsobel_kernel::{Output, Threshold, plan_strips};
use dsobel_transport::ValueSink;
use futures_util::future::try_join_all;
use tracing::Instrument;

use super::cut::{Plan, Shape};
use super::{Coordinator, Submitted, Upload};
use crate::error::{JobsError, Limit, error_chain};
use crate::jobs::{load_record, save_record};
use crate::model::{
    ImageTask, JobId, JobOptions, JobRecord, JobState, StripSource, StripTask, Task, Timings, now_ms,
};
use crate::wakeups::JobWatch;

/// Longest time an upload may spend talking to the queue and the store before it is answered
/// with 503.
const TRANSPORT_DEADLINE: Duration = Duration::from_secs(10);

/// How long an idempotency key is held before its job is queued: three times the
/// bound on a submission, so that only a backend that died mid-submission leaves it unused.
pub const IDEMPOTENCY_CLAIM: Duration = Duration::from_secs(30);

/// What an idempotency claim holds while its job is being accepted, before the job's id:
/// the bare id replaces it once the job's task is queued. A backend that dies between storing
/// the job's record and queueing its task leaves a record that no task will ever finish; the
/// prefix keeps a resend from being handed that job.
const CLAIM_ACCEPTING: &str = "accepting:";

impl Coordinator {
    /// Refuses new work while this backend holds its maximum of jobs in flight, the whole
    /// system holds as many jobs as it has consuming workers plus its queue allowance (as the
    /// last beat counted them: a burst that reaches several replicas at once may pass it by a
    /// little), or a store shard is above its memory watermark (the jobs already accepted then
    /// still have room to finish). Checked before an upload's body is read, and again when it
    /// is submitted.
    pub fn admit(&self) -> Result<(), JobsError> {
        if self.local.len() >= self.config.max_jobs_in_flight {
            return Err(JobsError::TooBusy(Limit::JobsInFlight(self.config.max_jobs_in_flight)));
        }
        if let Some(load) = self.system_load() {
            if let Some(full) = load.full {
                return Err(JobsError::StoreFull(full));
            }
            let room = u64::from(load.consumers) + self.config.max_queued_jobs;
            if load.in_flight >= room {
                return Err(JobsError::TooBusy(Limit::SystemJobs {
                    held: load.in_flight,
                    workers: load.consumers,
                }));
            }
        }
        Ok(())
    }

    /// Where the upload of job `id`, `len` bytes long, can be stored while it is received, so
    /// that it is in the store by the time its last byte is in (a large upload is then not
    /// stored after it arrived, which is what one image's latency waits for). `None` when the
    /// store takes values whole (the embedded mode's memory) or cannot start one now: the
    /// upload is then stored whole when it is submitted.
    pub async fn upload_sink(&self, id: &JobId, len: u64) -> Option<Box<dyn ValueSink>> {
        let t = &self.transport;
        match t.bytes.put_in_parts(&t.keys.upload(id), len, self.config.work_ttl).await {
            Ok(sink) => sink,
            Err(e) => {
                tracing::debug!(job_id = %id, error = %e, "the upload will be stored once it is in");
                None
            }
        }
    }

    /// Accepts an upload: reads its header (format, size, limits; no pixel is decoded), stores
    /// its bytes once (unless they are stored already), records the job and queues its
    /// task(s). The watch of the job's wake-ups is taken before its task is published, so the
    /// caller cannot miss one.
    pub async fn submit(
        &self,
        upload: Upload,
        options: JobOptions,
    ) -> Result<(JobRecord, JobWatch), JobsError> {
        let (id, stored) = (upload.id.clone(), upload.stored);
        let submitted = self.submit_as(upload, options).await;
        if submitted.is_err() && stored {
            self.discard_upload(&id);
        }
        submitted
    }

    /// [`Self::submit`] under an idempotency key: the first upload with `key` (within the
    /// result TTL) makes the job; a later one gets that job's id back instead of a new job.
    /// A refused upload leaves the key free, so a corrected one can use it.
    ///
    /// The key is claimed for [`IDEMPOTENCY_CLAIM`] only, marked as being accepted, and kept
    /// for the result TTL once the job is queued: a backend that dies between the two leaves a
    /// claim that names no queued job, which a resend is told to retry (`503`) until the claim
    /// lapses and the resend makes the job.
    pub async fn submit_once(
        &self,
        key: &str,
        upload: Upload,
        options: JobOptions,
    ) -> Result<Submitted, JobsError> {
        let id = upload.id.clone();
        let earlier = self.earlier_job(key, &id).await;
        if !matches!(earlier, Ok(None)) && upload.stored {
            // Not this upload's job after all: its stored bytes go.
            self.discard_upload(&id);
        }
        if let Some(earlier) = earlier? {
            let watch = self.watch(&earlier).await;
            return Ok(Submitted::Earlier(earlier, watch));
        }
        let t = &self.transport;
        let claim = t.keys.idempotency(key);
        match self.submit(upload, options).await {
            Ok((record, watch)) => {
                let kept = t.store.put(&claim, Bytes::from(id.to_string()), self.config.result_ttl).await;
                if let Err(e) = kept {
                    tracing::warn!(job_id = %id, error = %e, "could not keep the idempotency key for the result TTL; it lapses sooner");
                }
                Ok(Submitted::New(Box::new(record), watch))
            }
            Err(e) => {
                let _ = t.store.delete(&[claim]).await;
                Err(e)
            }
        }
    }

    /// Claims the idempotency `key` for the job `id`: `None` when claimed, or the earlier
    /// job the key names.
    async fn earlier_job(&self, key: &str, id: &JobId) -> Result<Option<JobId>, JobsError> {
        let t = &self.transport;
        let claim = t.keys.idempotency(key);
        let accepting = Bytes::from(format!("{CLAIM_ACCEPTING}{id}"));
        if !t.store.put_if_absent(&claim, accepting, IDEMPOTENCY_CLAIM).await?
            && let Some(earlier) = t.store.get(&claim).await?
        {
            let earlier = String::from_utf8_lossy(&earlier);
            if earlier.starts_with(CLAIM_ACCEPTING) {
                return Err(JobsError::KeyPending);
            }
            let earlier = JobId::parse(&earlier).ok_or_else(|| {
                JobsError::Inconsistent(format!("the Idempotency-Key {key} names no job id"))
            })?;
            if load_record(t, &earlier).await?.is_none() {
                return Err(JobsError::KeyPending);
            }
            return Ok(Some(earlier));
        }
        Ok(None)
    }

    /// Deletes the stored upload of a job that will not be (best effort, in the background;
    /// its TTL would remove it anyway).
    pub fn discard_upload(&self, id: &JobId) {
        let (store, key) = (self.transport.bytes.clone(), self.transport.keys.upload(id));
        self.background.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), store.delete(&[key])).await;
        });
    }

    async fn submit_as(
        &self,
        upload: Upload,
        options: JobOptions,
    ) -> Result<(JobRecord, JobWatch), JobsError> {
        let Upload { id, bytes, stored, markers } = upload;
        self.admit()?;
        let created_ms = now_ms();
        // Header checks first: a pixel bomb or a non-image is refused here, at the door.
        let probe = probe(&bytes, &self.config.limits)?;
        let (width, height) = probe.upright();
        let shape = Shape { format: probe.format, width: width as usize, height: height as usize };
        let watch = self.wakeups.watch(&id).await;
        // The owner's own watch: this process hears the job's news while it holds the job.
        let owner_watch = self.wakeups.watch(&id).await;
        let span = tracing::info_span!("job", job_id = %id);
        let t = &self.transport;
        let started = Instant::now();
        let upload_key = t.keys.upload(&id);
        let plan = self.plan(&shape, markers, &options);
        let record = JobRecord {
            id: id.clone(),
            state: JobState::Queued,
            strips_total: plan.strips() as u32,
            width,
            height,
            input_bytes: bytes.len() as u64,
            result_bytes: None,
            options,
            timings: Timings::default(),
            error: None,
            created_ms,
            compression: self.config.compression,
            cut: plan.cut(),
            notes: self.notes(&options, &plan, shape.height),
            owner: Some(self.replica.clone()),
            // Known now for a number; Otsu's is known when the worker has the histogram.
            threshold_used: match (options.output, options.threshold) {
                (Output::Binary, Threshold::Value(t)) => Some(t),
                _ => None,
            },
        };
        let tasks = self.tasks(&id, &upload_key, &plan, &shape, &options);
        let queue_it = async {
            if !stored {
                t.bytes.put(&upload_key, bytes, self.config.work_ttl).await?;
            }
            save_record(t, &record, self.config.result_ttl).await?;
            t.store.set_add(&self.pending_key(&id), id.as_str(), self.config.result_ttl).await?;
            self.local.insert(record.clone(), owner_watch);
            try_join_all(tasks.iter().map(|task| t.queue.publish(task.to_body()))).await?;
            Ok::<(), JobsError>(())
        };
        match tokio::time::timeout(TRANSPORT_DEADLINE, queue_it.instrument(span.clone())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.abandon(&id, e).await),
            Err(_) => return Err(self.abandon(&id, JobsError::TimedOut).await),
        }
        span.in_scope(|| {
            tracing::info!(
                width,
                height,
                strips = record.strips_total,
                cut = record.cut.as_str(),
                stored_as_received = stored,
                queued_ms = started.elapsed().as_secs_f64() * 1e3,
                "job queued"
            )
        });
        Ok((record, watch))
    }

    /// What the cut changed of what was asked, in words for `/status`.
    fn notes(&self, options: &JobOptions, plan: &Plan, height: usize) -> Vec<String> {
        if !options.single_pass() {
            return match options.fragments {
                Some(asked) if asked > 1 => vec![format!(
                    "fragments={asked} was asked; output={} threshold={} runs as one whole-image task (Otsu's \
                     threshold and Canny's hysteresis need the whole image; `dsobel process --strips` splits \
                     them too, with the same bytes)",
                    options.output,
                    options.threshold.as_str()
                )],
                _ => Vec::new(),
            };
        }
        match options.fragments {
            Some(asked) if asked as usize != plan.strips() => vec![format!(
                "fragments={asked} was asked; the job was cut into {} strips (at most DSOBEL_MAX_FRAGMENTS={} \
                 and none thinner than 4 rows: {} for this image's {height} rows; a split decoded by one worker also \
                 needs enough strips to keep each under DSOBEL_MAX_STRIP_BYTES)",
                plan.strips(),
                self.config.max_strips,
                self.most_strips(height),
            )],
            _ => Vec::new(),
        }
    }

    /// The tasks of a job, as [`Self::plan`] decided.
    fn tasks(
        &self,
        id: &JobId,
        upload_key: &str,
        plan: &Plan,
        shape: &Shape,
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
        match plan {
            Plan::Whole => vec![image(1)],
            Plan::Decode(count) => vec![image(*count)],
            Plan::Restart(index, count) => plan_strips(shape.width, shape.height, *count)
                .iter()
                .map(|spec| {
                    let part = index.strip_bytes(spec);
                    let source = StripSource::Jpeg {
                        upload_key: upload_key.to_owned(),
                        header_end: part.header.end,
                        scan_start: part.scan.start,
                        scan_end: part.scan.end,
                        first_interval: part.first_interval,
                        pieces: part.pieces.iter().map(|p| [p.offset, p.interval]).collect(),
                    };
                    Task::Strip(StripTask::new(id, spec, options, compression, source))
                })
                .collect(),
        }
    }

    /// Cleans up what a failed submission left behind (best effort) and passes the error on.
    async fn abandon(&self, id: &JobId, error: JobsError) -> JobsError {
        tracing::warn!(job_id = %id, error = %error_chain(&error), "upload abandoned");
        self.local.remove(id);
        let t = &self.transport;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = t.bytes.delete(&[t.keys.upload(id)]).await;
            let _ = t.store.delete(&[t.keys.job(id)]).await;
            let _ = t.store.set_remove(&self.pending_key(id), id.as_str()).await;
        })
        .await;
        error
    }
}
