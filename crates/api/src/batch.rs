//! Batches: every image under one location of object storage turned into an edge map under
//! another (`POST /batches`), with the workers reading and writing the objects themselves.

use serde::{Deserialize, Serialize};

use crate::{JobError, JobId, JobOptions};

/// A batch's id: 128 random bits as 32 lowercase hex digits, like a job's, but never taken
/// for one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchId(JobId);

impl BatchId {
    /// A new unguessable id.
    pub fn random() -> BatchId {
        BatchId(JobId::random())
    }

    /// `id` if it has the shape of a batch id.
    pub fn parse(id: &str) -> Option<BatchId> {
        JobId::parse(id).map(BatchId)
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Display for BatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of `POST /batches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Where the images are: `s3://bucket/prefix`, `gs://bucket/prefix`, `file:///path`
    /// (`memory://name/prefix` in the embedded mode's own store).
    pub source: String,
    /// Where the edge maps go, under the same key with the format's extension.
    pub destination: String,
    /// The options an upload takes (`fragments` is ignored: each item is one task).
    #[serde(default)]
    pub options: JobOptions,
}

/// Where a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchState {
    /// Its source is being listed (and the items found so far are being computed).
    Listing,
    /// Every item is listed and queued; some are not finished.
    Running,
    /// Every item ended (done, skipped or failed) and the manifest is written.
    Done,
    /// The batch itself could not go on (its source could not be listed, say).
    Failed,
    /// Cancelled by `DELETE /batches/{id}`.
    Cancelled,
}

impl BatchState {
    /// Done, failed or cancelled.
    pub fn is_over(self) -> bool {
        matches!(self, BatchState::Done | BatchState::Failed | BatchState::Cancelled)
    }

    /// The state's word, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Listing => "listing",
            BatchState::Running => "running",
            BatchState::Done => "done",
            BatchState::Failed => "failed",
            BatchState::Cancelled => "cancelled",
        }
    }
}

/// How many of a batch's items are where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCounts {
    /// Items listed so far (all of them once listing is over).
    pub total: u64,
    /// Computed and written.
    pub done: u64,
    /// Not computed: see the manifest for each one's reason.
    pub failed: u64,
    /// Their output was already current (same source ETag and options).
    pub skipped: u64,
}

impl BatchCounts {
    /// Items that ended, however.
    pub fn ended(&self) -> u64 {
        self.done + self.failed + self.skipped
    }
}

/// What `GET /batches/{id}` (and each event of `/batches/{id}/events`) carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchStatus {
    /// The batch id.
    pub id: BatchId,
    /// Where the batch is.
    pub state: BatchState,
    /// The source location.
    pub source: String,
    /// The destination location.
    pub destination: String,
    /// The options of every item.
    pub options: JobOptions,
    /// The items' counts.
    pub counts: BatchCounts,
    /// Items ended per second since the batch started.
    pub rate_per_sec: Option<f64>,
    /// Seconds until every item has ended at that rate (once the listing is over).
    pub eta_secs: Option<f64>,
    /// The URL of the manifest (`DEST/_manifest/<id>.jsonl`), complete once the batch is over.
    pub manifest: String,
    /// Why the batch failed or was cancelled.
    pub error: Option<JobError>,
    /// When it was accepted (RFC 3339, UTC).
    pub created_at: String,
    /// When it ended (RFC 3339, UTC).
    pub ended_at: Option<String>,
}

/// The links of an accepted batch (`202`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLinks {
    /// The batch id.
    pub id: BatchId,
    /// `/batches/{id}`.
    pub status_url: String,
    /// `/batches/{id}/events`.
    pub events_url: String,
    /// The manifest's URL in the destination.
    pub manifest: String,
}

impl BatchLinks {
    /// The links of batch `id`, whose manifest is at `manifest`.
    pub fn of(id: &BatchId, manifest: &str) -> BatchLinks {
        BatchLinks {
            id: id.clone(),
            status_url: format!("/batches/{id}"),
            events_url: format!("/batches/{id}/events"),
            manifest: manifest.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_takes_the_upload_options_and_nothing_unknown() {
        let request: BatchRequest = serde_json::from_str(
            r#"{"source":"s3://a/b","destination":"s3://c/d","options":{"output":"canny"}}"#,
        )
        .unwrap();
        assert_eq!(request.options.output.to_string(), "canny");
        let defaults: BatchRequest =
            serde_json::from_str(r#"{"source":"s3://a","destination":"s3://c"}"#).unwrap();
        assert_eq!(defaults.options, JobOptions::default());
        assert!(
            serde_json::from_str::<BatchRequest>(r#"{"source":"s3://a","destination":"s3://c","x":1}"#)
                .is_err()
        );
        let id = BatchId::random();
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
        assert!(BatchId::parse("nope").is_none());
    }
}
