//! Any supported image bytes → upright 8-bit luma, exactly as DESIGN §2 says.
//!
//! The format is recognised from its magic bytes, the header is read, and the declared size
//! is checked against [`Limits`] *before* any pixel buffer exists. A baseline grayscale or
//! YCbCr JPEG (what nearly every camera and encoder writes) goes through dsobel's own decoder
//! (the crate's own `jpeg` module), straight to its Y plane, bit for bit what libjpeg gives, with no chroma
//! upsampling, colour conversion or RGB buffer: the path that matters most for speed. Other
//! JPEGs (progressive, RGB, CMYK) go through `zune-jpeg` in strict mode: grayscale and YCbCr
//! to the Y plane, other colour spaces to RGB and the fixed-point luma formula. Arithmetic,
//! lossless, hierarchical and 12-bit JPEGs are refused from the header as unsupported, and
//! truncated or corrupt data as corrupt, never decoded into invented pixels. The other formats use the `image` crate's decoders, whose samples
//! then go through the same formula.

use std::io::Cursor;

use dsobel_kernel::luma::{PixelLayout, luma_from_u8, luma_from_u16};
use image::{ColorType, ImageDecoder};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::error::DecodeError;
use crate::jpeg::BaselineJpeg;
use crate::limits::Limits;
use crate::orientation::{self, LumaImage, Orientation};

/// The image formats dsobel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JPEG (baseline and progressive; YCbCr, grayscale, RGB, CMYK, YCCK).
    Jpeg,
    /// PNG (any bit depth and colour type).
    Png,
    /// WebP (lossy and lossless).
    WebP,
    /// GIF (the first frame).
    Gif,
    /// BMP.
    Bmp,
    /// TIFF.
    Tiff,
}

impl Format {
    /// Recognises a format from the first bytes of a file.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Some(Format::Jpeg),
            [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1A, b'\n', ..] => Some(Format::Png),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Format::WebP),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Format::Gif),
            [b'B', b'M', ..] => Some(Format::Bmp),
            [b'I', b'I', 0x2A, 0x00, ..] | [b'M', b'M', 0x00, 0x2A, ..] => Some(Format::Tiff),
            _ => None,
        }
    }

    /// Short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "JPEG",
            Format::Png => "PNG",
            Format::WebP => "WebP",
            Format::Gif => "GIF",
            Format::Bmp => "BMP",
            Format::Tiff => "TIFF",
        }
    }
}

/// What the header says, read without decoding pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The format.
    pub format: Format,
    /// Width as stored (before orientation).
    pub width: u32,
    /// Height as stored.
    pub height: u32,
    /// The EXIF orientation the output gets.
    pub orientation: Orientation,
}

impl Probe {
    /// Width and height of the output: the stored size, sides swapped when the orientation
    /// turns the image by a quarter.
    pub fn upright(&self) -> (u32, u32) {
        match self.orientation {
            Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH => (self.height, self.width),
            _ => (self.width, self.height),
        }
    }
}

fn describe_unknown(bytes: &[u8]) -> String {
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("unrecognised signature {}", head.join(" "))
}

/// A decoder library's message without its internals: no "Format error decoding X:" prefix,
/// no Rust struct dumps (`ChunkType { type: IDAT, … }` becomes `IDAT`), no raw checksums.
fn plain_words(message: &str) -> String {
    let mut text = message.to_owned();
    for prefix in ["Format error decoding ", "Format error: "] {
        if let Some(rest) = text.strip_prefix(prefix) {
            text = rest.split_once(": ").map_or(rest, |(_, detail)| detail).to_owned();
        }
    }
    while let Some(start) = text.find("ChunkType { type: ") {
        let name_start = start + "ChunkType { type: ".len();
        let name_end = text[name_start..].find(',').map_or(text.len(), |i| name_start + i);
        let end = text[start..].find('}').map_or(text.len(), |i| start + i + 1);
        let name = text[name_start..name_end].to_owned();
        text.replace_range(start..end, &name);
    }
    if let Some(start) = text.find("CRC error: expected ") {
        let end = text[start..].find(" while").map_or(text.len(), |i| start + i);
        text.replace_range(start..end, "checksum mismatch");
    }
    text.trim_end_matches('.').to_owned()
}

pub(crate) fn corrupt(format: Format, detail: impl ToString) -> DecodeError {
    DecodeError::Corrupt { format: format.name(), detail: detail.to_string() }
}

/// Options of the general JPEG decoder: strict, so that data it would have to guess at
/// (truncated or corrupt scans) is an error rather than invented pixels.
fn jpeg_options(limits: &Limits) -> DecoderOptions {
    let side = limits.max_dimension as usize;
    DecoderOptions::new_fast().set_max_width(side).set_max_height(side).set_strict_mode(true)
}

