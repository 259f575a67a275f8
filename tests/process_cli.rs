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
