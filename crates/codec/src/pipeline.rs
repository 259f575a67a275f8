//! One image, start to finish, on this machine: bytes → luma → strips → stitched PNG.
//!
//! This is what `dsobel process` runs and what the benchmarks measure. The image is cut into
//! strips exactly as the distributed pipeline cuts it, each strip is filtered and encoded on its
//! own (in parallel on the current rayon pool), and the segments are stitched without
//! re-encoding; so the local result is, byte for byte after decoding, the distributed one.
//!
//! One large baseline JPEG with a core to spare takes a streamed path instead
//! ([`ProcessOptions::overlap_decode`]): a second thread does the JPEG's entropy decoding, the
//! one part that cannot be split, while this thread runs the IDCT of each MCU row as it
//! arrives and filters and encodes every strip as soon as its rows (and the row below it) are
//! there. The output is the same image, in more strips.

use std::time::{Duration, Instant};

use dsobel_kernel::png::{CompressionLevel, EncodedStrip, stitch};
use dsobel_kernel::strip::encode_strip_from_rows;
use dsobel_kernel::{
    FilterParams, KernelError, Options, StripSpec, StripsReport, plan_strips, run_strips, strip_input,
    strip_input_with_halo,
};
use rayon::prelude::*;

use crate::decode::{Format, corrupt, decode_luma, jpeg_orientation};
use crate::error::DecodeError;
use crate::jpeg::{BaselineJpeg, StreamError};
use crate::limits::Limits;
use crate::orientation::{LumaImage, Orientation};

/// How to run one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessOptions {
    /// What to compute.
    pub params: FilterParams,
    /// What to accept.
    pub limits: Limits,
    /// Strip count; `None` means one per thread of the current pool.
    pub strips: Option<usize>,
    /// Deflate effort for the output PNG.
    pub compression: CompressionLevel,
    /// Overlap a baseline JPEG's decoding with its filtering and encoding on two threads (one
    /// of them outside the current pool). Worth it for one image on an otherwise idle machine;
    /// when several images already keep every core busy, leave it off.
    pub overlap_decode: bool,
}

/// Where the time went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimings {
    /// Bytes → luma. On the streamed path: until the last luma row existed.
    pub decode: Duration,
    /// Luma → PNG segments (filter and encode, fused per strip). On the streamed path: the time
    /// spent in them, most of it while the decode went on.
    pub filter_encode: Duration,
    /// Joining the strips.
    pub stitch: Duration,
}

/// A finished image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// Width of the output (after orientation).
    pub width: usize,
    /// Height of the output.
    pub height: usize,
    /// The PNG file.
    pub png: Vec<u8>,
    /// Number of strips used.
    pub strips: usize,
    /// Stage timings.
    pub timings: StageTimings,
}

/// A failure of [`process_bytes`].
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The input could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The kernel refused (only on internal inconsistencies).
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// What [`encode_luma`] made of a decoded image.
#[derive(Debug, Clone)]
pub struct EncodedImage {
    /// The PNG file.
    pub png: Vec<u8>,
    /// Strips it was filtered and compressed in.
    pub strips: usize,
    /// Filtering and compressing the strips (in parallel).
    pub filter_encode: Duration,
    /// Joining the strips into one PNG.
    pub stitch: Duration,
}

/// Filters and encodes an already decoded image into a PNG, in `strips` strips.
pub fn encode_luma(image: &LumaImage, options: &ProcessOptions) -> Result<EncodedImage, KernelError> {
    let started = Instant::now();
    let count = options.strips.unwrap_or_else(rayon::current_num_threads).max(1);
    let plan = plan_strips(image.width, image.height, count);
    let strips: Vec<EncodedStrip> = plan
        .par_iter()
        .map(|spec| {
            encode_strip_from_rows(
                spec,
                strip_input(&image.pixels, spec),
                &options.params,
                options.compression,
            )
            .map(|(strip, _timings)| strip)
        })
        .collect::<Result<_, _>>()?;
    let filtered = started.elapsed();
    let stitch_started = Instant::now();
    let png = stitch(image.width as u32, image.height as u32, options.params.output, &strips);
    Ok(EncodedImage { png, strips: plan.len(), filter_encode: filtered, stitch: stitch_started.elapsed() })
}

