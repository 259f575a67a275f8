//! Decoding: every format to the luma DESIGN §2 defines, limits checked from the header,
//! orientation applied, and errors (never panics) on empty, truncated, corrupt and random input.

use std::io::Cursor;
use std::time::Instant;

use dsobel_codec::{DecodeError, ErrorCode, Format, Limits, decode_luma, probe};
use dsobel_kernel::reference::luma_of_rgb;
use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};

fn random_rgb(w: u32, h: u32, seed: u64) -> RgbImage {
    let mut rng = fastrand::Rng::with_seed(seed);
    RgbImage::from_fn(w, h, |_, _| image::Rgb([rng.u8(..), rng.u8(..), rng.u8(..)]))
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

fn luma_reference(rgb: &RgbImage) -> Vec<u8> {
    rgb.pixels().map(|p| luma_of_rgb(p[0], p[1], p[2])).collect()
}

#[test]
fn lossless_formats_decode_to_the_reference_luma() {
    let rgb = random_rgb(37, 23, 1);
    let want = luma_reference(&rgb);
    let rgba = RgbaImage::from_fn(37, 23, |x, y| {
        let p = rgb.get_pixel(x, y);
        image::Rgba([p[0], p[1], p[2], (x * 7) as u8])
    });
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("png rgb8", encode(&DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Png)),
        ("png rgba8", encode(&DynamicImage::ImageRgba8(rgba.clone()), ImageFormat::Png)),
        (
            "png rgb16",
            encode(
                &DynamicImage::ImageRgb16(DynamicImage::ImageRgb8(rgb.clone()).to_rgb16()),
                ImageFormat::Png,
            ),
        ),
        ("bmp rgb8", encode(&DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Bmp)),
        ("tiff rgb8", encode(&DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Tiff)),
        ("tiff rgba8", encode(&DynamicImage::ImageRgba8(rgba.clone()), ImageFormat::Tiff)),
        ("webp lossless rgba8", encode(&DynamicImage::ImageRgba8(rgba.clone()), ImageFormat::WebP)),
    ];
    for (name, bytes) in cases {
        let got = decode_luma(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((got.width, got.height), (37, 23), "{name}");
        assert_eq!(got.pixels, want, "{name}");
    }
}

#[test]
fn gray_and_gray_alpha_are_taken_as_they_are() {
    let mut rng = fastrand::Rng::with_seed(2);
    let gray = image::GrayImage::from_fn(19, 8, |_, _| image::Luma([rng.u8(..)]));
    let ga = image::GrayAlphaImage::from_fn(19, 8, |x, y| image::LumaA([gray.get_pixel(x, y)[0], 9]));
    for bytes in [
        encode(&DynamicImage::ImageLuma8(gray.clone()), ImageFormat::Png),
        encode(&DynamicImage::ImageLumaA8(ga), ImageFormat::Png),
        encode(&DynamicImage::ImageLuma8(gray.clone()), ImageFormat::Tiff),
    ] {
        assert_eq!(decode_luma(&bytes, &Limits::default()).unwrap().pixels, gray.as_raw().clone());
    }
    // 16-bit gray keeps the high byte.
    let g16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(19, 8, |x, y| {
        image::Luma([(gray.get_pixel(x, y)[0] as u16) << 8 | 0xAB])
    });
    let bytes = encode(&DynamicImage::ImageLuma16(g16), ImageFormat::Png);
    assert_eq!(decode_luma(&bytes, &Limits::default()).unwrap().pixels, gray.as_raw().clone());
}

#[test]
fn palette_png_is_expanded_then_weighed() {
    let palette = [[255u8, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]];
    let (w, h) = (9u32, 4u32);
    let indices: Vec<u8> = (0..w * h).map(|i| (i % 4) as u8).collect();
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(palette.concat());
        enc.write_header().unwrap().write_image_data(&indices).unwrap();
    }
    let want: Vec<u8> = indices
        .iter()
        .map(|&i| {
            let [r, g, b] = palette[i as usize];
            luma_of_rgb(r, g, b)
        })
        .collect();
    assert_eq!(decode_luma(&bytes, &Limits::default()).unwrap().pixels, want);
}

