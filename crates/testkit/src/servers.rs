//! Servers of a test's own and the network between: `redis-server` and a RabbitMQ node on a
//! random loopback port (a server cannot take port 0, so each start picks a candidate port
//! and tries another when that one turns out taken: no probe-then-bind race), a TCP proxy that
//! cuts, delays and stalls connections, a port that refuses connections, and a small Redis
//! client for looking into a store.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{find_program, rabbitmq_server};
use crate::process::{random_name, send_signal};
use crate::wait::poll_until;

/// How many candidate ports a server start tries.
const PORT_TRIES: usize = 20;

/// A candidate loopback port for a server of a test's own, below the usual ephemeral range.
fn candidate_port() -> u16 {
    fastrand::u16(20_000..32_000)
}

/// A Redis reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR ...`.
    Error(String),
    /// `:3`.
    Integer(i64),
    /// A bulk string (`None`: nil).
    Bulk(Option<Vec<u8>>),
    /// An array (`None`: nil).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text (a status, or a bulk string).
    pub fn text(&self) -> String {
        match self {
            Reply::Status(s) | Reply::Error(s) => s.clone(),
            Reply::Integer(n) => n.to_string(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            other => format!("{other:?}"),
        }
    }

    /// The elements of an array reply, each as text.
    pub fn strings(&self) -> Vec<String> {
        match self {
            Reply::Array(Some(items)) => items.iter().map(Reply::text).collect(),
            other => panic!("not an array: {other:?}"),
        }
    }
}

/// A small Redis client over one connection per command (RESP, binary-safe), for tests that
/// look into a store or change it behind the service's back. Given a Redis Cluster's seed
/// list, it follows `MOVED` for a key's command and asks every seed for `KEYS`.
#[derive(Debug, Clone)]
pub struct RedisClient {
    /// `host:port`.
    pub address: String,
    password: Option<String>,
    database: Option<String>,
    /// The other seeds of a cluster.
    others: Vec<String>,
}

impl RedisClient {
    /// A client of the server of `url` (`redis://[:password@]host[:port][/db]`), or of a
    /// cluster by a comma-separated seed list.
    pub fn from_url(url: &str) -> RedisClient {
        if let Some((first, rest)) = url.split_once(',') {
            let mut client = RedisClient::from_url(first);
            client.others = rest.split(',').map(|seed| crate::harness::host_port(seed, 6379)).collect();
            return client;
        }
        let address = crate::harness::host_port(url, 6379);
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let password = authority
            .rsplit_once('@')
            .and_then(|(credentials, _)| credentials.split_once(':').map(|(_, p)| p.to_owned()))
            .filter(|p| !p.is_empty());
        let database = Some(path.trim_matches('/').to_owned()).filter(|db| !db.is_empty());
        RedisClient { address, password, database, others: Vec::new() }
    }

    /// A client of `127.0.0.1:port` with `password`.
    pub fn local(port: u16, password: Option<&str>) -> RedisClient {
        RedisClient {
            address: format!("127.0.0.1:{port}"),
            password: password.map(str::to_owned),
            database: None,
            others: Vec::new(),
        }
    }

    fn connect(&self) -> std::io::Result<(TcpStream, BufReader<TcpStream>)> {
        let stream = TcpStream::connect(&self.address)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = stream;
        for prelude in [
            self.password.as_ref().map(|p| vec!["AUTH", p.as_str()]),
            self.database.as_ref().map(|d| vec!["SELECT", d.as_str()]),
        ]
        .into_iter()
        .flatten()
        {
            writer.write_all(&encode(&prelude))?;
            if let Reply::Error(e) = read_reply(&mut reader)? {
                return Err(std::io::Error::other(format!("{}: {e}", prelude[0])));
            }
        }
        Ok((writer, reader))
    }

    /// Sends one command; the reply, or why none came. A cluster's `MOVED` is followed.
    pub fn try_command(&self, args: &[&str]) -> std::io::Result<Reply> {
        let (mut writer, mut reader) = self.connect()?;
        writer.write_all(&encode(args))?;
        match read_reply(&mut reader)? {
            Reply::Error(e) if e.starts_with("MOVED ") => {
                let to = e.rsplit(' ').next().unwrap_or_default().to_owned();
                RedisClient { address: to, others: Vec::new(), ..self.clone() }.try_command(args)
            }
            reply => Ok(reply),
        }
    }

    /// Sends one command and returns the reply (panics when the server does not answer).
    pub fn command(&self, args: &[&str]) -> Reply {
        self.try_command(args).unwrap_or_else(|e| panic!("redis {} {:?}: {e}", self.address, args))
    }

