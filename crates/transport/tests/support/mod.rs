//! Redis servers and clusters of a test's own, started from the installed `redis-server`
//! (never the shared one): a test may restart, fill, cut or kill them.
//!
//! Ports are chosen at random and a server that cannot bind its port is started again on
//! another one, so parallel tests never share a server. Everything started is stopped when
//! its handle is dropped, also when the test fails.
//!
//! Without `redis-server` on the `PATH`, [`redis_installed`] says so and the test passes
//! with a message, except when `CI` is set, where it fails.

#![allow(dead_code)] // Each test binary uses a part of this.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `redis-server` and `redis-cli` can be run; prints why a test is skipped when not,
/// and fails under `CI`.
pub fn redis_installed(test: &str) -> bool {
    let found = ["redis-server", "redis-cli"].iter().all(|tool| {
        Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
    });
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: redis-server is not installed (CI is set, so this fails)"
        );
        eprintln!("skipped {test}: redis-server is not installed (apt-get install redis-server)");
    }
    found
}

/// A random port in `range`.
fn random_port(range: std::ops::Range<u16>) -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let spread = u64::from(range.end - range.start);
    range.start + (RandomState::new().hash_one(std::process::id()) % spread) as u16
}

/// Polls `probe` every 50 ms until it is true; panics with `what` after `patience`.
pub fn wait_until(what: &str, patience: Duration, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience;
    while !probe() {
        assert!(Instant::now() < deadline, "{what}: not so within {patience:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `redis-cli` against `port`, with `options` (a password, TLS) before `args`; its output.
pub fn cli(port: u16, options: &[&str], args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(options)
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// One `redis-server` in a folder of its own, daemonised with a pid file.
pub struct Server {
    pub port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
}

impl Server {
    /// Starts `redis-server` with `args` (besides its port and files) on a free port, and
    /// waits until it answers.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(|_| args.iter().map(|a| a.to_string()).collect())
    }

    /// [`Server::start`] with arguments that depend on the port it is given (a TLS port).
    pub fn start_with(args: impl Fn(u16) -> Vec<String>) -> Server {
        for _ in 0..20 {
            let dir = tempfile::tempdir().expect("a folder for the server");
            let port = random_port(20000..30000);
            let server = Server { port, dir, args: args(port) };
            if server.launch() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 20 ports");
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("redis.pid")
    }

    /// Starts the process (again, after [`Server::stop`]); false when it does not answer.
    fn launch(&self) -> bool {
        let _ = std::fs::remove_file(self.pid_file());
        let dir = self.dir.path().display().to_string();
        let status = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "yes", "--dir", &dir])
            .args(["--pidfile", &self.pid_file().display().to_string()])
            .args(["--logfile", &self.dir.path().join("redis.log").display().to_string()])
            .args(&self.args)
            .stdout(Stdio::null())
            .status()
            .expect("run redis-server");
        if !status.success() {
            return false;
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() && self.pid_file().exists() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    /// Starts the server again on its port (with nothing of its data: it keeps none).
    pub fn restart(&self) {
        assert!(self.launch(), "redis-server did not start again on port {}", self.port);
    }

    /// Stops the server at once (SIGKILL) and waits until it is gone.
    pub fn stop(&self) {
        kill_and_wait(&self.pid_file());
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kills the process of `pid_file` with SIGKILL, if it runs, and waits until it is gone.
fn kill_and_wait(pid_file: &Path) {
    let Ok(pid) = std::fs::read_to_string(pid_file) else { return };
    let pid = pid.trim().to_owned();
    let _ = Command::new("kill").args(["-9", &pid]).stderr(Stdio::null()).status();
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let started = Instant::now();
    while proc.exists() && started.elapsed() < Duration::from_secs(10) {
        // A zombie of ours would stay; redis-server daemonised is not our child.
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(pid_file);
}

/// The repository's `scripts/redis-cluster.sh`.
fn cluster_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/redis-cluster.sh")
}

/// A Redis Cluster of three masters and three replicas, started by `scripts/redis-cluster.sh`.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// The first node's port; the nodes are on `base..base + 6`.
    pub base: u16,
    /// The seed list the script printed (for `RedisStore::connect`).
    pub seeds: String,
    /// What `redis-cli` needs besides the port (password, TLS).
    pub cli_options: Vec<String>,
}

impl Cluster {
    /// Starts a cluster on free ports, with the script's `options` (`--password PW`,
    /// `--tls DIR`); `cli_options` are what `redis-cli` then needs.
    pub fn start(options: &[&str], cli_options: &[&str]) -> Cluster {
        for _ in 0..10 {
            let dir = tempfile::tempdir().expect("a folder for the cluster");
            // Nodes on base..base+5 and their cluster bus 10000 higher: both below the
            // ephemeral range (32768 and up), where an outgoing connection may hold a port.
            let base = random_port(12000..22700);
            let output = Command::new("bash")
                .arg(cluster_script())
                .args(["start", &dir.path().display().to_string(), &base.to_string()])
                .args(options)
                .stderr(Stdio::inherit())
                .output()
                .expect("run scripts/redis-cluster.sh");
            let cluster = Cluster {
                dir,
                base,
                seeds: String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().to_owned(),
                cli_options: cli_options.iter().map(|o| o.to_string()).collect(),
            };
            if output.status.success() {
                return cluster;
            }
            eprintln!("the cluster did not start on ports {base}..; trying others");
        }
        panic!("no Redis Cluster could be started");
    }

    /// The six ports.
    pub fn ports(&self) -> Vec<u16> {
        (self.base..self.base + 6).collect()
    }

    /// `redis-cli` against the node on `port`.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let options: Vec<&str> = self.cli_options.iter().map(String::as_str).collect();
        cli(port, &options, args)
    }

    /// Whether the node on `port` runs.
    pub fn is_up(&self, port: u16) -> bool {
        self.cli(port, &["ping"]) == "PONG"
    }

    /// The node id of the node on `port`.
    pub fn id(&self, port: u16) -> String {
        self.cli(port, &["cluster", "myid"])
    }

    /// The port of the master that owns `slot`, as the node on `asked` sees it.
    pub fn owner_of(&self, asked: u16, slot: u16) -> u16 {
        let nodes = self.cli(asked, &["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let port: u16 = fields[1].split(['@', ':']).nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
            for range in &fields[8..] {
                if range.starts_with('[') {
                    continue;
                }
                let (first, last) = range.split_once('-').unwrap_or((range, range));
                let (first, last): (u16, u16) = (first.parse().unwrap(), last.parse().unwrap());
                if (first..=last).contains(&slot) {
                    return port;
                }
            }
        }
        panic!("no master owns slot {slot}:\n{nodes}");
    }

    /// The masters' ports (as a live node sees them), in port order.
    pub fn masters(&self) -> Vec<u16> {
        let asked = self.ports().into_iter().find(|&p| self.is_up(p)).expect("a live node");
        let mut masters: Vec<u16> = self
            .cli(asked, &["cluster", "nodes"])
            .lines()
            .filter(|line| {
                let flags = line.split_whitespace().nth(2).unwrap_or("");
                flags.contains("master") && !flags.contains("fail") && line.split_whitespace().count() > 8
            })
            .filter_map(|line| line.split_whitespace().nth(1)?.split(['@', ':']).nth(1)?.parse().ok())
            .collect();
        masters.sort_unstable();
        masters
    }

    /// The port of the replica of the master on `master`.
    pub fn replica_of(&self, master: u16) -> u16 {
        let id = self.id(master);
        let nodes = self.cli(master, &["cluster", "nodes"]);
        nodes
            .lines()
            .find(|line| line.split_whitespace().nth(3) == Some(id.as_str()))
            .and_then(|line| line.split_whitespace().nth(1)?.split(['@', ':']).nth(1)?.parse().ok())
            .unwrap_or_else(|| panic!("no replica of {master}:\n{nodes}"))
    }

    /// Whether the master on `master` and its replica have the same replication offset.
    pub fn replica_in_sync(&self, master: u16) -> bool {
        let info = self.cli(master, &["info", "replication"]);
        let field = |name: &str| info.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned());
        let Some(offset) = field("master_repl_offset:") else { return false };
        field("slave0:").is_some_and(|replica| replica.contains(&format!("offset={offset},")))
    }

    fn pid_file(&self, port: u16) -> PathBuf {
        self.dir.path().join(port.to_string()).join("redis.pid")
    }

    /// Kills the node on `port` at once (SIGKILL).
    pub fn kill(&self, port: u16) {
        kill_and_wait(&self.pid_file(port));
    }

    /// Starts the node on `port` again, with its cluster configuration (it rejoins, as a
    /// replica if its master role was taken over).
    pub fn restart(&self, port: u16) {
        let config = self.dir.path().join(port.to_string()).join("redis.conf");
        let status =
            Command::new("redis-server").arg(&config).stdout(Stdio::null()).status().expect("redis-server");
        assert!(status.success(), "redis-server {} did not start", config.display());
        wait_until(&format!("node {port} answers"), Duration::from_secs(10), || self.is_up(port));
    }

    /// Waits until every live node reports the cluster ok with every slot served.
    pub fn wait_ok(&self, patience: Duration) {
        wait_until("the cluster is ok", patience, || {
            self.ports().into_iter().filter(|&p| self.is_up(p)).all(|p| {
                let info = self.cli(p, &["cluster", "info"]);
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            })
        });
    }

    /// `redis-cli --cluster reshard`: moves `count` slots from the master on `from` to the
    /// master on `to`, key by key, as an operator would.
    pub fn reshard(&self, from: u16, to: u16, count: u32) {
        let options: Vec<&str> = self.cli_options.iter().map(String::as_str).collect();
        let (from_id, to_id) = (self.id(from), self.id(to));
        let output = Command::new("redis-cli")
            .args(&options)
            .args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
            .args(["--cluster-from", &from_id, "--cluster-to", &to_id])
            .args(["--cluster-slots", &count.to_string(), "--cluster-yes", "--cluster-pipeline", "10"])
            .output()
            .expect("redis-cli --cluster reshard");
        assert!(
            output.status.success(),
            "reshard failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(cluster_script())
            .args(["stop", &self.dir.path().display().to_string()])
            .status();
    }
}