#[test]
fn gif_first_frame() {
    let rgb = RgbImage::from_fn(16, 16, |x, y| {
        if (x / 4 + y / 4) % 2 == 0 { image::Rgb([200, 30, 30]) } else { image::Rgb([0, 0, 0]) }
    });
    let bytes = encode(&DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Gif);
    let got = decode_luma(&bytes, &Limits::default()).unwrap();
    assert_eq!(got.pixels, luma_reference(&rgb));
}

#[test]
fn ycbcr_jpeg_takes_the_y_plane_close_to_the_rgb_luma() {
    // A smooth image compresses with small error; the Y plane must be within a few levels of
    // the fixed-point luma of the decoded RGB (they differ only by chroma rounding).
    let rgb = RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 128]));
    let bytes = encode(&DynamicImage::ImageRgb8(rgb), ImageFormat::Jpeg);
    let ours = decode_luma(&bytes, &Limits::default()).unwrap();
    let decoded_rgb = image::load_from_memory_with_format(&bytes, ImageFormat::Jpeg).unwrap().to_rgb8();
    let via_rgb = luma_reference(&decoded_rgb);
    let worst = ours.pixels.iter().zip(&via_rgb).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 3, "Y plane differs from RGB luma by {worst}");
    // And a grayscale JPEG decodes to its samples within JPEG error.
    let gray = image::GrayImage::from_fn(40, 40, |x, y| image::Luma([(x * 3 + y * 2) as u8]));
    let bytes = encode(&DynamicImage::ImageLuma8(gray.clone()), ImageFormat::Jpeg);
    let ours = decode_luma(&bytes, &Limits::default()).unwrap();
    let worst = ours.pixels.iter().zip(gray.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 4, "gray JPEG off by {worst}");
}

/// Inserts an APP1 EXIF segment with the given orientation right after the JPEG's SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied() {
    let gray = image::GrayImage::from_fn(32, 16, |x, _| image::Luma([if x < 16 { 0 } else { 250 }]));
    let plain = encode(&DynamicImage::ImageLuma8(gray), ImageFormat::Jpeg);
    let upright = decode_luma(&plain, &Limits::default()).unwrap();
    assert_eq!((upright.width, upright.height), (32, 16));
    let rotated = decode_luma(&with_exif_orientation(&plain, 6), &Limits::default()).unwrap();
    assert_eq!((rotated.width, rotated.height), (16, 32));
    // Rotate 90° clockwise: the dark left half becomes the top half.
    assert!(rotated.pixels[..16 * 16].iter().all(|&v| v < 40));
    assert!(rotated.pixels[16 * 16..].iter().all(|&v| v > 210));
    let flipped = decode_luma(&with_exif_orientation(&plain, 2), &Limits::default()).unwrap();
    assert!(flipped.pixels[0] > 210 && flipped.pixels[31] < 40);
}

/// A valid PNG header declaring `w × h`, one tiny IDAT, no real pixels.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut out = dsobel_kernel::png::PNG_SIGNATURE.to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    dsobel_kernel::png::write_chunk(&mut out, b"IHDR", &ihdr);
    dsobel_kernel::png::write_chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    dsobel_kernel::png::write_chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn a_pixel_bomb_is_refused_from_the_header() {
    let bomb = png_bomb(64_000, 64_000);
    assert!(bomb.len() < 5 * 1024);
    let started = Instant::now();
    let err = decode_luma(&bomb, &Limits::default()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ImageTooLarge, "{err}");
    assert!(err.to_string().contains("100000000 pixels"), "{err}");
    assert!(started.elapsed().as_millis() < 500, "refusal took {:?}", started.elapsed());
    // Each limit on its own.
    let tight = Limits { max_pixels: 100, max_dimension: 20, max_bytes: 1 << 20 };
    assert_eq!(probe(&png_bomb(21, 1), &tight).unwrap_err().code(), ErrorCode::ImageTooLarge);
    assert_eq!(probe(&png_bomb(11, 10), &tight).unwrap_err().code(), ErrorCode::ImageTooLarge);
    assert!(probe(&png_bomb(10, 10), &tight).is_ok());
    let tiny_bytes = Limits { max_bytes: 10, ..Limits::default() };
    assert_eq!(probe(&png_bomb(1, 1), &tiny_bytes).unwrap_err().code(), ErrorCode::PayloadTooLarge);
}

