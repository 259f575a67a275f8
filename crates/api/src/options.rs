//! The options of a job, as the API shows them and tasks carry them.

use dsobel_kernel::{FilterParams, Magnitude, OutputMode};
use serde::{Deserialize, Serialize};

/// The options of one job: what decides its output bytes, and how many strips were asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOptions {
    /// Threshold `T` of the binary output.
    pub threshold: u16,
    /// `l2` or `l1`.
    #[serde(with = "words::magnitude")]
    pub magnitude: Magnitude,
    /// `binary` or `magnitude`.
    #[serde(with = "words::output")]
    pub output: OutputMode,
    /// Strip count asked for, if any (the job's status says how many it got).
    pub fragments: Option<u32>,
}

impl JobOptions {
    /// The kernel parameters.
    pub fn params(&self) -> FilterParams {
        FilterParams { threshold: self.threshold, magnitude: self.magnitude, output: self.output }
    }
}

/// The kernel's option types on the wire, as the same words the CLI and the query take.
mod words {
    macro_rules! words {
        ($module:ident, $ty:ty) => {
            pub mod $module {
                use serde::{Deserialize, Deserializer, Serializer, de::Error};
                pub fn serialize<S: Serializer>(v: &$ty, s: S) -> Result<S::Ok, S::Error> {
                    s.serialize_str(v.as_str())
                }
                pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                    let word = String::deserialize(d)?;
                    word.parse().map_err(D::Error::custom)
                }
            }
        };
    }
    words!(magnitude, dsobel_kernel::Magnitude);
    words!(output, dsobel_kernel::OutputMode);
}
