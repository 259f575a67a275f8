//! The OpenCV oracle: `gx`/`gy` of every Sobel size and Scharr, and Canny with L1 and L2 and
//! several threshold pairs, equal to OpenCV's generic code path (`cv2.setUseOptimized(False)`)
//! pixel for pixel, on the two CC0 photographs and on generated images (steps, noise, flat,
//! thin lines across strip boundaries, tiny sizes), through the fast paths and through strips.
//! Where OpenCV's optimized path differs from its generic one, the test prints the pixels.
//!
//! Needs `python3` with `opencv-python-headless` and `numpy` (`pip install
//! opencv-python-headless==5.0.0.93 numpy`; `DSOBEL_PYTHON` names another interpreter).
//! Without them the test says it was skipped; under `CI=true` it fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use dsobel_kernel::png::CompressionLevel;
use dsobel_kernel::{
    Format, Kernel, Magnitude, Options, Output, Samples, compute_image, reference, run_strips,
};

fn python() -> String {
    std::env::var("DSOBEL_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether the oracle can run here; panics under CI when it cannot.
fn opencv_available() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import cv2, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        let message = format!(
            "SKIPPED: the OpenCV oracle needs `{} -c \"import cv2, numpy\"` to work: \
             pip install opencv-python-headless==5.0.0.93 numpy",
            python()
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message} (required under CI=true)");
        eprintln!("{message}");
    }
    ok
}

/// The photographs: in the repository's test data, or beside the repository.
fn photo_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [root.join("tests/data/photos"), root.join("../shared/testdata/photos")]
        .into_iter()
        .find(|d| d.join("coffee.png").exists())
}

struct Image {
    name: String,
    width: usize,
    height: usize,
    luma: Vec<u8>,
}

fn photo(dir: &Path, name: &str) -> Image {
    let rgb = image::open(dir.join(format!("{name}.png"))).expect("photo").to_rgb8();
    let (width, height) = (rgb.width() as usize, rgb.height() as usize);
    let luma = rgb.pixels().map(|p| reference::luma_of_rgb(p[0], p[1], p[2])).collect();
    Image { name: name.into(), width, height, luma }
}

fn generated() -> Vec<Image> {
    let mut rng = fastrand::Rng::with_seed(2025);
    let mut images = Vec::new();
    let mut add = |name: &str, width: usize, height: usize, f: &mut dyn FnMut(usize, usize) -> u8| {
        let luma = (0..height).flat_map(|y| (0..width).map(move |x| (x, y))).map(|(x, y)| f(x, y)).collect();
        images.push(Image { name: name.into(), width, height, luma });
    };
    add("steps", 64, 48, &mut |x, y| {
        let mut v = 40;
        if x >= 20 {
            v += 90;
        }
        if y >= 30 {
            v += 60;
        }
        if x + y > 70 {
            v -= 70;
        }
        v
    });
    add("flat", 33, 17, &mut |_, _| 128);
    add("noise", 61, 47, &mut |_, _| rng.u8(..));
    // Thin lines, one pixel wide, of several contrasts, crossing the rows where strips of an
    // 8-way cut begin, horizontal, vertical and diagonal.
    add("lines", 80, 90, &mut |x, y| {
        let diagonal = (x as i64 - y as i64).rem_euclid(29) == 0;
        let vertical = x % 17 == 5;
        let horizontal = y % 11 == 0;
        match (diagonal, vertical, horizontal) {
            (true, _, _) => 200,
            (_, true, _) => 35 + (y as u8 / 3),
            (_, _, true) => 90,
            _ => 20,
        }
    });
    let smooth: Vec<u8> = (0..97 * 73).map(|_| rng.u8(..)).collect();
    add("blobs", 97, 73, &mut |x, y| {
        // A 5x5 box blur of noise, stretched: soft texture with many weak edges.
        let mut sum = 0u32;
        for dy in 0..5 {
            for dx in 0..5 {
                let (xx, yy) = ((x + dx).min(96), (y + dy).min(72));
                sum += smooth[yy * 97 + xx] as u32;
            }
        }
        ((sum / 25) as i32 * 3 - 256).clamp(0, 255) as u8
    });
    for (w, h) in [(1, 1), (1, 9), (9, 1), (2, 2), (3, 3), (4, 7), (7, 4)] {
        let mut rng = fastrand::Rng::with_seed((w * 100 + h) as u64);
        add(&format!("tiny-{w}x{h}"), w, h, &mut |_, _| rng.u8(..));
    }
    images
}

/// `(kernel, ksize, cv2 ksize)`.
const SOBEL: [(Kernel, u8, i32); 5] = [
    (Kernel::Sobel, 1, 1),
    (Kernel::Sobel, 3, 3),
    (Kernel::Sobel, 5, 5),
    (Kernel::Sobel, 7, 7),
    (Kernel::Scharr, 3, -1),
];

