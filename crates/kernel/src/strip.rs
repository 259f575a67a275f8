//! Horizontal strips with halo rows: how an image is cut for the workers and put back.
//!
//! A strip owns the output rows `first_row..first_row + rows`. To compute them exactly it
//! needs the rows its kernel reaches above and below (its halo: one row for 3×3, up to three
//! for 7×7, one more for Canny, as [`crate::Options::halo`] says), except past the image edge,
//! where the border rule reads rows the strip already holds. [`StripSpec::input_rows_with_halo`]
//! says which rows travel with the strip ([`StripSpec::input_rows`] is the 3×3 case),
//! [`filter_strip`] and [`encode_strip_with_options`] compute a strip on its own, and
//! concatenating the strips' outputs in order gives the whole-image output exactly, for any
//! count. [`run_strips`] runs every phase of any output over all the strips of an image in
//! this process, with the same functions a distributed job runs on its machines.

use std::ops::Range;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::Backend;
use crate::canny::{CannyStrip, CannySummary, CannyVerdict, canny_finish, canny_join, canny_phase1_with};
use crate::filter::{KernelError, RowBlock, filter_block, filter_block_with};
use crate::format::{FormattedStrip, Layout, StripWriter, stitch_formatted};
use crate::operator::{compute_block_with, histogram_block_with};
use crate::otsu::MagnitudeHistogram;
use crate::params::{FilterParams, Options, Output, Threshold};
use crate::png::{CompressionLevel, EncodedStrip, StripEncoder};
use crate::samples::{Rows, Samples};

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
        self.block_with_halo(input, 1)
    }

    /// The strip's input rows for a kernel of `halo` rows as a [`RowBlock`], refusing a
    /// buffer of the wrong size.
    pub fn block_with_halo<'a>(&self, input: &'a [u8], halo: usize) -> Result<RowBlock<'a>, KernelError> {
        let rows = self.input_rows_with_halo(halo);
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
        self.input_rows_with_halo(1)
    }

    /// The input rows a kernel reaching `halo` rows above and below needs: the strip's rows
    /// plus `halo` rows each side, within the image. At an edge, the border rule reads rows
    /// inside the image within `halo` of the edge, which this range always holds (or the whole
    /// image, when it is shorter than the kernel).
    pub fn input_rows_with_halo(&self, halo: usize) -> Range<usize> {
        let start = self.first_row.saturating_sub(halo);
        let end = (self.first_row + self.rows + halo).min(self.image_height);
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
    strip_input_with_halo(luma, spec, 1)
}

/// The input rows a strip needs for a kernel of `halo` rows, out of a whole luma image.
pub fn strip_input_with_halo<'a>(luma: &'a [u8], spec: &StripSpec, halo: usize) -> &'a [u8] {
    let rows = spec.input_rows_with_halo(halo);
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

/// Filters one strip for any single-pass output (every output but Canny, the threshold a
/// number: an Otsu threshold is resolved first, see [`strip_histogram`]) and writes it in the
/// options' format, a batch of rows at a time. `input` holds the rows
/// [`StripSpec::input_rows_with_halo`] names for [`Options::halo`].
pub fn encode_strip_with_options(
    spec: &StripSpec,
    input: &[u8],
    options: &Options,
    level: CompressionLevel,
) -> Result<(FormattedStrip, StripTimings), KernelError> {
    /// Output pixels computed per batch.
    const BATCH_PIXELS: usize = 1 << 16;
    let layout = Layout::of(options, spec.width, spec.image_height)?;
    let block = spec.block_with_halo(input, options.halo())?;
    let backend = Backend::detect();
    let batch_rows = (BATCH_PIXELS / spec.width.max(1)).max(1);
    let mut writer = StripWriter::new(layout, spec.touches_bottom(), level)?;
    let mut rows = Samples::zeros(layout.sample, batch_rows.min(spec.rows) * spec.width);
    let mut timings = StripTimings::default();
    let mut y = spec.first_row;
    let end = spec.first_row + spec.rows;
    while y < end {
        let n = batch_rows.min(end - y);
        let len = n * spec.width;
        let started = Instant::now();
        compute_block_with(backend, options, &block, y..y + n, rows.slice_mut(0..len))?;
        let filtered = Instant::now();
        writer.push(rows.slice(0..len))?;
        timings.filter += filtered - started;
        timings.encode += filtered.elapsed();
        y += n;
    }
    let started = Instant::now();
    let encoded = writer.finish();
    timings.encode += started.elapsed();
    Ok((encoded, timings))
}

