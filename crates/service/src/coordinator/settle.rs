//! Settlement: a split job is stitched once all its strips are stored (once, under a lock,
//! however many replicas run); failed and cancelled jobs are recorded and their work keys
//! deleted; a dead letter fails its job.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_kernel::{Layout, stitch_formatted};

use super::Coordinator;
use crate::error::{Crashed, JobsError, error_chain};
use crate::jobs::{self, delete_work, finish_done, load_failure, load_record, load_state};
use crate::model::{
    ErrorCode, JobError, JobId, JobRecord, JobState, JobStatus, StripResult, Task, Timings, now_ms,
};

/// How long the stitch lock is held at most (a stitcher that dies frees it after this).
const STITCH_LOCK_TTL: Duration = Duration::from_secs(60);

impl Coordinator {
    /// Stitches job `id` in the background, unless this process is stitching it already or
    /// has its most stitches running (the sweeper then comes back to it).
    pub(super) fn stitch_in_background(self: &std::sync::Arc<Self>, id: JobId) {
        let Ok(slot) = self.stitch_slots.clone().try_acquire_owned() else {
            tracing::debug!(job_id = %id, "the most stitches run already; the sweeper will come back to this job");
            return;
        };
        if !crate::locks::lock(&self.stitching, "jobs being stitched").insert(id.clone()) {
            return;
        }
        let me = self.clone();
        self.background.spawn(async move {
            if let Err(e) = me.try_stitch(&id).await {
                tracing::warn!(job_id = %id, error = %error_chain(&e), "stitch attempt failed; the sweeper will retry");
            }
            crate::locks::lock(&me.stitching, "jobs being stitched").remove(&id);
            drop(slot);
        });
    }

    /// Stitches the job if all its strips are stored and nobody else is stitching it, or
    /// settles it if it is over. Returns whether this call stitched it.
    pub async fn try_stitch(&self, id: &JobId) -> Result<bool, JobsError> {
        let t = &self.transport;
        let Some((record, failure)) = load_state(t, id).await? else {
            t.store.set_remove(&self.pending_key(id), id.as_str()).await?;
            return Ok(false);
        };
        if record.state.is_over() {
            t.store.set_remove(&self.pending_key(id), id.as_str()).await?;
            self.local.remove(id);
            return Ok(false);
        }
        if let Some(failure) = failure {
            self.finish_failed(record, failure).await?;
            return Ok(false);
        }
        if self.overdue(&record) {
            let error = overdue_failure(self.config.work_ttl);
            jobs::mark_failed(t, id, &error, self.config.result_ttl).await?;
            let failure = load_failure(t, id).await?.unwrap_or(error);
            self.finish_failed(record, failure).await?;
            return Ok(false);
        }
        // A whole-image job is finished by its worker; nothing to stitch.
        if record.is_whole() || t.bytes.hash_len(&t.keys.strips(id)).await? < record.strips_total as u64 {
            return Ok(false);
        }
        if !t.store.put_if_absent(&t.keys.stitch_lock(id), Bytes::from_static(b"1"), STITCH_LOCK_TTL).await? {
            return Ok(false);
        }
        // The stitch gets the grace period at shutdown; stopped after it, it lets the lock go.
        let stitched = tokio::select! {
            stitched = self.stitch_locked(record) => stitched,
            _ = self.background.aborting().cancelled() => Err(JobsError::Interrupted),
        };
        if stitched.is_err() {
            // Let the lock go, so that the next sweep (here or on another replica) tries again
            // instead of waiting out the lock's TTL; if the store cannot take even that, the
            // TTL frees it.
            let _ =
                tokio::time::timeout(Duration::from_secs(2), t.store.delete(&[t.keys.stitch_lock(id)])).await;
        }
        stitched
    }

