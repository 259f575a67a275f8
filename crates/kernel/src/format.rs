//! Result files written a strip at a time and stitched without re-encoding: PNG, NPY, TIFF.
//!
//! Every strip's rows go through a [`StripWriter`] into a [`FormattedStrip`]; the stitcher
//! ([`stitch_formatted`]) writes the file's head and tail around the strips' bytes, in order,
//! and never looks inside them:
//!
//! - **PNG** ([`crate::png`]): each strip is a deflate segment in complete `IDAT` chunks; the
//!   head is the signature, `IHDR` (1-bit, 8-bit or 16-bit gray) and the zlib header, the tail
//!   the Adler-32 combined from the strips' own, and `IEND`.
//! - **NPY** (NumPy's format, version 1.0): the head is the magic, the header length and a
//!   Python dict (`descr`, `fortran_order: False`, `shape: (height, width)`) padded so that
//!   the data starts at a multiple of 64 bytes; the strips are the rows' samples,
//!   little-endian, concatenated. An edge map is bytes of 0 and 255 (`|u1`), as `cv2.Canny`
//!   gives it.
//! - **TIFF** (baseline, little-endian, uncompressed): the head is the 8-byte header, the
//!   strips are the rows' samples (edge maps packed 1 bit per pixel, most significant first,
//!   each row padded to a byte; black is zero), and the tail is one image file directory
//!   written at stitch time: size, bits per sample, sample format (unsigned, signed or IEEE
//!   float), and TIFF strips of about 64 KiB whose offsets follow from the row size, since
//!   nothing is compressed.

use crate::filter::KernelError;
use crate::params::{Format, Sample};
use crate::png::{CompressionLevel, EncodedStrip, PngDepth, StripEncoder, stitch_depth};
use crate::samples::Rows;

/// What a result file holds: its format, sample type and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    /// The file format.
    pub format: Format,
    /// How a pixel is stored.
    pub sample: Sample,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

impl Layout {
    /// The layout of a `width` × `height` result of `options` (refused when the format cannot
    /// hold the output).
    pub fn of(
        options: &crate::Options,
        width: usize,
        height: usize,
    ) -> Result<Layout, crate::params::OptionError> {
        Ok(Layout { format: options.format, sample: options.sample()?, width, height })
    }

    /// The PNG depth of this layout (PNG holds bits, bytes and unsigned 16-bit samples only;
    /// [`crate::Options::validate`] refuses the others).
    fn png_depth(&self) -> Result<PngDepth, KernelError> {
        match self.sample {
            Sample::Bit => Ok(PngDepth::One),
            Sample::U8 => Ok(PngDepth::Eight),
            Sample::U16 => Ok(PngDepth::Sixteen),
            other => Err(KernelError::TooLarge(format!("PNG cannot hold {other:?} samples"))),
        }
    }

    /// Bytes of one row in the file's pixel data (NPY and TIFF).
    pub fn raw_row_bytes(&self) -> usize {
        match (self.format, self.sample) {
            (Format::Tiff, Sample::Bit) => self.width.div_ceil(8),
            (_, sample) => self.width * sample.bytes(),
        }
    }
}

/// One strip's share of a result file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormattedStrip {
    /// The strip's bytes: `IDAT` chunks for PNG, the rows' samples for NPY and TIFF.
    pub data: Vec<u8>,
    /// Adler-32 of the strip's uncompressed scanlines (PNG only; 1 otherwise).
    pub adler32: u32,
    /// Length of those scanlines (PNG), or of `data`.
    pub raw_len: u64,
}

impl From<EncodedStrip> for FormattedStrip {
    fn from(s: EncodedStrip) -> Self {
        FormattedStrip { data: s.chunks, adler32: s.adler32, raw_len: s.raw_len }
    }
}

enum Inner {
    Png(Box<StripEncoder>),
    Raw(Vec<u8>),
}

/// Writes a strip's rows in its file's format.
pub struct StripWriter {
    layout: Layout,
    inner: Inner,
}

impl StripWriter {
    /// A writer for a strip of the file `layout`; `ends_stream` is true for the strip that
    /// touches the bottom of the image (PNG ends its compressed stream there).
    pub fn new(
        layout: Layout,
        ends_stream: bool,
        level: CompressionLevel,
    ) -> Result<StripWriter, KernelError> {
        let inner = match layout.format {
            Format::Png => Inner::Png(Box::new(StripEncoder::with_depth(
                layout.width,
                layout.png_depth()?,
                ends_stream,
                level,
            ))),
            Format::Npy | Format::Tiff => Inner::Raw(Vec::new()),
        };
        Ok(StripWriter { layout, inner })
    }

