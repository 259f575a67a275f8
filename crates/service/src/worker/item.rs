//! Batch items: read the source object, compute, write the output with one atomic put, record
//! the item's line and count it. Nothing of the image passes through the store.
//!
//! A redone item (a redelivery, a driver that queued it again after a takeover) finds its
//! line already recorded and is counted once; one whose output this batch already wrote (a
//! worker that stopped between the put and the record) is recorded `done` without computing
//! again, so each output is written once. A store that does not answer hands the item back to
//! the queue; anything else that stops it is recorded as its failure, and the batch goes on.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_codec::{Limits, RunOptions};
use dsobel_kernel::png::CompressionLevel;
use dsobel_objects::manifest::ManifestEntry;
use dsobel_objects::{Key, Objects, StoreError as ObjectError};
use dsobel_transport::Delivery;

use super::setback::Setback;
use super::{Outcome, Worker};
use crate::batch::{
    ItemEnd, ItemObjects, ItemStop, compute_object, failed_entry, options_digest, record_item,
};
use crate::error::{Crashed, StoreError, error_chain};
use crate::model::{ItemTask, status_word};

/// How long a worker tries an item again while its object store does not answer, before it
/// hands the item back anyway.
const OBJECT_STORE_HOLD: Duration = Duration::from_secs(60);

/// What stopped an item.
enum Stop {
    /// It may pass: back to the queue.
    Retry(Setback),
    /// It cannot pass: recorded failed with this code and message.
    Fail(&'static str, String),
}

impl From<ObjectError> for Stop {
    fn from(e: ObjectError) -> Self {
        match ItemStop::from(e) {
            ItemStop::Failed(code, message) => Stop::Fail(code, message),
            _ => Stop::Retry(Setback::Stopped("the object store did not answer")),
        }
    }
}

/// The item's objects, opened.
struct Opened {
    source: Objects,
    key: Key,
    destination: Objects,
    output: Key,
}

impl Worker {
    pub(super) async fn handle_item(&self, task: ItemTask, delivery: Delivery) -> Outcome {
        let t = &self.transport;
        let (id, seq) = (&task.batch_id, task.seq);
        let keys = [t.keys.batch_over(id), t.keys.batch_cancel(id), t.keys.batch_item(id, seq)];
        let [over, cancel, line] = match t.store.get_many(&keys).await.map(<[Option<Bytes>; 3]>::try_from) {
            Ok(Ok(values)) => values,
            Ok(Err(v)) => {
                let wrong = StoreError::WrongCount { asked: 3, got: v.len() };
                return self.requeue(delivery, &wrong.into()).await;
            }
            Err(e) => return self.requeue(delivery, &e.into()).await,
        };
        if over.is_some() || cancel.is_some() {
            tracing::debug!("the batch is over or cancelled; dropping the item");
            let _ = delivery.ack().await;
            return Outcome::Skipped;
        }
        if let Some(line) = line {
            // Ended before (a redelivery): counted again in its own status, which changes nothing.
            let earlier = serde_json::from_slice::<ManifestEntry>(&line).ok();
            if let Some(entry) = earlier
                && let Err(e) = record_item(t, &task, &entry, self.batch_ttl()).await
            {
                return self.requeue(delivery, &e.into()).await;
            }
            let _ = delivery.ack().await;
            return Outcome::Skipped;
        }
        self.drill_delay().await;
        // An object store that does not answer (restarting, throttling) is waited for here,
        // trying the item again, rather than by handing it back: each hand-back counts against
        // the item's delivery limit, and a restart can outlast a few of them.
        let (held, mut pause) = (Instant::now(), Duration::from_millis(500));
        let entry = loop {
            match self.compute_item(&task).await {
                Ok(entry) => break entry,
                Err(Stop::Fail(code, message)) => {
                    tracing::warn!(code, reason = %message, "batch item failed");
                    break failed_entry(&task, code, &message);
                }
                Err(Stop::Retry(setback @ Setback::Crashed(_))) => {
                    return self.requeue(delivery, &setback).await;
                }
                Err(Stop::Retry(setback)) => {
                    if held.elapsed() >= OBJECT_STORE_HOLD || self.shutdown.is_cancelled() {
                        return self.requeue(delivery, &setback).await;
                    }
                    tracing::info!(reason = %setback, "the object store does not answer; trying the item again");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = self.shutdown.cancelled() => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        };
        match record_item(t, &task, &entry, self.batch_ttl()).await {
            Ok(status) => {
                let _ = delivery.ack().await;
                self.metrics.batch_item_ended(status_word(status));
                tracing::debug!(status = ?status, "batch item ended");
                Outcome::Done
            }
            Err(e) => self.requeue(delivery, &e.into()).await,
        }
    }

    /// How long a batch's item lines live: as long as its record.
    fn batch_ttl(&self) -> Duration {
        self.config.batch_ttl
    }

    fn open_item(&self, task: &ItemTask) -> Result<Opened, Stop> {
        let Some(stores) = &self.config.stores else {
            return Err(Stop::Fail(
                "store-not-allowed",
                "this worker may use no object store (DSOBEL_BATCH_STORES is empty)".into(),
            ));
        };
        Ok(Opened {
            source: stores.open(&task.source)?,
            key: Key::parse(&task.key)?,
            destination: stores.open(&task.destination)?,
            output: Key::parse(&task.output)?,
        })
    }

    /// Reads, computes and writes one item; answers its manifest line.
    async fn compute_item(&self, task: &ItemTask) -> Result<ManifestEntry, Stop> {
        let Opened { source, key, destination, output } = self.open_item(task)?;
        let run = RunOptions {
            options: task.options.operator(),
            limits: Limits {
                max_pixels: task.max_pixels,
                max_dimension: task.max_dimension,
                max_bytes: task.max_bytes,
            },
            strips: Some(1),
            compression: CompressionLevel(task.compression),
            overlap_decode: self.spare_core(),
        };
        let objects = ItemObjects { source: &source, key: &key, destination: &destination, output: &output };
        let digest = options_digest(&task.options);
        let (source, destination) = (source.location(), destination.location());
        match compute_object(objects, &task.etag, &digest, run, Some(&task.batch_id)).await {
            Ok(ItemEnd::Written { etag }) => {
                Ok(ManifestEntry::done(source, &key, &etag, destination, &output))
            }
            Ok(ItemEnd::Current { ours: true }) => {
                Ok(ManifestEntry::done(source, &key, &task.etag, destination, &output))
            }
            Ok(ItemEnd::Current { ours: false }) => {
                Ok(ManifestEntry::skipped(source, &key, &task.etag, destination, &output))
            }
            Err(ItemStop::Failed(code, message)) => Err(Stop::Fail(code, message)),
            Err(ItemStop::Unavailable(_)) => {
                Err(Stop::Retry(Setback::Stopped("the object store did not answer")))
            }
            Err(ItemStop::Crashed(source)) => {
                let crashed = Crashed { what: "the computation", source };
                tracing::error!(error = %error_chain(&crashed), "an item's computation crashed");
                Err(Stop::Retry(Setback::Crashed(crashed)))
            }
        }
    }
}