/// Reads the header only and checks it against the limits (bytes, sides, pixels).
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<Probe, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    limits.check_bytes(bytes.len())?;
    let format =
        Format::sniff(bytes).ok_or_else(|| DecodeError::UnsupportedFormat(describe_unknown(bytes)))?;
    let (width, height, orientation) = match format {
        Format::Jpeg => {
            if let Some(feature) = unsupported_jpeg_feature(bytes) {
                return Err(DecodeError::UnsupportedImage { format: format.name(), feature });
            }
            // zune-jpeg checks its own max width/height while parsing the header; give it one
            // above our own so that our message, with our limit, is the one users see.
            let options = jpeg_options(limits)
                .set_max_width(limits.max_dimension as usize + 1)
                .set_max_height(limits.max_dimension as usize + 1)
                .set_strict_mode(false);
            let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
            decoder.decode_headers().map_err(|e| corrupt(format, e))?;
            let (w, h) = decoder.dimensions().ok_or_else(|| corrupt(format, "no frame header"))?;
            let orientation = decoder
                .exif()
                .map(|e| orientation::orientation_from_exif(e))
                .unwrap_or(Orientation::NoTransforms);
            (w as u32, h as u32, orientation)
        }
        _ => with_image_decoder(format, bytes, |mut d| {
            let (w, h) = d.dimensions();
            Ok((w, h, d.orientation().unwrap_or(Orientation::NoTransforms)))
        })?,
    };
    limits.check_dimensions(format.name(), width as u64, height as u64)?;
    Ok(Probe { format, width, height, orientation })
}

/// The coding process of a JPEG that no decoder here reads, in words, from its frame header:
/// arithmetic coding, lossless or hierarchical frames, and samples of more than 8 bits.
fn unsupported_jpeg_feature(bytes: &[u8]) -> Option<&'static str> {
    let mut at = 2;
    while let Some(&[0xFF, marker, high, low]) = bytes.get(at..at + 4) {
        match marker {
            // Fill bytes before a marker.
            0xFF => {
                at += 1;
                continue;
            }
            0xCC => return Some("arithmetic coding"),
            0xC3 | 0xC7 | 0xCB | 0xCF => return Some("lossless coding"),
            0xC5 | 0xC6 | 0xC9 | 0xCA | 0xCD | 0xCE => {
                return Some(if marker & 0x08 != 0 { "arithmetic coding" } else { "hierarchical coding" });
            }
            0xC0..=0xC2 => {
                let precision = *bytes.get(at + 4)?;
                return (precision != 8).then_some(if precision == 12 {
                    "12-bit samples"
                } else {
                    "a sample precision other than 8 bits"
                });
            }
            // The scan starts: no frame header seen (the general decoder will say so).
            0xDA => return None,
            _ => at += 2 + usize::from(u16::from_be_bytes([high, low])),
        }
    }
    None
}

/// Runs `f` on the `image` crate's decoder for a non-JPEG format.
fn with_image_decoder<T>(
    format: Format,
    bytes: &[u8],
    f: impl FnOnce(Box<dyn ImageDecoder + '_>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    use image::codecs::{
        bmp::BmpDecoder, gif::GifDecoder, png::PngDecoder, tiff::TiffDecoder, webp::WebPDecoder,
    };
    let cursor = Cursor::new(bytes);
    let err = |e: image::ImageError| corrupt(format, plain_words(&e.to_string()));
    let decoder: Box<dyn ImageDecoder> = match format {
        Format::Png => Box::new(PngDecoder::new(cursor).map_err(err)?),
        Format::WebP => Box::new(WebPDecoder::new(cursor).map_err(err)?),
        Format::Gif => Box::new(GifDecoder::new(cursor).map_err(err)?),
        Format::Bmp => Box::new(BmpDecoder::new(cursor).map_err(err)?),
        Format::Tiff => Box::new(TiffDecoder::new(cursor).map_err(err)?),
        Format::Jpeg => unreachable!("JPEG is decoded by zune-jpeg"),
    };
    f(decoder)
}

/// Decodes any supported image to upright luma, refusing what the limits forbid before
/// allocating pixels.
pub fn decode_luma(bytes: &[u8], limits: &Limits) -> Result<LumaImage, DecodeError> {
    let probe = probe(bytes, limits)?;
    let streamed_png = match probe.format {
        Format::Png => decode_png_rows(bytes, limits)?,
        _ => None,
    };
    let (image, orientation) = match (probe.format, streamed_png) {
        (Format::Jpeg, _) => decode_jpeg(bytes, limits)?,
        (Format::Png, Some(image)) => (image, probe.orientation),
        (format, _) => with_image_decoder(format, bytes, |mut decoder| {
            let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
            // The decoder's own allocation guard, in case its output differs from the header.
            let mut image_limits = image::Limits::default();
            image_limits.max_image_width = Some(limits.max_dimension);
            image_limits.max_image_height = Some(limits.max_dimension);
            image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
            decoder.set_limits(image_limits).map_err(|e| corrupt(format, e))?;
            Ok((decode_with_image(format, decoder)?, orientation))
        })?,
    };
    Ok(orientation::apply(image, orientation))
}

