//! The background loops of a backend: wake-ups from the workers, the sweeper that beats (see
//! `replicas`), settles what a missed wake-up left in this replica's pending set and finds jobs
//! the store lost, and the dead-letter consumer. Each
//! runs until shutdown and ends at its next step after it; stitches a wake-up asks for run as
//! the coordinator's background tasks.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Coordinator;
use crate::batch::{failed_entry, record_item};
use crate::error::error_chain;
use crate::jobs::{load_record, record_lost};
use crate::model::{Event, JobId, JobRecord, Message};
use crate::retry::until_connected;

impl Coordinator {
    /// Waits until no job is pending (or `deadline` passes); true when all are settled.
    pub async fn drain(&self, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            match self.pending_jobs().await {
                Ok(pending) if pending.is_empty() => return true,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        false
    }

    /// Runs the background loops until `shutdown`: wake-ups, the sweeper, dead letters.
    pub async fn run_loops(self: Arc<Self>, shutdown: CancellationToken) {
        tokio::join!(
            self.clone().listen(shutdown.clone()),
            self.clone().sweep(shutdown.clone()),
            self.clone().drain_dead_letters(shutdown)
        );
    }

    /// Hears the wake-ups of the jobs this process watches (the listener resubscribes by
    /// itself after a lost connection or a failover), and carries out the unsubscriptions of
    /// the watches that went.
    async fn listen(self: Arc<Self>, shutdown: CancellationToken) {
        let mut gone = self.wakeups.take_gone();
        loop {
            let heard = tokio::select! {
                heard = self.wakeups.next(&mut gone) => heard,
                _ = shutdown.cancelled() => return,
            };
            let Some(heard) = heard else {
                tracing::error!("the wake-up listener stopped; jobs are settled by the sweeper only");
                return;
            };
            let Some(event) = Event::decode(&heard.message) else { continue };
            self.wakeups.wake(event.job_id());
            match event {
                Event::StripDone(id) | Event::Failed(id) => self.stitch_in_background(id),
                Event::Done(id) => self.local.remove(&id),
            }
        }
    }

    async fn sweep(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! { _ = tick.tick() => {}, _ = shutdown.cancelled() => return }
            if let Err(e) = self.beat().await {
                tracing::debug!(error = %e, "could not beat: the store or the broker is unavailable");
            }
            // Read before the pending set: a job is in the pending set before it is held here,
            // so a job of this list missing from that set has finished, or the store lost it.
            let local = self.local.records();
            // Members that are not job ids (none are written) are left alone.
            let pending: Vec<JobId> = match self.pending_jobs().await {
                Ok(p) => p.iter().filter_map(|m| JobId::parse(m)).collect(),
                Err(e) => {
                    tracing::debug!(error = %e, "sweep skipped: store unavailable");
                    continue;
                }
            };
            for id in &pending {
                if shutdown.is_cancelled() {
                    return;
                }
                if self.is_stitching(id) {
                    continue;
                }
                if let Err(e) = self.try_stitch(id).await {
                    tracing::debug!(job_id = %id, error = %error_chain(&e), "sweep could not settle job");
                }
            }
            let pending: HashSet<&JobId> = pending.iter().collect();
            for record in local.into_iter().filter(|r| !pending.contains(&r.id)) {
                if shutdown.is_cancelled() {
                    return;
                }
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
            Ok(Some(stored)) if !stored.state.is_over() => {
                // Not over and not pending: the store lost the pending entry (a crash before
                // its fsync). Listed again, the sweep keeps settling the job.
                if let Err(e) =
                    t.store.set_add(&self.pending_key(&id), id.as_str(), self.config.result_ttl).await
                {
                    tracing::debug!(job_id = %id, error = %e, "could not list a job as pending again yet");
                }
            }
            Ok(Some(_)) => {
                // Its waiters here may have missed the wake-up too.
                self.wakeups.wake(&id);
                self.local.remove(&id);
            }
            Ok(None) => match record_lost(t, record, self.config.result_ttl).await {
                Ok(()) => {
                    tracing::warn!(job_id = %id, "the store lost this job; it ends failed");
                    self.metrics.job_finished("failed", None);
                    self.wakeups.wake(&id);
                    self.local.remove(&id);
                }
                Err(e) => {
                    tracing::debug!(job_id = %id, error = %error_chain(&e), "could not record a lost job yet")
                }
            },
            Err(e) => tracing::debug!(job_id = %id, error = %error_chain(&e), "could not check a job yet"),
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
                let task = match Message::parse(&delivery.payload) {
                    Ok(Message::Item(item)) => {
                        let reason = format!(
                            "{} could not be processed (a worker gave up on it, or it failed after {} deliveries)",
                            item.describe(),
                            self.config.max_deliveries
                        );
                        let entry = failed_entry(&item, "strip-failed", &reason);
                        match record_item(&self.transport, &item, &entry, self.config.batch_ttl).await {
                            Ok(_) => {
                                self.metrics.dead_letters.inc();
                                let _ = delivery.ack().await;
                            }
                            Err(e) => {
                                tracing::warn!(batch_id = %item.batch_id, error = %e, "could not record a dead letter; will retry");
                                let _ = delivery.requeue().await;
                                tokio::select! {
                                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                                    _ = shutdown.cancelled() => return,
                                }
                            }
                        }
                        continue;
                    }
                    Ok(Message::Job(task)) => Ok(task),
                    Err(e) => Err(e),
                };
                match task {
                    Ok(task) => match self.fail_from_dead_letter(&task).await {
                        Ok(()) => {
                            self.metrics.dead_letters.inc();
                            let _ = delivery.ack().await;
                        }
                        Err(e) => {
                            tracing::warn!(job_id = %task.job_id(), error = %error_chain(&e), "could not record a dead letter; will retry");
                            let _ = delivery.requeue().await;
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                                _ = shutdown.cancelled() => return,
                            }
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
