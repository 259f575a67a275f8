//! Every output of every kernel, fast, against the scalar reference: every supported backend,
//! random images of many sizes (1×1, 1×N, N×1, odd widths so vector tails and border columns
//! are exercised), and every strip count from 1 to 8 through the strip phases and the file
//! formats, decoded back.

use dsobel_kernel::png::CompressionLevel;
use dsobel_kernel::{
    Backend, Format, Kernel, Magnitude, Options, Output, Samples, Threshold, compute_image_with, reference,
    run_strips,
};

fn random_luma(rng: &mut fastrand::Rng, w: usize, h: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(w * h);
    while v.len() < w * h {
        match rng.u8(..) {
            0..64 => {
                let value = rng.u8(..);
                v.extend(std::iter::repeat_n(value, rng.usize(1..12)));
            }
            64..96 => v.push(if rng.bool() { 0 } else { 255 }),
            _ => v.push(rng.u8(..)),
        }
    }
    v.truncate(w * h);
    v
}

/// Every kernel with every output that is not Canny, in the formats that hold it.
fn single_pass_options() -> Vec<Options> {
    let mut all = Vec::new();
    for (kernel, ksize) in
        [(Kernel::Sobel, 1), (Kernel::Sobel, 3), (Kernel::Sobel, 5), (Kernel::Sobel, 7), (Kernel::Scharr, 3)]
    {
        for magnitude in [Magnitude::L2, Magnitude::L1] {
            for (output, format) in [
                (Output::Binary, Format::Png),
                (Output::Magnitude, Format::Png),
                (Output::Magnitude16, Format::Npy),
                (Output::Gx, Format::Npy),
                (Output::Gy, Format::Tiff),
                (Output::Direction, Format::Npy),
                (Output::Direction, Format::Png),
            ] {
                let base = Options { kernel, ksize, magnitude, output, format, ..Options::default() };
                let limit = base.magnitude_limit() as u32;
                let thresholds: Vec<Threshold> = if output == Output::Binary {
                    vec![
                        Threshold::Value(0),
                        Threshold::Value(limit / 7),
                        Threshold::Value(limit - 1),
                        Threshold::Otsu,
                    ]
                } else {
                    vec![Threshold::default()]
                };
                for threshold in thresholds {
                    all.push(Options { threshold, ..base });
                }
            }
        }
    }
    all
}

fn canny_options() -> Vec<Options> {
    let mut all = Vec::new();
    for ksize in [3u8, 5, 7] {
        for magnitude in [Magnitude::L2, Magnitude::L1] {
            let scale = match ksize {
                3 => 1,
                5 => 8,
                _ => 100,
            };
            for (low, high) in [(20, 60), (50, 150), (100, 100), (0, 300)] {
                all.push(Options {
                    output: Output::Canny,
                    ksize,
                    magnitude,
                    low: low * scale,
                    high: high * scale,
                    ..Options::default()
                });
            }
        }
    }
    all
}

fn backends() -> Vec<Backend> {
    for b in Backend::ALL.into_iter().filter(|b| !b.is_supported()) {
        eprintln!("skipping backend {b}: not supported by this CPU");
    }
    Backend::ALL.into_iter().filter(|b| b.is_supported()).collect()
}

#[test]
fn every_output_and_backend_equals_the_reference_on_small_images() {
    let mut rng = fastrand::Rng::with_seed(25);
    let backends = backends();
    let sizes = [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5), (9, 4), (17, 3), (33, 6), (40, 9)];
    for (w, h) in sizes {
        let luma = random_luma(&mut rng, w, h);
        for options in single_pass_options().into_iter().chain(canny_options()) {
            options.validate().unwrap_or_else(|e| panic!("{options:?}: {e}"));
            let want = reference::compute(&options, &luma, w, h);
            for &backend in &backends {
                let got = compute_image_with(backend, &options, &luma, w, h).unwrap();
                assert!(got.bit_equal(&want), "{backend} {w}x{h} {options:?}\n got {got:?}\nwant {want:?}");
            }
        }
    }
}

#[test]
fn every_output_equals_the_reference_on_wider_images() {
    let mut rng = fastrand::Rng::with_seed(26);
    let backends = backends();
    for (w, h) in [(67, 13), (130, 21), (257, 11)] {
        let luma = random_luma(&mut rng, w, h);
        for options in single_pass_options().into_iter().chain(canny_options()) {
            let want = reference::compute(&options, &luma, w, h);
            for &backend in &backends {
                let got = compute_image_with(backend, &options, &luma, w, h).unwrap();
                assert!(got.bit_equal(&want), "{backend} {w}x{h} {options:?}");
            }
        }
    }
}

