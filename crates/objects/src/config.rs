//! How the cloud stores are reached: endpoints, credentials, timeouts and retries.
//!
//! Credentials come the standard way. For S3, the `AWS_*` environment variables the AWS tools
//! read (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL` for an S3-compatible server, `AWS_ALLOW_HTTP=true` for one without TLS,
//! web identity and container credentials), then the instance's role. For GCS, the
//! `GOOGLE_*` variables (`GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_SERVICE_ACCOUNT_KEY`, ...),
//! then Workload Identity or the VM's service account through the metadata server.
//! [`CloudConfig::from_env`] reads them once; tests build one with explicit settings instead.
//!
//! Every value of a credential setting is kept out of `Debug` output and removed from error
//! messages (see [`Redactor`](crate::error)).

use std::fmt;
use std::sync::{Arc, Once};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::error::{Redactor, Result, StoreError, classify};

/// Settings of the S3 and GCS clients (not of local files or memory, which need none).
#[derive(Clone)]
pub struct CloudConfig {
    /// `object_store` configuration keys (`aws_endpoint_url`, ...) and their values.
    s3: Vec<(AmazonS3ConfigKey, String)>,
    gcs: Vec<(GoogleConfigKey, String)>,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_retries: usize,
    retry_timeout: Duration,
    redactor: Redactor,
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            s3: Vec::new(),
            gcs: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(120),
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
            redactor: Redactor::default(),
        }
    }
}

impl CloudConfig {
    /// The settings in this process's environment: every `AWS_*` variable that names an S3
    /// setting, every `GOOGLE_*` variable that names a GCS setting (others are ignored).
    pub fn from_env() -> CloudConfig {
        let mut config = CloudConfig::default();
        for (name, value) in std::env::vars_os() {
            let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else { continue };
            let lower = name.to_ascii_lowercase();
            if name.starts_with("AWS_") {
                // Names object_store does not know are other tools' settings: ignored.
                let _ = config.set_s3(&lower, value);
            } else if name.starts_with("GOOGLE_") {
                let _ = config.set_gcs(&lower, value);
            }
        }
        config
    }

    /// Adds an S3 setting by its `object_store` name (`aws_endpoint_url`,
    /// `aws_access_key_id`, `aws_secret_access_key`, `aws_region`, `aws_allow_http`, ...).
    /// An unknown name is a [`StoreError::Config`].
    pub fn with_s3(mut self, name: &str, value: impl Into<String>) -> Result<CloudConfig> {
        self.set_s3(name, &value.into())?;
        Ok(self)
    }

    /// Adds a GCS setting by its `object_store` name (`google_service_account_key`,
    /// `google_application_credentials`, `google_base_url`, ...).
    pub fn with_gcs(mut self, name: &str, value: impl Into<String>) -> Result<CloudConfig> {
        self.set_gcs(name, &value.into())?;
        Ok(self)
    }

    /// Sets how long a connection may take to open, how long one request may take (its body
    /// included), and how many times, within how long, a failed request is retried before
    /// the operation reports [`StoreError::Unavailable`].
    pub fn with_timeouts(
        mut self,
        connect: Duration,
        request: Duration,
        retries: usize,
        retry_for: Duration,
    ) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self.max_retries = retries;
        self.retry_timeout = retry_for;
        self
    }

    fn set_s3(&mut self, name: &str, value: &str) -> Result<()> {
        let key: AmazonS3ConfigKey = name
            .parse()
            .map_err(|_| StoreError::Config { detail: format!("unknown S3 setting {name:?}") })?;
        if is_secret(name) {
            self.redactor.add(value);
        }
        self.s3.retain(|(existing, _)| existing.as_ref() != key.as_ref());
        self.s3.push((key, value.to_owned()));
        Ok(())
    }

    fn set_gcs(&mut self, name: &str, value: &str) -> Result<()> {
        let key: GoogleConfigKey = name
            .parse()
            .map_err(|_| StoreError::Config { detail: format!("unknown GCS setting {name:?}") })?;
        if is_secret(name) {
            self.redactor.add(value);
            // A service-account key is JSON: its private key may be quoted on its own.
            if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(value) {
                for field in ["private_key", "private_key_id", "client_secret", "refresh_token"] {
                    if let Some(serde_json::Value::String(secret)) = fields.get(field) {
                        self.redactor.add(secret);
                    }
                }
            }
        }
        self.gcs.retain(|(existing, _)| existing.as_ref() != key.as_ref());
        self.gcs.push((key, value.to_owned()));
        Ok(())
    }

    pub(crate) fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    fn client_options(&self) -> ClientOptions {
        ClientOptions::new().with_connect_timeout(self.connect_timeout).with_timeout(self.request_timeout)
    }

    fn retry(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
        }
    }

    /// A client of one S3 bucket.
    pub(crate) fn s3(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        install_tls_provider();
        // Client options first: the settings may change them (`aws_allow_http`).
        let mut builder =
            AmazonS3Builder::new().with_client_options(self.client_options()).with_retry(self.retry());
        for (key, value) in &self.s3 {
            builder = builder.with_config(*key, value);
        }
        let store = builder
            .with_bucket_name(bucket)
            .build()
            .map_err(|error| config_error(classify(error, "configure S3", &self.redactor)))?;
        Ok(Arc::new(store))
    }

    /// A client of one GCS bucket.
    pub(crate) fn gcs(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        install_tls_provider();
        let mut builder = GoogleCloudStorageBuilder::new()
            .with_client_options(self.client_options())
            .with_retry(self.retry());
        for (key, value) in &self.gcs {
            builder = builder.with_config(*key, value);
        }
        let store = builder
            .with_bucket_name(bucket)
            .build()
            .map_err(|error| config_error(classify(error, "configure GCS", &self.redactor)))?;
        Ok(Arc::new(store))
    }
}

