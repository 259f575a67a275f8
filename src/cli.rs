//! Command-line definitions shared by every subcommand: filter options and decode limits.

use clap::Args;
use dsobel_codec::Limits;
use dsobel_kernel::png::CompressionLevel;
use dsobel_kernel::{FilterParams, Magnitude, OutputMode};

/// What to compute for each pixel (DESIGN §2.4).
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Edge threshold T of the binary output: a pixel is an edge when its magnitude is above T.
    #[arg(long, default_value_t = dsobel_kernel::DEFAULT_THRESHOLD, value_name = "T")]
    pub threshold: u16,
    /// Gradient magnitude: l2 = sqrt(gx²+gy²), l1 = |gx|+|gy|.
    #[arg(long, default_value = "l2", value_parser = parse_magnitude, value_name = "l2|l1")]
    pub magnitude: Magnitude,
    /// Output: binary (1-bit PNG, edges white) or magnitude (8-bit PNG).
    #[arg(long, default_value = "binary", value_parser = parse_output, value_name = "binary|magnitude")]
    pub output: OutputMode,
    /// PNG deflate level, 1 (fastest) to 9 (smallest).
    #[arg(long, default_value_t = CompressionLevel::default().0, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub compression: u8,
}

impl FilterArgs {
    /// The kernel parameters.
    pub fn params(&self) -> FilterParams {
        FilterParams { threshold: self.threshold, magnitude: self.magnitude, output: self.output }
    }
}

/// What inputs are accepted; checked from each image's header before decoding.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest image accepted, in pixels.
    #[arg(long, env = "DSOBEL_MAX_PIXELS", default_value_t = Limits::default().max_pixels)]
    pub max_pixels: u64,
    /// Largest width or height accepted, in pixels.
    #[arg(long, env = "DSOBEL_MAX_DIMENSION", default_value_t = Limits::default().max_dimension)]
    pub max_dimension: u32,
}

fn parse_magnitude(s: &str) -> Result<Magnitude, String> {
    s.parse().map_err(|e: dsobel_kernel::params::ParseOptionError| e.to_string())
}

fn parse_output(s: &str) -> Result<OutputMode, String> {
    s.parse().map_err(|e: dsobel_kernel::params::ParseOptionError| e.to_string())
}
