//! The reference of every kernel and output of [`Options`] but Canny's (see
//! `docs/operators.md`): the gradient of one pixel from its definition, and a whole image of
//! output samples from those gradients, one pixel at a time.

use crate::angle::{direction_byte, direction_degrees};
use crate::otsu::otsu_threshold;
use crate::params::{Kernel, Magnitude, Options, Output, Sample, Threshold};
use crate::samples::Samples;

use super::{reflect101, rounded_sqrt_u64};

/// How a kernel reads past the image's edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Border {
    /// `p[-k] = p[k]` (OpenCV's `BORDER_REFLECT_101`, its default): every output but Canny.
    Reflect101,
    /// `p[-k] = p[0]` (OpenCV's `BORDER_REPLICATE`): Canny's gradients.
    Replicate,
}

impl Border {
    /// The index read for coordinate `i` of a dimension of `len` (at least 1).
    pub fn index(self, i: isize, len: usize) -> usize {
        match self {
            Border::Reflect101 => reflect101(i, len),
            Border::Replicate => i.clamp(0, len as isize - 1) as usize,
        }
    }
}

/// The separable kernel `(derivative, smoothing)` of OpenCV's `getDerivKernels(1, 0, ksize)`:
/// `gx` is the derivative along a row times the smoothing down a column, `gy` the transpose.
pub fn taps(kernel: Kernel, ksize: u8) -> (&'static [i64], &'static [i64]) {
    match (kernel, ksize) {
        (Kernel::Scharr, _) => (&[-1, 0, 1], &[3, 10, 3]),
        (Kernel::Sobel, 1) => (&[-1, 0, 1], &[1]),
        (Kernel::Sobel, 3) => (&[-1, 0, 1], &[1, 2, 1]),
        (Kernel::Sobel, 5) => (&[-1, -2, 0, 2, 1], &[1, 4, 6, 4, 1]),
        (Kernel::Sobel, 7) => (&[-1, -4, -5, 0, 5, 4, 1], &[1, 6, 15, 20, 15, 6, 1]),
        (Kernel::Sobel, k) => panic!("no Sobel kernel of size {k}"),
    }
}

/// The gradients `(gx, gy)` at `(x, y)`: the kernel applied as a correlation (as
/// `cv2.Sobel` does), `gx[x,y] = Σⱼ Σᵢ s[j]·d[i]·p[y+j−rs][x+i−rd]` and `gy` with the roles of
/// the derivative `d` and the smoothing `s` swapped between the axes, reading past the edges
/// by `border`.
#[allow(clippy::too_many_arguments)]
pub fn gradient_with(
    luma: &[u8],
    width: usize,
    height: usize,
    x: usize,
    y: usize,
    kernel: Kernel,
    ksize: u8,
    border: Border,
) -> (i64, i64) {
    let (d, s) = taps(kernel, ksize);
    let p = |dx: isize, dy: isize| -> i64 {
        let xx = border.index(x as isize + dx, width);
        let yy = border.index(y as isize + dy, height);
        luma[yy * width + xx] as i64
    };
    let (rd, rs) = ((d.len() / 2) as isize, (s.len() / 2) as isize);
    let mut gx = 0;
    for (j, &sj) in s.iter().enumerate() {
        for (i, &di) in d.iter().enumerate() {
            gx += sj * di * p(i as isize - rd, j as isize - rs);
        }
    }
    let mut gy = 0;
    for (j, &dj) in d.iter().enumerate() {
        for (i, &si) in s.iter().enumerate() {
            gy += dj * si * p(i as isize - rs, j as isize - rd);
        }
    }
    (gx, gy)
}

/// The unclipped integer magnitude: `round(√(gx² + gy²))` (L2) or `|gx| + |gy|` (L1).
pub fn magnitude_of(gx: i64, gy: i64, magnitude: Magnitude) -> u64 {
    match magnitude {
        Magnitude::L2 => rounded_sqrt_u64((gx * gx + gy * gy) as u64),
        Magnitude::L1 => gx.unsigned_abs() + gy.unsigned_abs(),
    }
}

