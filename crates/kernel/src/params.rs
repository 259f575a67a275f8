//! The options that decide what a pixel of output is, and the one place they are checked.
//!
//! [`Options`] holds every knob of the operators (`docs/operators.md`): the output
//! ([`Output`]: `binary`, `magnitude`, `magnitude16`, `gx`, `gy`, `direction`, `canny`), the
//! derivative kernel ([`Kernel`] and `ksize`), the magnitude ([`Magnitude`]), the binary
//! threshold ([`Threshold`], a number or `otsu`), Canny's `low` and `high`, and the file
//! [`Format`]. Every door (the CLI, the HTTP API, a worker receiving a task) parses the same
//! words with `FromStr` and calls the same [`Options::validate`], which refuses a bad
//! combination with an [`OptionError`] naming the option at fault and, for a format that
//! cannot hold an output, the formats that can.
//!
//! [`FilterParams`] and [`OutputMode`] are the subset that the single-pass 3×3 outputs
//! (`binary` and `magnitude`) need; they keep their words and their meaning, and convert into
//! [`Options`].

use std::fmt;
use std::str::FromStr;

/// The default threshold `T` of the `binary` output.
pub const DEFAULT_THRESHOLD: u16 = 100;

/// How the gradient magnitude is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Magnitude {
    /// Euclidean: `sqrt(gx² + gy²)`; the binary test is `gx² + gy² > T²`.
    #[default]
    L2,
    /// Manhattan: `|gx| + |gy|`.
    L1,
}

/// What each output pixel holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutputMode {
    /// 255 where the magnitude is above the threshold, else 0; encoded as a 1-bit PNG.
    #[default]
    Binary,
    /// The magnitude itself, saturated at 255; encoded as an 8-bit PNG.
    Magnitude,
}

/// Everything that decides the output bytes for a given luma image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FilterParams {
    /// Threshold `T` of the binary output (ignored by `magnitude`).
    pub threshold: u16,
    /// L2 or L1 magnitude.
    pub magnitude: Magnitude,
    /// Binary or magnitude output.
    pub output: OutputMode,
}

impl Default for FilterParams {
    fn default() -> Self {
        Self { threshold: DEFAULT_THRESHOLD, magnitude: Magnitude::L2, output: OutputMode::Binary }
    }
}

/// A word that names no known option value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}: expected one of {expected}")]
pub struct ParseOptionError {
    /// Which option was being parsed.
    pub what: &'static str,
    /// The word that was given.
    pub given: String,
    /// The accepted words, for the message.
    pub expected: &'static str,
}

impl FromStr for Magnitude {
    type Err = ParseOptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "l2" => Ok(Self::L2),
            "l1" => Ok(Self::L1),
            _ => Err(ParseOptionError { what: "magnitude", given: s.to_owned(), expected: "l2, l1" }),
        }
    }
}

impl FromStr for OutputMode {
    type Err = ParseOptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "binary" => Ok(Self::Binary),
            "magnitude" => Ok(Self::Magnitude),
            _ => Err(ParseOptionError { what: "output", given: s.to_owned(), expected: "binary, magnitude" }),
        }
    }
}

impl Magnitude {
    /// The word used on the command line and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::L2 => "l2",
            Self::L1 => "l1",
        }
    }
}

impl OutputMode {
    /// The word used on the command line and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::Magnitude => "magnitude",
        }
    }
}

impl fmt::Display for Magnitude {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for OutputMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The default `ksize`.
pub const DEFAULT_KSIZE: u8 = 3;

/// The default `low` threshold of the `canny` output.
pub const DEFAULT_CANNY_LOW: u32 = 100;

/// The default `high` threshold of the `canny` output.
pub const DEFAULT_CANNY_HIGH: u32 = 200;

/// Every output the operators can give (`docs/operators.md` defines each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Output {
    /// 255 where the magnitude is above the threshold, else 0.
    #[default]
    Binary,
    /// The magnitude saturated at 255.
    Magnitude,
    /// The magnitude unclipped: 16-bit where its range fits, else 32-bit.
    Magnitude16,
    /// The signed horizontal derivative, as `cv2.Sobel(..., dx=1, dy=0)` gives it.
    Gx,
    /// The signed vertical derivative, as `cv2.Sobel(..., dx=0, dy=1)` gives it.
    Gy,
    /// The gradient's direction, `atan2(gy, gx)` in degrees in `[0, 360)`.
    Direction,
    /// Canny's edges, as `cv2.Canny` gives them.
    Canny,
}

