//! Driving a batch: list its source and queue its items (held back by the queue's depth),
//! follow them until every one has ended, write the manifest, freeze the counts. One backend
//! drives a batch at a time, under a lease in the store that it renews; a backend that finds a
//! batch without a lease (its driver stopped) takes it and goes on from the stored position.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_objects::batch::{ItemPlan, OutputExtension, plan_item};
use dsobel_objects::manifest::{ManifestEntry, ManifestWriter};
use dsobel_objects::{Key, ObjectInfo, Objects, StoreError as ObjectError};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{Batches, cancelled, record_item};
use crate::error::{BatchError, StoreError, error_chain, object_store_code};
use crate::locks::lock;
use crate::model::{BatchId, BatchRecord, BatchState, ItemTask, JobError, now_ms};

/// Items between two saves of the listing's position (and checks of the queue's depth).
const SAVE_EVERY_ITEMS: u32 = 16;
/// Longest time between two saves of the listing's position.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// How often a driver reads its items' counts once every item is queued.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);
/// How often listing looks at the queue again while it is too deep.
const BACKPRESSURE_WAIT: Duration = Duration::from_millis(100);
/// Item lines read from the store at a time while the manifest is written.
const MANIFEST_PAGE: u64 = 512;

/// How a listing ended.
#[derive(Debug, PartialEq, Eq)]
enum Listed {
    /// Every item is queued.
    All,
    /// The batch was cancelled meanwhile.
    Cancelled,
}

impl Batches {
    /// Takes the batch's lease and drives it in the background, unless this backend drives it
    /// already or another holds the lease.
    pub(super) async fn take_and_drive(self: &Arc<Self>, id: &BatchId) -> Result<(), BatchError> {
        if self.is_driving(id) || self.stop.is_cancelled() {
            return Ok(());
        }
        let t = &self.transport;
        let me = Bytes::from(self.replica.to_string());
        if !t.store.put_if_absent(&t.keys.batch_driver(id), me, self.config.lease).await? {
            return Ok(());
        }
        lock(&self.driving, "batches driven").insert(id.clone());
        let (batches, id) = (self.clone(), id.clone());
        self.background.spawn(async move { batches.drive(id).await });
        Ok(())
    }

