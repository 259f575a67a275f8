//! The stored record of a job, and the clock it is written with.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Cut, ErrorCode, JobError, JobId, JobOptions, JobState, ReplicaId, Timings};

/// Milliseconds since the Unix epoch (the clock shared by backend and workers).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Why a job the store lost ended, in words a person can act on.
pub fn job_lost() -> JobError {
    JobError::new(
        ErrorCode::JobLost,
        "the result store restarted or was emptied and lost this job before it finished; submit it again",
    )
}

/// The stored record of a job. Written by the backend that accepted it and by the one that
/// finishes it; progress (strips done) is counted separately in the strips hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job id.
    pub id: JobId,
    /// Queued, processing, done, failed or cancelled.
    pub state: JobState,
    /// Strips of this job.
    pub strips_total: u32,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Size of the upload.
    pub input_bytes: u64,
    /// Size of the PNG, once done.
    pub result_bytes: Option<u64>,
    /// Options.
    pub options: JobOptions,
    /// Stage durations.
    pub timings: Timings,
    /// Why it failed.
    pub error: Option<JobError>,
    /// When the upload was accepted (ms since the epoch).
    pub created_ms: u64,
    /// Compression level of the strips.
    pub compression: u8,
    /// How the job was cut.
    pub cut: Cut,
    /// What the backend changed of what was asked, in words (shown by `/status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The backend replica that accepted the job, whose pending set lists it (another replica
    /// takes the job over if that one stops; the record keeps the first owner). `None` in a
    /// record a worker rebuilt for a job the store lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<ReplicaId>,
    /// The threshold a `binary` job used, once known (the one asked for, or Otsu's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_used: Option<u32>,
}

impl JobRecord {
    /// Whether one worker does the whole job (nothing to stitch, no strips to count).
    pub fn is_whole(&self) -> bool {
        self.cut == Cut::Whole
    }

    /// The record of the same job, over: done, or failed or cancelled with `error`, with its
    /// total time measured now.
    pub fn ended(mut self, error: Option<JobError>) -> JobRecord {
        self.state = match &error {
            None => JobState::Done,
            Some(e) if e.code == ErrorCode::Cancelled => JobState::Cancelled,
            Some(_) => JobState::Failed,
        };
        self.error = error;
        self.timings.total = Some(now_ms().saturating_sub(self.created_ms) as f64);
        self
    }
}
