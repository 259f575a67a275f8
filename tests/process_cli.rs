//! `dsobel process` end to end, through the built binary: files, directories, stdin/stdout,
//! strips, failures that do not stop the others, and output equal to the scalar reference.

use std::path::Path;
use std::process::{Command, Stdio};

use dsobel_kernel::{FilterParams, Magnitude, OutputMode, reference};

fn dsobel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dsobel"))
}

/// A photo-like RGB PNG written by the test itself, so the test does not depend on files.
fn write_png(path: &Path, w: u32, h: u32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let disc = ((x as i32 - 20).pow(2) + (y as i32 - 15).pow(2) < 100) as u8 * 120;
            rgb.extend([(x * 3) as u8 ^ disc, (y * 5) as u8, disc]);
        }
    }
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.write_header().unwrap().write_image_data(&rgb).unwrap();
    rgb.chunks(3).map(|p| reference::luma_of_rgb(p[0], p[1], p[2])).collect()
}

#[test]
fn output_equals_the_reference_for_any_strip_count() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("shape.png");
    let luma = write_png(&input, 53, 41);
    for (mode, magnitude) in [("binary", "l2"), ("magnitude", "l1"), ("magnitude", "l2"), ("binary", "l1")] {
        let params = FilterParams {
            threshold: 70,
            magnitude: magnitude.parse::<Magnitude>().unwrap(),
            output: mode.parse::<OutputMode>().unwrap(),
        };
        let want = reference::filter_image(&luma, 53, 41, &params);
        for strips in ["1", "3", "41"] {
            let out = dir.path().join(format!("out-{mode}-{magnitude}-{strips}.png"));
            let status = dsobel()
                .args([
                    "process",
                    "--threshold",
                    "70",
                    "--output",
                    mode,
                    "--magnitude",
                    magnitude,
                    "--strips",
                    strips,
                    "-o",
                ])
                .arg(&out)
                .arg(&input)
                .status()
                .unwrap();
            assert!(status.success());
            let (w, h, pixels) = dsobel_testkit::decode_png(&std::fs::read(&out).unwrap());
            assert_eq!((w, h), (53, 41));
            assert_eq!(pixels, want, "{mode} {magnitude} strips={strips}");
        }
    }
}

#[test]
fn a_directory_with_a_bad_file_does_the_rest_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir_all(inputs.join("nested")).unwrap();
    write_png(&inputs.join("a.png"), 30, 20);
    write_png(&inputs.join("nested").join("b.png"), 20, 30);
    std::fs::write(inputs.join("broken.jpg"), b"this is not a jpeg").unwrap();
    std::fs::write(inputs.join("notes.txt"), b"ignored: not an image extension").unwrap();
    let out_dir = dir.path().join("out");
    let output =
        dsobel().args(["process", "--recursive", "--out-dir"]).arg(&out_dir).arg(&inputs).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("broken.jpg") && stderr.contains("unsupported-format"), "{stderr}");
    assert!(stderr.contains("2 images processed") && stderr.contains("1 failed"), "{stderr}");
    assert!(out_dir.join("a-edges.png").exists() && out_dir.join("b-edges.png").exists());
    // Without --recursive, the nested file is not visited.
    let flat = dir.path().join("flat");
    let output = dsobel().args(["process", "--out-dir"]).arg(&flat).arg(&inputs).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(flat.join("a-edges.png").exists() && !flat.join("b-edges.png").exists());
}

#[test]
fn stdin_to_stdout() {
    let photo =
        std::fs::read(dsobel_testkit::photo("chelsea.png")).expect("the test photos are in the repository");
    let mut child = dsobel()
        .args(["process", "-", "--threads", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &photo));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (w, h, _) = dsobel_testkit::decode_png(&output.stdout);
    assert_eq!((w, h), (451, 300));
}

#[test]
fn misuse_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.png");
    write_png(&a, 4, 4);
    let output = dsobel().args(["process", "-o", "x.png"]).arg(&a).arg(&a).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("exactly one input"));
    let output = dsobel().args(["process", "--magnitude", "l3"]).arg(&a).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("l2, l1"));
    let output = dsobel().args(["process"]).arg(dir.path().join("missing.png")).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.png"));
}

#[test]
fn a_damaged_jpeg_fails_with_what_is_wrong_and_no_output() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/codec/tests/fixtures/libjpeg/q90-420.jpg");
    let bytes = std::fs::read(fixture).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, cut) in [("cut.jpg", bytes.len() * 3 / 10), ("no-eoi.jpg", bytes.len() - 2)] {
        let input = dir.path().join(name);
        std::fs::write(&input, &bytes[..cut]).unwrap();
        let out = dir.path().join(format!("{name}.png"));
        let output = dsobel().arg("process").arg(&input).arg("-o").arg(&out).output().unwrap();
        assert!(!output.status.success(), "{name}: a damaged file counts as a failure");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("corrupt JPEG image") && stderr.contains("(corrupt-image)"),
            "{name}: {stderr}"
        );
        assert!(!out.exists(), "{name}: no PNG is written for it");
    }
}

