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
//! - [`luma`]: pixel layouts to 8-bit luma.
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

pub mod backend;
pub mod filter;
pub mod luma;
pub mod params;
pub mod png;
pub mod reference;
mod row;
pub mod strip;

pub use backend::Backend;
pub use filter::{KernelError, RowBlock, filter_block, filter_block_with, filter_image, filter_image_with};
pub use params::{DEFAULT_THRESHOLD, FilterParams, Magnitude, OutputMode};
pub use strip::{StripSpec, StripTimings, encode_strip_from_rows, filter_strip, plan_strips, strip_input};
