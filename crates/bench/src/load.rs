//! `dsobel bench`: closed-loop clients against one dsobel, cell after cell (image ×
//! concurrency), with a CSV row per request, a live progress bar and a summary table.
//!
//! Closed loop: each of the `c` clients sends its next request only when the previous one has
//! been downloaded, so the server is never offered more than `c` jobs at once and the latency
//! measured is the one a user of that load would see. Every loop is bounded: by a request
//! count, by a duration, and each request by a timeout. With no `--url`, the benchmark starts
//! the embedded server (memory transport, worker tasks on all cores) inside its own process
//! on a free loopback port, so `dsobel bench` alone measures this machine.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser};
use dsobel_service::app::serve_with;
use dsobel_service::config::ServeArgs;
use dsobel_service::transport::Transport;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::client::{Target, one_request};
use crate::images::{BenchImage, ImageSize, load_images};
use crate::record::{CsvWriter, Record};
use crate::stats::Report;

/// The load: which images, how many clients, how many requests, how long.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// An image file to send (repeatable).
    #[arg(long = "image", value_name = "FILE")]
    pub images: Vec<PathBuf>,
    /// A generated image to send: 1mb (1920×1280 JPEG), 10mb (6000×4000) or WIDTHxHEIGHT
    /// (repeatable; default 1mb for `bench`, 1mb and 10mb for `bench matrix`, when no --image).
    #[arg(long = "size", value_name = "SIZE")]
    pub sizes: Vec<ImageSize>,
    /// Concurrency levels: clients running at once, one cell per level.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub concurrency: Vec<usize>,
    /// Recorded requests per cell (with --duration, whichever ends first).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Seconds of recorded requests per cell (requests running at the end finish).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Requests per cell sent before recording starts (not recorded).
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// Longest time for one request (upload, wait and download), in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub timeout: f64,
    /// Upload options as a query string (e.g. `threshold=80&output=magnitude&fragments=4`).
    #[arg(long, default_value = "")]
    pub query: String,
    /// Bearer token, when the server requires one.
    #[arg(long, env = "DSOBEL_API_KEY", hide_env_values = true, value_parser = dsobel_service::config::secret)]
    pub api_key: Option<dsobel_service::config::SecretString>,
}

impl LoadArgs {
    /// Checks the numbers, so a typo cannot start an unbounded or empty run.
    pub fn validate(&self) -> Result<()> {
        if self.concurrency.is_empty() || self.concurrency.contains(&0) {
            bail!("--concurrency needs levels of 1 or more");
        }
        if self.concurrency.iter().any(|&c| c > 1024) {
            bail!("--concurrency above 1024 is not supported");
        }
        if self.requests == Some(0) {
            bail!("--requests must be at least 1");
        }
        if let Some(d) = self.duration
            && !(d > 0.0 && d <= 86_400.0)
        {
            bail!("--duration must be between 0 and 86400 seconds");
        }
        if !(self.timeout > 0.0 && self.timeout <= 86_400.0) {
            bail!("--timeout must be between 0 and 86400 seconds");
        }
        Ok(())
    }

    /// The request-sending settings against `base`.
    pub fn target(&self, base: &str) -> Target {
        Target {
            base: base.trim_end_matches('/').to_owned(),
            query: self.query.trim_start_matches('?').to_owned(),
            api_key: self.api_key.clone(),
            timeout: Duration::from_secs_f64(self.timeout),
        }
    }
}

/// Arguments of `dsobel bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Base URL of a running dsobel (e.g. http://127.0.0.1:8080). Unset: an embedded server
    /// is started inside this process (memory transport, all cores).
    #[arg(long)]
    pub url: Option<String>,
    /// The load.
    #[command(flatten)]
    pub load: LoadArgs,
    /// Label of the `workers` column (the generator cannot know how many workers serve the
    /// URL). Default: `embedded` without --url, `unknown` with it.
    #[arg(long)]
    pub workers_label: Option<String>,
    /// Worker tasks of the embedded server (default: number of cores).
    #[arg(long)]
    pub embedded_workers: Option<usize>,
    /// Write one row per request to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Draw the plots (PNG) into this folder at the end.
    #[arg(long, value_name = "DIR")]
    pub plot_dir: Option<PathBuf>,
}

/// `dsobel bench`: runs the benchmark, prints the summary; the exit code is 1 when any
/// request failed.
pub async fn run(args: BenchArgs) -> Result<i32> {
    let report = bench(args.clone()).await?;
    print!("{}", report.table());
    if let Some(csv) = &args.csv {
        eprintln!("rows written to {}", csv.display());
    }
    if let Some(dir) = &args.plot_dir {
        for path in crate::plot::plot_records(&report.records, dir)? {
            eprintln!("plot written to {}", path.display());
        }
    }
    Ok(report.exit_code())
}

