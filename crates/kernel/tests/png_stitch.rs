//! Strip-wise PNG encoding: the stitched file must decode, with two independent decoders, to
//! exactly the whole-image result, for strip counts 1..=8 and odd sizes, in both output modes.

use dsobel_kernel::png::{CompressionLevel, encode_strip, stitch};
use dsobel_kernel::{FilterParams, OutputMode, filter_image, filter_strip, plan_strips, strip_input};

fn decode_with_png_crate(bytes: &[u8]) -> (u32, u32, png::BitDepth, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // Expand 1-bit gray to 8-bit (0 / 255) so both modes compare against output bytes.
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("png header");
    let depth = reader.info().bit_depth;
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let frame = reader.next_frame(&mut buf).expect("png frame");
    buf.truncate(frame.buffer_size());
    (frame.width, frame.height, depth, buf)
}

fn decode_with_image_crate(bytes: &[u8]) -> Vec<u8> {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png).expect("image decode");
    img.to_luma8().into_raw()
}

fn photo_like(w: usize, h: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x * 7 + y * 3) as u8))
        .map(|v| v.wrapping_add(rng.u8(..16)))
        .collect()
}

#[test]
fn stitched_png_decodes_to_the_whole_image_result() {
    for (w, h) in [(1usize, 1usize), (1, 9), (9, 1), (13, 11), (31, 17), (64, 8), (101, 37)] {
        let luma = photo_like(w, h, (w * 1000 + h) as u64);
        for output in [OutputMode::Binary, OutputMode::Magnitude] {
            let params = FilterParams { threshold: 40, output, ..FilterParams::default() };
            let whole = filter_image(&luma, w, h, &params).unwrap();
            for count in 1..=8usize {
                let plan = plan_strips(w, h, count);
                let strips: Vec<_> = plan
                    .iter()
                    .map(|s| {
                        let rows = filter_strip(s, strip_input(&luma, s), &params).unwrap();
                        encode_strip(&rows, w, output, s.touches_bottom(), CompressionLevel::default())
                    })
                    .collect();
                let file = stitch(w as u32, h as u32, output, &strips);
                let (dw, dh, depth, pixels) = decode_with_png_crate(&file);
                assert_eq!((dw as usize, dh as usize), (w, h));
                let want_depth =
                    if output == OutputMode::Binary { png::BitDepth::One } else { png::BitDepth::Eight };
                assert_eq!(depth, want_depth);
                // The png crate expands 1-bit gray to 0/255 with EXPAND.
                assert_eq!(pixels, whole, "png crate, {w}x{h}, {count} strips, {output}");
                assert_eq!(
                    decode_with_image_crate(&file),
                    whole,
                    "image crate, {w}x{h}, {count} strips, {output}"
                );
            }
        }
    }
}

#[test]
fn large_strips_span_several_chunks_and_still_decode() {
    // Magnitude output of noise barely compresses: > 1 MiB per strip forces several IDATs.
    let (w, h) = (1500usize, 900usize);
    let mut rng = fastrand::Rng::with_seed(11);
    let luma: Vec<u8> = (0..w * h).map(|_| rng.u8(..)).collect();
    let params = FilterParams { output: OutputMode::Magnitude, ..FilterParams::default() };
    let whole = filter_image(&luma, w, h, &params).unwrap();
    let strips: Vec<_> = plan_strips(w, h, 2)
        .iter()
        .map(|s| {
            encode_strip(
                &whole[s.first_row * w..(s.first_row + s.rows) * w],
                w,
                OutputMode::Magnitude,
                s.touches_bottom(),
                CompressionLevel(1),
            )
        })
        .collect();
    let file = stitch(w as u32, h as u32, OutputMode::Magnitude, &strips);
    assert_eq!(decode_with_png_crate(&file).3, whole);
}
