//! Reading and settling job state in the store, shared by backends and workers.
//!
//! A job's truth is three things in the store: its record, the hash of finished strips, and
//! (once) a failure. The state shown to users is derived from them here, so every replica
//! answers the same.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::error::{JobsError, StoreError};
use crate::model::{CANCELLED, Event, JobError, JobId, JobRecord, JobState, Timings, job_lost};
use crate::transport::Transport;

/// What `/status` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobStatus {
    /// The job id.
    pub id: String,
    /// Queued, processing, done, failed or cancelled.
    pub state: JobState,
    /// Strips finished.
    pub strips_done: u32,
    /// Strips of the job.
    pub strips_total: u32,
    /// How the job was cut into tasks (`whole`, `restart-intervals`, `decode-and-split`).
    pub cut: String,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Upload size.
    pub input_bytes: u64,
    /// PNG size once done.
    pub result_bytes: Option<u64>,
    /// Options.
    pub options: crate::model::JobOptions,
    /// Stage durations in milliseconds.
    pub timings_ms: Timings,
    /// Why it failed.
    pub error: Option<JobError>,
    /// When the upload was accepted (RFC 3339, UTC).
    pub created_at: String,
}

fn parse_record(id: &str, bytes: &[u8]) -> Result<JobRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Unreadable {
        what: "record",
        id: id.to_owned(),
        source,
    })
}

fn to_json(what: &'static str, id: &str, value: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Unwritable { what, id: id.to_owned(), source })
}

/// Reads a job record.
pub async fn load_record(t: &Transport, id: &str) -> Result<Option<JobRecord>, StoreError> {
    t.store.get(&t.keys.job(id)).await?.map(|bytes| parse_record(id, &bytes)).transpose()
}

/// A job's record and its failure, if any, read in one round trip.
pub async fn load_state(
    t: &Transport,
    id: &str,
) -> Result<Option<(JobRecord, Option<JobError>)>, StoreError> {
    let [record, failure] = read_many(t, [t.keys.job(id), t.keys.failure(id)]).await?;
    let Some(record) = record else { return Ok(None) };
    Ok(Some((parse_record(id, &record)?, failure.and_then(|b| serde_json::from_slice(&b).ok()))))
}

async fn read_many<const N: usize>(
    t: &Transport,
    keys: [String; N],
) -> Result<[Option<Bytes>; N], StoreError> {
    let values = t.store.get_many(&keys).await?;
    values.try_into().map_err(|v: Vec<_>| StoreError::WrongCount { asked: N, got: v.len() })
}

/// Writes a job record with the given TTL.
pub async fn save_record(t: &Transport, record: &JobRecord, ttl: Duration) -> Result<(), StoreError> {
    let json = to_json("record", &record.id, record)?;
    t.store.put(&t.keys.job(&record.id), Bytes::from(json), ttl).await?;
    Ok(())
}

/// Reads the failure of a job, if any.
pub async fn load_failure(t: &Transport, id: &str) -> Result<Option<JobError>, StoreError> {
    Ok(t.store.get(&t.keys.failure(id)).await?.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// The status of a job as users see it; `NotFound` for unknown or expired ids.
pub async fn status(t: &Transport, id: &str) -> Result<JobStatus, JobsError> {
    let [record, failure, started] =
        read_many(t, [t.keys.job(id), t.keys.failure(id), t.keys.started(id)]).await?;
    let record = parse_record(id, &record.ok_or_else(|| JobsError::UnknownJob(id.to_owned()))?)?;
    let failure = failure.and_then(|b| serde_json::from_slice(&b).ok());
    Ok(status_of(t, record, failure, started.is_some()).await?)
}

/// The status of a job and, once it is done, its PNG, read in one round trip.
pub async fn status_and_result(t: &Transport, id: &str) -> Result<(JobStatus, Option<Bytes>), JobsError> {
    let [record, failure, png, started] =
        read_many(t, [t.keys.job(id), t.keys.failure(id), t.keys.result(id), t.keys.started(id)]).await?;
    let record = parse_record(id, &record.ok_or_else(|| JobsError::UnknownJob(id.to_owned()))?)?;
    let failure = failure.and_then(|b| serde_json::from_slice(&b).ok());
    Ok((status_of(t, record, failure, started.is_some()).await?, png))
}

/// What users see of a record and a failure: the progress of a split job comes from its
/// strips (a whole-image job has none to count until it is done); a job a worker has started
/// is `processing`.
async fn status_of(
    t: &Transport,
    record: JobRecord,
    failure: Option<JobError>,
    started: bool,
) -> Result<JobStatus, StoreError> {
    let id = record.id.as_str();
    let mut state = record.state;
    let mut error = record.error.clone();
    // A failure decides a job that is not over yet; a cancellation decides it even when a
    // worker that was already busy with it finished it afterwards (the cancel was answered).
    if let Some(failure) = failure {
        if failure.code == CANCELLED {
            state = JobState::Cancelled;
            error = Some(failure);
        } else if !state.is_over() {
            state = JobState::Failed;
            error = Some(failure);
        }
    }
    let strips_done = match state {
        JobState::Done => record.strips_total,
        _ if record.is_whole() => 0,
        _ => t.store.hash_len(&t.keys.strips(id)).await?.min(record.strips_total as u64) as u32,
    };
    if state == JobState::Queued && (strips_done > 0 || started) {
        state = JobState::Processing;
    }
    Ok(JobStatus {
        id: record.id.into(),
        state,
        strips_done,
        strips_total: record.strips_total,
        cut: record.cut,
        width: record.width,
        height: record.height,
        input_bytes: record.input_bytes,
        result_bytes: record.result_bytes,
        options: record.options,
        timings_ms: record.timings,
        error,
        created_at: rfc3339(record.created_ms),
    })
}

/// Records that a job failed (first reason wins) and wakes every backend. Anyone may call it:
/// a worker that met bad data, or a backend that found a dead letter.
pub async fn mark_failed(
    t: &Transport,
    id: &JobId,
    error: &JobError,
    ttl: Duration,
) -> Result<(), StoreError> {
    let json = to_json("failure", id, error)?;
    t.store.put_if_absent(&t.keys.failure(id), Bytes::from(json), ttl).await?;
    if let Err(e) = t.notifier.publish(&t.events, &Event::Failed(id.clone()).encode()).await {
        tracing::warn!(job_id = %id, error = %e, "could not publish the failure; backends will find it when sweeping");
    }
    Ok(())
}

/// Records that the store lost a job still in flight (its record was gone): a failed record
/// rebuilt by the caller from what it knows of the job, unless a record came back meanwhile
/// (a worker that finished it), and the failure, first reason winning. Every backend is woken.
pub async fn record_lost(t: &Transport, mut record: JobRecord, ttl: Duration) -> Result<(), StoreError> {
    let error = job_lost();
    record.state = JobState::Failed;
    record.error = Some(error.clone());
    let json = to_json("record", &record.id, &record)?;
    t.store.put_if_absent(&t.keys.job(&record.id), Bytes::from(json), ttl).await?;
    mark_failed(t, &record.id, &error, ttl).await
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-11-27T10:51:34.123Z`).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_known_values() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(super::rfc3339(1_795_777_894_123), "2026-11-27T11:11:34.123Z");
    }
}
