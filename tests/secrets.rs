//! Secrets never reach the output: an API key and passwords inside the broker and store URLs,
//! given to `dsobel serve` and `dsobel worker` at debug log level, exercised (requests with
//! the key as a bearer token and as `?access_token=`, wrong keys, failed connections), and
//! then searched for in everything the processes printed.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

const API_KEY: &str = "key-7f3a9c1e5b";
const AMQP_PASSWORD: &str = "amqp-pw-51c0ffee";
const REDIS_PASSWORD: &str = "redis-pw-9e77d00d";

/// Runs `dsobel` with `args` and debug logs in `format`, lets `exercise` use it, stops it and
/// returns all it printed on standard output and error.
fn output_of(args: &[&str], format: &str, exercise: impl FnOnce()) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_dsobel"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "debug")
        .env("DSOBEL_LOG_FORMAT", format)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("start dsobel");
    exercise();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    std::fs::read_to_string(out).unwrap() + &std::fs::read_to_string(err).unwrap()
}

fn assert_no_secret(output: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!output.contains(secret), "{secret:?} was printed:\n{output}");
    }
}

#[test]
fn the_api_key_never_reaches_the_logs() {
    for format in ["json", "pretty"] {
        let address = format!("127.0.0.1:{}", free_port());
        let args = ["serve", "--listen", &address, "--api-key", API_KEY];
        let output = output_of(&args, format, || {
            wait_until(Duration::from_secs(20), || http("GET", &address, "/healthz", b"").is_some())
                .expect("serve answers");
            let id = "0".repeat(32);
            let with_token = format!("/status/{id}?access_token={API_KEY}");
            assert_eq!(http("GET", &address, &with_token, b"").unwrap().status, 404, "the key was accepted");
            let wrong = format!("/status/{id}?access_token={API_KEY}x");
            assert_eq!(http("GET", &address, &wrong, b"").unwrap().status, 401);
            // Only GETs may carry the key in the query.
            let upload = format!("/upload?access_token={API_KEY}&threshold=nope");
            assert_eq!(http("POST", &address, &upload, b"x").unwrap().status, 401);
        });
        assert!(output.contains("listening"), "the server logged nothing:\n{output}");
        assert_no_secret(&output, &[API_KEY]);
    }
}

#[test]
fn passwords_in_the_broker_and_store_urls_never_reach_the_logs() {
    // Nothing listens on these ports: both connections fail, and the failure is reported.
    let (amqp_port, redis_port) = (free_port(), free_port());
    let amqp = format!("amqp://dsobel:{AMQP_PASSWORD}@127.0.0.1:{amqp_port}/%2f");
    let redis = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_port}/0");
    let health = format!("127.0.0.1:{}", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let roles: [Vec<&str>; 2] = [
        vec!["worker", "--amqp-url", &amqp, "--redis-url", &redis, "--health-listen", &health],
        vec!["serve", "--listen", &listen, "--amqp-url", &amqp, "--redis-url", &redis, "--api-key", API_KEY],
    ];
    for args in &roles {
        for format in ["json", "pretty"] {
            let output = output_of(args, format, || std::thread::sleep(Duration::from_secs(2)));
            assert!(
                output.contains(&format!("127.0.0.1:{amqp_port}")),
                "the failure does not say where:\n{output}"
            );
            assert_no_secret(&output, &[AMQP_PASSWORD, REDIS_PASSWORD, API_KEY]);
        }
    }
}

#[test]
fn a_refused_password_is_not_printed_either() {
    let Some(servers) = servers("a_refused_password_is_not_printed_either") else { return };
    // The real broker and store, with a password each refuses.
    let amqp = servers.amqp.replacen("guest:guest@", &format!("guest:{AMQP_PASSWORD}@"), 1);
    let redis = servers.redis.replacen("redis://", &format!("redis://default:{REDIS_PASSWORD}@"), 1);
    assert_ne!(amqp, servers.amqp, "the test URL has the user and password to replace");
    let health = format!("127.0.0.1:{}", free_port());
    let args = ["worker", "--amqp-url", &amqp, "--redis-url", &redis, "--health-listen", &health];
    let output = output_of(&args, "json", || std::thread::sleep(Duration::from_secs(3)));
    assert!(
        output.contains("ACCESS_REFUSED") && output.contains("guest:***@"),
        "the refusal was not reported:\n{output}"
    );
    assert_no_secret(&output, &[AMQP_PASSWORD, REDIS_PASSWORD]);
}
