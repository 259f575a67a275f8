//! `dsobel bench scaling`: does every worker add throughput? One machine stands in for many:
//! the backend and each worker run as processes in CPU control groups of their own, each
//! capped at a fraction of a core, as if each were a small machine; the same closed-loop load
//! runs against 1, 2, 4… workers.
//!
//! For each worker count it reports throughput, its ratio to the first row's, the CPU seconds
//! per image of the backend and of the workers (from `/proc`, so the numbers hold with or
//! without caps), the backend's share of that CPU, and the bytes Redis received and sent per
//! image (from its `INFO stats`; the Redis server is shared, so run nothing else against it
//! meanwhile). Redis's and RabbitMQ's own CPU is not counted: they are services of their own.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::images::{ImageSize, load_images};
use crate::load::{LoadArgs, run_cells};
use crate::matrix::{Cluster, MatrixArgs, Setup, StackArgs};
use crate::record::CsvWriter;
use crate::stats::Report;

/// Arguments of `dsobel bench scaling`.
#[derive(Debug, Clone, Args)]
pub struct ScalingArgs {
    /// Worker process counts, one row each.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub workers: Vec<usize>,
    /// Cores of each process (its own CPU control group; Linux, as root). 0: no cap.
    #[arg(long, value_name = "CORES", default_value_t = 0.25)]
    pub cpu_cap: f64,
    /// Worker tasks in each worker process.
    #[arg(long, default_value_t = 1)]
    pub tasks_per_worker: usize,
    /// Clients at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds of load per row.
    #[arg(long, value_name = "SECS", default_value_t = 20.0)]
    pub duration: f64,
    /// An image file to send (default: the generated 1 MB photograph).
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// Options of every upload (e.g. `fragments=4`).
    #[arg(long, default_value = "")]
    pub query: String,
    /// Also run the embedded mode, capped at the cores of the largest distributed row
    /// (backend plus workers).
    #[arg(long)]
    pub embedded: bool,
    /// The processes to start and the servers they use (Redis's `INFO` must answer without a
    /// password).
    #[command(flatten)]
    pub stack: StackArgs,
    /// Where the requests' rows go; the processes' logs go to a `logs` folder beside it.
    #[arg(long, value_name = "FILE", default_value = "bench-out/scaling.csv")]
    pub csv: PathBuf,
    /// Draw `scaling.png` into this folder.
    #[arg(long, value_name = "DIR")]
    pub plot_dir: Option<PathBuf>,
}

/// One row of the scaling table.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRow {
    /// `embedded`, or the worker process count.
    pub label: String,
    /// Worker processes (0 for the embedded row).
    pub workers: usize,
    /// Successful images per second.
    pub throughput: f64,
    /// Images that succeeded, warm-up included.
    pub images: usize,
    /// Failed requests.
    pub failures: usize,
    /// Backend (`serve`) CPU seconds per image.
    pub backend_cpu: f64,
    /// Worker processes' CPU seconds per image, summed.
    pub worker_cpu: f64,
    /// Bytes Redis received per image.
    pub redis_in: Option<f64>,
    /// Bytes Redis sent per image.
    pub redis_out: Option<f64>,
}

impl ScalingRow {
    /// The backend's share of the backend's and workers' CPU time.
    pub fn backend_share(&self) -> f64 {
        let total = self.backend_cpu + self.worker_cpu;
        if total > 0.0 { self.backend_cpu / total } else { 0.0 }
    }
}

