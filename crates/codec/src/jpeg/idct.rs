//! The inverse DCT of libjpeg's default method (`JDCT_ISLOW`), bit for bit.
//!
//! This is the accurate integer IDCT of libjpeg and libjpeg-turbo (`jidctint.c`: 13-bit
//! constants, two extra bits kept between the column and the row pass), including its
//! output range limit, which wraps a value modulo 1024 before clamping. [`idct_scalar`] is
//! the plain version and the reference; [`Idct::Avx2`] computes the same integers eight
//! lanes at a time, and the tests hold it to the plain one. Arithmetic wraps on 32 bits, so
//! that corrupt coefficients give some output rather than a panic, the same in both.
#![allow(unsafe_code)]

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;
const FIX_0_298631336: i32 = 2446;
const FIX_0_390180644: i32 = 3196;
const FIX_0_541196100: i32 = 4433;
const FIX_0_765366865: i32 = 6270;
const FIX_0_899976223: i32 = 7373;
const FIX_1_175875602: i32 = 9633;
const FIX_1_501321110: i32 = 12299;
const FIX_1_847759065: i32 = 15137;
const FIX_1_961570560: i32 = 16069;
const FIX_2_053119869: i32 = 16819;
const FIX_2_562915447: i32 = 20995;
const FIX_3_072711026: i32 = 25172;

/// Which implementation runs; all give the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idct {
    /// Plain code.
    Scalar,
    /// x86-64 AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Idct {
    /// The fastest one this CPU runs.
    pub(crate) fn detect() -> Idct {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Idct::Avx2;
        }
        Idct::Scalar
    }

    /// Transforms one block of quantized coefficients (natural order) with its quantization
    /// table (natural order) into 8 rows of 8 samples at `out[0..]`, `out[stride..]`, ...
    #[inline]
    pub(crate) fn run(self, coefficients: &[i16; 64], quant: &[i16; 64], out: &mut [u8], stride: usize) {
        assert!(out.len() >= 7 * stride + 8, "output too small for an 8×8 block");
        match self {
            Idct::Scalar => idct_scalar(coefficients, quant, out, stride),
            // SAFETY: `detect` chose this variant only after checking that the CPU has AVX2.
            #[cfg(target_arch = "x86_64")]
            Idct::Avx2 => unsafe { avx2::idct(coefficients, quant, out, stride) },
        }
    }
}

/// libjpeg's `DESCALE`: a right shift that rounds.
#[inline(always)]
fn descale(x: i32, n: u32) -> i32 {
    x.wrapping_add(1 << (n - 1)) >> n
}

/// libjpeg's output range limit: the value (centred on 0) wrapped to 10 bits, then clamped.
#[inline(always)]
fn range_limit(x: i32) -> u8 {
    let wrapped = (x.wrapping_add(512) & 1023) - 512;
    (wrapped + 128).clamp(0, 255) as u8
}

/// The one-dimensional transform both passes share, on eight inputs; returns the outputs
/// before descaling.
#[inline(always)]
fn idct_1d(v: [i32; 8]) -> [i32; 8] {
    let mul = i32::wrapping_mul;
    // Even part.
    let z1 = mul(v[2].wrapping_add(v[6]), FIX_0_541196100);
    let tmp2 = z1.wrapping_add(mul(v[6], -FIX_1_847759065));
    let tmp3 = z1.wrapping_add(mul(v[2], FIX_0_765366865));
    let tmp0 = v[0].wrapping_add(v[4]).wrapping_shl(CONST_BITS);
    let tmp1 = v[0].wrapping_sub(v[4]).wrapping_shl(CONST_BITS);
    let tmp10 = tmp0.wrapping_add(tmp3);
    let tmp13 = tmp0.wrapping_sub(tmp3);
    let tmp11 = tmp1.wrapping_add(tmp2);
    let tmp12 = tmp1.wrapping_sub(tmp2);
    // Odd part.
    let (t0, t1, t2, t3) = (v[7], v[5], v[3], v[1]);
    let z1 = t0.wrapping_add(t3);
    let z2 = t1.wrapping_add(t2);
    let z3 = t0.wrapping_add(t2);
    let z4 = t1.wrapping_add(t3);
    let z5 = mul(z3.wrapping_add(z4), FIX_1_175875602);
    let t0 = mul(t0, FIX_0_298631336);
    let t1 = mul(t1, FIX_2_053119869);
    let t2 = mul(t2, FIX_3_072711026);
    let t3 = mul(t3, FIX_1_501321110);
    let z1 = mul(z1, -FIX_0_899976223);
    let z2 = mul(z2, -FIX_2_562915447);
    let z3 = mul(z3, -FIX_1_961570560).wrapping_add(z5);
    let z4 = mul(z4, -FIX_0_390180644).wrapping_add(z5);
    let t0 = t0.wrapping_add(z1).wrapping_add(z3);
    let t1 = t1.wrapping_add(z2).wrapping_add(z4);
    let t2 = t2.wrapping_add(z2).wrapping_add(z3);
    let t3 = t3.wrapping_add(z1).wrapping_add(z4);
    [
        tmp10.wrapping_add(t3),
        tmp11.wrapping_add(t2),
        tmp12.wrapping_add(t1),
        tmp13.wrapping_add(t0),
        tmp13.wrapping_sub(t0),
        tmp12.wrapping_sub(t1),
        tmp11.wrapping_sub(t2),
        tmp10.wrapping_sub(t3),
    ]
}

