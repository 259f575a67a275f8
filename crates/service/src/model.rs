//! What is stored and sent: job records, strip tasks, strip results, and their keys.
//!
//! Everything a job needs lives in the store under `{namespace}:job:{id}…` keys with a TTL, so
//! any backend replica (or a restarted one) can pick a job up. Messages on the queue are small
//! JSON tasks ([`Task`]) that point at their data in the store (the compressed upload, a byte
//! range of it, or decoded rows); no message carries pixels.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use dsobel_kernel::png::EncodedStrip;
use dsobel_kernel::{FilterParams, Magnitude, OutputMode, StripSpec};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (the clock shared by backend and workers).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A job's id: 128 random bits as 32 lowercase hex digits. It is checked once, where it
/// enters (a path of the API, a task message, a wake-up, a stored record), so no other string
/// reaches the store as a job's key; inside, it reads as a `&str`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    /// A new unguessable id.
    pub fn random() -> JobId {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the operating system's random source works");
        JobId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// `id` if it has the shape of a job id.
    pub fn parse(id: &str) -> Option<JobId> {
        let valid = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        valid.then(|| JobId(id.to_owned()))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JobId {
    type Error = String;

    fn try_from(id: String) -> Result<JobId, String> {
        JobId::parse(&id)
            .ok_or_else(|| format!("{:?} is not a job id", id.chars().take(64).collect::<String>()))
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

impl std::ops::Deref for JobId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for JobId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The options of one job, as the API shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOptions {
    /// Threshold T.
    pub threshold: u16,
    /// `l2` or `l1`.
    #[serde(with = "magnitude_words")]
    pub magnitude: Magnitude,
    /// `binary` or `magnitude`.
    #[serde(with = "output_words")]
    pub output: OutputMode,
    /// Strip count asked for, if any.
    pub fragments: Option<u32>,
}

impl JobOptions {
    /// The kernel parameters.
    pub fn params(&self) -> FilterParams {
        FilterParams { threshold: self.threshold, magnitude: self.magnitude, output: self.output }
    }
}

macro_rules! words {
    ($module:ident, $ty:ty) => {
        mod $module {
            use serde::{Deserialize, Deserializer, Serializer, de::Error};
            pub fn serialize<S: Serializer>(v: &$ty, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(v.as_str())
            }
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let word = String::deserialize(d)?;
                word.parse().map_err(D::Error::custom)
            }
        }
    };
}
words!(magnitude_words, dsobel_kernel::Magnitude);
words!(output_words, dsobel_kernel::OutputMode);

/// The life of a job, why it failed and how long its stages took: the API's own types,
/// shared with its client.
pub use dsobel_client::{JobError, JobState, Timings};

/// The error code a cancelled job carries (its failure record says why it ended).
pub const CANCELLED: &str = "cancelled";

/// The error code of a job one of whose tasks could not be processed: a kernel refusal, a
/// task that contradicts its job, or a task dead-lettered after its deliveries ran out.
pub const STRIP_FAILED: &str = "strip-failed";

/// The error code of a job whose upload expired from the store before a worker took it.
pub const INPUT_EXPIRED: &str = "input-expired";

/// The error code of a job the store lost before it ended (Redis restarted without its data,
/// or was emptied): nothing of it is left to finish, and it has to be submitted again.
pub const JOB_LOST: &str = "job-lost";

/// Why a job the store lost ended, in words a person can act on.
pub fn job_lost() -> JobError {
    JobError {
        code: JOB_LOST.into(),
        message: "the result store restarted or was emptied and lost this job before it finished; \
                  submit it again"
            .into(),
    }
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
    /// How the job was cut: `whole`, `restart-intervals` (strips read from a JPEG's restart
    /// intervals) or `decode-and-split` (strips handed out by the worker that decodes).
    #[serde(default)]
    pub cut: String,
}

/// A work order, the body of one queue message. Every task names its job and points at its
/// data in the store; no message carries pixels.
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

    /// The message body.
    pub fn to_body(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a task serialises"))
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
                let cut = if t.strips > 1 { CUT_DECODE } else { CUT_WHOLE };
                (t.strips, t.options, t.compression, (0, 0), cut)
            }
            Task::Strip(t) => {
                let cut = match t.source {
                    StripSource::Rows { .. } => CUT_DECODE,
                    StripSource::Jpeg { .. } => CUT_RESTART,
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
            cut: cut.to_owned(),
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

impl JobRecord {
    /// Whether one worker does the whole job (nothing to stitch, no strips to count).
    pub fn is_whole(&self) -> bool {
        self.cut == CUT_WHOLE
    }
}

/// [`JobRecord::cut`] of a whole-image job.
pub const CUT_WHOLE: &str = "whole";
/// [`JobRecord::cut`] of a job whose strips are decoded by one worker and handed out.
pub const CUT_DECODE: &str = "decode-and-split";
/// [`JobRecord::cut`] of a job whose strips are read from a JPEG's restart intervals.
pub const CUT_RESTART: &str = "restart-intervals";

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

/// A finished strip as stored by a worker: its PNG segment and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripResult {
    /// The PNG segment.
    pub encoded: EncodedStrip,
    /// Time the task waited in the queue.
    pub queue_wait: Duration,
    /// Filter time.
    pub filter: Duration,
    /// Encode time.
    pub encode: Duration,
}

const STRIP_RESULT_MAGIC: &[u8; 4] = b"DSR1";
/// Magic, adler32, raw length and three durations: 4 + 4 + 8 + 3 × 8 bytes.
const STRIP_RESULT_HEADER: usize = 40;

impl StripResult {
    /// Serialises: magic, adler32, raw length, three durations in µs, then the chunks.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(STRIP_RESULT_HEADER + self.encoded.chunks.len());
        out.put_slice(STRIP_RESULT_MAGIC);
        out.put_u32(self.encoded.adler32);
        out.put_u64(self.encoded.raw_len);
        for d in [self.queue_wait, self.filter, self.encode] {
            out.put_u64(d.as_micros() as u64);
        }
        out.put_slice(&self.encoded.chunks);
        out.freeze()
    }

    /// Parses [`StripResult::to_bytes`]; `None` when the bytes are not a strip result.
    pub fn from_bytes(bytes: &[u8]) -> Option<StripResult> {
        let header = bytes.get(..STRIP_RESULT_HEADER)?;
        if &header[..4] != STRIP_RESULT_MAGIC {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(header[i..i + 8].try_into().expect("8 bytes"));
        Some(StripResult {
            encoded: EncodedStrip {
                adler32: u32::from_be_bytes(header[4..8].try_into().expect("4 bytes")),
                raw_len: u64_at(8),
                chunks: bytes[STRIP_RESULT_HEADER..].to_vec(),
            },
            queue_wait: Duration::from_micros(u64_at(16)),
            filter: Duration::from_micros(u64_at(24)),
            encode: Duration::from_micros(u64_at(32)),
        })
    }
}

/// Store keys and notifier messages of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    namespace: String,
}

impl Keys {
    /// Keys under `namespace` (e.g. `dsobel`).
    pub fn new(namespace: &str) -> Self {
        Keys { namespace: namespace.to_owned() }
    }

    /// The job record.
    pub fn job(&self, id: &str) -> String {
        format!("{}:job:{id}", self.namespace)
    }
    /// The upload's bytes.
    pub fn upload(&self, id: &str) -> String {
        format!("{}:job:{id}:upload", self.namespace)
    }
    /// A strip's input rows (own rows plus halo), stored by the worker that decoded them.
    pub fn input(&self, id: &str, strip: u32) -> String {
        format!("{}:job:{id}:in:{strip}", self.namespace)
    }
    /// The hash of finished strips (field = strip index).
    pub fn strips(&self, id: &str) -> String {
        format!("{}:job:{id}:strips", self.namespace)
    }
    /// The finished PNG.
    pub fn result(&self, id: &str) -> String {
        format!("{}:job:{id}:result", self.namespace)
    }
    /// The lock taken by the backend that stitches.
    pub fn stitch_lock(&self, id: &str) -> String {
        format!("{}:job:{id}:stitch", self.namespace)
    }
    /// Set by the worker that starts an image task, so that `/status` says `processing`.
    pub fn started(&self, id: &str) -> String {
        format!("{}:job:{id}:started", self.namespace)
    }
    /// The job an idempotency key made.
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}:idempotency:{key}", self.namespace)
    }
    /// A job's failure, written once by whoever sees it first.
    pub fn failure(&self, id: &str) -> String {
        format!("{}:job:{id}:failure", self.namespace)
    }
    /// The set of jobs not yet stitched or failed.
    pub fn pending(&self) -> String {
        format!("{}:pending", self.namespace)
    }
}

/// A wake-up on the notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A strip of the job was stored.
    StripDone(JobId),
    /// The job's PNG is ready.
    Done(JobId),
    /// The job failed.
    Failed(JobId),
}

