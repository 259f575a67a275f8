//! Strip-wise PNG encoding that stitches without re-encoding (DESIGN §3).
//!
//! A PNG's pixels are one zlib stream split over `IDAT` chunks at arbitrary byte boundaries.
//! Each strip is compressed on its own into a raw deflate segment that ends on a byte-aligned
//! sync flush (only the last strip ends the stream), and is wrapped into complete `IDAT`
//! chunks with their CRCs. The first row of every strip uses a filter that does not look at
//! the row above. The stitcher then only concatenates: header (signature, `IHDR`, the 2-byte
//! zlib header) + the strips' chunks in order + an `IDAT` holding the Adler-32 combined from
//! the strips' own checksums + `IEND`. No pixel is decoded or compressed again.
//!
//! `binary` output is written as 1-bit grayscale (8 pixels a byte, 1 = white) and `magnitude`
//! as 8-bit grayscale; [`PngDepth`] also gives 16-bit grayscale (big-endian samples, the
//! filters working on bytes two apart), for `magnitude16`.

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::params::OutputMode;

/// The 8-byte PNG signature.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Largest `IDAT` payload written for one chunk.
const MAX_CHUNK_DATA: usize = 1 << 20;

/// Raw bytes gathered before they are handed to the compressor.
const PENDING_LIMIT: usize = 1 << 17;

/// How hard the deflate compressor works (zlib levels 1..=9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionLevel(pub u8);

impl Default for CompressionLevel {
    /// Level 3: the fast deflate strategy of levels 1–3 at its best ratio. On photographs'
    /// edge maps it writes 1-bit PNGs about two thirds the size of OpenCV's at a few ms per
    /// 12 MP, where level 1 writes larger files than OpenCV and levels 4–9 (lazy matching) cost
    /// several times more for a few percent; see docs/performance.md.
    fn default() -> Self {
        CompressionLevel(3)
    }
}

/// The bit depth of a gray PNG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PngDepth {
    /// 1 bit per pixel (edge maps).
    One,
    /// 8 bits per pixel.
    Eight,
    /// 16 bits per pixel, big-endian.
    Sixteen,
}

impl PngDepth {
    /// The depth of an original output mode.
    pub fn of(output: OutputMode) -> PngDepth {
        match output {
            OutputMode::Binary => PngDepth::One,
            OutputMode::Magnitude => PngDepth::Eight,
        }
    }

    /// Bits per pixel, as `IHDR` says it.
    pub fn bits(self) -> u8 {
        match self {
            PngDepth::One => 1,
            PngDepth::Eight => 8,
            PngDepth::Sixteen => 16,
        }
    }

    /// Bytes per scanline of `width` pixels, without the filter-type byte.
    pub fn scanline_bytes(self, width: usize) -> usize {
        match self {
            PngDepth::One => width.div_ceil(8),
            PngDepth::Eight => width,
            PngDepth::Sixteen => 2 * width,
        }
    }
}

/// Bytes per PNG scanline, without the filter-type byte.
pub fn scanline_bytes(width: usize, output: OutputMode) -> usize {
    PngDepth::of(output).scanline_bytes(width)
}

/// Appends one PNG chunk (length, type, data, CRC) to `out`.
pub fn write_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// Everything before the strips: signature, `IHDR`, and an `IDAT` with the zlib header.
pub fn png_header(width: u32, height: u32, output: OutputMode) -> Vec<u8> {
    png_header_depth(width, height, PngDepth::of(output))
}

/// [`png_header`] for any gray depth.
pub fn png_header_depth(width: u32, height: u32, depth: PngDepth) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&PNG_SIGNATURE);
    let bit_depth = depth.bits();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // bit depth, colour type 0 (gray), compression 0, filter 0, interlace 0
    ihdr.extend_from_slice(&[bit_depth, 0, 0, 0, 0]);
    write_chunk(&mut out, b"IHDR", &ihdr);
    // CMF 0x78: deflate, 32 KiB window; FLG 0x9c: default level, check bits for CMF*256+FLG % 31.
    write_chunk(&mut out, b"IDAT", &[0x78, 0x9c]);
    out
}