    /// [`Self::try_stitch`] once this process holds the job's stitch lock.
    async fn stitch_locked(&self, mut record: JobRecord) -> Result<bool, JobsError> {
        let t = &self.transport;
        let id = record.id.clone();
        let started = Instant::now();
        if !self.config.stitch_delay.is_zero() {
            tokio::time::sleep(self.config.stitch_delay).await;
        }
        let strips_key = t.keys.strips(&id);
        let mut strips = Vec::with_capacity(record.strips_total as usize);
        for index in 0..record.strips_total {
            let bytes = t.bytes.hash_get(&strips_key, &index.to_string()).await?;
            match bytes.as_deref().and_then(StripResult::from_bytes) {
                Some(strip) => strips.push(strip),
                // Expired or unreadable: the lock goes, so a later sweep can decide.
                None => {
                    return Err(JobsError::Inconsistent(format!(
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
        let layout = Layout::of(&record.options.operator(), record.width as usize, record.height as usize)
            .map_err(|e| JobsError::Inconsistent(format!("job {id}: {e}")))?;
        let stitched =
            tokio::task::spawn_blocking(move || stitch_formatted(&layout, strips.iter().map(|s| &s.encoded)))
                .await
                .map_err(|source| Crashed { what: "the stitcher", source })?;
        let png: Bytes = stitched.map_err(|e| JobsError::Inconsistent(format!("job {id}: {e}")))?.into();
        let stitch_time = started.elapsed();
        record.timings = Timings {
            queue_wait: Some(queue_wait),
            filter: Some(filter),
            encode: Some(encode),
            stitch: Some(ms(stitch_time)),
            ..record.timings
        };
        let record = finish_done(t, record, png, self.config.result_ttl).await?;
        self.metrics.stitch.observe(stitch_time.as_secs_f64());
        self.metrics.stitches.inc();
        self.metrics.job_finished("done", record.timings.total);
        // This process may not hear its own wake-up (its subscription may be reconnecting).
        self.wakeups.wake(&id);
        self.local.remove(&id);
        tracing::info!(
            job_id = %id,
            bytes = record.result_bytes,
            stitch_ms = stitch_time.as_secs_f64() * 1e3,
            "job done"
        );
        Ok(true)
    }

    /// Whether a job that is not over can no longer finish: its upload lives
    /// `DSOBEL_WORK_TTL_SECS` from its acceptance, and strips are handed out only while it is
    /// decoded, so after twice that every input of the job is gone. Only a store that lost
    /// part of a job's state (a crash between its writes and their fsync) leaves such a job.
    fn overdue(&self, record: &JobRecord) -> bool {
        let age = Duration::from_millis(now_ms().saturating_sub(record.created_ms));
        !record.state.is_over() && age > self.config.work_ttl * 2
    }

    /// Records a job failed (or cancelled) with `failure` and deletes its work keys, once:
    /// every replica hears of the failure and tries, and the one that takes the job's stitch
    /// lock does it (the others only wake their waiters).
    async fn finish_failed(&self, record: JobRecord, failure: JobError) -> Result<(), JobsError> {
        let id = record.id.clone();
        let t = &self.transport;
        if !t.store.put_if_absent(&t.keys.stitch_lock(&id), Bytes::from_static(b"1"), STITCH_LOCK_TTL).await?
        {
            self.wakeups.wake(&id);
            return Ok(());
        }
        let record = record.ended(Some(failure.clone()));
        if let Err(e) = jobs::save_record(t, &record, self.config.result_ttl).await {
            let _ = t.store.delete(&[t.keys.stitch_lock(&id)]).await;
            return Err(e.into());
        }
        delete_work(t, &record).await;
        self.metrics.job_finished(record.state.as_str(), None);
        self.wakeups.wake(&id);
        self.local.remove(&id);
        if record.state == JobState::Cancelled {
            tracing::info!(job_id = %id, "job cancelled");
        } else {
            tracing::warn!(job_id = %id, code = %failure.code, reason = %failure.message, "job failed");
        }
        Ok(())
    }

    /// Cancels a job that is not over: its queued tasks are dropped by the workers that take
    /// them (they find the job over), its work keys are deleted, and whoever watches the job is woken.
    /// Cancelling a cancelled job again is answered the same; a job that ended otherwise
    /// cannot be cancelled.
    pub async fn cancel(&self, id: &JobId) -> Result<JobStatus, JobsError> {
        let t = &self.transport;
        let status = jobs::status(t, id).await?;
        match status.state {
            JobState::Cancelled => return Ok(status),
            JobState::Done | JobState::Failed => {
                return Err(JobsError::AlreadyOver { id: id.clone(), state: status.state });
            }
            JobState::Queued | JobState::Processing => {}
        }
        let error = JobError::new(ErrorCode::Cancelled, "the job was cancelled");
        jobs::mark_failed(t, id, &error, self.config.result_ttl).await?;
        // The first reason wins: a failure recorded just before this cancel stands.
        let Some((record, failure)) = load_state(t, id).await? else {
            return Err(JobsError::UnknownJob(id.clone()));
        };
        let failure = failure.unwrap_or(error);
        let cancelled = failure.code == ErrorCode::Cancelled;
        self.finish_failed(record, failure).await?;
        if !cancelled {
            return Err(JobsError::AlreadyOver { id: id.clone(), state: JobState::Failed });
        }
        jobs::status(t, id).await
    }

    /// Marks a job failed because one of its tasks was dead-lettered.
    pub async fn fail_from_dead_letter(&self, task: &Task) -> Result<(), JobsError> {
        let error = JobError::new(
            ErrorCode::StripFailed,
            format!(
                "{} could not be processed (a worker gave up on it, or it failed after {} deliveries)",
                task.describe(),
                self.config.max_deliveries
            ),
        );
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
}

/// Why an overdue job ([`Coordinator::overdue`]) failed.
fn overdue_failure(work_ttl: Duration) -> JobError {
    JobError::new(
        ErrorCode::InputExpired,
        format!(
            "the job did not finish within {} s, after which its data is no longer kept (part of it was lost on the way); submit it again",
            (work_ttl * 2).as_secs()
        ),
    )
}