/// A PNG decoded a row at a time straight into luma: the peak is the luma plane and a row or
/// two, whatever the depth (a 100 MP 16-bit RGBA PNG would need 800 MB of samples first, and
/// as much again to widen them). The rows are the ones the general decoder gives (the same
/// library, with the same expansion of palettes, low bit depths and transparency), so the
/// luma is the same. `None` for an interlaced PNG, whose rows come in passes: the general
/// path decodes it whole.
fn decode_png_rows(bytes: &[u8], limits: &Limits) -> Result<Option<LumaImage>, DecodeError> {
    let format = Format::Png;
    let fail = |e: png::DecodingError| corrupt(format, plain_words(&e.to_string()));
    // The decoder's own buffers (a row, the inflater's window) are small; this guards them.
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: 64 << 20 });
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(fail)?;
    let (width, height, interlaced) = {
        let info = reader.info();
        (info.width as usize, info.height as usize, info.interlaced)
    };
    limits.check_dimensions(format.name(), width as u64, height as u64)?;
    let layout = match reader.output_color_type() {
        (png::ColorType::Grayscale, png::BitDepth::Eight) => PixelLayout::Gray8,
        (png::ColorType::GrayscaleAlpha, png::BitDepth::Eight) => PixelLayout::GrayAlpha8,
        (png::ColorType::Rgb, png::BitDepth::Eight) => PixelLayout::Rgb8,
        (png::ColorType::Rgba, png::BitDepth::Eight) => PixelLayout::Rgba8,
        (png::ColorType::Grayscale, png::BitDepth::Sixteen) => PixelLayout::Gray16,
        (png::ColorType::GrayscaleAlpha, png::BitDepth::Sixteen) => PixelLayout::GrayAlpha16,
        (png::ColorType::Rgb, png::BitDepth::Sixteen) => PixelLayout::Rgb16,
        (png::ColorType::Rgba, png::BitDepth::Sixteen) => PixelLayout::Rgba16,
        _ => return Ok(None),
    };
    if interlaced {
        return Ok(None);
    }
    let mut luma = vec![0u8; width * height];
    let mut wide = Vec::new();
    for (y, out) in luma.chunks_exact_mut(width.max(1)).enumerate() {
        let row = reader
            .next_row()
            .map_err(fail)?
            .ok_or_else(|| corrupt(format, format!("the data ends after row {y} of {height}")))?;
        // PNG samples of 16 bits are big-endian.
        row_to_luma(layout, row.data(), u16::from_be_bytes, &mut wide, out)
            .map_err(|e| corrupt(format, e))?;
    }
    // Past the last row the rest of the image data is read and checked, as a whole-frame
    // decode does.
    if reader.next_row().map_err(fail)?.is_some() {
        return Err(corrupt(format, "more rows than the header declares"));
    }
    Ok(Some(LumaImage { width, height, pixels: luma }))
}

/// One row of samples to luma; 16-bit samples are read with `sample` (the byte order of
/// their source) through `wide`, a buffer kept across rows.
fn row_to_luma(
    layout: PixelLayout,
    row: &[u8],
    sample: fn([u8; 2]) -> u16,
    wide: &mut Vec<u16>,
    out: &mut [u8],
) -> Result<(), dsobel_kernel::KernelError> {
    if layout.is_16bit() {
        wide.clear();
        wide.extend(row.chunks_exact(2).map(|c| sample([c[0], c[1]])));
        luma_from_u16(layout, wide, out)
    } else {
        luma_from_u8(layout, row, out)
    }
}

