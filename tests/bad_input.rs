//! Every kind of bad image, one table, three doors: `dsobel process`, the embedded server and
//! the distributed system (a backend and a worker on the real RabbitMQ and Redis). Each case
//! must get the same stable code everywhere, an HTTP status to match, and a message that says
//! what is wrong in plain words (never a library's internals); nothing is ever answered with
//! made-up pixels.

use std::io::Cursor;
use std::time::Duration;

use dsobel_client::{ErrorCode, JobResult, JobState, Upload};
use dsobel_testkit::api::Backend;
use dsobel_testkit::process::{embedded_serve, run_process};
use dsobel_testkit::{Need, Servers, Stack, Test, fixture, test_png};

fn main() -> std::process::ExitCode {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    dsobel_testkit::run(vec![
        Test::new("every_bad_image_gets_its_code_and_plain_words_from_dsobel_process", &[], || {
            check_cli(&cases())
        }),
        Test::new("every_bad_image_gets_its_code_and_plain_words_from_the_embedded_server", &[], || {
            let embedded = embedded_serve(&[]);
            check_http("embedded", &embedded.backend(), &cases());
        }),
        Test::new(
            "every_bad_image_gets_its_code_and_plain_words_from_the_distributed_system",
            &[Need::RabbitMq, Need::Redis],
            || {
                let stack = Stack::new(&Servers::shared());
                let _worker = stack.worker(0);
                let serve = stack.serve(&[]);
                check_http("distributed", &serve.backend(), &cases());
            },
        ),
    ])
}

/// One bad input and what every door must say of it.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    status: u16,
    code: &'static str,
    /// Words the message must contain.
    words: &'static str,
}

fn encode(image: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).expect("encode a sample");
    bytes.into_inner()
}

fn cut(bytes: &[u8], percent: usize) -> Vec<u8> {
    bytes[..bytes.len() * percent / 100].to_vec()
}

fn cases() -> Vec<Case> {
    let baseline = fixture("q90-420.jpg");
    let progressive = fixture("progressive-420.jpg");
    let mut out_of_sequence = fixture("q50-420-restart.jpg");
    let rst0 = out_of_sequence.windows(2).rposition(|w| w == [0xFF, 0xD0]).unwrap();
    out_of_sequence[rst0 + 1] = 0xD5;
    let mut arithmetic = baseline.clone();
    let sof = arithmetic.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    arithmetic[sof + 1] = 0xC9;
    let mut lossless = baseline.clone();
    lossless[sof + 1] = 0xC3;
    // The frame header claims twice the height the scan holds.
    let mut too_tall = baseline.clone();
    let height = u16::from_be_bytes([too_tall[sof + 5], too_tall[sof + 6]]);
    too_tall[sof + 5..sof + 7].copy_from_slice(&(height * 2).to_be_bytes());

    let (png, _) = test_png(300, 200, 4);
    let mut bad_crc = png.clone();
    let idat = bad_crc.windows(4).position(|w| w == b"IDAT").unwrap();
    let idat_len = u32::from_be_bytes(bad_crc[idat - 4..idat].try_into().unwrap()) as usize;
    bad_crc[idat + 4 + idat_len] ^= 0xFF;
    let rgb = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(300, 200, |x, y| {
        image::Rgb([(x * 7 + y) as u8, (y * 3) as u8, (x ^ y) as u8])
    }));
    let rgba = image::DynamicImage::ImageRgba8(rgb.to_rgba8());

    let case = |name, bytes, status, code, words| Case { name, bytes, status, code, words };
    vec![
        case("JPEG cut at 60 %", cut(&baseline, 60), 422, "corrupt-image", "the data ends after row"),
        case("JPEG cut at 2 KB", baseline[..2048].to_vec(), 422, "corrupt-image", "the data ends after row"),
        case(
            "JPEG without its end marker",
            baseline[..baseline.len() - 2].to_vec(),
            422,
            "corrupt-image",
            "end-of-image marker",
        ),
        case(
            "progressive JPEG cut at 60 %",
            cut(&progressive, 60),
            422,
            "corrupt-image",
            "corrupt JPEG image",
        ),
        case(
            "restart marker out of sequence",
            out_of_sequence,
            422,
            "corrupt-image",
            "restart marker 5 found where",
        ),
        case("frame header taller than the scan", too_tall, 422, "corrupt-image", "the data ends after row"),
        case(
            "arithmetic-coded JPEG",
            arithmetic,
            415,
            "unsupported-image",
            "arithmetic coding is not supported",
        ),
        case("lossless JPEG", lossless, 415, "unsupported-image", "lossless"),
        case("PNG with a bad IDAT checksum", bad_crc, 422, "corrupt-image", "checksum"),
        case("PNG cut in half", cut(&png, 50), 422, "corrupt-image", "PNG"),
        case(
            "GIF cut at 60 %",
            cut(&encode(rgb.clone(), image::ImageFormat::Gif), 60),
            422,
            "corrupt-image",
            "GIF",
        ),
        case(
            "TIFF cut at 60 %",
            cut(&encode(rgb.clone(), image::ImageFormat::Tiff), 60),
            422,
            "corrupt-image",
            "TIFF",
        ),
        case(
            "WebP cut at 60 %",
            cut(&encode(rgba, image::ImageFormat::WebP), 60),
            422,
            "corrupt-image",
            "WebP",
        ),
        case("BMP cut at 60 %", cut(&encode(rgb, image::ImageFormat::Bmp), 60), 422, "corrupt-image", "BMP"),
        case(
            "plain text",
            b"just some words, not an image".to_vec(),
            415,
            "unsupported-format",
            "unrecognised",
        ),
    ]
}

