//! Every output of [`Options`] but Canny's, fast, on a [`RowBlock`]: the whole image or a
//! strip with its halo, in parallel across rows on the current rayon pool, for each backend.
//!
//! The original outputs (`binary` and `magnitude` with Sobel 3×3) go through the original
//! fused kernel ([`crate::filter`]), so their bytes cannot change. The others take
//! `gradient::sobel3_row` for Sobel 3×3 (16-bit gradients handed straight to the output
//! step) or `gradient::Separable` for every other kernel (32-bit rows, then the output step).
//! [`compute_image`] also resolves `threshold=otsu` and runs Canny, so it gives any output of
//! a whole image; strips do those in two phases ([`crate::otsu`], [`crate::canny`]).

use std::ops::Range;

use rayon::prelude::*;

use crate::angle::{direction_byte, direction_degrees};
use crate::backend::Backend;
use crate::filter::{KernelError, RowBlock, filter_block_with};
use crate::gradient::{
    Separable, Step, rounded_sqrt_3x3, rounded_sqrt_large, rounded_sqrt_small, sobel3_row,
};
use crate::otsu::MagnitudeHistogram;
use crate::params::{Kernel, Magnitude, OptionError, Options, Output, Threshold};
use crate::reference::Border;
use crate::row::{Job, run};
use crate::samples::{RowsMut, Samples};

/// Rows per parallel task: enough work to amortise scheduling, small enough to balance.
fn rows_per_task(width: usize, rows: usize) -> usize {
    const PIXELS_PER_TASK: usize = 1 << 17;
    (PIXELS_PER_TASK / width.max(1)).clamp(1, rows.max(1))
}

/// `out` (rows of `width`) cut into parallel tasks; `each(first_row, rows)` fills one.
fn par_rows<T: Send>(out: &mut [T], width: usize, first: usize, each: impl Fn(usize, &mut [T]) + Sync) {
    let rows = out.len() / width.max(1);
    let chunk = rows_per_task(width, rows);
    out.par_chunks_mut(chunk * width).enumerate().for_each(|(k, part)| each(first + k * chunk, part));
}

/// Whether the Sobel 3×3 fused loop computes this output.
fn fused(options: &Options) -> bool {
    options.kernel == Kernel::Sobel && options.ksize == 3
}

/// The output rows `wanted` of `block` for `options` (valid, not `canny`, its threshold a
/// number) into `out`, with the given backend.
pub fn compute_block_with(
    backend: Backend,
    options: &Options,
    block: &RowBlock<'_>,
    wanted: Range<usize>,
    mut out: RowsMut<'_>,
) -> Result<(), KernelError> {
    if !backend.is_supported() {
        return Err(KernelError::Unsupported(backend));
    }
    options.validate()?;
    let threshold = match (options.output, options.threshold) {
        (Output::Canny, _) => {
            return Err(OptionError::Invalid {
                option: "output",
                message: "output=canny needs its phases (crate::canny), not a row filter".into(),
            }
            .into());
        }
        (Output::Binary, Threshold::Otsu) => {
            return Err(OptionError::Invalid {
                option: "threshold",
                message: "threshold=otsu must be resolved from the image's histogram first".into(),
            }
            .into());
        }
        (_, Threshold::Value(t)) => t,
        (_, Threshold::Otsu) => 0,
    };
    block.validate_halo(&wanted, options.halo(), Border::Reflect101)?;
    let w = block.width;
    let expected = wanted.len() * w;
    if out.len() != expected {
        return Err(KernelError::BufferSize { what: "output", expected, actual: out.len() });
    }
    if wanted.is_empty() {
        return Ok(());
    }
    if let Some(params) = options.filter_params() {
        let RowsMut::U8(bytes) = &mut out else { unreachable!("the 3x3 outputs are bytes") };
        return filter_block_with(backend, block, wanted, &params, bytes);
    }
    let l2 = options.magnitude == Magnitude::L2;
    let start = wanted.start;
    match (&mut out, options.output) {
        (RowsMut::U16(o), Output::Magnitude16) if fused(options) && l2 => {
            par_rows(o, w, start, |first, out| run(backend, Fused { block, first, out, step: Magnitude16L2 }))
        }
        (RowsMut::U16(o), Output::Magnitude16) if fused(options) => {
            par_rows(o, w, start, |first, out| run(backend, Fused { block, first, out, step: Magnitude16L1 }))
        }
        (RowsMut::I16(o), Output::Gx) if fused(options) => {
            par_rows(o, w, start, |first, out| run(backend, Fused { block, first, out, step: GradientX }))
        }
        (RowsMut::I16(o), Output::Gy) if fused(options) => {
            par_rows(o, w, start, |first, out| run(backend, Fused { block, first, out, step: GradientY }))
        }
        (RowsMut::F32(o), Output::Direction) if fused(options) => {
            par_rows(o, w, start, |first, out| run(backend, Fused { block, first, out, step: Degrees }))
        }
        (RowsMut::U8(o), Output::Direction) if fused(options) => {
            par_rows(o, w, start, |first, out| run(backend, Fused { block, first, out, step: DegreesByte }))
        }
        (out, _) => separable_rows(backend, options, threshold, block, start, out),
    }
    Ok(())
}