/// `dsobel bench scaling`: runs every row, prints the table; the exit code is 1 when any
/// request failed.
pub async fn scaling(args: ScalingArgs) -> Result<i32> {
    let rows = run_scaling(&args).await?;
    print!("{}", scaling_table(&rows, &args));
    if let Some(dir) = &args.plot_dir {
        let path = crate::plot::scaling_chart(&rows, args.cpu_cap, dir)?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(i32::from(rows.iter().any(|r| r.failures > 0)))
}

/// Runs every row and returns what it measured.
pub async fn run_scaling(args: &ScalingArgs) -> Result<Vec<ScalingRow>> {
    if args.workers.is_empty() || args.workers.contains(&0) || args.tasks_per_worker == 0 {
        bail!("worker counts and --tasks-per-worker must be at least 1");
    }
    let load = LoadArgs {
        images: args.image.iter().cloned().collect(),
        sizes: if args.image.is_some() { Vec::new() } else { vec![ImageSize::OneMb] },
        concurrency: vec![args.concurrency],
        requests: None,
        duration: Some(args.duration),
        warmup: args.concurrency as u64,
        timeout: 120.0,
        query: args.query.clone(),
        api_key: None,
    };
    load.validate()?;
    let cap = (args.cpu_cap > 0.0).then_some(args.cpu_cap);
    let matrix = MatrixArgs {
        load: load.clone(),
        workers: args.workers.clone(),
        tasks_per_worker: args.tasks_per_worker,
        no_embedded: !args.embedded,
        no_distributed: false,
        stack: args.stack.clone(),
        csv: args.csv.clone(),
        plot_dir: None,
        cpu_cap: cap,
    };
    let bin = args.stack.program()?;
    eprintln!("preparing the image…");
    let images = load_images(&load.images, &load.sizes)?;
    let logs = args.csv.parent().unwrap_or(Path::new(".")).join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let mut csv = CsvWriter::create(&args.csv)?;
    let started = Instant::now();
    let mut runs: Vec<Option<usize>> = args.workers.iter().map(|&n| Some(n)).collect();
    if args.embedded {
        runs.push(None);
    }
    let largest = args.workers.iter().copied().max().unwrap_or(1);
    let mut rows = Vec::new();
    for run in runs {
        let label = run.map(|n| n.to_string()).unwrap_or_else(|| "embedded".to_owned());
        eprintln!("starting the {label} row");
        let setup = Setup::new(&bin, &matrix, run, &logs);
        // The embedded row gets the cores the largest distributed row has in all.
        let cores = if run.is_some() { cap } else { cap.map(|c| c * (largest + 1) as f64) };
        let mut cluster = Cluster::new(cores);
        let measured = async {
            let base = setup.start(&mut cluster).await?;
            let (cpu_before, redis_before) = (cluster.cpu_seconds(), redis_bytes(&args.stack.redis_url));
            let records = run_cells(&load, &base, &label, &images, Some(&mut csv), started).await?;
            // Let the processes settle the last jobs before reading their clocks.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (cpu_after, redis_after) = (cluster.cpu_seconds(), redis_bytes(&args.stack.redis_url));
            let report = Report::new(records);
            let cell = report.cells.first().context("no request was recorded")?;
            let images = cell.requests - cell.failures + load.warmup as usize;
            let spent = |role: &dyn Fn(&str) -> bool| -> f64 {
                cpu_after
                    .iter()
                    .zip(&cpu_before)
                    .filter(|((name, _), _)| role(name))
                    .map(|((_, after), (_, before))| after - before)
                    .sum::<f64>()
                    / images.max(1) as f64
            };
            let per_image = |after: Option<(u64, u64)>, pick: fn((u64, u64)) -> u64| {
                Some((pick(after?) - pick(redis_before?)) as f64 / images.max(1) as f64)
            };
            Ok::<ScalingRow, anyhow::Error>(ScalingRow {
                label: label.clone(),
                workers: run.unwrap_or(0),
                throughput: cell.throughput,
                images,
                failures: report.failed(),
                backend_cpu: spent(&|name| name == "serve"),
                worker_cpu: spent(&|name| name.starts_with("worker")),
                redis_in: per_image(redis_after, |b| b.0).filter(|_| run.is_some()),
                redis_out: per_image(redis_after, |b| b.1).filter(|_| run.is_some()),
            })
        }
        .await;
        cluster.stop().await;
        if run.is_some() {
            setup.delete_queues(&args.stack.amqp_url).await;
        }
        rows.push(measured.with_context(|| format!("the {label} row"))?);
    }
    Ok(rows)
}

/// The table `dsobel bench scaling` prints (Markdown, so it can go into a report as it is).
pub fn scaling_table(rows: &[ScalingRow], args: &ScalingArgs) -> String {
    let mut out = String::new();
    let cap =
        if args.cpu_cap > 0.0 { format!("{} core each", args.cpu_cap) } else { "no CPU cap".to_owned() };
    let _ = writeln!(
        out,
        "\nscaling: {cap}, concurrency {}, {} s per row, {} task(s) per worker\n",
        args.concurrency, args.duration, args.tasks_per_worker
    );
    let _ = writeln!(
        out,
        "| workers | img/s | × first row | backend CPU ms/img | workers CPU ms/img | backend share | Redis in KB/img | Redis out KB/img | failed |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let first = rows.first().map(|r| r.throughput).unwrap_or(0.0);
    let kb = |v: Option<f64>| v.map(|v| format!("{:.0}", v / 1024.0)).unwrap_or_else(|| "–".into());
    for r in rows {
        let ratio = if first > 0.0 { r.throughput / first } else { 0.0 };
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.1} % | {} | {} | {} |",
            r.label,
            r.throughput,
            ratio,
            r.backend_cpu * 1e3,
            r.worker_cpu * 1e3,
            r.backend_share() * 100.0,
            kb(r.redis_in),
            kb(r.redis_out),
            r.failures
        );
    }
    out
}

/// Redis's `total_net_input_bytes` and `total_net_output_bytes`, when it answers `INFO`
/// without a password at the URL's host and port.
fn redis_bytes(url: &str) -> Option<(u64, u64)> {
    let rest = url.strip_prefix("redis://")?;
    let host_port = rest.split('/').next()?.rsplit('@').next()?;
    let address = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:6379") };
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"INFO stats\r\n").ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    // A bulk reply: `$LEN\r\n` then LEN bytes.
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some((head, body)) = text.split_once("\r\n")
            && head.strip_prefix('$').and_then(|l| l.parse::<usize>().ok()).is_some_and(|l| body.len() >= l)
        {
            break;
        }
    }
    let text = String::from_utf8_lossy(&reply);
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
    };
    Some((field("total_net_input_bytes")?, field("total_net_output_bytes")?))
}
