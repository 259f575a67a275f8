//! Strip tasks: read the strip's input (rows another worker decoded, or a JPEG's restart
//! intervals, read in pieces of about a megabyte and decoded as they come), filter and encode
//! it on a blocking thread, store the result, wake the backends.
//!
//! The pieces travel from the reading future to the decoding thread through a channel that
//! holds at most [`PIECES_AHEAD`] of them: a decode slower than the store does not make the
//! reader buffer the whole strip, which would undo reading in pieces.

use std::ops::Range;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_codec::{PieceStart, ProcessError, decode_restart_strip_in_pieces, piece_ranges};
use dsobel_kernel::png::CompressionLevel;
use dsobel_kernel::{
    FormattedStrip, KernelError, StripSpec, StripTimings, encode_strip_from_rows, encode_strip_with_options,
};
use dsobel_transport::{Delivery, Store, TransportError};
use tokio::sync::mpsc;

use super::setback::Setback;
use super::{Outcome, Worker};
use crate::jobs::publish;
use crate::model::{Event, JobId, JobOptions, StripResult, StripSource, StripTask, Task};

/// Pieces read ahead of the decode, at most.
pub(crate) const PIECES_AHEAD: usize = 2;

/// What a strip task reads before it computes.
enum StripInput {
    /// Decoded rows.
    Rows(Bytes),
    /// The JPEG's headers, and the pieces of the strip's restart intervals as they are read.
    Jpeg { header: Bytes, first_interval: u64, pieces: Vec<PieceStart>, data: mpsc::Receiver<Bytes> },
}

/// What the reading of a strip's pieces came to: every piece read (in this long), a piece
/// missing from the store, or the store failing.
type PiecesRead = Result<Option<Duration>, TransportError>;

/// Reads the byte `ranges` of the value `key`, one after the other, and sends each to `pieces`
/// (waiting while [`PIECES_AHEAD`] are unread). Stops early, with `Ok(Some(..))`, when the
/// receiver is gone (the decode ended); `Ok(None)` when a piece is not in the store.
pub(crate) async fn read_pieces(
    store: &dyn Store,
    key: &str,
    ranges: Vec<Range<u64>>,
    pieces: mpsc::Sender<Bytes>,
) -> PiecesRead {
    let started = Instant::now();
    for range in ranges {
        let Some(piece) = store.get_range(key, range).await? else { return Ok(None) };
        if pieces.send(piece).await.is_err() {
            break;
        }
    }
    Ok(Some(started.elapsed()))
}

/// Computes a strip of a single-pass operator from its input rows (own rows plus the halo its
/// kernel reaches) and writes it in the job's format: the original Sobel 3×3 PNG outputs
/// through the fused kernel, every other one through the operators' own.
pub(super) fn encode_strip(
    spec: &StripSpec,
    rows: &[u8],
    options: &JobOptions,
    level: CompressionLevel,
) -> Result<(FormattedStrip, StripTimings), KernelError> {
    match options.params() {
        Some(params) => encode_strip_from_rows(spec, rows, &params, level).map(|(e, t)| (e.into(), t)),
        None => encode_strip_with_options(spec, rows, &options.operator(), level),
    }
}

