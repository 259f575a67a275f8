//! Errors, in layers. [`StoreError`] is what reading and writing job state can fail with;
//! [`JobsError`] is what the job operations (intake, settlement, status, cancel) refuse or fail
//! with; [`ApiError`] is the HTTP edge; [`SetupError`] is what keeps `serve` or `worker` from
//! starting. The edge (`edge.rs`) maps every error to one stable
//! [`ErrorCode`](dsobel_api::ErrorCode), and every code to its HTTP status and retry hint in
//! one table ([`http_status`], [`retry_after`]), answering with the JSON body
//! `{"error": {"code": "...", "message": "..."}}` of DESIGN §4. Each error keeps its cause as
//! its `source`, and logs print the whole chain ([`error_chain`]).

use std::error::Error;
use std::net::SocketAddr;

use dsobel_api::{BatchId, BatchState, JobId, JobState};
use dsobel_codec::DecodeError;
use dsobel_transport::TransportError;

mod edge;

pub use edge::{
    ApiError, decode_code, decode_failure, http_status, object_store_code, option_code, retry_after,
};

/// Seconds a client is told to wait when the server is at one of its own limits.
pub const TOO_BUSY_RETRY_SECS: u32 = 2;
/// Seconds a client is told to wait when the store or the queue is out, or the server is not
/// ready.
pub const UNAVAILABLE_RETRY_SECS: u32 = 5;
/// Seconds a client is told to wait when it has its most event streams open.
pub const STREAMS_RETRY_SECS: u32 = 5;

/// What reading or writing job state in the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis or RabbitMQ (or the in-memory transport) refused or did not answer.
    #[error("the store or the queue failed")]
    Transport(#[from] TransportError),
    /// A value in the store is not what dsobel writes.
    #[error("unreadable {what} of job {id}")]
    Unreadable {
        /// Which value (`record`, `failure`).
        what: &'static str,
        /// The job.
        id: JobId,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be written as JSON (a bug).
    #[error("cannot write the {what} of job {id}")]
    Unwritable {
        /// Which value (`record`, `failure`).
        what: &'static str,
        /// The job.
        id: JobId,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The store answered a different number of values than keys were asked for.
    #[error("the store answered {got} values for {asked} keys")]
    WrongCount {
        /// Keys asked for.
        asked: usize,
        /// Values answered.
        got: usize,
    },
}

/// Which of the server's own limits an upload met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    /// This backend holds its most jobs in flight (`DSOBEL_MAX_JOBS_IN_FLIGHT`).
    #[error("too many jobs in flight ({0}, DSOBEL_MAX_JOBS_IN_FLIGHT)")]
    JobsInFlight(usize),
    /// The whole system holds as many jobs as its consuming workers plus the queue allowance
    /// (`DSOBEL_MAX_QUEUED_JOBS`).
    #[error(
        "the system holds {held} jobs, as many as its {workers} consuming workers and its queue (DSOBEL_MAX_QUEUED_JOBS) take"
    )]
    SystemJobs {
        /// Jobs in flight in the system.
        held: u64,
        /// Workers consuming.
        workers: u32,
    },
    /// The bodies being received fill the upload memory (`DSOBEL_UPLOAD_MEMORY_BYTES`).
    #[error(
        "the server is receiving as many uploads as its upload memory allows ({0} bytes, DSOBEL_UPLOAD_MEMORY_BYTES)"
    )]
    UploadMemory(u64),
}

