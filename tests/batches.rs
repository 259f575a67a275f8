//! Batches from a bucket to a bucket, against real servers: SeaweedFS (S3) started by the test,
//! RabbitMQ and Redis for the distributed system, and local folders (`file://`) for the
//! embedded mode.
//!
//! - 300 mixed images (baseline, progressive and restart-marker JPEGs, PNGs, one in a
//!   sub-folder, one corrupt, and a text file that is no item) through two workers: every
//!   output byte-equal to `dsobel process --strips 1` on the same file, the corrupt one in the
//!   manifest with `corrupt-image`; a second run skips all 299; a batch cancelled with
//!   `DELETE` stops writing within seconds.
//! - Faults: a worker SIGKILLed and SeaweedFS restarted mid-batch, and the backend that drives
//!   the batch killed while it lists: another backend takes the batch over from its stored
//!   position, and every item ends done (its output equal to `dsobel process`'s) or failed
//!   with a reason, listed once in the manifest.
//! - The embedded server runs batches between local folders, with the same outputs.
//! - Refusals: a location not allowed, an `http://` source, overlapping locations, a missing
//!   bucket, bad credentials: each its code, nothing written.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use dsobel_client::{BatchRequest, BatchState, BatchStatus, Client, JobOptions};
use dsobel_objects::manifest::{ItemStatus, read_manifest};
use dsobel_objects::{AllowList, CloudConfig, Key, Metadata, Stores};
use dsobel_testkit::process::{Proc, embedded_serve, run_process_with};
use dsobel_testkit::weed::{ACCESS_KEY, SECRET_KEY, Weed};
use dsobel_testkit::{Need, Servers, Stack, Test, block_on, fixture, test_png};
use futures_util::StreamExt;

const SOURCE: &str = "dsobel-batch-in";
const DESTINATION: &str = "dsobel-batch-out";

fn main() -> std::process::ExitCode {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    dsobel_testkit::run(vec![
        Test::new(
            "a_batch_of_300_mixed_images_from_s3_to_s3_through_two_workers",
            &[Need::RabbitMq, Need::Redis, Need::Weed],
            a_batch_of_300_mixed_images,
        ),
        Test::new(
            "a_batch_survives_a_killed_worker_a_restarted_object_store_and_a_backend_killed_while_listing",
            &[Need::RabbitMq, Need::Redis, Need::Weed],
            faults,
        ),
        Test::new("the_embedded_server_runs_batches_between_local_folders", &[], embedded_batches),
        Test::new("bad_locations_and_credentials_are_refused_with_their_codes", &[Need::Weed], refusals),
    ])
}

