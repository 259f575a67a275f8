//! `dsobel` processes started by the tests from the built binary: a backend or a worker of a
//! test's own stack on port 0, whose address comes back through `--address-file`; the stack's
//! queue deleted when the test ends; `dsobel process` on a buffer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::api::Backend;
use crate::harness::{amqp_url, redis_url};
use crate::wait::{poll_until, wait_for};

/// How long a process may take to report its address and become ready.
const START_LIMIT: Duration = Duration::from_secs(60);

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// Names the `dsobel` binary the tests start (a test of the root package passes
/// `env!("CARGO_BIN_EXE_dsobel")`); the first call wins.
pub fn register_binary(path: &str) {
    let _ = BINARY.set(PathBuf::from(path));
}

/// The `dsobel` binary to start: `DSOBEL_TEST_BIN` when set (to run the tests against another
/// build), else the one given to [`register_binary`].
pub fn dsobel_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DSOBEL_TEST_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    BINARY.get().cloned().expect("register_binary(env!(\"CARGO_BIN_EXE_dsobel\")) first")
}

/// Random hex after `prefix`, for queue names, key namespaces and folders that never collide
/// between runs.
pub fn random_name(prefix: &str) -> String {
    format!("{prefix}-{:016x}", fastrand::u64(..))
}

/// A child process, killed (SIGKILL) when dropped.
pub struct Proc {
    child: Child,
    /// What it is, for messages (`serve 127.0.0.1:41234`).
    pub name: String,
    /// The address it reported (`host:port`): a backend's HTTP listener, a worker's health
    /// endpoints.
    pub address: String,
    /// Its log file, when its stack keeps logs in a folder.
    pub log: Option<PathBuf>,
}

impl Proc {
    /// The process's id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The server at the reported address.
    pub fn backend(&self) -> Backend {
        Backend::new(&self.address)
    }

    /// Sends a signal (`TERM`, `KILL`, `STOP`...).
    pub fn signal(&self, name: &str) {
        send_signal(self.child.id(), name);
    }

