//! Shared harness of the end-to-end tests that start the built `dsobel` binary as real
//! processes: an HTTP helper on the CLI's own client, free ports, test images, the real RabbitMQ and Redis (with a
//! plain skip message on machines that lack them, and a failure in CI), and child processes
//! that are killed when the test ends.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A response of [`http`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// The runtime of [`http`]'s client, shared by every test thread.
static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime")
});

/// One request on the same HTTP client the CLI uses (`reqwest`); `None` when the server cannot
/// be reached or does not answer in 30 s.
pub fn http(method: &str, address: &str, path: &str, body: &[u8]) -> Option<Response> {
    http_with(method, address, path, &[], body)
}

/// [`http`] with extra request headers.
pub fn http_with(
    method: &str,
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Response> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
    let url = format!("http://{address}{path}");
    let body = body.to_vec();
    let headers: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    RUNTIME.block_on(async move {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().ok()?;
        let mut request =
            client.request(method, url).header("content-type", "application/octet-stream").body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = response.bytes().await.ok()?.to_vec();
        Some(Response { status, headers, body })
    })
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Random hex, for queue names and key namespaces that never collide between runs.
pub fn random_name(prefix: &str) -> String {
    format!("{prefix}-{:016x}", fastrand::u64(..))
}

/// The real servers, or `None` (with a plain message) when they are not reachable outside CI.
pub struct Servers {
    pub amqp: String,
    pub redis: String,
}

pub fn servers(test: &str) -> Option<Servers> {
    let amqp = std::env::var("DSOBEL_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let redis = std::env::var("DSOBEL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let reachable = |port: u16| {
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).is_ok()
    };
    if reachable(5672) && reachable(6379) {
        return Some(Servers { amqp, redis });
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: RabbitMQ (5672) and Redis (6379) must be running in CI");
    }
    eprintln!(
        "skipped {test}: RabbitMQ and Redis are not reachable on 127.0.0.1 (start them, or set DSOBEL_TEST_AMQP_URL and DSOBEL_TEST_REDIS_URL)"
    );
    None
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub address: Option<String>,
}

impl Proc {
    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        signal(&self.child, "TERM");
        let status = wait_exit(&mut self.child, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{} did not stop on SIGTERM", self.name));
        std::mem::forget(self);
        status
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::forget(self);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status();
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The settings shared by every process of one test's stack.
#[derive(Clone)]
pub struct Stack {
    pub amqp: String,
    pub redis: String,
    pub queue: String,
    pub namespace: String,
    /// Extra environment for every process of the stack.
    pub env: Vec<(String, String)>,
    /// When set, each process writes its log to a file of its own in this folder (named after
    /// its role and address) instead of the test's standard error.
    pub log_dir: Option<std::path::PathBuf>,
    /// Deletes the stack's queues when the last copy of the stack goes away.
    _queues: std::sync::Arc<QueueCleanup>,
}

/// Deletes a test's work and dead-letter queues on drop, so that runs leave nothing behind in
/// the broker (hundreds of forgotten quorum queues slow every later run down).
struct QueueCleanup {
    amqp: String,
    queue: String,
}

impl Drop for QueueCleanup {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        let config = dsobel_transport::QueueConfig { name: self.queue.clone(), ..Default::default() };
        let outcome = runtime.block_on(async {
            let queue = dsobel_transport::RabbitQueue::connect(&self.amqp, config).await?;
            queue.delete_queues().await
        });
        if let Err(error) = outcome {
            eprintln!("could not delete the test queue {}: {error:#}", self.queue);
        }
    }
}

impl Stack {
    pub fn new(servers: &Servers) -> Stack {
        let queue = random_name("dsobel.test");
        Stack {
            amqp: servers.amqp.clone(),
            redis: servers.redis.clone(),
            queue: queue.clone(),
            namespace: random_name("dsobeltest"),
            env: Vec::new(),
            log_dir: None,
            _queues: std::sync::Arc::new(QueueCleanup { amqp: servers.amqp.clone(), queue }),
        }
    }

    fn command(&self, args: &[&str], log_name: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dsobel"));
        cmd.args(args)
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
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.log_dir {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{}.log", log_name.replace(':', "-"))))
                .expect("open a process log");
            cmd.stderr(log);
        }
        cmd
    }

    /// Starts `dsobel serve` on a free port and waits until it is ready.
    pub fn serve(&self, extra: &[&str]) -> Proc {
        self.serve_at(&format!("127.0.0.1:{}", free_port()), extra)
    }

    /// Starts `dsobel serve` listening on `address` and waits until it is ready.
    pub fn serve_at(&self, address: &str, extra: &[&str]) -> Proc {
        let mut args = vec!["serve", "--listen", address, "--sweep-interval-ms", "200"];
        args.extend_from_slice(extra);
        let child = self.command(&args, &format!("serve-{address}")).spawn().expect("start dsobel serve");
        let proc = Proc { child, name: format!("serve {address}"), address: Some(address.to_owned()) };
        wait_until(Duration::from_secs(60), || {
            http("GET", address, "/readyz", b"").is_some_and(|r| r.status == 200)
        })
        .unwrap_or_else(|| panic!("serve on {address} never became ready"));
        proc
    }

    /// Starts `dsobel worker` with one slot; `delay_ms` is the fault drill's pause per strip.
    pub fn worker(&self, delay_ms: u64) -> Proc {
        self.worker_at(&format!("127.0.0.1:{}", free_port()), delay_ms)
    }

    /// [`Stack::worker`] with its health endpoint on `health`.
    pub fn worker_at(&self, health: &str, delay_ms: u64) -> Proc {
        let delay = delay_ms.to_string();
        let args = [
            "worker",
            "--workers",
            "1",
            "--prefetch",
            "1",
            "--health-listen",
            health,
            "--drill-strip-delay-ms",
            &delay,
        ];
        let child = self.command(&args, &format!("worker-{health}")).spawn().expect("start dsobel worker");
        let proc = Proc { child, name: format!("worker {health}"), address: Some(health.to_owned()) };
        wait_until(Duration::from_secs(60), || {
            http("GET", health, "/readyz", b"").is_some_and(|r| r.status == 200)
        })
        .unwrap_or_else(|| panic!("worker {health} never became ready"));
        proc
    }
}

/// Polls `check` every 20 ms until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A metric's value from a `/metrics` page (0 when absent).
pub fn metric(address: &str, name: &str) -> f64 {
    let Some(page) = http("GET", address, "/metrics", b"") else { return 0.0 };
    String::from_utf8_lossy(&page.body)
        .lines()
        .find_map(|l| {
            l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// Waits for a job to leave queued/processing; returns its final status.
pub fn wait_job(address: &str, id: &str, limit: Duration) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_until(limit, || {
        if let Some(r) = http("GET", address, &format!("/status/{id}"), b"")
            && r.status == 200
        {
            last = r.json();
            return last["state"] == "done" || last["state"] == "failed";
        }
        false
    });
    last
}

/// A photo-like RGB PNG and its luma.
pub fn test_png(w: u32, h: u32, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let inside =
                ((x as i64 - w as i64 / 2).pow(2) + (y as i64 - h as i64 / 3).pow(2)) < (h as i64 / 4).pow(2);
            let base = (x * 200 / w.max(1) + y * 55 / h.max(1)) as u8;
            let v = base.wrapping_add(if inside { 90 } else { 0 }).wrapping_add(rng.u8(..8));
            rgb.extend([v, v / 2 + (y % 64) as u8, 255 - v]);
        }
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.write_header().unwrap().write_image_data(&rgb).unwrap();
    }
    let luma = rgb.chunks(3).map(|p| dsobel_kernel::reference::luma_of_rgb(p[0], p[1], p[2])).collect();
    (bytes, luma)
}

/// Decodes a PNG result to one byte per pixel.
pub fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buf).unwrap();
    buf.truncate(frame.buffer_size());
    (frame.width, frame.height, buf)
}

