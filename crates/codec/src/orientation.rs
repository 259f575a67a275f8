//! EXIF orientation applied to a luma plane, so every output is upright as viewers show it.

pub use image::metadata::Orientation;

/// A luma image: `width × height` bytes, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LumaImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The pixels.
    pub pixels: Vec<u8>,
}

/// Orientation from the raw EXIF bytes (TIFF header onwards, or with an `Exif\0\0` prefix).
pub fn orientation_from_exif(exif: &[u8]) -> Orientation {
    let body = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    Orientation::from_exif_chunk(body).unwrap_or(Orientation::NoTransforms)
}

/// Applies an orientation, returning the upright image.
pub fn apply(image: LumaImage, orientation: Orientation) -> LumaImage {
    let LumaImage { width: w, height: h, pixels: src } = image;
    let at = |x: usize, y: usize| src[y * w + x];
    // For rotations the output is h wide and w tall; `pick(x, y)` gives the source pixel of
    // output pixel (x, y).
    let (ow, oh, pixels) = match orientation {
        Orientation::NoTransforms => return LumaImage { width: w, height: h, pixels: src },
        Orientation::FlipHorizontal => {
            let mut p = src.clone();
            p.chunks_exact_mut(w).for_each(|row| row.reverse());
            (w, h, p)
        }
        Orientation::FlipVertical => (w, h, src.chunks_exact(w).rev().flatten().copied().collect()),
        Orientation::Rotate180 => {
            let mut p = src.clone();
            p.reverse();
            (w, h, p)
        }
        Orientation::Rotate90 => (h, w, gather(h, w, |x, y| at(y, h - 1 - x))),
        Orientation::Rotate270 => (h, w, gather(h, w, |x, y| at(w - 1 - y, x))),
        Orientation::Rotate90FlipH => (h, w, gather(h, w, |x, y| at(y, x))),
        Orientation::Rotate270FlipH => (h, w, gather(h, w, |x, y| at(w - 1 - y, h - 1 - x))),
    };
    LumaImage { width: ow, height: oh, pixels }
}

fn gather(width: usize, height: usize, pick: impl Fn(usize, usize) -> u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            out.push(pick(x, y));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_image_crate_for_all_eight() {
        let (w, h) = (5usize, 3usize);
        let pixels: Vec<u8> = (0..(w * h) as u8).collect();
        for code in 1..=8u8 {
            let o = Orientation::from_exif(code).unwrap();
            let mut theirs = image::DynamicImage::ImageLuma8(
                image::GrayImage::from_raw(w as u32, h as u32, pixels.clone()).unwrap(),
            );
            theirs.apply_orientation(o);
            let ours = apply(LumaImage { width: w, height: h, pixels: pixels.clone() }, o);
            assert_eq!((ours.width as u32, ours.height as u32), (theirs.width(), theirs.height()), "{o:?}");
            assert_eq!(ours.pixels, theirs.to_luma8().into_raw(), "{o:?}");
        }
    }
}
