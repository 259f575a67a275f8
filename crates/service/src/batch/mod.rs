//! Batches: every image under one location of object storage turned into an edge map under
//! another, without the image bytes passing through the backend or the store.
//!
//! - **Start** ([`Batches::start`]): the locations are checked against the allow-list
//!   (`DSOBEL_BATCH_STORES`) and each other, both are listed once (a missing bucket or refused
//!   credentials answer at once), then the record is written and this backend drives it.
//! - **Drive** (`driver`): the driving backend lists the source in key order and queues one
//!   [`ItemTask`] per image, holding back while the work queue is deeper than
//!   `DSOBEL_BATCH_QUEUE_AHEAD`; it stores where the listing is every few items. Once every item
//!   has ended it writes the manifest (streamed from the store's item lines, a page at a time)
//!   and freezes the counts. The driver holds a lease in the store; every backend sweeps the
//!   batches not over, and the first to find a lease gone (its backend stopped) drives the
//!   batch on from the stored position.
//! - **Items** (the worker's `item` module): a worker reads the source object, computes, and
//!   writes the output with one atomic put stamped with the source's ETag, the options digest
//!   and the batch id ([`compute_object`], which `dsobel process` with URLs calls too); it records the item's manifest line and counts it with
//!   [`record_item`], once however often the item is redone.
//! - **Cancel** ([`Batches::cancel`]): a mark in the store; the driver stops listing, the
//!   workers drop the batch's queued items, and the manifest lists the items that ended.

mod driver;
mod item;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dsobel_codec::Limits;
use dsobel_objects::manifest::{ItemStatus, ManifestEntry, manifest_key};
use dsobel_objects::{Objects, Stores, batch};
use dsobel_transport::TransportError;
use tokio_util::sync::CancellationToken;

use crate::background::Background;
use crate::error::{BatchError, StoreError};
use crate::jobs::rfc3339;
use crate::locks::lock;
use crate::model::{
    BatchCounts, BatchId, BatchLinks, BatchRecord, BatchRequest, BatchState, BatchStatus, ErrorCode,
    ItemTask, JobError, JobOptions, ReplicaId, now_ms,
};
use crate::transport::Transport;

pub use item::{ItemEnd, ItemObjects, ItemStop, compute_object};

/// The metadata name of the batch that wrote an output: a redone item whose output this
/// batch already wrote is `done`, not `skipped`.
pub const BATCH_METADATA: &str = "dsobel-batch";

/// Settings of the batches of one backend.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Decode limits of every item (`max_bytes`: the largest source object read).
    pub limits: Limits,
    /// Deflate level of PNG outputs.
    pub compression: u8,
    /// Tasks waiting in the work queue past which listing holds back.
    pub queue_ahead: u64,
    /// How long a batch's record and its items' lines are kept (refreshed as it goes).
    pub record_ttl: Duration,
    /// How long a driver's lease lasts without being renewed.
    pub lease: Duration,
    /// How often every backend looks for batches whose driver stopped.
    pub sweep_interval: Duration,
}

/// The batches of one backend: starting, reading and cancelling them, and driving those it
/// holds the lease of.
pub struct Batches {
    transport: Transport,
    stores: Arc<Stores>,
    config: BatchConfig,
    replica: ReplicaId,
    background: Background,
    /// The batches this backend drives now.
    driving: Mutex<HashSet<BatchId>>,
    /// Cancelled when the backend stops: drivers give their leases back.
    stop: CancellationToken,
}

impl Batches {
    /// The batches of a backend, over its transport and the object stores it may use.
    pub fn new(transport: Transport, stores: Arc<Stores>, config: BatchConfig) -> Arc<Batches> {
        Arc::new(Batches {
            transport,
            stores,
            config,
            replica: ReplicaId::random(),
            background: Background::new(),
            driving: Mutex::new(HashSet::new()),
            stop: CancellationToken::new(),
        })
    }