/// Uploads and returns the job id.
pub fn submit(address: &str, png: &[u8], query: &str) -> String {
    let r = http("POST", address, &format!("/upload{query}"), png).expect("backend reachable");
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    r.json()["id"].as_str().unwrap().to_owned()
}

/// Fetches a finished job's PNG and checks it against the scalar reference.
pub fn assert_exact(address: &str, id: &str, luma: &[u8], w: u32, h: u32) {
    let r = http("GET", address, &format!("/result/{id}"), b"").expect("backend reachable");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (dw, dh, pixels) = decode_png(&r.body);
    assert_eq!((dw, dh), (w, h));
    let want = dsobel_kernel::reference::filter_image(luma, w as usize, h as usize, &Default::default());
    assert!(pixels == want, "job {id}: result differs from the reference");
}

/// A loopback TCP proxy in front of a server, with the faults a network has: cut (every open
/// connection closed and new ones refused, as a dead server or a partition looks), latency
/// (each chunk held back a while in each direction), and loss as TCP shows it to a program (a
/// lost segment stalls its connection for a retransmission timeout, here 200–600 ms, and
/// everything behind it waits).
pub struct Proxy {
    pub port: u16,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    up: std::sync::atomic::AtomicBool,
    /// Added to every chunk, in milliseconds.
    latency_ms: std::sync::atomic::AtomicU64,
    /// Chance per chunk, in thousandths, of a stall.
    stall_per_mille: std::sync::atomic::AtomicU64,
    open: std::sync::Mutex<Vec<TcpStream>>,
}