    /// Looks for batches whose driver stopped, until `stop`.
    pub async fn run_sweeper(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.sweep_interval) => {}
                _ = stop.cancelled() => return,
            }
            let t = &self.transport;
            let ids = match t.store.set_members(&t.keys.batches()).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::debug!(error = %e, "could not read the batches not over");
                    continue;
                }
            };
            for id in ids.iter().filter_map(|id| BatchId::parse(id)) {
                if let Err(e) = self.take_and_drive(&id).await {
                    tracing::debug!(batch_id = %id, error = %error_chain(&e), "could not take a batch over");
                }
            }
        }
    }

    async fn drive(self: Arc<Self>, id: BatchId) {
        tracing::info!(batch_id = %id, "driving the batch");
        let stopped = tokio::select! {
            _ = self.run(&id) => false,
            _ = self.keep_lease(&id) => false,
            _ = self.stop.cancelled() => true,
        };
        lock(&self.driving, "batches driven").remove(&id);
        let t = &self.transport;
        let lease = t.keys.batch_driver(&id);
        let mine =
            t.store.get(&lease).await.ok().flatten().is_some_and(|v| v == self.replica.as_str().as_bytes());
        if mine {
            let _ = t.store.delete(&[lease]).await;
        }
        if stopped {
            tracing::info!(batch_id = %id, "stopped driving the batch; another backend goes on with it");
        }
    }

    /// Renews the lease; returns when it is lost (another backend took the batch, or the store
    /// did not answer for as long as a lease lasts).
    async fn keep_lease(&self, id: &BatchId) {
        let t = &self.transport;
        let key = t.keys.batch_driver(id);
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.config.lease / 3).await;
            match t.store.get(&key).await {
                Ok(Some(owner)) if owner != self.replica.as_str().as_bytes() => {
                    tracing::warn!(batch_id = %id, "another backend drives this batch now");
                    return;
                }
                Ok(_) => {
                    let me = Bytes::from(self.replica.to_string());
                    if t.store.put(&key, me, self.config.lease).await.is_ok() {
                        renewed = Instant::now();
                    }
                }
                Err(e) => tracing::debug!(batch_id = %id, error = %e, "could not renew the lease"),
            }
            if renewed.elapsed() > self.config.lease {
                tracing::warn!(batch_id = %id, "the lease lapsed while the store did not answer");
                return;
            }
        }
    }

    /// Drives the batch to its end, trying again after transient failures; a lasting one
    /// fails the batch.
    async fn run(&self, id: &BatchId) {
        loop {
            let error = match self.run_once(id).await {
                Ok(()) => return,
                Err(e) => e,
            };
            let transient = match &error {
                BatchError::Objects(e) => e.is_transient(),
                BatchError::Store(StoreError::Transport(_)) | BatchError::KeyPending => true,
                _ => false,
            };
            if transient {
                tracing::warn!(batch_id = %id, error = %error_chain(&error), "batch held up; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            tracing::error!(batch_id = %id, error = %error_chain(&error), "the batch failed");
            let code = match &error {
                BatchError::Objects(e) => object_store_code(e),
                _ => crate::model::ErrorCode::Internal,
            };
            let failure = JobError::new(code, error.to_string());
            while let Err(e) = self.end(id, BatchState::Failed, Some(failure.clone())).await {
                tracing::warn!(batch_id = %id, error = %error_chain(&e), "could not record the batch's failure yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            return;
        }
    }

    async fn run_once(&self, id: &BatchId) -> Result<(), BatchError> {
        let t = &self.transport;
        let Some(mut record) = self.record(id).await? else {
            t.store.set_remove(&t.keys.batches(), id.as_str()).await?;
            return Ok(());
        };
        if record.state.is_over() {
            t.store.set_remove(&t.keys.batches(), id.as_str()).await?;
            return Ok(());
        }
        let (source, destination) = self.open_locations(&record)?;
        if record.state == BatchState::Listing && self.list(&mut record, &source).await? == Listed::Cancelled
        {
            return self.finish(record, &destination, BatchState::Cancelled).await;
        }
        loop {
            if self.is_cancelled(id).await? {
                return self.finish(record, &destination, BatchState::Cancelled).await;
            }
            if self.live_counts(&record).await?.ended() >= record.listed {
                return self.finish(record, &destination, BatchState::Done).await;
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }

    async fn is_cancelled(&self, id: &BatchId) -> Result<bool, BatchError> {
        let t = &self.transport;
        Ok(t.store.get(&t.keys.batch_cancel(id)).await?.is_some())
    }

    /// Lists the source from the stored position and queues its items.
    async fn list(&self, record: &mut BatchRecord, source: &Objects) -> Result<Listed, BatchError> {
        let extension = OutputExtension::new(record.options.format.extension())?;
        let after = record.position.as_deref().map(Key::parse).transpose()?;
        let mut listing = match &after {
            Some(key) => source.list_after(key),
            None => source.list(),
        };
        let (mut unsaved, mut saved_at) = (0u32, Instant::now());
        while let Some(object) = listing.next().await {
            let object = object?;
            match plan_item(&object.key, &extension) {
                Ok(ItemPlan::Ignore(reason)) => {
                    tracing::debug!(key = %object.key, %reason, "not an item");
                    record.ignored += 1;
                }
                Ok(ItemPlan::Process { output }) => {
                    self.queue_item(record, &object, Ok(output)).await?;
                    record.listed += 1;
                }
                Err(e) => {
                    self.queue_item(record, &object, Err(e)).await?;
                    record.listed += 1;
                }
            }
            record.position = Some(object.key.to_string());
            unsaved += 1;
            if unsaved >= SAVE_EVERY_ITEMS || saved_at.elapsed() >= SAVE_EVERY {
                self.save(record).await?;
                (unsaved, saved_at) = (0, Instant::now());
                if self.hold_back(&record.id).await? {
                    return Ok(Listed::Cancelled);
                }
            }
        }
        record.state = BatchState::Running;
        self.save(record).await?;
        tracing::info!(batch_id = %record.id, items = record.listed, ignored = record.ignored, "batch listed");
        Ok(Listed::All)
    }

    /// Waits while the work queue holds more than the allowance; true when the batch was
    /// cancelled.
    async fn hold_back(&self, id: &BatchId) -> Result<bool, BatchError> {
        loop {
            if self.is_cancelled(id).await? {
                return Ok(true);
            }
            if self.transport.queue.depth().await? <= self.config.queue_ahead {
                return Ok(false);
            }
            tokio::time::sleep(BACKPRESSURE_WAIT).await;
        }
    }

    /// Queues one item, or records it failed at once when it cannot be an item (an output
    /// name too long, a source larger than the limit).
    async fn queue_item(
        &self,
        record: &BatchRecord,
        object: &ObjectInfo,
        output: Result<Key, ObjectError>,
    ) -> Result<(), BatchError> {
        let limits = self.config.limits;
        let task = ItemTask {
            batch_id: record.id.clone(),
            seq: record.listed,
            source: record.source.clone(),
            key: object.key.to_string(),
            etag: object.etag.clone(),
            destination: record.destination.clone(),
            output: output.as_ref().map(|k| k.to_string()).unwrap_or_default(),
            options: record.options,
            compression: self.config.compression,
            max_pixels: limits.max_pixels,
            max_dimension: limits.max_dimension,
            max_bytes: limits.max_bytes,
            enqueued_ms: now_ms(),
        };
        let refusal = match output {
            Err(e) => Some((object_store_code(&e).as_str(), e.to_string())),
            Ok(_) if object.size > limits.max_bytes => Some::<(&str, String)>((
                "payload-too-large",
                format!("the object has {} bytes, over the limit of {} bytes", object.size, limits.max_bytes),
            )),
            Ok(_) => None,
        };
        match refusal {
            Some((code, message)) => {
                let source = self.stores.open(&record.source)?;
                let entry = ManifestEntry::failed(
                    source.location(),
                    &object.key,
                    Some(&object.etag),
                    None,
                    code,
                    &message,
                );
                record_item(&self.transport, &task, &entry, self.config.record_ttl).await?;
            }
            None => self.transport.queue.publish(task.to_body()).await?,
        }
        Ok(())
    }

    /// Writes the manifest from the items' lines, then ends the batch.
    async fn finish(
        &self,
        record: BatchRecord,
        destination: &Objects,
        state: BatchState,
    ) -> Result<(), BatchError> {
        let t = &self.transport;
        let id = &record.id;
        let mut manifest = ManifestWriter::create(destination, id.as_str()).await?;
        let mut first = 0;
        while first < record.listed {
            let last = (first + MANIFEST_PAGE).min(record.listed);
            let keys: Vec<String> = (first..last).map(|seq| t.keys.batch_item(id, seq)).collect();
            for line in t.store.get_many(&keys).await?.into_iter().flatten() {
                match serde_json::from_slice::<ManifestEntry>(&line) {
                    Ok(entry) => manifest.append(&entry).await?,
                    Err(e) => {
                        tracing::warn!(batch_id = %id, error = %e, "an unreadable item line was left out")
                    }
                }
            }
            first = last;
        }
        let lines = manifest.finish().await?;
        tracing::info!(batch_id = %id, lines, state = state.as_str(), "batch over; manifest written");
        let error = (state == BatchState::Cancelled).then(cancelled);
        self.end(id, state, error).await
    }

    /// Freezes the counts, records the end, and deletes the items' lines and sets.
    async fn end(&self, id: &BatchId, state: BatchState, error: Option<JobError>) -> Result<(), BatchError> {
        let t = &self.transport;
        let Some(mut record) = self.record(id).await? else { return Ok(()) };
        let cancelled_at = match t.store.get(&t.keys.batch_cancel(id)).await? {
            Some(v) => std::str::from_utf8(&v).ok().and_then(|v| v.parse().ok()),
            None => None,
        };
        record.final_counts = Some(self.live_counts(&record).await?);
        record.state = state;
        record.error = error;
        record.ended_ms = Some(cancelled_at.unwrap_or_else(now_ms));
        self.save(&record).await?;
        t.store.put(&t.keys.batch_over(id), Bytes::from_static(b"1"), self.config.record_ttl).await?;
        t.store.set_remove(&t.keys.batches(), id.as_str()).await?;
        let mut first = 0;
        while first < record.listed {
            let last = (first + MANIFEST_PAGE).min(record.listed);
            let keys: Vec<String> = (first..last).map(|seq| t.keys.batch_item(id, seq)).collect();
            t.store.delete(&keys).await?;
            first = last;
        }
        use dsobel_objects::manifest::ItemStatus::{Done, Failed, Skipped};
        let sets = [Done, Failed, Skipped].map(|status| t.keys.batch_ended(id, status));
        t.store.delete(&sets).await?;
        Ok(())
    }
}