fn canny_jobs() -> Vec<(u32, u32, u8, bool)> {
    let mut jobs = Vec::new();
    for l2 in [false, true] {
        for (low, high) in [(20, 60), (50, 150), (100, 200), (0, 30)] {
            jobs.push((low, high, 3, l2));
        }
        for (low, high) in [(160, 480), (400, 1200), (800, 1600)] {
            jobs.push((low, high, 5, l2));
        }
        for (low, high) in [(1000, 3000), (3000, 9000), (8000, 16000)] {
            jobs.push((low, high, 7, l2));
        }
    }
    jobs
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn as_i64(samples: &Samples) -> Vec<i64> {
    match samples {
        Samples::I16(v) => v.iter().map(|&x| x as i64).collect(),
        Samples::I32(v) => v.iter().map(|&x| x as i64).collect(),
        other => panic!("gradients are never {other:?}"),
    }
}

fn npy_data(file: &[u8]) -> &[u8] {
    let header_len = u16::from_le_bytes([file[8], file[9]]) as usize;
    &file[10 + header_len..]
}

#[test]
fn gradients_and_canny_equal_opencv() {
    if !opencv_available() {
        return;
    }
    let mut images = generated();
    match photo_dir() {
        Some(dir) => images.extend(["coffee", "chelsea"].map(|n| photo(&dir, n))),
        None => {
            let message = "SKIPPED (photographs): coffee.png and chelsea.png are in neither tests/data/photos \
                           nor ../shared/testdata/photos";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message} (required under CI=true)");
            eprintln!("{message}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut jobs = String::from("{\"images\": [");
    for (i, image) in images.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{}.u8", image.name)), &image.luma).unwrap();
        let sep = if i > 0 { ", " } else { "" };
        jobs += &format!(
            "{sep}{{\"name\": \"{}\", \"width\": {}, \"height\": {}}}",
            image.name, image.width, image.height
        );
    }
    jobs += "], \"sobel\": [";
    let mut first = true;
    for (_, _, k) in SOBEL {
        for (dx, dy) in [(1, 0), (0, 1)] {
            jobs +=
                &format!("{}{{\"dx\": {dx}, \"dy\": {dy}, \"ksize\": {k}}}", if first { "" } else { ", " });
            first = false;
        }
    }
    jobs += "], \"canny\": [";
    for (i, (low, high, k, l2)) in canny_jobs().into_iter().enumerate() {
        let sep = if i > 0 { ", " } else { "" };
        jobs += &format!("{sep}{{\"low\": {low}, \"high\": {high}, \"ksize\": {k}, \"l2\": {l2}}}");
    }
    jobs += "]}";
    std::fs::write(dir.path().join("jobs.json"), jobs).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/opencv/oracle.py");
    let out = Command::new(python()).arg(&script).arg(dir.path()).output().expect("run the oracle");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "oracle failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let optimized_differs: Vec<&str> = stdout.lines().filter(|l| l.contains("\"differing\"")).collect();
    if optimized_differs.is_empty() {
        eprintln!("OpenCV's optimized path gave the same pixels as its generic path on every job");
    } else {
        eprintln!(
            "OpenCV's optimized path differs from its generic path on {} jobs:",
            optimized_differs.len()
        );
        for line in &optimized_differs {
            eprintln!("  {line}");
        }
    }
    let mut compared = 0;
    for image in &images {
        let (w, h) = (image.width, image.height);
        for (kernel, ksize, k) in SOBEL {
            for (output, dx, dy) in [(Output::Gx, 1, 0), (Output::Gy, 0, 1)] {
                let options = Options { output, kernel, ksize, format: Format::Npy, ..Options::default() };
                let want: Vec<i64> =
                    read(&dir.path().join(format!("{}.sobel-{dx}-{dy}-{k}.f32", image.name)))
                        .chunks_exact(4)
                        .map(|b| {
                            let v = f32::from_le_bytes(b.try_into().unwrap());
                            assert_eq!(v.fract(), 0.0, "OpenCV's gradients are integers");
                            v as i64
                        })
                        .collect();
                let got = as_i64(&compute_image(&options, &image.luma, w, h).unwrap());
                let wrong = got.iter().zip(&want).filter(|(a, b)| a != b).count();
                assert_eq!(
                    wrong, 0,
                    "{} {output} {kernel} ksize {ksize}: {wrong} pixels differ from OpenCV",
                    image.name
                );
                compared += 1;
            }
        }
        for (low, high, ksize, l2) in canny_jobs() {
            let magnitude = if l2 { Magnitude::L2 } else { Magnitude::L1 };
            let options = Options {
                output: Output::Canny,
                ksize,
                magnitude,
                low,
                high,
                format: Format::Npy,
                ..Options::default()
            };
            let want =
                read(&dir.path().join(format!("{}.canny-{low}-{high}-{ksize}-{}.u8", image.name, l2 as u8)));
            let Samples::U8(got) = compute_image(&options, &image.luma, w, h).unwrap() else {
                panic!("edge map")
            };
            let wrong = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            let label = format!("{} canny {low}/{high} ksize {ksize} {magnitude}", image.name);
            assert_eq!(wrong, 0, "{label}: {wrong} pixels differ from OpenCV");
            for count in [3, 8] {
                let (file, _) =
                    run_strips(&options, &image.luma, w, h, count, CompressionLevel::default()).unwrap();
                assert_eq!(npy_data(&file), &want[..], "{label}, {count} strips");
            }
            compared += 1;
        }
    }
    eprintln!("{compared} results of {} images equal OpenCV's generic path", images.len());
}