    /// Sends SIGTERM and waits (up to `limit`) for the exit status; `None` if still running
    /// then (it is killed when dropped).
    pub fn terminate_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        let mut status = None;
        poll_until(limit, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Sends SIGTERM and waits for the exit status (panics after 30 s).
    pub fn terminate(mut self) -> ExitStatus {
        self.terminate_within(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{} did not stop on SIGTERM within 30 s", self.name))
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends signal `name` to process `pid`.
pub fn send_signal(pid: u32, name: &str) {
    let _ = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).stderr(Stdio::null()).status();
}

/// Starts `command` with `--address-file` (it must listen on port 0) and waits until the
/// process reports the address it bound; panics, with its exit status, if it exits first.
pub fn spawn_reporting(mut command: Command, name: &str) -> Proc {
    let file = std::env::temp_dir().join(random_name("dsobel-address"));
    command.arg("--address-file").arg(&file);
    let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let mut proc = Proc { child, name: name.to_owned(), address: String::new(), log: None };
    let started = Instant::now();
    let address = loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let _ = std::fs::remove_file(&file);
            break text.trim().to_owned();
        }
        if let Some(status) = proc.exited() {
            panic!("{name} exited ({status}) before it reported its address");
        }
        assert!(started.elapsed() < START_LIMIT, "{name} reported no address within {START_LIMIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    proc.name = format!("{name} {address}");
    proc.address = address;
    proc
}

/// Waits until `proc`'s `/readyz` answers `200` (panics after a minute, or if it exits).
pub fn wait_ready(proc: &mut Proc) {
    let backend = proc.backend();
    let name = proc.name.clone();
    wait_for(START_LIMIT, &format!("{name} to be ready"), || {
        if let Some(status) = proc.exited() {
            panic!("{name} exited ({status}) before it was ready");
        }
        backend.is_ready()
    });
}

/// The shared RabbitMQ and Redis the tests use (`DSOBEL_TEST_AMQP_URL`,
/// `DSOBEL_TEST_REDIS_URL`), or others of a test's own.
#[derive(Debug, Clone)]
pub struct Servers {
    /// AMQP URL.
    pub amqp: String,
    /// Redis URL.
    pub redis: String,
}

std::thread_local! {
    /// Whether the test on this thread runs on the Redis Cluster ([`on_cluster`]).
    static ON_CLUSTER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `body` with [`Servers::shared`] naming the Redis Cluster of
/// `DSOBEL_TEST_REDIS_CLUSTER_URL` instead of the single Redis: the same test, on the store
/// that scales (such a test needs [`crate::Need::RedisCluster`]).
pub fn on_cluster(body: fn()) {
    ON_CLUSTER.with(|on| on.set(true));
    body();
}

impl Servers {
    /// The shared ones (a test that uses them needs [`crate::Need::RabbitMq`] and
    /// [`crate::Need::Redis`], or [`crate::Need::RedisCluster`] inside [`on_cluster`]).
    pub fn shared() -> Servers {
        let redis = if ON_CLUSTER.with(|on| on.get()) {
            crate::harness::redis_cluster_url().expect("the harness checked DSOBEL_TEST_REDIS_CLUSTER_URL")
        } else {
            redis_url()
        };
        Servers { amqp: amqp_url(), redis }
    }
}

/// The settings shared by every process of one test's stack: its servers, its own queue and
/// key namespace. The queue (and its dead-letter queue) is deleted when the last copy of the
/// stack goes away.
#[derive(Clone)]
pub struct Stack {
    /// AMQP URL the processes use.
    pub amqp: String,
    /// Redis URL the processes use.
    pub redis: String,
    /// The work queue's name (`dsobel.test-<random>`).
    pub queue: String,
    /// The key namespace.
    pub namespace: String,
    /// Extra environment for every process of the stack.
    pub env: Vec<(String, String)>,
    /// When set, each process writes its log to a file of its own in this folder instead of
    /// the test's standard error.
    pub log_dir: Option<PathBuf>,
    _queues: Arc<QueueCleanup>,
}

impl Stack {
    /// A stack on `servers` with a new queue and namespace.
    pub fn new(servers: &Servers) -> Stack {
        let queue = random_name("dsobel.test");
        Stack {
            amqp: servers.amqp.clone(),
            redis: servers.redis.clone(),
            queue: queue.clone(),
            namespace: random_name("dsobeltest"),
            env: Vec::new(),
            log_dir: None,
            _queues: Arc::new(QueueCleanup { amqp: servers.amqp.clone(), queues: vec![queue] }),
        }
    }

    /// A `dsobel` command with the stack's settings in a clean environment, and the file its
    /// log goes to (with [`Stack::log_dir`]).
    pub fn command(&self, args: &[&str], log_name: &str) -> (Command, Option<PathBuf>) {
        let mut command = Command::new(dsobel_binary());
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DSOBEL_AMQP_URL", &self.amqp)
            .env("DSOBEL_REDIS_URL", &self.redis)
            .env("DSOBEL_QUEUE", &self.queue)
            .env("DSOBEL_NAMESPACE", &self.namespace)
            .env("DSOBEL_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let log = self.log_dir.as_ref().map(|dir| dir.join(format!("{}.log", random_name(log_name))));
        if let Some(log) = &log {
            command.stderr(std::fs::File::create(log).expect("create a process log"));
        }
        (command, log)
    }

    /// Starts `dsobel serve` on port 0 (sweeping every 200 ms unless `extra` says otherwise)
    /// and waits until it is ready.
    pub fn serve(&self, extra: &[&str]) -> Proc {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        if !extra.contains(&"--sweep-interval-ms") {
            args.extend(["--sweep-interval-ms", "200"]);
        }
        args.extend_from_slice(extra);
        let (command, log) = self.command(&args, "serve");
        let mut proc = spawn_reporting(command, "serve");
        proc.log = log;
        wait_ready(&mut proc);
        proc
    }

    /// Starts `dsobel worker` with one slot and its health endpoints on port 0; `delay_ms` is
    /// the fault drill's pause per task.
    pub fn worker(&self, delay_ms: u64) -> Proc {
        self.worker_with(delay_ms, &[])
    }

    /// [`Stack::worker`] with extra flags.
    pub fn worker_with(&self, delay_ms: u64, extra: &[&str]) -> Proc {
        let delay = delay_ms.to_string();
        let mut args = vec!["worker", "--workers", "1", "--prefetch", "1", "--health-listen", "127.0.0.1:0"];
        args.extend(["--drill-strip-delay-ms", &delay]);
        args.extend_from_slice(extra);
        let (command, log) = self.command(&args, "worker");
        let mut proc = spawn_reporting(command, "worker");
        proc.log = log;
        wait_ready(&mut proc);
        proc
    }
}

/// Deletes a test's work and dead-letter queues on drop, with everything in them, so that runs
/// leave nothing behind in the broker (hundreds of forgotten quorum queues slow every later
/// run down). The queues are deleted by name, never declared first, so a queue declared with
/// other arguments (another delivery limit) goes too.
pub struct QueueCleanup {
    amqp: String,
    queues: Vec<String>,
}

impl QueueCleanup {
    /// Deletes `queues` (and each one's `.dead` queue) from the broker at `amqp` when dropped.
    pub fn new(amqp: &str, queues: Vec<String>) -> QueueCleanup {
        QueueCleanup { amqp: amqp.to_owned(), queues }
    }
}

impl Drop for QueueCleanup {
    fn drop(&mut self) {
        let names: Vec<String> = self.queues.iter().flat_map(|q| [q.clone(), format!("{q}.dead")]).collect();
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        let outcome = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), delete_queues(&self.amqp, &names)).await
        });
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not delete the test queues {names:?}: {error}"),
            Err(_) => eprintln!("could not delete the test queues {names:?}: no answer in 20 s"),
        }
    }
}

