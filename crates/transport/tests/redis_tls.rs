//! The Redis adapters over TLS (`rediss://`) with a password, on one server and on a Redis
//! Cluster of the test's own, whose certificates are made here by `openssl` and signed by a
//! certificate authority of the test's own.
//!
//! The adapters trust the authorities of the system, or those of `SSL_CERT_FILE`, read when a
//! process first connects: so the checks run in a child process of this test binary
//! (`tls_checks`) started with `SSL_CERT_FILE` naming the test's authority.
//!
//! Needs `redis-server` (built with TLS), `redis-cli` and `openssl`; without them the test
//! says so and passes, except when `CI` is set, where it fails.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use dsobel_transport::{Notifier, RedisNotifier, RedisStore, Store};
use support::{Cluster, Server, redis_installed};

const PASSWORD: &str = "tls-s3cret";

/// Makes `ca.crt`, and `server.crt` and `server.key` for 127.0.0.1 signed by it, in `dir`.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
        assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    let days = ["-days", "2"];
    run(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-newkey",
        "rsa:2048",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        days[0],
        days[1],
        "-subj",
        "/CN=dsobel test authority",
    ]);
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "rsa:2048",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        days[0],
        days[1],
        "-extfile",
        "server.ext",
    ]);
}

fn openssl_installed() -> bool {
    let found = Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "openssl is not installed (CI is set, so this fails)");
        eprintln!("skipped tls_in_both_modes: openssl is not installed");
    }
    found
}

#[test]
fn tls_in_both_modes() {
    if !redis_installed("tls_in_both_modes") || !openssl_installed() {
        return;
    }
    let certificates = tempfile::tempdir().expect("a folder for the certificates");
    let dir = certificates.path();
    make_certificates(dir);
    let file = |name: &str| dir.join(name).display().to_string();
    let server = Server::start_with(|port| {
        let tls = ["--port", "0", "--tls-port", &port.to_string(), "--tls-auth-clients", "no"];
        let mut args: Vec<String> = tls.iter().map(|a| a.to_string()).collect();
        for (option, name) in [
            ("--tls-cert-file", "server.crt"),
            ("--tls-key-file", "server.key"),
            ("--tls-ca-cert-file", "ca.crt"),
        ] {
            args.extend([option.to_owned(), file(name)]);
        }
        args.extend(["--requirepass".to_owned(), PASSWORD.to_owned()]);
        args
    });
    let ca = file("ca.crt");
    let cluster = Cluster::start(
        &["--tls", &dir.display().to_string(), "--password", PASSWORD],
        &["--tls", "--cacert", &ca, "-a", PASSWORD, "--no-auth-warning"],
    );
    assert!(cluster.seeds.starts_with("rediss://"), "{}", cluster.seeds);
    let output = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", "tls_checks", "--include-ignored", "--nocapture", "--test-threads", "1"])
        .env("SSL_CERT_FILE", &ca)
        .env("DSOBEL_TEST_TLS_SINGLE_URL", format!("rediss://:{PASSWORD}@127.0.0.1:{}/2", server.port))
        .env("DSOBEL_TEST_TLS_CLUSTER_URL", &cluster.seeds)
        .output()
        .expect("run the checks");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("test tls_checks ... ok"),
        "the checks:\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by tls_in_both_modes, with its certificate authority in SSL_CERT_FILE"]
async fn tls_checks() {
    for variable in ["DSOBEL_TEST_TLS_SINGLE_URL", "DSOBEL_TEST_TLS_CLUSTER_URL"] {
        let url =
            std::env::var(variable).unwrap_or_else(|_| panic!("{variable} is set by tls_in_both_modes"));
        let store = RedisStore::connect(&url).await.unwrap_or_else(|e| panic!("{variable}: {e}"));
        assert_eq!(store.is_cluster(), variable.contains("CLUSTER"));
        let ttl = Duration::from_secs(60);
        // Small values (the general client) and large ones (the bulk path), on every shard.
        for n in 0..12 {
            let (small, large) = (format!("tls:{{{n}}}:small"), format!("tls:{{{n}}}:large"));
            store.put(&small, Bytes::from_static(b"small"), ttl).await.expect("put small");
            assert_eq!(store.get(&small).await.expect("get").as_deref(), Some(&b"small"[..]));
            let value: Bytes = (0..300_000u32).map(|i| (i % 253) as u8).collect::<Vec<_>>().into();
            store.put(&large, value.clone(), ttl).await.expect("put large");
            assert_eq!(store.get_range(&large, 0..300_000).await.expect("get_range"), Some(value.clone()));
            let mut parts = store.put_in_parts(&large, 300_000, ttl).await.expect("parts").expect("a sink");
            parts.write(&[&value[..100_000], &value[100_000..]]).await.expect("write parts");
            parts.finish().await.expect("finish");
            assert_eq!(store.get(&large).await.expect("get"), Some(value));
        }
        let shards = store.memory().await.expect("memory");
        assert_eq!(shards.len(), if store.is_cluster() { 3 } else { 1 }, "{shards:?}");
        // Sharded wake-ups.
        let notifier = RedisNotifier::connect(&url).await.expect("connect the notifier");
        let listener = notifier.listen().await.expect("listen");
        let channels: Vec<String> = (0..12).map(|n| format!("dsobel:job:{{tls-{n}}}:events")).collect();
        for channel in &channels {
            listener.subscribe(channel).await.expect("subscribe");
            notifier.publish(channel, "over TLS").await.expect("publish");
            let heard =
                tokio::time::timeout(Duration::from_secs(5), listener.next()).await.expect("heard").unwrap();
            assert_eq!((&heard.channel, heard.message.as_str()), (channel, "over TLS"));
        }
    }
    // Without TLS, the same servers refuse to talk.
    let plain = std::env::var("DSOBEL_TEST_TLS_SINGLE_URL").unwrap().replace("rediss://", "redis://");
    assert!(RedisStore::connect(&plain).await.is_err(), "a plain connection to a TLS port");
}
