//! Settlement: a split job is stitched once all its strips are stored (once, under a lock,
//! however many replicas run); finished, failed and cancelled jobs are recorded and their work
//! keys deleted; a dead letter fails its job.

use super::*;

impl Coordinator {
    /// Stitches the job if all its strips are stored and nobody else is stitching it. Returns
    /// whether this call stitched it.
    pub async fn try_stitch(&self, id: &JobId) -> Result<bool, JobsError> {
        let t = &self.transport;
        let Some((record, failure)) = load_state(t, id).await? else {
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
        if self.overdue(&record) {
            let error = overdue_failure(self.config.work_ttl);
            jobs::mark_failed(t, id, &error, self.config.result_ttl).await?;
            let failure = load_failure(t, id).await?.unwrap_or(error);
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
        let stitched = self.stitch_locked(id, record).await;
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
    async fn stitch_locked(&self, id: &JobId, mut record: JobRecord) -> Result<bool, JobsError> {
        let t = &self.transport;
        let started = Instant::now();
        let strips_key = t.keys.strips(id);
        let mut strips = Vec::with_capacity(record.strips_total as usize);
        for index in 0..record.strips_total {
            let bytes = t.store.hash_get(&strips_key, &index.to_string()).await?;
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
        let output = record.options.output;
        let (width, height) = (record.width, record.height);
        let png = tokio::task::spawn_blocking(move || {
            stitch(width, height, output, strips.iter().map(|s| &s.encoded)).into()
        })
        .await
        .map_err(|source| Crashed { what: "the stitcher", source })?;
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
        let _ = t.notifier.publish(&t.events, &Event::Done(id.clone()).encode()).await;
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

    async fn settle_finished(&self, id: &str, state: JobState) -> Result<(), JobsError> {
        self.transport.store.set_remove(&self.transport.keys.pending(), id).await?;
        if state.is_over() {
            self.local_finish(id);
        }
        Ok(())
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
    async fn finish_failed(&self, mut record: JobRecord, failure: JobError) -> Result<(), JobsError> {
        let id = record.id.clone();
        let t = &self.transport;
        if !t.store.put_if_absent(&t.keys.stitch_lock(&id), Bytes::from_static(b"1"), STITCH_LOCK_TTL).await?
        {
            self.wakeups.wake(&id);
            return Ok(());
        }
        let cancelled = failure.code == CANCELLED;
        record.state = if cancelled { JobState::Cancelled } else { JobState::Failed };
        record.error = Some(failure.clone());
        record.timings.total = Some(now_ms().saturating_sub(record.created_ms) as f64);
        if let Err(e) = save_record(t, &record, self.config.result_ttl).await {
            let _ = t.store.delete(&[t.keys.stitch_lock(&id)]).await;
            return Err(e.into());
        }
        self.cleanup(&id, record.strips_total).await;
        let outcome = if cancelled { "cancelled" } else { "failed" };
        self.metrics.jobs_finished.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
        self.wakeups.wake(&id);
        self.local_finish(&id);
        if cancelled {
            tracing::info!(job_id = %id, "job cancelled");
        } else {
            tracing::warn!(job_id = %id, code = %failure.code, reason = %failure.message, "job failed");
        }
        Ok(())
    }

    /// Cancels a job that is not over: its queued tasks are dropped by the workers that take
    /// them (they find the job over), its work keys are deleted, and every backend is woken.
    /// Cancelling a cancelled job again is answered the same; a job that ended otherwise
    /// cannot be cancelled.
    pub async fn cancel(&self, id: &JobId) -> Result<JobStatus, JobsError> {
        let t = &self.transport;
        let status = jobs::status(t, id).await?;
        match status.state {
            JobState::Cancelled => return Ok(status),
            JobState::Done | JobState::Failed => {
                return Err(JobsError::AlreadyOver { id: id.to_string(), state: status.state });
            }
            JobState::Queued | JobState::Processing => {}
        }
        let error = JobError { code: CANCELLED.into(), message: "the job was cancelled".into() };
        jobs::mark_failed(t, id, &error, self.config.result_ttl).await?;
        // The first reason wins: a failure recorded just before this cancel stands.
        let Some((record, failure)) = load_state(t, id).await? else {
            return Err(JobsError::UnknownJob(id.to_string()));
        };
        let failure = failure.unwrap_or(error);
        if failure.code != CANCELLED {
            self.finish_failed(record, failure).await?;
            return Err(JobsError::AlreadyOver { id: id.to_string(), state: JobState::Failed });
        }
        self.finish_failed(record, failure).await?;
        jobs::status(t, id).await
    }

    /// Marks a job failed because one of its tasks was dead-lettered.
    pub async fn fail_from_dead_letter(&self, task: &Task) -> Result<(), JobsError> {
        let error = JobError {
            code: STRIP_FAILED.into(),
            message: format!(
                "{} could not be processed (a worker gave up on it, or it failed after {} deliveries)",
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
}

/// Why an overdue job ([`Coordinator::overdue`]) failed.
fn overdue_failure(work_ttl: Duration) -> JobError {
    JobError {
        code: INPUT_EXPIRED.into(),
        message: format!(
            "the job did not finish within {} s, after which its data is no longer kept (part of it was lost on the way); submit it again",
            (work_ttl * 2).as_secs()
        ),
    }
}