impl Worker {
    pub(super) async fn handle_strip(&self, task: StripTask, delivery: Delivery) -> Outcome {
        let t = &self.transport;
        let queue_wait = self.arrived(task.enqueued_ms, &delivery);
        // Idempotence: a redelivered strip whose result is already stored costs nothing and
        // counts once.
        match t.bytes.hash_get(&t.keys.strips(&task.job_id), &task.strip.to_string()).await {
            Ok(Some(_)) => {
                publish(t, Event::StripDone(task.job_id.clone())).await;
                let _ = delivery.ack().await;
                return Outcome::Skipped;
            }
            Ok(None) => {}
            Err(e) => return self.requeue(delivery, &e.into()).await,
        }
        if !task.options.single_pass() {
            let contradiction = Setback::Contradiction(format!(
                "output={} threshold={} is computed whole, not in strips",
                task.options.output,
                task.options.threshold.as_str()
            ));
            return self.poison(&Task::Strip(task), delivery, &contradiction).await;
        }
        let read_started = Instant::now();
        let (input, ranges) = match self.strip_input(&task.source).await {
            Ok(Some(input)) => input,
            Ok(None) => return self.input_gone(&Task::Strip(task), queue_wait, delivery).await,
            Err(e) => return self.requeue(delivery, &e.into()).await,
        };
        let read = read_started.elapsed();
        let pieces = ranges.as_ref().map_or(1, |(ranges, _)| ranges.len());
        self.drill_delay().await;
        let (spec, options) = (task.spec(), task.options);
        let level = CompressionLevel(task.compression);
        let computing = tokio::task::spawn_blocking(move || {
            let decode_started = Instant::now();
            let rows = match input {
                StripInput::Rows(rows) => rows,
                StripInput::Jpeg { header, first_interval, pieces, mut data } => {
                    let next_piece = || data.blocking_recv();
                    match decode_restart_strip_in_pieces(&header, first_interval, &pieces, &spec, next_piece)
                        .map_err(ProcessError::Decode)?
                    {
                        Some(rows) => Bytes::from(rows),
                        None => return Ok(None),
                    }
                }
            };
            let decode = decode_started.elapsed();
            let done = encode_strip(&spec, &rows, &options, level).map_err(ProcessError::Kernel)?;
            Ok(Some((done, decode)))
        });
        // The pieces are read while the decode runs; the decode's end (or a failure) drops the
        // receiver, which stops the reading.
        let reading = async {
            match ranges {
                Some((ranges, sender)) => {
                    let key = match &task.source {
                        StripSource::Jpeg { upload_key, .. } => upload_key.as_str(),
                        StripSource::Rows { key } => key.as_str(),
                    };
                    read_pieces(t.bytes.as_ref(), key, ranges, sender).await
                }
                None => Ok(Some(read)),
            }
        };
        let (pieces_read, computed) = tokio::join!(reading, computing);
        let ((encoded, timings), decode) = match computed {
            Ok(Ok(Some(done))) => done,
            Ok(Ok(None)) => return self.data_stopped(task, pieces_read, queue_wait, delivery).await,
            Ok(Err(e)) => return self.computation_failed(&Task::Strip(task), delivery, Ok(e)).await,
            Err(e) => return self.computation_failed(&Task::Strip(task), delivery, Err(e)).await,
        };
        // With the data read in pieces, the time to read all of them.
        let read = pieces_read.ok().flatten().unwrap_or(read);
        tracing::debug!(
            read_ms = read.as_secs_f64() * 1e3,
            decode_ms = decode.as_secs_f64() * 1e3,
            pieces,
            "strip input read and decoded"
        );
        let result = StripResult { encoded, queue_wait, filter: timings.filter, encode: timings.encode };
        self.store_strip(&task.job_id, task.strip, result, delivery).await
    }

    /// A strip's data stopped before its last piece: the reading says why (a piece gone from
    /// the store, or the store failing).
    async fn data_stopped(
        &self,
        task: StripTask,
        pieces_read: PiecesRead,
        queue_wait: Duration,
        delivery: Delivery,
    ) -> Outcome {
        match pieces_read {
            Ok(None) => self.input_gone(&Task::Strip(task), queue_wait, delivery).await,
            Err(e) => self.requeue(delivery, &e.into()).await,
            Ok(Some(_)) => {
                self.requeue(
                    delivery,
                    &Setback::Stopped("the strip's data was read but not all of it decoded"),
                )
                .await
            }
        }
    }