fn decode_with_image(format: Format, decoder: Box<dyn ImageDecoder + '_>) -> Result<LumaImage, DecodeError> {
    let (w, h) = decoder.dimensions();
    let (width, height) = (w as usize, h as usize);
    let color = decoder.color_type();
    let total =
        usize::try_from(decoder.total_bytes()).map_err(|_| corrupt(format, "image too large to address"))?;
    let mut samples = vec![0u8; total];
    decoder.read_image(&mut samples).map_err(|e| corrupt(format, plain_words(&e.to_string())))?;
    let mut luma = vec![0u8; width * height];
    let layout = match color {
        ColorType::L8 => PixelLayout::Gray8,
        ColorType::La8 => PixelLayout::GrayAlpha8,
        ColorType::Rgb8 => PixelLayout::Rgb8,
        ColorType::Rgba8 => PixelLayout::Rgba8,
        ColorType::L16 => PixelLayout::Gray16,
        ColorType::La16 => PixelLayout::GrayAlpha16,
        ColorType::Rgb16 => PixelLayout::Rgb16,
        ColorType::Rgba16 => PixelLayout::Rgba16,
        ColorType::Rgb32F | ColorType::Rgba32F => {
            // Floating-point samples (some TIFFs): mapped to 8 bits by rounding clamp(v)·255.
            let ch = color.channel_count() as usize;
            let rgb8: Vec<u8> = samples
                .chunks_exact(4)
                .map(|c| (f32::from_ne_bytes([c[0], c[1], c[2], c[3]]).clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect();
            let layout = if ch == 3 { PixelLayout::Rgb8 } else { PixelLayout::Rgba8 };
            luma_from_u8(layout, &rgb8, &mut luma).map_err(|e| corrupt(format, e))?;
            return Ok(LumaImage { width, height, pixels: luma });
        }
        other => return Err(corrupt(format, format!("unsupported colour type {other:?}"))),
    };
    if samples.len() != width * height * layout.channels() * if layout.is_16bit() { 2 } else { 1 } {
        return Err(corrupt(format, "decoder returned a buffer of the wrong size"));
    }
    // Row by row, so 16-bit samples are widened a row at a time, not all at once.
    let row_bytes = width * layout.channels() * if layout.is_16bit() { 2 } else { 1 };
    let mut wide = Vec::new();
    for (row, out) in samples.chunks_exact(row_bytes.max(1)).zip(luma.chunks_exact_mut(width.max(1))) {
        row_to_luma(layout, row, u16::from_ne_bytes, &mut wide, out).map_err(|e| corrupt(format, e))?;
    }
    Ok(LumaImage { width, height, pixels: luma })
}

fn decode_jpeg(bytes: &[u8], limits: &Limits) -> Result<(LumaImage, Orientation), DecodeError> {
    let format = Format::Jpeg;
    if let Some(jpeg) = BaselineJpeg::parse(bytes) {
        limits.check_dimensions(format.name(), jpeg.width as u64, jpeg.height as u64)?;
        let mut luma = vec![0u8; jpeg.width * jpeg.height];
        // Corrupt or truncated entropy data is refused, never guessed at.
        jpeg.decode_luma(&mut luma).map_err(|e| corrupt(format, e))?;
        let image = LumaImage { width: jpeg.width, height: jpeg.height, pixels: luma };
        return Ok((image, jpeg_orientation(&jpeg)));
    }
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), jpeg_options(limits));
    decoder.decode_headers().map_err(|e| corrupt(format, e))?;
    let (width, height) = decoder.dimensions().ok_or_else(|| corrupt(format, "no frame header"))?;
    let orientation =
        decoder.exif().map(|e| orientation::orientation_from_exif(e)).unwrap_or(Orientation::NoTransforms);
    let input = decoder.input_colorspace().unwrap_or(ColorSpace::Unknown);
    let image = if matches!(input, ColorSpace::YCbCr | ColorSpace::Luma) {
        // The fast path: the Y plane itself, decoded into the buffer we keep.
        let options = jpeg_options(limits).jpeg_set_out_colorspace(ColorSpace::Luma);
        let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
        let mut luma = vec![0u8; width * height];
        decoder.decode_into(&mut luma).map_err(|e| corrupt(format, e))?;
        LumaImage { width, height, pixels: luma }
    } else {
        let options = jpeg_options(limits).jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
        let rgb = decoder.decode().map_err(|e| corrupt(format, e))?;
        if rgb.len() != width * height * 3 {
            return Err(corrupt(format, "decoder returned a buffer of the wrong size"));
        }
        let mut luma = vec![0u8; width * height];
        luma_from_u8(PixelLayout::Rgb8, &rgb, &mut luma).map_err(|e| corrupt(format, e))?;
        LumaImage { width, height, pixels: luma }
    };
    Ok((image, orientation))
}

/// The EXIF orientation of a JPEG read by dsobel's own decoder.
pub(crate) fn jpeg_orientation(jpeg: &BaselineJpeg<'_>) -> Orientation {
    jpeg.exif.map(orientation::orientation_from_exif).unwrap_or(Orientation::NoTransforms)
}

#[cfg(test)]
mod tests {
    #[test]
    fn library_messages_lose_their_internals() {
        let raw = "Format error decoding Png: CRC error: expected 0x4d2 have 0xbbf57ad7 while decoding \
                   ChunkType { type: IDAT, critical: true, private: false, reserved: false, safecopy: false } chunk.";
        assert_eq!(super::plain_words(raw), "checksum mismatch while decoding IDAT chunk");
        assert_eq!(super::plain_words("unexpected end of file"), "unexpected end of file");
    }
}
