//! Test images made by the tests themselves, the repository's photos and JPEG fixtures, PNG
//! results decoded to one byte per pixel, and what the scalar reference says they must be.

use std::path::{Path, PathBuf};
use std::process::Command;

use dsobel_kernel::{FilterParams, reference};

/// A photo-like RGB PNG of `w`×`h` (a gradient, a disc, a little noise from `seed`) and its
/// luma by DESIGN §2's formula.
pub fn test_png(w: u32, h: u32, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let inside =
                ((x as i64 - w as i64 / 2).pow(2) + (y as i64 - h as i64 / 3).pow(2)) < (h as i64 / 4).pow(2);
            let base = (x * 200 / w.max(1) + y * 55 / h.max(1)) as u8;
            let v = base.wrapping_add(if inside { 90 } else { 0 }).wrapping_add(rng.u8(..8));
            rgb.extend([v, v / 2 + (y % 64) as u8, 255 - v]);
        }
    }
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.write_header().expect("PNG header").write_image_data(&rgb).expect("PNG data");
    }
    let luma = rgb.chunks(3).map(|p| reference::luma_of_rgb(p[0], p[1], p[2])).collect();
    (bytes, luma)
}

/// A PNG decoded to one byte per pixel (1-bit results expanded to 0/255): width, height,
/// pixels.
pub fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane PNG size")];
    let frame = reader.next_frame(&mut buf).expect("PNG pixels");
    buf.truncate(frame.buffer_size());
    (frame.width, frame.height, buf)
}

/// What the scalar reference makes of a `w`×`h` luma image with `params`.
pub fn expected(luma: &[u8], w: u32, h: u32, params: &FilterParams) -> Vec<u8> {
    reference::filter_image(luma, w as usize, h as usize, params)
}

/// The workspace's root folder.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A JPEG of the codec's libjpeg fixtures (`q50-420-restart.jpg`, ...).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = workspace().join("crates/codec/tests/fixtures/libjpeg").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The path of a photo of `tests/data/photos` (kept in the repository with its source and
/// licence).
pub fn photo(name: &str) -> PathBuf {
    workspace().join("tests/data/photos").join(name)
}

/// A JPEG of `size` (`WIDTHxHEIGHT`) with a restart marker every MCU row, made in `dir` with
/// `dsobel gen-image` and `jpegtran -restart 1` (a test that calls this needs
/// [`crate::Need::JPEGTRAN`]).
pub fn restart_jpeg(dir: &Path, size: &str) -> Vec<u8> {
    let plain = dir.join(format!("{size}.jpg"));
    let restart = dir.join(format!("{size}-restart.jpg"));
    let made = Command::new(crate::dsobel_binary())
        .args(["gen-image", "--size", size, "-o"])
        .arg(&plain)
        .output()
        .expect("run dsobel gen-image");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let marked = Command::new("jpegtran")
        .args(["-restart", "1", "-outfile"])
        .arg(&restart)
        .arg(&plain)
        .status()
        .expect("run jpegtran");
    assert!(marked.success(), "jpegtran failed");
    std::fs::read(restart).expect("read the JPEG")
}
