//! `threshold=otsu`: Otsu's threshold on the histogram of the integer magnitude, computed in
//! two phases so that strips can run anywhere.
//!
//! Phase 1 gives each strip's [`MagnitudeHistogram`] (a few kilobytes, [`MagnitudeHistogram::to_bytes`]);
//! the histograms add up ([`MagnitudeHistogram::add`]) to the image's, and
//! [`otsu_threshold`] picks the threshold; phase 2 is the `binary` output at that threshold.
//! The sum does not depend on how the image was cut, so neither does the threshold.
//!
//! **Definition.** With `n(t)` the pixels of magnitude at most `t`, `s(t)` the sum of their
//! magnitudes, `N` and `S` the totals, the threshold is the `t` with `0 < n(t) < N` that
//! maximises Otsu's between-class variance, which is proportional to
//! `(N·s(t) − S·n(t))² / (n(t)·(N − n(t)))`; the comparison is exact (integer arithmetic on
//! up to 512 bits), and among equal maxima the smallest `t` wins. Pixels whose magnitude is
//! above `t` are edges. An image with fewer than two distinct magnitudes has no such `t`: its
//! threshold is its one magnitude (0 for a flat image), so no pixel is an edge.

use crate::filter::KernelError;
use crate::wire::{Reader, put_header, put_varint};

/// How many pixels have each magnitude: `counts()[m]` pixels have magnitude `m`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MagnitudeHistogram {
    counts: Vec<u64>,
}

const MAGIC: &[u8; 4] = b"DSHG";
const VERSION: u8 = 1;

/// The largest bin count a histogram's bytes may declare (ksize 7's L1 magnitude reaches
/// 326 400).
const MAX_BINS: u64 = 1 << 20;

impl MagnitudeHistogram {
    /// A histogram of the given counts.
    pub fn from_counts(counts: Vec<u64>) -> Self {
        MagnitudeHistogram { counts }
    }

    /// The counts, from magnitude 0 up.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Adds another strip's histogram into this one.
    pub fn add(&mut self, other: &MagnitudeHistogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// Counts one pixel of magnitude `m`.
    #[inline]
    pub fn count(&mut self, m: usize) {
        if m >= self.counts.len() {
            self.counts.resize(m + 1, 0);
        }
        self.counts[m] += 1;
    }

    /// Otsu's threshold of this histogram.
    pub fn threshold(&self) -> u32 {
        otsu_threshold(&self.counts)
    }

    /// The histogram as bytes: `DSHG`, version 1, the number of bins up to the last nonzero
    /// one (varint), then each bin's count (varint).
    pub fn to_bytes(&self) -> Vec<u8> {
        let used = self.counts.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
        let mut out = Vec::with_capacity(16 + used * 2);
        put_header(&mut out, MAGIC, VERSION);
        put_varint(&mut out, used as u64);
        for &c in &self.counts[..used] {
            put_varint(&mut out, c);
        }
        out
    }

    /// Reads what [`Self::to_bytes`] wrote, refusing anything else.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KernelError> {
        let mut r = Reader::new(bytes, MAGIC, VERSION, "magnitude histogram")?;
        let bins = r.count(MAX_BINS, "bin count")?;
        let counts = (0..bins).map(|_| r.varint()).collect::<Result<Vec<_>, _>>()?;
        r.finish()?;
        Ok(MagnitudeHistogram { counts })
    }
}

/// `a·b` as 256 bits, least significant limb first.
fn mul_128(a: u128, b: u128) -> [u64; 4] {
    let (a0, a1) = (a as u64 as u128, (a >> 64) as u64 as u128);
    let (b0, b1) = (b as u64 as u128, (b >> 64) as u64 as u128);
    let mut out = [0u64; 4];
    for (i, x) in [a0, a1].into_iter().enumerate() {
        let mut carry = 0u128;
        for (j, y) in [b0, b1].into_iter().enumerate() {
            let t = x * y + out[i + j] as u128 + carry;
            out[i + j] = t as u64;
            carry = t >> 64;
        }
        out[i + 2] = carry as u64;
    }
    out
}

/// `a·b` as 384 bits for a 256-bit `a`.
fn mul_256_128(a: [u64; 4], b: u128) -> [u64; 6] {
    let b = [b as u64 as u128, (b >> 64) as u64 as u128];
    let mut out = [0u64; 6];
    for (i, &x) in a.iter().enumerate() {
        let mut carry = 0u128;
        for (j, &y) in b.iter().enumerate() {
            let t = x as u128 * y + out[i + j] as u128 + carry;
            out[i + j] = t as u64;
            carry = t >> 64;
        }
        out[i + 2] = carry as u64;
    }
    out
}

