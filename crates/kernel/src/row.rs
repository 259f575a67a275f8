//! The fused row kernel: three luma rows in, one row of output bytes out, in one pass; and
//! [`run`], which compiles any other row loop of the crate ([`Job`]) for each backend the
//! same way.
//!
//! For an interior pixel the Sobel sums are computed straight from the three input rows in
//! 16-bit integers (|gx|, |gy| ≤ 1020), turned into the output byte at once, and never stored
//! as gradient planes. The two border columns follow reflect-101 and are done one pixel at a
//! time. The body is `#[inline(always)]` and branch-free per pixel, so that each backend in
//! [`crate::backend`] compiles it into vector code for its own instruction set.
#![allow(unsafe_code)] // The AVX2/AVX-512 entry points; see the crate's unsafe policy.

use crate::backend::Backend;
use crate::params::{FilterParams, Magnitude, OutputMode};
use crate::reference;

/// The per-pixel decision with its constants prepared once per call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Decision {
    /// `gx² + gy² > t²`, `t` clamped so that `t²` fits (any `t` ≥ 1443 gives all zeros anyway).
    BinaryL2 { t_squared: i32 },
    /// `|gx| + |gy| > t`, `t` clamped to 2041 (the largest sum is 2040).
    BinaryL1 { t: i16 },
    /// `min(255, round(sqrt(gx² + gy²)))`.
    MagnitudeL2,
    /// `min(255, |gx| + |gy|)`.
    MagnitudeL1,
}

impl Decision {
    pub(crate) fn new(params: &FilterParams) -> Decision {
        match (params.output, params.magnitude) {
            (OutputMode::Binary, Magnitude::L2) => {
                let t = params.threshold.min(2000) as i32;
                Decision::BinaryL2 { t_squared: t * t }
            }
            (OutputMode::Binary, Magnitude::L1) => {
                Decision::BinaryL1 { t: params.threshold.min(2041) as i16 }
            }
            (OutputMode::Magnitude, Magnitude::L2) => Decision::MagnitudeL2,
            (OutputMode::Magnitude, Magnitude::L1) => Decision::MagnitudeL1,
        }
    }
}

#[inline(always)]
fn binary_l2(gx: i16, gy: i16, t_squared: i32) -> u8 {
    let m2 = gx as i32 * gx as i32 + gy as i32 * gy as i32;
    0u8.wrapping_sub((m2 > t_squared) as u8)
}

#[inline(always)]
fn binary_l1(gx: i16, gy: i16, t: i16) -> u8 {
    0u8.wrapping_sub((gx.abs() + gy.abs() > t) as u8)
}

/// Rounded square root saturated at 255. Exact for every input: below 65 536 the distance from
/// `sqrt(m2)` to the nearest half-integer exceeds the f32 rounding error by a wide margin, and
/// above it the answer saturates (tested exhaustively against the reference).
#[inline(always)]
fn magnitude_l2(gx: i16, gy: i16) -> u8 {
    let m2 = (gx as i32 * gx as i32 + gy as i32 * gy as i32).min(65_535);
    // `as u8` saturates: 255.5 and above become 255.
    ((m2 as f32).sqrt() + 0.5) as u8
}

#[inline(always)]
fn magnitude_l1(gx: i16, gy: i16) -> u8 {
    (gx.abs() + gy.abs()).min(255) as u8
}

#[inline(always)]
fn decide(gx: i16, gy: i16, decision: Decision) -> u8 {
    match decision {
        Decision::BinaryL2 { t_squared } => binary_l2(gx, gy, t_squared),
        Decision::BinaryL1 { t } => binary_l1(gx, gy, t),
        Decision::MagnitudeL2 => magnitude_l2(gx, gy),
        Decision::MagnitudeL1 => magnitude_l1(gx, gy),
    }
}

