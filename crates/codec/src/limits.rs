//! Limits checked from an image's header before any pixel buffer is allocated.

use crate::error::DecodeError;

/// Upper bounds on what a decode may cost. Checked against the header, so a tiny file that
/// declares a gigantic image is refused before memory is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most pixels (width × height) allowed.
    pub max_pixels: u64,
    /// Largest width or height allowed.
    pub max_dimension: u32,
    /// Most input bytes allowed.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_pixels: 100_000_000, max_dimension: 65_535, max_bytes: 256 << 20 }
    }
}

impl Limits {
    /// Refuses an input larger than `max_bytes`.
    pub fn check_bytes(&self, size: usize) -> Result<(), DecodeError> {
        if size as u64 > self.max_bytes {
            return Err(DecodeError::TooManyBytes { size: size as u64, limit: self.max_bytes });
        }
        Ok(())
    }

    /// Refuses declared dimensions over the limits, and zero dimensions as corrupt.
    pub fn check_dimensions(&self, format: &'static str, width: u64, height: u64) -> Result<(), DecodeError> {
        if width == 0 || height == 0 {
            return Err(DecodeError::Corrupt { format, detail: format!("declares {width}x{height} pixels") });
        }
        if width > self.max_dimension as u64 || height > self.max_dimension as u64 {
            return Err(DecodeError::TooManyPixels {
                width,
                height,
                limit: format!("{} pixels per side", self.max_dimension),
            });
        }
        if width.saturating_mul(height) > self.max_pixels {
            return Err(DecodeError::TooManyPixels {
                width,
                height,
                limit: format!("{} pixels", self.max_pixels),
            });
        }
        Ok(())
    }
}