/// Whether `x²/d` (with `x = |N·s − S·n|`, `d = n·(N − n)`) of `a` is greater than of `b`.
fn greater(a: (u128, u128), b: (u128, u128)) -> bool {
    let left = mul_256_128(mul_128(a.0, a.0), b.1);
    let right = mul_256_128(mul_128(b.0, b.0), a.1);
    left.iter().rev().cmp(right.iter().rev()) == std::cmp::Ordering::Greater
}

/// Otsu's threshold of a histogram of magnitudes (see the module text for the definition).
pub fn otsu_threshold(counts: &[u64]) -> u32 {
    let total: u128 = counts.iter().map(|&c| c as u128).sum();
    let sum: u128 = counts.iter().enumerate().map(|(m, &c)| m as u128 * c as u128).sum();
    let mut best: Option<(u32, (u128, u128))> = None;
    let (mut n, mut s) = (0u128, 0u128);
    for (t, &c) in counts.iter().enumerate() {
        n += c as u128;
        s += t as u128 * c as u128;
        if n == 0 || n == total {
            continue;
        }
        let (ns, sn) = (total * s, sum * n);
        let x = ns.abs_diff(sn);
        let score = (x, n * (total - n));
        if best.is_none_or(|(_, b)| greater(score, b)) {
            best = Some((t as u32, score));
        }
    }
    match best {
        Some((t, _)) => t,
        // Fewer than two distinct magnitudes: the one there is (0 when empty).
        None => counts.iter().position(|&c| c != 0).unwrap_or(0) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same maximum with exact rationals on small counts (everything fits in u128).
    fn brute(counts: &[u64]) -> u32 {
        let total: u128 = counts.iter().map(|&c| c as u128).sum();
        let sum: u128 = counts.iter().enumerate().map(|(m, &c)| m as u128 * c as u128).sum();
        let mut best: Option<(u32, u128, u128)> = None;
        for t in 0..counts.len() {
            let n: u128 = counts[..=t].iter().map(|&c| c as u128).sum();
            let s: u128 = counts[..=t].iter().enumerate().map(|(m, &c)| m as u128 * c as u128).sum();
            if n == 0 || n == total {
                continue;
            }
            let x = (total * s).abs_diff(sum * n);
            let (num, den) = (x * x, n * (total - n));
            if best.is_none_or(|(_, bn, bd)| num * bd > bn * den) {
                best = Some((t as u32, num, den));
            }
        }
        best.map_or(counts.iter().position(|&c| c != 0).unwrap_or(0) as u32, |b| b.0)
    }

    #[test]
    fn matches_exact_rationals_on_random_histograms() {
        let mut rng = fastrand::Rng::with_seed(12);
        for _ in 0..3000 {
            let bins = rng.usize(1..40);
            let counts: Vec<u64> = (0..bins).map(|_| if rng.bool() { 0 } else { rng.u64(0..50) }).collect();
            assert_eq!(otsu_threshold(&counts), brute(&counts), "{counts:?}");
        }
    }

    #[test]
    fn two_clusters_split_between_them_and_ties_take_the_smallest() {
        // Half the pixels at 10, half at 50: every t in 10..50 splits them the same way.
        let mut counts = vec![0u64; 60];
        counts[10] = 100;
        counts[50] = 100;
        assert_eq!(otsu_threshold(&counts), 10);
        assert_eq!(otsu_threshold(&[0, 0, 7]), 2);
        assert_eq!(otsu_threshold(&[]), 0);
        assert_eq!(otsu_threshold(&[5]), 0);
        // Large counts (a 48 MP image) still compare exactly.
        let mut big = vec![0u64; 1500];
        big[0] = 40_000_000;
        big[300] = 5_000_000;
        big[1400] = 3_000_000;
        // (Checked with Python's exact fractions: the first split after 300 loses.)
        assert_eq!(otsu_threshold(&big), 300);
    }

    #[test]
    fn bytes_round_trip_and_sums_are_the_whole() {
        let a = MagnitudeHistogram::from_counts(vec![5, 0, 3, 0, 0]);
        let b = MagnitudeHistogram::from_counts(vec![1, 2, 0, 0, 0, 0, 9]);
        let bytes = a.to_bytes();
        assert_eq!(MagnitudeHistogram::from_bytes(&bytes).unwrap().counts(), &[5, 0, 3]);
        let mut sum = a.clone();
        sum.add(&b);
        assert_eq!(sum.counts(), &[6, 2, 3, 0, 0, 0, 9]);
        assert!(MagnitudeHistogram::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(MagnitudeHistogram::from_bytes(b"DSHG\x02\x00").is_err());
    }
}
