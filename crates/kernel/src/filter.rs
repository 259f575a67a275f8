//! Filtering whole images and row ranges with the fast kernel.
//!
//! [`RowBlock`] is a run of consecutive image rows held in memory: the whole image, or one
//! strip plus its halo. [`filter_block`] produces the output rows that the block can compute
//! exactly, parallel across rows with rayon; a whole image is simply the block that holds every
//! row, so whole images and strips share one code path (which is why tiled output equals
//! whole-image output).

use std::ops::Range;

use rayon::prelude::*;

use crate::backend::Backend;
use crate::params::FilterParams;
use crate::reference::{Border, reflect101};
use crate::row::{Decision, filter_row};

/// Why a call into the kernel was refused (the kernel never panics on bad sizes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// A buffer is not the size its dimensions say.
    #[error("buffer of {actual} bytes does not match {expected} bytes ({what})")]
    BufferSize {
        /// Which buffer.
        what: &'static str,
        /// The size the dimensions imply.
        expected: usize,
        /// The size given.
        actual: usize,
    },
    /// Rows were asked for that the block cannot compute (a neighbour row is missing).
    #[error("output rows {wanted:?} need input rows the block {held:?} does not hold")]
    RowsOutOfBlock {
        /// The output rows asked for.
        wanted: Range<usize>,
        /// The image rows held.
        held: Range<usize>,
    },
    /// The chosen backend cannot run on this CPU.
    #[error("kernel backend {0} is not supported by this CPU")]
    Unsupported(Backend),
    /// A zero-sized image or strip.
    #[error("empty image: width and height must be at least 1")]
    Empty,
    /// Options that [`crate::Options::validate`] refuses, or that this call cannot run.
    #[error("{0}")]
    Options(#[from] crate::params::OptionError),
    /// An intermediate or summary read from bytes is not what its writer wrote.
    #[error("the {what} cannot be read: {detail}")]
    Wire {
        /// Which kind of bytes.
        what: &'static str,
        /// What is wrong, and where.
        detail: String,
    },
    /// Strips that do not make one image (a gap, a different width, one missing).
    #[error("the strips do not fit together: {0}")]
    Strips(String),
    /// The result would not fit its format (a TIFF over 4 GiB).
    #[error("the result is too large for its format: {0}")]
    TooLarge(String),
    /// Samples of one depth given to the conversion of the other.
    #[error("pixel layout {layout:?} given where {expected} samples were expected")]
    Layout {
        /// The layout given.
        layout: crate::luma::PixelLayout,
        /// The depth expected (`"8-bit"` or `"16-bit"`).
        expected: &'static str,
    },
}

/// Consecutive rows `first_row..first_row + rows` of a `width` × `image_height` luma image.
#[derive(Debug, Clone, Copy)]
pub struct RowBlock<'a> {
    /// The rows' pixels, row-major, `width` bytes per row.
    pub data: &'a [u8],
    /// Image width in pixels.
    pub width: usize,
    /// Height of the whole image (needed for the reflect-101 rule at the bottom edge).
    pub image_height: usize,
    /// Image row index of the first row in `data`.
    pub first_row: usize,
}

impl<'a> RowBlock<'a> {
    /// A block holding a whole image.
    pub fn whole(data: &'a [u8], width: usize, height: usize) -> Self {
        RowBlock { data, width, image_height: height, first_row: 0 }
    }

    /// Image rows held by this block.
    pub fn held(&self) -> Range<usize> {
        let rows = self.data.len().checked_div(self.width).unwrap_or(0);
        self.first_row..self.first_row + rows
    }

