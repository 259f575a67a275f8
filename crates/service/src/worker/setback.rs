//! The worker's failure policy, in one place: every setback is sorted into *may pass* (the
//! task goes back to the queue, once the store answers) or *cannot succeed* (the job fails
//! with the reason and the task is dead-lettered); a task whose job or data is gone is settled
//! as the store's state says.
//!
//! While the store does not answer, a task is held (up to [`STORE_OUTAGE_HOLD`]) instead of
//! being handed back at once: every hand-back counts towards the delivery limit, and workers
//! passing a task around during an outage of a few seconds would use it up and fail a healthy
//! job. On a sharded store what must answer is the shard of the task's job, asked by the path
//! the job's own commands take: a check of the whole store can pass while that one shard is
//! failing over or its slots are on the move. A store that answers but is full (it refuses writes for lack of memory) is waited out
//! the same way, for as long as it takes ([`Worker::persist`]): the write is tried again every
//! second with the result in hand, and the task is never handed back for it. Shutdown cuts
//! both short: the task goes back to the queue at once.

use std::time::{Duration, Instant};

use dsobel_codec::{DecodeError, ProcessError};
use dsobel_kernel::{KernelError, OptionError};
use dsobel_transport::{Delivery, TransportError};

use super::{JobLookup, Outcome, Worker};
use crate::error::{Crashed, StoreError, decode_failure, error_chain, option_code};
use crate::jobs::{self, record_lost};
use crate::model::{ErrorCode, JobError, JobId, Task, now_ms};

/// How long a worker holds a task it could not finish while the store does not answer, before
/// it hands the task back anyway.
const STORE_OUTAGE_HOLD: Duration = Duration::from_secs(60);

/// How often a write refused for lack of memory is tried again.
const FULL_STORE_RETRY: Duration = Duration::from_secs(1);

/// An error that may say the store is full.
pub(super) trait MaybeFull {
    /// Whether the store refused the write for lack of memory.
    fn is_full(&self) -> bool;
}

impl MaybeFull for TransportError {
    fn is_full(&self) -> bool {
        self.is_out_of_memory()
    }
}

impl MaybeFull for StoreError {
    fn is_full(&self) -> bool {
        matches!(self, StoreError::Transport(e) if e.is_out_of_memory())
    }
}

/// Why a task could not be finished, sorted by what becomes of it ([`Worker::set_back`]).
#[derive(Debug, thiserror::Error)]
pub(super) enum Setback {
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

impl Worker {
    /// A task whose job has no record: the job expired long ago (the task is older than a
    /// record lives), or the store lost it while the task waited (a restart without its
    /// data, a flush). A lost job fails with a reason a person can act on instead of
    /// vanishing; either way the task is done with.
    pub(super) async fn job_missing(&self, task: &Task, delivery: Delivery) -> Outcome {
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
    pub(super) async fn input_gone(&self, task: &Task, queue_wait: Duration, delivery: Delivery) -> Outcome {
        let id = task.job_id();
        match self.open_job(id).await {
            Ok(JobLookup::Over) => {
                tracing::info!("the job is over; dropping the task");
                let _ = delivery.ack().await;
                Outcome::Skipped
            }
            Ok(JobLookup::Missing) => self.job_missing(task, delivery).await,
            Ok(JobLookup::Open(_)) => {
                let error = JobError::new(
                    ErrorCode::InputExpired,
                    format!(
                        "the uploaded image expired from the store before a worker could process it (the task \
                         waited {} s in the queue); submit it again",
                        queue_wait.as_secs()
                    ),
                );
                self.fail(id, delivery, error).await
            }
            Err(e) => self.requeue(delivery, &e.into()).await,
        }
    }

    /// Runs `write` until the store takes it: a refusal for lack of memory is waited out
    /// (logged once, tried again every [`FULL_STORE_RETRY`]) with the task held, until the
    /// write passes, fails otherwise, or shutdown comes.
    pub(super) async fn persist<T, E, F, Fut>(&self, what: &str, mut write: F) -> Result<T, E>
    where
        E: MaybeFull + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut waited = None;
        loop {
            match write().await {
                Err(e) if e.is_full() && !self.shutdown.is_cancelled() => {
                    if waited.is_none() {
                        tracing::warn!(what, error = %e, "the store is full; holding the task until it has room");
                        self.metrics.full_store_waits.inc();
                        waited = Some(Instant::now());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(FULL_STORE_RETRY) => {}
                        _ = self.shutdown.cancelled() => {}
                    }
                }
                done => {
                    if let Some(since) = waited {
                        tracing::info!(
                            what,
                            waited_s = since.elapsed().as_secs_f64(),
                            "the store had room again"
                        );
                    }
                    return done;
                }
            }
        }
    }

    /// Hands a task back to the queue after a failure that may pass, once the store answers
    /// (or [`STORE_OUTAGE_HOLD`] or shutdown comes first).
    pub(super) async fn requeue(&self, delivery: Delivery, reason: &Setback) -> Outcome {
        tracing::warn!(reason = %error_chain(reason), "task handed back to the queue");
        // A short pause so a broken dependency is not hammered in a tight loop.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = self.shutdown.cancelled() => {}
        }
        self.wait_for_store(job_of(&delivery).as_ref()).await;
        let _ = delivery.requeue().await;
        Outcome::Requeued
    }