#[test]
fn jpeg_and_gif_bombs_are_refused_from_the_header() {
    // A JPEG SOF0 declaring 65000 x 65000, 3 components; no scan data.
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    jpeg.extend_from_slice(&65_000u16.to_be_bytes());
    jpeg.extend_from_slice(&65_000u16.to_be_bytes());
    jpeg.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xFF, 0xD9]);
    let err = probe(&jpeg, &Limits::default()).unwrap_err();
    assert!(matches!(err.code(), ErrorCode::ImageTooLarge | ErrorCode::CorruptImage), "{err}");
    assert!(decode_luma(&jpeg, &Limits::default()).is_err());
    // GIF logical screen of 65535 x 65535.
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&65_535u16.to_le_bytes());
    gif.extend_from_slice(&65_535u16.to_le_bytes());
    gif.extend_from_slice(&[0, 0, 0, 0x3B]);
    assert!(decode_luma(&gif, &Limits::default()).is_err());
}

#[test]
fn empty_zero_sized_and_unknown_inputs_are_clear_errors() {
    assert_eq!(decode_luma(&[], &Limits::default()).unwrap_err(), DecodeError::Empty);
    assert_eq!(
        decode_luma(b"hello, world", &Limits::default()).unwrap_err().code(),
        ErrorCode::UnsupportedFormat
    );
    assert_eq!(decode_luma(&png_bomb(0, 5), &Limits::default()).unwrap_err().code(), ErrorCode::CorruptImage);
    assert_eq!(Format::sniff(b"GIF89a......"), Some(Format::Gif));
}

fn samples_of_every_format() -> Vec<(&'static str, Vec<u8>)> {
    let rgb = DynamicImage::ImageRgb8(random_rgb(24, 17, 3));
    vec![
        ("jpeg", encode(&rgb, ImageFormat::Jpeg)),
        ("png", encode(&rgb, ImageFormat::Png)),
        ("webp", encode(&DynamicImage::ImageRgba8(rgb.to_rgba8()), ImageFormat::WebP)),
        ("gif", encode(&rgb, ImageFormat::Gif)),
        ("bmp", encode(&rgb, ImageFormat::Bmp)),
        ("tiff", encode(&rgb, ImageFormat::Tiff)),
    ]
}

