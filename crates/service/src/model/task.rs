//! Work orders: the bodies of queue messages. Every task names its job and points at its data
//! in the store; no message carries pixels.

use dsobel_kernel::StripSpec;
use serde::{Deserialize, Serialize};

use super::{Cut, JobId, JobOptions, JobRecord, JobState, Timings, job_lost, now_ms};

/// A work order, the body of one queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Decode the upload. With one strip: filter and encode the whole image, store the PNG
    /// and finish the job. With more: hand each strip's rows to the queue as soon as they are
    /// decoded, for other workers, and compute the last strip here.
    Image(ImageTask),
    /// Filter and encode one strip of a split job.
    Strip(StripTask),
}

impl Task {
    /// The job the task belongs to.
    pub fn job_id(&self) -> &JobId {
        match self {
            Task::Image(task) => &task.job_id,
            Task::Strip(task) => &task.job_id,
        }
    }

    /// The options of the task's job.
    pub fn options(&self) -> &JobOptions {
        match self {
            Task::Image(task) => &task.options,
            Task::Strip(task) => &task.options,
        }
    }

    /// The message body.
    pub fn to_body(&self) -> bytes::Bytes {
        bytes::Bytes::from(serde_json::to_vec(self).expect("a task serialises"))
    }

    /// When the task was published (ms since the epoch).
    pub fn enqueued_ms(&self) -> u64 {
        match self {
            Task::Image(task) => task.enqueued_ms,
            Task::Strip(task) => task.enqueued_ms,
        }
    }

    /// The failed record of a job whose own record the store lost, rebuilt from what the
    /// task knows (the size of a whole-image job's upload, or its dimensions, are not in it).
    pub fn lost_record(&self) -> JobRecord {
        let (strips, options, compression, size, cut) = match self {
            Task::Image(t) => {
                let cut = if t.strips > 1 { Cut::DecodeAndSplit } else { Cut::Whole };
                (t.strips, t.options, t.compression, (0, 0), cut)
            }
            Task::Strip(t) => {
                let cut = match t.source {
                    StripSource::Rows { .. } => Cut::DecodeAndSplit,
                    StripSource::Jpeg { .. } => Cut::RestartIntervals,
                };
                (t.strips, t.options, t.compression, (t.width, t.image_height), cut)
            }
        };
        JobRecord {
            id: self.job_id().clone(),
            state: JobState::Failed,
            strips_total: strips,
            width: size.0,
            height: size.1,
            input_bytes: 0,
            result_bytes: None,
            options,
            timings: Timings::default(),
            error: Some(job_lost()),
            created_ms: self.enqueued_ms(),
            compression,
            cut,
            notes: Vec::new(),
            owner: None,
            threshold_used: None,
        }
    }

    /// What to call the task's work in messages: "the image" or "strip 2 of 4".
    pub fn describe(&self) -> String {
        match self {
            Task::Image(task) if task.strips > 1 => {
                format!("the decode of the image (into {} strips)", task.strips)
            }
            Task::Image(_) => "the image".to_owned(),
            Task::Strip(task) => format!("strip {} of {}", task.strip + 1, task.strips),
        }
    }
}

/// The whole-image task of a job: what to decode and how to filter it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageTask {
    /// The job.
    pub job_id: JobId,
    /// Store key of the upload's bytes.
    pub upload_key: String,
    /// Strips to cut: 1 for a whole-image job.
    pub strips: u32,
    /// Filter options.
    pub options: JobOptions,
    /// Deflate level.
    pub compression: u8,
    /// Largest image accepted, in pixels (the backend checked the header; the decoder checks
    /// again what it really finds).
    pub max_pixels: u64,
    /// Largest side accepted.
    pub max_dimension: u32,
    /// When it was published (ms since the epoch).
    pub enqueued_ms: u64,
}

/// Where a strip's input rows come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum StripSource {
    /// Decoded rows (own rows plus halo) stored under `key` by the worker that decoded the
    /// image.
    Rows {
        /// Store key of the rows.
        key: String,
    },
    /// Restart intervals of a JPEG upload, decoded by the worker itself: the headers are bytes
    /// `0..header_end` of the upload, the intervals' data bytes `scan_start..scan_end`.
    Jpeg {
        /// Store key of the upload.
        upload_key: String,
        /// End of the headers.
        header_end: u64,
        /// Start of the first interval's data.
        scan_start: u64,
        /// End of the last interval's data.
        scan_end: u64,
        /// Index of the first interval.
        first_interval: u64,
        /// Where the data may be cut into pieces that are read and decoded one after the other:
        /// `[offset, interval]` of each piece after the first (an interval that starts an MCU
        /// row). None: one piece.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pieces: Vec<[u64; 2]>,
    },
}

/// One strip's work order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripTask {
    /// The job.
    pub job_id: JobId,
    /// Strip index, from 0 at the top.
    pub strip: u32,
    /// Strips of the job.
    pub strips: u32,
    /// First output row of the strip.
    pub first_row: u32,
    /// Output rows of the strip.
    pub rows: u32,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub image_height: u32,
    /// Filter options.
    pub options: JobOptions,
    /// Deflate level.
    pub compression: u8,
    /// Where its input rows come from.
    pub source: StripSource,
    /// When it was published (ms since the epoch).
    pub enqueued_ms: u64,
}

impl StripTask {
    /// The task of one strip of a plan.
    pub fn new(
        job_id: &JobId,
        spec: &StripSpec,
        options: &JobOptions,
        compression: u8,
        source: StripSource,
    ) -> Self {
        StripTask {
            job_id: job_id.clone(),
            strip: spec.index as u32,
            strips: spec.count as u32,
            first_row: spec.first_row as u32,
            rows: spec.rows as u32,
            width: spec.width as u32,
            image_height: spec.image_height as u32,
            options: *options,
            compression,
            source,
            enqueued_ms: now_ms(),
        }
    }

    /// The kernel's view of the strip.
    pub fn spec(&self) -> StripSpec {
        StripSpec {
            index: self.strip as usize,
            count: self.strips as usize,
            first_row: self.first_row as usize,
            rows: self.rows as usize,
            width: self.width as usize,
            image_height: self.image_height as usize,
        }
    }
}
