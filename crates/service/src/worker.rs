//! The worker: take a task, compute it on a blocking thread, store the result, wake the
//! backends, acknowledge. In that order, so a worker that dies at any point loses nothing.
//!
//! Every pixel operation happens here. An image task decodes the compressed upload: a
//! whole-image job is filtered, encoded and finished right here (no pixels cross the store);
//! a split job's strips are handed to the queue as soon as their rows are decoded, so other
//! workers filter them while this one is still decoding. A strip task filters and encodes one
//! strip, from rows another worker decoded or from a JPEG's restart intervals, which it
//! decodes itself.
//!
//! [`Worker::handle`] is the single step (tests call it directly); [`Worker::run`] loops it in
//! `slots` tasks, each with its own consumer, until shutdown. On shutdown a slot finishes the
//! strip it holds and drops its consumer, which hands unstarted deliveries back to the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_codec::{
    DecodeError, Limits, PieceStart, ProcessError, ProcessOptions, StripsError,
    decode_restart_strip_in_pieces, decode_strips, piece_ranges, process_bytes,
};
use dsobel_kernel::png::CompressionLevel;
use dsobel_kernel::{KernelError, StripSpec, encode_strip_from_rows};
use dsobel_transport::{Delivery, TransportError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::error::{Crashed, StoreError, error_chain};
use crate::jobs::{self, load_state, record_lost, save_record};
use crate::model::{
    Event, INPUT_EXPIRED, ImageTask, JobError, JobId, JobRecord, JobState, STRIP_FAILED, StripResult,
    StripSource, StripTask, Task, Timings, now_ms,
};
use crate::retry::until_connected;
use crate::telemetry::{Metrics, OutcomeLabels};
use crate::transport::Transport;

/// How long a worker holds a task it could not finish while the store does not answer, before
/// it hands the task back anyway.
const STORE_OUTAGE_HOLD: Duration = Duration::from_secs(60);

/// What became of one strip a decoding worker meant to hand out.
enum HandOut {
    /// Queued for the workers, or found already computed.
    Queued,
    /// The job is over (cancelled or failed): stop decoding it.
    JobOver,
}

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored and acknowledged.
    Done,
    /// Already stored (a redelivery) or its job is gone: acknowledged without work.
    Skipped,
    /// A transient failure: handed back to the queue.
    Requeued,
    /// Bad data: dead-lettered and the job marked failed.
    DeadLettered,
}

/// What the store says of a task's job.
enum JobLookup {
    /// Not over: its record.
    Open(Box<JobRecord>),
    /// Done, failed or cancelled.
    Over,
    /// No record: expired, or lost by the store.
    Missing,
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Lifetime of stored strip results.
    pub work_ttl: Duration,
    /// Lifetime of finished PNGs, job records and failure records.
    pub result_ttl: Duration,
    /// Fault drill: sleep this long before computing each task, and after handing out each
    /// strip of a decode.
    pub strip_delay: Duration,
}

impl WorkerConfig {
    /// The settings of a worker that keeps data as long as `lifetimes` say.
    pub fn new(lifetimes: &crate::config::LifetimeArgs, strip_delay: Duration) -> WorkerConfig {
        WorkerConfig { work_ttl: lifetimes.work_ttl(), result_ttl: lifetimes.result_ttl(), strip_delay }
    }
}

/// A strip worker over a transport.
pub struct Worker {
    transport: Transport,
    metrics: Metrics,
    config: WorkerConfig,
}

impl Worker {
    /// A worker.
    pub fn new(transport: Transport, metrics: Metrics, config: WorkerConfig) -> Arc<Self> {
        Arc::new(Worker { transport, metrics, config })
    }

    /// Runs `slots` consumer loops until `shutdown`, then waits for in-flight strips.
    pub async fn run(self: Arc<Self>, slots: usize, prefetch: u16, shutdown: CancellationToken) {
        self.metrics.worker_slots.set(slots as i64);
        let tracker = TaskTracker::new();
        for slot in 0..slots.max(1) {
            let me = self.clone();
            let shutdown = shutdown.clone();
            tracker.spawn(async move { me.slot(slot, prefetch, shutdown).await });
        }
        tracker.close();
        tracker.wait().await;
    }

