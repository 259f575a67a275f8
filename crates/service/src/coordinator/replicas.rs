//! The backend's replicas and the load of the whole system.
//!
//! Each replica owns the jobs it accepted: they are listed in its own pending set, which only
//! it sweeps, so a sweep costs in proportion to this replica's jobs, not the system's. Once per
//! sweep a replica beats: it writes a heartbeat (its jobs in flight, expiring after a few
//! sweeps) and reads every replica's heartbeat in one round trip. That gives
//!
//! - the jobs in flight in the whole system, for admission and for the automatic strip count
//!   (a burst is admitted while the system holds fewer jobs than its workers plus a queue
//!   allowance, whichever replica it reaches), and
//! - the replicas that stopped (no heartbeat): the first replica to take a stopped one's
//!   takeover lock moves that replica's pending jobs into its own set, and sweeps them from
//!   then on, so no job waits for a backend that will not come back.
//!
//! The broker's consumers and waiting messages are read at the same moment, once per sweep,
//! not per upload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_transport::TransportError;

use super::Coordinator;
use crate::locks::lock;
use crate::model::{JobId, ReplicaId};

/// How long the takeover lock of a stopped replica is held by the replica moving its jobs.
const TAKEOVER_LOCK: Duration = Duration::from_secs(60);

/// What the last beat learnt of the whole system.
#[derive(Debug, Clone)]
pub(super) struct SystemLoad {
    /// When it was read.
    pub(super) at: Instant,
    /// Jobs in flight in all replicas (this one's included, as it was at the beat).
    pub(super) in_flight: u64,
    /// This replica's jobs in flight at the beat.
    pub(super) mine: u64,
    /// Workers consuming the work queue.
    pub(super) consumers: u32,
    /// Tasks waiting in the work queue.
    pub(super) ready: u64,
    /// The fullest shard of the stores, when it is above the memory watermark.
    pub(super) full: Option<FullShard>,
}

/// A store shard above the memory watermark.
#[derive(Debug, Clone, PartialEq)]
pub struct FullShard {
    /// Which store and shard (`bytes 10.0.0.5:6379`).
    pub shard: String,
    /// The part of its memory limit in use.
    pub fraction: f64,
}

impl Coordinator {
    /// How long a heartbeat lives: a few sweeps, so one slow sweep does not look like a stop.
    fn heartbeat_ttl(&self) -> Duration {
        (self.config.sweep_interval * 5).max(Duration::from_secs(5))
    }

    /// The last beat's view of the system, with this replica's own count as it is now; `None`
    /// before the first beat, or when the last one is older than a heartbeat lives (the store
    /// or the broker has not answered since).
    pub(super) fn system_load(&self) -> Option<SystemLoad> {
        let mut load = lock(&self.system_load, "system load").clone()?;
        if load.at.elapsed() > self.heartbeat_ttl() {
            return None;
        }
        let mine = self.local.len() as u64;
        load.in_flight = (load.in_flight + mine).saturating_sub(load.mine);
        load.mine = mine;
        Some(load)
    }

    /// One beat: announce this replica, read the others and the broker, take over the jobs
    /// of replicas that stopped.
    pub(super) async fn beat(&self) -> Result<(), TransportError> {
        let t = &self.transport;
        let mine = self.local.len() as u64;
        let ttl = self.heartbeat_ttl();
        t.store.put(&t.keys.heartbeat(&self.replica), Bytes::from(mine.to_string()), ttl).await?;
        t.store.set_add(&t.keys.replicas(), self.replica.as_str(), self.config.result_ttl).await?;
        let replicas: Vec<ReplicaId> = t
            .store
            .set_members(&t.keys.replicas())
            .await?
            .iter()
            .filter_map(|r| ReplicaId::parse(r))
            .collect();
        let beats =
            t.store.get_many(&replicas.iter().map(|r| t.keys.heartbeat(r)).collect::<Vec<_>>()).await?;
        let mut in_flight = 0;
        for (replica, beat) in replicas.iter().zip(beats) {
            match beat {
                Some(count) => in_flight += String::from_utf8_lossy(&count).parse::<u64>().unwrap_or(0),
                None if *replica != self.replica => self.take_over(replica).await?,
                None => {}
            }
        }
        let queue = &t.queue;
        let (load, full) = tokio::join!(queue.load(), self.fullest_shard());
        let (consumers, ready) = load.map(|l| (l.consumers, l.ready)).unwrap_or((0, 0));
        if let Some(full) = &full {
            tracing::warn!(shard = %full.shard, used = full.fraction, "the store is above its memory watermark; new uploads are refused");
        }
        *lock(&self.system_load, "system load") =
            Some(SystemLoad { at: Instant::now(), in_flight, mine, consumers, ready, full });
        Ok(())
    }