    /// The keys matching `pattern` (`KEYS`: fine on a test's own namespace), on every seed of
    /// a cluster.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = self.command(&["KEYS", pattern]).strings();
        for other in &self.others {
            let node = RedisClient { address: other.clone(), others: Vec::new(), ..self.clone() };
            keys.extend(node.command(&["KEYS", pattern]).strings());
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Whether `key` exists.
    pub fn exists(&self, key: &str) -> bool {
        self.command(&["EXISTS", key]) == Reply::Integer(1)
    }

    /// Empties every database (only ever on a server of the test's own).
    pub fn flush_all(&self) {
        assert_eq!(self.command(&["FLUSHALL"]), Reply::Status("OK".into()));
    }

    /// Every key, each with its TTL in seconds (-1: none).
    pub fn keys_with_ttl(&self) -> Vec<(String, i64)> {
        self.keys("*")
            .into_iter()
            .map(|key| {
                let ttl = match self.command(&["TTL", &key]) {
                    Reply::Integer(ttl) => ttl,
                    _ => -3,
                };
                (key, ttl)
            })
            .collect()
    }
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend(format!("${}\r\n", arg.len()).as_bytes());
        out.extend(arg.as_bytes());
        out.extend(b"\r\n");
    }
    out
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the connection closed"));
    }
    let line = line.trim_end_matches("\r\n");
    let bad = || std::io::Error::other(format!("unreadable reply {line:?}"));
    let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
    Ok(match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Integer(rest.parse().map_err(|_| bad())?),
        "$" => match rest.parse::<i64>().map_err(|_| bad())? {
            n if n < 0 => Reply::Bulk(None),
            n => {
                let mut data = vec![0; n as usize + 2];
                reader.read_exact(&mut data)?;
                data.truncate(n as usize);
                Reply::Bulk(Some(data))
            }
        },
        "*" => match rest.parse::<i64>().map_err(|_| bad())? {
            n if n < 0 => Reply::Array(None),
            n => Reply::Array(Some((0..n).map(|_| read_reply(reader)).collect::<Result<_, _>>()?)),
        },
        _ => return Err(bad()),
    })
}

/// A `redis-server` of the test's own on a random loopback port, never the shared one; killed
/// when dropped. With a folder, it keeps an append-only file there (fsync every second, as the
/// deployment runs it); without one, it keeps nothing. A restart tries the same port first and
/// another when that one was taken meanwhile: read [`OwnRedis::port`] after each.
pub struct OwnRedis {
    /// The port it listens on now.
    pub port: u16,
    dir: Option<PathBuf>,
    password: Option<String>,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts a server (a test that calls this needs [`crate::Need::REDIS_SERVER`]).
    pub fn start(dir: Option<&Path>) -> OwnRedis {
        OwnRedis::start_with_password(dir, None)
    }

    /// [`OwnRedis::start`] with `requirepass`.
    pub fn start_with_password(dir: Option<&Path>, password: Option<&str>) -> OwnRedis {
        let mut redis = OwnRedis {
            port: 0,
            dir: dir.map(Path::to_owned),
            password: password.map(str::to_owned),
            child: None,
        };
        redis.boot(None);
        redis
    }

    /// `redis://127.0.0.1:PORT/` (with the password, if any).
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// A client of this server.
    pub fn client(&self) -> RedisClient {
        RedisClient::local(self.port, self.password.as_deref())
    }