    async fn slot(self: Arc<Self>, slot: usize, prefetch: u16, shutdown: CancellationToken) {
        let queue = &self.transport.queue;
        while let Some(mut consumer) =
            until_connected("cannot consume strips", &shutdown, || queue.consume(prefetch)).await
        {
            self.metrics.consuming.inc();
            loop {
                let next = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => {
                        self.metrics.consuming.dec();
                        return;
                    }
                    d = consumer.next() => d,
                };
                match next {
                    Some(Ok(delivery)) => {
                        // Not raced against shutdown: a strip that started finishes.
                        self.handle(delivery).await;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(slot, error = %e, "delivery failed");
                        break;
                    }
                    None => {
                        tracing::warn!(slot, "consumer closed; consuming again");
                        break;
                    }
                }
            }
            self.metrics.consuming.dec();
        }
    }

    /// Processes one delivery from start to acknowledgement.
    pub async fn handle(&self, delivery: Delivery) -> Outcome {
        let task: Task = match serde_json::from_slice(&delivery.payload) {
            Ok(task) => task,
            Err(e) => return self.unreadable(delivery, &e.to_string()).await,
        };
        let span = match &task {
            Task::Image(image) => tracing::info_span!("image", job_id = %image.job_id, strips = image.strips),
            Task::Strip(strip) => {
                tracing::info_span!("strip", job_id = %strip.job_id, strip = strip.strip, of = strip.strips)
            }
        };
        self.metrics.strips_in_flight.inc();
        let started = Instant::now();
        let outcome = match task {
            Task::Image(image) => self.handle_image(image, delivery).instrument(span).await,
            Task::Strip(strip) => self.handle_strip(strip, delivery).instrument(span).await,
        };
        self.metrics.strips_in_flight.dec();
        self.metrics.worker_busy_seconds.inc_by(started.elapsed().as_secs_f64());
        outcome
    }

    /// How long the task waited in the queue; counts redeliveries.
    fn arrived(&self, enqueued_ms: u64, delivery: &Delivery) -> Duration {
        let queue_wait = Duration::from_millis(now_ms().saturating_sub(enqueued_ms));
        if delivery.delivery_count > 1 {
            self.metrics.strip_redeliveries.inc();
            tracing::info!(delivery = delivery.delivery_count, "task redelivered");
        } else {
            self.metrics.queue_wait.observe(queue_wait.as_secs_f64());
        }
        queue_wait
    }

    /// What the store says of a task's job: open (with its record), over, or missing.
    async fn open_job(&self, id: &str) -> Result<JobLookup, StoreError> {
        let Some((record, failure)) = load_state(&self.transport, id).await? else {
            return Ok(JobLookup::Missing);
        };
        if record.state.is_over() || failure.is_some() {
            return Ok(JobLookup::Over);
        }
        Ok(JobLookup::Open(Box::new(record)))
    }

    /// A task whose job has no record: the job expired long ago (the task is older than a
    /// record lives), or the store lost it while the task waited (a restart without its
    /// data, a flush). A lost job fails with a reason a person can act on instead of
    /// vanishing; either way the task is done with.
    async fn job_missing(&self, task: &Task, delivery: Delivery) -> Outcome {
        let age = Duration::from_millis(now_ms().saturating_sub(task.enqueued_ms()));
        if age >= self.config.result_ttl {
            tracing::info!("the job expired long ago; dropping the task");
            let _ = delivery.ack().await;
            return Outcome::Skipped;
        }
        if let Err(e) = record_lost(&self.transport, task.lost_record(), self.config.result_ttl).await {
            return self.requeue(delivery, &e.into()).await;
        }
        tracing::warn!("the store lost this job (its record is gone); it ends failed");
        let _ = delivery.ack().await;
        Outcome::Skipped
    }

    /// The job's data is gone from the store: nothing to do if the job is over, the job was
    /// lost if its record is gone too, else it waited longer than the data lives, and fails
    /// with a reason a person can act on.
    async fn input_gone(&self, task: &Task, queue_wait: Duration, delivery: Delivery) -> Outcome {
        let id = task.job_id();
        match self.open_job(id).await {
            Ok(JobLookup::Over) => {
                tracing::info!("the job is over; dropping the task");
                let _ = delivery.ack().await;
                Outcome::Skipped
            }
            Ok(JobLookup::Missing) => self.job_missing(task, delivery).await,
            Ok(JobLookup::Open(_)) => {
                let error = JobError {
                    code: INPUT_EXPIRED.into(),
                    message: format!(
                        "the uploaded image expired from the store before a worker could process it (the task \
                         waited {} s in the queue); submit it again",
                        queue_wait.as_secs()
                    ),
                };
                self.fail(id, delivery, error).await
            }
            Err(e) => self.requeue(delivery, &e.into()).await,
        }
    }

    /// Whether a decode may use a second thread: this process has a core no other task uses.
    fn spare_core(&self) -> bool {
        let slots = self.metrics.worker_slots.get();
        slots >= 2 && self.metrics.strips_in_flight.get() < slots
    }

    async fn drill_delay(&self) {
        if !self.config.strip_delay.is_zero() {
            tokio::time::sleep(self.config.strip_delay).await;
        }
    }

    async fn handle_image(&self, task: ImageTask, delivery: Delivery) -> Outcome {
        let queue_wait = self.arrived(task.enqueued_ms, &delivery);
        let record = match self.open_job(&task.job_id).await {
            Ok(JobLookup::Open(record)) => *record,
            Ok(JobLookup::Over) => {
                let _ = delivery.ack().await;
                return Outcome::Skipped;
            }
            Ok(JobLookup::Missing) => return self.job_missing(&Task::Image(task), delivery).await,
            Err(e) => return self.requeue(delivery, &e.into()).await,
        };
        let upload = match self.transport.store.get(&task.upload_key).await {
            Ok(Some(upload)) => upload,
            Ok(None) => return self.input_gone(&Task::Image(task), queue_wait, delivery).await,
            Err(e) => return self.requeue(delivery, &e.into()).await,
        };
        // `/status` says `processing` from now on (a hint: losing it only delays that word).
        let t = &self.transport;
        let started_key = t.keys.started(&task.job_id);
        if let Err(e) = t.store.put(&started_key, Bytes::from_static(b"1"), self.config.work_ttl).await {
            tracing::debug!(error = %e, "could not mark the job started");
        }
        if task.strips > 1 {
            self.decode_and_split(task, record, upload, queue_wait, delivery).await
        } else {
            self.whole_image(task, record, upload, queue_wait, delivery).await
        }
    }

    /// A whole-image job: decode, filter and encode here, store the PNG, finish the job.
    async fn whole_image(
        &self,
        task: ImageTask,
        mut record: JobRecord,
        upload: Bytes,
        queue_wait: Duration,
        delivery: Delivery,
    ) -> Outcome {
        let t = &self.transport;
        let options = ProcessOptions {
            params: task.options.params(),
            limits: task_limits(&task),
            strips: Some(1),
            compression: CompressionLevel(task.compression),
            overlap_decode: self.spare_core(),
        };
        self.drill_delay().await;
        let processed = match tokio::task::spawn_blocking(move || process_bytes(&upload, &options)).await {
            Ok(Ok(processed)) => processed,
            Ok(Err(e)) => return self.computation_failed(&Task::Image(task), delivery, Ok(e)).await,
            Err(e) => return self.computation_failed(&Task::Image(task), delivery, Err(e)).await,
        };
        let timings = processed.timings;
        self.metrics.decode.observe(timings.decode.as_secs_f64());
        self.metrics.filter.observe(timings.filter_encode.as_secs_f64());
        let png = Bytes::from(processed.png);
        if let Err(e) = t.store.put(&t.keys.result(&task.job_id), png.clone(), self.config.result_ttl).await {
            return self.requeue(delivery, &e.into()).await;
        }
        let ms = |d: Duration| Some(d.as_secs_f64() * 1e3);
        record.state = JobState::Done;
        record.width = processed.width as u32;
        record.height = processed.height as u32;
        record.result_bytes = Some(png.len() as u64);
        let total = now_ms().saturating_sub(record.created_ms) as f64;
        record.timings = Timings {
            queue_wait: ms(queue_wait),
            decode: ms(timings.decode),
            filter: ms(timings.filter_encode),
            encode: None,
            stitch: None,
            total: Some(total),
        };
        if let Err(e) = save_record(t, &record, self.config.result_ttl).await {
            return self.requeue(delivery, &e.into()).await;
        }
        // The job is done; what follows only tidies up (the backends' sweeper does it too).
        let _ = t.store.set_remove(&t.keys.pending(), &task.job_id).await;
        let _ = t.store.delete(&[task.upload_key.clone(), t.keys.started(&task.job_id)]).await;
        self.publish_event(Event::Done(task.job_id.clone())).await;
        if let Err(e) = delivery.ack().await {
            tracing::warn!(error = %e, "acknowledgement failed after the job was finished");
        }
        self.metrics.strips_processed.inc();
        self.metrics.job_duration.observe(total / 1e3);
        self.metrics.jobs_finished.get_or_create(&OutcomeLabels { outcome: "done".into() }).inc();
        tracing::info!(bytes = png.len(), total_ms = total, "job done");
        Outcome::Done
    }

    /// A split job's decode: hand each strip's rows to the queue as soon as they are decoded,
    /// and compute the last strip here. A redelivered decode hands out again only the strips
    /// whose results are not stored; a strip task sent twice is stored once.
    async fn decode_and_split(
        &self,
        task: ImageTask,
        record: JobRecord,
        upload: Bytes,
        queue_wait: Duration,
        delivery: Delivery,
    ) -> Outcome {
        let count = task.strips as usize;
        if record.strips_total as usize != count {
            let contradiction = Setback::Contradiction("the task and its job disagree on the strips".into());
            return self.poison(&Task::Image(task), delivery, &contradiction).await;
        }
        let (sender, mut ready) = tokio::sync::mpsc::channel::<(StripSpec, Bytes)>(count);
        let (limits, params) = (task_limits(&task), task.options.params());
        let level = CompressionLevel(task.compression);
        let two_threads = self.spare_core();
        let decoding = tokio::task::spawn_blocking(move || {
            let mut own = None;
            let decoded = decode_strips(&upload, &limits, count, two_threads, |spec, rows| {
                if spec.index + 1 < spec.count {
                    let rows = Bytes::copy_from_slice(rows);
                    return sender.blocking_send((*spec, rows)).map_err(|_| SplitStop::Abandoned);
                }
                own = Some((
                    *spec,
                    encode_strip_from_rows(spec, rows, &params, level).map_err(SplitStop::Kernel)?,
                ));
                Ok(())
            });
            (decoded, own)
        });
        let mut handed_out = Ok(HandOut::Queued);
        while let Some((spec, rows)) = ready.recv().await {
            handed_out = self.hand_out(&task, &spec, rows).await;
            if !matches!(handed_out, Ok(HandOut::Queued)) {
                break;
            }
        }
        // Stops the decode if handing out failed or the job ended meanwhile.
        drop(ready);
        let (decoded, own) = match decoding.await {
            Ok(done) => done,
            Err(source) => {
                return self.requeue(delivery, &Crashed { what: "the decode", source }.into()).await;
            }
        };
        match handed_out {
            Ok(HandOut::Queued) => {}
            Ok(HandOut::JobOver) => {
                tracing::info!("the job ended while its strips were handed out; stopping");
                let _ = delivery.ack().await;
                return Outcome::Skipped;
            }
            Err(e) => return self.requeue(delivery, &e.into()).await,
        }
        match decoded {
            Ok(size) if size == (record.width as usize, record.height as usize) => {}
            Ok((w, h)) => {
                let reason = format!(
                    "the image decodes to {w}x{h}, not the {}x{} its header says",
                    record.width, record.height
                );
                return self.poison(&Task::Image(task), delivery, &Setback::Contradiction(reason)).await;
            }
            Err(StripsError::Decode(e)) => {
                return self.set_back(&Task::Image(task), delivery, Setback::BadImage(e)).await;
            }
            Err(StripsError::Consumer(SplitStop::Kernel(e))) => {
                return self.set_back(&Task::Image(task), delivery, Setback::Kernel(e)).await;
            }
            Err(StripsError::Consumer(SplitStop::Abandoned)) => {
                return self.requeue(delivery, &Setback::Stopped("handing out strips stopped")).await;
            }
        }
        let Some((spec, (encoded, timings))) = own else {
            return self.requeue(delivery, &Setback::Stopped("the last strip was never decoded")).await;
        };
        let result = StripResult { encoded, queue_wait, filter: timings.filter, encode: timings.encode };
        self.store_strip(&task.job_id, spec.index as u32, result, delivery).await
    }

    /// Stores one decoded strip's rows and queues its task, unless its result is stored
    /// already (a redelivered decode) or the job ended meanwhile (cancelled or failed).
    async fn hand_out(
        &self,
        task: &ImageTask,
        spec: &StripSpec,
        rows: Bytes,
    ) -> Result<HandOut, TransportError> {
        let t = &self.transport;
        let index = spec.index as u32;
        if t.store.get(&t.keys.failure(&task.job_id)).await?.is_some() {
            return Ok(HandOut::JobOver);
        }
        if t.store.hash_get(&t.keys.strips(&task.job_id), &index.to_string()).await?.is_some() {
            return Ok(HandOut::Queued);
        }
        let key = t.keys.input(&task.job_id, index);
        t.store.put(&key, rows, self.config.work_ttl).await?;
        let strip =
            StripTask::new(&task.job_id, spec, &task.options, task.compression, StripSource::Rows { key });
        t.queue.publish(Task::Strip(strip).to_body()).await?;
        self.metrics.strips_published.inc();
        tracing::debug!(strip = index, "strip handed out");
        // The drill stretches the decode, so a test can stop the worker half way.
        self.drill_delay().await;
        Ok(HandOut::Queued)
    }

    async fn handle_strip(&self, task: StripTask, delivery: Delivery) -> Outcome {
        let t = &self.transport;
        let queue_wait = self.arrived(task.enqueued_ms, &delivery);
        // Idempotence: a redelivered strip whose result is already stored costs nothing and
        // counts once.
        match t.store.hash_get(&t.keys.strips(&task.job_id), &task.strip.to_string()).await {
            Ok(Some(_)) => {
                self.publish_event(Event::StripDone(task.job_id.clone())).await;
                let _ = delivery.ack().await;
                return Outcome::Skipped;
            }
            Ok(None) => {}
            Err(e) => return self.requeue(delivery, &e.into()).await,
        }
        let read_started = Instant::now();
        let pieces = match &task.source {
            StripSource::Jpeg { pieces, .. } => pieces.len() + 1,
            StripSource::Rows { .. } => 1,
        };
        let (input, reading) = match self.strip_input(&task.source).await {
            Ok(Some(input)) => input,
            Ok(None) => return self.input_gone(&Task::Strip(task), queue_wait, delivery).await,
            Err(e) => return self.requeue(delivery, &e.into()).await,
        };
        let read = read_started.elapsed();
        self.drill_delay().await;
        let (spec, params) = (task.spec(), task.options.params());
        let level = CompressionLevel(task.compression);
        let computed = tokio::task::spawn_blocking(move || {
            let decode_started = Instant::now();
            let rows = match input {
                StripInput::Rows(rows) => rows.to_vec(),
                StripInput::Jpeg { header, first_interval, pieces, data } => {
                    let next_piece = || data.recv().ok();
                    match decode_restart_strip_in_pieces(&header, first_interval, &pieces, &spec, next_piece)
                        .map_err(ProcessError::Decode)?
                    {
                        Some(rows) => rows,
                        None => return Ok(None),
                    }
                }
            };
            let decode = decode_started.elapsed();
            let done = encode_strip_from_rows(&spec, &rows, &params, level).map_err(ProcessError::Kernel)?;
            Ok(Some((done, decode)))
        })
        .await;
        let abort_reading = |reading: Option<Reading>| {
            if let Some(reading) = reading {
                reading.abort();
            }
        };
        let ((encoded, timings), decode) = match computed {
            Ok(Ok(Some(done))) => done,
            Ok(Ok(None)) => return self.data_stopped(task, reading, queue_wait, delivery).await,
            Ok(Err(e)) => {
                abort_reading(reading);
                return self.computation_failed(&Task::Strip(task), delivery, Ok(e)).await;
            }
            Err(e) => {
                abort_reading(reading);
                return self.computation_failed(&Task::Strip(task), delivery, Err(e)).await;
            }
        };
        // With the data read in pieces, the time to read all of them.
        let read = match reading {
            Some(reading) => reading.await.ok().and_then(Result::ok).flatten().unwrap_or(read),
            None => read,
        };
        tracing::debug!(
            read_ms = read.as_secs_f64() * 1e3,
            decode_ms = decode.as_secs_f64() * 1e3,
            pieces,
            "strip input read and decoded"
        );
        let result = StripResult { encoded, queue_wait, filter: timings.filter, encode: timings.encode };
        self.store_strip(&task.job_id, task.strip, result, delivery).await
    }

    /// A strip's data stopped before its last piece: the reading task says why (a piece gone
    /// from the store, or the store failing).
    async fn data_stopped(
        &self,
        task: StripTask,
        reading: Option<Reading>,
        queue_wait: Duration,
        delivery: Delivery,
    ) -> Outcome {
        let why = match reading {
            Some(reading) => reading.await,
            None => Ok(Ok(Some(Duration::ZERO))),
        };
        match why {
            Ok(Ok(None)) => self.input_gone(&Task::Strip(task), queue_wait, delivery).await,
            Ok(Err(e)) => self.requeue(delivery, &e.into()).await,
            Err(source) => {
                self.requeue(delivery, &Crashed { what: "reading the strip's data", source }.into()).await
            }
            Ok(Ok(Some(_))) => {
                self.requeue(
                    delivery,
                    &Setback::Stopped("the strip's data was read but not all of it decoded"),
                )
                .await
            }
        }
    }

    /// Reads a strip's input: its decoded rows, or the JPEG's headers, with the intervals'
    /// data still arriving piece by piece from a reading task of its own (returned beside it),
    /// so the decode starts on the first piece while the next ones are read.
    async fn strip_input(
        &self,
        source: &StripSource,
    ) -> Result<Option<(StripInput, Option<Reading>)>, TransportError> {
        let store = &self.transport.store;
        match source {
            StripSource::Rows { key } => Ok(store.get(key).await?.map(|rows| (StripInput::Rows(rows), None))),
            StripSource::Jpeg { upload_key, header_end, scan_start, scan_end, first_interval, pieces } => {
                let pieces: Vec<PieceStart> =
                    pieces.iter().map(|&[offset, interval]| PieceStart { offset, interval }).collect();
                let ranges = piece_ranges(&(*scan_start..*scan_end), *first_interval, &pieces);
                let (sender, data) = std::sync::mpsc::channel();
                let reading = tokio::spawn({
                    let (store, key) = (store.clone(), upload_key.clone());
                    async move {
                        let started = Instant::now();
                        for (range, _) in ranges {
                            let Some(piece) = store.get_range(&key, range).await? else { return Ok(None) };
                            if sender.send(piece).is_err() {
                                break;
                            }
                        }
                        Ok(Some(started.elapsed()))
                    }
                });
                let Some(header) =
                    store.get_range(upload_key, 0..*header_end).await.inspect_err(|_| reading.abort())?
                else {
                    reading.abort();
                    return Ok(None);
                };
                Ok(Some((
                    StripInput::Jpeg { header, first_interval: *first_interval, pieces, data },
                    Some(reading),
                )))
            }
        }
    }

    /// Stores a computed strip (and its timings in the metrics), wakes the backends,
    /// acknowledges.
    async fn store_strip(&self, id: &JobId, strip: u32, result: StripResult, delivery: Delivery) -> Outcome {
        self.metrics.filter.observe(result.filter.as_secs_f64());
        self.metrics.encode.observe(result.encode.as_secs_f64());
        let t = &self.transport;
        if let Err(e) = t
            .store
            .hash_put(&t.keys.strips(id), &strip.to_string(), result.to_bytes(), self.config.work_ttl)
            .await
        {
            return self.requeue(delivery, &e.into()).await;
        }
        self.publish_event(Event::StripDone(id.clone())).await;
        if let Err(e) = delivery.ack().await {
            // The result is stored; a redelivery will find it and skip.
            tracing::warn!(error = %e, "acknowledgement failed after the result was stored");
        }
        self.metrics.strips_processed.inc();
        tracing::debug!(
            filter_ms = result.filter.as_secs_f64() * 1e3,
            encode_ms = result.encode.as_secs_f64() * 1e3,
            "strip done"
        );
        Outcome::Done
    }

    async fn publish_event(&self, event: Event) {
        if let Err(e) = self.transport.notifier.publish(&self.transport.events, &event.encode()).await {
            tracing::warn!(error = %e, "could not publish the wake-up; backends will find the result when sweeping");
        }
    }

    /// Hands a task back to the queue after a failure that may pass. While the store does not
    /// answer, the task is held (up to [`STORE_OUTAGE_HOLD`]) instead of being handed back at
    /// once: every hand-back counts towards the delivery limit, and workers passing a task
    /// around during an outage of a few seconds would use it up and fail a healthy job.
    async fn requeue(&self, delivery: Delivery, reason: &Setback) -> Outcome {
        tracing::warn!(reason = %error_chain(reason), "task handed back to the queue");
        // A short pause so a broken dependency is not hammered in a tight loop.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.wait_for_store().await;
        let _ = delivery.requeue().await;
        Outcome::Requeued
    }

    /// Waits until the store answers, at most [`STORE_OUTAGE_HOLD`].
    async fn wait_for_store(&self) {
        let held = Instant::now();
        let mut pause = Duration::from_millis(100);
        while held.elapsed() < STORE_OUTAGE_HOLD && self.transport.store.health_check().await.is_err() {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// What a failed computation means ([`Setback`]): data that cannot be decoded fails the
    /// job with the decoder's code, a kernel refusal poisons the task, and a panic hands the
    /// task back (the delivery limit bounds the retries).
    async fn computation_failed(
        &self,
        task: &Task,
        delivery: Delivery,
        failure: Result<ProcessError, tokio::task::JoinError>,
    ) -> Outcome {
        let setback = match failure {
            Ok(ProcessError::Decode(e)) => Setback::BadImage(e),
            Ok(ProcessError::Kernel(e)) => Setback::Kernel(e),
            Err(source) => Crashed { what: "the computation", source }.into(),
        };
        self.set_back(task, delivery, setback).await
    }

    /// Does with a task what its setback calls for: back to the queue if the setback may pass,
    /// else the job fails (with the decoder's code for a bad image, `strip-failed` otherwise)
    /// and the task is dead-lettered.
    async fn set_back(&self, task: &Task, delivery: Delivery, setback: Setback) -> Outcome {
        match setback {
            setback if setback.may_pass() => self.requeue(delivery, &setback).await,
            Setback::BadImage(e) => self.fail(task.job_id(), delivery, decode_failure(&e)).await,
            setback => self.poison(task, delivery, &setback).await,
        }
    }

    /// A task that can never succeed: its job fails with the reason, and the task goes to the
    /// dead-letter queue.
    async fn poison(&self, task: &Task, delivery: Delivery, reason: &Setback) -> Outcome {
        let error = JobError {
            code: STRIP_FAILED.into(),
            message: format!("{} cannot be processed: {reason}", task.describe()),
        };
        self.fail(task.job_id(), delivery, error).await
    }

    /// Fails the job with `error` and dead-letters the task. While the store does not answer,
    /// the task is held (up to [`STORE_OUTAGE_HOLD`]) so that the job's failure is recorded
    /// with its own reason; only after that does the dead-letter consumer record a generic one.
    async fn fail(&self, id: &JobId, delivery: Delivery, error: JobError) -> Outcome {
        tracing::error!(code = %error.code, reason = %error.message, "task cannot be processed; dead-lettering it");
        let ttl = self.config.result_ttl;
        if let Err(e) = jobs::mark_failed(&self.transport, id, &error, ttl).await {
            tracing::warn!(error = %error_chain(&e), "could not record the failure yet; holding the task");
            self.wait_for_store().await;
            if let Err(e) = jobs::mark_failed(&self.transport, id, &error, ttl).await {
                tracing::warn!(error = %error_chain(&e), "could not record the failure; the dead-letter consumer will");
            }
        }
        let _ = delivery.dead_letter().await;
        Outcome::DeadLettered
    }

    /// A message that is not a task: dead-lettered; its job, if it names one, fails.
    async fn unreadable(&self, delivery: Delivery, reason: &str) -> Outcome {
        tracing::error!(reason, "unreadable task; dead-lettering it");
        let id = serde_json::from_slice::<serde_json::Value>(&delivery.payload)
            .ok()
            .and_then(|v| v.get("job_id").and_then(|id| id.as_str()).and_then(JobId::parse));
        match id {
            Some(id) => {
                let message = format!("a task of this job could not be read: {reason}");
                self.fail(&id, delivery, JobError { code: STRIP_FAILED.into(), message }).await
            }
            None => {
                let _ = delivery.dead_letter().await;
                Outcome::DeadLettered
            }
        }
    }
}

/// What a strip task reads before it computes.
enum StripInput {
    /// Decoded rows.
    Rows(Bytes),
    /// The JPEG's headers, and the pieces of the strip's restart intervals as they are read.
    Jpeg {
        header: Bytes,
        first_interval: u64,
        pieces: Vec<PieceStart>,
        data: std::sync::mpsc::Receiver<Bytes>,
    },
}

/// The task reading a strip's data piece by piece: how long it took, or `None` when a piece
/// was not in the store.
type Reading = tokio::task::JoinHandle<Result<Option<Duration>, TransportError>>;

/// Why a split job's decode stopped handing out strips.
#[derive(Debug)]
enum SplitStop {
    /// The strips could not be stored or queued (the receiving side gave up).
    Abandoned,
    /// The last strip could not be computed.
    Kernel(KernelError),
}

impl std::fmt::Display for SplitStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitStop::Abandoned => f.write_str("handing out strips stopped"),
            SplitStop::Kernel(e) => e.fmt(f),
        }
    }
}