    /// Waits until the store answers for job `job` (or, without one, the whole store), at
    /// most [`STORE_OUTAGE_HOLD`], and not past shutdown.
    async fn wait_for_store(&self, job: Option<&JobId>) {
        let held = Instant::now();
        let mut pause = Duration::from_millis(100);
        while held.elapsed() < STORE_OUTAGE_HOLD
            && !self.shutdown.is_cancelled()
            && self.stores_down(job).await
        {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = self.shutdown.cancelled() => return,
            }
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Whether either store does not answer for job `job`: the shards of its record and of
    /// its upload; without a job, any shard.
    async fn stores_down(&self, job: Option<&JobId>) -> bool {
        let t = &self.transport;
        let (state, bytes) = match job {
            Some(id) => {
                let (record, upload) = (t.keys.job(id), t.keys.upload(id));
                tokio::join!(t.store.health_check_key(&record), t.bytes.health_check_key(&upload))
            }
            None => tokio::join!(t.store.health_check(), t.bytes.health_check()),
        };
        state.is_err() || bytes.is_err()
    }

    /// What a failed computation means ([`Setback`]): data that cannot be decoded fails the
    /// job with the decoder's code, a kernel refusal poisons the task, and a panic hands the
    /// task back (the delivery limit bounds the retries).
    pub(super) async fn computation_failed(
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
    pub(super) async fn set_back(&self, task: &Task, delivery: Delivery, setback: Setback) -> Outcome {
        match setback {
            setback if setback.may_pass() => self.requeue(delivery, &setback).await,
            Setback::BadImage(e) => self.fail(task.job_id(), delivery, decode_failure(&e)).await,
            setback => self.poison(task, delivery, &setback).await,
        }
    }

    /// A task that can never succeed: its job fails with the reason, and the task goes to the
    /// dead-letter queue.
    pub(super) async fn poison(&self, task: &Task, delivery: Delivery, reason: &Setback) -> Outcome {
        let error = JobError::new(
            ErrorCode::StripFailed,
            format!("{} cannot be processed: {reason}", task.describe()),
        );
        self.fail(task.job_id(), delivery, error).await
    }

    /// A task whose options this build refuses: its job fails with the options' own code.
    pub(super) async fn refuse_options(
        &self,
        task: &Task,
        delivery: Delivery,
        error: &OptionError,
    ) -> Outcome {
        let message = format!("{} was refused by the worker: {error}", task.describe());
        self.fail(task.job_id(), delivery, JobError::new(option_code(error), message)).await
    }

    /// Fails the job with `error` and dead-letters the task. While the store does not answer,
    /// the task is held (up to [`STORE_OUTAGE_HOLD`]) so that the job's failure is recorded
    /// with its own reason; only after that does the dead-letter consumer record a generic one.
    async fn fail(&self, id: &JobId, delivery: Delivery, error: JobError) -> Outcome {
        tracing::error!(code = %error.code, reason = %error.message, "task cannot be processed; dead-lettering it");
        let ttl = self.config.result_ttl;
        let mark = || jobs::mark_failed(&self.transport, id, &error, ttl);
        if let Err(e) = self.persist("the job's failure", mark).await {
            tracing::warn!(error = %error_chain(&e), "could not record the failure yet; holding the task");
            self.wait_for_store(Some(id)).await;
            if let Err(e) = jobs::mark_failed(&self.transport, id, &error, ttl).await {
                if self.shutdown.is_cancelled() {
                    // Another worker will meet the same failure and record its own reason.
                    tracing::warn!(error = %error_chain(&e), "stopping before the failure could be recorded; handing the task back");
                    let _ = delivery.requeue().await;
                    return Outcome::Requeued;
                }
                tracing::warn!(error = %error_chain(&e), "could not record the failure; the dead-letter consumer will");
            }
        }
        let _ = delivery.dead_letter().await;
        Outcome::DeadLettered
    }

    /// A message that is not a task: dead-lettered; its job, if it names one, fails.
    pub(super) async fn unreadable(&self, delivery: Delivery, reason: &str) -> Outcome {
        tracing::error!(reason, "unreadable task; dead-lettering it");
        match job_of(&delivery) {
            Some(id) => {
                let message = format!("a task of this job could not be read: {reason}");
                self.fail(&id, delivery, JobError::new(ErrorCode::StripFailed, message)).await
            }
            None => {
                let _ = delivery.dead_letter().await;
                Outcome::DeadLettered
            }
        }
    }
}

/// The job a delivered message names (`job_id`), if it names one.
fn job_of(delivery: &Delivery) -> Option<JobId> {
    serde_json::from_slice::<serde_json::Value>(&delivery.payload)
        .ok()
        .and_then(|v| v.get("job_id").and_then(|id| id.as_str()).and_then(JobId::parse))
}