/// Runs `decide_one` over the interior pixels `1..width-1`. Inputs are pre-sliced to equal
/// lengths so the compiler can drop bounds checks and vectorise.
#[inline(always)]
fn interior(above: &[u8], cur: &[u8], below: &[u8], out: &mut [u8], decide_one: impl Fn(i16, i16) -> u8) {
    let n = out.len();
    let (a0, a1, a2) = (&above[..n], &above[1..n + 1], &above[2..n + 2]);
    let (c0, c2) = (&cur[..n], &cur[2..n + 2]);
    let (b0, b1, b2) = (&below[..n], &below[1..n + 1], &below[2..n + 2]);
    for i in 0..n {
        let left = a0[i] as i16 + 2 * c0[i] as i16 + b0[i] as i16;
        let right = a2[i] as i16 + 2 * c2[i] as i16 + b2[i] as i16;
        let top = a0[i] as i16 + 2 * a1[i] as i16 + a2[i] as i16;
        let bottom = b0[i] as i16 + 2 * b1[i] as i16 + b2[i] as i16;
        out[i] = decide_one(right - left, bottom - top);
    }
}

/// One output pixel at column `x` with reflect-101 columns: used for the two border columns.
#[inline(always)]
fn border_pixel(above: &[u8], cur: &[u8], below: &[u8], x: usize, decision: Decision) -> u8 {
    let w = cur.len();
    let l = reference::reflect101(x as isize - 1, w);
    let r = reference::reflect101(x as isize + 1, w);
    let px = |row: &[u8], i: usize| row[i] as i16;
    let gx = (px(above, r) + 2 * px(cur, r) + px(below, r)) - (px(above, l) + 2 * px(cur, l) + px(below, l));
    let gy =
        (px(below, l) + 2 * px(below, x) + px(below, r)) - (px(above, l) + 2 * px(above, x) + px(above, r));
    decide(gx, gy, decision)
}

#[inline(always)]
fn row_body(above: &[u8], cur: &[u8], below: &[u8], out: &mut [u8], decision: Decision) {
    let w = cur.len();
    if w == 0 {
        return;
    }
    out[0] = border_pixel(above, cur, below, 0, decision);
    if w == 1 {
        return;
    }
    out[w - 1] = border_pixel(above, cur, below, w - 1, decision);
    let inner = &mut out[1..w - 1];
    match decision {
        Decision::BinaryL2 { t_squared } => {
            interior(above, cur, below, inner, |gx, gy| binary_l2(gx, gy, t_squared))
        }
        Decision::BinaryL1 { t } => interior(above, cur, below, inner, |gx, gy| binary_l1(gx, gy, t)),
        Decision::MagnitudeL2 => interior(above, cur, below, inner, magnitude_l2),
        Decision::MagnitudeL1 => interior(above, cur, below, inner, magnitude_l1),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Decision, row_body};

    /// # Safety
    /// The CPU must support AVX2 (checked by `Backend::is_supported`).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn row_avx2(above: &[u8], cur: &[u8], below: &[u8], out: &mut [u8], d: Decision) {
        row_body(above, cur, below, out, d)
    }

    /// # Safety
    /// The CPU must support AVX-512 F and BW (checked by `Backend::is_supported`).
    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    pub(super) unsafe fn row_avx512(above: &[u8], cur: &[u8], below: &[u8], out: &mut [u8], d: Decision) {
        row_body(above, cur, below, out, d)
    }

    /// # Safety
    /// The CPU must support AVX2 (checked by `Backend::is_supported`).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn run_avx2<J: super::Job>(job: J) -> J::Output {
        job.run()
    }

    /// # Safety
    /// The CPU must support AVX-512 F and BW (checked by `Backend::is_supported`).
    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    pub(super) unsafe fn run_avx512<J: super::Job>(job: J) -> J::Output {
        job.run()
    }
}

