//! Fast gradient rows for every kernel, and the per-pixel steps from gradients to outputs.
//!
//! Two shapes of loop, both written on equal-length slices with no branch per pixel so that
//! each backend (compiled through `row::run`) turns them into vector code:
//!
//! - [`sobel3_row`]: Sobel 3×3 fused, three luma rows in, `(gx, gy)` in 16-bit integers handed
//!   straight to a per-pixel step, with no gradient rows in memory (as the original row
//!   kernel);
//! - [`Separable`]: any kernel of [`crate::reference::taps`] in two passes per row: down the
//!   columns (the smoothing for `gx` and the derivative for `gy`, into rows padded by the
//!   border rule), then along the row, in 32-bit integers.
//!
//! The per-pixel steps ([`rounded_sqrt_small`], [`rounded_sqrt_large`]...) are exact for the
//! ranges they are used on; the tests check them against the reference's integer square root.

use crate::filter::RowBlock;
use crate::params::Kernel;
use crate::reference::{Border, taps};

/// The nearest integer to `√m2`, for `0 ≤ m2 ≤ 3·10⁸` (every L2 sum of Sobel up to 5×5 and of
/// Scharr): the single-precision root is within 0.01 of the true one there, so the rounded
/// value is off by at most one, and one integer step each way corrects it
/// (`r² − r < m2 ≤ r² + r` holds exactly for the nearest `r`).
#[inline(always)]
pub(crate) fn rounded_sqrt_small(m2: i32) -> i32 {
    // The root rounded to an integer by adding 2²³, which leaves the integer in the low
    // mantissa bits (exact below 2²²): unlike `as i32`, this vectorises.
    const MAGIC: f32 = 8_388_608.0;
    let r = ((m2 as f32).sqrt() + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32;
    let r = if m2 > r * r + r { r + 1 } else { r };
    if r > 0 && m2 <= r * r - r { r - 1 } else { r }
}

/// The nearest integer to `√m2` for `0 ≤ m2 ≤ 2·1020²` (every L2 sum of Sobel 3×3): `m2` is
/// exact in single precision there, and its correctly rounded root is within 6·10⁻⁵ of the
/// true one, closer than any integer's root comes to a half-integer (`1/(8√m2)` ≥ 8.6·10⁻⁵),
/// so rounding it to nearest needs no correction (checked for every `m2` by a test).
#[inline(always)]
pub(crate) fn rounded_sqrt_3x3(m2: i32) -> i32 {
    const MAGIC: f32 = 8_388_608.0;
    ((m2 as f32).sqrt() + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
}

/// The nearest integer to `√m2` for `0 ≤ m2 < 2⁵³`: the double-precision root is correctly
/// rounded, and an integer's root is never closer to a half-integer than `1/(8√m2)`, far more
/// than its error.
#[inline(always)]
pub(crate) fn rounded_sqrt_large(m2: i64) -> i64 {
    ((m2 as f64).sqrt() + 0.5) as i64
}

/// The per-pixel step from a pixel's 3×3 gradients to its output sample. A trait rather than a
/// closure, so that `#[inline(always)]` holds and the step is vectorised with its loop.
pub(crate) trait Step<T> {
    /// The output sample of the gradients `(gx, gy)`.
    fn step(&self, gx: i16, gy: i16) -> T;
}

/// One output row of Sobel 3×3 from the luma rows `above`, `cur`, `below` (all `out.len()`
/// long): `step(gx, gy)` of each pixel, interior columns in one vectorisable loop and the two
/// edge columns read past the edge by `border`.
#[inline(always)]
pub(crate) fn sobel3_row<T, S: Step<T>>(
    above: &[u8],
    cur: &[u8],
    below: &[u8],
    out: &mut [T],
    border: Border,
    step: &S,
) {
    let w = out.len();
    if w == 0 {
        return;
    }
    let edge = |x: usize| -> (i16, i16) {
        let l = border.index(x as isize - 1, w);
        let r = border.index(x as isize + 1, w);
        let px = |row: &[u8], i: usize| row[i] as i16;
        let gx =
            (px(above, r) + 2 * px(cur, r) + px(below, r)) - (px(above, l) + 2 * px(cur, l) + px(below, l));
        let gy = (px(below, l) + 2 * px(below, x) + px(below, r))
            - (px(above, l) + 2 * px(above, x) + px(above, r));
        (gx, gy)
    };
    let (gx, gy) = edge(0);
    out[0] = step.step(gx, gy);
    if w == 1 {
        return;
    }
    let (gx, gy) = edge(w - 1);
    out[w - 1] = step.step(gx, gy);
    let n = w - 2;
    let inner = &mut out[1..w - 1];
    let (a0, a1, a2) = (&above[..n], &above[1..n + 1], &above[2..n + 2]);
    let (c0, c2) = (&cur[..n], &cur[2..n + 2]);
    let (b0, b1, b2) = (&below[..n], &below[1..n + 1], &below[2..n + 2]);
    for i in 0..n {
        let left = a0[i] as i16 + 2 * c0[i] as i16 + b0[i] as i16;
        let right = a2[i] as i16 + 2 * c2[i] as i16 + b2[i] as i16;
        let top = a0[i] as i16 + 2 * a1[i] as i16 + a2[i] as i16;
        let bottom = b0[i] as i16 + 2 * b1[i] as i16 + b2[i] as i16;
        inner[i] = step.step(right - left, bottom - top);
    }
}

/// Largest kernel radius (Sobel 7×7).
const MAX_RADIUS: usize = 3;

/// The two-pass gradient of any kernel, with its scratch rows (one per thread).
pub(crate) struct Separable {
    derivative: [i32; 7],
    smoothing: [i32; 7],
    derivative_len: usize,
    smoothing_len: usize,
    border: Border,
    /// Column sums for `gx` (smoothing down), padded by `MAX_RADIUS` on each side.
    down_smooth: Vec<i32>,
    /// Column sums for `gy` (derivative down), padded likewise.
    down_derive: Vec<i32>,
}

impl Separable {
    /// Scratch for rows of `width` pixels.
    pub(crate) fn new(kernel: Kernel, ksize: u8, border: Border, width: usize) -> Separable {
        let (d, s) = taps(kernel, ksize);
        let mut derivative = [0; 7];
        let mut smoothing = [0; 7];
        for (dst, &v) in derivative.iter_mut().zip(d) {
            *dst = v as i32;
        }
        for (dst, &v) in smoothing.iter_mut().zip(s) {
            *dst = v as i32;
        }
        Separable {
            derivative,
            smoothing,
            derivative_len: d.len(),
            smoothing_len: s.len(),
            border,
            down_smooth: vec![0; width + 2 * MAX_RADIUS],
            down_derive: vec![0; width + 2 * MAX_RADIUS],
        }
    }

    /// The gradients of image row `y` of `block` into `gx` and `gy` (each `width` long; the
    /// block holds the rows the kernel reads).
    #[inline(always)]
    pub(crate) fn row(&mut self, block: &RowBlock<'_>, y: usize, gx: &mut [i32], gy: &mut [i32]) {
        let w = block.width;
        let h = block.image_height;
        let border = self.border;
        let row_at = |offset: isize| &block.row(border.index(y as isize + offset, h))[..w];
        // Down the columns.
        for (taps, len, down) in [
            (&self.smoothing, self.smoothing_len, &mut self.down_smooth),
            (&self.derivative, self.derivative_len, &mut self.down_derive),
        ] {
            let centre = (len / 2) as isize;
            let sums = &mut down[MAX_RADIUS..MAX_RADIUS + w];
            sums.fill(0);
            for (t, &c) in taps[..len].iter().enumerate() {
                if c == 0 {
                    continue;
                }
                let src = row_at(t as isize - centre);
                for (s, &p) in sums.iter_mut().zip(src) {
                    *s += c * p as i32;
                }
            }
            // The columns past the edges, by the border rule.
            for k in 1..=MAX_RADIUS {
                down[MAX_RADIUS - k] = down[MAX_RADIUS + border.index(-(k as isize), w)];
                down[MAX_RADIUS + w - 1 + k] = down[MAX_RADIUS + border.index((w - 1 + k) as isize, w)];
            }
        }
        // Along the row.
        for (taps, len, down, out) in [
            (&self.derivative, self.derivative_len, &self.down_smooth, &mut *gx),
            (&self.smoothing, self.smoothing_len, &self.down_derive, &mut *gy),
        ] {
            let centre = len / 2;
            let out = &mut out[..w];
            out.fill(0);
            for (t, &c) in taps[..len].iter().enumerate() {
                if c == 0 {
                    continue;
                }
                let start = MAX_RADIUS + t - centre;
                let src = &down[start..start + w];
                for (o, &v) in out.iter_mut().zip(src) {
                    *o += c * v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{gradient_with, rounded_sqrt_u64};

    #[test]
    fn square_roots_are_exact_on_their_ranges() {
        for m2 in 0..=2 * 1020 * 1020 {
            assert_eq!(rounded_sqrt_3x3(m2) as u64, rounded_sqrt_u64(m2 as u64), "m2={m2}");
        }
        for m2 in (0..=3_000_000i32).chain((299_000_000..=299_635_200).step_by(7)) {
            assert_eq!(rounded_sqrt_small(m2) as u64, rounded_sqrt_u64(m2 as u64), "m2={m2}");
        }
        for r in [0i64, 1, 17_310, 230_800] {
            for m2 in [r * r, r * r + r, r * r + r + 1, (r * r - r + 1).max(0)] {
                assert_eq!(rounded_sqrt_large(m2) as u64, rounded_sqrt_u64(m2 as u64), "m2={m2}");
            }
        }
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..2_000_000 {
            let m2 = rng.i64(0..=2 * 163_200 * 163_200);
            assert_eq!(rounded_sqrt_large(m2) as u64, rounded_sqrt_u64(m2 as u64), "m2={m2}");
        }
    }

    #[test]
    fn separable_rows_equal_the_reference() {
        let mut rng = fastrand::Rng::with_seed(6);
        for (w, h) in [(1, 1), (2, 3), (3, 1), (7, 9), (16, 5)] {
            let luma: Vec<u8> = (0..w * h).map(|_| rng.u8(..)).collect();
            let block = RowBlock::whole(&luma, w, h);
            for (kernel, ksize) in [
                (Kernel::Sobel, 1),
                (Kernel::Sobel, 3),
                (Kernel::Sobel, 5),
                (Kernel::Sobel, 7),
                (Kernel::Scharr, 3),
            ] {
                for border in [Border::Reflect101, Border::Replicate] {
                    let mut sep = Separable::new(kernel, ksize, border, w);
                    let (mut gx, mut gy) = (vec![0; w], vec![0; w]);
                    for y in 0..h {
                        sep.row(&block, y, &mut gx, &mut gy);
                        for x in 0..w {
                            let want = gradient_with(&luma, w, h, x, y, kernel, ksize, border);
                            assert_eq!(
                                (gx[x] as i64, gy[x] as i64),
                                want,
                                "{kernel} {ksize} {border:?} {w}x{h}"
                            );
                        }
                    }
                }
            }
        }
    }
}