/// Decodes a result file back into samples of the type it declares.
fn decode(file: &[u8], options: &Options, w: usize, h: usize) -> Samples {
    match options.format {
        Format::Png => {
            let mut decoder = png::Decoder::new(std::io::Cursor::new(file));
            decoder.set_transformations(png::Transformations::EXPAND);
            let mut reader = decoder.read_info().expect("png header");
            let mut buf = vec![0; reader.output_buffer_size().expect("size")];
            let frame = reader.next_frame(&mut buf).expect("png frame");
            assert_eq!((frame.width as usize, frame.height as usize), (w, h));
            buf.truncate(frame.buffer_size());
            match frame.bit_depth {
                png::BitDepth::Sixteen => {
                    Samples::U16(buf.chunks_exact(2).map(|b| u16::from_be_bytes([b[0], b[1]])).collect())
                }
                _ => Samples::U8(buf),
            }
        }
        Format::Npy => {
            let header_len = u16::from_le_bytes([file[8], file[9]]) as usize;
            let header = std::str::from_utf8(&file[10..10 + header_len]).unwrap();
            assert!(header.contains(&format!("'shape': ({h}, {w})")), "{header}");
            raw_samples(&file[10 + header_len..], options)
        }
        Format::Tiff => {
            let image = image::load_from_memory_with_format(file, image::ImageFormat::Tiff);
            // The image crate reads the integer layouts; the others are checked by layout.
            let ifd = u32::from_le_bytes(file[4..8].try_into().unwrap()) as usize;
            let sample = options.sample().unwrap();
            if sample == dsobel_kernel::Sample::Bit {
                let line = w.div_ceil(8);
                let mut out = vec![0u8; w * h];
                for y in 0..h {
                    for x in 0..w {
                        out[y * w + x] = 0u8.wrapping_sub(file[8 + y * line + x / 8] >> (7 - x % 8) & 1);
                    }
                }
                if let Ok(image) = image {
                    assert_eq!(image.to_luma8().into_raw(), out);
                }
                return Samples::U8(out);
            }
            let data = &file[8..8 + w * h * sample.bytes()];
            assert!(ifd >= 8 + data.len());
            raw_samples(data, options)
        }
    }
}

fn raw_samples(data: &[u8], options: &Options) -> Samples {
    use dsobel_kernel::Sample;
    match options.sample().unwrap() {
        Sample::Bit | Sample::U8 => Samples::U8(data.to_vec()),
        Sample::U16 => Samples::U16(data.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect()),
        Sample::U32 => {
            Samples::U32(data.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect())
        }
        Sample::I16 => Samples::I16(data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()),
        Sample::I32 => {
            Samples::I32(data.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap())).collect())
        }
        Sample::F32 => {
            Samples::F32(data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
        }
    }
}

#[test]
fn every_strip_count_gives_the_whole_image_in_every_format() {
    let mut rng = fastrand::Rng::with_seed(27);
    for (w, h) in [(1, 1), (1, 9), (9, 1), (13, 11), (31, 17), (50, 23)] {
        let luma = random_luma(&mut rng, w, h);
        for options in single_pass_options().into_iter().chain(canny_options()) {
            let mut files = Vec::new();
            for format in [Format::Png, Format::Npy, Format::Tiff] {
                let options = Options { format, ..options };
                if options.validate().is_err() {
                    continue;
                }
                let want = reference::compute(&options, &luma, w, h);
                let mut first = None;
                for count in 1..=8 {
                    let (file, _) =
                        run_strips(&options, &luma, w, h, count, CompressionLevel::default()).unwrap();
                    let got = decode(&file, &options, w, h);
                    assert!(got.bit_equal(&want), "{w}x{h} {count} strips {options:?}");
                    // The file itself is the same whatever the strip count (PNG: the same
                    // pixels, its compressed bytes cut differently).
                    if options.format != Format::Png {
                        let first = first.get_or_insert_with(|| file.clone());
                        assert_eq!(&file, first, "{w}x{h} {count} strips {options:?}");
                    }
                }
                files.push(format);
            }
            assert!(!files.is_empty(), "{options:?} fits no format");
        }
    }
}