/// A loop of the crate to compile for each backend. Implementations mark [`Job::run`]
/// `#[inline(always)]`, so that its body, and every `#[inline(always)]` function it calls, is
/// inlined into a function built with the backend's instruction set ([`run`]): the same source
/// becomes AVX-512, AVX2 or baseline vector code. (A closure would not do: the compiler is free
/// not to inline a large one, and then it runs with the baseline instructions.)
pub(crate) trait Job {
    /// What the loop gives back.
    type Output;
    /// The loop.
    fn run(self) -> Self::Output;
}

/// Runs `job` compiled for `backend`. The caller guarantees that `backend` is supported (every
/// public entry point checks it once per call).
#[inline(always)]
pub(crate) fn run<J: Job>(backend: Backend, job: J) -> J::Output {
    debug_assert!(backend.is_supported());
    match backend {
        Backend::Baseline => job.run(),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the backend was checked to be supported by this CPU by the caller (each
        // public entry point refuses an unsupported one with `KernelError::Unsupported`).
        Backend::Avx2 => unsafe { x86::run_avx2(job) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Backend::Avx512 => unsafe { x86::run_avx512(job) },
        #[cfg(not(target_arch = "x86_64"))]
        Backend::Avx2 | Backend::Avx512 => job.run(),
    }
}

/// Filters one row. All four slices must have the same length (the image width); the caller
/// guarantees it and that `backend` is supported (both are checked once per call in
/// [`crate::filter`], not per row).
#[inline]
pub(crate) fn filter_row(
    backend: Backend,
    above: &[u8],
    cur: &[u8],
    below: &[u8],
    out: &mut [u8],
    d: Decision,
) {
    debug_assert!(above.len() == cur.len() && below.len() == cur.len() && out.len() == cur.len());
    debug_assert!(backend.is_supported());
    match backend {
        Backend::Baseline => row_body(above, cur, below, out, d),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the backend was checked to be supported by this CPU (debug-asserted above,
        // and guaranteed by every public entry point of the crate).
        Backend::Avx2 => unsafe { x86::row_avx2(above, cur, below, out, d) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Backend::Avx512 => unsafe { x86::row_avx512(above, cur, below, out, d) },
        #[cfg(not(target_arch = "x86_64"))]
        Backend::Avx2 | Backend::Avx512 => row_body(above, cur, below, out, d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitude_l2_is_exact_for_every_possible_sum() {
        // Every (gx, gy) pair is too many; every sum of squares up to the maximum is enough,
        // since the function only sees gx² + gy². Walk gx with gy chosen to cover each value.
        let params = FilterParams { output: OutputMode::Magnitude, ..FilterParams::default() };
        for gx in 0..=1020i16 {
            for gy in (0..=1020i16).step_by(7) {
                let want = reference::output_byte(gx as i32, gy as i32, &params);
                assert_eq!(magnitude_l2(gx, gy), want, "gx={gx} gy={gy}");
            }
        }
        for m2 in 0..=70_000i32 {
            let want = reference::rounded_sqrt(m2 as u32).min(255) as u8;
            let rounded = ((m2.min(65_535) as f32).sqrt() + 0.5) as u8;
            assert_eq!(rounded, want, "m2={m2}");
        }
    }

    #[test]
    fn binary_thresholds_match_the_reference_at_the_extremes() {
        for t in [0u16, 1, 100, 1442, 1443, 2000, 2040, 2041, 5000, u16::MAX] {
            for magnitude in [Magnitude::L2, Magnitude::L1] {
                let params = FilterParams { threshold: t, magnitude, output: OutputMode::Binary };
                let d = Decision::new(&params);
                for (gx, gy) in [(0, 0), (1020, 1020), (-1020, 1020), (1020, 0), (3, -4), (100, 0), (0, 101)]
                {
                    assert_eq!(
                        decide(gx, gy, d),
                        reference::output_byte(gx as i32, gy as i32, &params),
                        "t={t} {magnitude} ({gx},{gy})"
                    );
                }
            }
        }
    }
}