impl Output {
    /// Every output, in the order of the documentation.
    pub const ALL: [Output; 7] = [
        Output::Binary,
        Output::Magnitude,
        Output::Magnitude16,
        Output::Gx,
        Output::Gy,
        Output::Direction,
        Output::Canny,
    ];

    /// The word used on the command line and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Output::Binary => "binary",
            Output::Magnitude => "magnitude",
            Output::Magnitude16 => "magnitude16",
            Output::Gx => "gx",
            Output::Gy => "gy",
            Output::Direction => "direction",
            Output::Canny => "canny",
        }
    }
}

impl From<OutputMode> for Output {
    fn from(mode: OutputMode) -> Output {
        match mode {
            OutputMode::Binary => Output::Binary,
            OutputMode::Magnitude => Output::Magnitude,
        }
    }
}

/// The derivative kernel's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kernel {
    /// Sobel's kernels, `ksize` 1, 3, 5 or 7 (OpenCV's `getDerivKernels`).
    #[default]
    Sobel,
    /// Scharr's 3×3 kernel: smoothing `[3 10 3]`, derivative `[-1 0 1]`.
    Scharr,
}

impl Kernel {
    /// The word used on the command line and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Kernel::Sobel => "sobel",
            Kernel::Scharr => "scharr",
        }
    }
}

/// The threshold of the `binary` output: a number, or Otsu's, computed from the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Threshold {
    /// A pixel is an edge when its magnitude is above this value.
    Value(u32),
    /// Otsu's threshold on the histogram of the integer magnitude (`docs/operators.md`).
    Otsu,
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold::Value(DEFAULT_THRESHOLD as u32)
    }
}

/// The file format of the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// PNG: 1-bit gray for edge maps, 8-bit or 16-bit gray for unsigned values.
    #[default]
    Png,
    /// Baseline TIFF, uncompressed, little-endian: any output.
    Tiff,
    /// The NumPy array format (`numpy.load`): any output.
    Npy,
}

impl Format {
    /// The word used on the command line and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Tiff => "tiff",
            Format::Npy => "npy",
        }
    }

    /// The file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Tiff => "tif",
            Format::Npy => "npy",
        }
    }

    /// The media type of the file.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Tiff => "image/tiff",
            Format::Npy => "application/octet-stream",
        }
    }
}

/// How one output pixel is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sample {
    /// One bit: 1 for an edge (255 in memory).
    Bit,
    /// Unsigned 8-bit.
    U8,
    /// Unsigned 16-bit.
    U16,
    /// Unsigned 32-bit.
    U32,
    /// Signed 16-bit.
    I16,
    /// Signed 32-bit.
    I32,
    /// IEEE 754 single precision.
    F32,
}

impl Sample {
    /// Bytes per pixel in memory and in NPY (a bit is held as a byte of 0 or 255 there).
    pub fn bytes(self) -> usize {
        match self {
            Sample::Bit | Sample::U8 => 1,
            Sample::U16 | Sample::I16 => 2,
            Sample::U32 | Sample::I32 | Sample::F32 => 4,
        }
    }
}

/// Every option of one image, as every door receives them. Small and `Copy`: it travels with
/// each task. Check it with [`Options::validate`] before use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Options {
    /// What each output pixel holds.
    pub output: Output,
    /// The derivative kernel's family.
    pub kernel: Kernel,
    /// The kernel's size: 1, 3, 5 or 7 for Sobel (3 for Canny at least), 3 for Scharr.
    pub ksize: u8,
    /// L2 or L1 magnitude (`binary`, `magnitude`, `magnitude16`, `canny`).
    pub magnitude: Magnitude,
    /// The `binary` output's threshold.
    pub threshold: Threshold,
    /// Canny's low threshold, in magnitude units (as `cv2.Canny`'s `threshold1`).
    pub low: u32,
    /// Canny's high threshold (as `cv2.Canny`'s `threshold2`).
    pub high: u32,
    /// The file format of the result.
    pub format: Format,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            output: Output::Binary,
            kernel: Kernel::Sobel,
            ksize: DEFAULT_KSIZE,
            magnitude: Magnitude::L2,
            threshold: Threshold::default(),
            low: DEFAULT_CANNY_LOW,
            high: DEFAULT_CANNY_HIGH,
            format: Format::Png,
        }
    }
}

