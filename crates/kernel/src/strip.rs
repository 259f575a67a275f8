//! Horizontal strips with halo rows: how an image is cut for the workers and put back.
//!
//! A strip owns the output rows `first_row..first_row + rows`. To compute them exactly it
//! needs one row above and one below (its halo), except past the image edge, where
//! reflect-101 reads rows the strip already holds. [`StripSpec::input_rows`] says which rows
//! travel with the strip, [`filter_strip`] computes a strip on its own, and concatenating the
//! strips' outputs in order gives the whole-image output exactly, for any count.

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::Backend;
use crate::filter::{KernelError, RowBlock, filter_block, filter_block_with};
use crate::params::FilterParams;
use crate::png::{CompressionLevel, EncodedStrip, StripEncoder};

/// One strip of a plan: which output rows it owns, within which image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StripSpec {
    /// Position of the strip in the plan, from 0 at the top.
    pub index: usize,
    /// How many strips the plan has.
    pub count: usize,
    /// First output row owned by this strip (image coordinates).
    pub first_row: usize,
    /// Number of output rows owned.
    pub rows: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub image_height: usize,
}

impl StripSpec {
    /// The output rows this strip owns.
    pub fn output_rows(&self) -> Range<usize> {
        self.first_row..self.first_row + self.rows
    }

    /// Whether the strip touches the top edge of the image (no halo row above).
    pub fn touches_top(&self) -> bool {
        self.first_row == 0
    }

    /// Whether the strip touches the bottom edge (no halo row below; its PNG segment ends the
    /// compressed stream).
    pub fn touches_bottom(&self) -> bool {
        self.first_row + self.rows == self.image_height
    }

    /// The strip's input rows as a [`RowBlock`], refusing a buffer of the wrong size.
    pub fn block<'a>(&self, input: &'a [u8]) -> Result<RowBlock<'a>, KernelError> {
        let rows = self.input_rows();
        let expected = rows.len() * self.width;
        if input.len() != expected {
            return Err(KernelError::BufferSize { what: "strip input", expected, actual: input.len() });
        }
        Ok(RowBlock {
            data: input,
            width: self.width,
            image_height: self.image_height,
            first_row: rows.start,
        })
    }

    /// The input rows that travel with the strip: its own rows plus one halo row on each side
    /// that is inside the image. At an edge, reflect-101 needs the row *inside* the strip (or
    /// the single halo row, for a one-row strip), which this range always includes.
    pub fn input_rows(&self) -> Range<usize> {
        let start = self.first_row.saturating_sub(1);
        let end = (self.first_row + self.rows + 1).min(self.image_height);
        start..end
    }
}

/// Splits `height` rows into `count` strips as even as possible (the first strips get the
/// extra rows). `count` is clamped to `1..=height`.
pub fn plan_strips(width: usize, height: usize, count: usize) -> Vec<StripSpec> {
    let count = count.clamp(1, height.max(1));
    let base = height / count;
    let extra = height % count;
    let mut first_row = 0;
    (0..count)
        .map(|index| {
            let rows = base + usize::from(index < extra);
            let spec = StripSpec { index, count, first_row, rows, width, image_height: height };
            first_row += rows;
            spec
        })
        .collect()
}

/// Copies out of a whole luma image the input rows a strip needs.
pub fn strip_input<'a>(luma: &'a [u8], spec: &StripSpec) -> &'a [u8] {
    let rows = spec.input_rows();
    &luma[rows.start * spec.width..rows.end * spec.width]
}

/// Computes one strip on its own from its input rows (as given by [`StripSpec::input_rows`]),
/// returning `rows × width` output bytes.
pub fn filter_strip(spec: &StripSpec, input: &[u8], params: &FilterParams) -> Result<Vec<u8>, KernelError> {
    let block = spec.block(input)?;
    let mut out = vec![0u8; spec.rows * spec.width];
    filter_block(&block, spec.output_rows(), params, &mut out)?;
    Ok(out)
}

/// Filters one strip and encodes it as a PNG segment in one go, a batch of rows at a time, so
/// that the strip's output bytes never exist all at once. This is what a worker runs.
pub fn encode_strip_from_rows(
    spec: &StripSpec,
    input: &[u8],
    params: &FilterParams,
    level: CompressionLevel,
) -> Result<(EncodedStrip, StripTimings), KernelError> {
    /// Output pixels filtered per batch: large enough for wide SIMD runs, small enough to stay
    /// in cache between the filter and the compressor.
    const BATCH_PIXELS: usize = 1 << 16;
    let block = spec.block(input)?;
    let backend = Backend::detect();
    let batch_rows = (BATCH_PIXELS / spec.width.max(1)).max(1);
    let mut encoder = StripEncoder::new(spec.width, params.output, spec.touches_bottom(), level);
    let mut rows = vec![0u8; batch_rows.min(spec.rows) * spec.width];
    let mut timings = StripTimings::default();
    let mut y = spec.first_row;
    let end = spec.first_row + spec.rows;
    while y < end {
        let n = batch_rows.min(end - y);
        let out = &mut rows[..n * spec.width];
        let started = Instant::now();
        filter_block_with(backend, &block, y..y + n, params, out)?;
        let filtered = Instant::now();
        for row in out.chunks_exact(spec.width) {
            encoder.push_row(row);
        }
        timings.filter += filtered - started;
        timings.encode += filtered.elapsed();
        y += n;
    }
    let started = Instant::now();
    let encoded = encoder.finish();
    timings.encode += started.elapsed();
    Ok((encoded, timings))
}

/// Time spent in each half of [`encode_strip_from_rows`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StripTimings {
    /// Filtering luma rows into output bytes.
    pub filter: Duration,
    /// Packing, PNG-filtering and compressing them.
    pub encode: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_every_row_once() {
        for height in 1..40 {
            for count in 1..=height + 2 {
                let plan = plan_strips(3, height, count);
                assert_eq!(plan.len(), count.min(height));
                assert!(plan[0].touches_top() && plan.last().unwrap().touches_bottom());
                let mut next = 0;
                for s in &plan {
                    assert_eq!(s.first_row, next);
                    assert!(s.rows >= 1);
                    next += s.rows;
                }
                assert_eq!(next, height);
            }
        }
    }

    #[test]
    fn halo_rows_are_inside_the_image() {
        let plan = plan_strips(5, 10, 3);
        assert_eq!(plan[0].input_rows(), 0..5);
        assert_eq!(plan[1].input_rows(), 3..8);
        assert_eq!(plan[2].input_rows(), 6..10);
        let single = plan_strips(5, 1, 1);
        assert_eq!(single[0].input_rows(), 0..1);
    }
}
