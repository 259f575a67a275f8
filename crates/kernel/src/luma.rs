//! Conversion of decoded pixels to 8-bit luma (DESIGN §2.2), row slices in, luma out.
//!
//! `Y = (4899·R + 9617·G + 1868·B + 8192) >> 14`; alpha is ignored; 16-bit samples keep their
//! high byte first. The loops are plain and branch-free so the compiler vectorises them; they
//! are checked against [`crate::reference::luma_of_rgb`]. A layout of the wrong depth or a
//! buffer of the wrong size is refused with a [`KernelError`], never a panic.

use crate::filter::KernelError;

/// Interleaved sample layouts that can be turned into luma.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    /// 8-bit gray.
    Gray8,
    /// 8-bit gray + alpha.
    GrayAlpha8,
    /// 8-bit RGB.
    Rgb8,
    /// 8-bit RGBA.
    Rgba8,
    /// 16-bit gray, native-endian `u16` samples.
    Gray16,
    /// 16-bit gray + alpha.
    GrayAlpha16,
    /// 16-bit RGB.
    Rgb16,
    /// 16-bit RGBA.
    Rgba16,
}

impl PixelLayout {
    /// Samples per pixel.
    pub fn channels(self) -> usize {
        match self {
            PixelLayout::Gray8 | PixelLayout::Gray16 => 1,
            PixelLayout::GrayAlpha8 | PixelLayout::GrayAlpha16 => 2,
            PixelLayout::Rgb8 | PixelLayout::Rgb16 => 3,
            PixelLayout::Rgba8 | PixelLayout::Rgba16 => 4,
        }
    }

    /// Whether samples are 16-bit.
    pub fn is_16bit(self) -> bool {
        matches!(
            self,
            PixelLayout::Gray16 | PixelLayout::GrayAlpha16 | PixelLayout::Rgb16 | PixelLayout::Rgba16
        )
    }
}

#[inline(always)]
fn weigh(r: u8, g: u8, b: u8) -> u8 {
    ((4899 * r as u32 + 9617 * g as u32 + 1868 * b as u32 + 8192) >> 14) as u8
}

/// Checks that `layout` has the expected depth and `samples` fills `out` exactly.
fn check(layout: PixelLayout, sixteen_bit: bool, samples: usize, out: usize) -> Result<(), KernelError> {
    if layout.is_16bit() != sixteen_bit {
        return Err(KernelError::Layout { layout, expected: if sixteen_bit { "16-bit" } else { "8-bit" } });
    }
    let expected = out * layout.channels();
    if samples != expected {
        return Err(KernelError::BufferSize { what: "interleaved samples", expected, actual: samples });
    }
    Ok(())
}

/// Converts 8-bit interleaved samples to luma. `samples.len()` must be `out.len() × channels`
/// and the layout 8-bit; anything else is refused, never a panic.
pub fn luma_from_u8(layout: PixelLayout, samples: &[u8], out: &mut [u8]) -> Result<(), KernelError> {
    check(layout, false, samples.len(), out.len())?;
    match layout {
        PixelLayout::Gray8 => out.copy_from_slice(samples),
        PixelLayout::GrayAlpha8 => out.iter_mut().zip(samples.chunks_exact(2)).for_each(|(o, p)| *o = p[0]),
        PixelLayout::Rgb8 => {
            out.iter_mut().zip(samples.chunks_exact(3)).for_each(|(o, p)| *o = weigh(p[0], p[1], p[2]))
        }
        PixelLayout::Rgba8 => {
            out.iter_mut().zip(samples.chunks_exact(4)).for_each(|(o, p)| *o = weigh(p[0], p[1], p[2]))
        }
        // 16-bit layouts were refused by `check`.
        _ => {}
    }
    Ok(())
}

/// Converts 16-bit interleaved samples to luma through their high bytes (same refusals as
/// [`luma_from_u8`]).
pub fn luma_from_u16(layout: PixelLayout, samples: &[u16], out: &mut [u8]) -> Result<(), KernelError> {
    check(layout, true, samples.len(), out.len())?;
    let ch = layout.channels();
    let hi = |v: u16| (v >> 8) as u8;
    match layout {
        PixelLayout::Gray16 | PixelLayout::GrayAlpha16 => {
            out.iter_mut().zip(samples.chunks_exact(ch)).for_each(|(o, p)| *o = hi(p[0]))
        }
        PixelLayout::Rgb16 | PixelLayout::Rgba16 => out
            .iter_mut()
            .zip(samples.chunks_exact(ch))
            .for_each(|(o, p)| *o = weigh(hi(p[0]), hi(p[1]), hi(p[2]))),
        // 8-bit layouts were refused by `check`.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::luma_of_rgb;

    #[test]
    fn every_layout_matches_the_reference() {
        let mut rng = fastrand::Rng::with_seed(3);
        let n = 37;
        let rgba: Vec<u8> = (0..n * 4).map(|_| rng.u8(..)).collect();
        let want: Vec<u8> = rgba.chunks(4).map(|p| luma_of_rgb(p[0], p[1], p[2])).collect();
        let rgb: Vec<u8> = rgba.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        let mut out = vec![0u8; n];
        luma_from_u8(PixelLayout::Rgba8, &rgba, &mut out).unwrap();
        assert_eq!(out, want);
        luma_from_u8(PixelLayout::Rgb8, &rgb, &mut out).unwrap();
        assert_eq!(out, want);
        let rgba16: Vec<u16> = rgba.iter().map(|&v| (v as u16) << 8 | rng.u16(..) & 0xff).collect();
        luma_from_u16(PixelLayout::Rgba16, &rgba16, &mut out).unwrap();
        assert_eq!(out, want);
        let ga: Vec<u8> = rgba.chunks(4).flat_map(|p| [p[0], p[3]]).collect();
        luma_from_u8(PixelLayout::GrayAlpha8, &ga, &mut out).unwrap();
        assert_eq!(out, rgba.chunks(4).map(|p| p[0]).collect::<Vec<_>>());
    }

    #[test]
    fn wrong_depths_and_sizes_are_refused() {
        let mut out = vec![0u8; 4];
        assert!(matches!(
            luma_from_u8(PixelLayout::Rgb16, &[0; 12], &mut out),
            Err(KernelError::Layout { expected: "8-bit", .. })
        ));
        assert!(matches!(
            luma_from_u16(PixelLayout::Gray8, &[0; 4], &mut out),
            Err(KernelError::Layout { .. })
        ));
        assert!(matches!(
            luma_from_u8(PixelLayout::Rgb8, &[0; 11], &mut out),
            Err(KernelError::BufferSize { expected: 12, actual: 11, .. })
        ));
    }
}