impl From<FilterParams> for Options {
    fn from(p: FilterParams) -> Options {
        Options {
            output: p.output.into(),
            magnitude: p.magnitude,
            threshold: Threshold::Value(p.threshold as u32),
            ..Options::default()
        }
    }
}

/// An option, or a combination of options, that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// A value out of range or a contradiction between options (`invalid-option`).
    #[error("{option}: {message}")]
    Invalid {
        /// The option at fault (`ksize`, `low`, `threshold`...).
        option: &'static str,
        /// What is wrong and what would do.
        message: String,
    },
    /// The format cannot hold the output (`unsupported-output-format`).
    #[error("format={format} cannot hold output={output}: {why}; use {works}")]
    FormatCannotHold {
        /// The output asked for.
        output: &'static str,
        /// The format asked for.
        format: &'static str,
        /// Why not.
        why: &'static str,
        /// The formats that can.
        works: &'static str,
    },
}

impl OptionError {
    /// The stable kebab-case code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            OptionError::Invalid { .. } => "invalid-option",
            OptionError::FormatCannotHold { .. } => "unsupported-output-format",
        }
    }

    /// The option at fault.
    pub fn option(&self) -> &'static str {
        match self {
            OptionError::Invalid { option, .. } => option,
            OptionError::FormatCannotHold { .. } => "format",
        }
    }
}

fn invalid(option: &'static str, message: String) -> OptionError {
    OptionError::Invalid { option, message }
}

