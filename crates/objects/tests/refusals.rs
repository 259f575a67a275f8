//! Refusals and configuration that need no server: locations outside the allow-list, GCS
//! configured by URL, stores that cannot be reached, and credentials kept out of every
//! message and `Debug` print.
//!
//! No test here sends a request anywhere but to a closed port on 127.0.0.1: GCS is only
//! configured (there is no GCS here), and every S3 client has explicit credentials, so none
//! looks for an instance's metadata service.

use std::net::TcpListener;
use std::time::Duration;

use bytes::Bytes;
use dsobel_objects::{AllowList, CloudConfig, Key, Metadata, StoreErrorCode, Stores};
use futures_util::StreamExt;

const SECRET: &str = "refusal-test-secret-9f8e7d";
const ACCESS: &str = "RefusalTestAccessKey";
const PRIVATE_KEY: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC-not-a-real-key";

/// A port on loopback that nothing listens on (taken, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn quick(config: CloudConfig) -> CloudConfig {
    config.with_timeouts(Duration::from_millis(500), Duration::from_secs(5), 1, Duration::from_secs(2))
}

fn s3_config(endpoint: &str) -> CloudConfig {
    let config = CloudConfig::default()
        .with_s3("aws_endpoint_url", endpoint)
        .and_then(|c| c.with_s3("aws_allow_http", "true"))
        .and_then(|c| c.with_s3("aws_access_key_id", ACCESS))
        .and_then(|c| c.with_s3("aws_secret_access_key", SECRET))
        .expect("S3 settings");
    quick(config)
}

fn assert_secret_free(text: &str) {
    for secret in [SECRET, ACCESS, PRIVATE_KEY] {
        assert!(!text.contains(secret), "a credential appears in: {text}");
    }
}

#[test]
fn locations_outside_the_allow_list_are_refused_before_any_request() {
    let allow =
        AllowList::parse("s3://allowed-bucket/in,gs://allowed-gcs/out,file:///srv/dsobel").expect("list");
    // The endpoint is a closed port: an accidental request would fail as unavailable, not as
    // not-allowed.
    let stores = Stores::new(allow, s3_config(&format!("http://127.0.0.1:{}", closed_port())));
    for url in [
        "s3://allowed-bucket/elsewhere",
        "s3://allowed-bucket/in/../secret",
        "s3://allowed-bucket/in%2F..%2Fsecret",
        "s3://other-bucket/in",
        "gs://allowed-bucket/in",
        "gs://allowed-gcs/out2",
        "file:///srv/dsobel/../../etc",
        "file:///etc",
        "memory://allowed-bucket/in",
        "http://allowed-bucket/in",
        "https://allowed-gcs.storage.googleapis.com/out",
        "http://169.254.169.254/computeMetadata/v1/",
        "s3://AKIA:secret@allowed-bucket/in",
    ] {
        let error = stores.open(url).expect_err(url);
        assert_eq!(error.code(), StoreErrorCode::NotAllowed, "{url}: {error}");
        assert!(!error.to_string().contains(":secret@"), "{error}");
    }
    stores.open("s3://allowed-bucket/in/2024").expect("allowed");
    stores.open("gs://allowed-gcs/out").expect("allowed");
    stores.open("file:///srv/dsobel/run").expect("allowed");
}

#[test]
fn gcs_is_configured_by_url() {
    let allow = AllowList::parse("gs://dsobel-test-bucket/images").expect("list");
    // Application default credentials (Workload Identity, the VM's service account): nothing
    // is fetched until the first request, and none is made here.
    let stores = Stores::new(allow.clone(), CloudConfig::default());
    let objects = stores.open("gs://dsobel-test-bucket/images/2024").expect("open");
    assert_eq!(objects.location().to_string(), "gs://dsobel-test-bucket/images/2024");
    assert_eq!(objects.location().bucket(), "dsobel-test-bucket");

    // A service-account key that is not one: refused as configuration, without its secret.
    let key = format!(
        r#"{{"type":"service_account","client_email":"x@y.iam.gserviceaccount.com","private_key_id":"abc123def456","private_key":"-----BEGIN PRIVATE KEY-----\n{PRIVATE_KEY}\n-----END PRIVATE KEY-----\n"}}"#
    );
    let config = CloudConfig::default().with_gcs("google_service_account_key", key).expect("setting");
    assert_secret_free(&format!("{config:?}"));
    let stores = Stores::new(allow, config);
    match stores.open("gs://dsobel-test-bucket/images") {
        Ok(objects) => assert_secret_free(&format!("{objects:?} {stores:?}")),
        Err(error) => {
            assert_eq!(error.code(), StoreErrorCode::ConfigInvalid, "{error}");
            assert_secret_free(&error.to_string());
            assert_secret_free(&format!("{error:?}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_gcs_endpoint_is_unavailable() {
    let allow = AllowList::parse("gs://dsobel-test-bucket").expect("list");
    let config = CloudConfig::default()
        .with_gcs("google_base_url", format!("http://127.0.0.1:{}", closed_port()))
        .and_then(|c| c.with_gcs("google_allow_http", "true"))
        .and_then(|c| c.with_gcs("google_skip_signature", "true"))
        .expect("GCS settings");
    let stores = Stores::new(allow, quick(config));
    let objects = stores.open("gs://dsobel-test-bucket/in").expect("open");
    let error = objects.list().next().await.expect("an item").expect_err("nothing listens");
    assert_eq!(error.code(), StoreErrorCode::Unavailable, "{error}");
    let error = objects.head(&Key::parse("a.jpg").unwrap()).await.expect_err("nothing listens");
    assert_eq!(error.code(), StoreErrorCode::Unavailable, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_s3_endpoint_is_unavailable_and_says_no_secret() {
    let allow = AllowList::parse("s3://dsobel-bucket").expect("list");
    for scheme in ["http", "https"] {
        // https builds the TLS client (rustls with ring) before the connection is refused.
        let stores =
            Stores::new(allow.clone(), s3_config(&format!("{scheme}://127.0.0.1:{}", closed_port())));
        let objects = stores.open("s3://dsobel-bucket/in").expect("open");
        let key = Key::parse("a.jpg").unwrap();
        let errors = [
            objects.list().next().await.expect("an item").expect_err("list"),
            objects.get(&key, 10).await.expect_err("get"),
            objects.put(&key, Bytes::from_static(b"x"), &Metadata::default()).await.expect_err("put"),
            objects.health_check().await.expect_err("health"),
        ];
        for error in errors {
            assert_eq!(error.code(), StoreErrorCode::Unavailable, "{scheme}: {error}");
            assert!(error.is_transient());
            assert_secret_free(&error.to_string());
            assert_secret_free(&format!("{error:?}"));
        }
        assert_secret_free(&format!("{stores:?} {objects:?}"));
    }
}

#[test]
fn configuration_errors_name_the_problem() {
    let error = AllowList::parse("s3://ok-bucket,https://example.com/x").expect_err("refused");
    assert_eq!(error.code(), StoreErrorCode::ConfigInvalid);
    assert!(error.to_string().contains("entry 2"), "{error}");
    let error = CloudConfig::default().with_s3("aws_secret_acces_key", SECRET).expect_err("a typo");
    assert_eq!(error.code(), StoreErrorCode::ConfigInvalid);
    assert_secret_free(&error.to_string());
}
