//! Reading and settling job state in the store, shared by backends and workers.
//!
//! A job's truth is three things in the store: its record, the hash of finished strips, and
//! (once) a failure. The state shown to users is derived from them here, so every replica
//! answers the same. Finishing a job (its PNG stored, its record `done`, its work keys
//! deleted, its waiters woken) is written once, in [`finish_done`], for the worker that
//! computes a whole image and the backend that stitches a split one.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::error::{JobsError, StoreError};
use crate::model::{ErrorCode, Event, JobError, JobId, JobRecord, JobState, JobStatus, job_lost};
use crate::telemetry::UNREADABLE_RECORDS;
use crate::transport::Transport;

fn parse_record(id: &JobId, bytes: &[u8]) -> Result<JobRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Unreadable {
        what: "record",
        id: id.clone(),
        source,
    })
}

/// A stored failure. One that does not parse still fails the job (never the other way round):
/// it is logged, counted in `dsobel_unreadable_records_total`, and read as an internal error.
fn parse_failure(id: &JobId, bytes: &[u8]) -> JobError {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        tracing::error!(job_id = %id, error = %e, "unreadable failure record; the job fails as an internal error");
        UNREADABLE_RECORDS.inc();
        JobError::new(ErrorCode::Internal, "the job failed, and the record of why could not be read")
    })
}

fn to_json(what: &'static str, id: &JobId, value: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Unwritable { what, id: id.clone(), source })
}

/// Reads a job record.
pub async fn load_record(t: &Transport, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
    t.store.get(&t.keys.job(id)).await?.map(|bytes| parse_record(id, &bytes)).transpose()
}

/// A job's record and its failure, if any, read in one round trip.
pub async fn load_state(
    t: &Transport,
    id: &JobId,
) -> Result<Option<(JobRecord, Option<JobError>)>, StoreError> {
    let [record, failure] = read_many(t, [t.keys.job(id), t.keys.failure(id)]).await?;
    let Some(record) = record else { return Ok(None) };
    Ok(Some((parse_record(id, &record)?, failure.map(|b| parse_failure(id, &b)))))
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
pub async fn load_failure(t: &Transport, id: &JobId) -> Result<Option<JobError>, StoreError> {
    Ok(t.store.get(&t.keys.failure(id)).await?.map(|b| parse_failure(id, &b)))
}

/// The status of a job as users see it; `UnknownJob` for unknown or expired ids.
pub async fn status(t: &Transport, id: &JobId) -> Result<JobStatus, JobsError> {
    let [record, failure, started] =
        read_many(t, [t.keys.job(id), t.keys.failure(id), t.keys.started(id)]).await?;
    let record = parse_record(id, &record.ok_or_else(|| JobsError::UnknownJob(id.clone()))?)?;
    let failure = failure.map(|b| parse_failure(id, &b));
    Ok(status_of(t, record, failure, started.is_some()).await?)
}

/// The status of a job and, once it is done, its PNG, read in one round trip to each store.
pub async fn status_and_result(t: &Transport, id: &JobId) -> Result<(JobStatus, Option<Bytes>), JobsError> {
    let result_key = t.keys.result(id);
    let (state, png) = tokio::join!(
        read_many(t, [t.keys.job(id), t.keys.failure(id), t.keys.started(id)]),
        t.bytes.get(&result_key)
    );
    let ([record, failure, started], png) = (state?, png?);
    let record = parse_record(id, &record.ok_or_else(|| JobsError::UnknownJob(id.clone()))?)?;
    let failure = failure.map(|b| parse_failure(id, &b));
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
    let mut state = record.state;
    let mut error = record.error.clone();
    // A failure decides a job that is not over yet; a cancellation decides it even when a
    // worker that was already busy with it finished it afterwards (the cancel was answered).
    if let Some(failure) = failure {
        if failure.code == ErrorCode::Cancelled {
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
        _ => t.bytes.hash_len(&t.keys.strips(&record.id)).await?.min(record.strips_total as u64) as u32,
    };
    if state == JobState::Queued && (strips_done > 0 || started) {
        state = JobState::Processing;
    }
    Ok(status_from(record, state, strips_done, error))
}

/// The status of `record` in `state`, as `/status` shows it.
pub fn status_from(
    record: JobRecord,
    state: JobState,
    strips_done: u32,
    error: Option<JobError>,
) -> JobStatus {
    JobStatus {
        id: record.id,
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
        notes: record.notes,
        threshold_used: record.threshold_used,
    }
}

/// Publishes a wake-up about a job. Only a wake-up: a lost one delays the news until the next
/// read (the sweeper's, or a waiter's), so a failure is logged, not returned.
pub async fn publish(t: &Transport, event: Event) {
    if let Err(e) = t.notifier.publish(&t.keys.events(event.job_id()), &event.encode()).await {
        tracing::warn!(job_id = %event.job_id(), error = %e, "could not publish a wake-up; it will be found when the job is read again");
    }
}

/// Finishes a job whose PNG is ready: stores the PNG, records the job `done` (with
/// `record.timings` as the caller measured them), deletes its work keys, takes it off the
/// pending set and wakes its waiters. The one way a job ends done, for the worker of a
/// whole-image job and for the backend that stitches a split one. What follows the record
/// only tidies up (the sweeper does it too), so its failures are logged, not returned.
pub async fn finish_done(
    t: &Transport,
    record: JobRecord,
    png: Bytes,
    ttl: Duration,
) -> Result<JobRecord, StoreError> {
    let id = record.id.clone();
    t.bytes.put(&t.keys.result(&id), png.clone(), ttl).await?;
    let mut record = record.ended(None);
    record.result_bytes = Some(png.len() as u64);
    save_record(t, &record, ttl).await?;
    delete_work(t, &record).await;
    publish(t, Event::Done(id)).await;
    Ok(record)
}

/// Deletes an ended job's upload, strip inputs and partial results, and takes it off the
/// pending set (best effort: they expire anyway).
pub async fn delete_work(t: &Transport, record: &JobRecord) {
    let id = &record.id;
    let (work, started) = (t.keys.work(id, record.strips_total), [t.keys.started(id)]);
    let (bytes, state) = tokio::join!(t.bytes.delete(&work), t.store.delete(&started));
    if let Err(e) = bytes.and(state) {
        tracing::warn!(job_id = %id, error = %e, "could not delete a finished job's work keys; they will expire");
    }
    if let Some(owner) = &record.owner
        && let Err(e) = t.store.set_remove(&t.keys.pending(owner, id), id.as_str()).await
    {
        tracing::debug!(job_id = %id, error = %e, "could not take a finished job off the pending set; the sweeper will");
    }
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
    publish(t, Event::Failed(id.clone())).await;
    Ok(())
}

/// Records that the store lost a job still in flight (its record was gone): a failed record
/// rebuilt by the caller from what it knows of the job, unless a record came back meanwhile
/// (a worker that finished it), and the failure, first reason winning. Every backend is woken.
pub async fn record_lost(t: &Transport, record: JobRecord, ttl: Duration) -> Result<(), StoreError> {
    let error = job_lost();
    let record = record.ended(Some(error.clone()));
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
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_777_894_123), "2026-11-27T11:11:34.123Z");
    }

    #[test]
    fn an_unreadable_failure_still_fails_the_job_and_is_counted() {
        let before = UNREADABLE_RECORDS.get();
        let failure = parse_failure(&JobId::random(), b"{not json");
        assert_eq!(failure.code, ErrorCode::Internal);
        assert_eq!(UNREADABLE_RECORDS.get(), before + 1);
    }
}