    /// The fullest shard of the two stores, if it is above the memory watermark
    /// (`DSOBEL_STORE_MEMORY_WATERMARK`); shards without a limit never are.
    async fn fullest_shard(&self) -> Option<FullShard> {
        let t = &self.transport;
        let separate = !Arc::ptr_eq(&t.store, &t.bytes);
        let (state, bytes) = tokio::join!(t.store.memory(), async {
            if separate { t.bytes.memory().await } else { Ok(Vec::new()) }
        });
        let shards = [("state", state), ("bytes", bytes)].into_iter().flat_map(|(role, shards)| {
            shards.unwrap_or_default().into_iter().map(move |shard| (role, shard))
        });
        shards
            .filter_map(|(role, shard)| {
                let fraction = shard.fraction()?;
                let name = if separate { format!("{role} {}", shard.shard) } else { shard.shard };
                Some(FullShard { shard: name, fraction })
            })
            .filter(|shard| shard.fraction >= self.config.memory_watermark)
            .max_by(|a, b| a.fraction.total_cmp(&b.fraction))
    }

    /// The store shard above its memory watermark, as the last beat found it, if any.
    pub fn store_full(&self) -> Option<FullShard> {
        self.system_load().and_then(|load| load.full)
    }

    /// Moves the pending jobs of `stopped` (a replica without a heartbeat) into this replica's
    /// set, unless another replica is doing it.
    async fn take_over(&self, stopped: &ReplicaId) -> Result<(), TransportError> {
        let t = &self.transport;
        let lock_key = t.keys.takeover(stopped);
        if !t.store.put_if_absent(&lock_key, Bytes::from(self.replica.to_string()), TAKEOVER_LOCK).await? {
            return Ok(());
        }
        let mut theirs = t.keys.pending_parts(stopped);
        theirs.push(t.keys.pending_unsplit(stopped));
        let mut jobs = Vec::new();
        for part in &theirs {
            jobs.extend(t.store.set_members(part).await?);
        }
        for job in &jobs {
            // Members that are not job ids (none are written) are left to expire with the set.
            if let Some(id) = JobId::parse(job) {
                t.store.set_add(&self.pending_key(&id), job, self.config.result_ttl).await?;
            }
        }
        t.store.delete(&theirs).await?;
        t.store.set_remove(&t.keys.replicas(), stopped.as_str()).await?;
        if !jobs.is_empty() {
            tracing::warn!(stopped = %stopped, jobs = jobs.len(), "a backend replica stopped; its jobs are swept here now");
            self.metrics.jobs_taken_over.inc_by(jobs.len() as u64);
        }
        Ok(())
    }

    /// One beat now, bounded in time (before the first upload, at start).
    pub async fn beat_now(&self) -> Result<(), TransportError> {
        let deadline = self.heartbeat_ttl();
        tokio::time::timeout(deadline, self.beat()).await.unwrap_or_else(|_| {
            Err(TransportError::Unavailable {
                service: "store",
                detail: format!("no beat within {deadline:?}"),
            })
        })
    }

    /// The part of this replica's pending set that holds job `id`.
    pub(super) fn pending_key(&self, id: &JobId) -> String {
        self.transport.keys.pending(&self.replica, id)
    }

    /// This replica's pending jobs: the members of every part of its pending set.
    pub(super) async fn pending_jobs(&self) -> Result<Vec<String>, TransportError> {
        let t = &self.transport;
        let parts = t.keys.pending_parts(&self.replica);
        let members =
            futures_util::future::try_join_all(parts.iter().map(|part| t.store.set_members(part))).await?;
        Ok(members.into_iter().flatten().collect())
    }

    /// Takes this replica out of the registry (a clean stop): its pending jobs, if any are
    /// left, are taken over by the others at their next beat instead of after its heartbeat
    /// expires.
    pub async fn leave(&self) {
        let t = &self.transport;
        let gone = async {
            t.store.delete(&[t.keys.heartbeat(&self.replica)]).await?;
            Ok::<(), TransportError>(())
        };
        if let Err(e) = tokio::time::timeout(Duration::from_secs(2), gone).await.unwrap_or(Ok(())) {
            tracing::debug!(error = %e, "could not take this replica's heartbeat away; it expires");
        }
    }
}