/// Everything after the strips: the `IDAT` with the stream's Adler-32, and `IEND`.
pub fn png_trailer(adler32: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(28);
    write_chunk(&mut out, b"IDAT", &adler32.to_be_bytes());
    write_chunk(&mut out, b"IEND", &[]);
    out
}

const ADLER_MOD: u32 = 65_521;

/// Adler-32 of `data`, continuing from `adler` (start with 1).
pub fn adler32_update(adler: u32, data: &[u8]) -> u32 {
    let (mut a, mut b) = (adler & 0xffff, adler >> 16);
    // 5552 is the largest n such that the sums cannot overflow u32 before the modulo.
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += byte as u32;
            b += a;
        }
        a %= ADLER_MOD;
        b %= ADLER_MOD;
    }
    (b << 16) | a
}

/// The Adler-32 of `A ‖ B` from `adler(A)`, `adler(B)` and `len(B)` (as zlib's
/// `adler32_combine`).
pub fn adler32_combine(adler_a: u32, adler_b: u32, len_b: u64) -> u32 {
    let m = ADLER_MOD as u64;
    let rem = len_b % m;
    let (a1, b1) = ((adler_a & 0xffff) as u64, (adler_a >> 16) as u64);
    let (a2, b2) = ((adler_b & 0xffff) as u64, (adler_b >> 16) as u64);
    // a = a1 + a2 - 1 ; b = b1 + b2 + rem*a1 - rem  (all mod m)
    let a = (a1 + a2 + m - 1) % m;
    let b = (b1 + b2 + rem * a1 % m + m - rem) % m;
    ((b << 16) | a) as u32
}

/// One strip's share of the PNG: complete `IDAT` chunks, plus what the stitcher needs to
/// close the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedStrip {
    /// Complete `IDAT` chunks holding the strip's deflate segment.
    pub chunks: Vec<u8>,
    /// Adler-32 of the strip's uncompressed scanlines (filter bytes included).
    pub adler32: u32,
    /// Length of the strip's uncompressed scanlines.
    pub raw_len: u64,
}

/// Packs a row of output bytes (0 or 255) into 1-bit pixels, most significant bit first.
pub fn pack_binary_row(bytes: &[u8], packed: &mut [u8]) {
    debug_assert_eq!(packed.len(), bytes.len().div_ceil(8));
    // Bit i of each byte sits at 8i+7; after >> 7 it is at 8i, and the multiplier moves it to
    // 63 - i, all 8 products landing on distinct bits (no carries), so the top byte is the
    // packed value.
    const SPREAD: u64 = 0x8040_2010_0804_0201;
    let mut chunks = bytes.chunks_exact(8);
    for (dst, chunk) in packed.iter_mut().zip(&mut chunks) {
        let v = u64::from_le_bytes(chunk.try_into().expect("chunk of 8"));
        let bits = (v & 0x8080_8080_8080_8080) >> 7;
        *dst = (bits.wrapping_mul(SPREAD) >> 56) as u8;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = 0u8;
        for (i, &b) in rest.iter().enumerate() {
            last |= (b >> 7) << (7 - i);
        }
        packed[packed.len() - 1] = last;
    }
}

/// Compresses the output rows of one strip into an [`EncodedStrip`], row by row.
pub struct StripEncoder {
    width: usize,
    depth: PngDepth,
    ends_stream: bool,
    compressor: Compress,
    pending: Vec<u8>,
    previous: Vec<u8>,
    rows_seen: usize,
    compressed: Vec<u8>,
    adler32: u32,
    raw_len: u64,
}

impl StripEncoder {
    /// A new encoder for rows of `width` output bytes; `ends_stream` is true for the strip that
    /// touches the bottom of the image.
    pub fn new(width: usize, output: OutputMode, ends_stream: bool, level: CompressionLevel) -> Self {
        Self::with_depth(width, PngDepth::of(output), ends_stream, level)
    }