impl Options {
    /// Checks every option and every combination; the one check every door calls.
    pub fn validate(&self) -> Result<(), OptionError> {
        if ![1, 3, 5, 7].contains(&self.ksize) {
            return Err(invalid("ksize", format!("ksize must be 1, 3, 5 or 7, not {}", self.ksize)));
        }
        if self.kernel == Kernel::Scharr && self.ksize != 3 {
            return Err(invalid(
                "ksize",
                format!("kernel=scharr is 3x3 only: ksize must be 3 (or left out), not {}", self.ksize),
            ));
        }
        match self.output {
            Output::Canny => {
                if self.kernel != Kernel::Sobel {
                    return Err(invalid(
                        "kernel",
                        "output=canny uses Sobel's kernels (as cv2.Canny does): kernel must be sobel".into(),
                    ));
                }
                if self.ksize < 3 {
                    return Err(invalid(
                        "ksize",
                        format!(
                            "output=canny takes ksize 3, 5 or 7 (cv2.Canny's apertureSize), not {}",
                            self.ksize
                        ),
                    ));
                }
                if self.low > self.high {
                    return Err(invalid(
                        "low",
                        format!("low ({}) must not be above high ({})", self.low, self.high),
                    ));
                }
                let limit = self.magnitude_limit();
                if u64::from(self.high) >= limit {
                    return Err(invalid(
                        "high",
                        format!(
                            "high={} is above what the {} magnitude of {} can reach (it stays below {limit}): \
                             no pixel could be an edge",
                            self.high,
                            self.magnitude,
                            self.kernel_name()
                        ),
                    ));
                }
            }
            Output::Binary => {
                if let Threshold::Value(t) = self.threshold {
                    let limit = self.magnitude_limit();
                    if u64::from(t) >= limit {
                        return Err(invalid(
                            "threshold",
                            format!(
                                "threshold={t} is above what the {} magnitude of {} can reach (it stays \
                                 below {limit}): no pixel could be an edge",
                                self.magnitude,
                                self.kernel_name()
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
        if self.threshold == Threshold::Otsu && self.output != Output::Binary {
            return Err(invalid(
                "threshold",
                format!("threshold=otsu applies to output=binary only, not output={}", self.output),
            ));
        }
        self.sample().map(|_| ())
    }

    /// `sobel ksize=K` or `scharr`, for messages.
    fn kernel_name(&self) -> String {
        match self.kernel {
            Kernel::Sobel => format!("sobel ksize={}", self.ksize),
            Kernel::Scharr => "scharr".into(),
        }
    }

    /// The largest `|gx|` (or `|gy|`) the kernel can give: 255 times the sum of the positive
    /// weights of its 2-D kernel.
    pub fn component_limit(&self) -> u32 {
        match (self.kernel, self.ksize) {
            (Kernel::Scharr, _) => 255 * 16,
            (Kernel::Sobel, 1) => 255,
            (Kernel::Sobel, 3) => 255 * 4,
            (Kernel::Sobel, 5) => 255 * 3 * 16,
            // ksize 7 (and anything `validate` refuses).
            _ => 255 * 10 * 64,
        }
    }

    /// The least threshold that no magnitude can exceed: `2·M` for L1 and `⌈√2·M⌉` for L2,
    /// where `M` is [`Self::component_limit`]. A binary threshold or a Canny `high` at or
    /// above it is refused.
    pub fn magnitude_limit(&self) -> u64 {
        let m = u64::from(self.component_limit());
        match self.magnitude {
            Magnitude::L1 => 2 * m,
            Magnitude::L2 => {
                let square = 2 * m * m;
                let mut r = (square as f64).sqrt() as u64;
                while r * r < square {
                    r += 1;
                }
                while r > 0 && (r - 1) * (r - 1) >= square {
                    r -= 1;
                }
                r
            }
        }
    }

    /// The largest value the unclipped magnitude (`magnitude16`) can take.
    pub fn magnitude16_max(&self) -> u64 {
        let m = u64::from(self.component_limit());
        match self.magnitude {
            Magnitude::L1 => 2 * m,
            Magnitude::L2 => crate::reference::rounded_sqrt_u64(2 * m * m),
        }
    }

    /// Rows of input above and below a strip's own rows that its output needs: the kernel's
    /// radius (1 for `ksize` 1 and 3, 2 for 5, 3 for 7), plus one for Canny, whose
    /// suppression compares each magnitude with the rows beside it.
    pub fn halo(&self) -> usize {
        let radius = usize::from(self.ksize.max(3) / 2);
        if self.output == Output::Canny { radius + 1 } else { radius }
    }

    /// How a pixel of this output is stored in this format; an error when the format cannot
    /// hold the output, naming the formats that can.
    pub fn sample(&self) -> Result<Sample, OptionError> {
        let wide = self.magnitude16_max() > u64::from(u16::MAX);
        let signed_wide = self.component_limit() > i16::MAX as u32;
        let refuse = |why, works| {
            Err(OptionError::FormatCannotHold {
                output: self.output.as_str(),
                format: self.format.as_str(),
                why,
                works,
            })
        };
        Ok(match (self.output, self.format) {
            (Output::Binary | Output::Canny, _) => Sample::Bit,
            (Output::Magnitude, _) => Sample::U8,
            (Output::Magnitude16, Format::Png) if wide => {
                return refuse(
                    "its values reach past 65535 (16-bit PNG's range) with ksize 7",
                    "tiff or npy",
                );
            }
            (Output::Magnitude16, _) if wide => Sample::U32,
            (Output::Magnitude16, _) => Sample::U16,
            (Output::Gx | Output::Gy, Format::Png) => {
                return refuse("its values are signed, and PNG holds unsigned samples only", "tiff or npy");
            }
            (Output::Gx | Output::Gy, _) if signed_wide => Sample::I32,
            (Output::Gx | Output::Gy, _) => Sample::I16,
            (Output::Direction, Format::Png) => Sample::U8,
            (Output::Direction, _) => Sample::F32,
        })
    }

    /// The same options as the [`FilterParams`] of the single-pass 3×3 path, when they are
    /// among them (Sobel 3×3, `binary` with a number or `magnitude`).
    pub fn filter_params(&self) -> Option<FilterParams> {
        let output = match self.output {
            Output::Binary => OutputMode::Binary,
            Output::Magnitude => OutputMode::Magnitude,
            _ => return None,
        };
        if self.kernel != Kernel::Sobel || self.ksize != 3 {
            return None;
        }
        let threshold = match self.threshold {
            Threshold::Value(t) => u16::try_from(t).ok()?,
            Threshold::Otsu if output == OutputMode::Magnitude => DEFAULT_THRESHOLD,
            Threshold::Otsu => return None,
        };
        Some(FilterParams { threshold, magnitude: self.magnitude, output })
    }
}

impl FromStr for Output {
    type Err = ParseOptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = s.trim().to_ascii_lowercase();
        Output::ALL.into_iter().find(|o| o.as_str() == word).ok_or_else(|| ParseOptionError {
            what: "output",
            given: s.to_owned(),
            expected: "binary, magnitude, magnitude16, gx, gy, direction, canny",
        })
    }
}

impl FromStr for Kernel {
    type Err = ParseOptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sobel" => Ok(Kernel::Sobel),
            "scharr" => Ok(Kernel::Scharr),
            _ => Err(ParseOptionError { what: "kernel", given: s.to_owned(), expected: "sobel, scharr" }),
        }
    }
}

impl FromStr for Threshold {
    type Err = ParseOptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = s.trim().to_ascii_lowercase();
        if word == "otsu" {
            return Ok(Threshold::Otsu);
        }
        word.parse::<u32>().map(Threshold::Value).map_err(|_| ParseOptionError {
            what: "threshold",
            given: s.to_owned(),
            expected: "otsu, or an integer from 0 to 4294967295",
        })
    }
}

impl FromStr for Format {
    type Err = ParseOptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "png" => Ok(Format::Png),
            "tiff" | "tif" => Ok(Format::Tiff),
            "npy" => Ok(Format::Npy),
            _ => Err(ParseOptionError { what: "format", given: s.to_owned(), expected: "png, tiff, npy" }),
        }
    }
}

impl Threshold {
    /// The word or number used on the command line and in the API.
    pub fn as_str(self) -> std::borrow::Cow<'static, str> {
        match self {
            Threshold::Value(t) => t.to_string().into(),
            Threshold::Otsu => "otsu".into(),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for m in [Magnitude::L2, Magnitude::L1] {
            assert_eq!(m.as_str().parse::<Magnitude>().unwrap(), m);
        }
        for o in [OutputMode::Binary, OutputMode::Magnitude] {
            assert_eq!(o.to_string().parse::<OutputMode>().unwrap(), o);
        }
        assert_eq!(" L1 ".parse::<Magnitude>().unwrap(), Magnitude::L1);
        let err = "l3".parse::<Magnitude>().unwrap_err();
        assert!(err.to_string().contains("l2, l1"), "{err}");
    }

