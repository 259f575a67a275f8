//! Damaged JPEGs are refused with `corrupt-image` and a message that says what is wrong, on
//! every path that decodes: the whole-image decode, the streamed pipeline (one thread and two),
//! the decode that hands out strips, and a strip decoded from its restart intervals. Nothing
//! that libjpeg would warn about ("premature end of data", "corrupt data", a restart marker out
//! of sequence) gives an image.

use dsobel_codec::{
    DecodeError, ErrorCode, Limits, ProcessOptions, RestartIndex, StripsError, decode_luma,
    decode_restart_strip, decode_strips, process_bytes,
};
use dsobel_kernel::plan_strips;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libjpeg").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Where the entropy-coded data of the (first) scan starts.
fn scan_start(jpeg: &[u8]) -> usize {
    let sos = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).expect("a scan header");
    sos + 2 + usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]))
}

fn cut(bytes: &[u8], keep: usize) -> Vec<u8> {
    bytes[..keep.min(bytes.len())].to_vec()
}

fn percent(bytes: &[u8], p: usize) -> Vec<u8> {
    cut(bytes, bytes.len() * p / 100)
}

/// `bytes` with its first restart marker renumbered (RST0 → RST3).
fn restart_out_of_sequence(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let at = scan_start(bytes) + out[scan_start(bytes)..].windows(2).position(|w| w == [0xFF, 0xD0]).unwrap();
    out[at + 1] = 0xD3;
    out
}

/// `bytes` with `count` entropy-coded bytes from the middle of the scan replaced by random
/// ones (never 0xFF, so that no marker appears).
fn scrambled(bytes: &[u8], count: usize, seed: u64) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let (start, end) = (scan_start(bytes), bytes.len() - 2);
    let from = start + (end - start - count.min(end - start)) / 2;
    let mut rng = fastrand::Rng::with_seed(seed);
    for b in &mut out[from..(from + count).min(end)] {
        *b = rng.u8(0..0xFF);
    }
    out
}

