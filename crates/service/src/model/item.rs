//! A batch item's work order ([`ItemTask`]), and the envelope ([`Message`]) that tells a queue
//! message of a job from one of a batch.
//!
//! An item task names its objects, not bytes: the source object (and the ETag it had when it
//! was listed), the output's key, and the options. The worker reads and writes the objects
//! itself; nothing of the image passes through the store or the backend.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{BatchId, ImageTask, JobOptions, StripTask, Task};

/// One item of a batch: compute the source object's edge map and write it as the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemTask {
    /// The batch.
    pub batch_id: BatchId,
    /// The item's place in the listing, from 0: its record's name in the store.
    pub seq: u64,
    /// The batch's source location (a URL).
    pub source: String,
    /// The source object's key under it.
    pub key: String,
    /// The source object's ETag when it was listed.
    pub etag: String,
    /// The batch's destination location (a URL).
    pub destination: String,
    /// The output's key under it.
    pub output: String,
    /// The options of every item of the batch.
    pub options: JobOptions,
    /// Deflate level.
    pub compression: u8,
    /// Largest image accepted, in pixels.
    pub max_pixels: u64,
    /// Largest side accepted.
    pub max_dimension: u32,
    /// Largest source object read, in bytes.
    pub max_bytes: u64,
    /// When it was published (ms since the epoch).
    pub enqueued_ms: u64,
}

/// The body of a queue message as it is written: a job's task or a batch's item.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Wire {
    Image(ImageTask),
    Strip(StripTask),
    Item(ItemTask),
}

/// An item task as the queue carries it, borrowed.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireItem<'a> {
    Item(&'a ItemTask),
}

impl ItemTask {
    /// The message body.
    pub fn to_body(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(&WireItem::Item(self)).expect("an item task serialises"))
    }

    /// What to call the item in messages.
    pub fn describe(&self) -> String {
        format!("item {} ({}) of batch {}", self.seq, self.key, self.batch_id)
    }
}

/// What a queue message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A task of a job (an upload).
    Job(Task),
    /// An item of a batch.
    Item(ItemTask),
}

impl Message {
    /// Reads a message body.
    pub fn parse(payload: &[u8]) -> Result<Message, serde_json::Error> {
        Ok(match serde_json::from_slice::<Wire>(payload)? {
            Wire::Image(task) => Message::Job(Task::Image(task)),
            Wire::Strip(task) => Message::Job(Task::Strip(task)),
            Wire::Item(task) => Message::Item(task),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_and_tasks_share_the_queue_and_are_told_apart() {
        let item = ItemTask {
            batch_id: BatchId::random(),
            seq: 7,
            source: "s3://in/p".into(),
            key: "a/b.jpg".into(),
            etag: "\"e\"".into(),
            destination: "s3://out".into(),
            output: "a/b.png".into(),
            options: JobOptions::default(),
            compression: 1,
            max_pixels: 1,
            max_dimension: 1,
            max_bytes: 1,
            enqueued_ms: 0,
        };
        assert_eq!(Message::parse(&item.to_body()).unwrap(), Message::Item(item));
        assert!(Message::parse(br#"{"kind":"other"}"#).is_err());
    }
}