/// Samples of an NPY file written by `process`, as little-endian integers of `bytes` each.
fn npy_values(file: &[u8], bytes: usize, signed: bool) -> Vec<i64> {
    let header_len = u16::from_le_bytes([file[8], file[9]]) as usize;
    file[10 + header_len..]
        .chunks_exact(bytes)
        .map(|b| match (bytes, signed) {
            (1, _) => b[0] as i64,
            (2, true) => i16::from_le_bytes([b[0], b[1]]) as i64,
            (2, false) => u16::from_le_bytes([b[0], b[1]]) as i64,
            (4, true) => i32::from_le_bytes(b.try_into().unwrap()) as i64,
            _ => u32::from_le_bytes(b.try_into().unwrap()) as i64,
        })
        .collect()
}

#[test]
fn every_operator_equals_the_reference_for_any_strip_count() {
    use dsobel_kernel::{Options, Samples};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("shape.png");
    let (w, h) = (53usize, 41usize);
    let luma = write_png(&input, w as u32, h as u32);
    let cases: [&[&str]; 7] = [
        &["--output", "canny", "--low", "40", "--high", "120", "--magnitude", "l1"],
        &["--output", "canny", "--ksize", "5", "--low", "300", "--high", "900"],
        &["--output", "gx", "--ksize", "5", "--format", "npy"],
        &["--output", "gy", "--kernel", "scharr", "--format", "npy"],
        &["--output", "magnitude16", "--ksize", "7", "--format", "npy"],
        &["--output", "magnitude16", "--magnitude", "l1"],
        &["--threshold", "otsu"],
    ];
    for flags in cases {
        let mut options = Options::default();
        for pair in flags.chunks(2) {
            let value = pair[1];
            match pair[0] {
                "--output" => options.output = value.parse().unwrap(),
                "--ksize" => options.ksize = value.parse().unwrap(),
                "--low" => options.low = value.parse().unwrap(),
                "--high" => options.high = value.parse().unwrap(),
                "--magnitude" => options.magnitude = value.parse().unwrap(),
                "--kernel" => options.kernel = value.parse().unwrap(),
                "--format" => options.format = value.parse().unwrap(),
                "--threshold" => options.threshold = value.parse().unwrap(),
                other => panic!("{other}"),
            }
        }
        let want: Vec<i64> = match reference::compute(&options, &luma, w, h) {
            Samples::U8(v) => v.into_iter().map(i64::from).collect(),
            Samples::U16(v) => v.into_iter().map(i64::from).collect(),
            Samples::U32(v) => v.into_iter().map(i64::from).collect(),
            Samples::I16(v) => v.into_iter().map(i64::from).collect(),
            Samples::I32(v) => v.into_iter().map(i64::from).collect(),
            Samples::F32(_) => unreachable!(),
        };
        for strips in ["1", "2", "3", "5", "8"] {
            let out = dir.path().join(format!("out-{}.{}", strips, options.format.extension()));
            let output = dsobel()
                .arg("process")
                .args(flags)
                .args(["--strips", strips, "-o"])
                .arg(&out)
                .arg(&input)
                .output()
                .unwrap();
            assert!(output.status.success(), "{flags:?}: {}", String::from_utf8_lossy(&output.stderr));
            let file = std::fs::read(&out).unwrap();
            let got: Vec<i64> = match options.format {
                dsobel_kernel::Format::Npy => {
                    let sample = options.sample().unwrap();
                    npy_values(
                        &file,
                        sample.bytes(),
                        matches!(sample, dsobel_kernel::Sample::I16 | dsobel_kernel::Sample::I32),
                    )
                }
                _ => {
                    let mut decoder = png::Decoder::new(std::io::Cursor::new(&file));
                    decoder.set_transformations(png::Transformations::EXPAND);
                    let mut reader = decoder.read_info().unwrap();
                    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
                    let frame = reader.next_frame(&mut buf).unwrap();
                    buf.truncate(frame.buffer_size());
                    if frame.bit_depth == png::BitDepth::Sixteen {
                        buf.chunks_exact(2).map(|b| u16::from_be_bytes([b[0], b[1]]) as i64).collect()
                    } else {
                        buf.into_iter().map(i64::from).collect()
                    }
                }
            };
            assert_eq!(got, want, "{flags:?} strips={strips}");
            if options.threshold == dsobel_kernel::Threshold::Otsu {
                assert!(String::from_utf8_lossy(&output.stderr).contains("otsu threshold"));
            }
        }
    }
}

#[test]
fn bad_operator_combinations_are_refused_with_the_option_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("shape.png");
    write_png(&input, 20, 10);
    for (flags, named) in [
        (&["--output", "canny", "--low", "200", "--high", "100"][..], "--low"),
        (&["--ksize", "4"][..], "--ksize"),
        (&["--kernel", "scharr", "--ksize", "5"][..], "--ksize"),
        (&["--output", "gx"][..], "--format"),
        (&["--threshold", "5000"][..], "--threshold"),
        (&["--output", "canny", "--kernel", "scharr"][..], "--kernel"),
    ] {
        let out = dir.path().join("never.png");
        let output = dsobel().arg("process").args(flags).arg("-o").arg(&out).arg(&input).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(named), "{flags:?} names {named}: {stderr}");
        assert!(!out.exists(), "{flags:?} wrote nothing");
    }
    let output = dsobel().args(["process", "--output", "gx"]).arg(&input).output().unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("tiff or npy"));
    // The original words still work, and a TIFF is written where asked.
    let tif = dir.path().join("dir.tif");
    let status = dsobel()
        .args(["process", "--output", "direction", "--format", "tiff", "-o"])
        .arg(&tif)
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(&std::fs::read(&tif).unwrap()[..4], b"II*\0");
}
