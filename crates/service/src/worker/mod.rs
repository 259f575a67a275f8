//! The worker: take a task, compute it on a blocking thread, store the result, wake the
//! backends, acknowledge. In that order, so a worker that dies at any point loses nothing.
//!
//! Every pixel operation happens here. An image task (`image`) decodes the compressed
//! upload: a whole-image job is filtered, encoded and finished right here (no pixels cross the
//! store); a split job's strips are handed to the queue as soon as their rows are decoded, so
//! other workers filter them while this one is still decoding. A strip task (`strip`)
//! filters and encodes one strip, from rows another worker decoded or from a JPEG's restart
//! intervals, which it reads in pieces and decodes itself. Whatever goes wrong is sorted in
//! one place (`setback`): back to the queue if it may pass, the job failed if it cannot.
//!
//! An item task (`item`) is one image of a batch: the worker reads the source object itself,
//! computes, and writes the output object with one atomic put.
//!
//! [`Worker::handle`] is the single step (tests call it directly); [`Worker::run`] loops it in
//! `slots` tasks, each with its own consumer, until shutdown. On shutdown a slot finishes the
//! task it holds (a task waiting for the store hands it back at once) and drops its consumer,
//! which hands unstarted deliveries back to the queue.

mod image;
mod item;
mod setback;
mod strip;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dsobel_transport::Delivery;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::error::StoreError;
use crate::jobs::load_state;
use crate::model::{JobId, JobRecord, Message, Task, now_ms};
use crate::retry::until_connected;
use crate::telemetry::Metrics;
use crate::transport::Transport;

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
    /// The object stores batch items may read and write (`None`: every item is refused).
    pub stores: Option<Arc<dsobel_objects::Stores>>,
    /// Lifetime of a batch's item lines.
    pub batch_ttl: Duration,
}

impl WorkerConfig {
    /// The settings of a worker that keeps data as long as `lifetimes` say.
    pub fn new(lifetimes: &crate::config::LifetimeArgs, strip_delay: Duration) -> WorkerConfig {
        WorkerConfig {
            work_ttl: lifetimes.work_ttl(),
            result_ttl: lifetimes.result_ttl(),
            strip_delay,
            stores: None,
            batch_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }

    /// The same settings, with the object stores batch items may use and the lifetime of
    /// their lines.
    pub fn with_batches(mut self, stores: Arc<dsobel_objects::Stores>, batch_ttl: Duration) -> WorkerConfig {
        self.stores = Some(stores);
        self.batch_ttl = batch_ttl;
        self
    }
}

/// A worker over a transport.
pub struct Worker {
    transport: Transport,
    metrics: Metrics,
    config: WorkerConfig,
    /// Cancelled when the process stops: a task held while the store is out goes back then.
    shutdown: CancellationToken,
}

impl Worker {
    /// A worker that stops when `shutdown` is cancelled.
    pub fn new(
        transport: Transport,
        metrics: Metrics,
        config: WorkerConfig,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Worker { transport, metrics, config, shutdown })
    }

    /// Runs `slots` consumer loops until shutdown, then waits for the tasks they hold.
    pub async fn run(self: Arc<Self>, slots: usize, prefetch: u16) {
        self.metrics.worker_slots.set(slots as i64);
        let tracker = TaskTracker::new();
        for slot in 0..slots.max(1) {
            tracker.spawn(self.clone().slot(slot, prefetch));
        }
        tracker.close();
        tracker.wait().await;
    }

    async fn slot(self: Arc<Self>, slot: usize, prefetch: u16) {
        let queue = &self.transport.queue;
        let shutdown = &self.shutdown;
        while let Some(mut consumer) =
            until_connected("cannot consume tasks", shutdown, || queue.consume(prefetch)).await
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
                        // Not raced against shutdown: a task that started finishes.
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
        let task: Task = match Message::parse(&delivery.payload) {
            Ok(Message::Job(task)) => task,
            Ok(Message::Item(item)) => {
                let span = tracing::info_span!("item", batch_id = %item.batch_id, seq = item.seq);
                self.metrics.strips_in_flight.inc();
                let started = Instant::now();
                let outcome = self.handle_item(item, delivery).instrument(span).await;
                self.metrics.strips_in_flight.dec();
                self.metrics.worker_busy_seconds.inc_by(started.elapsed().as_secs_f64());
                return outcome;
            }
            Err(e) => return self.unreadable(delivery, &e.to_string()).await,
        };
        // A combination of options this build refuses is never computed as something else.
        if let Err(e) = task.options().validate() {
            return self.refuse_options(&task, delivery, &e).await;
        }
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
    async fn open_job(&self, id: &JobId) -> Result<JobLookup, StoreError> {
        let Some((record, failure)) = load_state(&self.transport, id).await? else {
            return Ok(JobLookup::Missing);
        };
        if record.state.is_over() || failure.is_some() {
            return Ok(JobLookup::Over);
        }
        Ok(JobLookup::Open(Box::new(record)))
    }

    /// Whether a decode may use a second thread: this process has a core no other task uses.
    fn spare_core(&self) -> bool {
        let slots = self.metrics.worker_slots.get();
        slots >= 2 && self.metrics.strips_in_flight.get() < slots
    }

    /// The fault drill's pause (none in production).
    async fn drill_delay(&self) {
        if !self.config.strip_delay.is_zero() {
            tokio::time::sleep(self.config.strip_delay).await;
        }
    }
}
