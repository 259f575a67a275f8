//! Image tasks: decode the upload, then either filter, encode and finish the whole image here,
//! or hand each strip's rows to the queue as soon as they are decoded (a split job) and compute
//! the last strip here.

use std::time::Duration;

use bytes::Bytes;
use dsobel_codec::{
    Limits, ProcessError, ProcessOptions, RunOptions, StageTimings, StripsError, decode_strips_with_halo,
    process_bytes, process_file,
};
use dsobel_kernel::png::CompressionLevel;
use dsobel_kernel::{KernelError, StripSpec};
use dsobel_transport::{Delivery, TransportError};

use super::setback::Setback;
use super::strip::encode_strip;
use super::{JobLookup, Outcome, Worker};
use crate::error::Crashed;
use crate::jobs::finish_done;
use crate::model::{ImageTask, JobRecord, StripResult, StripSource, StripTask, Task, Timings};

/// What became of one strip a decoding worker meant to hand out.
enum HandOut {
    /// Queued for the workers, or found already computed.
    Queued,
    /// The job is over (cancelled or failed): stop decoding it.
    JobOver,
}

/// Why a split job's decode stopped handing out strips.
#[derive(Debug)]
enum SplitStop {
    /// The strips could not be stored or queued (the receiving side gave up).
    Abandoned,
    /// The last strip could not be computed.
    Kernel(KernelError),
}

impl std::fmt::Display for SplitStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitStop::Abandoned => f.write_str("handing out strips stopped"),
            SplitStop::Kernel(e) => e.fmt(f),
        }
    }
}

/// A whole image computed: its size, the result file, and Otsu's threshold if it chose one.
struct WholeImage {
    width: usize,
    height: usize,
    bytes: Vec<u8>,
    otsu_threshold: Option<u32>,
    timings: StageTimings,
}

/// The limits an image task carries (the upload's byte size was checked at the door).
fn task_limits(task: &ImageTask) -> Limits {
    Limits { max_pixels: task.max_pixels, max_dimension: task.max_dimension, max_bytes: u64::MAX }
}

impl Worker {
    pub(super) async fn handle_image(&self, task: ImageTask, delivery: Delivery) -> Outcome {
        let queue_wait = self.arrived(task.enqueued_ms, &delivery);
        let record = match self.open_job(&task.job_id).await {
            Ok(JobLookup::Open(record)) => *record,
            Ok(JobLookup::Over) => {
                let _ = delivery.ack().await;
                return Outcome::Skipped;
            }
            Ok(JobLookup::Missing) => return self.job_missing(&Task::Image(task), delivery).await,
            Err(e) => return self.requeue(delivery, &e.into()).await,
        };
        let upload = match self.transport.bytes.get(&task.upload_key).await {
            Ok(Some(upload)) => upload,
            Ok(None) => return self.input_gone(&Task::Image(task), queue_wait, delivery).await,
            Err(e) => return self.requeue(delivery, &e.into()).await,
        };
        // `/status` says `processing` from now on (a hint: losing it only delays that word).
        let t = &self.transport;
        let started_key = t.keys.started(&task.job_id);
        if let Err(e) = t.store.put(&started_key, Bytes::from_static(b"1"), self.config.work_ttl).await {
            tracing::debug!(error = %e, "could not mark the job started");
        }
        if task.strips > 1 {
            self.decode_and_split(task, record, upload, queue_wait, delivery).await
        } else {
            self.whole_image(task, record, upload, queue_wait, delivery).await
        }
    }