/// The reference: libjpeg's `jpeg_idct_islow`, column pass then row pass.
pub(crate) fn idct_scalar(coefficients: &[i16; 64], quant: &[i16; 64], out: &mut [u8], stride: usize) {
    let mut workspace = [0i32; 64];
    for column in 0..8 {
        let input: [i32; 8] = std::array::from_fn(|row| {
            (coefficients[row * 8 + column] as i32) * (quant[row * 8 + column] as i32)
        });
        let output = idct_1d(input);
        for row in 0..8 {
            workspace[row * 8 + column] = descale(output[row], CONST_BITS - PASS1_BITS);
        }
    }
    for row in 0..8 {
        let input: [i32; 8] = workspace[row * 8..row * 8 + 8].try_into().expect("eight values");
        let output = idct_1d(input);
        for (x, value) in output.into_iter().enumerate() {
            out[row * stride + x] = range_limit(descale(value, CONST_BITS + PASS1_BITS + 3));
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The same transform on AVX2: a block is eight vectors of eight 32-bit lanes.

    use std::arch::x86_64::*;

    use super::*;

    #[target_feature(enable = "avx2")]
    #[inline]
    fn add(a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(a, b)
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn sub(a: __m256i, b: __m256i) -> __m256i {
        _mm256_sub_epi32(a, b)
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn mul(a: __m256i, c: i32) -> __m256i {
        _mm256_mullo_epi32(a, _mm256_set1_epi32(c))
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn descale<const SHIFT: i32>(x: __m256i) -> __m256i {
        _mm256_srai_epi32::<SHIFT>(add(x, _mm256_set1_epi32(1 << (SHIFT - 1))))
    }

    /// [`idct_1d`] on eight vectors at once, with the descale of the pass.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn idct_1d_vectors<const SHIFT: i32>(v: [__m256i; 8]) -> [__m256i; 8] {
        let z1 = mul(add(v[2], v[6]), FIX_0_541196100);
        let tmp2 = add(z1, mul(v[6], -FIX_1_847759065));
        let tmp3 = add(z1, mul(v[2], FIX_0_765366865));
        let tmp0 = _mm256_slli_epi32::<{ CONST_BITS as i32 }>(add(v[0], v[4]));
        let tmp1 = _mm256_slli_epi32::<{ CONST_BITS as i32 }>(sub(v[0], v[4]));
        let tmp10 = add(tmp0, tmp3);
        let tmp13 = sub(tmp0, tmp3);
        let tmp11 = add(tmp1, tmp2);
        let tmp12 = sub(tmp1, tmp2);
        let (t0, t1, t2, t3) = (v[7], v[5], v[3], v[1]);
        let z1 = add(t0, t3);
        let z2 = add(t1, t2);
        let z3 = add(t0, t2);
        let z4 = add(t1, t3);
        let z5 = mul(add(z3, z4), FIX_1_175875602);
        let t0 = mul(t0, FIX_0_298631336);
        let t1 = mul(t1, FIX_2_053119869);
        let t2 = mul(t2, FIX_3_072711026);
        let t3 = mul(t3, FIX_1_501321110);
        let z1 = mul(z1, -FIX_0_899976223);
        let z2 = mul(z2, -FIX_2_562915447);
        let z3 = add(mul(z3, -FIX_1_961570560), z5);
        let z4 = add(mul(z4, -FIX_0_390180644), z5);
        let t0 = add(t0, add(z1, z3));
        let t1 = add(t1, add(z2, z4));
        let t2 = add(t2, add(z2, z3));
        let t3 = add(t3, add(z1, z4));
        [
            descale::<SHIFT>(add(tmp10, t3)),
            descale::<SHIFT>(add(tmp11, t2)),
            descale::<SHIFT>(add(tmp12, t1)),
            descale::<SHIFT>(add(tmp13, t0)),
            descale::<SHIFT>(sub(tmp13, t0)),
            descale::<SHIFT>(sub(tmp12, t1)),
            descale::<SHIFT>(sub(tmp11, t2)),
            descale::<SHIFT>(sub(tmp10, t3)),
        ]
    }

    /// Transposes an 8×8 matrix of 32-bit values held as eight row vectors.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn transpose(m: [__m256i; 8]) -> [__m256i; 8] {
        let a0 = _mm256_unpacklo_epi32(m[0], m[1]);
        let a1 = _mm256_unpackhi_epi32(m[0], m[1]);
        let a2 = _mm256_unpacklo_epi32(m[2], m[3]);
        let a3 = _mm256_unpackhi_epi32(m[2], m[3]);
        let a4 = _mm256_unpacklo_epi32(m[4], m[5]);
        let a5 = _mm256_unpackhi_epi32(m[4], m[5]);
        let a6 = _mm256_unpacklo_epi32(m[6], m[7]);
        let a7 = _mm256_unpackhi_epi32(m[6], m[7]);
        let b0 = _mm256_unpacklo_epi64(a0, a2);
        let b1 = _mm256_unpackhi_epi64(a0, a2);
        let b2 = _mm256_unpacklo_epi64(a1, a3);
        let b3 = _mm256_unpackhi_epi64(a1, a3);
        let b4 = _mm256_unpacklo_epi64(a4, a6);
        let b5 = _mm256_unpackhi_epi64(a4, a6);
        let b6 = _mm256_unpacklo_epi64(a5, a7);
        let b7 = _mm256_unpackhi_epi64(a5, a7);
        [
            _mm256_permute2x128_si256::<0x20>(b0, b4),
            _mm256_permute2x128_si256::<0x20>(b1, b5),
            _mm256_permute2x128_si256::<0x20>(b2, b6),
            _mm256_permute2x128_si256::<0x20>(b3, b7),
            _mm256_permute2x128_si256::<0x31>(b0, b4),
            _mm256_permute2x128_si256::<0x31>(b1, b5),
            _mm256_permute2x128_si256::<0x31>(b2, b6),
            _mm256_permute2x128_si256::<0x31>(b3, b7),
        ]
    }

    /// libjpeg's range limit on a row vector: wrapped to 10 bits and re-centred; the clamp to
    /// 0..=255 is the saturation of the final pack.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn wrap(row: __m256i) -> __m256i {
        sub(
            _mm256_and_si256(add(row, _mm256_set1_epi32(512)), _mm256_set1_epi32(1023)),
            _mm256_set1_epi32(384),
        )
    }

    /// Two rows to sixteen 16-bit values, in row order.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn pack_pair(a: __m256i, b: __m256i) -> __m256i {
        _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(wrap(a), wrap(b)))
    }

    /// Eight 16-bit values to eight 32-bit lanes.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn widen(values: &[i16]) -> __m256i {
        assert_eq!(values.len(), 8);
        // SAFETY: an unaligned 16-byte load from a slice of exactly 16 bytes.
        let raw = unsafe { _mm_loadu_si128(values.as_ptr() as *const __m128i) };
        _mm256_cvtepi16_epi32(raw)
    }

    /// See [`Idct::run`]; the caller checks that `out` holds `7 * stride + 8` bytes.
    #[target_feature(enable = "avx2")]
    pub(super) fn idct(coefficients: &[i16; 64], quant: &[i16; 64], out: &mut [u8], stride: usize) {
        let mut rows = [_mm256_setzero_si256(); 8];
        for (r, row) in rows.iter_mut().enumerate() {
            // libjpeg multiplies the 16-bit coefficient and quantizer into an int.
            *row =
                _mm256_mullo_epi32(widen(&coefficients[r * 8..r * 8 + 8]), widen(&quant[r * 8..r * 8 + 8]));
        }
        // Column pass: lane c of vector r is row r, column c; the transform runs down the
        // columns in every lane at once. The row pass runs on the transpose.
        let columns_done = idct_1d_vectors::<{ (CONST_BITS - PASS1_BITS) as i32 }>(rows);
        let rows_done = idct_1d_vectors::<{ (CONST_BITS + PASS1_BITS + 3) as i32 }>(transpose(columns_done));
        let t = transpose(rows_done);
        let halves = [
            _mm256_packus_epi16(pack_pair(t[0], t[1]), pack_pair(t[2], t[3])),
            _mm256_packus_epi16(pack_pair(t[4], t[5]), pack_pair(t[6], t[7])),
        ];
        for (half, bytes) in halves.into_iter().enumerate() {
            let mut lanes = [0u64; 4];
            // SAFETY: a 32-byte unaligned store into a 32-byte array.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, bytes) };
            // The packs interleave 8-byte groups: rows 0, 2, 1, 3 of this half.
            for (lane, row) in [0usize, 2, 1, 3].into_iter().enumerate() {
                let y = half * 4 + row;
                out[y * stride..y * stride + 8].copy_from_slice(&lanes[lane].to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_block(rng: &mut fastrand::Rng, magnitude: i16, density: f64) -> [i16; 64] {
        std::array::from_fn(|_| if rng.f64() < density { rng.i16(-magnitude..=magnitude) } else { 0 })
    }

    #[test]
    fn range_limit_is_libjpegs_table() {
        // libjpeg's table, indexed by (x & 1023) of the centred value.
        let table = |x: i32| -> u8 {
            let i = x & 1023;
            if i < 128 {
                (i + 128) as u8
            } else if i < 512 {
                255
            } else if i < 896 {
                0
            } else {
                (i - 896) as u8
            }
        };
        for x in -5000..5000 {
            assert_eq!(range_limit(x), table(x), "x = {x}");
        }
    }

    #[test]
    fn a_dc_only_block_is_flat_with_libjpegs_rounding() {
        let quant = [1i16; 64];
        for dc in -1024..1024i16 {
            let mut block = [0i16; 64];
            block[0] = dc;
            let mut out = [0u8; 64];
            idct_scalar(&block, &quant, &mut out, 8);
            // DC-only: ((dc << 2) + 16) >> 5, centred, clamped.
            let expected = range_limit(((dc as i32) * 4 + 16) >> 5);
            assert!(out.iter().all(|&v| v == expected), "dc {dc}");
        }
    }

    #[test]
    fn every_implementation_matches_the_scalar_one() {
        let implementations: Vec<Idct> = [Idct::Scalar, Idct::detect()].into_iter().collect();
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..20_000 {
            let (magnitude, density) = match round % 4 {
                0 => (2047, 1.0),
                1 => (300, 0.2),
                2 => (i16::MAX, 1.0), // corrupt data: wraps, must still agree
                _ => (60, 0.05),
            };
            let coefficients = random_block(&mut rng, magnitude, density);
            let quant: [i16; 64] =
                std::array::from_fn(|_| rng.i16(1..=if round % 8 == 2 { i16::MAX } else { 99 }));
            let mut expected = [0u8; 8 * 11];
            idct_scalar(&coefficients, &quant, &mut expected, 11);
            for &implementation in &implementations {
                let mut got = [0u8; 8 * 11];
                implementation.run(&coefficients, &quant, &mut got, 11);
                for row in 0..8 {
                    assert_eq!(
                        got[row * 11..row * 11 + 8],
                        expected[row * 11..row * 11 + 8],
                        "{implementation:?}, round {round}, row {row}"
                    );
                }
            }
        }
    }
}
