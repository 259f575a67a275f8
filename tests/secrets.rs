//! Secrets never reach the output: an API key and passwords inside the broker and store URLs,
//! given to `dsobel serve` and `dsobel worker` at debug log level, exercised (requests with
//! the key as a bearer token and as `?access_token=`, wrong keys, failed connections), and
//! then searched for in everything the processes printed.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use dsobel_testkit::api::http;
use dsobel_testkit::process::send_signal;
use dsobel_testkit::{ClosedPort, Need, Servers, Test, poll_until, random_name, wait_for, wait_until};

fn main() -> std::process::ExitCode {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    dsobel_testkit::run(vec![
        Test::new("the_api_key_never_reaches_the_logs", &[], the_api_key_never_reaches_the_logs),
        Test::new(
            "passwords_in_the_broker_and_store_urls_never_reach_the_logs",
            &[],
            passwords_in_the_broker_and_store_urls_never_reach_the_logs,
        ),
        Test::new(
            "a_refused_password_is_not_printed_either",
            &[Need::RabbitMq, Need::Redis],
            a_refused_password_is_not_printed_either,
        ),
    ])
}

const API_KEY: &str = "key-7f3a9c1e5b";
const AMQP_PASSWORD: &str = "amqp-pw-51c0ffee";
const REDIS_PASSWORD: &str = "redis-pw-9e77d00d";

/// Runs `dsobel` with `args` (and `--address-file`) and debug logs in `format`, lets `exercise`
/// use it (given the address it reported, once it reported one: `None` for a process that
/// never listens), stops it and returns all it printed on standard output and error.
fn output_of(
    args: &[&str],
    format: &str,
    listens: bool,
    exercise: impl FnOnce(Option<&str>, &Printed),
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let address_file: PathBuf = dir.path().join(random_name("address"));
    let mut child = Command::new(dsobel_testkit::dsobel_binary())
        .args(args)
        .arg("--address-file")
        .arg(&address_file)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "debug")
        .env("DSOBEL_LOG_FORMAT", format)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("start dsobel");
    let address = listens.then(|| {
        wait_until(Duration::from_secs(20), "dsobel to report its address", || {
            std::fs::read_to_string(&address_file).ok().map(|a| a.trim().to_owned())
        })
    });
    exercise(address.as_deref(), &Printed { out: out.clone(), err: err.clone() });
    send_signal(child.id(), "TERM");
    poll_until(Duration::from_secs(10), || child.try_wait().ok().flatten().is_some());
    let _ = child.kill();
    let _ = child.wait();
    std::fs::read_to_string(out).unwrap() + &std::fs::read_to_string(err).unwrap()
}

/// Where a process's output goes.
struct Printed {
    out: PathBuf,
    err: PathBuf,
}

impl Printed {
    /// Waits until the process has printed `words` (its own report of what it did).
    fn wait_for(&self, words: &str) {
        wait_for(Duration::from_secs(20), &format!("the output to say {words:?}"), || {
            let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
            read(&self.out).contains(words) || read(&self.err).contains(words)
        });
    }
}

fn assert_no_secret(output: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!output.contains(secret), "{secret:?} was printed:\n{output}");
    }
}

fn the_api_key_never_reaches_the_logs() {
    for format in ["json", "pretty"] {
        let args = ["serve", "--listen", "127.0.0.1:0", "--api-key", API_KEY];
        let output = output_of(&args, format, true, |address, _| {
            let address = address.expect("serve reported its address");
            wait_for(Duration::from_secs(20), "serve to answer", || {
                http("GET", address, "/healthz", &[], b"").is_some()
            });
            let id = "0".repeat(32);
            let with_token = format!("/status/{id}?access_token={API_KEY}");
            let status = |path: &str| http("GET", address, path, &[], b"").unwrap().status;
            assert_eq!(status(&with_token), 404, "the key was accepted");
            assert_eq!(status(&format!("/status/{id}?access_token={API_KEY}x")), 401);
            // Only GETs may carry the key in the query.
            let upload = format!("/upload?access_token={API_KEY}&threshold=nope");
            assert_eq!(http("POST", address, &upload, &[], b"x").unwrap().status, 401);
        });
        assert!(output.contains("listening"), "the server logged nothing:\n{output}");
        assert_no_secret(&output, &[API_KEY]);
    }
}

fn passwords_in_the_broker_and_store_urls_never_reach_the_logs() {
    // Nothing listens on these ports: both connections fail, and the failure is reported.
    let (amqp_port, redis_port) = (ClosedPort::new(), ClosedPort::new());
    let amqp = format!("amqp://dsobel:{AMQP_PASSWORD}@127.0.0.1:{}/%2f", amqp_port.port());
    let redis = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}/0", redis_port.port());
    let roles: [Vec<&str>; 2] = [
        vec!["worker", "--amqp-url", &amqp, "--redis-url", &redis, "--health-listen", "127.0.0.1:0"],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--amqp-url",
            &amqp,
            "--redis-url",
            &redis,
            "--api-key",
            API_KEY,
        ],
    ];
    let where_ = format!("127.0.0.1:{}", amqp_port.port());
    for args in &roles {
        for format in ["json", "pretty"] {
            // The connection fails and the process says so: the event this waits for.
            let output = output_of(args, format, false, |_, printed| printed.wait_for(&where_));
            assert!(output.contains(&where_), "the failure does not say where:\n{output}");
            assert_no_secret(&output, &[AMQP_PASSWORD, REDIS_PASSWORD, API_KEY]);
        }
    }
}

fn a_refused_password_is_not_printed_either() {
    let servers = Servers::shared();
    // The real broker and store, with a password each refuses.
    let amqp = servers.amqp.replacen("guest:guest@", &format!("guest:{AMQP_PASSWORD}@"), 1);
    let redis = servers.redis.replacen("redis://", &format!("redis://default:{REDIS_PASSWORD}@"), 1);
    assert_ne!(amqp, servers.amqp, "the test URL has the user and password to replace");
    let args = ["worker", "--amqp-url", &amqp, "--redis-url", &redis, "--health-listen", "127.0.0.1:0"];
    let output = output_of(&args, "json", false, |_, printed| printed.wait_for("ACCESS_REFUSED"));
    assert!(
        output.contains("ACCESS_REFUSED") && output.contains("guest:***@"),
        "the refusal was not reported:\n{output}"
    );
    assert_no_secret(&output, &[AMQP_PASSWORD, REDIS_PASSWORD]);
}