/// `magnitude16`, L2, of Sobel 3×3.
struct Magnitude16L2;
/// `magnitude16`, L1, of Sobel 3×3.
struct Magnitude16L1;
/// `gx` of Sobel 3×3.
struct GradientX;
/// `gy` of Sobel 3×3.
struct GradientY;
/// `direction` in degrees.
struct Degrees;
/// `direction` as a byte.
struct DegreesByte;

impl Step<u16> for Magnitude16L2 {
    #[inline(always)]
    fn step(&self, gx: i16, gy: i16) -> u16 {
        rounded_sqrt_3x3(gx as i32 * gx as i32 + gy as i32 * gy as i32) as u16
    }
}

impl Step<u16> for Magnitude16L1 {
    #[inline(always)]
    fn step(&self, gx: i16, gy: i16) -> u16 {
        gx.unsigned_abs() + gy.unsigned_abs()
    }
}

impl Step<i16> for GradientX {
    #[inline(always)]
    fn step(&self, gx: i16, _: i16) -> i16 {
        gx
    }
}

impl Step<i16> for GradientY {
    #[inline(always)]
    fn step(&self, _: i16, gy: i16) -> i16 {
        gy
    }
}

impl Step<f32> for Degrees {
    #[inline(always)]
    fn step(&self, gx: i16, gy: i16) -> f32 {
        direction_degrees(gx as i32, gy as i32)
    }
}

impl Step<u8> for DegreesByte {
    #[inline(always)]
    fn step(&self, gx: i16, gy: i16) -> u8 {
        direction_byte(direction_degrees(gx as i32, gy as i32))
    }
}

/// Rows of one Sobel 3×3 output: `step(gx, gy)` of each pixel of the rows from `first` into
/// `out`, compiled for each backend.
struct Fused<'a, 'b, T, S> {
    block: &'a RowBlock<'b>,
    first: usize,
    out: &'a mut [T],
    step: S,
}

impl<T, S: Step<T>> Job for Fused<'_, '_, T, S> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let (w, h) = (self.block.width, self.block.image_height);
        for (i, row) in self.out.chunks_exact_mut(w).enumerate() {
            let y = self.first + i;
            let above = self.block.row(Border::Reflect101.index(y as isize - 1, h));
            let below = self.block.row(Border::Reflect101.index(y as isize + 1, h));
            sobel3_row(above, self.block.row(y), below, row, Border::Reflect101, &self.step);
        }
    }
}