/// `bytes` with a frame header that claims `width` × `height`.
fn claims(bytes: &[u8], width: u16, height: u16) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let sof = out.windows(2).position(|w| w[0] == 0xFF && matches!(w[1], 0xC0..=0xC2)).unwrap();
    out[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    out[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    out
}

/// Every case: a name, the damaged bytes, and words its message must hold.
fn cases() -> Vec<(String, Vec<u8>, &'static str)> {
    let baseline = fixture("q90-420.jpg");
    let progressive = fixture("progressive-420.jpg");
    let restart = fixture("q50-420-restart.jpg");
    let mut cases = vec![
        ("baseline cut to 2 KB".to_owned(), cut(&baseline, 2048), "the data ends after row"),
        ("baseline without its EOI".to_owned(), cut(&baseline, baseline.len() - 2), "end-of-image marker"),
        ("baseline with 2000 random entropy bytes".to_owned(), scrambled(&baseline, 2000, 7), "corrupt JPEG"),
        ("baseline claiming 4x its size".to_owned(), claims(&baseline, 1280, 960), "the data ends after row"),
        ("restart JPEG cut at 70 %".to_owned(), percent(&restart, 70), "corrupt JPEG"),
        (
            "restart marker out of sequence".to_owned(),
            restart_out_of_sequence(&restart),
            "restart marker 3 found where 0 was expected",
        ),
        ("restart JPEG with scrambled bytes".to_owned(), scrambled(&restart, 300, 9), "corrupt JPEG"),
    ];
    for p in [30, 60, 99] {
        cases.push((format!("baseline cut at {p} %"), percent(&baseline, p), "the data ends after row"));
        cases.push((format!("progressive cut at {p} %"), percent(&progressive, p), "corrupt JPEG"));
    }
    cases
}

fn assert_refused(name: &str, path: &str, error: &DecodeError, words: &str) {
    assert_eq!(error.code(), ErrorCode::CorruptImage, "{name} ({path}): {error}");
    let message = error.to_string();
    assert!(message.contains(words), "{name} ({path}): {message:?} lacks {words:?}");
}

#[test]
fn every_damaged_jpeg_is_refused_on_every_path() {
    let limits = Limits::default();
    for (name, bytes, words) in cases() {
        let whole = decode_luma(&bytes, &limits).map(|_| ()).expect_err(&name);
        assert_refused(&name, "decode", &whole, words);
        for overlap_decode in [false, true] {
            let options = ProcessOptions { overlap_decode, strips: Some(3), ..ProcessOptions::default() };
            match process_bytes(&bytes, &options) {
                Err(dsobel_codec::ProcessError::Decode(e)) => assert_refused(&name, "process", &e, words),
                other => {
                    panic!("{name} (process, overlap {overlap_decode}): {:?}", other.map(|p| p.png.len()))
                }
            }
        }
        for two_threads in [false, true] {
            match decode_strips(&bytes, &limits, 3, two_threads, |_, _| Ok::<(), ()>(())) {
                Err(StripsError::Decode(e)) => assert_refused(&name, "strips", &e, words),
                other => panic!("{name} (strips, two threads {two_threads}): {:?}", other.map(|_| ())),
            }
        }
    }
}

#[test]
fn a_damaged_restart_interval_is_refused_in_the_strip_that_holds_it() {
    let restart = fixture("q50-420-restart.jpg");
    let damaged = scrambled(&restart, 300, 11);
    let index = RestartIndex::read(&restart).expect("restart markers");
    let probe = dsobel_codec::probe(&restart, &Limits::default()).unwrap();
    let plan = plan_strips(probe.width as usize, probe.height as usize, 4);
    let mut refused = 0;
    for spec in &plan {
        let bytes = index.strip_bytes(spec);
        let header = &damaged[bytes.header.start as usize..bytes.header.end as usize];
        let scan = &damaged[bytes.scan.start as usize..bytes.scan.end as usize];
        match decode_restart_strip(header, scan, bytes.first_interval, spec) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::CorruptImage, "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused >= 1, "the strip holding the damage was decoded anyway");
}

#[test]
fn the_intact_fixtures_still_decode() {
    for name in ["q90-420.jpg", "progressive-420.jpg", "q50-420-restart.jpg", "gray-q100-restart.jpg"] {
        decode_luma(&fixture(name), &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// `bytes` with its frame header's marker replaced by `marker` and its precision by `bits`.
fn frame(bytes: &[u8], marker: u8, bits: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let sof = out.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline frame header");
    out[sof + 1] = marker;
    out[sof + 4] = bits;
    out
}

#[test]
fn unsupported_coding_processes_are_named_not_called_corrupt() {
    let baseline = fixture("q90-420.jpg");
    for (marker, bits, feature) in [
        (0xC9, 8, "arithmetic coding"),
        (0xCA, 8, "arithmetic coding"),
        (0xC3, 8, "lossless coding"),
        (0xC5, 8, "hierarchical coding"),
        (0xC1, 12, "12-bit samples"),
        (0xC2, 12, "12-bit samples"),
    ] {
        let bytes = frame(&baseline, marker, bits);
        let error = dsobel_codec::probe(&bytes, &Limits::default()).map(|_| ()).unwrap_err();
        assert_eq!(error.code(), ErrorCode::UnsupportedImage, "{marker:#x}: {error}");
        assert_eq!(error.to_string(), format!("unsupported JPEG image: {feature} is not supported"));
        assert_eq!(decode_luma(&bytes, &Limits::default()).map(|_| ()).unwrap_err(), error);
    }
    // Extended sequential 8-bit (SOF1) is baseline in all but name.
    decode_luma(&frame(&baseline, 0xC1, 8), &Limits::default()).expect("SOF1 with 8-bit samples");
}