/// A message a person can read: no Rust structure dumps or debug formatting.
fn assert_plain(door: &str, case: &Case, message: &str) {
    assert!(message.contains(case.words), "{door}, {}: {message:?} lacks {:?}", case.name, case.words);
    for internal in ["{ ", " }", "::", "Some(", "Error {", "kind:"] {
        assert!(!message.contains(internal), "{door}, {}: library internals in {message:?}", case.name);
    }
}

fn check_cli(cases: &[Case]) {
    for case in cases {
        let output = run_process(&case.bytes);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "dsobel process, {}: exit 0", case.name);
        assert!(output.stdout.is_empty(), "dsobel process, {}: wrote a PNG", case.name);
        assert!(stderr.contains(&format!("({})", case.code)), "dsobel process, {}: {stderr}", case.name);
        assert_plain("dsobel process", case, &stderr);
    }
}

/// Each case through an HTTP door: with `?wait=` the refusal is the answer (at the door, or
/// from the worker that found it), and without it a job that was accepted fails with the code.
fn check_http(door: &str, backend: &Backend, cases: &[Case]) {
    for case in cases {
        let refused = match backend.upload(&case.bytes, "wait=30") {
            Err(refused) => refused,
            Ok(answer) => panic!("{door}, {}: answered {answer:?}", case.name),
        };
        assert_eq!(refused.status(), case.status, "{door}, {}: {refused}", case.name);
        assert_eq!(refused.code(), case.code, "{door}, {}: {refused}", case.name);
        let dsobel_client::ClientError::Api { message, .. } = &refused else {
            panic!("{door}, {}: {refused}", case.name)
        };
        assert_plain(door, case, message);
        match backend.upload(&case.bytes, "fragments=2") {
            Ok(Upload::Accepted(links)) => {
                let status = backend.wait_job(&links.id, Duration::from_secs(30));
                assert_eq!(status.state, JobState::Failed, "{door}, {}: {status:?}", case.name);
                let code = status.error.as_ref().map(|e| e.code);
                assert_eq!(code.map(ErrorCode::as_str), Some(case.code), "{door}, {}: {status:?}", case.name);
                match backend.result(&links.id) {
                    Err(result) => assert_eq!(result.status(), case.status, "{door}, {}: /result", case.name),
                    Ok(JobResult::Ready(_) | JobResult::Pending(_)) => {
                        panic!("{door}, {}: /result of a failed job", case.name)
                    }
                }
            }
            Ok(other) => panic!("{door}, {}: answered {other:?}", case.name),
            Err(refused) => {
                assert_eq!(refused.status(), case.status, "{door}, {}: refused at the door", case.name)
            }
        }
    }
}