    /// One image row held by the block (the caller has validated the block for it).
    pub(crate) fn row(&self, image_row: usize) -> &'a [u8] {
        let local = image_row - self.first_row;
        &self.data[local * self.width..(local + 1) * self.width]
    }

    fn validate(&self, wanted: &Range<usize>) -> Result<(), KernelError> {
        self.validate_halo(wanted, 1, Border::Reflect101)
    }

    /// Checks that the block can compute the output rows `wanted` with a kernel reaching
    /// `halo` rows above and below, reading past the image's edges by `border`.
    pub(crate) fn validate_halo(
        &self,
        wanted: &Range<usize>,
        halo: usize,
        border: Border,
    ) -> Result<(), KernelError> {
        if self.width == 0 || self.image_height == 0 {
            return Err(KernelError::Empty);
        }
        if !self.data.len().is_multiple_of(self.width) {
            let rows = self.data.len() / self.width + 1;
            return Err(KernelError::BufferSize {
                what: "row block",
                expected: rows * self.width,
                actual: self.data.len(),
            });
        }
        let held = self.held();
        let bad = || KernelError::RowsOutOfBlock { wanted: wanted.clone(), held: held.clone() };
        if held.end > self.image_height || wanted.start > wanted.end || wanted.end > self.image_height {
            return Err(bad());
        }
        if wanted.is_empty() {
            return Ok(());
        }
        // The rows read are those of the rows next to the ends of `wanted` (further in, no
        // read crosses an edge): check the extremes of those.
        let h = self.image_height;
        let reach = 2 * halo + 2;
        let near_ends = (wanted.start..wanted.end.min(wanted.start + reach))
            .chain(wanted.end.saturating_sub(reach).max(wanted.start)..wanted.end);
        let (mut lo, mut hi) = (usize::MAX, 0);
        for y in near_ends {
            for d in -(halo as isize)..=halo as isize {
                let row = border.index(y as isize + d, h);
                lo = lo.min(row);
                hi = hi.max(row);
            }
        }
        if lo < held.start || hi >= held.end {
            return Err(bad());
        }
        Ok(())
    }
}

/// Rows per parallel task: enough work to amortise scheduling, small enough to balance.
fn rows_per_task(width: usize, rows: usize) -> usize {
    const PIXELS_PER_TASK: usize = 1 << 18;
    (PIXELS_PER_TASK / width.max(1)).clamp(1, rows.max(1))
}

/// Filters the image rows `wanted` of `block` into `out` (`wanted.len() × width` bytes), with
/// the given backend, in parallel on the current rayon pool.
pub fn filter_block_with(
    backend: Backend,
    block: &RowBlock<'_>,
    wanted: Range<usize>,
    params: &FilterParams,
    out: &mut [u8],
) -> Result<(), KernelError> {
    if !backend.is_supported() {
        return Err(KernelError::Unsupported(backend));
    }
    block.validate(&wanted)?;
    let w = block.width;
    let expected = wanted.len() * w;
    if out.len() != expected {
        return Err(KernelError::BufferSize { what: "output", expected, actual: out.len() });
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let decision = Decision::new(params);
    let h = block.image_height;
    let chunk_rows = rows_per_task(w, wanted.len());
    out.par_chunks_mut(chunk_rows * w).enumerate().for_each(|(chunk, out_rows)| {
        let first = wanted.start + chunk * chunk_rows;
        for (i, out_row) in out_rows.chunks_exact_mut(w).enumerate() {
            let y = first + i;
            let above = block.row(reflect101(y as isize - 1, h));
            let below = block.row(reflect101(y as isize + 1, h));
            filter_row(backend, above, block.row(y), below, out_row, decision);
        }
    });
    Ok(())
}

/// [`filter_block_with`] on the best backend of this CPU.
pub fn filter_block(
    block: &RowBlock<'_>,
    wanted: Range<usize>,
    params: &FilterParams,
    out: &mut [u8],
) -> Result<(), KernelError> {
    filter_block_with(Backend::detect(), block, wanted, params, out)
}

/// Filters a whole `width` × `height` luma image into a new buffer of output bytes.
pub fn filter_image(
    luma: &[u8],
    width: usize,
    height: usize,
    params: &FilterParams,
) -> Result<Vec<u8>, KernelError> {
    filter_image_with(Backend::detect(), luma, width, height, params)
}

/// [`filter_image`] with an explicit backend.
pub fn filter_image_with(
    backend: Backend,
    luma: &[u8],
    width: usize,
    height: usize,
    params: &FilterParams,
) -> Result<Vec<u8>, KernelError> {
    let expected = width.checked_mul(height).ok_or(KernelError::Empty)?;
    if luma.len() != expected {
        return Err(KernelError::BufferSize { what: "luma", expected, actual: luma.len() });
    }
    let mut out = vec![0u8; expected];
    filter_block_with(backend, &RowBlock::whole(luma, width, height), 0..height, params, &mut out)?;
    Ok(out)
}
