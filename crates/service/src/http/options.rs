//! The options of an upload, gathered from its query string and its form fields, checked
//! into the job's options; and its `Idempotency-Key`.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::HeaderMap;
use dsobel_kernel::Options;

use crate::error::ApiError;
use crate::model::JobOptions;

/// Every option an upload takes (`access_token` is the API key's, read by its middleware).
const KNOWN_OPTIONS: [&str; 11] = [
    "output",
    "kernel",
    "ksize",
    "magnitude",
    "threshold",
    "low",
    "high",
    "format",
    "fragments",
    "wait",
    "access_token",
];

/// Options of one upload, gathered from the query and the form.
#[derive(Debug, Default)]
pub(super) struct UploadOptions {
    fields: HashMap<String, String>,
}

impl UploadOptions {
    /// Sets option `name`, refusing names no upload takes.
    pub(super) fn set(&mut self, name: &str, value: String) -> Result<(), ApiError> {
        if !KNOWN_OPTIONS.contains(&name) {
            return Err(ApiError::InvalidOption(format!(
                "unknown option {name:?}; known options: output, kernel, ksize, magnitude, threshold, low, \
                 high, format, fragments, wait"
            )));
        }
        self.fields.insert(name.to_owned(), value);
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    /// Option `name` parsed, or `default` when it is absent.
    fn parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
        expected: &str,
    ) -> Result<T, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|e: T::Err| {
                let reason = e.to_string();
                ApiError::InvalidOption(if reason.contains(name) {
                    reason
                } else {
                    format!("{name} must be {expected}, not {value:?}")
                })
            }),
        }
    }

    /// The job's options, each checked, and the combination checked as every door checks it
    /// ([`Options::validate`]).
    pub(super) fn job_options(&self) -> Result<JobOptions, ApiError> {
        let defaults = Options::default();
        let options = Options {
            output: self.parsed("output", defaults.output, "an output's name")?,
            kernel: self.parsed("kernel", defaults.kernel, "sobel or scharr")?,
            ksize: self.parsed("ksize", defaults.ksize, "1, 3, 5 or 7")?,
            magnitude: self.parsed("magnitude", defaults.magnitude, "l2 or l1")?,
            threshold: self.parsed("threshold", defaults.threshold, "otsu or an integer")?,
            low: self.parsed("low", defaults.low, "a non-negative integer")?,
            high: self.parsed("high", defaults.high, "a non-negative integer")?,
            format: self.parsed("format", defaults.format, "png, tiff or npy")?,
        };
        options.validate()?;
        let fragments = match self.get("fragments") {
            None | Some("auto") => None,
            Some(f) => Some(f.parse::<u32>().ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| {
                ApiError::InvalidOption(format!(
                    "fragments must be \"auto\" or an integer from 1 to 10000, not {f:?}"
                ))
            })?),
        };
        Ok(JobOptions::new(options, fragments))
    }

    /// How long `?wait=` asks to wait for the result, if it does.
    pub(super) fn wait(&self) -> Result<Option<Duration>, ApiError> {
        match self.get("wait") {
            None => Ok(None),
            Some(w) => w
                .parse::<f64>()
                .ok()
                .filter(|s| (0.0..=300.0).contains(s))
                .map(|s| Some(Duration::from_secs_f64(s)))
                .ok_or_else(|| {
                    ApiError::InvalidOption(format!(
                        "wait must be a number of seconds from 0 to 300, not {w:?}"
                    ))
                }),
        }
    }
}

/// The `Idempotency-Key` header, if any: 1 to 128 visible ASCII characters.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::InvalidOption("Idempotency-Key must be 1 to 128 visible ASCII characters".into())
    })
}

#[cfg(test)]
mod tests {
    use dsobel_api::ErrorCode;
    use dsobel_kernel::{Format, Kernel, Output};

    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Result<JobOptions, ApiError> {
        let mut options = UploadOptions::default();
        for (name, value) in pairs {
            options.set(name, value.to_string())?;
        }
        options.job_options()
    }

    #[test]
    fn a_threshold_no_magnitude_reaches_is_refused_with_the_reason() {
        use dsobel_kernel::Threshold;
        assert_eq!(options(&[("threshold", "1442")]).unwrap().threshold, Threshold::Value(1442));
        let refused = options(&[("threshold", "1443")]).unwrap_err().to_string();
        assert!(refused.contains("threshold=1443") && refused.contains("can reach"), "{refused}");
        assert_eq!(
            options(&[("threshold", "2039"), ("magnitude", "l1")]).unwrap().threshold,
            Threshold::Value(2039)
        );
        assert!(options(&[("threshold", "2040"), ("magnitude", "l1")]).is_err());
        assert!(options(&[("threshold", "-1")]).is_err());
        // A larger kernel reaches further.
        assert!(options(&[("threshold", "5000"), ("ksize", "5")]).is_ok());
    }

    #[test]
    fn bad_combinations_are_refused_naming_the_option() {
        let refusal = |pairs: &[(&str, &str)]| {
            let e = options(pairs).unwrap_err();
            (e.code(), e.to_string())
        };
        let (code, message) = refusal(&[("output", "canny"), ("low", "300"), ("high", "100")]);
        assert_eq!(code, ErrorCode::InvalidOption);
        assert!(message.starts_with("low:"), "{message}");
        let (_, message) = refusal(&[("ksize", "4")]);
        assert!(message.starts_with("ksize:"), "{message}");
        let (_, message) = refusal(&[("kernel", "scharr"), ("ksize", "5")]);
        assert!(message.starts_with("ksize:") && message.contains("scharr"), "{message}");
        let (code, message) = refusal(&[("output", "gx"), ("format", "png")]);
        assert_eq!(code, ErrorCode::UnsupportedOutputFormat);
        assert!(message.contains("tiff or npy"), "{message}");
        let (_, message) = refusal(&[("output", "sharpen")]);
        assert!(message.contains("output") && message.contains("canny"), "{message}");
        let (_, message) = refusal(&[("low", "many")]);
        assert!(message.contains("low"), "{message}");
    }

    #[test]
    fn every_operator_is_taken() {
        let gx = options(&[("output", "gx"), ("format", "npy"), ("kernel", "scharr")]).unwrap();
        assert_eq!((gx.output, gx.format, gx.kernel), (Output::Gx, Format::Npy, Kernel::Scharr));
        let canny = options(&[("output", "canny"), ("low", "50"), ("high", "150"), ("ksize", "5")]).unwrap();
        assert_eq!((canny.low, canny.high, canny.ksize), (50, 150, 5));
        assert_eq!(options(&[("threshold", "otsu")]).unwrap().threshold, dsobel_kernel::Threshold::Otsu);
    }
}