    fn with(f: impl FnOnce(&mut Options)) -> Options {
        let mut o = Options::default();
        f(&mut o);
        o
    }

    #[test]
    fn new_words_round_trip_and_old_words_still_parse() {
        for o in Output::ALL {
            assert_eq!(o.as_str().parse::<Output>().unwrap(), o);
        }
        assert_eq!("binary".parse::<Output>().unwrap(), Output::from(OutputMode::Binary));
        assert_eq!("Magnitude".parse::<Output>().unwrap(), Output::from(OutputMode::Magnitude));
        for k in [Kernel::Sobel, Kernel::Scharr] {
            assert_eq!(k.to_string().parse::<Kernel>().unwrap(), k);
        }
        for f in [Format::Png, Format::Tiff, Format::Npy] {
            assert_eq!(f.to_string().parse::<Format>().unwrap(), f);
        }
        assert_eq!("tif".parse::<Format>().unwrap(), Format::Tiff);
        assert_eq!("otsu".parse::<Threshold>().unwrap(), Threshold::Otsu);
        assert_eq!(" 80".parse::<Threshold>().unwrap(), Threshold::Value(80));
        assert!("-1".parse::<Threshold>().is_err());
        assert_eq!(Threshold::Value(7).to_string(), "7");
    }

    #[test]
    fn defaults_are_valid_and_are_todays_output() {
        let o = Options::default();
        assert_eq!(o.validate(), Ok(()));
        assert_eq!(o.filter_params(), Some(FilterParams::default()));
        assert_eq!(Options::from(FilterParams::default()), o);
    }