impl Proxy {
    /// A proxy on a free loopback port in front of `127.0.0.1:target`.
    pub fn start(target: u16) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = std::sync::Arc::new(ProxyState::default());
        state.up.store(true, Ordering::SeqCst);
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !shared.up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                if let Ok(mut open) = shared.open.lock() {
                    open.retain(|s| s.peer_addr().is_ok());
                    open.extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                }
                let (client2, server2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                forward(client, server2, shared.clone());
                forward(server, client2, shared.clone());
            }
        });
        Proxy { port, state }
    }

    /// Closes every open connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.state.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for stream in self.state.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Lets connections through again, with no latency and no loss.
    pub fn restore(&self) {
        self.set_latency(0);
        self.set_loss(0);
        self.state.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Holds every chunk back `ms` milliseconds in each direction.
    pub fn set_latency(&self, ms: u64) {
        self.state.latency_ms.store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// Stalls a connection for 200–600 ms on `per_mille` of the chunks it carries.
    pub fn set_loss(&self, per_mille: u64) {
        self.state.stall_per_mille.store(per_mille, std::sync::atomic::Ordering::SeqCst);
    }
}

/// One direction of a proxied connection: a reader stamps each chunk with the moment it may go
/// on, a writer sends the chunks in order, each no sooner than its stamp.
fn forward(mut from: TcpStream, mut to: TcpStream, state: std::sync::Arc<ProxyState>) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let (chunks, pending) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
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
        let _ = from.shutdown(std::net::Shutdown::Read);
    });
    std::thread::spawn(move || {
        for (due, chunk) in pending {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

/// A `redis-server` of the test's own on a spare port, never the shared one; killed when
/// dropped. With a folder, it keeps an append-only file there (fsync every second, as the
/// deployment runs it); without one, it keeps nothing.
pub struct OwnRedis {
    pub port: u16,
    dir: Option<std::path::PathBuf>,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts the server; `None` when `redis-server` is not installed.
    pub fn start(port: u16, dir: Option<&std::path::Path>) -> Option<OwnRedis> {
        let mut command = Command::new("redis-server");
        command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
        match dir {
            Some(dir) => command.args(["--appendonly", "yes", "--dir"]).arg(dir),
            None => command.args(["--appendonly", "no"]),
        };
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok()?;
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(OwnRedis { port, dir: dir.map(|d| d.to_owned()), child: Some(child) })
    }

    fn stop(&mut self, signal_name: &str) {
        if let Some(mut child) = self.child.take() {
            signal(&child, signal_name);
            wait_exit(&mut child, Duration::from_secs(30)).expect("redis-server stops");
        }
    }

    /// SIGTERM, as a rescheduled pod gets it (the server writes its append-only file out and
    /// exits), then a new server on the same port and folder.
    pub fn restart_gracefully(&mut self) {
        self.stop("TERM");
        *self = OwnRedis::start(self.port, self.dir.as_deref()).expect("restart redis-server");
    }

    /// SIGKILL, then a new server on the same port and folder: it reads its append-only file
    /// back, less what it had not yet written to disk (up to the last second).
    pub fn crash_and_restart(&mut self) {
        self.stop("KILL");
        *self = OwnRedis::start(self.port, self.dir.as_deref()).expect("restart redis-server");
    }

    /// SIGKILL, then a new server on the same port with nothing of the old data: a server
    /// without persistence restarting.
    pub fn restart_empty(&mut self) {
        self.stop("KILL");
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir).expect("recreate the Redis folder");
        }
        *self = OwnRedis::start(self.port, self.dir.as_deref()).expect("restart redis-server");
    }

    /// Sends one command (in the inline protocol) and returns the raw reply.
    fn command(&self, line: &str) -> String {
        use std::io::{BufRead, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream.write_all(format!("{line}\r\n").as_bytes()).expect("send to redis");
        let mut reply = String::new();
        std::io::BufReader::new(stream).read_line(&mut reply).expect("redis answers");
        reply
    }

    pub fn flush_all(&self) {
        assert_eq!(self.command("FLUSHALL"), "+OK\r\n");
    }

    /// Every key, each with its TTL in seconds (-1: none).
    pub fn keys_with_ttl(&self) -> Vec<(String, i64)> {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--scan"])
            .output()
            .expect("run redis-cli --scan");
        let keys: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
        keys.into_iter()
            .map(|key| {
                let reply = self.command(&format!("TTL {key}"));
                let ttl = reply.trim().trim_start_matches(':').parse().unwrap_or(-3);
                (key, ttl)
            })
            .collect()
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

/// `dsobel process -` run on `input`: its exit status, the PNG it wrote and what it said.
pub fn run_process(input: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dsobel"))
        .args(["process", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dsobel process");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input).unwrap();
    child.wait_with_output().unwrap()
}

/// The PNG `dsobel process` writes for `input`, decoded; `None` when it refuses the input.
pub fn processed_locally(input: &[u8]) -> Option<(u32, u32, Vec<u8>)> {
    let output = run_process(input);
    output.status.success().then(|| decode_png(&output.stdout))
}

/// A JPEG of the codec's test fixtures.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/codec/tests/fixtures/libjpeg")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of the logs in `dir` whose message is `message`, as JSON.
pub fn log_lines(dir: &std::path::Path, message: &str) -> Vec<serde_json::Value> {
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

/// Starts `POST /upload` of `body` on a connection of its own, declaring its whole length,
/// and sends its first `sent` bytes: the caller sends the rest, or drops the connection.
pub fn start_upload(address: &str, body: &[u8], sent: usize) -> TcpStream {
    use std::io::Write;
    let mut connection = TcpStream::connect(address).expect("connect to the backend");
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    connection.write_all(head.as_bytes()).expect("send the request head");
    connection.write_all(&body[..sent]).expect("send the first bytes");
    connection
}

/// A JPEG of `size` (`WIDTHxHEIGHT`) with a restart marker every MCU row, written in `dir`:
/// `dsobel gen-image`, then `jpegtran -restart 1`. `None` (with a note) where jpegtran is
/// missing, except in CI, where that fails.
pub fn restart_jpeg(dir: &std::path::Path, size: &str) -> Option<Vec<u8>> {
    let plain = dir.join(format!("{size}.jpg"));
    let restart = dir.join(format!("{size}-restart.jpg"));
    let made = Command::new(env!("CARGO_BIN_EXE_dsobel"))
        .args(["gen-image", "--size", size, "-o"])
        .arg(&plain)
        .output()
        .expect("run dsobel gen-image");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let Ok(marked) =
        Command::new("jpegtran").args(["-restart", "1", "-outfile"]).arg(&restart).arg(&plain).status()
    else {
        assert!(std::env::var_os("CI").is_none(), "jpegtran is not installed (CI is set, so this fails)");
        eprintln!("skipped: jpegtran is not installed (apt-get install libjpeg-turbo-progs)");
        return None;
    };
    assert!(marked.success(), "jpegtran failed");
    Some(std::fs::read(restart).expect("read the JPEG"))
}

/// Starts `dsobel serve` in the embedded mode (no RabbitMQ, no Redis) on a free port and waits
/// until it is ready.
pub fn embedded_serve() -> Proc {
    let address = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_dsobel"))
        .args(["serve", "--listen", &address])
        .env_remove("DSOBEL_AMQP_URL")
        .env_remove("DSOBEL_REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dsobel serve");
    let proc = Proc { child, name: "embedded serve".into(), address: Some(address.clone()) };
    wait_until(Duration::from_secs(20), || {
        http("GET", &address, "/readyz", b"").is_some_and(|r| r.status == 200)
    })
    .expect("the embedded server starts");
    proc
}