/// Runs one image from its file bytes to PNG bytes.
pub fn process_bytes(bytes: &[u8], options: &ProcessOptions) -> Result<Processed, ProcessError> {
    if options.overlap_decode
        && let Some(done) = process_jpeg_streamed(bytes, options)
    {
        return done;
    }
    let started = Instant::now();
    let image = decode_luma(bytes, &options.limits)?;
    let decode = started.elapsed();
    let EncodedImage { png, strips, filter_encode, stitch } = encode_luma(&image, options)?;
    Ok(Processed {
        width: image.width,
        height: image.height,
        png,
        strips,
        timings: StageTimings { decode, filter_encode, stitch },
    })
}

/// Strips for the streamed path when the caller did not choose: enough that little is left to
/// do once the last row is decoded, few enough that each strip compresses well.
fn streamed_strip_count(height: usize) -> usize {
    (height / 128).clamp(1, 16)
}

/// The streamed path of [`process_bytes`]; `None` when the input is not a baseline JPEG this
/// path takes (or its entropy data is corrupt), and the general path should run instead.
fn process_jpeg_streamed(bytes: &[u8], options: &ProcessOptions) -> Option<Result<Processed, ProcessError>> {
    let started = Instant::now();
    let jpeg = BaselineJpeg::parse(bytes)?;
    if jpeg_orientation(&jpeg) != Orientation::NoTransforms {
        return None;
    }
    let (width, height) = (jpeg.width, jpeg.height);
    // The limits, from the header just read, before any pixel buffer exists.
    let limits = &options.limits;
    if let Err(e) = limits
        .check_bytes(bytes.len())
        .and_then(|()| limits.check_dimensions("JPEG", width as u64, height as u64))
    {
        return Some(Err(e.into()));
    }
    let plan =
        plan_strips(width, height, options.strips.unwrap_or_else(|| streamed_strip_count(height)).max(1));
    let mut strips = Vec::with_capacity(plan.len());
    let mut filter_encode = Duration::ZERO;
    let decoded = stream_jpeg_strips(&jpeg, &plan, 1, true, |spec, input| {
        let began = Instant::now();
        let (strip, _) = encode_strip_from_rows(spec, input, &options.params, options.compression)?;
        strips.push(strip);
        filter_encode += began.elapsed();
        Ok::<(), KernelError>(())
    });
    match decoded {
        Ok(()) => {}
        Err(StreamError::Data(e)) => return Some(Err(corrupt(Format::Jpeg, e).into())),
        // No second thread: the general path decodes on this one.
        Err(StreamError::NoThread) => return None,
        Err(StreamError::Consumer(e)) => return Some(Err(e.into())),
    }
    let decode = started.elapsed();
    let stitch_started = Instant::now();
    let png = stitch(width as u32, height as u32, options.params.output, &strips);
    Some(Ok(Processed {
        width,
        height,
        png,
        strips: plan.len(),
        timings: StageTimings { decode, filter_encode, stitch: stitch_started.elapsed() },
    }))
}

/// Decodes a baseline JPEG's luma and calls `strip_ready` with each strip of `plan`, top to
/// bottom, as soon as its input rows (own rows and halo) are final. With `two_threads`, the
/// entropy decoding runs on a second thread and may run a whole strip ahead.
fn stream_jpeg_strips<E>(
    jpeg: &BaselineJpeg<'_>,
    plan: &[StripSpec],
    halo: usize,
    two_threads: bool,
    mut strip_ready: impl FnMut(&StripSpec, &[u8]) -> Result<(), E>,
) -> Result<(), StreamError<E>> {
    let mut luma = vec![0u8; jpeg.width * jpeg.height];
    let burst_rows = plan.iter().map(|spec| spec.rows).max().unwrap_or(0) + halo;
    let mut next = 0;
    jpeg.decode_luma_streaming(&mut luma, two_threads.then_some(burst_rows), |rows, ready| {
        while let Some(spec) = plan.get(next).filter(|spec| spec.input_rows_with_halo(halo).end <= ready) {
            strip_ready(spec, strip_input_with_halo(rows, spec, halo))?;
            next += 1;
        }
        Ok(())
    })
}