    #[test]
    fn bad_combinations_name_the_option() {
        let cases = [
            (with(|o| o.ksize = 4), "ksize"),
            (with(|o| o.ksize = 0), "ksize"),
            (with(|o| (o.kernel, o.ksize) = (Kernel::Scharr, 5)), "ksize"),
            (with(|o| (o.output, o.low, o.high) = (Output::Canny, 200, 100)), "low"),
            (with(|o| (o.output, o.ksize) = (Output::Canny, 1)), "ksize"),
            (with(|o| (o.output, o.kernel) = (Output::Canny, Kernel::Scharr)), "kernel"),
            (with(|o| (o.output, o.high) = (Output::Canny, 5000)), "high"),
            (with(|o| o.threshold = Threshold::Value(1443)), "threshold"),
            (with(|o| (o.magnitude, o.threshold) = (Magnitude::L1, Threshold::Value(2040))), "threshold"),
            (with(|o| (o.output, o.threshold) = (Output::Gx, Threshold::Otsu)), "threshold"),
            (with(|o| (o.output, o.format) = (Output::Gx, Format::Png)), "format"),
            (with(|o| (o.output, o.format) = (Output::Gy, Format::Png)), "format"),
            (with(|o| (o.output, o.ksize, o.format) = (Output::Magnitude16, 7, Format::Png)), "format"),
        ];
        for (options, option) in cases {
            let err = options.validate().unwrap_err();
            assert_eq!(err.option(), option, "{options:?}: {err}");
        }
        let png_gx = with(|o| (o.output, o.format) = (Output::Gx, Format::Png)).validate().unwrap_err();
        assert_eq!(png_gx.code(), "unsupported-output-format");
        assert!(png_gx.to_string().contains("tiff or npy"), "{png_gx}");
        assert_eq!(with(|o| o.ksize = 4).validate().unwrap_err().code(), "invalid-option");
    }

    #[test]
    fn good_combinations_pass_with_their_samples() {
        let cases = [
            (with(|o| o.threshold = Threshold::Value(1442)), Sample::Bit),
            (with(|o| o.threshold = Threshold::Otsu), Sample::Bit),
            (with(|o| (o.ksize, o.threshold) = (7, Threshold::Value(200_000))), Sample::Bit),
            (with(|o| o.output = Output::Magnitude16), Sample::U16),
            (with(|o| (o.output, o.ksize) = (Output::Magnitude16, 5)), Sample::U16),
            (with(|o| (o.output, o.ksize, o.format) = (Output::Magnitude16, 7, Format::Npy)), Sample::U32),
            (with(|o| (o.output, o.format) = (Output::Gx, Format::Tiff)), Sample::I16),
            (
                with(|o| (o.output, o.kernel, o.format) = (Output::Gy, Kernel::Scharr, Format::Npy)),
                Sample::I16,
            ),
            (with(|o| (o.output, o.ksize, o.format) = (Output::Gx, 7, Format::Npy)), Sample::I32),
            (with(|o| o.output = Output::Direction), Sample::U8),
            (with(|o| (o.output, o.format) = (Output::Direction, Format::Tiff)), Sample::F32),
            (with(|o| (o.output, o.ksize) = (Output::Canny, 7)), Sample::Bit),
        ];
        for (options, sample) in cases {
            assert_eq!(options.validate(), Ok(()), "{options:?}");
            assert_eq!(options.sample(), Ok(sample), "{options:?}");
        }
    }

    #[test]
    fn limits_and_halos() {
        assert_eq!(Options::default().magnitude_limit(), 1443);
        assert_eq!(with(|o| o.magnitude = Magnitude::L1).magnitude_limit(), 2040);
        assert_eq!(Options::default().magnitude16_max(), 1442);
        assert_eq!(with(|o| o.ksize = 7).magnitude16_max(), 230_800);
        assert_eq!(with(|o| o.ksize = 1).halo(), 1);
        assert_eq!(Options::default().halo(), 1);
        assert_eq!(with(|o| o.ksize = 7).halo(), 3);
        assert_eq!(with(|o| o.output = Output::Canny).halo(), 2);
        assert_eq!(with(|o| (o.output, o.ksize) = (Output::Canny, 7)).halo(), 4);
    }
}
