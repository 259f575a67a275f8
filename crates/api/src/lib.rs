//! # dsobel-api: the wire types of the dsobel HTTP API
//!
//! What the server sends and its client reads, defined once: the job id ([`JobId`]), a job's
//! life ([`JobState`]), how it was cut ([`Cut`]), its options ([`JobOptions`]), its status
//! ([`JobStatus`], what `/status` and every `/events` event carry), the links of an accepted
//! upload ([`JobLinks`]), a batch's request, state and status ([`BatchRequest`], [`BatchStatus`]), and every stable error code ([`ErrorCode`]) with the error body
//! `{"error": {"code", "message"}}` ([`ErrorBody`]). Types only: no I/O, no HTTP client, no
//! server, so the server does not link an HTTP client and the client links no server.

mod batch;
mod error;
mod id;
mod options;
mod status;

pub use batch::{BatchCounts, BatchId, BatchLinks, BatchRequest, BatchState, BatchStatus};
pub use error::{ErrorBody, ErrorCode, JobError};
pub use id::JobId;
pub use options::JobOptions;
pub use status::{Cut, JobLinks, JobState, JobStatus, Timings};