    /// The object stores, with their allow-list.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Checks a request's locations and starts the batch; an earlier batch with the same
    /// idempotency key is answered instead (its links, and `false`).
    pub async fn start(
        self: &Arc<Self>,
        request: BatchRequest,
        idempotency_key: Option<&str>,
    ) -> Result<(BatchLinks, bool), BatchError> {
        let source = self.stores.open(&request.source)?;
        let destination = self.stores.open(&request.destination)?;
        batch::check_batch_locations(source.location(), destination.location())?;
        let (listed, writable) = tokio::join!(source.check_source(), destination.health_check());
        listed?;
        writable?;
        let t = &self.transport;
        let id = BatchId::random();
        if let Some(key) = idempotency_key {
            let claim = t.keys.batch_idempotency(key);
            let ttl = self.config.record_ttl;
            if !t.store.put_if_absent(&claim, Bytes::from(id.to_string()), ttl).await? {
                let earlier = t.store.get(&claim).await?;
                let earlier = earlier.and_then(|v| BatchId::parse(std::str::from_utf8(&v).ok()?));
                let Some(earlier) = earlier else { return Err(BatchError::KeyPending) };
                let Some(record) = self.record(&earlier).await? else { return Err(BatchError::KeyPending) };
                return Ok((BatchLinks::of(&earlier, &record.manifest), false));
            }
        }
        let manifest = destination.location().url_of(&manifest_key(id.as_str())?);
        let mut options = request.options;
        options.fragments = None;
        let record = BatchRecord {
            id: id.clone(),
            source: source.location().to_string(),
            destination: destination.location().to_string(),
            options,
            state: BatchState::Listing,
            listed: 0,
            position: None,
            ignored: 0,
            final_counts: None,
            error: None,
            manifest: manifest.clone(),
            created_ms: now_ms(),
            ended_ms: None,
        };
        self.save(&record).await?;
        t.store.set_add(&t.keys.batches(), id.as_str(), self.config.record_ttl).await?;
        tracing::info!(batch_id = %id, source = %record.source, destination = %record.destination, "batch accepted");
        self.take_and_drive(&id).await?;
        Ok((BatchLinks::of(&id, &manifest), true))
    }

    /// The batch's status.
    pub async fn status(&self, id: &BatchId) -> Result<BatchStatus, BatchError> {
        let t = &self.transport;
        let values = t.store.get_many(&[t.keys.batch(id), t.keys.batch_cancel(id)]).await?;
        let [record, cancel] = <[Option<Bytes>; 2]>::try_from(values)
            .map_err(|v| StoreError::WrongCount { asked: 2, got: v.len() })?;
        let Some(record) = record else { return Err(BatchError::UnknownBatch(id.clone())) };
        let record = parse_record(id, &record)?;
        let counts = match record.final_counts {
            Some(counts) => counts,
            None => self.live_counts(&record).await?,
        };
        let cancelled_ms = cancel.and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok());
        let (state, error, ended_ms) = match (record.state, cancelled_ms) {
            (state, Some(at)) if !state.is_over() => (BatchState::Cancelled, Some(cancelled()), Some(at)),
            (state, _) => (state, record.error.clone(), record.ended_ms),
        };
        let elapsed = (ended_ms.unwrap_or_else(now_ms).saturating_sub(record.created_ms)) as f64 / 1e3;
        let rate = (elapsed > 0.0 && counts.ended() > 0).then(|| counts.ended() as f64 / elapsed);
        let eta = match (state, rate) {
            (BatchState::Running, Some(rate)) => {
                Some(counts.total.saturating_sub(counts.ended()) as f64 / rate)
            }
            _ => None,
        };
        Ok(BatchStatus {
            id: record.id,
            state,
            source: record.source,
            destination: record.destination,
            options: record.options,
            counts,
            rate_per_sec: rate,
            eta_secs: eta,
            manifest: record.manifest,
            error,
            created_at: rfc3339(record.created_ms),
            ended_at: ended_ms.map(rfc3339),
        })
    }

    /// Cancels the batch: no more items are queued or computed; the manifest lists those that
    /// ended. Answers its status (state `cancelled`).
    pub async fn cancel(&self, id: &BatchId) -> Result<BatchStatus, BatchError> {
        let status = self.status(id).await?;
        match status.state {
            BatchState::Cancelled => return Ok(status),
            state if state.is_over() => return Err(BatchError::AlreadyOver { id: id.clone(), state }),
            _ => {}
        }
        let t = &self.transport;
        let at = Bytes::from(now_ms().to_string());
        t.store.put_if_absent(&t.keys.batch_cancel(id), at, self.config.record_ttl).await?;
        tracing::info!(batch_id = %id, "batch cancelled");
        self.status(id).await
    }

    /// Stops driving: each driver gives its lease back, so another backend drives its batch
    /// on at once.
    pub async fn stop(&self, grace: Duration) {
        self.stop.cancel();
        self.background.stop(grace).await;
    }

    async fn record(&self, id: &BatchId) -> Result<Option<BatchRecord>, BatchError> {
        let t = &self.transport;
        match t.store.get(&t.keys.batch(id)).await? {
            Some(bytes) => Ok(Some(parse_record(id, &bytes)?)),
            None => Ok(None),
        }
    }

    async fn save(&self, record: &BatchRecord) -> Result<(), BatchError> {
        let t = &self.transport;
        let json = serde_json::to_vec(record).expect("a batch record serialises");
        t.store.put(&t.keys.batch(&record.id), Bytes::from(json), self.config.record_ttl).await?;
        Ok(())
    }

    /// The counts of a batch not over, from its items' sets.
    async fn live_counts(&self, record: &BatchRecord) -> Result<BatchCounts, TransportError> {
        let t = &self.transport;
        let id = &record.id;
        let [done, failed, skipped] =
            [ItemStatus::Done, ItemStatus::Failed, ItemStatus::Skipped].map(|s| t.keys.batch_ended(id, s));
        let (done, failed, skipped) =
            tokio::try_join!(t.store.hash_len(&done), t.store.hash_len(&failed), t.store.hash_len(&skipped))?;
        Ok(BatchCounts { total: record.listed, done, failed, skipped })
    }

    fn open_locations(&self, record: &BatchRecord) -> Result<(Objects, Objects), dsobel_objects::StoreError> {
        Ok((self.stores.open(&record.source)?, self.stores.open(&record.destination)?))
    }

    fn is_driving(&self, id: &BatchId) -> bool {
        lock(&self.driving, "batches driven").contains(id)
    }
}

