//! The scalar reference of DESIGN §2 and of `docs/operators.md`: small, slow and obviously
//! correct.
//!
//! Every fast path in this crate (and the whole distributed pipeline) is tested against these
//! functions. They are written to be read, not to be fast: one pixel at a time, with the
//! reflect-101 border rule spelled out in [`reflect101`]. This file holds the original 3×3
//! outputs; [`operators`] holds every kernel and output of [`crate::Options`], and [`canny`]
//! Canny's edges, each written from its definition.

pub mod canny;
pub mod operators;

pub use operators::{Border, compute, gradient_with, magnitude_histogram, taps};

use crate::params::{FilterParams, Magnitude, OutputMode};

/// BT.601 luma of one 8-bit RGB pixel in 14-bit fixed point (DESIGN §2.2).
pub fn luma_of_rgb(r: u8, g: u8, b: u8) -> u8 {
    ((4899 * r as u32 + 9617 * g as u32 + 1868 * b as u32 + 8192) >> 14) as u8
}

/// Index of coordinate `i` under reflect-101 borders: `p[-k] = p[k]`, `p[len-1+k] =
/// p[len-1-k]`, reflected again as often as it takes for an image narrower than the kernel (as
/// OpenCV's `borderInterpolate`); a dimension of 1 always reads index 0.
pub fn reflect101(i: isize, len: usize) -> usize {
    let len = len as isize;
    if len <= 1 {
        return 0;
    }
    let mut r = i;
    while r < 0 || r >= len {
        r = if r < 0 { -r } else { 2 * len - 2 - r };
    }
    r as usize
}

/// Integer square root rounded to nearest, for any `u64` (no ties exist for integers).
pub fn rounded_sqrt_u64(v: u64) -> u64 {
    let mut r = (v as f64).sqrt() as u64;
    while r > 0 && r.checked_mul(r).is_none_or(|sq| sq > v) {
        r -= 1;
    }
    while (r + 1).checked_mul(r + 1).is_some_and(|sq| sq <= v) {
        r += 1;
    }
    // sqrt(v) >= r + 1/2  <=>  v > r² + r.
    if v > r * r + r { r + 1 } else { r }
}

/// The Sobel gradients `(gx, gy)` at `(x, y)` of a `width`×`height` luma image.
pub fn gradient(luma: &[u8], width: usize, height: usize, x: usize, y: usize) -> (i32, i32) {
    let p = |dx: isize, dy: isize| -> i32 {
        let xx = reflect101(x as isize + dx, width);
        let yy = reflect101(y as isize + dy, height);
        luma[yy * width + xx] as i32
    };
    let gx = (p(1, -1) + 2 * p(1, 0) + p(1, 1)) - (p(-1, -1) + 2 * p(-1, 0) + p(-1, 1));
    let gy = (p(-1, 1) + 2 * p(0, 1) + p(1, 1)) - (p(-1, -1) + 2 * p(0, -1) + p(1, -1));
    (gx, gy)
}