impl Event {
    /// The message text.
    pub fn encode(&self) -> String {
        match self {
            Event::StripDone(id) => format!("strip {id}"),
            Event::Done(id) => format!("done {id}"),
            Event::Failed(id) => format!("failed {id}"),
        }
    }

    /// Parses a message; `None` for anything else.
    pub fn decode(message: &str) -> Option<Event> {
        let (kind, id) = message.split_once(' ')?;
        let id = JobId::parse(id)?;
        match kind {
            "strip" => Some(Event::StripDone(id)),
            "done" => Some(Event::Done(id)),
            "failed" => Some(Event::Failed(id)),
            _ => None,
        }
    }

    /// The job the event is about.
    pub fn job_id(&self) -> &JobId {
        match self {
            Event::StripDone(id) | Event::Done(id) | Event::Failed(id) => id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_results_round_trip() {
        let r = StripResult {
            encoded: EncodedStrip { chunks: vec![1, 2, 3], adler32: 0xdead_beef, raw_len: 77 },
            queue_wait: Duration::from_millis(12),
            filter: Duration::from_micros(345),
            encode: Duration::from_micros(678),
        };
        assert_eq!(StripResult::from_bytes(&r.to_bytes()), Some(r));
        assert_eq!(StripResult::from_bytes(b"nonsense"), None);
    }

    #[test]
    fn job_ids_are_random_and_recognised() {
        let (a, b) = (JobId::random(), JobId::random());
        assert_ne!(a, b);
        assert_eq!(JobId::parse(&a), Some(a.clone()));
        assert!(JobId::parse("../../etc/passwd").is_none() && JobId::parse(&a.to_uppercase()).is_none());
        // Stored and sent ids are checked when read back too.
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<JobId>(&json).unwrap(), a);
        assert!(serde_json::from_str::<JobId>("\"../x\"").is_err());
    }

    #[test]
    fn events_round_trip() {
        let id = JobId::random;
        for e in [Event::StripDone(id()), Event::Done(id()), Event::Failed(id())] {
            assert_eq!(Event::decode(&e.encode()), Some(e));
        }
        assert_eq!(Event::decode("hello"), None);
    }
}
