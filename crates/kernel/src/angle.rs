//! The `direction` output's angle, defined by the computation below.
//!
//! A platform's `atan2` is not the same everywhere (libm implementations differ in their last
//! bits), and a distributed job may run its strips on different machines; so the angle is
//! defined as this sequence of IEEE 754 double-precision operations, each correctly rounded on
//! every platform, in a fixed order, with no fused multiply-add: the same integers give the
//! same bits on every machine and in every backend.
//!
//! With `a = |gx|`, `b = |gy|` and `t = min(a, b) / max(a, b)` (0 when both are 0), two
//! half-angle steps `t ← t / (1 + √(1 + t²))` bring `t` below `tan(π/16) < 0.2`, where the
//! series `atan(t) = t − t³/3 + t⁵/5 − …` to `t²³/23` leaves an error below `10⁻¹⁸`. The angle
//! in `[0°, 45°]` is `4·atan(t)·(180/π)`, then reflected into its octant with exact constants
//! (`90 − θ` when `b > a`, `180 − θ` when `gx < 0`, `360 − θ` when `gy < 0`), and rounded to
//! single precision. The result is within `10⁻¹²` degrees of the true `atan2(gy, gx)` before
//! that rounding, so the `f32` is the correctly rounded angle except where the true angle lies
//! within `10⁻¹²` degrees of the midpoint of two `f32` values. `(0, 0)` has the angle 0.
//!
//! The 8-bit form (PNG) is `⌊d·256/360 + ½⌋ mod 256` of that `f32` value `d`, computed
//! exactly (as `⌊(256·d + 180) / 360⌋` in double precision, which no rounding can move across
//! an integer for these inputs): 256 steps of 1.40625°, 0 for east, 64 for south (image rows
//! grow downwards, so a positive `gy` points down), 128 for west, 192 for north.

/// 180/π, rounded to double precision.
const DEGREES_PER_RADIAN: f64 = 57.295_779_513_082_32;

/// `(-1)^k / (2k + 1)` for `k = 0..=11`: the series of `atan`.
const ATAN_SERIES: [f64; 12] = [
    1.0,
    -1.0 / 3.0,
    1.0 / 5.0,
    -1.0 / 7.0,
    1.0 / 9.0,
    -1.0 / 11.0,
    1.0 / 13.0,
    -1.0 / 15.0,
    1.0 / 17.0,
    -1.0 / 19.0,
    1.0 / 21.0,
    -1.0 / 23.0,
];

/// The direction of the gradient `(gx, gy)` in degrees in `[0, 360)` (see the module text).
#[inline(always)]
pub fn direction_degrees(gx: i32, gy: i32) -> f32 {
    let a = (gx as f64).abs();
    let b = (gy as f64).abs();
    let big = if a > b { a } else { b };
    let small = if a > b { b } else { a };
    let t = if big > 0.0 { small / big } else { 0.0 };
    let t = t / (1.0 + (1.0 + t * t).sqrt());
    let t = t / (1.0 + (1.0 + t * t).sqrt());
    let z = t * t;
    let mut series = ATAN_SERIES[11];
    let mut k = 11;
    while k > 0 {
        k -= 1;
        series = series * z + ATAN_SERIES[k];
    }
    let theta = (4.0 * (t * series)) * DEGREES_PER_RADIAN;
    let theta = if b > a { 90.0 - theta } else { theta };
    let theta = if gx < 0 { 180.0 - theta } else { theta };
    let theta = if gy < 0 { 360.0 - theta } else { theta };
    let d = theta as f32;
    // Unreachable for integer gradients (the smallest nonzero angle is far above f32's step
    // at 360), kept so that the range is a property of the code, not of an argument.
    if d >= 360.0 { 0.0 } else { d }
}

/// The 8-bit form of a direction `d` in degrees: `⌊d·256/360 + ½⌋ mod 256`.
#[inline(always)]
pub fn direction_byte(d: f32) -> u8 {
    (((d as f64) * 256.0 + 180.0) / 360.0).floor() as u32 as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_and_diagonals_are_exact() {
        assert_eq!(direction_degrees(0, 0), 0.0);
        assert_eq!(direction_degrees(5, 0), 0.0);
        assert_eq!(direction_degrees(0, 5), 90.0);
        assert_eq!(direction_degrees(-5, 0), 180.0);
        assert_eq!(direction_degrees(0, -5), 270.0);
        assert_eq!(direction_degrees(7, 7), 45.0);
        assert_eq!(direction_degrees(-7, 7), 135.0);
        assert_eq!(direction_degrees(-7, -7), 225.0);
        assert_eq!(direction_degrees(7, -7), 315.0);
        assert_eq!(direction_byte(0.0), 0);
        assert_eq!(direction_byte(90.0), 64);
        assert_eq!(direction_byte(180.0), 128);
        assert_eq!(direction_byte(270.0), 192);
        assert_eq!(direction_byte(359.9), 0);
        // The midpoint of the first step rounds up, just below it rounds down.
        assert_eq!(direction_byte(0.703_125), 1);
        assert_eq!(direction_byte(0.703_124_9), 0);
    }

    #[test]
    fn close_to_the_platform_atan2_everywhere() {
        // Every gradient of a 3x3 Sobel in a coarse grid, plus the extremes of ksize 7.
        let mut worst = 0f64;
        let mut check = |gx: i32, gy: i32| {
            let want = (gy as f64).atan2(gx as f64).to_degrees().rem_euclid(360.0);
            let got = direction_degrees(gx, gy) as f64;
            let mut err = (got - want).abs();
            if err > 180.0 {
                err = 360.0 - err;
            }
            worst = worst.max(err);
            assert!((0.0..360.0).contains(&got), "({gx}, {gy}) -> {got}");
        };
        for gx in (-1020..=1020).step_by(3) {
            for gy in (-1020..=1020).step_by(7) {
                check(gx, gy);
            }
        }
        for (gx, gy) in [(163_200, 1), (163_200, -1), (1, 163_200), (-163_200, 1), (163_199, 163_200)] {
            check(gx, gy);
        }
        // Half an f32 step at 360 degrees is 1.5e-5: the result is the f32 nearest the angle.
        assert!(worst < 1.6e-5, "worst error {worst} degrees");
    }

    #[test]
    fn the_f32_is_the_correctly_rounded_angle_on_a_dense_grid() {
        // The f64 of the platform's atan2 is within a few ulps of the angle; where it is not
        // near an f32 midpoint, its rounding to f32 is the correctly rounded angle.
        let mut checked = 0;
        for gx in -300..=300 {
            for gy in -300..=300 {
                let want = (gy as f64).atan2(gx as f64).to_degrees().rem_euclid(360.0);
                let rounded = want as f32;
                let next = f32::from_bits(rounded.to_bits() + 1) as f64;
                let prev = f32::from_bits(rounded.to_bits().saturating_sub(1)) as f64;
                let margin = ((want - (rounded as f64 + prev) / 2.0).abs())
                    .min((want - (rounded as f64 + next) / 2.0).abs());
                if margin > 1e-9 && want < 359.9999 {
                    assert_eq!(direction_degrees(gx, gy), rounded, "({gx}, {gy})");
                    checked += 1;
                }
            }
        }
        assert!(checked > 350_000, "{checked}");
    }
}