    /// A new encoder of rows of any gray depth.
    pub fn with_depth(width: usize, depth: PngDepth, ends_stream: bool, level: CompressionLevel) -> Self {
        StripEncoder {
            width,
            depth,
            ends_stream,
            compressor: Compress::new(Compression::new(level.0.clamp(1, 9) as u32), false),
            pending: Vec::with_capacity(PENDING_LIMIT + depth.scanline_bytes(width) + 1),
            previous: Vec::new(),
            rows_seen: 0,
            compressed: Vec::new(),
            adler32: 1,
            raw_len: 0,
        }
    }

    /// Adds one row of `width` 16-bit samples (an encoder of [`PngDepth::Sixteen`]).
    pub fn push_row16(&mut self, row: &[u16]) {
        debug_assert_eq!(row.len(), self.width);
        debug_assert_eq!(self.depth, PngDepth::Sixteen);
        // Filter 1 (Sub, two bytes back) on a strip's first row, 2 (Up) after it.
        let start = self.pending.len();
        let first = self.rows_seen == 0;
        self.pending.push(if first { 1 } else { 2 });
        self.pending.resize(start + 1 + 2 * row.len(), 0);
        let line = &mut self.pending[start + 1..];
        for (pair, &v) in line.chunks_exact_mut(2).zip(row) {
            pair.copy_from_slice(&v.to_be_bytes());
        }
        let raw: Vec<u8> = line.to_vec();
        if first {
            for i in (2..line.len()).rev() {
                line[i] = line[i].wrapping_sub(line[i - 2]);
            }
        } else {
            for (b, &up) in line.iter_mut().zip(&self.previous) {
                *b = b.wrapping_sub(up);
            }
        }
        self.previous = raw;
        self.rows_seen += 1;
        if self.pending.len() >= PENDING_LIMIT {
            self.compress_pending(FlushCompress::None);
        }
    }

    /// Adds one row of `width` output bytes.
    pub fn push_row(&mut self, row: &[u8]) {
        debug_assert_eq!(row.len(), self.width);
        let line = self.depth.scanline_bytes(self.width);
        let start = self.pending.len();
        match self.depth {
            PngDepth::Sixteen => {
                let wide: Vec<u16> = row.iter().map(|&v| v as u16).collect();
                return self.push_row16(&wide);
            }
            PngDepth::One => {
                // Filter 0 (None): edge maps are sparse and 1-bit, so the other filters mostly
                // add noise; the first row of a strip needs no special case.
                self.pending.push(0);
                self.pending.resize(start + 1 + line, 0);
                pack_binary_row(row, &mut self.pending[start + 1..]);
            }
            PngDepth::Eight => {
                if self.rows_seen == 0 {
                    // Filter 1 (Sub) on a strip's first row: it never reads the row above.
                    self.pending.push(1);
                    let mut left = 0u8;
                    for &v in row {
                        self.pending.push(v.wrapping_sub(left));
                        left = v;
                    }
                } else {
                    // Filter 2 (Up).
                    self.pending.push(2);
                    self.pending.extend(row.iter().zip(&self.previous).map(|(&v, &up)| v.wrapping_sub(up)));
                }
                self.previous.clear();
                self.previous.extend_from_slice(row);
            }
        }
        self.rows_seen += 1;
        if self.pending.len() >= PENDING_LIMIT {
            self.compress_pending(FlushCompress::None);
        }
    }

