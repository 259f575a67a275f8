//! The background loops of a backend: wake-ups from the workers, the sweeper that settles what
//! a missed wake-up left (and finds jobs the store lost), and the dead-letter consumer.

use super::*;

impl Coordinator {
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
        let (notifier, channel) = (&self.transport.notifier, &self.transport.events);
        let subscribed = || async {
            let listener = notifier.listen().await?;
            listener.subscribe(channel).await.map(|()| listener)
        };
        while let Some(listener) =
            until_connected("cannot subscribe to wake-ups", &shutdown, subscribed).await
        {
            loop {
                let heard = tokio::select! {
                    m = listener.next() => m,
                    _ = shutdown.cancelled() => return,
                };
                let Some(heard) = heard else { break };
                let Some(event) = Event::decode(&heard.message) else { continue };
                self.wakeups.wake(event.job_id());
                match event {
                    Event::StripDone(id) => {
                        let me = self.clone();
                        tokio::spawn(async move {
                            if let Err(e) = me.try_stitch(&id).await {
                                tracing::warn!(job_id = %id, error = %error_chain(&e), "stitch attempt failed; the sweeper will retry");
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
                    tracing::debug!(job_id = %id, error = %error_chain(&e), "sweep could not settle job");
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
            Ok(Some(stored)) if !stored.state.is_over() => {
                // Not over and not pending: the store lost the pending entry (a crash before
                // its fsync). Listed again, the sweep keeps settling the job.
                if let Err(e) = t.store.set_add(&t.keys.pending(), &id, self.config.result_ttl).await {
                    tracing::debug!(job_id = %id, error = %e, "could not list a job as pending again yet");
                }
            }
            Ok(Some(_)) => {
                // Its waiters here may have missed the wake-up too.
                self.wakeups.wake(&id);
                self.local_finish(&id);
            }
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
                match serde_json::from_slice::<Task>(&delivery.payload) {
                    Ok(task) => match self.fail_from_dead_letter(&task).await {
                        Ok(()) => {
                            self.metrics.dead_letters.inc();
                            let _ = delivery.ack().await;
                        }
                        Err(e) => {
                            tracing::warn!(job_id = %task.job_id(), error = %error_chain(&e), "could not record a dead letter; will retry");
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
