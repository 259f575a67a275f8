//! A job's life as the API shows it: state, cut, timings, status and links.

use serde::{Deserialize, Serialize};

use crate::{JobError, JobId, JobOptions};

/// The life of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting in the queue.
    Queued,
    /// Being computed.
    Processing,
    /// The PNG is ready.
    Done,
    /// It failed; see [`JobStatus::error`].
    Failed,
    /// It was cancelled.
    Cancelled,
}

impl JobState {
    /// Done, failed or cancelled: nothing more will happen to the job.
    pub fn is_over(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Cancelled)
    }

    /// The state's word, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Processing => "processing",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// How a job was cut into tasks (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cut {
    /// One task: one worker decodes, filters and encodes the whole image.
    Whole,
    /// Strip tasks, each decoding its rows from the JPEG's restart intervals.
    RestartIntervals,
    /// One worker decodes the image and hands each strip's rows to the others.
    DecodeAndSplit,
}

impl Cut {
    /// The cut's word, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Cut::Whole => "whole",
            Cut::RestartIntervals => "restart-intervals",
            Cut::DecodeAndSplit => "decode-and-split",
        }
    }
}

/// Stage durations of a job, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timings {
    /// Decoding the upload (the worker of a whole-image job).
    pub decode: Option<f64>,
    /// Longest wait of a task in the queue.
    pub queue_wait: Option<f64>,
    /// Filtering, summed over strips (CPU time).
    pub filter: Option<f64>,
    /// Encoding, summed over strips (CPU time).
    pub encode: Option<f64>,
    /// Stitching (backend).
    pub stitch: Option<f64>,
    /// Upload accepted → result ready.
    pub total: Option<f64>,
}

/// What `/status/{id}` (and every event of `/events/{id}`) carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job id.
    pub id: JobId,
    /// Where the job is.
    pub state: JobState,
    /// Strips finished.
    pub strips_done: u32,
    /// Strips of the job (the count it was cut into, which may be fewer than `fragments` asked).
    pub strips_total: u32,
    /// How the job was cut.
    pub cut: Cut,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Upload size in bytes.
    pub input_bytes: u64,
    /// PNG size once done.
    pub result_bytes: Option<u64>,
    /// The job's options.
    pub options: JobOptions,
    /// Stage durations.
    #[serde(default)]
    pub timings_ms: Timings,
    /// Why it failed or was cancelled.
    pub error: Option<JobError>,
    /// When the upload was accepted (RFC 3339, UTC).
    pub created_at: String,
    /// What the server changed of what was asked, in words (a strip count reduced to the
    /// server's maximum, say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The threshold a `binary` job used, once it is known: the one asked for, or the one
    /// Otsu's method chose for `threshold=otsu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_used: Option<u32>,
}

/// The links of an accepted upload (`202`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLinks {
    /// The job id.
    pub id: JobId,
    /// `/status/{id}`.
    pub status_url: String,
    /// `/result/{id}`.
    pub result_url: String,
    /// `/events/{id}`.
    pub events_url: String,
}

impl JobLinks {
    /// The links of job `id`.
    pub fn of(id: &JobId) -> JobLinks {
        JobLinks {
            id: id.clone(),
            status_url: format!("/status/{id}"),
            result_url: format!("/result/{id}"),
            events_url: format!("/events/{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_the_wire() {
        for cut in [Cut::Whole, Cut::RestartIntervals, Cut::DecodeAndSplit] {
            assert_eq!(serde_json::to_string(&cut).unwrap(), format!("\"{}\"", cut.as_str()));
        }
        for state in
            [JobState::Queued, JobState::Processing, JobState::Done, JobState::Failed, JobState::Cancelled]
        {
            assert_eq!(serde_json::to_string(&state).unwrap(), format!("\"{}\"", state.as_str()));
        }
    }
}
