//! What the store keeps of a batch: its record, written by the backend that drives it.
//!
//! The record holds the request, where the listing is (the last key queued and how many items
//! were queued, written together, so a replica that takes the batch over lists on from there
//! and gives each item the same number again), and, once the batch is over, its final counts.
//! Each item's outcome is kept beside it by the worker that ended it: its manifest line under
//! its number, and its number in the set of its status, which counts it once however often it
//! is redone.

use dsobel_objects::manifest::ItemStatus;
use serde::{Deserialize, Serialize};

use super::{BatchCounts, BatchId, BatchState, JobError, JobOptions};

/// A batch as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// The batch.
    pub id: BatchId,
    /// The source location (URL).
    pub source: String,
    /// The destination location (URL).
    pub destination: String,
    /// The options of every item.
    pub options: JobOptions,
    /// Where the batch is (`listing` until the source is listed to its end).
    pub state: BatchState,
    /// Items queued so far.
    pub listed: u64,
    /// The last key queued (relative to the source): the listing goes on after it.
    pub position: Option<String>,
    /// Source objects that are not items (other extensions, hidden files).
    #[serde(default)]
    pub ignored: u64,
    /// The counts, frozen when the batch ended.
    pub final_counts: Option<BatchCounts>,
    /// Why the batch failed or was cancelled.
    pub error: Option<JobError>,
    /// The manifest's URL.
    pub manifest: String,
    /// When it was accepted (ms since the epoch).
    pub created_ms: u64,
    /// When it ended.
    pub ended_ms: Option<u64>,
}

/// The word of an item status in store keys.
pub fn status_word(status: ItemStatus) -> &'static str {
    match status {
        ItemStatus::Done => "done",
        ItemStatus::Skipped => "skipped",
        ItemStatus::Failed => "failed",
    }
}