    /// A whole-image job: decode, filter and encode here, store the PNG, finish the job.
    async fn whole_image(
        &self,
        task: ImageTask,
        mut record: JobRecord,
        upload: Bytes,
        queue_wait: Duration,
        delivery: Delivery,
    ) -> Outcome {
        let computation = self.whole_image_computation(&task);
        self.drill_delay().await;
        let processed = match tokio::task::spawn_blocking(move || computation(&upload)).await {
            Ok(Ok(processed)) => processed,
            Ok(Err(e)) => return self.computation_failed(&Task::Image(task), delivery, Ok(e)).await,
            Err(e) => return self.computation_failed(&Task::Image(task), delivery, Err(e)).await,
        };
        let timings = processed.timings;
        self.metrics.decode.observe(timings.decode.as_secs_f64());
        self.metrics.filter.observe(timings.filter_encode.as_secs_f64());
        let ms = |d: Duration| Some(d.as_secs_f64() * 1e3);
        record.width = processed.width as u32;
        record.height = processed.height as u32;
        record.threshold_used = processed.otsu_threshold.or(record.threshold_used);
        record.timings = Timings {
            queue_wait: ms(queue_wait),
            decode: ms(timings.decode),
            filter: ms(timings.filter_encode),
            ..Timings::default()
        };
        let png = Bytes::from(processed.bytes);
        let finish = || finish_done(&self.transport, record.clone(), png.clone(), self.config.result_ttl);
        let record = match self.persist("the image's result", finish).await {
            Ok(record) => record,
            Err(e) => return self.requeue(delivery, &e.into()).await,
        };
        if let Err(e) = delivery.ack().await {
            tracing::warn!(error = %e, "acknowledgement failed after the job was finished");
        }
        self.metrics.strips_processed.inc();
        self.metrics.job_finished("done", record.timings.total);
        tracing::info!(bytes = record.result_bytes, total_ms = record.timings.total, "job done");
        Outcome::Done
    }

    /// The whole-image computation of a task's options: the single-pass Sobel 3×3 PNG outputs
    /// through the fused path (with the decode overlapped on a spare core), every other
    /// operator and format through the same function as `dsobel process`.
    fn whole_image_computation(
        &self,
        task: &ImageTask,
    ) -> impl FnOnce(&[u8]) -> Result<WholeImage, ProcessError> + use<> {
        let (limits, compression) = (task_limits(task), CompressionLevel(task.compression));
        let (overlap_decode, options) = (self.spare_core(), task.options);
        move |upload: &[u8]| match options.params() {
            Some(params) => {
                let options = ProcessOptions { params, limits, strips: Some(1), compression, overlap_decode };
                process_bytes(upload, &options).map(|done| WholeImage {
                    width: done.width,
                    height: done.height,
                    bytes: done.png,
                    otsu_threshold: None,
                    timings: done.timings,
                })
            }
            None => {
                let operator = options.operator();
                let run =
                    RunOptions { options: operator, limits, strips: Some(1), compression, overlap_decode };
                process_file(upload, &run).map(|done| WholeImage {
                    width: done.width,
                    height: done.height,
                    bytes: done.bytes,
                    otsu_threshold: done.otsu_threshold,
                    timings: done.timings,
                })
            }
        }
    }

