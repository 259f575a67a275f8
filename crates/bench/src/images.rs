//! The images a benchmark sends: files given by the user, or photographs made up on the spot.
//!
//! A benchmark of an image service is only honest with images that cost what real ones cost:
//! random bytes are not a JPEG, and a flat colour compresses to nothing and decodes in no time.
//! So the generated pictures look like photographs to the codec: a sky and ground gradient, a
//! wavy horizon, shaded shapes, a texture of smooth noise at several scales, and a fine grain.
//! They are deterministic (the same size always gives the same bytes), so two runs of the
//! benchmark send the same data, and their JPEG quality and grain are chosen so that the seed's
//! two sizes land near 1 MB (1920×1280) and 10 MB (6000×4000).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;

/// JPEG quality of the generated images.
pub const JPEG_QUALITY: u8 = 90;

/// A generated image's size: one of the seed's two named sizes, or any width × height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageSize {
    /// About 1 MB of JPEG: 1920×1280.
    OneMb,
    /// About 10 MB of JPEG: 6000×4000.
    TenMb,
    /// Any width × height (`640x480`).
    Pixels(u32, u32),
}

impl ImageSize {
    /// Width and height in pixels.
    pub fn dimensions(self) -> (u32, u32) {
        match self {
            ImageSize::OneMb => (1920, 1280),
            ImageSize::TenMb => (6000, 4000),
            ImageSize::Pixels(w, h) => (w, h),
        }
    }
}

impl fmt::Display for ImageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSize::OneMb => f.write_str("1mb"),
            ImageSize::TenMb => f.write_str("10mb"),
            ImageSize::Pixels(w, h) => write!(f, "{w}x{h}"),
        }
    }
}

impl FromStr for ImageSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "1mb" => return Ok(ImageSize::OneMb),
            "10mb" => return Ok(ImageSize::TenMb),
            _ => {}
        }
        let parsed = lower.split_once('x').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
        match parsed {
            Some((w, h)) if w > 0 && h > 0 && u64::from(w) * u64::from(h) <= 200_000_000 => {
                Ok(ImageSize::Pixels(w, h))
            }
            _ => Err(format!("{s:?} is not an image size: use 1mb, 10mb or WIDTHxHEIGHT (e.g. 640x480)")),
        }
    }
}

/// One image of a benchmark, encoded and ready to send.
#[derive(Debug, Clone)]
pub struct BenchImage {
    /// Its name in tables and CSV rows: the size (`1mb`, `640x480`) or the file name.
    pub label: String,
    /// The encoded bytes sent as the upload body.
    pub bytes: Bytes,
    /// Width and height when known before sending (generated images).
    pub dimensions: Option<(u32, u32)>,
}

impl BenchImage {
    /// A generated image of `size`.
    pub fn generated(size: ImageSize) -> Result<BenchImage> {
        let (w, h) = size.dimensions();
        let bytes = generate_jpeg(w, h)?;
        Ok(BenchImage { label: size.to_string(), bytes: Bytes::from(bytes), dimensions: Some((w, h)) })
    }

    /// An image read from a file.
    pub fn from_file(path: &std::path::Path) -> Result<BenchImage> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if bytes.is_empty() {
            bail!("{} is empty", path.display());
        }
        let label = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(BenchImage { label, bytes: Bytes::from(bytes), dimensions: None })
    }

    /// Size in kilobytes (1024 bytes), as the seed's CSV counts it.
    pub fn kilobytes(&self) -> f64 {
        self.bytes.len() as f64 / 1024.0
    }
}

/// The files and generated sizes asked for; the seed's 1 MB size when nothing is.
pub fn load_images(files: &[PathBuf], sizes: &[ImageSize]) -> Result<Vec<BenchImage>> {
    let mut images = Vec::new();
    for file in files {
        images.push(BenchImage::from_file(file)?);
    }
    let default = [ImageSize::OneMb];
    let sizes = if sizes.is_empty() && files.is_empty() { &default[..] } else { sizes };
    for &size in sizes {
        images.push(BenchImage::generated(size)?);
    }
    Ok(images)
}

/// Arguments of `dsobel gen-image`.
#[derive(Debug, Clone, Args)]
pub struct GenImageArgs {
    /// Size: 1mb (1920×1280), 10mb (6000×4000) or WIDTHxHEIGHT.
    #[arg(long, default_value = "1mb")]
    pub size: ImageSize,
    /// Where to write the JPEG.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// `dsobel gen-image`: writes one generated photograph-like JPEG; returns the exit code.
pub fn gen_image(args: GenImageArgs) -> Result<i32> {
    let (w, h) = args.size.dimensions();
    let bytes = generate_jpeg(w, h)?;
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!("{}: {w}x{h} JPEG, {} bytes", args.output.display(), bytes.len());
    Ok(0)
}

/// A deterministic photograph-like JPEG of `width` × `height` pixels.
pub fn generate_jpeg(width: u32, height: u32) -> Result<Vec<u8>> {
    let rgb = generate_rgb(width, height);
    let mut out = Vec::with_capacity(rgb.len() / 6);
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
    image::ImageEncoder::write_image(encoder, &rgb, width, height, image::ExtendedColorType::Rgb8)
        .context("JPEG encoding of the generated image")?;
    Ok(out)
}

/// SplitMix64: a tiny deterministic generator for the scene's layout.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// A hash of a lattice point, uniform in `[0, 1)`.
fn lattice(x: i32, y: i32, salt: u32) -> f32 {
    let mut h = (x as u32).wrapping_mul(0x8DA6_B343) ^ (y as u32).wrapping_mul(0xD816_3841) ^ salt;
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A_2D39);
    h ^= h >> 15;
    (h >> 8) as f32 / (1u32 << 24) as f32
}

