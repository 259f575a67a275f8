//! One image, start to finish, on this machine: bytes → luma → strips → stitched PNG.
//!
//! This is what `dsobel process` runs and what the benchmarks measure. The image is cut into
//! strips exactly as the distributed pipeline cuts it, each strip is filtered and encoded on its
//! own (in parallel on the current rayon pool), and the segments are stitched without
//! re-encoding; so the local result is, byte for byte after decoding, the distributed one.

use std::time::{Duration, Instant};

use dsobel_kernel::png::{CompressionLevel, EncodedStrip, stitch};
use dsobel_kernel::strip::encode_strip_from_rows;
use dsobel_kernel::{FilterParams, KernelError, plan_strips, strip_input};
use rayon::prelude::*;

use crate::decode::decode_luma;
use crate::error::DecodeError;
use crate::limits::Limits;
use crate::orientation::LumaImage;

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
}

/// Where the time went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimings {
    /// Bytes → luma.
    pub decode: Duration,
    /// Luma → stitched PNG (filter and encode, fused per strip).
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

/// Filters and encodes an already decoded image into a PNG, in `strips` strips.
pub fn encode_luma(
    image: &LumaImage,
    options: &ProcessOptions,
) -> Result<(Vec<u8>, usize, Duration, Duration), KernelError> {
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
    Ok((png, plan.len(), filtered, stitch_started.elapsed()))
}

/// Runs one image from its file bytes to PNG bytes.
pub fn process_bytes(bytes: &[u8], options: &ProcessOptions) -> Result<Processed, ProcessError> {
    let started = Instant::now();
    let image = decode_luma(bytes, &options.limits)?;
    let decode = started.elapsed();
    let (png, strips, filter_encode, stitch) = encode_luma(&image, options)?;
    Ok(Processed {
        width: image.width,
        height: image.height,
        png,
        strips,
        timings: StageTimings { decode, filter_encode, stitch },
    })
}
