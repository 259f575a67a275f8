//! The options that decide what a pixel of output is: threshold, magnitude and output mode.
//!
//! These are the knobs of DESIGN §2.4. They travel with every strip task, so they are small,
//! `Copy`, and parse from / print to the same short words the CLI and the HTTP API use.

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
}
