//! `spawn_app()`: a real `serve` on 127.0.0.1:0 with the in-memory transport, and typed helpers
//! (the test images, the reference's expectation, metrics and waiting come from the test kit).

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
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
    TestApp {
        address,
        client: dsobel_client::http_builder().build().expect("an HTTP client"),
        coordinator: serving.coordinator,
        shutdown,
        server,
    }
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

    /// The typed client of this server.
    pub fn typed(&self) -> dsobel_client::Client {
        dsobel_client::Client::with_http(self.client.clone(), &self.address, None)
    }

    /// Uploads through the typed client and returns the job id (asserting 202).
    pub async fn submit(&self, bytes: Vec<u8>, query: &str) -> String {
        dsobel_testkit::api::submit(&self.typed(), bytes, query).await.to_string()
    }

    pub async fn status(&self, id: &str) -> Value {
        self.client.get(self.url(&format!("/status/{id}"))).send().await.unwrap().json().await.unwrap()
    }

    /// Polls /result until it is not 202 (10 s at most).
    pub async fn wait_result(&self, id: &str) -> reqwest::Response {
        dsobel_testkit::wait_until_async(Duration::from_secs(10), &format!("job {id} to finish"), || async {
            let response = self.client.get(self.url(&format!("/result/{id}"))).send().await.unwrap();
            (response.status() != 202).then_some(response)
        })
        .await
    }

    /// Polls /status until the job is in `state` (10 s at most); returns that status.
    pub async fn wait_state(&self, id: &str, state: &str) -> Value {
        dsobel_testkit::wait_until_async(
            Duration::from_secs(10),
            &format!("job {id} to be {state}"),
            || async {
                let status = self.status(id).await;
                (status["state"] == state).then_some(status)
            },
        )
        .await
    }

    /// The value of a metric line, e.g. `dsobel_stitches_total` (panics when it is missing).
    pub async fn metric(&self, name: &str) -> f64 {
        dsobel_testkit::api::metric(&self.client, &self.address, name).await
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

/// A photo-like RGB PNG and its luma ([`dsobel_testkit::test_png`] with a seed of its size).
pub fn test_png(w: u32, h: u32) -> (Vec<u8>, Vec<u8>) {
    dsobel_testkit::test_png(w, h, u64::from(w) << 32 | u64::from(h))
}

pub use dsobel_testkit::{decode_png as decode_result, expected};
