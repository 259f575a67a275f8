//! Intake: an upload's header is probed, its bytes stored once, its record written and its
//! task(s) published, cut as DESIGN §3 says (whole, restart intervals, or decoded and handed out).

use super::*;

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
        markers: Markers,
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
        let index = || match markers {
            Markers::Unscanned => RestartIndex::read(bytes).map(Box::new),
            Markers::Indexed(index) => Some(index),
            Markers::Unusable => None,
        };
        if format == Format::Jpeg
            && let Some(index) = index()
        {
            let possible = count.min(index.max_strips());
            // An explicit count is kept exactly; otherwise fewer strips are fine.
            if possible >= 2 && (asked.is_none() || possible == count) {
                return Cut::Restart(index, possible);
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
    pub fn admit(&self) -> Result<(), JobsError> {
        if self.in_flight() >= self.config.max_jobs_in_flight {
            return Err(JobsError::TooBusy { limit: self.config.max_jobs_in_flight });
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
        match t.store.put_in_parts(&t.keys.upload(id), len, self.config.work_ttl).await {
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
        self.submit_as(upload, options).await
    }

    /// [`Self::submit`] under an idempotency key: the first upload with `key` (within the
    /// result TTL) makes the job; a later one gets that job's id back instead of a new job.
    /// A refused upload leaves the key free, so a corrected one can use it.
    ///
    /// The key is claimed for [`IDEMPOTENCY_CLAIM`] only, and kept for the result TTL once the
    /// job's record is stored: a backend that dies between the two leaves a claim that names
    /// no job, which a resend is told to retry (`503`) until the claim lapses and the resend
    /// makes the job.
    pub async fn submit_once(
        &self,
        key: &str,
        upload: Upload,
        options: JobOptions,
    ) -> Result<Submitted, JobsError> {
        let id = upload.id.clone();
        let stored = upload.stored;
        let earlier = self.earlier_job(key, &id).await;
        if !matches!(earlier, Ok(None)) && stored {
            // Not this upload's job after all: its stored bytes go.
            self.discard_upload(&id);
        }
        if let Some(earlier) = earlier? {
            let watch = self.watch(&earlier);
            return Ok(Submitted::Earlier(earlier, watch));
        }
        let t = &self.transport;
        let claim = t.keys.idempotency(key);
        match self.submit_as(upload, options).await {
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
        if !t.store.put_if_absent(&claim, Bytes::from(id.to_string()), IDEMPOTENCY_CLAIM).await?
            && let Some(earlier) = t.store.get(&claim).await?
        {
            let earlier = JobId::parse(&String::from_utf8_lossy(&earlier)).ok_or_else(|| {
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
        let (store, key) = (self.transport.store.clone(), self.transport.keys.upload(id));
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), store.delete(&[key])).await;
        });
    }

    async fn submit_as(
        &self,
        upload: Upload,
        options: JobOptions,
    ) -> Result<(JobRecord, JobWatch), JobsError> {
        let Upload { id, bytes, stored, markers } = upload;
        let refused = |e: JobsError| {
            if stored {
                self.discard_upload(&id);
            }
            e
        };
        self.admit().map_err(refused)?;
        let created_ms = now_ms();
        // Header checks first: a pixel bomb or a non-image is refused here, at the door.
        let probe = probe(&bytes, &self.config.limits).map_err(|e| refused(e.into()))?;
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
            let store_upload = (!stored).then(|| {
                tokio::spawn({
                    let (store, key, bytes, ttl) =
                        (t.store.clone(), upload_key.clone(), bytes.clone(), self.config.work_ttl);
                    async move { store.put(&key, bytes, ttl).await }
                })
            });
            let stop_storing = store_upload.as_ref().map(|s| s.abort_handle());
            let cut = self
                .cut(&bytes, markers, probe.format, width as usize, height as usize, options.fragments)
                .await;
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
                if let Some(store_upload) = store_upload {
                    store_upload.await.map_err(|source| Crashed { what: "storing the upload", source })??;
                }
                save_record(t, &record, self.config.result_ttl).await?;
                t.store.set_add(&t.keys.pending(), &id, self.config.result_ttl).await?;
                if let Ok(mut jobs) = self.local_jobs.lock() {
                    jobs.insert(id.clone(), record.clone());
                    self.metrics.jobs_in_flight.inc();
                }
                try_join_all(tasks.iter().map(|task| t.queue.publish(task.to_body()))).await?;
                Ok::<(), JobsError>(())
            };
            let outcome = tokio::time::timeout(TRANSPORT_DEADLINE, queue_it).await;
            if let Some(stop) = stop_storing {
                stop.abort();
            }
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(self.abandon(&id, e).await),
                Err(_) => {
                    return Err(self.abandon(&id, JobsError::TimedOut).await);
                }
            }
            tracing::info!(
                width,
                height,
                strips = record.strips_total,
                cut = cut.name(),
                stored_as_received = stored,
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
                        pieces: part.pieces.iter().map(|p| [p.offset, p.interval]).collect(),
                    };
                    Task::Strip(StripTask::new(id, spec, options, compression, source))
                })
                .collect(),
        }
    }

    /// Cleans up what a failed submission left behind (best effort) and passes the error on.
    async fn abandon(&self, id: &str, error: JobsError) -> JobsError {
        tracing::warn!(job_id = %id, error = %error_chain(&error), "upload abandoned");
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
}