/// Whether `(gx, gy)` is an edge of the `binary` output at threshold `t`: `gx² + gy² > t²`
/// (L2, so no rounding is involved) or `|gx| + |gy| > t` (L1).
pub fn is_edge(gx: i64, gy: i64, magnitude: Magnitude, t: u32) -> bool {
    let t = t as i128;
    match magnitude {
        Magnitude::L2 => (gx as i128) * (gx as i128) + (gy as i128) * (gy as i128) > t * t,
        Magnitude::L1 => (gx.abs() + gy.abs()) as i128 > t,
    }
}

/// The histogram of the unclipped magnitude of every pixel: `counts[m]` pixels have
/// magnitude `m`.
pub fn magnitude_histogram(luma: &[u8], width: usize, height: usize, options: &Options) -> Vec<u64> {
    let mut counts = vec![0u64; options.magnitude16_max() as usize + 1];
    for y in 0..height {
        for x in 0..width {
            let (gx, gy) =
                gradient_with(luma, width, height, x, y, options.kernel, options.ksize, Border::Reflect101);
            counts[magnitude_of(gx, gy, options.magnitude) as usize] += 1;
        }
    }
    counts
}

/// The whole image's output samples for `options` (which must be valid), one pixel at a time.
/// `threshold=otsu` is resolved from the whole image's histogram first; `canny` is
/// [`super::canny::canny`].
pub fn compute(options: &Options, luma: &[u8], width: usize, height: usize) -> Samples {
    assert_eq!(luma.len(), width * height, "luma buffer does not match its size");
    let sample = options.sample().expect("valid options");
    if options.output == Output::Canny {
        return Samples::U8(super::canny::canny(luma, width, height, options));
    }
    let threshold = match options.threshold {
        Threshold::Value(t) => t,
        Threshold::Otsu => otsu_threshold(&magnitude_histogram(luma, width, height, options)),
    };
    let mut out = Samples::zeros(sample, width * height);
    for y in 0..height {
        for x in 0..width {
            let i = y * width + x;
            let (gx, gy) =
                gradient_with(luma, width, height, x, y, options.kernel, options.ksize, Border::Reflect101);
            let m = || magnitude_of(gx, gy, options.magnitude);
            match (&mut out, options.output) {
                (Samples::U8(o), Output::Binary) => {
                    o[i] = if is_edge(gx, gy, options.magnitude, threshold) { 255 } else { 0 }
                }
                (Samples::U8(o), Output::Magnitude) => o[i] = m().min(255) as u8,
                (Samples::U16(o), Output::Magnitude16) => o[i] = m() as u16,
                (Samples::U32(o), Output::Magnitude16) => o[i] = m() as u32,
                (Samples::I16(o), Output::Gx) => o[i] = gx as i16,
                (Samples::I16(o), Output::Gy) => o[i] = gy as i16,
                (Samples::I32(o), Output::Gx) => o[i] = gx as i32,
                (Samples::I32(o), Output::Gy) => o[i] = gy as i32,
                (Samples::F32(o), Output::Direction) => o[i] = direction_degrees(gx as i32, gy as i32),
                (Samples::U8(o), Output::Direction) => {
                    o[i] = direction_byte(direction_degrees(gx as i32, gy as i32))
                }
                (other, output) => unreachable!("{output} is never stored as {other:?}"),
            }
        }
    }
    debug_assert!(matches!((sample, &out), (Sample::Bit, Samples::U8(_))) || sample != Sample::Bit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::FilterParams;

    #[test]
    fn the_3x3_sobel_is_the_original_gradient() {
        let mut rng = fastrand::Rng::with_seed(4);
        for (w, h) in [(1, 1), (2, 3), (5, 4), (9, 7)] {
            let luma: Vec<u8> = (0..w * h).map(|_| rng.u8(..)).collect();
            for y in 0..h {
                for x in 0..w {
                    let (gx, gy) = super::super::gradient(&luma, w, h, x, y);
                    let got = gradient_with(&luma, w, h, x, y, Kernel::Sobel, 3, Border::Reflect101);
                    assert_eq!(got, (gx as i64, gy as i64));
                }
            }
            // And the outputs of before, through the new definition.
            for params in [
                FilterParams::default(),
                FilterParams { output: crate::OutputMode::Magnitude, ..FilterParams::default() },
                FilterParams { magnitude: Magnitude::L1, threshold: 30, ..FilterParams::default() },
            ] {
                let want = super::super::filter_image(&luma, w, h, &params);
                assert_eq!(compute(&Options::from(params), &luma, w, h), Samples::U8(want));
            }
        }
    }

    #[test]
    fn hand_computed_kernels() {
        // A vertical step 0 | 16 between columns 2 and 3 of a 6x5 image.
        let (w, h) = (6, 5);
        let luma: Vec<u8> = (0..h).flat_map(|_| [0u8, 0, 0, 16, 16, 16]).collect();
        let g = |x, kernel, ksize| gradient_with(&luma, w, h, x, 2, kernel, ksize, Border::Reflect101);
        // ksize 1: p[x+1] - p[x-1], no smoothing.
        assert_eq!(g(2, Kernel::Sobel, 1), (16, 0));
        assert_eq!(g(1, Kernel::Sobel, 1), (0, 0));
        // 3x3: 16 * (1 + 2 + 1); Scharr: 16 * (3 + 10 + 3).
        assert_eq!(g(3, Kernel::Sobel, 3), (64, 0));
        assert_eq!(g(3, Kernel::Scharr, 3), (256, 0));
        // 5x5 at x=2: derivative [-1 -2 0 2 1] reads columns 0..=4: 16 * (2 + 1) * 16.
        assert_eq!(g(2, Kernel::Sobel, 5), (768, 0));
        // 7x7 at x=2: columns -1..=5, derivative [-1 -4 -5 0 5 4 1]: 16 * (5 + 4 + 1) * 64.
        assert_eq!(g(2, Kernel::Sobel, 7), (10_240, 0));
        // At x=0 reflect-101 mirrors the step: 7x7 reads columns 3, 2, 1, 0, 1, 2, 3.
        // Those are 16, 0, 0, 0, 0, 0, 16: the outer taps -1 and 1 cancel.
        assert_eq!(g(0, Kernel::Sobel, 7), (0, 0));
        // Replicate at x=0 reads 0,0,0,0,0,0,16: only the last tap sees the step.
        let r = gradient_with(&luma, w, h, 0, 2, Kernel::Sobel, 7, Border::Replicate);
        assert_eq!(r, (16 * 64, 0));
        // At x=1 it reads 0,0,0,0,0,16,16: the last two taps, 4 and 1.
        let r = gradient_with(&luma, w, h, 1, 2, Kernel::Sobel, 7, Border::Replicate);
        assert_eq!(r, (16 * 5 * 64, 0));
    }

    #[test]
    fn transposed_image_swaps_gx_and_gy() {
        let mut rng = fastrand::Rng::with_seed(8);
        let (w, h) = (7, 9);
        let luma: Vec<u8> = (0..w * h).map(|_| rng.u8(..)).collect();
        let t: Vec<u8> =
            (0..w).flat_map(|x| (0..h).map(move |y| (x, y))).map(|(x, y)| luma[y * w + x]).collect();
        for (kernel, ksize) in
            [(Kernel::Sobel, 1), (Kernel::Sobel, 5), (Kernel::Sobel, 7), (Kernel::Scharr, 3)]
        {
            for y in 0..h {
                for x in 0..w {
                    let (gx, gy) = gradient_with(&luma, w, h, x, y, kernel, ksize, Border::Reflect101);
                    let (tx, ty) = gradient_with(&t, h, w, y, x, kernel, ksize, Border::Reflect101);
                    assert_eq!((gx, gy), (ty, tx));
                }
            }
        }
    }

    #[test]
    fn magnitudes_and_edges() {
        assert_eq!(magnitude_of(3, -4, Magnitude::L2), 5);
        assert_eq!(magnitude_of(3, -4, Magnitude::L1), 7);
        assert_eq!(magnitude_of(163_200, 163_200, Magnitude::L2), 230_800);
        assert!(is_edge(30, 30, Magnitude::L2, 42));
        assert!(!is_edge(30, 30, Magnitude::L2, 43));
        assert!(is_edge(163_200, 163_200, Magnitude::L2, 230_799));
    }
}