/// Rounded integer square root: the integer nearest to `sqrt(v)` (never a tie for integers).
pub fn rounded_sqrt(v: u32) -> u32 {
    let mut r = (v as f64).sqrt() as u32;
    // Correct any floating-point slack so that r = floor(sqrt(v)) exactly.
    while r * r > v {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= v {
        r += 1;
    }
    // sqrt(v) >= r + 1/2  <=>  v >= r² + r + 1/4  <=>  v > r² + r (integers).
    if v > r * r + r { r + 1 } else { r }
}

/// The output byte for one pair of gradients (DESIGN §2.4).
pub fn output_byte(gx: i32, gy: i32, params: &FilterParams) -> u8 {
    let t = params.threshold as i64;
    match (params.output, params.magnitude) {
        (OutputMode::Binary, Magnitude::L2) => {
            let m2 = (gx as i64) * (gx as i64) + (gy as i64) * (gy as i64);
            if m2 > t * t { 255 } else { 0 }
        }
        (OutputMode::Binary, Magnitude::L1) => {
            if (gx.abs() + gy.abs()) as i64 > t {
                255
            } else {
                0
            }
        }
        (OutputMode::Magnitude, Magnitude::L2) => rounded_sqrt((gx * gx + gy * gy) as u32).min(255) as u8,
        (OutputMode::Magnitude, Magnitude::L1) => (gx.abs() + gy.abs()).min(255) as u8,
    }
}

/// The whole-image reference: one output byte per pixel, row-major.
pub fn filter_image(luma: &[u8], width: usize, height: usize, params: &FilterParams) -> Vec<u8> {
    assert_eq!(luma.len(), width * height, "luma buffer does not match its size");
    let mut out = Vec::with_capacity(luma.len());
    for y in 0..height {
        for x in 0..width {
            let (gx, gy) = gradient(luma, width, height, x, y);
            out.push(output_byte(gx, gy, params));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(t: u16) -> FilterParams {
        FilterParams { threshold: t, ..FilterParams::default() }
    }

    fn magnitude(m: Magnitude) -> FilterParams {
        FilterParams { output: OutputMode::Magnitude, magnitude: m, ..FilterParams::default() }
    }

    #[test]
    fn reflect101_matches_the_definition() {
        assert_eq!(reflect101(-1, 5), 1);
        assert_eq!(reflect101(5, 5), 3);
        assert_eq!(reflect101(0, 5), 0);
        assert_eq!(reflect101(-1, 2), 1);
        assert_eq!(reflect101(2, 2), 0);
        assert_eq!(reflect101(-1, 1), 0);
        assert_eq!(reflect101(1, 1), 0);
        // Reflected again when the kernel is wider than the image.
        assert_eq!(reflect101(-3, 2), 1);
        assert_eq!(reflect101(4, 2), 0);
        assert_eq!(reflect101(-3, 3), 1);
        assert_eq!(reflect101(5, 3), 1);
    }

    #[test]
    fn luma_weights_sum_to_one() {
        assert_eq!(luma_of_rgb(255, 255, 255), 255);
        assert_eq!(luma_of_rgb(0, 0, 0), 0);
        assert_eq!(luma_of_rgb(255, 0, 0), 76); // 4899*255/16384 = 76.2
        assert_eq!(luma_of_rgb(0, 255, 0), 150); // 149.7
        assert_eq!(luma_of_rgb(0, 0, 255), 29); // 29.07
    }

    #[test]
    fn constant_image_gives_zeros() {
        let luma = vec![137u8; 7 * 5];
        for p in [binary(0), magnitude(Magnitude::L2), magnitude(Magnitude::L1)] {
            assert!(filter_image(&luma, 7, 5, &p).iter().all(|&v| v == 0));
        }
    }

    #[test]
    fn vertical_step_edge_hand_computed() {
        // Columns 0..2 are 0, columns 2..4 are 10: the edge lies between x=1 and x=2.
        let (w, h) = (4, 3);
        let luma: Vec<u8> = (0..h).flat_map(|_| [0u8, 0, 10, 10]).collect();
        // x=1: gx = 4*10 - 4*0 = 40; x=2: same; x=0 reflects to x=1 on the left: 4*0-4*0 = 0.
        // x=3 reflects p[4] = p[2] = 10: gx = 40 - 40 = 0. gy is 0 everywhere.
        for y in 0..h {
            assert_eq!(gradient(&luma, w, h, 0, y), (0, 0));
            assert_eq!(gradient(&luma, w, h, 1, y), (40, 0));
            assert_eq!(gradient(&luma, w, h, 2, y), (40, 0));
            assert_eq!(gradient(&luma, w, h, 3, y), (0, 0));
        }
        let m = filter_image(&luma, w, h, &magnitude(Magnitude::L2));
        assert_eq!(&m[..4], &[0, 40, 40, 0]);
        assert_eq!(&filter_image(&luma, w, h, &binary(39))[..4], &[0, 255, 255, 0]);
        assert_eq!(&filter_image(&luma, w, h, &binary(40))[..4], &[0, 0, 0, 0]);
    }

    #[test]
    fn horizontal_step_edge_hand_computed() {
        // Rows 0..2 are 0, rows 2..4 are 100: gy = 400 at rows 1 and 2, saturating magnitude.
        let (w, h) = (3, 4);
        let luma: Vec<u8> = [0u8, 0, 100, 100].iter().flat_map(|&v| [v; 3]).collect();
        assert_eq!(gradient(&luma, w, h, 1, 1), (0, 400));
        assert_eq!(gradient(&luma, w, h, 0, 2), (0, 400));
        assert_eq!(gradient(&luma, w, h, 2, 0), (0, 0));
        let m = filter_image(&luma, w, h, &magnitude(Magnitude::L1));
        assert_eq!(m, vec![0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0]);
    }

    #[test]
    fn diagonal_step_edge_hand_computed() {
        // p = 10 where x + y >= 3 (a diagonal edge), else 0, on 4x4.
        let (w, h) = (4, 4);
        let luma: Vec<u8> =
            (0..h).flat_map(|y| (0..w).map(move |x| if x + y >= 3 { 10 } else { 0 })).collect();
        // At (1,1): neighbours (2,2)=10 and (0,2)?0+2=2<3 -> 0; (2,0)?2<3 -> 0; (2,1)=10? 3 -> 10.
        // gx = (p(2,0) + 2p(2,1) + p(2,2)) - (p(0,0) + 2p(0,1) + p(0,2)) = (0 + 20 + 10) - 0 = 30
        // gy = (p(0,2) + 2p(1,2) + p(2,2)) - (p(0,0) + 2p(1,0) + p(2,0)) = (0 + 20 + 10) - 0 = 30
        assert_eq!(gradient(&luma, w, h, 1, 1), (30, 30));
        // sqrt(1800) = 42.43 -> 42 ; l1 = 60.
        let l2 = filter_image(&luma, w, h, &magnitude(Magnitude::L2));
        let l1 = filter_image(&luma, w, h, &magnitude(Magnitude::L1));
        assert_eq!(l2[w + 1], 42);
        assert_eq!(l1[w + 1], 60);
        // Binary l2 with T=42: 1800 > 1764 -> edge; T=43: 1800 > 1849 is false.
        assert_eq!(filter_image(&luma, w, h, &binary(42))[w + 1], 255);
        assert_eq!(filter_image(&luma, w, h, &binary(43))[w + 1], 0);
    }

    #[test]
    fn degenerate_sizes() {
        // 1x1: every neighbour is the pixel itself.
        assert_eq!(filter_image(&[200], 1, 1, &binary(0)), vec![0]);
        // 1xN (one row): gy reads row 0 for both neighbours, so gy = 0; gx as usual.
        let row = [0u8, 50, 100];
        assert_eq!(gradient(&row, 3, 1, 1, 0), (400, 0));
        assert_eq!(gradient(&row, 3, 1, 0, 0), (0, 0)); // p[-1] = p[1]
        // Nx1 (one column): gx = 0.
        assert_eq!(gradient(&row, 1, 3, 0, 1), (0, 400));
        // 2x2: reflect-101 maps -1 -> 1 and 2 -> 0, so every gradient is zero.
        let sq = [0u8, 255, 255, 0];
        for y in 0..2 {
            for x in 0..2 {
                assert_eq!(gradient(&sq, 2, 2, x, y), (0, 0));
            }
        }
    }

    #[test]
    fn rounded_sqrt_is_nearest() {
        for v in 0..200_000u32 {
            let exact = (v as f64).sqrt();
            assert_eq!(rounded_sqrt(v), exact.round() as u32, "v={v}");
            assert_eq!(rounded_sqrt_u64(v as u64), exact.round() as u64, "v={v}");
        }
        for r in [1u64, 1000, 230_800, 1 << 31, (1 << 32) - 1] {
            assert_eq!(rounded_sqrt_u64(r * r), r);
            assert_eq!(rounded_sqrt_u64(r * r + r), r);
            assert_eq!(rounded_sqrt_u64(r * r + r + 1), r + 1);
        }
        assert_eq!(rounded_sqrt_u64(u64::MAX), 1 << 32);
    }
}