/// A file cut anywhere is refused with `corrupt-image` (or `empty-input`, or
/// `unsupported-format` when too little is left to recognise), never decoded with made-up
/// pixels: the only cut files that decode are those missing nothing but their trailer (a PNG's
/// end chunk, a GIF's last byte), and they decode to exactly the whole file's pixels.
#[test]
fn truncated_inputs_are_refused_or_lose_only_their_trailer() {
    for (name, bytes) in samples_of_every_format().into_iter().chain(larger_samples()) {
        let whole = decode_luma(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{name} sample: {e}"));
        let step = (bytes.len() / 97).max(1);
        for len in (0..bytes.len()).step_by(step).chain(bytes.len().saturating_sub(16)..bytes.len()) {
            match decode_luma(&bytes[..len], &Limits::default()) {
                Err(e) => {
                    let code = e.code();
                    assert!(
                        matches!(
                            code,
                            ErrorCode::CorruptImage | ErrorCode::EmptyInput | ErrorCode::UnsupportedFormat
                        ),
                        "{name} cut to {len} of {}: {code:?} {e}",
                        bytes.len()
                    );
                    assert!(!e.to_string().is_empty());
                }
                Ok(luma) => assert!(
                    luma == whole && bytes.len() - len <= 12,
                    "{name} cut to {len} of {} bytes decoded to other pixels",
                    bytes.len()
                ),
            }
        }
    }
}

/// Samples of a few hundred kilobytes, so that a cut lands inside the pixel data of every
/// format (many rows, many chunks or strips).
fn larger_samples() -> Vec<(&'static str, Vec<u8>)> {
    let rgb = DynamicImage::ImageRgb8(random_rgb(301, 203, 9));
    vec![
        ("large png", encode(&rgb, ImageFormat::Png)),
        ("large webp", encode(&DynamicImage::ImageRgba8(rgb.to_rgba8()), ImageFormat::WebP)),
        ("large gif", encode(&rgb, ImageFormat::Gif)),
        ("large bmp", encode(&rgb, ImageFormat::Bmp)),
        ("large tiff", encode(&rgb, ImageFormat::Tiff)),
    ]
}

#[test]
fn corrupted_and_random_inputs_never_panic() {
    let mut rng = fastrand::Rng::with_seed(77);
    for (_, bytes) in samples_of_every_format() {
        for _ in 0..60 {
            let mut broken = bytes.clone();
            for _ in 0..rng.usize(1..8) {
                let i = rng.usize(..broken.len());
                broken[i] = rng.u8(..);
            }
            let _ = decode_luma(&broken, &Limits::default());
        }
        for _ in 0..30 {
            let mut random: Vec<u8> = bytes[..12.min(bytes.len())].to_vec();
            random.extend((0..rng.usize(0..400)).map(|_| rng.u8(..)));
            let _ = decode_luma(&random, &Limits::default());
        }
    }
}

/// Every PNG colour type and bit depth, with and without transparency: the row-by-row decode
/// gives the same luma as the `image` crate's whole-frame decode. (Interlaced PNGs, which
/// the encoder here cannot write, take the whole-frame path.)
#[test]
fn pngs_decoded_row_by_row_equal_the_whole_frame_decode() {
    use png::{BitDepth, ColorType};
    let (w, h) = (37u32, 23u32);
    let kinds = [
        (ColorType::Grayscale, BitDepth::One),
        (ColorType::Grayscale, BitDepth::Four),
        (ColorType::Grayscale, BitDepth::Eight),
        (ColorType::Grayscale, BitDepth::Sixteen),
        (ColorType::GrayscaleAlpha, BitDepth::Eight),
        (ColorType::GrayscaleAlpha, BitDepth::Sixteen),
        (ColorType::Rgb, BitDepth::Eight),
        (ColorType::Rgb, BitDepth::Sixteen),
        (ColorType::Rgba, BitDepth::Eight),
        (ColorType::Rgba, BitDepth::Sixteen),
        (ColorType::Indexed, BitDepth::Two),
        (ColorType::Indexed, BitDepth::Eight),
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    for (color, depth) in kinds {
        for transparent in [false, true] {
            let mut bytes = Vec::new();
            {
                let mut encoder = png::Encoder::new(&mut bytes, w, h);
                encoder.set_color(color);
                encoder.set_depth(depth);
                if color == ColorType::Indexed {
                    encoder.set_palette((0..256 * 3).map(|i| (i * 7 % 256) as u8).collect::<Vec<u8>>());
                    if transparent {
                        encoder.set_trns(vec![0u8, 128, 255]);
                    }
                } else if transparent && matches!(color, ColorType::Grayscale | ColorType::Rgb) {
                    // One 16-bit value per channel, whatever the depth.
                    let channels = if color == ColorType::Rgb { 3 } else { 1 };
                    encoder.set_trns(vec![0u8; 2 * channels]);
                }
                let row_bits = w as usize * color.samples() * depth as usize;
                let data: Vec<u8> = (0..row_bits.div_ceil(8) * h as usize).map(|_| rng.u8(..)).collect();
                encoder.write_header().unwrap().write_image_data(&data).unwrap();
            }
            let ours = decode_luma(&bytes, &Limits::default())
                .unwrap_or_else(|e| panic!("{color:?} {depth:?} transparent {transparent}: {e}"));
            assert_eq!((ours.width, ours.height), (w as usize, h as usize));
            // The reference: the image crate's own decode, through the kernel's luma weights.
            let rgba = image::load_from_memory(&bytes).unwrap().to_rgba16();
            let want: Vec<u8> = rgba
                .pixels()
                .map(|p| {
                    let [r, g, b, _] = p.0.map(|v| (v >> 8) as u8);
                    dsobel_kernel::reference::luma_of_rgb(r, g, b)
                })
                .collect();
            assert!(ours.pixels == want, "{color:?} {depth:?} transparent {transparent}: luma differs");
        }
    }
}
