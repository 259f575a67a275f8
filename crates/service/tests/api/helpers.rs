//! `spawn_app()`: a real `serve` on 127.0.0.1:0 with the in-memory transport, and typed helpers.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use dsobel_kernel::{FilterParams, reference};
use dsobel_service::app::{Serving, serve_with};
use dsobel_service::config::ServeArgs;
use dsobel_service::coordinator::Coordinator;
use dsobel_service::transport::Transport;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

/// A running server.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub coordinator: Arc<Coordinator>,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<Result<(), dsobel_service::error::SetupError>>,
}

/// Starts a server with the given extra flags (e.g. `["--max-jobs-in-flight", "0"]`).
pub async fn spawn_app_with(flags: &[&str]) -> TestApp {
    spawn_app_on(flags, |transport| transport).await
}

/// [`spawn_app_with`] on the in-memory transport as `adapt` changes it (a store that fails
/// on purpose, say).
pub async fn spawn_app_on(flags: &[&str], adapt: impl FnOnce(Transport) -> Transport) -> TestApp {
    let mut argv = vec!["dsobel-test", "--listen", "127.0.0.1:0", "--sweep-interval-ms", "100"];
    if !flags.contains(&"--workers") {
        argv.extend(["--workers", "2"]);
    }
    argv.extend_from_slice(flags);
    let args = Cli::try_parse_from(argv).expect("valid test flags").serve;
    let listener = tokio::net::TcpListener::bind(args.listen).await.expect("bind port 0");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let transport = adapt(Transport::memory(&args.transport));
    let shutdown = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel::<Serving>();
    let server = tokio::spawn(serve_with(args, transport, listener, shutdown.clone(), move |s| {
        let _ = tx.send(s);
    }));
    let serving = rx.await.expect("server started");
    TestApp { address, client: reqwest::Client::new(), coordinator: serving.coordinator, shutdown, server }
}

/// Starts a server with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Opens a connection of its own and sends `POST /upload` declaring `declared` bytes,
    /// followed by `first` of them: the caller sends the rest slowly, or never.
    pub async fn start_upload(&self, declared: usize, first: &[u8]) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let address = self.address.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
        let head = format!("POST /upload HTTP/1.1\r\nHost: {address}\r\nContent-Length: {declared}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("send the head");
        stream.write_all(first).await.expect("send the first bytes");
        stream
    }

    /// Uploads raw bytes with a query string; returns the response.
    pub async fn upload(&self, bytes: Vec<u8>, query: &str) -> reqwest::Response {
        self.client.post(self.url(&format!("/upload{query}"))).body(bytes).send().await.expect("request")
    }

    /// Uploads and returns the job id (asserting 202).
    pub async fn submit(&self, bytes: Vec<u8>, query: &str) -> String {
        let response = self.upload(bytes, query).await;
        assert_eq!(response.status(), 202, "{:?}", response.text().await);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn status(&self, id: &str) -> Value {
        self.client.get(self.url(&format!("/status/{id}"))).send().await.unwrap().json().await.unwrap()
    }

    /// Polls /result until it is not 202 (bounded).
    pub async fn wait_result(&self, id: &str) -> reqwest::Response {
        for _ in 0..400 {
            let response = self.client.get(self.url(&format!("/result/{id}"))).send().await.unwrap();
            if response.status() != 202 {
                return response;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("job {id} did not finish in 10 s");
    }

    /// The value of a metric line, e.g. `dsobel_stitches_total`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.client.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .map(|v| v.trim().parse::<f64>().unwrap())
            })
            .unwrap_or(0.0)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
    }
}

/// A photo-like RGB PNG and its luma, made here so tests need no files.
pub fn test_png(w: u32, h: u32) -> (Vec<u8>, Vec<u8>) {
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let inside =
                ((x as i64 - w as i64 / 2).pow(2) + (y as i64 - h as i64 / 2).pow(2)) < (h as i64 / 3).pow(2);
            let v = ((x * 255 / w.max(1)) as u8).wrapping_add(if inside { 120 } else { 0 });
            rgb.extend([v, (y * 255 / h.max(1)) as u8, v ^ 0x55]);
        }
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.write_header().unwrap().write_image_data(&rgb).unwrap();
    }
    let luma = rgb.chunks(3).map(|p| reference::luma_of_rgb(p[0], p[1], p[2])).collect();
    (bytes, luma)
}

/// Decodes a result PNG to one byte per pixel (1-bit expanded to 0/255).
pub fn decode_result(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buf).unwrap();
    buf.truncate(frame.buffer_size());
    (frame.width, frame.height, buf)
}

/// The scalar reference's answer for a luma image.
pub fn expected(luma: &[u8], w: u32, h: u32, params: &FilterParams) -> Vec<u8> {
    reference::filter_image(luma, w as usize, h as usize, params)
}
