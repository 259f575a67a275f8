//! The reference of the `canny` output: `cv2.Canny(gray, low, high, apertureSize=ksize,
//! L2gradient=...)` written from its definition, one pixel at a time.
//!
//! 1. Gradients with Sobel's kernel of `ksize` and *replicated* borders; for `ksize` 7 each is
//!    divided by 16 and rounded half to even (OpenCV scales them to fit 16 bits).
//! 2. The magnitude `m`: `gx² + gy²` (L2) or `|gx| + |gy|` (L1), and 0 outside the image.
//! 3. Non-maximum suppression with OpenCV's fixed-point sectors: with `a = |gx|` and
//!    `b = |gy|·2¹⁵`, the gradient is horizontal when `b < 13573·a` (tan 22.5° in 15-bit
//!    fixed point), vertical when `b > (13573 + 2¹⁶)·a`, else diagonal. A pixel survives when
//!    `m > low` and `m` is a maximum along its gradient: `m > left` and `m ≥ right`
//!    (horizontal), `m > above` and `m ≥ below` (vertical), and strictly above both diagonal
//!    neighbours on the diagonal the signs of `gx` and `gy` pick.
//! 4. A survivor is strong when `m > high`, weak otherwise. Thresholds are in magnitude units:
//!    `low` for L1 and `low²` for L2, after dividing by 16 for `ksize` 7 (and flooring).
//! 5. Hysteresis: the edges are the survivors 8-connected, through survivors, to a strong one.

use crate::params::{Magnitude, Options};

use super::operators::{Border, gradient_with};

/// `(low, high)` in the units of the magnitude `m` that the suppression compares them with.
pub fn thresholds(options: &Options) -> (i64, i64) {
    let unit = |t: u32| -> i64 {
        let t = t as i64;
        match (options.magnitude, options.ksize) {
            (Magnitude::L1, 7) => t / 16,
            (Magnitude::L2, 7) => t * t / 256,
            (Magnitude::L1, _) => t,
            (Magnitude::L2, _) => t * t,
        }
    };
    (unit(options.low), unit(options.high))
}

/// Rounds `v / 16` to the nearest integer, ties to even.
pub fn div16_round_even(v: i64) -> i64 {
    let q = v.div_euclid(16);
    let r = v.rem_euclid(16);
    if r > 8 || (r == 8 && q % 2 != 0) { q + 1 } else { q }
}

/// Canny's gradient at `(x, y)`, as OpenCV's Canny computes it.
pub fn canny_gradient(luma: &[u8], width: usize, height: usize, x: usize, y: usize, ksize: u8) -> (i64, i64) {
    let (gx, gy) =
        gradient_with(luma, width, height, x, y, crate::params::Kernel::Sobel, ksize, Border::Replicate);
    if ksize == 7 { (div16_round_even(gx), div16_round_even(gy)) } else { (gx, gy) }
}