    /// A split job's decode: hand each strip's rows to the queue as soon as they are decoded,
    /// and compute the last strip here. A redelivered decode hands out again only the strips
    /// whose results are not stored; a strip task sent twice is stored once.
    async fn decode_and_split(
        &self,
        task: ImageTask,
        record: JobRecord,
        upload: Bytes,
        queue_wait: Duration,
        delivery: Delivery,
    ) -> Outcome {
        let count = task.strips as usize;
        if record.strips_total as usize != count {
            let contradiction = Setback::Contradiction("the task and its job disagree on the strips".into());
            return self.poison(&Task::Image(task), delivery, &contradiction).await;
        }
        let (sender, mut ready) = tokio::sync::mpsc::channel::<(StripSpec, Bytes)>(count);
        if !task.options.single_pass() {
            let contradiction = Setback::Contradiction(format!(
                "output={} threshold={} is computed whole, not split by its decoder",
                task.options.output,
                task.options.threshold.as_str()
            ));
            return self.poison(&Task::Image(task), delivery, &contradiction).await;
        }
        let (limits, options) = (task_limits(&task), task.options);
        let halo = options.operator().halo();
        let level = CompressionLevel(task.compression);
        let two_threads = self.spare_core();
        let decoding = tokio::task::spawn_blocking(move || {
            let mut own = None;
            let decoded =
                decode_strips_with_halo(&upload, &limits, count, halo, two_threads, |spec, rows| {
                    if spec.index + 1 < spec.count {
                        let rows = Bytes::copy_from_slice(rows);
                        return sender.blocking_send((*spec, rows)).map_err(|_| SplitStop::Abandoned);
                    }
                    own =
                        Some((*spec, encode_strip(spec, rows, &options, level).map_err(SplitStop::Kernel)?));
                    Ok(())
                });
            (decoded, own)
        });
        let mut handed_out = Ok(HandOut::Queued);
        while let Some((spec, rows)) = ready.recv().await {
            handed_out = self.hand_out(&task, &spec, rows).await;
            if !matches!(handed_out, Ok(HandOut::Queued)) {
                break;
            }
        }
        // Stops the decode if handing out failed or the job ended meanwhile.
        drop(ready);
        let (decoded, own) = match decoding.await {
            Ok(done) => done,
            Err(source) => {
                return self.requeue(delivery, &Crashed { what: "the decode", source }.into()).await;
            }
        };
        match handed_out {
            Ok(HandOut::Queued) => {}
            Ok(HandOut::JobOver) => {
                tracing::info!("the job ended while its strips were handed out; stopping");
                let _ = delivery.ack().await;
                return Outcome::Skipped;
            }
            Err(e) => return self.requeue(delivery, &e.into()).await,
        }
        match decoded {
            Ok(size) if size == (record.width as usize, record.height as usize) => {}
            Ok((w, h)) => {
                let reason = format!(
                    "the image decodes to {w}x{h}, not the {}x{} its header says",
                    record.width, record.height
                );
                return self.poison(&Task::Image(task), delivery, &Setback::Contradiction(reason)).await;
            }
            Err(StripsError::Decode(e)) => {
                return self.set_back(&Task::Image(task), delivery, Setback::BadImage(e)).await;
            }
            Err(StripsError::Consumer(SplitStop::Kernel(e))) => {
                return self.set_back(&Task::Image(task), delivery, Setback::Kernel(e)).await;
            }
            Err(StripsError::Consumer(SplitStop::Abandoned)) => {
                return self.requeue(delivery, &Setback::Stopped("handing out strips stopped")).await;
            }
        }
        let Some((spec, (encoded, timings))) = own else {
            return self.requeue(delivery, &Setback::Stopped("the last strip was never decoded")).await;
        };
        let result = StripResult { encoded, queue_wait, filter: timings.filter, encode: timings.encode };
        self.store_strip(&task.job_id, spec.index as u32, result, delivery).await
    }

    /// Stores one decoded strip's rows and queues its task, unless its result is stored
    /// already (a redelivered decode) or the job ended meanwhile (cancelled or failed).
    async fn hand_out(
        &self,
        task: &ImageTask,
        spec: &StripSpec,
        rows: Bytes,
    ) -> Result<HandOut, TransportError> {
        let t = &self.transport;
        let index = spec.index as u32;
        if t.bytes.hash_get(&t.keys.strips(&task.job_id), &index.to_string()).await?.is_some() {
            return Ok(HandOut::Queued);
        }
        let key = t.keys.input(&task.job_id, index);
        self.persist("a strip's rows", || t.bytes.put(&key, rows.clone(), self.config.work_ttl)).await?;
        // Whether the job ended (cancelled or failed) is read after the rows are written: a
        // cancel before this read is seen here (the rows go again), one after it deletes the
        // job's work keys itself, so the rows are never left behind.
        if t.store.get(&t.keys.failure(&task.job_id)).await?.is_some() {
            let _ = t.bytes.delete(std::slice::from_ref(&key)).await;
            return Ok(HandOut::JobOver);
        }
        let strip =
            StripTask::new(&task.job_id, spec, &task.options, task.compression, StripSource::Rows { key });
        t.queue.publish(Task::Strip(strip).to_body()).await?;
        self.metrics.strips_published.inc();
        tracing::debug!(strip = index, "strip handed out");
        // The drill stretches the decode, so a test can stop the worker half way.
        self.drill_delay().await;
        Ok(HandOut::Queued)
    }
}