/// Why [`decode_strips`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum StripsError<E> {
    /// The input could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// `strip_ready` failed.
    #[error("{0}")]
    Consumer(E),
}

/// The decode of a split job: decodes `bytes` (within `limits`), cuts the upright image into
/// `count` strips and calls `strip_ready` with each strip and its input rows (own rows plus
/// halo), top to bottom. A baseline JPEG is streamed, so the first strips are handed out while
/// the rest of the image is still being decoded (with `two_threads`, the entropy decoding runs
/// on a second thread); other inputs are decoded whole first. Returns the image's size.
pub fn decode_strips<E>(
    bytes: &[u8],
    limits: &Limits,
    count: usize,
    two_threads: bool,
    strip_ready: impl FnMut(&StripSpec, &[u8]) -> Result<(), E>,
) -> Result<(usize, usize), StripsError<E>> {
    decode_strips_with_halo(bytes, limits, count, 1, two_threads, strip_ready)
}

/// [`decode_strips`] for a kernel reaching `halo` rows each side (see `Options::halo`): each
/// strip's input rows are [`StripSpec::input_rows_with_halo`].
pub fn decode_strips_with_halo<E>(
    bytes: &[u8],
    limits: &Limits,
    count: usize,
    halo: usize,
    two_threads: bool,
    mut strip_ready: impl FnMut(&StripSpec, &[u8]) -> Result<(), E>,
) -> Result<(usize, usize), StripsError<E>> {
    let probe = crate::decode::probe(bytes, limits)?;
    let mut handed = 0;
    if probe.format == crate::Format::Jpeg
        && let Some(jpeg) = BaselineJpeg::parse(bytes)
        && jpeg_orientation(&jpeg) == Orientation::NoTransforms
    {
        let plan = plan_strips(jpeg.width, jpeg.height, count);
        let streamed = stream_jpeg_strips(&jpeg, &plan, halo, two_threads, |spec, rows| {
            strip_ready(spec, rows)?;
            handed += 1;
            Ok(())
        });
        match streamed {
            Ok(()) => return Ok((jpeg.width, jpeg.height)),
            Err(StreamError::Consumer(e)) => return Err(StripsError::Consumer(e)),
            Err(StreamError::Data(e)) => return Err(StripsError::Decode(corrupt(Format::Jpeg, e))),
            // No second thread: the general path decodes on this one, and the strips not yet
            // handed out come from its image.
            Err(StreamError::NoThread) => {}
        }
    }
    let image = decode_luma(bytes, limits)?;
    for spec in plan_strips(image.width, image.height, count).iter().skip(handed) {
        strip_ready(spec, strip_input_with_halo(&image.pixels, spec, halo)).map_err(StripsError::Consumer)?;
    }
    Ok((image.width, image.height))
}

/// How to run one image with any of the operators ([`Options`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunOptions {
    /// What to compute, and in which format.
    pub options: Options,
    /// What to accept.
    pub limits: Limits,
    /// Strip count; `None` means one per thread of the current pool.
    pub strips: Option<usize>,
    /// Deflate effort for a PNG result.
    pub compression: CompressionLevel,
    /// For the original outputs (Sobel 3×3 `binary` with a number, `magnitude`, as PNG):
    /// overlap a baseline JPEG's decoding with the rest, as [`ProcessOptions::overlap_decode`].
    pub overlap_decode: bool,
}

/// A finished image of [`process_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedFile {
    /// Width of the output (after orientation).
    pub width: usize,
    /// Height of the output.
    pub height: usize,
    /// The result file, in the options' format.
    pub bytes: Vec<u8>,
    /// Number of strips used.
    pub strips: usize,
    /// Otsu's threshold, when it was asked for.
    pub otsu_threshold: Option<u32>,
    /// Stage timings.
    pub timings: StageTimings,
}