/// Why a task could not be finished, sorted by what becomes of it ([`Worker::set_back`]).
#[derive(Debug, thiserror::Error)]
enum Setback {
    /// The store or the queue failed: the task goes back to the queue once the store answers.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A step crashed (a bug): back to the queue, up to the delivery limit.
    #[error(transparent)]
    Crashed(#[from] Crashed),
    /// A step stopped half way: back to the queue.
    #[error("{0}")]
    Stopped(&'static str),
    /// The image cannot be decoded: the job fails with the decoder's code.
    #[error(transparent)]
    BadImage(DecodeError),
    /// The kernel refuses the strip: the job fails, the task is dead-lettered.
    #[error(transparent)]
    Kernel(KernelError),
    /// The task contradicts its job or its image: the job fails, the task is dead-lettered.
    #[error("{0}")]
    Contradiction(String),
}

impl From<TransportError> for Setback {
    fn from(e: TransportError) -> Self {
        Setback::Store(StoreError::Transport(e))
    }
}

impl Setback {
    /// Whether the same task may succeed later, on this worker or another.
    fn may_pass(&self) -> bool {
        matches!(self, Setback::Store(_) | Setback::Crashed(_) | Setback::Stopped(_))
    }
}

/// The limits an image task carries (the upload's byte size was checked at the door).
fn task_limits(task: &ImageTask) -> Limits {
    Limits { max_pixels: task.max_pixels, max_dimension: task.max_dimension, max_bytes: u64::MAX }
}

/// A job's failure from a decode error: its stable code and its message.
fn decode_failure(error: &DecodeError) -> JobError {
    JobError { code: error.code().as_str().to_owned(), message: error.to_string() }
}
