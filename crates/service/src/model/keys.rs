//! Store keys of one namespace.
//!
//! Every key of a job is `{namespace}:job:{<id>}:…`: the braces make the id a Redis Cluster
//! hash tag, so all of a job's keys live on one slot and its multi-key reads, transactions
//! and wake-up channel stay on one shard. Keys that belong to no job are left untagged, so
//! Redis spreads them over the slots by their whole name: an idempotency claim
//! (`{namespace}:idempotency:<key>`) is read and written alone, never with another key.
//!
//! A replica's pending set, which every job it accepts enters and leaves, is split into
//! [`PENDING_PARTS`] sets by the first digit of the job id, each with a hash tag of its own
//! (`{namespace}:pending:{<replica>.<part>}`): one set would put two writes of every job on the
//! one shard that owns its slot, and that shard would bind a cluster's throughput first.

use dsobel_objects::manifest::ItemStatus;

use super::{BatchId, JobId, ReplicaId, status_word};

/// How many sets a replica's pending jobs are split into (by the first hex digit of the id).
pub const PENDING_PARTS: u32 = 16;

/// Store keys of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    namespace: String,
}

impl Keys {
    /// Keys under `namespace` (e.g. `dsobel`).
    pub fn new(namespace: &str) -> Self {
        Keys { namespace: namespace.to_owned() }
    }

    /// The prefix every key of job `id` starts with.
    fn of(&self, id: &JobId) -> String {
        format!("{}:job:{{{id}}}", self.namespace)
    }