/// Runs one image from its file bytes to its result file, for any [`Options`] (checked
/// first): the original outputs through [`process_bytes`] (so their bytes cannot change), the
/// others decoded whole and then cut into strips whose phases run in parallel on the current
/// rayon pool ([`run_strips`]), exactly as a distributed job runs them.
pub fn process_file(bytes: &[u8], run: &RunOptions) -> Result<ProcessedFile, ProcessError> {
    run.options.validate().map_err(KernelError::from)?;
    if run.options.format == dsobel_kernel::Format::Png
        && let Some(params) = run.options.filter_params()
    {
        let options = ProcessOptions {
            params,
            limits: run.limits,
            strips: run.strips,
            compression: run.compression,
            overlap_decode: run.overlap_decode,
        };
        let done = process_bytes(bytes, &options)?;
        return Ok(ProcessedFile {
            width: done.width,
            height: done.height,
            bytes: done.png,
            strips: done.strips,
            otsu_threshold: None,
            timings: done.timings,
        });
    }
    let started = Instant::now();
    let image = decode_luma(bytes, &run.limits)?;
    let decode = started.elapsed();
    let count = run.strips.unwrap_or_else(rayon::current_num_threads).max(1);
    let filtered = Instant::now();
    let (file, StripsReport { strips, otsu_threshold, .. }) =
        run_strips(&run.options, &image.pixels, image.width, image.height, count, run.compression)?;
    Ok(ProcessedFile {
        width: image.width,
        height: image.height,
        bytes: file,
        strips,
        otsu_threshold,
        timings: StageTimings { decode, filter_encode: filtered.elapsed(), stitch: Duration::ZERO },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libjpeg").join(name);
        std::fs::read(path).expect("fixture")
    }

    #[test]
    fn every_strip_gets_the_rows_of_its_halo() {
        // A baseline JPEG (streamed, on one thread and on two) and one decoded whole first.
        for name in ["q50-420-restart.jpg", "edge-17x9.jpg", "progressive-420.jpg"] {
            let bytes = fixture(name);
            let whole = decode_luma(&bytes, &Limits::default()).unwrap();
            for halo in 1..=4 {
                for count in 1..=6 {
                    for two_threads in [false, true] {
                        let mut seen = Vec::new();
                        let size = decode_strips_with_halo(
                            &bytes,
                            &Limits::default(),
                            count,
                            halo,
                            two_threads,
                            |spec, rows| {
                                assert_eq!(
                                    rows,
                                    strip_input_with_halo(&whole.pixels, spec, halo),
                                    "{name} {spec:?} halo {halo}"
                                );
                                seen.push(spec.index);
                                Ok::<(), ()>(())
                            },
                        )
                        .unwrap();
                        assert_eq!(size, (whole.width, whole.height));
                        assert_eq!(seen, (0..count.min(whole.height)).collect::<Vec<_>>(), "{name}");
                    }
                }
            }
        }
    }

    #[test]
    fn process_file_refuses_bad_options_and_runs_every_output() {
        let bytes = fixture("q50-420-restart.jpg");
        let bad = RunOptions { options: Options { ksize: 4, ..Options::default() }, ..RunOptions::default() };
        assert!(matches!(process_file(&bytes, &bad), Err(ProcessError::Kernel(KernelError::Options(_)))));
        let image = decode_luma(&bytes, &Limits::default()).unwrap();
        for output in dsobel_kernel::Output::ALL {
            let options = Options { output, format: dsobel_kernel::Format::Npy, ..Options::default() };
            let run = RunOptions { options, strips: Some(3), ..RunOptions::default() };
            let done = process_file(&bytes, &run).unwrap();
            let want =
                run_strips(&options, &image.pixels, image.width, image.height, 1, run.compression).unwrap().0;
            assert_eq!(done.bytes, want, "{output}");
        }
    }
}
