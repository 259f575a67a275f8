//! nginx in front of the backend, as deployed (`deploy/nginx/nginx.conf`, rendered for
//! loopback): a 60 MB upload passes through as it arrives, so nothing lands in nginx's
//! client-body folder (a pod's small ephemeral disk) and the backend stores the upload while it
//! is still arriving; an upload over the limit is refused by nginx with the API's JSON 413.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dsobel_client::{JobId, JobState};
use dsobel_testkit::harness::find_program;
use dsobel_testkit::process::log_lines;
use dsobel_testkit::{Backend, Need, RedisClient, Servers, Stack, Test, random_name, wait_for};

fn main() -> std::process::ExitCode {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    dsobel_testkit::run(vec![Test::new(
        "a_60_mb_upload_passes_through_nginx_as_it_arrives",
        &[Need::NGINX, Need::RabbitMq, Need::Redis],
        a_60_mb_upload_passes_through_nginx_as_it_arrives,
    )])
}

/// nginx with the project's configuration, in front of `backend`; stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    prefix: PathBuf,
}

impl Nginx {
    fn start(backend: &str) -> Nginx {
        let prefix = std::env::temp_dir().join(random_name("dsobel-nginx"));
        std::fs::create_dir_all(&prefix).expect("nginx's folder");
        let template =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx/nginx.conf"))
                .expect("the nginx template");
        let web = concat!(env!("CARGO_MANIFEST_DIR"), "/web");
        // nginx cannot listen on port 0: a random port, and another when that one is taken.
        for _ in 0..20 {
            let port = 20_000 + fastrand::u16(..40_000);
            let rendered = template
                .replace("${NGINX_LISTEN}", &format!("127.0.0.1:{port}"))
                .replace("${DSOBEL_BACKEND}", backend)
                .replace("${WEB_ROOT}", web)
                .replace("${NGINX_TMP}", prefix.to_str().expect("a UTF-8 path"));
            let conf = prefix.join("nginx.conf");
            std::fs::write(&conf, rendered).expect("write nginx.conf");
            // As root, the workers stay root so they can reach the test's folders.
            let globals = if is_root() { "daemon off; user root;" } else { "daemon off;" };
            let log = std::fs::File::create(prefix.join("stderr.log")).expect("nginx's log");
            let mut child = Command::new(find_program("nginx").expect("nginx is installed"))
                .args([
                    "-p",
                    prefix.to_str().unwrap(),
                    "-c",
                    conf.to_str().unwrap(),
                    "-e",
                    "stderr",
                    "-g",
                    globals,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start nginx");
            let up = wait_until_answers(&mut child, port);
            if up {
                return Nginx { child, port, prefix };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("nginx did not start on any of 20 ports: {}", self_log(&prefix));
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Files in nginx's client-body folder (where a buffered request body would go).
    fn buffered_bodies(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        collect_files(&self.prefix.join("nginx-client-body"), &mut files);
        files
    }

    fn log(&self) -> String {
        self_log(&self.prefix)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}

fn self_log(prefix: &Path) -> String {
    std::fs::read_to_string(prefix.join("stderr.log")).unwrap_or_default()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Waits until nginx answers `/healthz` on `port` (true), or exits (false: the port was taken).
fn wait_until_answers(child: &mut Child, port: u16) -> bool {
    for _ in 0..250 {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if dsobel_testkit::api::http("GET", &format!("127.0.0.1:{port}"), "/healthz", &[], b"")
            .is_some_and(|r| r.status == 200)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// The most memory one client connection of `redis` holds (its `tot-mem`, which counts the
/// command it is still receiving).
fn largest_client_memory(redis: &RedisClient) -> u64 {
    redis
        .command(&["CLIENT", "LIST"])
        .text()
        .lines()
        .filter_map(|line| {
            line.split(' ').find_map(|f| f.strip_prefix("tot-mem=")).and_then(|v| v.parse().ok())
        })
        .max()
        .unwrap_or(0)
}

/// A noise PNG of about `megabytes` MB (noise does not compress).
fn large_png(megabytes: usize) -> Vec<u8> {
    let (w, h) = (4000u32, (megabytes * 1_000_000 / (4000 * 3)) as u32);
    let mut rng = fastrand::Rng::with_seed(60);
    let rgb: Vec<u8> = (0..(w * h * 3)).map(|_| rng.u8(..)).collect();
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_compression(png::Compression::Fastest);
    encoder.write_header().unwrap().write_image_data(&rgb).unwrap();
    bytes
}

fn a_60_mb_upload_passes_through_nginx_as_it_arrives() {
    let logs = std::env::temp_dir().join(random_name("dsobel-nginx-logs"));
    std::fs::create_dir_all(&logs).expect("a folder for the logs");
    let mut stack = Stack::new(&Servers::shared());
    stack.log_dir = Some(logs.clone());
    let _worker = stack.worker(0);
    let serve = stack.serve(&[]);
    let nginx = Nginx::start(&serve.backend().address);
    let body = large_png(60);
    assert!(body.len() > 59_000_000, "a 60 MB upload ({} bytes)", body.len());

    let mut connection = TcpStream::connect(nginx.address()).expect("connect to nginx");
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: dsobel\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    connection.write_all(head.as_bytes()).expect("send the head");
    let half = body.len() / 2;
    connection.write_all(&body[..half]).expect("send the first half");
    // Half way: the bytes already flow through nginx and the backend into Redis, where the
    // upload's one SET grows while the client is still sending (with request buffering, nginx
    // would hold them all until the last byte), and nginx keeps none of them on disk.
    let redis = RedisClient::from_url(&Servers::shared().redis);
    wait_for(Duration::from_secs(30), "Redis to be receiving the upload while it arrives", || {
        largest_client_memory(&redis) > 10 << 20
    });
    assert!(nginx.buffered_bodies().is_empty(), "nginx buffered the body: {:?}", nginx.buffered_bodies());
    connection.write_all(&body[half..]).expect("send the second half");
    connection.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut answer = Vec::new();
    connection.read_to_end(&mut answer).expect("read the answer");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let json = answer.split("\r\n\r\n").nth(1).expect("a body");
    let id = JobId::parse(serde_json::from_str::<serde_json::Value>(json).unwrap()["id"].as_str().unwrap())
        .expect("a job id");
    assert!(nginx.buffered_bodies().is_empty(), "nginx buffered the body: {:?}", nginx.buffered_bodies());
    assert!(!nginx.log().contains("buffered to a temporary file"), "{}", nginx.log());

    // The backend stored the upload while it arrived, and the job went through.
    let queued = log_lines(&logs, "job queued");
    assert_eq!(queued.len(), 1, "one job on this stack: {queued:?}");
    assert_eq!(queued[0]["fields"]["stored_as_received"], true, "{}", queued[0]);
    let status = Backend::new(&nginx.address()).wait_job(&id, Duration::from_secs(120));
    assert_eq!(status.state, JobState::Done, "{status:?}");

    // Over the limit: refused by nginx itself, with the API's JSON.
    let mut connection = TcpStream::connect(nginx.address()).expect("connect to nginx");
    let head =
        "POST /upload HTTP/1.1\r\nHost: dsobel\r\nContent-Length: 67108865\r\nConnection: close\r\n\r\n";
    connection.write_all(head.as_bytes()).expect("send the head");
    connection.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let _ = connection.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("payload-too-large"), "{answer}");
    let _ = std::fs::remove_dir_all(&logs);
}