    /// Starts the server on `prefer` if given, else (or if that one is taken) on a random port,
    /// and waits until *this* process answers there (`INFO server` names its process id).
    fn boot(&mut self, prefer: Option<u16>) {
        let ports = prefer.into_iter().chain(std::iter::repeat_with(candidate_port)).take(PORT_TRIES);
        for port in ports {
            let mut command = Command::new(find_program("redis-server").expect("redis-server is installed"));
            command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
            match &self.dir {
                Some(dir) => command.args(["--appendonly", "yes", "--dir"]).arg(dir),
                None => command.args(["--appendonly", "no"]),
            };
            if let Some(password) = &self.password {
                command.args(["--requirepass", password]);
            }
            let mut child =
                command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start redis-server");
            let client = RedisClient::local(port, self.password.as_deref());
            let pid = format!("process_id:{}", child.id());
            let mut exited = false;
            let ours = poll_until(Duration::from_secs(20), || {
                exited = matches!(child.try_wait(), Ok(Some(_)));
                exited || client.try_command(&["INFO", "server"]).is_ok_and(|info| info.text().contains(&pid))
            });
            if ours && !exited {
                self.port = port;
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(exited, "redis-server on port {port} neither answered nor exited in 20 s");
        }
        panic!("redis-server could not start on any of {PORT_TRIES} ports");
    }

    fn stop(&mut self, signal: &str) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), signal);
            let stopped = poll_until(Duration::from_secs(30), || matches!(child.try_wait(), Ok(Some(_))));
            assert!(stopped, "redis-server did not stop on SIG{signal}");
        }
    }

    /// SIGKILL, and the server stays down.
    pub fn kill(&mut self) {
        self.stop("KILL");
    }

    /// SIGTERM, as a rescheduled pod gets it (the server writes its append-only file out and
    /// exits), then a new server on the same folder.
    pub fn restart_gracefully(&mut self) {
        self.stop("TERM");
        self.boot(Some(self.port));
    }

    /// SIGKILL, then a new server on the same folder: it reads its append-only file back, less
    /// what it had not yet written to disk (up to the last second).
    pub fn crash_and_restart(&mut self) {
        self.stop("KILL");
        self.boot(Some(self.port));
    }

    /// SIGKILL, then a new server with nothing of the old data: a server without persistence
    /// restarting.
    pub fn restart_empty(&mut self) {
        self.stop("KILL");
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir).expect("recreate the Redis folder");
        }
        self.boot(Some(self.port));
    }

    /// Empties the store.
    pub fn flush_all(&self) {
        self.client().flush_all();
    }

    /// Every key with its TTL ([`RedisClient::keys_with_ttl`]).
    pub fn keys_with_ttl(&self) -> Vec<(String, i64)> {
        self.client().keys_with_ttl()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A RabbitMQ node of the test's own: its own name, data folder and (random) ports; stopped
/// when dropped. A restart keeps the node's name and data and tries its ports first; when one
/// was taken meanwhile it moves (read [`OwnRabbit::port`] after each, or put a [`Proxy`] in
/// front and retarget it).
pub struct OwnRabbit {
    /// The AMQP port it listens on now.
    pub port: u16,
    dist_port: u16,
    node: String,
    dir: PathBuf,
    child: Option<Child>,
    /// When the node first started.
    pub born: Instant,
}

impl OwnRabbit {
    /// Starts a node with its data in `dir` (a test that calls this needs
    /// [`crate::Need::RabbitMqServer`]).
    pub fn start(dir: &Path) -> OwnRabbit {
        std::fs::create_dir_all(dir).expect("the node's folder");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("enabled_plugins");
        std::fs::write(dir.join("rabbitmq.conf"), "").expect("rabbitmq.conf");
        std::fs::write(dir.join("rabbitmq-env.conf"), "").expect("rabbitmq-env.conf");
        let mut rabbit = OwnRabbit {
            port: 0,
            dist_port: 0,
            node: format!("{}@localhost", random_name("dsobel-test-rabbit")),
            dir: dir.to_owned(),
            child: None,
            born: Instant::now(),
        };
        rabbit.boot(None);
        rabbit
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("log").join(format!("{}.log", self.node))
    }

    /// Starts the node on `prefer` (AMQP and distribution ports) if given, else (or if either
    /// is taken) on random ones, and waits until its own log says it listens.
    fn boot(&mut self, prefer: Option<(u16, u16)>) {
        use std::os::unix::process::CommandExt;
        let ports = prefer.into_iter().chain(std::iter::repeat_with(|| (candidate_port(), candidate_port())));
        for (port, dist_port) in ports.take(PORT_TRIES) {
            let logged_before = std::fs::metadata(self.log_file()).map_or(0, |m| m.len());
            let dir = &self.dir;
            let mut child = Command::new(rabbitmq_server().expect("rabbitmq-server is installed"))
                .current_dir(dir)
                .env("HOME", dir)
                .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
                .env("RABBITMQ_NODENAME", &self.node)
                .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                .env("RABBITMQ_NODE_PORT", port.to_string())
                .env("RABBITMQ_DIST_PORT", dist_port.to_string())
                .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
                .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
                .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
                .env("RABBITMQ_LOG_BASE", dir.join("log"))
                .env("ERL_EPMD_ADDRESS", "127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start rabbitmq-server");
            let listening = format!("started TCP listener on 127.0.0.1:{port}");
            let mut exited = false;
            let started = poll_until(Duration::from_secs(120), || {
                exited = matches!(child.try_wait(), Ok(Some(_)));
                let log = std::fs::read(self.log_file()).unwrap_or_default();
                let new = log.get(logged_before as usize..).unwrap_or_default();
                exited || String::from_utf8_lossy(new).contains(&listening)
            });
            if started && !exited {
                (self.port, self.dist_port) = (port, dist_port);
                self.child = Some(child);
                return;
            }
            stop_group(&mut child, "KILL");
            assert!(exited, "the RabbitMQ node on port {port} neither started nor exited in 120 s");
        }
        panic!("the RabbitMQ node could not start on any of {PORT_TRIES} port pairs");
    }

    /// `signal` to the whole node (its Erlang VM and helpers), then the same node started
    /// again on its data.
    pub fn restart_after(&mut self, signal: &str) {
        self.stop(signal);
        self.boot(Some((self.port, self.dist_port)));
    }

    fn stop(&mut self, signal: &str) {
        if let Some(mut child) = self.child.take() {
            stop_group(&mut child, signal);
        }
        // The Erlang VM may outlive the start script by a moment.
        let port = self.port;
        poll_until(Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}

/// `signal` to a process group, then SIGKILL to it if it is still there after a minute.
fn stop_group(child: &mut Child, signal: &str) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args([&format!("-{signal}"), "--", &group]).stderr(Stdio::null()).status();
    if !poll_until(Duration::from_secs(60), || matches!(child.try_wait(), Ok(Some(_)))) {
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
    }
    let _ = child.wait();
}

impl Drop for OwnRabbit {
    fn drop(&mut self) {
        self.stop("KILL");
    }
}

/// A loopback port on which nothing listens, held (bound, never listening) so that nothing
/// else takes it while a test needs connections there to be refused.
pub struct ClosedPort {
    socket: tokio::net::TcpSocket,
}

impl ClosedPort {
    /// A new one.
    pub fn new() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket.bind(([127, 0, 0, 1], 0).into()).expect("bind a loopback port");
        ClosedPort { socket }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.socket.local_addr().expect("a bound socket").port()
    }
}

impl Default for ClosedPort {
    fn default() -> Self {
        ClosedPort::new()
    }
}

/// A loopback TCP proxy in front of a server, with the faults a network has: cut (every open
/// connection closed and new ones refused, as a dead server or a partition looks), latency
/// (each chunk held back a while in each direction), and loss as TCP shows it to a program (a
/// lost segment stalls its connection for a retransmission timeout, here 200–600 ms, and
/// everything behind it waits). It listens on a port of its own (bound on port 0), which
/// stays when the server behind it moves ([`Proxy::retarget`]).
pub struct Proxy {
    /// The proxy's port.
    pub port: u16,
    state: Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    up: AtomicBool,
    target: AtomicU16,
    /// Added to every chunk, in milliseconds.
    latency_ms: AtomicU64,
    /// Chance per chunk, in thousandths, of a stall.
    stall_per_mille: AtomicU64,
    /// Bytes passed on to the server so far.
    upstream_bytes: AtomicU64,
    open: Mutex<Vec<TcpStream>>,
}

impl Proxy {
    /// A proxy on a loopback port of its own in front of `127.0.0.1:target`.
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let state = Arc::new(ProxyState::default());
        state.up.store(true, Ordering::SeqCst);
        state.target.store(target, Ordering::SeqCst);
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !shared.up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", shared.target.load(Ordering::SeqCst)))
                else {
                    continue;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else { continue };
                if let Ok(mut open) = shared.open.lock() {
                    open.retain(|s| s.peer_addr().is_ok());
                    if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                        open.extend([c, s]);
                    }
                }
                forward(client, server2, shared.clone(), true);
                forward(server, client2, shared.clone(), false);
            }
        });
        Proxy { port, state }
    }

    /// How many bytes clients have sent through to the server so far.
    pub fn upstream_bytes(&self) -> u64 {
        self.state.upstream_bytes.load(Ordering::SeqCst)
    }

    /// Sends new connections to `127.0.0.1:target` from now on.
    pub fn retarget(&self, target: u16) {
        self.state.target.store(target, Ordering::SeqCst);
    }

    /// Closes every open connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.state.up.store(false, Ordering::SeqCst);
        for stream in self.state.open.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Lets connections through again, with no latency and no loss.
    pub fn restore(&self) {
        self.set_latency(0);
        self.set_loss(0);
        self.state.up.store(true, Ordering::SeqCst);
    }

    /// Holds every chunk back `ms` milliseconds in each direction.
    pub fn set_latency(&self, ms: u64) {
        self.state.latency_ms.store(ms, Ordering::SeqCst);
    }

    /// Stalls a connection for 200–600 ms on `per_mille` of the chunks it carries.
    pub fn set_loss(&self, per_mille: u64) {
        self.state.stall_per_mille.store(per_mille, Ordering::SeqCst);
    }
}

/// One direction of a proxied connection: a reader stamps each chunk with the moment it may go
/// on, a writer sends the chunks in order, each no sooner than its stamp.
fn forward(mut from: TcpStream, mut to: TcpStream, state: Arc<ProxyState>, upstream: bool) {
    let (chunks, pending) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let counter = state.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut hold = Duration::from_millis(state.latency_ms.load(Ordering::Relaxed));
            if fastrand::u64(..1000) < state.stall_per_mille.load(Ordering::Relaxed) {
                hold += Duration::from_millis(fastrand::u64(200..600));
            }
            if chunks.send((Instant::now() + hold, buf[..n].to_vec())).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Read);
    });
    std::thread::spawn(move || {
        for (due, chunk) in pending {
            let now = Instant::now();
            if due > now {
                // The chunk's due time: the latency and stalls this proxy plays, not a wait.
                std::thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
            if upstream {
                counter.upstream_bytes.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}