    /// Reads a strip's input: its decoded rows, or the JPEG's headers with the byte ranges of
    /// its pieces still to read (and the channel to send them through), so the decode starts
    /// on the first piece while the next ones are read.
    #[allow(clippy::type_complexity)]
    async fn strip_input(
        &self,
        source: &StripSource,
    ) -> Result<Option<(StripInput, Option<(Vec<Range<u64>>, mpsc::Sender<Bytes>)>)>, TransportError> {
        let store = &self.transport.bytes;
        match source {
            StripSource::Rows { key } => Ok(store.get(key).await?.map(|rows| (StripInput::Rows(rows), None))),
            StripSource::Jpeg { upload_key, header_end, scan_start, scan_end, first_interval, pieces } => {
                let Some(header) = store.get_range(upload_key, 0..*header_end).await? else {
                    return Ok(None);
                };
                let pieces: Vec<PieceStart> =
                    pieces.iter().map(|&[offset, interval]| PieceStart { offset, interval }).collect();
                let ranges = piece_ranges(&(*scan_start..*scan_end), *first_interval, &pieces)
                    .into_iter()
                    .map(|(range, _)| range)
                    .collect();
                let (sender, data) = mpsc::channel(PIECES_AHEAD);
                let input = StripInput::Jpeg { header, first_interval: *first_interval, pieces, data };
                Ok(Some((input, Some((ranges, sender)))))
            }
        }
    }

    /// Stores a computed strip (and its timings in the metrics), wakes the backends,
    /// acknowledges.
    pub(super) async fn store_strip(
        &self,
        id: &JobId,
        strip: u32,
        result: StripResult,
        delivery: Delivery,
    ) -> Outcome {
        self.metrics.filter.observe(result.filter.as_secs_f64());
        self.metrics.encode.observe(result.encode.as_secs_f64());
        let t = &self.transport;
        let (key, field, value) = (t.keys.strips(id), strip.to_string(), result.to_bytes());
        let put = || t.bytes.hash_put(&key, &field, value.clone(), self.config.work_ttl);
        if let Err(e) = self.persist("the strip's result", put).await {
            return self.requeue(delivery, &e.into()).await;
        }
        publish(t, Event::StripDone(id.clone())).await;
        if let Err(e) = delivery.ack().await {
            // The result is stored; a redelivery will find it and skip.
            tracing::warn!(error = %e, "acknowledgement failed after the result was stored");
        }
        self.metrics.strips_processed.inc();
        tracing::debug!(
            filter_ms = result.filter.as_secs_f64() * 1e3,
            encode_ms = result.encode.as_secs_f64() * 1e3,
            "strip done"
        );
        Outcome::Done
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dsobel_transport::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn a_slow_decode_has_at_most_two_pieces_waiting() {
        let store = MemoryStore::new();
        store.put("upload", Bytes::from(vec![7u8; 100]), Duration::from_secs(60)).await.unwrap();
        let ranges: Vec<Range<u64>> = (0..10).map(|i| i * 10..i * 10 + 10).collect();
        let (sender, mut pieces) = mpsc::channel(PIECES_AHEAD);
        let reading = read_pieces(&store, "upload", ranges, sender);
        tokio::pin!(reading);
        // Nobody takes a piece for a while: the reader fills the channel and waits.
        let waited = tokio::time::timeout(Duration::from_millis(200), &mut reading).await;
        assert!(waited.is_err(), "the reader must wait for the decode, not read on");
        assert_eq!(pieces.len(), PIECES_AHEAD, "exactly two pieces wait");
        // Taken one at a time, every piece arrives in order.
        let mut got = Vec::new();
        let (read, ()) = tokio::join!(reading, async {
            while let Some(piece) = pieces.recv().await {
                assert!(pieces.len() <= PIECES_AHEAD);
                got.push(piece);
            }
        });
        assert!(matches!(read, Ok(Some(_))));
        assert_eq!(got.len(), 10);
    }

    #[tokio::test]
    async fn a_missing_piece_stops_the_reading_and_says_so() {
        let store = MemoryStore::new();
        let (sender, _pieces) = mpsc::channel(PIECES_AHEAD);
        let read = read_pieces(&store, "gone", std::iter::once(0..10).collect(), sender).await;
        assert!(matches!(read, Ok(None)));
    }
}