/// The error of a cancelled batch.
fn cancelled() -> JobError {
    JobError::new(ErrorCode::Cancelled, "the batch was cancelled")
}

fn parse_record(id: &BatchId, bytes: &[u8]) -> Result<BatchRecord, BatchError> {
    serde_json::from_slice(bytes).map_err(|source| {
        BatchError::Store(StoreError::Unreadable {
            what: "batch record",
            id: crate::model::JobId::parse(id.as_str()).expect("a batch id has a job id's shape"),
            source,
        })
    })
}

/// The options digest an output of a batch with `options` is stamped with.
pub fn options_digest(options: &JobOptions) -> batch::OptionsDigest {
    let operator = options.operator();
    let (ksize, low, high) =
        (operator.ksize.to_string(), operator.low.to_string(), operator.high.to_string());
    let threshold = operator.threshold.to_string();
    batch::options_digest([
        ("output", operator.output.as_str()),
        ("kernel", operator.kernel.as_str()),
        ("ksize", ksize.as_str()),
        ("magnitude", operator.magnitude.as_str()),
        ("threshold", threshold.as_str()),
        ("low", low.as_str()),
        ("high", high.as_str()),
        ("format", operator.format.as_str()),
    ])
}

/// The manifest line of an item that failed, naming its objects as far as their names parse.
pub fn failed_entry(task: &ItemTask, code: &str, message: &str) -> ManifestEntry {
    use dsobel_objects::{Key, Location};
    let full = |location: &str, key: &str| {
        let location = Location::parse(location).ok()?;
        Some(location.object_name(&Key::parse(key).ok()?))
    };
    ManifestEntry {
        source_key: full(&task.source, &task.key).unwrap_or_else(|| task.key.clone()),
        source_etag: Some(task.etag.clone()),
        output_key: full(&task.destination, &task.output),
        status: ItemStatus::Failed,
        error_code: Some(code.to_owned()),
        error_message: Some(message.to_owned()),
    }
}

/// Records how an item ended: its manifest line under its number (the first record wins: a
/// redone item keeps the line of its first end) and its number in the set of its status.
/// Answers the status recorded.
pub async fn record_item(
    transport: &Transport,
    task: &ItemTask,
    entry: &ManifestEntry,
    ttl: Duration,
) -> Result<ItemStatus, TransportError> {
    let t = transport;
    let key = t.keys.batch_item(&task.batch_id, task.seq);
    let line = serde_json::to_vec(entry).expect("a manifest line serialises");
    let status = if t.store.put_if_absent(&key, Bytes::from(line), ttl).await? {
        entry.status
    } else {
        let earlier = t.store.get(&key).await?;
        earlier
            .and_then(|line| serde_json::from_slice::<ManifestEntry>(&line).ok())
            .map_or(entry.status, |e| e.status)
    };
    let ended = t.keys.batch_ended(&task.batch_id, status);
    t.store.hash_put(&ended, &task.seq.to_string(), Bytes::new(), ttl).await?;
    Ok(status)
}