/// The S3 settings of the test's SeaweedFS, as the `AWS_*` environment of a process.
fn aws_env(weed: &Weed, secret: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", weed.endpoint()),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", secret.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The test's own view of the stores (to put the inputs and read the outputs).
fn test_stores(allow: &str, weed: Option<&Weed>) -> Stores {
    let mut cloud = CloudConfig::default();
    if let Some(weed) = weed {
        for (name, value) in aws_env(weed, SECRET_KEY) {
            cloud = cloud.with_s3(&name.to_ascii_lowercase(), value).expect("an S3 setting");
        }
    }
    Stores::new(AllowList::parse(allow).expect("an allow-list"), cloud)
}

/// 300 items: every JPEG fixture and generated PNGs under many names, one in a sub-folder,
/// one corrupt; and a text file, which is no item.
fn inputs() -> BTreeMap<String, Vec<u8>> {
    let jpegs = [
        "q90-420.jpg",
        "progressive-420.jpg",
        "q50-420-restart.jpg",
        "gray-q100-restart.jpg",
        "q75-422.jpg",
        "q98-444-restart1.jpg",
        "edge-17x9.jpg",
        "tiny-1x1.jpg",
    ]
    .map(|name| (name, fixture(name)));
    let mut items = BTreeMap::new();
    for n in 0..298u32 {
        let (name, bytes) = if n % 3 == 0 {
            let (png, _) = test_png(40 + n % 57, 30 + n % 41, u64::from(n));
            (format!("img-{n:03}.png"), png)
        } else {
            let (fixture_name, bytes) = &jpegs[n as usize % jpegs.len()];
            (format!("img-{n:03}-{fixture_name}"), bytes.clone())
        };
        items.insert(name, bytes);
    }
    items.insert("sub/deeper/nested.jpg".into(), fixture("q85-440.jpg"));
    let mut corrupt = fixture("q90-420.jpg");
    corrupt.truncate(corrupt.len() / 2);
    corrupt.extend_from_slice(&[0xFF, 0xD9]);
    items.insert("broken.jpg".into(), corrupt);
    items
}

fn put_all(stores: &Stores, location: &str, items: &BTreeMap<String, Vec<u8>>) {
    block_on(async {
        let objects = stores.open(location).expect("the test may write its source");
        for (key, bytes) in items {
            let key = Key::parse(key).expect("a key");
            objects.put(&key, Bytes::from(bytes.clone()), &Metadata::default()).await.expect("put an input");
        }
        let notes = Key::parse("notes.txt").expect("a key");
        objects.put(&notes, Bytes::from_static(b"not an image"), &Metadata::default()).await.expect("put");
    });
}

/// The output key of an input key.
fn output_of(key: &str) -> String {
    let stem = key.rsplit_once('.').map_or(key, |(stem, _)| stem);
    format!("{stem}.png")
}

/// What `dsobel process --strips 1` writes for each input (the corrupt one aside).
fn expected_outputs(items: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    let mut cache: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut expected = BTreeMap::new();
    for (key, bytes) in items {
        if key == "broken.jpg" {
            continue;
        }
        let png = cache
            .entry(bytes.clone())
            .or_insert_with(|| {
                let out = run_process_with(bytes, &["--strips", "1"]);
                assert!(
                    out.status.success(),
                    "dsobel process {key}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            })
            .clone();
        expected.insert(output_of(key), png);
    }
    expected
}

fn follow(client: &Client, id: &dsobel_client::BatchId, limit: Duration) -> BatchStatus {
    block_on(async {
        tokio::time::timeout(limit, client.follow_batch(id, |_| {}))
            .await
            .unwrap_or_else(|_| panic!("batch {id} not over within {limit:?}"))
            .expect("the batch's status")
    })
}

fn start(client: &Client, source: &str, destination: &str) -> dsobel_client::BatchLinks {
    let request = BatchRequest {
        source: source.into(),
        destination: destination.into(),
        options: JobOptions::default(),
    };
    block_on(client.start_batch(&request, None)).expect("the batch starts")
}

/// Checks every output under `destination` against `expected`.
fn check_files(stores: &Stores, destination: &str, expected: &BTreeMap<String, Vec<u8>>) {
    block_on(async {
        let objects = stores.open(destination).expect("the destination");
        for (key, png) in expected {
            let got = objects
                .get(&Key::parse(key).unwrap(), 1 << 30)
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            assert!(got.bytes.as_ref() == png.as_slice(), "{key} differs from dsobel process's output");
        }
    });
}

/// `dsobel process SOURCE --out-dir DESTINATION` with `env`: its exit code and what it said.
fn process_objects(source: &str, destination: &str, env: &[(String, String)]) -> (i32, String) {
    let output = std::process::Command::new(dsobel_testkit::dsobel_binary())
        .args(["process", source, "--out-dir", destination])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("dsobel process runs");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Checks every output under `destination` against `expected`, and the manifest.
fn check_outputs(
    stores: &Stores,
    destination: &str,
    status: &BatchStatus,
    expected: &BTreeMap<String, Vec<u8>>,
) {
    check_files(stores, destination, expected);
    block_on(async {
        let objects = stores.open(destination).expect("the destination");
        let lines: Vec<_> = read_manifest(&objects, status.id.as_str()).collect().await;
        let lines: Vec<_> = lines.into_iter().map(|l| l.expect("a manifest line")).collect();
        assert_eq!(lines.len() as u64, status.counts.total, "one manifest line per item");
        let broken: Vec<_> = lines.iter().filter(|l| l.status == ItemStatus::Failed).collect();
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert!(broken[0].source_key.ends_with("broken.jpg"), "{broken:?}");
        assert_eq!(broken[0].error_code.as_deref(), Some("corrupt-image"));
        assert!(lines.iter().all(|l| l.source_etag.is_some()));
    });
}

fn a_batch_of_300_mixed_images() {
    let mut weed = Weed::start().expect("SeaweedFS starts");
    weed.create_bucket(SOURCE);
    weed.create_bucket(DESTINATION);
    let (source, destination) = (format!("s3://{SOURCE}/photos"), format!("s3://{DESTINATION}/edges"));
    let allow = format!("s3://{SOURCE},s3://{DESTINATION}");
    let stores = test_stores(&allow, Some(&weed));
    let items = inputs();
    put_all(&stores, &source, &items);
    let expected = expected_outputs(&items);

    let mut stack = Stack::new(&Servers::shared());
    stack.env = aws_env(&weed, SECRET_KEY);
    stack.env.push(("DSOBEL_BATCH_STORES".into(), allow.clone()));
    let _workers = [stack.worker(0), stack.worker(0)];
    let serve = stack.serve(&[]);
    let backend = serve.backend();
    let client = backend.client();

    let links = start(client, &source, &destination);
    assert_eq!(links.status_url, format!("/batches/{}", links.id));
    let first = follow(client, &links.id, Duration::from_secs(300));
    assert_eq!(first.state, BatchState::Done, "{first:?}");
    let c = first.counts;
    assert_eq!((c.total, c.done, c.failed, c.skipped), (300, 299, 1, 0), "{first:?}");
    check_outputs(&stores, &destination, &first, &expected);

    // `dsobel process` from S3 to S3 with no server: the same bytes.
    let by_cli = format!("s3://{DESTINATION}/cli");
    let (code, said) = process_objects(&source, &by_cli, &aws_env(&weed, SECRET_KEY));
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("299 done"), "{said}");
    check_files(&stores, &by_cli, &expected);

    // The same batch again: every output is current.
    let again = follow(client, &start(client, &source, &destination).id, Duration::from_secs(120));
    let c = again.counts;
    assert_eq!((c.total, c.done, c.failed, c.skipped), (300, 0, 1, 299), "{again:?}");

    // Cancelled soon after it starts: it stops writing within seconds.
    let elsewhere = format!("s3://{DESTINATION}/cancelled");
    let links = start(client, &source, &elsewhere);
    std::thread::sleep(Duration::from_millis(300));
    let cancelled = block_on(client.cancel_batch(&links.id)).expect("cancel");
    assert_eq!(cancelled.state, BatchState::Cancelled);
    let over = follow(client, &links.id, Duration::from_secs(30));
    assert_eq!(over.state, BatchState::Cancelled);
    let count = || {
        block_on(async {
            let objects = stores.open(&elsewhere).unwrap();
            objects
                .list()
                .filter(|o| {
                    std::future::ready(o.as_ref().is_ok_and(|o| !o.key.as_str().starts_with("_manifest")))
                })
                .count()
                .await
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    let settled = count();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(), settled, "outputs still written 3 s after the cancel settled");
    assert!(settled < 299, "the cancel stopped nothing: {settled} outputs");
    drop(serve);
    weed.stop();
}

fn faults() {
    let mut weed = Weed::start().expect("SeaweedFS starts");
    weed.create_bucket(SOURCE);
    weed.create_bucket(DESTINATION);
    let (source, destination) = (format!("s3://{SOURCE}/faults"), format!("s3://{DESTINATION}/faults"));
    let allow = format!("s3://{SOURCE},s3://{DESTINATION}");
    let stores = test_stores(&allow, Some(&weed));
    let mut items = inputs();
    items.retain(|key, _| key.as_str() < "img-120");
    put_all(&stores, &source, &items);
    let expected = expected_outputs(&items);

    let mut stack = Stack::new(&Servers::shared());
    stack.env = aws_env(&weed, SECRET_KEY);
    stack.env.push(("DSOBEL_BATCH_STORES".into(), allow.clone()));
    // Slow items and a short queue allowance keep the listing going for a while.
    let worker = stack.worker(100);
    let _steady = stack.worker(100);
    let lister = stack.serve(&["--batch-queue-ahead", "2"]);
    let taker = stack.serve(&["--batch-queue-ahead", "2"]);
    let client = taker.backend().client().clone();
    let links = start(lister.backend().client(), &source, &destination);
    dsobel_testkit::wait_until(
        Duration::from_secs(60),
        "the batch lists and computes its first items",
        || block_on(client.batch_status(&links.id)).ok().filter(|s| s.counts.ended() >= 5),
    );
    let listing = block_on(client.batch_status(&links.id)).expect("status");
    assert_eq!(listing.state, BatchState::Listing, "still listing when its backend is killed: {listing:?}");
    lister.kill();
    worker.signal("KILL");
    let _replacement = stack.worker(100);
    dsobel_testkit::wait_until(Duration::from_secs(90), "more items end after the kills", || {
        block_on(client.batch_status(&links.id))
            .ok()
            .filter(|s| s.counts.ended() >= listing.counts.ended() + 10)
    });
    weed.restart();
    let over = follow(&client, &links.id, Duration::from_secs(400));
    assert_eq!(over.state, BatchState::Done, "{over:?}");
    let c = over.counts;
    assert_eq!(c.total, items.len() as u64, "every item listed once: {over:?}");
    assert_eq!(c.failed, 1, "only the corrupt item fails: {over:?}");
    assert_eq!(c.done + c.skipped, c.total - 1, "{over:?}");
    check_outputs(&stores, &destination, &over, &expected);
    drop((worker, taker));
    weed.stop();
}

fn embedded_batches() {
    let root = tempfile::tempdir().expect("a folder");
    let (source, destination) = (root.path().join("in"), root.path().join("out"));
    std::fs::create_dir_all(&source).unwrap();
    let mut items = BTreeMap::new();
    for (n, name) in ["q90-420.jpg", "progressive-420.jpg", "q50-420-restart.jpg"].iter().enumerate() {
        items.insert(format!("a/{n}-{name}"), fixture(name));
    }
    items.insert("b.png".into(), test_png(77, 33, 5).0);
    let mut corrupt = fixture("q90-420.jpg");
    corrupt.truncate(300);
    items.insert("broken.jpg".into(), corrupt);
    let allow = format!("file://{}", root.path().display());
    let stores = test_stores(&allow, None);
    let (source_url, destination_url) =
        (format!("file://{}", source.display()), format!("file://{}", destination.display()));
    put_all(&stores, &source_url, &items);
    let serve: Proc = embedded_serve(&["--batch-stores", &allow]);
    let backend = serve.backend();
    let status = follow(
        backend.client(),
        &start(backend.client(), &source_url, &destination_url).id,
        Duration::from_secs(60),
    );
    let c = status.counts;
    assert_eq!((status.state, c.total, c.done, c.failed), (BatchState::Done, 5, 4, 1), "{status:?}");
    let expected = expected_outputs(&items);
    check_outputs(&stores, &destination_url, &status, &expected);

    assert_eq!(backend.metric("dsobel_batch_items_total{outcome=\"done\"}"), 4.0);
    assert_eq!(backend.metric("dsobel_batch_items_total{outcome=\"failed\"}"), 1.0);

    // The same request with an Idempotency-Key twice: one batch.
    let request = BatchRequest {
        source: source_url.clone(),
        destination: format!("file://{}", root.path().join("once").display()),
        options: JobOptions::default(),
    };
    let first = block_on(backend.client().start_batch(&request, Some("key-1"))).expect("started");
    let again = block_on(backend.client().start_batch(&request, Some("key-1"))).expect("answered");
    assert_eq!(first.id, again.id, "a resent request gets the batch the first one started");
    follow(backend.client(), &first.id, Duration::from_secs(60));

    // `dsobel batch` starts and follows a batch, prints its summary, and exits 1: an item failed.
    let by_batch = format!("file://{}", root.path().join("by-batch").display());
    let output = std::process::Command::new(dsobel_testkit::dsobel_binary())
        .args(["batch", &source_url, &by_batch, "--server", backend.client().base(), "--quiet"])
        .output()
        .expect("dsobel batch runs");
    let said = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("done: 5 items, 4 done, 0 skipped, 1 failed"), "{said}");
    assert!(said.contains("/by-batch/_manifest/"), "{said}");
    check_files(&stores, &by_batch, &expected);

    // `dsobel process` between the same kind of locations, with no server: the same bytes, the
    // same naming; run again, every output is current.
    let by_cli = format!("file://{}", root.path().join("cli").display());
    let (code, said) = process_objects(&source_url, &by_cli, &[]);
    assert_eq!(code, 1, "the corrupt item fails the command: {said}");
    assert!(said.contains("broken.jpg: corrupt-image"), "{said}");
    assert!(said.contains("4 done, 0 skipped"), "{said}");
    check_files(&stores, &by_cli, &expected);
    let (_, said) = process_objects(&source_url, &by_cli, &[]);
    assert!(said.contains("0 done, 4 skipped"), "{said}");
    let missing = format!("file://{}", root.path().join("nope").display());
    let request = BatchRequest {
        source: missing,
        destination: destination_url.clone(),
        options: JobOptions::default(),
    };
    let error =
        block_on(backend.client().start_batch(&request, None)).expect_err("a missing folder is refused");
    assert_eq!((error.status(), error.code()), (422, "store-not-found"));
    let (code, said) = process_objects("http://169.254.169.254/x", &by_cli, &[]);
    assert!(code != 0 && said.contains("http"), "{said}");
}

fn refusals() {
    let mut weed = Weed::start().expect("SeaweedFS starts");
    weed.create_bucket(SOURCE);
    let root = tempfile::tempdir().expect("a folder");
    let allow = format!("s3://{SOURCE},s3://dsobel-no-such-bucket,file://{}", root.path().display());
    let refused = |serve: &Proc, source: &str, destination: &str| {
        let request = BatchRequest {
            source: source.into(),
            destination: destination.into(),
            options: JobOptions::default(),
        };
        let error = block_on(serve.backend().client().start_batch(&request, None)).expect_err("refused");
        (error.status(), error.code().to_owned())
    };
    let with_env = |secret: &str| {
        let mut command = std::process::Command::new(dsobel_testkit::dsobel_binary());
        command.args(["serve", "--listen", "127.0.0.1:0", "--batch-stores", &allow]);
        command.envs(aws_env(&weed, secret)).env_remove("DSOBEL_AMQP_URL").env_remove("DSOBEL_REDIS_URL");
        command.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
        let mut proc = dsobel_testkit::process::spawn_reporting(command, "embedded serve");
        dsobel_testkit::process::wait_ready(&mut proc);
        proc
    };
    let serve = with_env(SECRET_KEY);
    let inside = format!("s3://{SOURCE}/in");
    let out = format!("s3://{SOURCE}/out");
    assert_eq!(refused(&serve, "s3://elsewhere/in", &out), (403, "store-not-allowed".into()));
    assert_eq!(refused(&serve, "http://169.254.169.254/latest", &out), (403, "store-not-allowed".into()));
    assert_eq!(refused(&serve, &inside, &format!("{inside}/edges")), (403, "store-not-allowed".into()));
    assert_eq!(refused(&serve, "s3://dsobel-no-such-bucket/x", &out), (422, "store-not-found".into()));
    let bad = with_env("wrong-secret-0123456789");
    let (status, code) = refused(&bad, &inside, &out);
    assert_eq!((status, code.as_str()), (502, "store-unauthorized"));
    let request =
        BatchRequest { source: inside.clone(), destination: out.clone(), options: JobOptions::default() };
    let mut bad_options = serde_json::to_value(&request).unwrap();
    bad_options["options"]["ksize"] = 4.into();
    let answer = serve.backend().http(
        "POST",
        "/batches",
        &[("content-type", "application/json")],
        bad_options.to_string().as_bytes(),
    );
    assert_eq!(answer.map(|a| a.status), Some(400));
    // Nothing was written by any refused batch.
    let stores = test_stores(&allow, Some(&weed));
    let written = block_on(async { stores.open(&out).unwrap().list().count().await });
    assert_eq!(written, 0);
    drop((serve, bad));
    weed.stop();
}
