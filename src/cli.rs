//! Command-line definitions shared by every subcommand: filter options and decode limits.

use clap::Args;
use dsobel_codec::Limits;
use dsobel_kernel::params::{DEFAULT_CANNY_HIGH, DEFAULT_CANNY_LOW, DEFAULT_KSIZE, ParseOptionError};
use dsobel_kernel::png::CompressionLevel;
use dsobel_kernel::{Format, Kernel, Magnitude, OptionError, Options, Output, Threshold};

/// What to compute for each pixel and the result's format (docs/operators.md), with the PNG
/// deflate level: what `dsobel process` and the benchmarks take.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// The operator.
    #[command(flatten)]
    pub operator: OperatorArgs,
    /// PNG deflate level, 1 (fastest) to 9 (smallest).
    #[arg(long, default_value_t = CompressionLevel::default().0, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub compression: u8,
}

impl FilterArgs {
    /// The options, checked: a bad combination is refused with the option named.
    pub fn options(&self) -> Result<Options, OptionError> {
        self.operator.options()
    }
}

/// What to compute for each pixel, and the result's format (docs/operators.md): the same
/// options under the same names for `dsobel process`, `dsobel submit` and the HTTP API.
#[derive(Debug, Clone, Args)]
pub struct OperatorArgs {
    /// Output: binary (edges white, 1-bit PNG), magnitude (8-bit, capped at 255), magnitude16
    /// (unclipped), gx, gy (signed gradients: tiff or npy), direction (degrees; 8-bit in PNG),
    /// canny.
    #[arg(long, default_value = "binary", value_parser = parse_word::<Output>, value_name = "OUTPUT")]
    pub output: Output,
    /// Derivative kernel: sobel or scharr (3x3).
    #[arg(long, default_value = "sobel", value_parser = parse_word::<Kernel>, value_name = "sobel|scharr")]
    pub kernel: Kernel,
    /// Kernel size: 1, 3, 5 or 7 for Sobel (3, 5 or 7 for canny; 3 for Scharr).
    #[arg(long, default_value_t = DEFAULT_KSIZE, value_name = "K")]
    pub ksize: u8,
    /// Edge threshold T of the binary output (a pixel is an edge when its magnitude is above T),
    /// or `otsu` for Otsu's threshold of the image's magnitudes.
    #[arg(long, default_value = "100", value_parser = parse_word::<Threshold>, value_name = "T|otsu")]
    pub threshold: Threshold,
    /// Gradient magnitude: l2 = sqrt(gx²+gy²), l1 = |gx|+|gy| (canny: OpenCV's L2gradient).
    #[arg(long, default_value = "l2", value_parser = parse_word::<Magnitude>, value_name = "l2|l1")]
    pub magnitude: Magnitude,
    /// Canny's low threshold (cv2.Canny's threshold1).
    #[arg(long, default_value_t = DEFAULT_CANNY_LOW, value_name = "LOW")]
    pub low: u32,
    /// Canny's high threshold (cv2.Canny's threshold2).
    #[arg(long, default_value_t = DEFAULT_CANNY_HIGH, value_name = "HIGH")]
    pub high: u32,
    /// Result format: png, tiff or npy (numpy.load reads it).
    #[arg(long, default_value = "png", value_parser = parse_word::<Format>, value_name = "png|tiff|npy")]
    pub format: Format,
}

impl OperatorArgs {
    /// The options, checked: a bad combination is refused with the option named.
    pub fn options(&self) -> Result<Options, OptionError> {
        let options = Options {
            output: self.output,
            kernel: self.kernel,
            ksize: self.ksize,
            magnitude: self.magnitude,
            threshold: self.threshold,
            low: self.low,
            high: self.high,
            format: self.format,
        };
        options.validate()?;
        Ok(options)
    }

    /// The options as an upload's query string (`output=binary&kernel=sobel&...`), checked
    /// first, so that a bad combination is refused here as the server would refuse it.
    pub fn query(&self) -> Result<String, OptionError> {
        let o = self.options()?;
        Ok(format!(
            "output={}&kernel={}&ksize={}&magnitude={}&threshold={}&low={}&high={}&format={}",
            o.output,
            o.kernel,
            o.ksize,
            o.magnitude,
            o.threshold.as_str(),
            o.low,
            o.high,
            o.format
        ))
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

fn parse_word<T: std::str::FromStr<Err = ParseOptionError>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: ParseOptionError| e.to_string())
}

/// The message of a refused option, as the command line says it (`--ksize`, not `ksize`).
pub fn refusal(e: &OptionError) -> String {
    format!("--{}: {e} ({})", e.option(), e.code())
}