/// What the job operations refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The upload is not an image dsobel takes (read from its header).
    #[error(transparent)]
    Refused(#[from] DecodeError),
    /// No such job, or it expired.
    #[error("no job {0} (unknown, or its result expired)")]
    UnknownJob(JobId),
    /// The job ended (done or failed) before it could be cancelled.
    #[error("job {id} is already {} and cannot be cancelled", state.as_str())]
    AlreadyOver {
        /// The job id.
        id: JobId,
        /// How it ended.
        state: JobState,
    },
    /// The server is at one of its own limits.
    #[error("{0}; retry in {TOO_BUSY_RETRY_SECS} s")]
    TooBusy(Limit),
    /// An upload with the same idempotency key is still being accepted, or was cut off.
    #[error(
        "an upload with this Idempotency-Key is still being accepted, or was cut off; send it again in a few seconds"
    )]
    KeyPending,
    /// The queue or the store did not answer within the bound on a submission.
    #[error("the queue or the store did not answer in time")]
    TimedOut,
    /// Reading or writing job state failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A step run on a task of its own crashed (a bug).
    #[error(transparent)]
    Crashed(#[from] Crashed),
    /// The stored state of a job contradicts itself (a bug, or a store that lost part of it).
    #[error("{0}")]
    Inconsistent(String),
    /// A store shard is above its memory watermark: new work is refused until it frees.
    #[error(
        "the store is nearly full ({} at {:.0} % of its memory limit, over DSOBEL_STORE_MEMORY_WATERMARK); new uploads are refused until finished jobs' results expire (DSOBEL_RESULT_TTL_SECS)",
        .0.shard,
        .0.fraction * 100.0
    )]
    StoreFull(crate::coordinator::FullShard),
    /// The process began shutting down before the operation finished.
    #[error("the server is shutting down")]
    Interrupted,
}

/// What starting, reading or cancelling a batch refuses or fails with.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A location refused, missing or unreachable, or the object store failed.
    #[error(transparent)]
    Objects(#[from] dsobel_objects::StoreError),
    /// No such batch, or its record expired.
    #[error("no batch {0} (unknown, or its record expired)")]
    UnknownBatch(BatchId),
    /// The batch ended before it could be cancelled.
    #[error("batch {id} is already {} and cannot be cancelled", state.as_str())]
    AlreadyOver {
        /// The batch.
        id: BatchId,
        /// How it ended.
        state: BatchState,
    },
    /// A batch with the same idempotency key is still being started.
    #[error("a batch with this Idempotency-Key is still being started; send it again in a few seconds")]
    KeyPending,
    /// Reading or writing the batch's state failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TransportError> for BatchError {
    fn from(e: TransportError) -> Self {
        BatchError::Store(StoreError::Transport(e))
    }
}

/// A step run on a task of its own (a blocking decode, a stitch, a store write) that panicked
/// or was cancelled: a bug, kept with its cause.
#[derive(Debug, thiserror::Error)]
#[error("{what} crashed")]
pub struct Crashed {
    /// Which step.
    pub what: &'static str,
    /// The panic or cancellation.
    #[source]
    pub source: tokio::task::JoinError,
}

impl From<TransportError> for JobsError {
    fn from(e: TransportError) -> Self {
        JobsError::Store(StoreError::Transport(e))
    }
}

/// Why `serve` or `worker` could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Only one of the two URLs was given.
    #[error("set both --amqp-url and --redis-url (or neither, for the embedded mode)")]
    HalfConfigured,
    /// A worker needs real servers.
    #[error(
        "a worker needs --amqp-url and --redis-url (DSOBEL_AMQP_URL, DSOBEL_REDIS_URL); the embedded mode is `dsobel serve` with neither"
    )]
    WorkerNeedsServers,
    /// `DSOBEL_BATCH_STORES` or the object stores' settings are invalid.
    #[error("the batch stores' settings are invalid")]
    BatchStores(#[source] dsobel_objects::StoreError),
    /// A server could not be reached at start.
    #[error(transparent)]
    Connect(#[from] TransportError),
    /// An address could not be listened on.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The listener failed while serving.
    #[error("the HTTP listener failed")]
    Serve(#[source] std::io::Error),
}

/// An error and its causes, outermost first, joined with `": "`.
pub fn error_chain(error: &dyn Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !chain.ends_with(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        source = cause.source();
    }
    chain
}
