//! # dsobel-kernel: the exact, fast Sobel filter and the strip machinery around it
//!
//! This crate is pure computation: no I/O, no async, no allocation it does not need. It holds
//!
//! - [`reference`](mod@reference): the scalar oracle of DESIGN §2, small enough to check by eye;
//! - `row` and [`filter`]: the fused fast kernel (luma rows → output bytes in one
//!   pass, no gradient planes), compiled for each [`Backend`] and picked at run time, parallel
//!   across rows;
//! - [`strip`]: horizontal strips with halo rows, planned, filtered on their own and stitched;
//! - [`png`]: strip-wise PNG encoding whose segments concatenate into one valid file;
//! - [`luma`]: pixel layouts to 8-bit luma;
//! - [`params`]: every option of the operators ([`Options`]) and the one check of them;
//! - [`operator`]: every output of every kernel (gradients, unclipped magnitude, direction,
//!   any Sobel size, Scharr), fast, on whole images and strips; [`angle`] defines the
//!   direction; [`otsu`] and [`canny`] the two outputs that need the whole image, each in two
//!   phases per strip with small summaries between them;
//! - [`format`](mod@format): PNG, NPY and TIFF written per strip and stitched without re-encoding.
//!
//! Every fast path is tested against [`reference`](mod@reference), and strips against whole
//! images, bit for bit. The functions the service calls never panic on bad input: sizes,
//! layouts and row ranges that do not fit are refused with a [`KernelError`]. Only the scalar
//! reference, a test oracle, asserts that its buffer matches its size.
//!
//! `unsafe` is denied in the whole workspace (`[workspace.lints]`) except in two modules that
//! allow it by name: this crate's `row.rs` (the `#[target_feature]` calls, each behind a CPU
//! check) and the codec's SIMD IDCT (`dsobel-codec`, `jpeg/idct.rs`, AVX2 behind a CPU check).
//! Every unsafe block carries a `SAFETY:` comment, which clippy enforces.

pub mod angle;
pub mod backend;
pub mod canny;
pub mod filter;
pub mod format;
mod gradient;
pub mod luma;
pub mod operator;
pub mod otsu;
pub mod params;
pub mod png;
pub mod reference;
mod row;
pub mod samples;
pub mod strip;
mod wire;

pub use backend::Backend;
pub use filter::{KernelError, RowBlock, filter_block, filter_block_with, filter_image, filter_image_with};
pub use format::{FormattedStrip, Layout, StripWriter, stitch_formatted};
pub use operator::{compute_block_with, compute_image, compute_image_with};
pub use params::{
    DEFAULT_CANNY_HIGH, DEFAULT_CANNY_LOW, DEFAULT_KSIZE, DEFAULT_THRESHOLD, FilterParams, Format, Kernel,
    Magnitude, OptionError, Options, Output, OutputMode, Sample, Threshold,
};
pub use samples::{Rows, RowsMut, Samples};
pub use strip::{
    StripSpec, StripTimings, StripsReport, encode_canny_strip, encode_strip_from_rows,
    encode_strip_with_options, filter_strip, plan_strips, run_strips, strip_histogram, strip_input,
    strip_input_with_halo,
};