/// Deletes queues by name (a queue that does not exist is no error).
pub async fn delete_queues(amqp: &str, names: &[String]) -> Result<(), lapin::Error> {
    use lapin::options::QueueDeleteOptions;
    let connection = lapin::Connection::connect(amqp, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    for name in names {
        channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await?;
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

/// Whether queue `name` exists (asked passively: nothing is declared).
pub async fn queue_exists(amqp: &str, name: &str) -> bool {
    queue_depth(amqp, name).await.is_some()
}

/// How many messages wait in queue `name` (not counting those consumers hold), or `None` when
/// there is no such queue (asked passively: nothing is declared).
pub async fn queue_depth(amqp: &str, name: &str) -> Option<u32> {
    use lapin::options::QueueDeclareOptions;
    let connection = lapin::Connection::connect(amqp, lapin::ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("open a channel");
    let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let queue = channel.queue_declare(name.into(), options, lapin::types::FieldTable::default()).await;
    let _ = connection.close(200, "done".into()).await;
    queue.ok().map(|q| q.message_count())
}

/// Starts `dsobel serve` in the embedded mode (no RabbitMQ, no Redis) on port 0 with `extra`
/// flags and waits until it is ready.
pub fn embedded_serve(extra: &[&str]) -> Proc {
    let mut command = Command::new(dsobel_binary());
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("DSOBEL_AMQP_URL")
        .env_remove("DSOBEL_REDIS_URL")
        .env_remove("DSOBEL_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut proc = spawn_reporting(command, "embedded serve");
    wait_ready(&mut proc);
    proc
}

/// `dsobel process -` run on `input`: its exit status, the PNG it wrote and what it said.
pub fn run_process(input: &[u8]) -> std::process::Output {
    run_process_with(input, &[])
}

/// `dsobel process -` with the flags `args`, run on `input`: its exit status, the file it
/// wrote to standard output and what it said.
pub fn run_process_with(input: &[u8], args: &[&str]) -> std::process::Output {
    let mut child = Command::new(dsobel_binary())
        .args(["process", "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dsobel process");
    let mut stdin = child.stdin.take().expect("a pipe");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let output = child.wait_with_output().expect("dsobel process ends");
    let _ = writer.join();
    output
}

/// The PNG `dsobel process` writes for `input`, decoded; `None` when it refuses the input.
pub fn processed_locally(input: &[u8]) -> Option<(u32, u32, Vec<u8>)> {
    let output = run_process(input);
    output.status.success().then(|| crate::images::decode_png(&output.stdout))
}

/// The lines of the JSON logs in `dir` whose message is `message`.
pub fn log_lines(dir: &Path, message: &str) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).expect("log folder").flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        lines.extend(
            text.lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .filter(|line| line["fields"]["message"] == message),
        );
    }
    lines
}

/// Opens a connection to `address`, sends the head of `POST /upload` declaring `body`'s whole
/// length and its first `sent` bytes: the caller sends the rest, or drops the connection.
pub fn start_upload(address: &str, body: &[u8], sent: usize) -> std::net::TcpStream {
    use std::io::Write;
    let mut connection = std::net::TcpStream::connect(address).expect("connect to the backend");
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    connection.write_all(head.as_bytes()).expect("send the request head");
    connection.write_all(&body[..sent]).expect("send the first bytes");
    connection
}