    /// Adds rows (whole rows of the layout's width, of its sample type).
    pub fn push(&mut self, rows: Rows<'_>) -> Result<(), KernelError> {
        let w = self.layout.width;
        let mismatch = || KernelError::BufferSize { what: "output rows", expected: w, actual: rows.len() };
        if w == 0 || !rows.len().is_multiple_of(w) {
            return Err(mismatch());
        }
        match (&mut self.inner, rows, self.layout.sample) {
            (Inner::Png(e), Rows::U8(v), Sample::Bit | Sample::U8) => {
                v.chunks_exact(w).for_each(|r| e.push_row(r))
            }
            (Inner::Png(e), Rows::U16(v), Sample::U16) => v.chunks_exact(w).for_each(|r| e.push_row16(r)),
            (Inner::Raw(out), Rows::U8(v), Sample::Bit) if self.layout.format == Format::Tiff => {
                let line = w.div_ceil(8);
                for row in v.chunks_exact(w) {
                    let start = out.len();
                    out.resize(start + line, 0);
                    crate::png::pack_binary_row(row, &mut out[start..]);
                }
            }
            (Inner::Raw(out), Rows::U8(v), Sample::Bit | Sample::U8) => out.extend_from_slice(v),
            (Inner::Raw(out), Rows::U16(v), Sample::U16) => extend_le(out, v, |x| x.to_le_bytes()),
            (Inner::Raw(out), Rows::U32(v), Sample::U32) => extend_le(out, v, |x| x.to_le_bytes()),
            (Inner::Raw(out), Rows::I16(v), Sample::I16) => extend_le(out, v, |x| x.to_le_bytes()),
            (Inner::Raw(out), Rows::I32(v), Sample::I32) => extend_le(out, v, |x| x.to_le_bytes()),
            (Inner::Raw(out), Rows::F32(v), Sample::F32) => extend_le(out, v, |x| x.to_le_bytes()),
            _ => {
                return Err(KernelError::Strips(format!(
                    "rows of the wrong type for {:?} samples in {}",
                    self.layout.sample, self.layout.format
                )));
            }
        }
        Ok(())
    }

    /// The strip's bytes.
    pub fn finish(self) -> FormattedStrip {
        match self.inner {
            Inner::Png(e) => e.finish().into(),
            Inner::Raw(data) => {
                let raw_len = data.len() as u64;
                FormattedStrip { data, adler32: 1, raw_len }
            }
        }
    }
}

/// Appends each value's little-endian bytes.
#[inline]
fn extend_le<T: Copy, const N: usize>(out: &mut Vec<u8>, values: &[T], bytes: impl Fn(T) -> [u8; N]) {
    let start = out.len();
    out.resize(start + values.len() * N, 0);
    for (dst, &v) in out[start..].chunks_exact_mut(N).zip(values) {
        dst.copy_from_slice(&bytes(v));
    }
}

/// NumPy's `descr` of a sample type.
fn npy_descr(sample: Sample) -> &'static str {
    match sample {
        Sample::Bit | Sample::U8 => "|u1",
        Sample::U16 => "<u2",
        Sample::U32 => "<u4",
        Sample::I16 => "<i2",
        Sample::I32 => "<i4",
        Sample::F32 => "<f4",
    }
}

/// The NPY head of `layout`.
pub fn npy_header(layout: &Layout) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({}, {}), }}",
        npy_descr(layout.sample),
        layout.height,
        layout.width
    );
    // Magic (6) + version (2) + length (2) + dict + spaces + newline, a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let padding = unpadded.next_multiple_of(64) - unpadded;
    let header_len = dict.len() + padding + 1;
    let mut out = Vec::with_capacity(10 + header_len);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    out
}

/// Target size of one TIFF strip.
const TIFF_STRIP_BYTES: usize = 1 << 16;

