//! One item from object to object, as a batch's worker and `dsobel process` with URLs both do
//! it: the skip rule on the output's head (the source's read starts beside it and is dropped
//! when the output is current), then compute, and put the output with its stamp (the source's
//! ETag and the options digest, and the batch's id when a batch writes it).

use bytes::Bytes;
use dsobel_codec::{ProcessError, RunOptions, process_file};
use dsobel_objects::batch::{OptionsDigest, OutputStamp};
use dsobel_objects::{Key, Objects, StoreError as ObjectError};

use super::BATCH_METADATA;
use crate::error::{decode_code, object_store_code};
use crate::model::BatchId;

/// The objects of one item.
#[derive(Debug, Clone, Copy)]
pub struct ItemObjects<'a> {
    /// The source location.
    pub source: &'a Objects,
    /// The source object's key under it.
    pub key: &'a Key,
    /// The destination location.
    pub destination: &'a Objects,
    /// The output's key under it.
    pub output: &'a Key,
}

/// How an item ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemEnd {
    /// Computed and written from the source bytes with this ETag.
    Written {
        /// The ETag of the source bytes read.
        etag: String,
    },
    /// The output was current already; `ours` when the same batch wrote it (a redone item).
    Current {
        /// Whether the batch asking wrote it.
        ours: bool,
    },
}

/// Why an item did not end well.
#[derive(Debug)]
pub enum ItemStop {
    /// The object store did not answer: the same item may pass later.
    Unavailable(ObjectError),
    /// The item cannot pass: its stable code and message.
    Failed(&'static str, String),
    /// The computation crashed (a bug).
    Crashed(tokio::task::JoinError),
}

impl From<ObjectError> for ItemStop {
    fn from(e: ObjectError) -> Self {
        if e.is_transient() {
            ItemStop::Unavailable(e)
        } else {
            ItemStop::Failed(object_store_code(&e).as_str(), e.to_string())
        }
    }
}

/// Computes one item: skipped when its output is current for `listed_etag` and `digest`,
/// else read, computed with `run` on a blocking thread, and written with one atomic put.
pub async fn compute_object(
    objects: ItemObjects<'_>,
    listed_etag: &str,
    digest: &OptionsDigest,
    run: RunOptions,
    batch: Option<&BatchId>,
) -> Result<ItemEnd, ItemStop> {
    let ItemObjects { source, key, destination, output } = objects;
    // The source is read while the output's head is asked for (one wait instead of two), and
    // the read is dropped when the output turns out current.
    let (head, read) = (destination.head(output), source.get(key, run.limits.max_bytes));
    tokio::pin!(head, read);
    let mut read_early = None;
    let head = loop {
        tokio::select! {
            head = &mut head => break head,
            got = &mut read, if read_early.is_none() => read_early = Some(got),
        }
    };
    match head {
        Ok(head) if OutputStamp::new(listed_etag, digest.clone()).is_current(&head) => {
            let ours = batch.is_some_and(|id| head.metadata.get(BATCH_METADATA) == Some(id.as_str()));
            return Ok(ItemEnd::Current { ours });
        }
        Ok(_) | Err(ObjectError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let input = match read_early {
        Some(got) => got?,
        None => read.await?,
    };
    let etag = input.head.etag.clone();
    let file = match tokio::task::spawn_blocking(move || process_file(&input.bytes, &run)).await {
        Ok(Ok(done)) => done.bytes,
        Ok(Err(ProcessError::Decode(e))) => {
            return Err(ItemStop::Failed(decode_code(&e).as_str(), e.to_string()));
        }
        Ok(Err(ProcessError::Kernel(e))) => return Err(ItemStop::Failed("strip-failed", e.to_string())),
        Err(crashed) => return Err(ItemStop::Crashed(crashed)),
    };
    let mut metadata = OutputStamp::new(&etag, digest.clone()).metadata();
    if let Some(id) = batch {
        metadata.insert(BATCH_METADATA, id.as_str())?;
    }
    destination.put(output, Bytes::from(file), &metadata).await?;
    Ok(ItemEnd::Written { etag })
}