/// Runs the benchmark and returns what it measured (what [`run`] prints).
pub async fn bench(args: BenchArgs) -> Result<Report> {
    args.load.validate()?;
    eprintln!("preparing images…");
    let images = load_images(&args.load.images, &args.load.sizes)?;
    let mut csv = args.csv.as_deref().map(CsvWriter::create).transpose()?;
    let max_concurrency = args.load.concurrency.iter().copied().max().unwrap_or(1);
    let (base, embedded) = match &args.url {
        Some(url) => (url.clone(), None),
        None => {
            let server =
                Embedded::start(args.embedded_workers, max_concurrency, args.load.api_key.clone()).await?;
            (server.base.clone(), Some(server))
        }
    };
    let label = args
        .workers_label
        .clone()
        .unwrap_or_else(|| if embedded.is_some() { "embedded".to_owned() } else { "unknown".to_owned() });
    let started = Instant::now();
    let records = run_cells(&args.load, &base, &label, &images, csv.as_mut(), started).await;
    if let Some(server) = embedded {
        server.stop().await;
    }
    Ok(Report::new(records?))
}

/// An embedded `dsobel serve` running inside this process on a free loopback port.
pub struct Embedded {
    /// Its base URL.
    pub base: String,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<Result<(), dsobel_service::error::SetupError>>,
}

#[derive(Parser)]
struct ServeCli {
    #[command(flatten)]
    serve: ServeArgs,
}

impl Embedded {
    /// Starts the server; `workers` worker tasks (default: all cores); room for at least
    /// `clients` jobs at once so the closed loop is never refused.
    pub async fn start(
        workers: Option<usize>,
        clients: usize,
        api_key: Option<dsobel_service::config::SecretString>,
    ) -> Result<Embedded> {
        let in_flight = clients.max(64).to_string();
        let mut argv = vec!["dsobel-bench", "--listen", "127.0.0.1:0", "--max-jobs-in-flight", &in_flight];
        let workers = workers.map(|w| w.max(1).to_string());
        if let Some(w) = &workers {
            argv.extend(["--workers", w]);
        }
        let mut args = ServeCli::try_parse_from(argv).context("embedded server settings")?.serve;
        args.api_key = api_key;
        let listener = tokio::net::TcpListener::bind(args.listen).await.context("cannot bind 127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let transport = Transport::memory(&args.transport);
        let shutdown = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(serve_with(args, transport, listener, shutdown.clone(), move |_| {
            let _ = tx.send(());
        }));
        rx.await.context("the embedded server did not start")?;
        Ok(Embedded { base, shutdown, server })
    }

    /// Stops the server (bounded wait).
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.server).await;
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
fn progress_bar(length: Option<u64>, message: String) -> ProgressBar {
    let bar = match length {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    bar.set_draw_target(target);
    let template = if length.is_some() {
        "{msg:<28} [{bar:30}] {pos}/{len} {elapsed_precise} {per_sec}"
    } else {
        "{spinner} {msg:<28} {pos} done {elapsed_precise} {per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs every cell (image × concurrency) against `base` and returns the recorded requests,
/// each also written to `csv` as it finishes. Without --requests nor --duration, 20 requests
/// per cell.
pub async fn run_cells(
    load: &LoadArgs,
    base: &str,
    workers_label: &str,
    images: &[BenchImage],
    mut csv: Option<&mut CsvWriter>,
    started: Instant,
) -> Result<Vec<Record>> {
    let target = Arc::new(load.target(base));
    let http = dsobel_client::http_builder()
        .pool_max_idle_per_host(load.concurrency.iter().copied().max().unwrap_or(1))
        .build()
        .context("HTTP client")?;
    let client = dsobel_client::Client::with_http(http, &target.base, target.api_key.clone());
    let requests = match (load.requests, load.duration) {
        (None, None) => Some(20),
        (r, _) => r,
    };
    let duration = load.duration.map(Duration::from_secs_f64);
    let mut all = Vec::new();
    for image in images {
        let image = Arc::new(image.clone());
        for &concurrency in &load.concurrency {
            let bar = progress_bar(
                requests.filter(|_| duration.is_none()),
                format!("w={workers_label} {} c={concurrency}", image.label),
            );
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Record>();
            let counter = Arc::new(AtomicU64::new(0));
            let phase_start = Arc::new(OnceLock::<Instant>::new());
            let total = requests.map(|r| r + load.warmup).unwrap_or(u64::MAX);
            let warmup = load.warmup;
            let mut clients = Vec::new();
            for _ in 0..concurrency {
                let (client, target, image, tx) = (client.clone(), target.clone(), image.clone(), tx.clone());
                let (counter, phase_start) = (counter.clone(), phase_start.clone());
                clients.push(tokio::spawn(async move {
                    loop {
                        let i = counter.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        if i >= warmup {
                            let phase = *phase_start.get_or_init(Instant::now);
                            if duration.is_some_and(|d| phase.elapsed() >= d) {
                                break;
                            }
                        }
                        let record = one_request(&client, &target, &image, concurrency, started).await;
                        if i >= warmup && tx.send(record).is_err() {
                            break;
                        }
                    }
                }));
            }
            drop(tx);
            while let Some(mut record) = rx.recv().await {
                record.workers = workers_label.to_owned();
                if let Some(csv) = csv.as_deref_mut() {
                    csv.write(&record)?;
                }
                bar.inc(1);
                all.push(record);
            }
            for c in clients {
                c.await.context("a client task panicked")?;
            }
            bar.finish_and_clear();
        }
    }
    Ok(all)
}