    fn compress_pending(&mut self, flush: FlushCompress) {
        self.adler32 = adler32_update(self.adler32, &self.pending);
        self.raw_len += self.pending.len() as u64;
        let mut input: &[u8] = &self.pending;
        loop {
            if self.compressed.capacity() - self.compressed.len() < 4096 {
                self.compressed.reserve(input.len() / 2 + 8192);
            }
            let before_in = self.compressor.total_in();
            let status = self
                .compressor
                .compress_vec(input, &mut self.compressed, flush)
                .expect("deflate on an in-memory buffer cannot fail");
            let consumed = (self.compressor.total_in() - before_in) as usize;
            input = &input[consumed..];
            // A flush is complete once all input is in and the compressor stopped short of
            // filling the output buffer.
            let room_left = self.compressed.capacity() > self.compressed.len();
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                FlushCompress::None => input.is_empty(),
                _ => input.is_empty() && room_left,
            };
            if done {
                break;
            }
        }
        self.pending.clear();
    }

    /// Finishes the strip: flushes to a byte boundary (or ends the stream, for the last strip)
    /// and wraps the segment into `IDAT` chunks.
    pub fn finish(mut self) -> EncodedStrip {
        let flush = if self.ends_stream { FlushCompress::Finish } else { FlushCompress::Sync };
        self.compress_pending(flush);
        let mut chunks =
            Vec::with_capacity(self.compressed.len() + 12 * (self.compressed.len() / MAX_CHUNK_DATA + 1));
        for data in self.compressed.chunks(MAX_CHUNK_DATA) {
            write_chunk(&mut chunks, b"IDAT", data);
        }
        EncodedStrip { chunks, adler32: self.adler32, raw_len: self.raw_len }
    }
}

/// Encodes `rows` consecutive output rows (`width` bytes each) as one strip.
pub fn encode_strip(
    output_rows: &[u8],
    width: usize,
    output: OutputMode,
    ends_stream: bool,
    level: CompressionLevel,
) -> EncodedStrip {
    let mut encoder = StripEncoder::new(width, output, ends_stream, level);
    for row in output_rows.chunks_exact(width.max(1)) {
        encoder.push_row(row);
    }
    encoder.finish()
}

/// Joins strips, in order, into one PNG file without touching their compressed bytes.
pub fn stitch<'a>(
    width: u32,
    height: u32,
    output: OutputMode,
    strips: impl IntoIterator<Item = &'a EncodedStrip>,
) -> Vec<u8> {
    stitch_depth(width, height, PngDepth::of(output), strips)
}

/// [`stitch`] for any gray depth.
pub fn stitch_depth<'a>(
    width: u32,
    height: u32,
    depth: PngDepth,
    strips: impl IntoIterator<Item = &'a EncodedStrip>,
) -> Vec<u8> {
    let strips: Vec<&EncodedStrip> = strips.into_iter().collect();
    let header = png_header_depth(width, height, depth);
    let total: usize = header.len() + strips.iter().map(|s| s.chunks.len()).sum::<usize>() + 32;
    let mut png = Vec::with_capacity(total);
    png.extend_from_slice(&header);
    let mut adler = 1u32;
    for strip in &strips {
        png.extend_from_slice(&strip.chunks);
        adler = adler32_combine(adler, strip.adler32, strip.raw_len);
    }
    png.extend_from_slice(&png_trailer(adler));
    png
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_matches_bit_by_bit() {
        let mut rng = fastrand::Rng::with_seed(7);
        for len in 0..40usize {
            let bytes: Vec<u8> = (0..len).map(|_| if rng.bool() { 255 } else { 0 }).collect();
            let mut packed = vec![0u8; len.div_ceil(8)];
            pack_binary_row(&bytes, &mut packed);
            for (i, &b) in bytes.iter().enumerate() {
                let bit = (packed[i / 8] >> (7 - i % 8)) & 1;
                assert_eq!(bit == 1, b == 255, "len {len} bit {i}");
            }
        }
    }

    #[test]
    fn adler_combine_equals_adler_of_concatenation() {
        let mut rng = fastrand::Rng::with_seed(1);
        for (la, lb) in [(0, 0), (0, 5), (5, 0), (1, 1), (7000, 13), (100_000, 70_000)] {
            let a: Vec<u8> = (0..la).map(|_| rng.u8(..)).collect();
            let b: Vec<u8> = (0..lb).map(|_| rng.u8(..)).collect();
            let whole = adler32_update(adler32_update(1, &a), &b);
            let combined = adler32_combine(adler32_update(1, &a), adler32_update(1, &b), lb as u64);
            assert_eq!(whole, combined, "{la} {lb}");
        }
        // Known value: adler32("Wikipedia") = 0x11E60398.
        assert_eq!(adler32_update(1, b"Wikipedia"), 0x11E6_0398);
    }
}