/// Every output through the two-pass gradient, then its per-pixel step.
fn separable_rows(
    backend: Backend,
    options: &Options,
    threshold: u32,
    block: &RowBlock<'_>,
    start: usize,
    out: &mut RowsMut<'_>,
) {
    let w = block.width;
    let small = options.component_limit() <= 12_240;
    let l2 = options.magnitude == Magnitude::L2;
    let t = threshold as i64;
    let magnitude = move |gx: i32, gy: i32| -> i64 {
        if !l2 {
            (gx.abs() + gy.abs()) as i64
        } else if small {
            rounded_sqrt_small(gx * gx + gy * gy) as i64
        } else {
            rounded_sqrt_large(gx as i64 * gx as i64 + gy as i64 * gy as i64)
        }
    };
    match (out, options.output) {
        (RowsMut::U8(o), Output::Binary) => par_rows(o, w, start, |first, part| {
            separable_pass(
                backend,
                options,
                block,
                first,
                part.len() / w,
                |i: usize, gx: &[i32], gy: &[i32]| {
                    let row = &mut part[i * w..(i + 1) * w];
                    for ((o, &x), &y) in row.iter_mut().zip(gx).zip(gy) {
                        let edge = if l2 {
                            x as i64 * x as i64 + y as i64 * y as i64 > t * t
                        } else {
                            (x.abs() + y.abs()) as i64 > t
                        };
                        *o = 0u8.wrapping_sub(edge as u8);
                    }
                },
            )
        }),
        (RowsMut::U8(o), Output::Magnitude) => par_rows(o, w, start, |first, part| {
            separable_pass(
                backend,
                options,
                block,
                first,
                part.len() / w,
                |i: usize, gx: &[i32], gy: &[i32]| {
                    let row = &mut part[i * w..(i + 1) * w];
                    for ((o, &x), &y) in row.iter_mut().zip(gx).zip(gy) {
                        *o = magnitude(x, y).min(255) as u8;
                    }
                },
            )
        }),
        (RowsMut::U16(o), Output::Magnitude16) => par_rows(o, w, start, |first, part| {
            separable_pass(
                backend,
                options,
                block,
                first,
                part.len() / w,
                |i: usize, gx: &[i32], gy: &[i32]| {
                    let row = &mut part[i * w..(i + 1) * w];
                    for ((o, &x), &y) in row.iter_mut().zip(gx).zip(gy) {
                        *o = magnitude(x, y) as u16;
                    }
                },
            )
        }),
        (RowsMut::U32(o), Output::Magnitude16) => par_rows(o, w, start, |first, part| {
            separable_pass(
                backend,
                options,
                block,
                first,
                part.len() / w,
                |i: usize, gx: &[i32], gy: &[i32]| {
                    let row = &mut part[i * w..(i + 1) * w];
                    for ((o, &x), &y) in row.iter_mut().zip(gx).zip(gy) {
                        *o = magnitude(x, y) as u32;
                    }
                },
            )
        }),
        (RowsMut::I16(o), Output::Gx | Output::Gy) => {
            let want_x = options.output == Output::Gx;
            par_rows(o, w, start, |first, part| {
                separable_pass(
                    backend,
                    options,
                    block,
                    first,
                    part.len() / w,
                    |i: usize, gx: &[i32], gy: &[i32]| {
                        let src = if want_x { gx } else { gy };
                        for (o, &v) in part[i * w..(i + 1) * w].iter_mut().zip(src) {
                            *o = v as i16;
                        }
                    },
                )
            })
        }
        (RowsMut::I32(o), Output::Gx | Output::Gy) => {
            let want_x = options.output == Output::Gx;
            par_rows(o, w, start, |first, part| {
                separable_pass(
                    backend,
                    options,
                    block,
                    first,
                    part.len() / w,
                    |i: usize, gx: &[i32], gy: &[i32]| {
                        part[i * w..(i + 1) * w].copy_from_slice(if want_x { gx } else { gy });
                    },
                )
            })
        }
        (RowsMut::F32(o), Output::Direction) => par_rows(o, w, start, |first, part| {
            separable_pass(
                backend,
                options,
                block,
                first,
                part.len() / w,
                |i: usize, gx: &[i32], gy: &[i32]| {
                    let row = &mut part[i * w..(i + 1) * w];
                    for ((o, &x), &y) in row.iter_mut().zip(gx).zip(gy) {
                        *o = direction_degrees(x, y);
                    }
                },
            )
        }),
        (RowsMut::U8(o), Output::Direction) => par_rows(o, w, start, |first, part| {
            separable_pass(
                backend,
                options,
                block,
                first,
                part.len() / w,
                |i: usize, gx: &[i32], gy: &[i32]| {
                    let row = &mut part[i * w..(i + 1) * w];
                    for ((o, &x), &y) in row.iter_mut().zip(gx).zip(gy) {
                        *o = direction_byte(direction_degrees(x, y));
                    }
                },
            )
        }),
        (out, output) => unreachable!("{output} is never stored as {out:?}"),
    }
}

