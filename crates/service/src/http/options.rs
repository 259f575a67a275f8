//! The options of an upload, gathered from its query string and its form fields, checked
//! into the job's options; and its `Idempotency-Key`.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::HeaderMap;
use dsobel_kernel::{DEFAULT_THRESHOLD, Magnitude, OutputMode};

use crate::error::ApiError;
use crate::model::JobOptions;

/// Every option an upload takes (`access_token` is the API key's, read by its middleware).
const KNOWN_OPTIONS: [&str; 6] = ["threshold", "magnitude", "output", "fragments", "wait", "access_token"];

/// Options of one upload, gathered from the query and the form.
#[derive(Debug, Default)]
pub(super) struct UploadOptions {
    fields: HashMap<String, String>,
}

/// The largest magnitude the filter can give: `|gx|` and `|gy|` reach 4 × 255 = 1020, so
/// `sqrt(2 × 1020²)` ≈ 1442.5 (L2) and 2040 (L1). A threshold above it can never be passed.
pub(super) fn max_magnitude(magnitude: Magnitude) -> u16 {
    match magnitude {
        Magnitude::L2 => 1443,
        Magnitude::L1 => 2040,
    }
}

impl UploadOptions {
    /// Sets option `name`, refusing names no upload takes.
    pub(super) fn set(&mut self, name: &str, value: String) -> Result<(), ApiError> {
        if !KNOWN_OPTIONS.contains(&name) {
            return Err(ApiError::InvalidOption(format!(
                "unknown option {name:?}; known options: threshold, magnitude, output, fragments, wait"
            )));
        }
        self.fields.insert(name.to_owned(), value);
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    /// The job's options, each checked.
    pub(super) fn job_options(&self) -> Result<JobOptions, ApiError> {
        let magnitude = match self.get("magnitude") {
            None => Magnitude::L2,
            Some(m) => m.parse().map_err(|e| ApiError::InvalidOption(format!("{e}")))?,
        };
        let output = match self.get("output") {
            None => OutputMode::Binary,
            Some(o) => o.parse().map_err(|e| ApiError::InvalidOption(format!("{e}")))?,
        };
        let most = max_magnitude(magnitude);
        let threshold = match self.get("threshold") {
            None => DEFAULT_THRESHOLD,
            Some(t) => t.parse::<u16>().ok().filter(|t| *t <= most).ok_or_else(|| {
                ApiError::InvalidOption(format!(
                    "threshold must be an integer from 0 to {most}, not {t:?}: the {magnitude} magnitude of the \
                     3x3 Sobel filter never exceeds {most}, so a higher threshold would give an empty image"
                ))
            })?,
        };
        let fragments = match self.get("fragments") {
            None | Some("auto") => None,
            Some(f) => Some(f.parse::<u32>().ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| {
                ApiError::InvalidOption(format!(
                    "fragments must be \"auto\" or an integer from 1 to 10000, not {f:?}"
                ))
            })?),
        };
        Ok(JobOptions { threshold, magnitude, output, fragments })
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
        assert_eq!(options(&[("threshold", "1443")]).unwrap().threshold, 1443);
        let refused = options(&[("threshold", "1444")]).unwrap_err().to_string();
        assert!(refused.contains("from 0 to 1443") && refused.contains("never exceeds"), "{refused}");
        assert_eq!(options(&[("threshold", "2040"), ("magnitude", "l1")]).unwrap().threshold, 2040);
        assert!(options(&[("threshold", "2041"), ("magnitude", "l1")]).is_err());
        assert!(options(&[("threshold", "-1")]).is_err());
    }
}