    /// The job record.
    pub fn job(&self, id: &JobId) -> String {
        self.of(id)
    }
    /// The upload's bytes.
    pub fn upload(&self, id: &JobId) -> String {
        format!("{}:upload", self.of(id))
    }
    /// A strip's input rows (own rows plus halo), stored by the worker that decoded them.
    pub fn input(&self, id: &JobId, strip: u32) -> String {
        format!("{}:in:{strip}", self.of(id))
    }
    /// The hash of finished strips (field = strip index).
    pub fn strips(&self, id: &JobId) -> String {
        format!("{}:strips", self.of(id))
    }
    /// The finished PNG.
    pub fn result(&self, id: &JobId) -> String {
        format!("{}:result", self.of(id))
    }
    /// The lock taken by the backend that stitches.
    pub fn stitch_lock(&self, id: &JobId) -> String {
        format!("{}:stitch", self.of(id))
    }
    /// Set by the worker that starts an image task, so that `/status` says `processing`.
    pub fn started(&self, id: &JobId) -> String {
        format!("{}:started", self.of(id))
    }
    /// The channel of the job's wake-ups (on the shard of its keys).
    pub fn events(&self, id: &JobId) -> String {
        format!("{}:events", self.of(id))
    }
    /// A job's failure, written once by whoever sees it first.
    pub fn failure(&self, id: &JobId) -> String {
        format!("{}:failure", self.of(id))
    }
    /// Every key of the bytes store that a job with `strips` strips works with, its result
    /// aside: what is deleted once it is over (its record, failure and result stay until they
    /// expire).
    pub fn work(&self, id: &JobId, strips: u32) -> Vec<String> {
        let mut keys: Vec<String> = (0..strips).map(|i| self.input(id, i)).collect();
        keys.extend([self.strips(id), self.upload(id)]);
        keys
    }
    /// The job an idempotency key made.
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}:idempotency:{key}", self.namespace)
    }
    /// The part of replica `owner`'s pending set (the jobs it accepted and has not seen end)
    /// that holds job `id`.
    pub fn pending(&self, owner: &ReplicaId, id: &JobId) -> String {
        let digit = id.as_str().chars().next().and_then(|c| c.to_digit(16)).unwrap_or(0);
        self.pending_part(owner, digit % PENDING_PARTS)
    }
    /// Every part of replica `owner`'s pending set.
    pub fn pending_parts(&self, owner: &ReplicaId) -> Vec<String> {
        (0..PENDING_PARTS).map(|part| self.pending_part(owner, part)).collect()
    }
    fn pending_part(&self, owner: &ReplicaId, part: u32) -> String {
        format!("{}:pending:{{{owner}.{part:x}}}", self.namespace)
    }
    /// Replica `owner`'s pending set as one set, as earlier versions kept it (read only when
    /// taking over the jobs of a replica that stopped, which may be of such a version).
    pub fn pending_unsplit(&self, owner: &ReplicaId) -> String {
        format!("{}:pending:{{{owner}}}", self.namespace)
    }
    /// The set of replicas that have announced themselves.
    pub fn replicas(&self) -> String {
        format!("{{{}:replicas}}", self.namespace)
    }
    /// Replica `replica`'s heartbeat (it expires when the replica stops beating).
    pub fn heartbeat(&self, replica: &ReplicaId) -> String {
        format!("{{{}:replicas}}:alive:{replica}", self.namespace)
    }
    /// The prefix every key of batch `id` starts with (its id is the hash tag).
    fn of_batch(&self, id: &BatchId) -> String {
        format!("{}:batch:{{{id}}}", self.namespace)
    }
    /// The batch record.
    pub fn batch(&self, id: &BatchId) -> String {
        self.of_batch(id)
    }
    /// The lease of the backend that drives the batch (lists it, and writes its manifest).
    pub fn batch_driver(&self, id: &BatchId) -> String {
        format!("{}:driver", self.of_batch(id))
    }
    /// Set when the batch is cancelled (its value: when, ms since the epoch).
    pub fn batch_cancel(&self, id: &BatchId) -> String {
        format!("{}:cancel", self.of_batch(id))
    }
    /// Set when the batch is over (done, failed or cancelled, its manifest written): a small
    /// key a worker reads with each item instead of the record.
    pub fn batch_over(&self, id: &BatchId) -> String {
        format!("{}:over", self.of_batch(id))
    }
    /// An item's outcome: its manifest line.
    pub fn batch_item(&self, id: &BatchId, seq: u64) -> String {
        format!("{}:item:{seq}", self.of_batch(id))
    }
    /// The set of the items that ended with `status` (hash, field = item number).
    pub fn batch_ended(&self, id: &BatchId, status: ItemStatus) -> String {
        format!("{}:{}", self.of_batch(id), status_word(status))
    }
    /// The batches not over, which every backend's sweeper looks after.
    pub fn batches(&self) -> String {
        format!("{}:batches", self.namespace)
    }
    /// The batch an idempotency key made.
    pub fn batch_idempotency(&self, key: &str) -> String {
        format!("{}:idempotency-batch:{key}", self.namespace)
    }
    /// Taken by the replica that takes over the jobs of replica `replica`, which stopped.
    pub fn takeover(&self, replica: &ReplicaId) -> String {
        format!("{{{}:replicas}}:takeover:{replica}", self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jobs_keys_share_its_hash_tag() {
        let (keys, id) = (Keys::new("ns"), JobId::random());
        let tag = format!("{{{id}}}");
        let all = [keys.job(&id), keys.failure(&id), keys.result(&id), keys.started(&id)];
        for key in keys.work(&id, 3).into_iter().chain(all) {
            assert!(key.starts_with("ns:job:"), "{key}");
            let open = key.find('{').unwrap();
            let close = key[open..].find('}').unwrap() + open;
            assert_eq!(&key[open..=close], tag, "the first braces of {key} hold the id");
        }
        assert!(!keys.idempotency("k").contains('{'));
        let replica = ReplicaId::random();
        let tag = |key: String| key[key.find('{').unwrap()..=key.find('}').unwrap()].to_owned();
        assert_eq!(tag(keys.heartbeat(&replica)), tag(keys.replicas()), "one slot for the registry");
        assert_eq!(tag(keys.takeover(&replica)), tag(keys.replicas()));
        let parts = keys.pending_parts(&replica);
        assert_eq!(parts.len(), PENDING_PARTS as usize);
        let tags: std::collections::HashSet<String> = parts.iter().cloned().map(tag).collect();
        assert_eq!(tags.len(), parts.len(), "each part on a slot of its own: {parts:?}");
        for _ in 0..100 {
            let id = JobId::random();
            assert!(parts.contains(&keys.pending(&replica, &id)), "job {id} in one of the parts");
        }
    }
}