/// Otsu's phase 1 on a strip: the histogram of the magnitude of its own rows.
pub fn strip_histogram(
    spec: &StripSpec,
    input: &[u8],
    options: &Options,
) -> Result<MagnitudeHistogram, KernelError> {
    let block = spec.block_with_halo(input, options.halo())?;
    histogram_block_with(Backend::detect(), options, &block, spec.output_rows())
}

/// Canny's phase 2 on a strip, written in the options' format.
pub fn encode_canny_strip(
    spec: &StripSpec,
    strip: CannyStrip,
    verdict: &CannyVerdict,
    options: &Options,
    level: CompressionLevel,
) -> Result<FormattedStrip, KernelError> {
    if (strip.width, strip.first_row, strip.rows) != (spec.width, spec.first_row, spec.rows) {
        return Err(KernelError::Strips("the Canny strip is not the strip of its task".into()));
    }
    let layout = Layout::of(options, spec.width, spec.image_height)?;
    let edges = canny_finish(strip, verdict)?;
    let mut writer = StripWriter::new(layout, spec.touches_bottom(), level)?;
    writer.push(Rows::U8(&edges))?;
    Ok(writer.finish())
}

/// What [`run_strips`] did besides the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StripsReport {
    /// Strips the image was cut into.
    pub strips: usize,
    /// The threshold used, when it was Otsu's.
    pub otsu_threshold: Option<u32>,
    /// Labels of weak Canny components the join decided, over all strips.
    pub canny_labels: u64,
}

/// Runs any output over a whole `width` × `height` luma image cut into `count` strips, in
/// parallel on the current rayon pool, every phase through the functions a distributed job
/// runs (the Canny summaries and verdicts through their bytes, as they would travel), and
/// stitches the file.
pub fn run_strips(
    options: &Options,
    luma: &[u8],
    width: usize,
    height: usize,
    count: usize,
    level: CompressionLevel,
) -> Result<(Vec<u8>, StripsReport), KernelError> {
    options.validate()?;
    let expected = width.checked_mul(height).ok_or(KernelError::Empty)?;
    if expected == 0 {
        return Err(KernelError::Empty);
    }
    if luma.len() != expected {
        return Err(KernelError::BufferSize { what: "luma", expected, actual: luma.len() });
    }
    let layout = Layout::of(options, width, height)?;
    let plan = plan_strips(width, height, count);
    let halo = options.halo();
    let input = |spec: &StripSpec| strip_input_with_halo(luma, spec, halo);
    let mut report = StripsReport { strips: plan.len(), ..StripsReport::default() };
    let strips: Vec<FormattedStrip> = if options.output == Output::Canny {
        let backend = Backend::detect();
        let phase1: Vec<(CannyStrip, CannySummary)> = plan
            .par_iter()
            .map(|spec| canny_phase1_with(backend, options, spec, input(spec)))
            .collect::<Result<_, _>>()?;
        let (strips, summaries): (Vec<CannyStrip>, Vec<CannySummary>) = phase1.into_iter().unzip();
        let summaries: Vec<CannySummary> =
            summaries.iter().map(|s| CannySummary::from_bytes(&s.to_bytes())).collect::<Result<_, _>>()?;
        let verdicts = canny_join(&summaries)?;
        report.canny_labels = summaries.iter().map(|s| s.labels as u64).sum();
        let verdicts: Vec<CannyVerdict> =
            verdicts.iter().map(|v| CannyVerdict::from_bytes(&v.to_bytes())).collect::<Result<_, _>>()?;
        plan.par_iter()
            .zip(strips)
            .zip(verdicts.par_iter())
            .map(|((spec, strip), verdict)| encode_canny_strip(spec, strip, verdict, options, level))
            .collect::<Result<_, _>>()?
    } else {
        let mut resolved = *options;
        if options.output == Output::Binary && options.threshold == Threshold::Otsu {
            let histograms: Vec<MagnitudeHistogram> = plan
                .par_iter()
                .map(|spec| strip_histogram(spec, input(spec), options))
                .collect::<Result<_, _>>()?;
            let mut total = MagnitudeHistogram::default();
            for h in &histograms {
                total.add(&MagnitudeHistogram::from_bytes(&h.to_bytes())?);
            }
            let t = total.threshold();
            report.otsu_threshold = Some(t);
            resolved.threshold = Threshold::Value(t);
        }
        plan.par_iter()
            .map(|spec| encode_strip_with_options(spec, input(spec), &resolved, level).map(|(s, _)| s))
            .collect::<Result<_, _>>()?
    };
    Ok((stitch_formatted(&layout, &strips)?, report))
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
        assert_eq!(plan[0].input_rows_with_halo(3), 0..7);
        assert_eq!(plan[1].input_rows_with_halo(3), 1..10);
        assert_eq!(plan[2].input_rows_with_halo(4), 3..10);
    }
}
