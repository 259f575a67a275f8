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
    let method = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
    let url = format!("http://{address}{path}");
    let body = body.to_vec();
    RUNTIME.block_on(async move {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().ok()?;
        let response = client
            .request(method, url)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .ok()?;
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
            _queues: std::sync::Arc::new(QueueCleanup { amqp: servers.amqp.clone(), queue }),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
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
        cmd
    }

    /// Starts `dsobel serve` on a free port and waits until it is ready.
    pub fn serve(&self, extra: &[&str]) -> Proc {
        let address = format!("127.0.0.1:{}", free_port());
        let mut args = vec!["serve", "--listen", &address, "--sweep-interval-ms", "200"];
        args.extend_from_slice(extra);
        let child = self.command(&args).spawn().expect("start dsobel serve");
        let proc = Proc { child, name: format!("serve {address}"), address: Some(address.clone()) };
        wait_until(Duration::from_secs(20), || {
            http("GET", &address, "/readyz", b"").is_some_and(|r| r.status == 200)
        })
        .unwrap_or_else(|| panic!("serve on {address} never became ready"));
        proc
    }

    /// Starts `dsobel worker` with one slot; `delay_ms` is the fault drill's pause per strip.
    pub fn worker(&self, delay_ms: u64) -> Proc {
        let health = format!("127.0.0.1:{}", free_port());
        let delay = delay_ms.to_string();
        let args = [
            "worker",
            "--workers",
            "1",
            "--prefetch",
            "1",
            "--health-listen",
            &health,
            "--drill-strip-delay-ms",
            &delay,
        ];
        let child = self.command(&args).spawn().expect("start dsobel worker");
        let proc = Proc { child, name: format!("worker {health}"), address: Some(health.clone()) };
        wait_until(Duration::from_secs(20), || {
            http("GET", &health, "/readyz", b"").is_some_and(|r| r.status == 200)
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
