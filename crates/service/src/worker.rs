//! The strip worker: take a task, compute it on a blocking thread, store the result, wake the
//! backends, acknowledge. In that order, so a worker that dies at any point loses nothing.
//!
//! [`Worker::handle`] is the single step (tests call it directly); [`Worker::run`] loops it in
//! `slots` tasks, each with its own consumer, until shutdown. On shutdown a slot finishes the
//! strip it holds and drops its consumer, which hands unstarted deliveries back to the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_kernel::encode_strip_from_rows;
use dsobel_kernel::png::CompressionLevel;
use dsobel_transport::Delivery;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::jobs;
use crate::model::{Event, JobError, StripResult, StripTask, now_ms};
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

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Lifetime of stored strip results.
    pub work_ttl: Duration,
    /// Lifetime of failure records.
    pub result_ttl: Duration,
    /// Fault drill: sleep this long before computing each strip.
    pub strip_delay: Duration,
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
        let task: StripTask = match serde_json::from_slice(&delivery.payload) {
            Ok(task) => task,
            Err(e) => {
                tracing::error!(error = %e, "unreadable task; dead-lettering it");
                let _ = delivery.dead_letter().await;
                return Outcome::DeadLettered;
            }
        };
        let span = tracing::info_span!("strip", job_id = %task.job_id, strip = task.strip, of = task.strips);
        self.metrics.strips_in_flight.inc();
        let started = Instant::now();
        let outcome = self.handle_task(task, delivery).instrument(span).await;
        self.metrics.strips_in_flight.dec();
        self.metrics.worker_busy_seconds.inc_by(started.elapsed().as_secs_f64());
        outcome
    }

    async fn handle_task(&self, task: StripTask, delivery: Delivery) -> Outcome {
        let t = &self.transport;
        let queue_wait = Duration::from_millis(now_ms().saturating_sub(task.enqueued_ms));
        if delivery.delivery_count > 1 {
            self.metrics.strip_redeliveries.inc();
            tracing::info!(delivery = delivery.delivery_count, "strip redelivered");
        } else {
            self.metrics.queue_wait.observe(queue_wait.as_secs_f64());
        }
        let strips_key = t.keys.strips(&task.job_id);
        let field = task.strip.to_string();
        // Idempotence: a redelivered strip whose result is already stored costs nothing and
        // counts once.
        match t.store.hash_get(&strips_key, &field).await {
            Ok(Some(_)) => {
                self.wake(&task).await;
                let _ = delivery.ack().await;
                return Outcome::Skipped;
            }
            Ok(None) => {}
            Err(e) => return self.requeue(delivery, &e.to_string()).await,
        }
        let input = match t.store.get(&task.input_key).await {
            Ok(Some(input)) => input,
            Ok(None) => {
                // The job expired, failed or finished: nothing to do.
                tracing::info!("strip input is gone; dropping the task");
                let _ = delivery.ack().await;
                return Outcome::Skipped;
            }
            Err(e) => return self.requeue(delivery, &e.to_string()).await,
        };
        let params = match task.params() {
            Ok(p) => p,
            Err(e) => return self.poison(&task, delivery, &e).await,
        };
        if !self.config.strip_delay.is_zero() {
            tokio::time::sleep(self.config.strip_delay).await;
        }
        let spec = task.spec();
        let level = CompressionLevel(task.compression);
        let computed =
            tokio::task::spawn_blocking(move || encode_strip_from_rows(&spec, &input, &params, level)).await;
        let (encoded, timings) = match computed {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return self.poison(&task, delivery, &e.to_string()).await,
            // A panic in the kernel: hand it back; the delivery limit bounds the retries.
            Err(e) => return self.requeue(delivery, &format!("strip computation crashed: {e}")).await,
        };
        self.metrics.filter.observe(timings.filter.as_secs_f64());
        self.metrics.encode.observe(timings.encode.as_secs_f64());
        let result = StripResult { encoded, queue_wait, filter: timings.filter, encode: timings.encode };
        if let Err(e) = t.store.hash_put(&strips_key, &field, result.to_bytes(), self.config.work_ttl).await {
            return self.requeue(delivery, &e.to_string()).await;
        }
        self.wake(&task).await;
        if let Err(e) = delivery.ack().await {
            // The result is stored; a redelivery will find it and skip.
            tracing::warn!(error = %e, "acknowledgement failed after the result was stored");
        }
        self.metrics.strips_processed.inc();
        tracing::debug!(
            filter_ms = timings.filter.as_secs_f64() * 1e3,
            encode_ms = timings.encode.as_secs_f64() * 1e3,
            "strip done"
        );
        Outcome::Done
    }

    async fn wake(&self, task: &StripTask) {
        let message = Event::StripDone(task.job_id.clone()).encode();
        if let Err(e) = self.transport.notifier.publish(&message).await {
            tracing::warn!(error = %e, "could not publish the wake-up; backends will find the strip when sweeping");
        }
    }

    async fn requeue(&self, delivery: Delivery, reason: &str) -> Outcome {
        tracing::warn!(reason, "strip handed back to the queue");
        // A short pause so a broken dependency is not hammered in a tight loop.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = delivery.requeue().await;
        Outcome::Requeued
    }

    async fn poison(&self, task: &StripTask, delivery: Delivery, reason: &str) -> Outcome {
        tracing::error!(reason, "strip cannot be processed; dead-lettering it");
        let error = JobError {
            code: "strip-failed".into(),
            message: format!("strip {} of {} cannot be processed: {reason}", task.strip + 1, task.strips),
        };
        if let Err(e) = jobs::mark_failed(&self.transport, &task.job_id, &error, self.config.result_ttl).await
        {
            tracing::warn!(error = %e, "could not record the failure; the dead-letter consumer will");
        }
        let _ = delivery.dead_letter().await;
        Outcome::DeadLettered
    }
}

/// Encodes a task as a queue message body (used by the coordinator and by tests).
pub fn task_body(task: &StripTask) -> Bytes {
    Bytes::from(serde_json::to_vec(task).expect("a task serialises"))
}