/// The TIFF tail (the image file directory and its arrays) for `layout`, whose pixel data
/// runs from byte 8 for `data_len` bytes; returns the IFD and where it starts.
fn tiff_directory(layout: &Layout, data_len: u64) -> Result<(Vec<u8>, u32), KernelError> {
    let row_bytes = layout.raw_row_bytes().max(1);
    let rows_per_strip = (TIFF_STRIP_BYTES / row_bytes).clamp(1, layout.height.max(1));
    let strips = layout.height.div_ceil(rows_per_strip);
    let ifd_at = 8 + data_len + data_len % 2;
    const ENTRIES: u64 = 11;
    let arrays_at = ifd_at + 2 + ENTRIES * 12 + 4;
    let end = arrays_at + 8 * strips as u64;
    if end > u32::MAX as u64 {
        return Err(KernelError::TooLarge(format!(
            "a TIFF of {end} bytes is over the 4 GiB a baseline TIFF can address; use npy"
        )));
    }
    let (bits, sample_format): (u16, u16) = match layout.sample {
        Sample::Bit => (1, 1),
        Sample::U8 => (8, 1),
        Sample::U16 => (16, 1),
        Sample::U32 => (32, 1),
        Sample::I16 => (16, 2),
        Sample::I32 => (32, 2),
        Sample::F32 => (32, 3),
    };
    let offsets_at = arrays_at as u32;
    let counts_at = offsets_at + 4 * strips as u32;
    let mut out = Vec::with_capacity((end - ifd_at) as usize + 1);
    if data_len % 2 == 1 {
        out.push(0); // The directory starts on a word boundary.
    }
    out.extend_from_slice(&(ENTRIES as u16).to_le_bytes());
    let mut entry = |tag: u16, kind: u16, count: u32, value: u32| {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    };
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    // With one strip its offset and count fit in the entry itself.
    let (offsets, counts) = if strips == 1 { (8, data_len as u32) } else { (offsets_at, counts_at) };
    entry(256, LONG, 1, layout.width as u32); // ImageWidth
    entry(257, LONG, 1, layout.height as u32); // ImageLength
    entry(258, SHORT, 1, bits as u32); // BitsPerSample
    entry(259, SHORT, 1, 1); // Compression: none
    entry(262, SHORT, 1, 1); // PhotometricInterpretation: black is zero
    entry(273, LONG, strips as u32, offsets); // StripOffsets
    entry(277, SHORT, 1, 1); // SamplesPerPixel
    entry(278, LONG, 1, rows_per_strip as u32); // RowsPerStrip
    entry(279, LONG, strips as u32, counts); // StripByteCounts
    entry(284, SHORT, 1, 1); // PlanarConfiguration: chunky
    entry(339, SHORT, 1, sample_format as u32); // SampleFormat
    out.extend_from_slice(&0u32.to_le_bytes()); // No next directory.
    if strips > 1 {
        for k in 0..strips {
            out.extend_from_slice(&(8 + (k * rows_per_strip * row_bytes) as u32).to_le_bytes());
        }
        for k in 0..strips {
            let rows = rows_per_strip.min(layout.height - k * rows_per_strip);
            out.extend_from_slice(&((rows * row_bytes) as u32).to_le_bytes());
        }
    }
    Ok((out, ifd_at as u32))
}

/// Joins strips, in order, into one file of `layout`, without touching their bytes.
pub fn stitch_formatted<'a>(
    layout: &Layout,
    strips: impl IntoIterator<Item = &'a FormattedStrip>,
) -> Result<Vec<u8>, KernelError> {
    let strips: Vec<&FormattedStrip> = strips.into_iter().collect();
    let data_len: u64 = strips.iter().map(|s| s.data.len() as u64).sum();
    if layout.format != Format::Png {
        let expected = (layout.raw_row_bytes() * layout.height) as u64;
        if data_len != expected {
            return Err(KernelError::Strips(format!(
                "the strips hold {data_len} bytes of pixels where the image has {expected}"
            )));
        }
    }
    match layout.format {
        Format::Png => {
            let encoded: Vec<EncodedStrip> = strips
                .iter()
                .map(|s| EncodedStrip { chunks: s.data.clone(), adler32: s.adler32, raw_len: s.raw_len })
                .collect();
            Ok(stitch_depth(layout.width as u32, layout.height as u32, layout.png_depth()?, &encoded))
        }
        Format::Npy => {
            let mut out = npy_header(layout);
            out.reserve(data_len as usize);
            strips.iter().for_each(|s| out.extend_from_slice(&s.data));
            Ok(out)
        }
        Format::Tiff => {
            let (directory, ifd_at) = tiff_directory(layout, data_len)?;
            let mut out = Vec::with_capacity(8 + data_len as usize + directory.len());
            out.extend_from_slice(b"II");
            out.extend_from_slice(&42u16.to_le_bytes());
            out.extend_from_slice(&ifd_at.to_le_bytes());
            strips.iter().for_each(|s| out.extend_from_slice(&s.data));
            out.extend_from_slice(&directory);
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_names_the_type() {
        for (sample, descr) in [(Sample::Bit, "|u1"), (Sample::I16, "<i2"), (Sample::F32, "<f4")] {
            let h = npy_header(&Layout { format: Format::Npy, sample, width: 123, height: 45 });
            assert_eq!(h.len() % 64, 0);
            assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
            let text = std::str::from_utf8(&h[10..]).unwrap();
            assert!(text.contains(descr) && text.contains("(45, 123)") && text.ends_with('\n'), "{text}");
        }
    }
}