/// Smooth value noise in `[0, 1)` at a point given in lattice units.
fn value_noise(x: f32, y: f32, salt: u32) -> f32 {
    let (xf, yf) = (x.floor(), y.floor());
    let (xi, yi) = (xf as i32, yf as i32);
    let (tx, ty) = (x - xf, y - yf);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let a = lattice(xi, yi, salt);
    let b = lattice(xi + 1, yi, salt);
    let c = lattice(xi, yi + 1, salt);
    let d = lattice(xi + 1, yi + 1, salt);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// One shaded shape of the scene, in coordinates relative to the image (0..1 across).
struct Shape {
    cx: f32,
    cy: f32,
    rx: f32,
    ry: f32,
    /// Ellipse (false) or rectangle (true).
    boxy: bool,
    color: [f32; 3],
}

/// The scene: the same for every size, so sizes differ only in resolution.
fn scene() -> Vec<Shape> {
    let mut rng = SplitMix(0x5EED_D50B_E100);
    (0..14)
        .map(|_| Shape {
            cx: rng.range(0.05, 0.95),
            cy: rng.range(0.15, 0.95),
            rx: rng.range(0.03, 0.16),
            ry: rng.range(0.03, 0.16),
            boxy: rng.next().is_multiple_of(3),
            color: [rng.range(20.0, 235.0), rng.range(20.0, 235.0), rng.range(20.0, 235.0)],
        })
        .collect()
}

/// The RGB pixels of the generated photograph, rows computed on all cores.
pub fn generate_rgb(width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut rgb = vec![0u8; w * h * 3];
    if rgb.is_empty() {
        return rgb;
    }
    let shapes = scene();
    let threads = dsobel_service::config::cores().min(h);
    let rows_per = h.div_ceil(threads);
    std::thread::scope(|scope| {
        for (chunk_index, chunk) in rgb.chunks_mut(rows_per * w * 3).enumerate() {
            let shapes = &shapes;
            scope.spawn(move || {
                for (i, row) in chunk.chunks_mut(w * 3).enumerate() {
                    paint_row(row, chunk_index * rows_per + i, w, h, shapes);
                }
            });
        }
    });
    rgb
}

fn paint_row(row: &mut [u8], y: usize, w: usize, h: usize, shapes: &[Shape]) {
    let scale = w.max(h) as f32;
    let v = y as f32 / h as f32;
    for x in 0..w {
        let u = x as f32 / w as f32;
        // Position in units of the longer side, so the texture keeps its look at any aspect.
        let (px, py) = (x as f32 / scale, y as f32 / scale);
        let horizon = 0.55 + 0.05 * (u * 9.0).sin() + 0.03 * value_noise(u * 6.0, 0.5, 7);
        let mut c = if v < horizon {
            let t = v / horizon;
            [90.0 + 110.0 * t, 140.0 + 80.0 * t, 220.0 - 30.0 * t]
        } else {
            let t = (v - horizon) / (1.0 - horizon);
            [110.0 - 50.0 * t, 120.0 - 40.0 * t, 60.0 - 20.0 * t]
        };
        for s in shapes {
            let dx = (u - s.cx) / s.rx;
            let dy = (v - s.cy) / s.ry;
            let inside = if s.boxy { dx.abs() < 1.0 && dy.abs() < 1.0 } else { dx * dx + dy * dy < 1.0 };
            if inside {
                // Lit from the upper left.
                let shade = 0.75 + 0.25 * (-(dx + dy) * 0.5).clamp(-1.0, 1.0);
                c = [s.color[0] * shade, s.color[1] * shade, s.color[2] * shade];
            }
        }
        // Texture: smooth noise at coarse and medium scales (relative to the picture) and at a
        // fine scale of a few pixels (so every size has the same detail per pixel).
        let texture = 36.0 * (value_noise(px * 8.0, py * 8.0, 1) - 0.5)
            + 20.0 * (value_noise(px * 40.0, py * 40.0, 2) - 0.5)
            + 14.0 * (value_noise(x as f32 / 5.0, y as f32 / 5.0, 3) - 0.5);
        // Grain: per-pixel sensor noise, a little different in each channel.
        let grain = |salt: u32| 24.0 * (lattice(x as i32, y as i32, salt) - 0.5);
        let out = &mut row[x * 3..x * 3 + 3];
        for (k, o) in out.iter_mut().enumerate() {
            *o = (c[k] + texture + grain(11 + k as u32)).clamp(0.0, 255.0) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!("1MB".parse::<ImageSize>().unwrap(), ImageSize::OneMb);
        assert_eq!("10mb".parse::<ImageSize>().unwrap(), ImageSize::TenMb);
        assert_eq!("640x480".parse::<ImageSize>().unwrap(), ImageSize::Pixels(640, 480));
        assert!("0x3".parse::<ImageSize>().is_err());
        assert!("big".parse::<ImageSize>().is_err());
        assert_eq!(ImageSize::Pixels(3, 2).to_string(), "3x2");
    }

    #[test]
    fn generation_is_deterministic_and_valid_jpeg() {
        let a = generate_jpeg(97, 61).unwrap();
        let b = generate_jpeg(97, 61).unwrap();
        assert_eq!(a, b);
        assert_eq!(&a[..2], &[0xFF, 0xD8]);
        let decoded = image::load_from_memory_with_format(&a, image::ImageFormat::Jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (97, 61));
    }
}