/// The rows `first..first + rows` of `block` through the two-pass gradient, each handed to
/// `finish(i, gx, gy)`, all compiled for `backend`.
#[inline(always)]
fn separable_pass<F: FnMut(usize, &[i32], &[i32])>(
    backend: Backend,
    options: &Options,
    block: &RowBlock<'_>,
    first: usize,
    rows: usize,
    finish: F,
) {
    run(backend, SeparableRows { options, block, first, rows, finish })
}

/// The job of [`separable_pass`].
struct SeparableRows<'a, 'b, F> {
    options: &'a Options,
    block: &'a RowBlock<'b>,
    first: usize,
    rows: usize,
    finish: F,
}

impl<F: FnMut(usize, &[i32], &[i32])> Job for SeparableRows<'_, '_, F> {
    type Output = ();

    #[inline(always)]
    fn run(mut self) {
        let w = self.block.width;
        let mut sep = Separable::new(self.options.kernel, self.options.ksize, Border::Reflect101, w);
        let (mut gx, mut gy) = (vec![0i32; w], vec![0i32; w]);
        for i in 0..self.rows {
            sep.row(self.block, self.first + i, &mut gx, &mut gy);
            (self.finish)(i, &gx, &gy);
        }
    }
}

/// The magnitude histogram of the rows `wanted` of `block` (Otsu's phase 1 on a strip).
pub fn histogram_block_with(
    backend: Backend,
    options: &Options,
    block: &RowBlock<'_>,
    wanted: Range<usize>,
) -> Result<MagnitudeHistogram, KernelError> {
    let mut magnitudes = Options { output: Output::Magnitude16, threshold: Threshold::Value(0), ..*options };
    // The histogram counts the unclipped magnitude whatever the format the result goes to.
    magnitudes.format = crate::params::Format::Npy;
    let sample = magnitudes.sample()?;
    let w = block.width;
    let mut counts = vec![0u64; options.magnitude16_max() as usize + 1];
    // A batch of rows at a time, so that the magnitudes never exist all at once.
    let batch = (1usize << 16).div_ceil(w.max(1)).max(1);
    let mut rows = Samples::zeros(sample, batch.min(wanted.len()) * w);
    let mut y = wanted.start;
    while y < wanted.end {
        let n = batch.min(wanted.end - y);
        let len = n * w;
        compute_block_with(backend, &magnitudes, block, y..y + n, rows.slice_mut(0..len))?;
        match &rows {
            Samples::U16(v) => v[..len].iter().for_each(|&m| counts[m as usize] += 1),
            Samples::U32(v) => v[..len].iter().for_each(|&m| counts[m as usize] += 1),
            other => unreachable!("magnitudes are never {other:?}"),
        }
        y += n;
    }
    Ok(MagnitudeHistogram::from_counts(counts))
}

/// Any output of a whole `width` × `height` luma image, on the best backend of this CPU.
pub fn compute_image(
    options: &Options,
    luma: &[u8],
    width: usize,
    height: usize,
) -> Result<Samples, KernelError> {
    compute_image_with(Backend::detect(), options, luma, width, height)
}

/// [`compute_image`] with an explicit backend: resolves `threshold=otsu` from the image's
/// histogram and runs Canny's phases on the image as one strip.
pub fn compute_image_with(
    backend: Backend,
    options: &Options,
    luma: &[u8],
    width: usize,
    height: usize,
) -> Result<Samples, KernelError> {
    options.validate()?;
    if !backend.is_supported() {
        return Err(KernelError::Unsupported(backend));
    }
    let expected = width.checked_mul(height).ok_or(KernelError::Empty)?;
    if expected == 0 {
        return Err(KernelError::Empty);
    }
    if luma.len() != expected {
        return Err(KernelError::BufferSize { what: "luma", expected, actual: luma.len() });
    }
    let block = RowBlock::whole(luma, width, height);
    if options.output == Output::Canny {
        return Ok(Samples::U8(crate::canny::canny_image_with(backend, options, &block)?));
    }
    let mut resolved = *options;
    if options.threshold == Threshold::Otsu && options.output == Output::Binary {
        let histogram = histogram_block_with(backend, options, &block, 0..height)?;
        resolved.threshold = Threshold::Value(histogram.threshold());
    }
    let mut out = Samples::zeros(resolved.sample()?, expected);
    compute_block_with(backend, &resolved, &block, 0..height, out.slice_mut(0..expected))?;
    Ok(out)
}
