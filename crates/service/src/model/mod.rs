//! What is stored and sent: job records, tasks, strip results, store keys and wake-ups.
//!
//! Everything a job needs lives in the store under `{namespace}:job:{<id>}…` keys with a TTL
//! (the braces make the id a Redis Cluster hash tag: a job's keys share one slot), so any
//! backend replica (or a restarted one) can pick a job up. Messages on the queue are small
//! JSON tasks ([`Task`]) that point at their data in the store (the compressed upload, a byte
//! range of it, or decoded rows); no message carries pixels.
//!
//! A batch's record and its items' outcomes live under `{namespace}:batch:{<id>}…` the same
//! way; an item's task ([`ItemTask`]) names objects of the batch's stores, not bytes.
//!
//! The API's own types (the job id, states, options, status, error codes) come from
//! `dsobel-api`, shared with the client, and are re-exported here.

mod batch;
mod event;
mod item;
mod keys;
mod record;
mod replica;
mod strip_result;
mod task;

pub use batch::{BatchRecord, status_word};
pub use dsobel_api::{
    BatchCounts, BatchId, BatchLinks, BatchRequest, BatchState, BatchStatus, Cut, ErrorCode, JobError, JobId,
    JobLinks, JobOptions, JobState, JobStatus, Timings,
};
pub use event::Event;
pub use item::{ItemTask, Message};
pub use keys::Keys;
pub use record::{JobRecord, job_lost, now_ms};
pub use replica::ReplicaId;
pub use strip_result::StripResult;
pub use task::{ImageTask, StripSource, StripTask, Task};
