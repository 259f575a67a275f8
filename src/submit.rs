//! `dsobel submit`: a client of the HTTP API. Uploads files, follows each job on its event
//! stream with a progress bar, and saves the results, so nobody has to write curl loops.
//!
//! Overload answers (429, 503) are retried after their `Retry-After`, a bounded number of times;
//! any other refusal prints one line with the API's error code and the rest carry on.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

/// Arguments of `dsobel submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Image files to send.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Base URL of a dsobel server (or of nginx in front of it).
    #[arg(long, env = "DSOBEL_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API key, when the server requires one.
    #[arg(long, env = "DSOBEL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Output file (one input only).
    #[arg(short, long, value_name = "OUT", conflicts_with = "out_dir")]
    pub output_file: Option<PathBuf>,
    /// Directory for the results (`<stem>-edges.png`); default: beside each input.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Edge threshold T.
    #[arg(long)]
    pub threshold: Option<u16>,
    /// l2 or l1.
    #[arg(long)]
    pub magnitude: Option<String>,
    /// binary or magnitude.
    #[arg(long)]
    pub output: Option<String>,
    /// Strip count (default: the server decides, one per worker).
    #[arg(long)]
    pub fragments: Option<u32>,
    /// Files in flight at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// No progress bars.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Retries of an upload refused with 429 or 503.
const MAX_RETRIES: u32 = 5;

fn output_path(args: &SubmitArgs, input: &Path) -> PathBuf {
    if let Some(out) = &args.output_file {
        return out.clone();
    }
    let stem = input.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
    let name = format!("{stem}-edges.png");
    match &args.out_dir {
        Some(dir) => dir.join(name),
        None => input.with_file_name(name),
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(self.url(path));
        match &self.key {
            Some(k) => request.bearer_auth(k),
            None => request,
        }
    }

    /// Turns an error response into one line: `code: message`.
    async fn refusal(response: reqwest::Response) -> anyhow::Error {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match body["error"]["code"].as_str() {
            Some(code) => anyhow!(
                "{} ({code}, HTTP {})",
                body["error"]["message"].as_str().unwrap_or(""),
                status.as_u16()
            ),
            None => anyhow!("the server answered HTTP {status}"),
        }
    }

    async fn upload(&self, bytes: Vec<u8>, query: &str, bar: &ProgressBar) -> Result<String> {
        for attempt in 0..=MAX_RETRIES {
            let mut request = self.http.post(self.url(&format!("/upload{query}"))).body(bytes.clone());
            if let Some(k) = &self.key {
                request = request.bearer_auth(k);
            }
            let response = request.send().await.with_context(|| format!("cannot reach {}", self.base))?;
            let status = response.status().as_u16();
            if (status == 429 || status == 503) && attempt < MAX_RETRIES {
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .unwrap_or(2)
                    .clamp(1, 60);
                bar.set_message(format!("server busy; retrying in {wait} s"));
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            if status != 202 {
                return Err(Self::refusal(response).await);
            }
            let body: Value = response.json().await.context("unreadable upload answer")?;
            return body["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("upload answer without an id"));
        }
        bail!("the server stayed busy after {MAX_RETRIES} retries")
    }

    /// Follows the job's event stream until it ends; falls back to polling if the stream breaks.
    async fn follow(&self, id: &str, bar: &ProgressBar) -> Result<Value> {
        if let Ok(response) = self.get(&format!("/events/{id}")).send().await
            && response.status().is_success()
        {
            let mut stream = response.bytes_stream();
            let mut buffer = String::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                        let status: Value = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
                        show(bar, &status);
                        if matches!(status["state"].as_str(), Some("done" | "failed")) {
                            return Ok(status);
                        }
                    }
                }
            }
        }
        for _ in 0..3600 {
            let response = self.get(&format!("/status/{id}")).send().await?;
            if !response.status().is_success() {
                return Err(Self::refusal(response).await);
            }
            let status: Value = response.json().await?;
            show(bar, &status);
            if matches!(status["state"].as_str(), Some("done" | "failed")) {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("job {id} did not finish within an hour")
    }

    async fn one(&self, path: &Path, query: &str, out: &Path, bar: &ProgressBar) -> Result<()> {
        let bytes = tokio::fs::read(path).await.with_context(|| format!("cannot read {}", path.display()))?;
        bar.set_message("uploading");
        let id = self.upload(bytes, query, bar).await?;
        let status = self.follow(&id, bar).await?;
        if status["state"] == "failed" {
            bail!(
                "{} ({})",
                status["error"]["message"].as_str().unwrap_or("failed"),
                status["error"]["code"].as_str().unwrap_or("")
            );
        }
        let response = self.get(&format!("/result/{id}")).send().await?;
        if response.status() != 200 {
            return Err(Self::refusal(response).await);
        }
        let png = response.bytes().await?;
        let partial = out.with_extension("png.partial");
        tokio::fs::write(&partial, &png)
            .await
            .with_context(|| format!("cannot write {}", partial.display()))?;
        tokio::fs::rename(&partial, out).await.with_context(|| format!("cannot write {}", out.display()))?;
        bar.set_message(format!("saved {}", out.display()));
        Ok(())
    }
}

fn show(bar: &ProgressBar, status: &Value) {
    let total = status["strips_total"].as_u64().unwrap_or(0);
    bar.set_length(total.max(1));
    bar.set_position(status["strips_done"].as_u64().unwrap_or(0));
    bar.set_message(status["state"].as_str().unwrap_or("").to_owned());
}

fn query(args: &SubmitArgs) -> String {
    let mut parts = Vec::new();
    if let Some(t) = args.threshold {
        parts.push(format!("threshold={t}"));
    }
    if let Some(m) = &args.magnitude {
        parts.push(format!("magnitude={m}"));
    }
    if let Some(o) = &args.output {
        parts.push(format!("output={o}"));
    }
    if let Some(f) = args.fragments {
        parts.push(format!("fragments={f}"));
    }
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

/// Runs `dsobel submit`; returns the exit code.
pub fn run(args: SubmitArgs) -> Result<i32> {
    if args.output_file.is_some() && args.files.len() != 1 {
        bail!(
            "-o/--output-file takes exactly one input ({} given); use --out-dir for several",
            args.files.len()
        );
    }
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = Client {
            http: reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).build()?,
            base: args.server.clone(),
            key: args.api_key.clone().filter(|k| !k.is_empty()),
        };
        let query = query(&args);
        let bars = MultiProgress::with_draw_target(if args.quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
        let style = ProgressStyle::with_template("{prefix:>24} {bar:30.cyan/blue} {pos}/{len} strips  {msg}")
            .expect("valid template");
        let jobs = args.files.iter().map(|path| {
            let bar = bars.add(ProgressBar::new(1).with_style(style.clone()));
            bar.set_prefix(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            let out = output_path(&args, path);
            let (client, query, bars) = (&client, &query, &bars);
            async move {
                let result = client.one(path, query, &out, &bar).await;
                bar.finish();
                if let Err(e) = &result {
                    bars.suspend(|| eprintln!("error: {}: {e:#}", path.display()));
                }
                result.is_ok()
            }
        });
        let outcomes: Vec<bool> =
            futures_util::stream::iter(jobs).buffer_unordered(args.parallel.max(1)).collect().await;
        let failed = outcomes.iter().filter(|ok| !**ok).count();
        if !args.quiet {
            eprintln!(
                "{} of {} images done{}",
                outcomes.len() - failed,
                outcomes.len(),
                if failed > 0 { format!(", {failed} failed") } else { String::new() }
            );
        }
        Ok(if failed == 0 { 0 } else { 1 })
    })
}