/// A failure to build a client is a configuration problem, whatever the builder called it.
fn config_error(error: StoreError) -> StoreError {
    match error {
        StoreError::Config { .. } => error,
        other => StoreError::Config { detail: other.to_string() },
    }
}

/// True for the settings whose values are credentials.
fn is_secret(name: &str) -> bool {
    ["key", "secret", "token", "password", "credential"].iter().any(|word| name.contains(word))
        && !name.ends_with("_file")
        && !name.ends_with("_uri")
        && name != "google_application_credentials"
}

/// The cloud clients speak TLS through rustls with ring, installed once as the process's
/// provider (nothing happens when the process has chosen one already).
///
/// rustls marks ring's provider deprecated because it offers no post-quantum key exchange;
/// the alternative (aws-lc) is a large C build. TLS 1.3 with X25519 is what S3 and GCS
/// endpoints negotiate today.
#[allow(deprecated)]
fn install_tls_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl fmt::Debug for CloudConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: even the endpoint may carry a token in some setups.
        f.debug_struct("CloudConfig")
            .field("s3", &self.s3.iter().map(|(key, _)| key.as_ref()).collect::<Vec<_>>())
            .field("gcs", &self.gcs.iter().map(|(key, _)| key.as_ref()).collect::<Vec<_>>())
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_timeout", &self.retry_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised() {
        for secret in [
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
            "google_service_account_key",
            "google_bearer_token",
        ] {
            assert!(is_secret(secret), "{secret}");
        }
        for plain in [
            "aws_endpoint_url",
            "aws_region",
            "aws_allow_http",
            "aws_web_identity_token_file",
            "aws_container_credentials_relative_uri",
            "google_application_credentials",
            "google_base_url",
        ] {
            assert!(!is_secret(plain), "{plain}");
        }
    }

    #[test]
    fn unknown_settings_are_refused() {
        let error = CloudConfig::default().with_s3("aws_no_such_thing", "x").expect_err("refused");
        assert_eq!(error.code(), crate::StoreErrorCode::ConfigInvalid);
        let error = CloudConfig::default().with_gcs("google_nope", "x").expect_err("refused");
        assert_eq!(error.code(), crate::StoreErrorCode::ConfigInvalid);
    }

    #[test]
    fn debug_shows_no_values() {
        let config = CloudConfig::default()
            .with_s3("aws_access_key_id", "AKIAVISIBLEKEY1")
            .and_then(|c| c.with_s3("aws_secret_access_key", "very-secret-value"))
            .and_then(|c| {
                c.with_gcs("google_service_account_key", r#"{"private_key":"-----BEGIN PK-----abc"}"#)
            })
            .expect("config");
        let debug = format!("{config:?}");
        for secret in ["AKIAVISIBLEKEY1", "very-secret-value", "BEGIN PK"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("aws_secret_access_key"), "{debug}");
        let cleaned = config.redactor().clean("sig AKIAVISIBLEKEY1 very-secret-value -----BEGIN PK-----abc");
        assert!(
            !cleaned.contains("AKIAVISIBLEKEY1")
                && !cleaned.contains("very-secret")
                && !cleaned.contains("BEGIN PK")
        );
    }

    #[test]
    fn a_later_setting_replaces_an_earlier_one() {
        let config = CloudConfig::default()
            .with_s3("aws_region", "eu-west-1")
            .and_then(|c| c.with_s3("aws_region", "us-east-2"))
            .expect("config");
        assert_eq!(config.s3.len(), 1);
        assert_eq!(config.s3[0].1, "us-east-2");
    }
}