/// Canny's edge map (0 or 255 per pixel) of a `width` × `height` luma image.
pub fn canny(luma: &[u8], width: usize, height: usize, options: &Options) -> Vec<u8> {
    assert_eq!(luma.len(), width * height, "luma buffer does not match its size");
    let (low, high) = thresholds(options);
    let grad: Vec<(i64, i64)> = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .map(|(x, y)| canny_gradient(luma, width, height, x, y, options.ksize))
        .collect();
    let magnitude = |x: isize, y: isize| -> i64 {
        if x < 0 || y < 0 || x >= width as isize || y >= height as isize {
            return 0;
        }
        let (gx, gy) = grad[y as usize * width + x as usize];
        match options.magnitude {
            Magnitude::L2 => gx * gx + gy * gy,
            Magnitude::L1 => gx.abs() + gy.abs(),
        }
    };
    // 0: not an edge; 1: weak survivor; 2: strong survivor.
    let mut class = vec![0u8; width * height];
    for y in 0..height as isize {
        for x in 0..width as isize {
            let m = magnitude(x, y);
            if m <= low {
                continue;
            }
            let (gx, gy) = grad[y as usize * width + x as usize];
            let a = gx.abs();
            let b = gy.abs() << 15;
            let tg22 = a * 13573;
            let tg67 = tg22 + (a << 16);
            let survives = if b < tg22 {
                m > magnitude(x - 1, y) && m >= magnitude(x + 1, y)
            } else if b > tg67 {
                m > magnitude(x, y - 1) && m >= magnitude(x, y + 1)
            } else {
                // OpenCV's `(gx ^ gy) < 0`: the signs differ.
                let s = if (gx < 0) != (gy < 0) { -1 } else { 1 };
                m > magnitude(x - s, y - 1) && m > magnitude(x + s, y + 1)
            };
            if survives {
                class[y as usize * width + x as usize] = if m > high { 2 } else { 1 };
            }
        }
    }
    let mut edges = vec![0u8; width * height];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for y in 0..height {
        for x in 0..width {
            if class[y * width + x] == 2 {
                edges[y * width + x] = 255;
                stack.push((x, y));
            }
        }
    }
    while let Some((x, y)) = stack.pop() {
        for ny in y.saturating_sub(1)..(y + 2).min(height) {
            for nx in x.saturating_sub(1)..(x + 2).min(width) {
                let i = ny * width + nx;
                if class[i] != 0 && edges[i] == 0 {
                    edges[i] = 255;
                    stack.push((nx, ny));
                }
            }
        }
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Output;

    fn options(low: u32, high: u32, ksize: u8, magnitude: Magnitude) -> Options {
        Options { output: Output::Canny, low, high, ksize, magnitude, ..Options::default() }
    }

    #[test]
    fn rounding_and_thresholds() {
        assert_eq!(div16_round_even(8), 0);
        assert_eq!(div16_round_even(24), 2);
        assert_eq!(div16_round_even(-8), 0);
        assert_eq!(div16_round_even(-24), -2);
        assert_eq!(div16_round_even(9), 1);
        assert_eq!(div16_round_even(-9), -1);
        assert_eq!(thresholds(&options(50, 100, 3, Magnitude::L2)), (2500, 10_000));
        assert_eq!(thresholds(&options(50, 100, 3, Magnitude::L1)), (50, 100));
        assert_eq!(thresholds(&options(50, 1000, 7, Magnitude::L1)), (3, 62));
        assert_eq!(thresholds(&options(50, 1000, 7, Magnitude::L2)), (9, 3906));
    }

    #[test]
    fn a_step_gives_one_thin_line_and_hysteresis_follows_a_fading_edge() {
        // A vertical step: the line is one pixel wide, on the side the `>=` tie rule picks.
        let (w, h) = (8, 6);
        let luma: Vec<u8> = (0..h).flat_map(|_| [0u8, 0, 0, 0, 200, 200, 200, 200]).collect();
        let edges = canny(&luma, w, h, &options(100, 200, 3, Magnitude::L1));
        for y in 0..h {
            let row = &edges[y * w..(y + 1) * w];
            assert_eq!(row, &[0, 0, 0, 255, 0, 0, 0, 0], "row {y}");
        }
        // A step that grows down the image: only its bottom is strong at high=200, and
        // hysteresis carries the edge up the whole line, as if every survivor were strong.
        let h = 10;
        let luma: Vec<u8> =
            (0..h).flat_map(|y| [0u8, 0, 0, 0].into_iter().chain([40 + 2 * y as u8; 4])).collect();
        let all_strong = canny(&luma, w, h, &options(10, 10, 3, Magnitude::L1));
        let from_the_bottom = canny(&luma, w, h, &options(10, 200, 3, Magnitude::L1));
        assert!(all_strong.iter().filter(|&&v| v == 255).count() >= h, "{all_strong:?}");
        assert_eq!(from_the_bottom, all_strong);
        let none_strong = canny(&luma, w, h, &options(10, 100_000, 3, Magnitude::L1));
        assert!(none_strong.iter().all(|&v| v == 0));
    }

    #[test]
    fn flat_and_tiny_images_have_no_edges() {
        for (w, h) in [(1, 1), (1, 5), (5, 1), (3, 3)] {
            let luma = vec![77u8; w * h];
            for ksize in [3, 5, 7] {
                assert!(canny(&luma, w, h, &options(0, 0, ksize, Magnitude::L2)).iter().all(|&v| v == 0));
            }
        }
    }
}
