//! The options of a job, as the API shows them and tasks carry them.
//!
//! They are the operators' options ([`dsobel_kernel::Options`], `docs/operators.md`) plus the
//! strip count asked for, under the same words the CLI, the query string and the form take.
//! Options a build does not know are refused when read (`deny_unknown_fields`): a worker that
//! meets an option it does not know fails the job saying so, rather than computing something
//! else.

use dsobel_kernel::{
    DEFAULT_CANNY_HIGH, DEFAULT_CANNY_LOW, DEFAULT_KSIZE, FilterParams, Format, Kernel, Magnitude,
    OptionError, Options, Output, Threshold,
};
use serde::{Deserialize, Serialize};

/// The options of one job: what decides its output bytes, and how many strips were asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
/// Fields left out take their defaults (`binary`, threshold 100, `l2`, Sobel 3×3, PNG).
#[serde(deny_unknown_fields, default)]
pub struct JobOptions {
    /// Threshold of the binary output: a number, or `"otsu"`. Ignored by the other outputs.
    #[serde(with = "words::threshold")]
    pub threshold: Threshold,
    /// `l2` or `l1`.
    #[serde(with = "words::magnitude")]
    pub magnitude: Magnitude,
    /// `binary`, `magnitude`, `magnitude16`, `gx`, `gy`, `direction` or `canny`.
    #[serde(with = "words::output")]
    pub output: Output,
    /// `sobel` or `scharr`.
    #[serde(default, with = "words::kernel")]
    pub kernel: Kernel,
    /// Sobel's aperture: 1, 3, 5 or 7.
    #[serde(default = "default_ksize")]
    pub ksize: u8,
    /// Canny's low threshold.
    #[serde(default = "default_low")]
    pub low: u32,
    /// Canny's high threshold.
    #[serde(default = "default_high")]
    pub high: u32,
    /// The result's file format: `png`, `tiff` or `npy`.
    #[serde(default, with = "words::format")]
    pub format: Format,
    /// Strip count asked for, if any (the job's status says how many it got).
    pub fragments: Option<u32>,
}

fn default_ksize() -> u8 {
    DEFAULT_KSIZE
}

fn default_low() -> u32 {
    DEFAULT_CANNY_LOW
}

fn default_high() -> u32 {
    DEFAULT_CANNY_HIGH
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions::new(Options::default(), None)
    }
}

impl JobOptions {
    /// The job options of the operators' `options`, with `fragments` asked for.
    pub fn new(options: Options, fragments: Option<u32>) -> JobOptions {
        let Options { output, kernel, ksize, magnitude, threshold, low, high, format } = options;
        JobOptions { threshold, magnitude, output, kernel, ksize, low, high, format, fragments }
    }

    /// The operators' options.
    pub fn operator(&self) -> Options {
        let JobOptions { threshold, magnitude, output, kernel, ksize, low, high, format, .. } = *self;
        Options { output, kernel, ksize, magnitude, threshold, low, high, format }
    }

    /// Checks the combination, as every door does ([`Options::validate`]).
    pub fn validate(&self) -> Result<(), OptionError> {
        self.operator().validate()
    }

    /// The parameters of the single-pass Sobel 3×3 outputs (`binary` with a numeric threshold
    /// and `magnitude`, as PNG), which every cut of a job computes strip by strip; `None` for
    /// every other operator or format.
    pub fn params(&self) -> Option<FilterParams> {
        if self.format != Format::Png {
            return None;
        }
        self.operator().filter_params()
    }

    /// Whether each strip can be computed on its own, in one pass (every output but Canny,
    /// with a numeric threshold): such a job can be cut into strips on several workers.
    /// Otsu's threshold and Canny's hysteresis need the whole image between two passes.
    pub fn single_pass(&self) -> bool {
        self.output != Output::Canny && self.threshold != Threshold::Otsu
    }

    /// The result's media type.
    pub fn media_type(&self) -> &'static str {
        self.format.media_type()
    }
}

/// The kernel's option types on the wire, as the same words the CLI and the query take.
mod words {
    macro_rules! words {
        ($module:ident, $ty:ty) => {
            pub mod $module {
                use serde::{Deserialize, Deserializer, Serializer, de::Error};
                pub fn serialize<S: Serializer>(v: &$ty, s: S) -> Result<S::Ok, S::Error> {
                    s.serialize_str(&v.as_str())
                }
                pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                    let word = String::deserialize(d)?;
                    word.parse().map_err(D::Error::custom)
                }
            }
        };
    }
    words!(magnitude, dsobel_kernel::Magnitude);
    words!(output, dsobel_kernel::Output);
    words!(kernel, dsobel_kernel::Kernel);
    words!(format, dsobel_kernel::Format);

    /// A threshold is a number on the wire, or the word `"otsu"`.
    pub mod threshold {
        use dsobel_kernel::Threshold;
        use serde::{Deserialize, Deserializer, Serializer, de::Error};

        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Number(u32),
            Word(String),
        }

        pub fn serialize<S: Serializer>(v: &Threshold, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Threshold::Value(t) => s.serialize_u32(*t),
                Threshold::Otsu => s.serialize_str("otsu"),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Threshold, D::Error> {
            match Wire::deserialize(d)? {
                Wire::Number(t) => Ok(Threshold::Value(t)),
                Wire::Word(word) => word.parse().map_err(D::Error::custom),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_travels_and_comes_back_the_same() {
        for output in Output::ALL {
            let mut options = JobOptions { output, format: Format::Npy, ..JobOptions::default() };
            if output == Output::Binary {
                options.threshold = Threshold::Otsu;
            }
            options.kernel = Kernel::Sobel;
            options.ksize = 5;
            let json = serde_json::to_string(&options).unwrap();
            assert_eq!(serde_json::from_str::<JobOptions>(&json).unwrap(), options, "{json}");
        }
    }

    #[test]
    fn the_options_of_earlier_builds_still_read() {
        let old = r#"{"threshold":80,"magnitude":"l1","output":"magnitude","fragments":4}"#;
        let options: JobOptions = serde_json::from_str(old).unwrap();
        assert_eq!(options.threshold, Threshold::Value(80));
        assert_eq!((options.kernel, options.ksize, options.format), (Kernel::Sobel, 3, Format::Png));
        assert_eq!(options.fragments, Some(4));
        assert!(options.params().is_some());
    }

    #[test]
    fn an_option_this_build_does_not_know_is_refused_not_ignored() {
        let newer = r#"{"threshold":80,"magnitude":"l2","output":"binary","fragments":null,"sigma":2}"#;
        let refused = serde_json::from_str::<JobOptions>(newer).unwrap_err().to_string();
        assert!(refused.contains("sigma"), "{refused}");
        let unknown_word = r#"{"threshold":80,"magnitude":"l2","output":"laplacian","fragments":null}"#;
        assert!(serde_json::from_str::<JobOptions>(unknown_word).is_err());
    }
}
