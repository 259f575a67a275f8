//! dsobel's luma of a JPEG is libjpeg's, byte for byte (DESIGN §2), for every kind of baseline
//! file: 4:4:4, 4:2:2, 4:4:0, 4:2:0 and 4:1:1 sampling, grayscale, restart markers, sizes that
//! are not multiples of the block or MCU size, 1-pixel sides. The fixtures and libjpeg-turbo's
//! decodes of them come from `scripts/make-jpeg-fixtures.py`.
//!
//! And the streamed path of the pipeline (the entropy decoding on a second thread, strips
//! filtered and encoded as their rows arrive) gives exactly the image of the plain path, on
//! good files, corrupt ones and truncated ones alike.

use std::path::{Path, PathBuf};

use dsobel_codec::{ErrorCode, Limits, ProcessError, ProcessOptions, decode_luma, process_bytes};
use dsobel_kernel::reference::filter_image;
use dsobel_kernel::{FilterParams, Magnitude, OutputMode};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libjpeg");
    let mut jpegs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "jpg"))
        .collect();
    jpegs.sort();
    assert!(jpegs.len() >= 10, "fixtures missing in {}", dir.display());
    jpegs
}

/// Reads a binary PGM (`P5`, 8-bit) as (width, height, samples).
fn read_pgm(path: &Path) -> (usize, usize, Vec<u8>) {
    let bytes = std::fs::read(path).expect("PGM fixture");
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
    }
    assert_eq!((fields[0].as_str(), fields[3].as_str()), ("P5", "255"), "{}", path.display());
    let (width, height) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let samples = bytes[at + 1..].to_vec();
    assert_eq!(samples.len(), width * height);
    (width, height, samples)
}

#[test]
fn baseline_jpegs_decode_to_libjpegs_luma_exactly() {
    for jpeg in fixtures() {
        let name = jpeg.file_stem().unwrap().to_string_lossy().into_owned();
        let (width, height, expected) = read_pgm(&jpeg.with_extension("pgm"));
        let image = decode_luma(&std::fs::read(&jpeg).unwrap(), &Limits::default()).expect("decodes");
        assert_eq!((image.width, image.height), (width, height), "{name}");
        let differing = image.pixels.iter().zip(&expected).filter(|(a, b)| a != b).count();
        let worst = image.pixels.iter().zip(&expected).map(|(&a, &b)| a.abs_diff(b)).max().unwrap_or(0);
        eprintln!("{name}: {differing} pixels differ, by at most {worst}");
        if name.starts_with("progressive") {
            continue;
        }
        assert_eq!(differing, 0, "{name}: {differing} of {} pixels differ, by up to {worst}", width * height);
    }
}

/// The pixels of a PNG the pipeline wrote.
fn png_pixels(png: &[u8]) -> Vec<u8> {
    image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .expect("a valid PNG")
        .to_luma8()
        .into_raw()
}

/// Runs the pipeline on two threads, streamed or not.
fn run(
    bytes: &[u8],
    strips: Option<usize>,
    overlap_decode: bool,
    params: FilterParams,
) -> Result<Vec<u8>, String> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let options = ProcessOptions { strips, overlap_decode, params, ..ProcessOptions::default() };
    pool.install(|| process_bytes(bytes, &options))
        .map(|done| png_pixels(&done.png))
        .map_err(|e| e.to_string())
}

#[test]
fn the_streamed_pipeline_gives_the_reference_result_for_any_strip_count() {
    let magnitude = FilterParams { output: OutputMode::Magnitude, magnitude: Magnitude::L1, threshold: 100 };
    for jpeg in fixtures() {
        let name = jpeg.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&jpeg).unwrap();
        let luma = decode_luma(&bytes, &Limits::default()).unwrap();
        for params in [FilterParams::default(), magnitude] {
            let expected = filter_image(&luma.pixels, luma.width, luma.height, &params);
            for strips in [None, Some(1), Some(2), Some(5), Some(luma.height)] {
                for overlap in [false, true] {
                    let got = run(&bytes, strips, overlap, params).unwrap();
                    assert!(got == expected, "{name}: {params:?}, strips {strips:?}, overlap {overlap}");
                }
            }
        }
    }
}

#[test]
fn corrupt_and_truncated_jpegs_give_the_same_outcome_on_both_paths() {
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libjpeg/q50-420-restart.jpg"),
    )
    .unwrap();
    let scan_start = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap() + 14;
    let mut rng = fastrand::Rng::with_seed(11);
    let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
    for len in [scan_start, scan_start + 1, bytes.len() / 2, bytes.len() - 3, bytes.len() - 2] {
        variants.push((format!("truncated to {len}"), bytes[..len].to_vec()));
    }
    for round in 0..40 {
        let mut corrupt = bytes.clone();
        for _ in 0..1 + round % 4 {
            let at = rng.usize(scan_start..bytes.len() - 2);
            corrupt[at] = rng.u8(..);
        }
        variants.push((format!("corruption {round}"), corrupt));
    }
    // A restart marker out of sequence.
    let mut misnumbered = bytes.clone();
    let marker = bytes.windows(2).position(|w| w == [0xFF, 0xD1]).unwrap();
    misnumbered[marker + 1] = 0xD5;
    variants.push(("restart marker out of sequence".into(), misnumbered));
    for (what, input) in variants {
        let plain = run(&input, None, false, FilterParams::default());
        let streamed = run(&input, None, true, FilterParams::default());
        assert!(plain == streamed, "{what}: the two paths disagree");
    }
}

#[test]
fn the_streamed_path_checks_the_limits_before_decoding() {
    let bytes =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libjpeg/q90-420.jpg"))
            .unwrap();
    for limits in [
        Limits { max_pixels: 333 * 251 - 1, ..Limits::default() },
        Limits { max_dimension: 332, ..Limits::default() },
        Limits { max_bytes: bytes.len() as u64 - 1, ..Limits::default() },
    ] {
        let options = ProcessOptions { limits, overlap_decode: true, ..ProcessOptions::default() };
        match process_bytes(&bytes, &options) {
            Err(ProcessError::Decode(e)) => {
                assert!(
                    matches!(e.code(), ErrorCode::ImageTooLarge | ErrorCode::PayloadTooLarge),
                    "{limits:?}: {e}"
                )
            }
            other => panic!("{limits:?}: {:?}", other.map(|p| p.png.len())),
        }
    }
}
