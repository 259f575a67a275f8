//! `dsobel bench store`: does the store scale by shards? The same backend, workers and
//! closed-loop load against a Redis Cluster of 1 master, then of N masters, each master a
//! `redis-server` of the bench's own in a CPU control group capped at a small fraction of a
//! core, so that the store, not the workers, is what limits the throughput.
//!
//! For each row the bench starts its own cluster (masters only: a replica would only copy the
//! writes) on spare loopback ports, in a folder of its own that is removed afterwards, splits
//! the 16384 slots evenly, starts one `dsobel serve` and the workers with the seed list, runs
//! the load, and reads per master: CPU seconds (`/proc/<pid>/stat`), bytes in and out and
//! commands processed (`INFO stats`) before and after, and its keys (`DBSIZE`) at the end.
//! It reports throughput, its ratio to the first row, the masters' CPU per image and how much
//! of their cap they used (near 100 %: the store binds), bytes and commands per image, and how
//! evenly keys and commands spread over the masters: the largest deviation of one master from
//! the mean, in percent. One CSV row per request goes to `--csv`, as for `bench scaling`.
//!
//! Linux only, as root (control groups); `redis-server` must be installed.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::cgroup::{CpuGroup, cpu_seconds};
use crate::images::{ImageSize, load_images};
use crate::load::{LoadArgs, run_cells};
use crate::matrix::{Cluster, MatrixArgs, Setup, StackArgs, random_suffix};
use crate::record::CsvWriter;
use crate::stats::Report;

/// Hash slots of a Redis Cluster.
const SLOTS: usize = 16384;

/// Arguments of `dsobel bench store`.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Masters of the cluster, one row each (1: a cluster of one master, so that every row
    /// runs the same cluster client).
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    pub shards: Vec<usize>,
    /// Cores of each Redis master (its own CPU control group; Linux, as root).
    #[arg(long, value_name = "CORES", default_value_t = 0.05)]
    pub redis_cpu_cap: f64,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Worker tasks in each worker process.
    #[arg(long, default_value_t = 1)]
    pub tasks_per_worker: usize,
    /// Cores of the backend and of each worker (a control group each). 0: no cap.
    #[arg(long, value_name = "CORES", default_value_t = 0.0)]
    pub cpu_cap: f64,
    /// Clients at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seconds of load per row.
    #[arg(long, value_name = "SECS", default_value_t = 20.0)]
    pub duration: f64,
    /// The generated JPEG to send (small, so that the store binds before the workers).
    #[arg(long, default_value = "64x64")]
    pub size: ImageSize,
    /// An image file to send instead of the generated one.
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// Options of every upload.
    #[arg(long, default_value = "wait=60")]
    pub query: String,
    /// The first master's port; the masters take this and the next ones, their cluster bus
    /// ports 10000 above.
    #[arg(long, default_value_t = 17400)]
    pub redis_port: u16,
    /// The `dsobel` binary to start (default: this program).
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// RabbitMQ of the work queue.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Where the requests' rows go; the processes' logs go to a `logs` folder beside it.
    #[arg(long, value_name = "FILE", default_value = "bench-out/store.csv")]
    pub csv: PathBuf,
}

/// What one master did during a row.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardFigures {
    /// Its port.
    pub port: u16,
    /// CPU seconds it spent.
    pub cpu: f64,
    /// Bytes it received.
    pub bytes_in: u64,
    /// Bytes it sent.
    pub bytes_out: u64,
    /// Commands it processed.
    pub commands: u64,
    /// Keys it holds at the end.
    pub keys: u64,
}

/// One row of the store table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreRow {
    /// Masters.
    pub shards: usize,
    /// Successful images per second.
    pub throughput: f64,
    /// Images that succeeded, warm-up included.
    pub images: usize,
    /// Failed requests.
    pub failures: usize,
    /// Seconds of load, warm-up included (the window the counters cover).
    pub seconds: f64,
    /// Median latency of the successful requests, in milliseconds.
    pub p50_ms: f64,
    /// The backend's and workers' CPU seconds per image, summed.
    pub service_cpu: f64,
    /// Each master's figures.
    pub per_shard: Vec<ShardFigures>,
}

impl StoreRow {
    /// The masters' CPU seconds per image, summed.
    pub fn redis_cpu_per_image(&self) -> f64 {
        self.per_shard.iter().map(|s| s.cpu).sum::<f64>() / self.images.max(1) as f64
    }

    /// How much of their caps the masters used over the row, on average (1.0: all of it).
    pub fn cap_use(&self, cap: f64) -> f64 {
        let spent: f64 = self.per_shard.iter().map(|s| s.cpu).sum();
        spent / (self.seconds * cap * self.per_shard.len().max(1) as f64)
    }

    /// Bytes in and out per image, over every master.
    pub fn bytes_per_image(&self) -> (f64, f64) {
        let images = self.images.max(1) as f64;
        let sum = |pick: fn(&ShardFigures) -> u64| self.per_shard.iter().map(pick).sum::<u64>() as f64;
        (sum(|s| s.bytes_in) / images, sum(|s| s.bytes_out) / images)
    }

    /// Commands per image, over every master.
    pub fn commands_per_image(&self) -> f64 {
        self.per_shard.iter().map(|s| s.commands).sum::<u64>() as f64 / self.images.max(1) as f64
    }
}

/// The largest deviation of one value from the mean of all, in percent of the mean (0 for
/// one value, or when all are 0).
pub fn spread(values: &[u64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mean = values.iter().sum::<u64>() as f64 / values.len() as f64;
    if mean == 0.0 {
        return 0.0;
    }
    values.iter().map(|&v| (v as f64 - mean).abs()).fold(0.0, f64::max) / mean * 100.0
}

/// `dsobel bench store`: runs every row, prints the table; the exit code is 1 when any
/// request failed.
pub async fn store(args: StoreArgs) -> Result<i32> {
    let rows = run_store(&args).await?;
    print!("{}", store_table(&rows, &args));
    eprintln!("rows written to {}", args.csv.display());
    Ok(i32::from(rows.iter().any(|r| r.failures > 0)))
}

/// Runs every row and returns what it measured.
pub async fn run_store(args: &StoreArgs) -> Result<Vec<StoreRow>> {
    if args.shards.is_empty() || args.shards.contains(&0) || args.workers == 0 || args.tasks_per_worker == 0 {
        bail!("shard counts, --workers and --tasks-per-worker must be at least 1");
    }
    if args.redis_cpu_cap.is_nan() || args.redis_cpu_cap <= 0.0 {
        bail!("--redis-cpu-cap must be more than 0: the store is to be the bottleneck");
    }
    let largest = args.shards.iter().copied().max().unwrap_or(1);
    if usize::from(args.redis_port) + largest + 10_000 > usize::from(u16::MAX) {
        bail!("--redis-port is too high for {largest} masters and their cluster bus ports");
    }
    let load = LoadArgs {
        images: args.image.iter().cloned().collect(),
        sizes: if args.image.is_some() { Vec::new() } else { vec![args.size] },
        concurrency: vec![args.concurrency],
        requests: None,
        duration: Some(args.duration),
        warmup: args.concurrency as u64,
        timeout: 120.0,
        query: args.query.clone(),
        api_key: None,
    };
    load.validate()?;
    let bin = match &args.bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe().context("cannot find this program's path (give --bin)")?,
    };
    eprintln!("preparing the image…");
    let images = load_images(&load.images, &load.sizes)?;
    let logs = args.csv.parent().unwrap_or(Path::new(".")).join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let mut csv = CsvWriter::create(&args.csv)?;
    let started = Instant::now();
    let cap = (args.cpu_cap > 0.0).then_some(args.cpu_cap);
    let mut rows = Vec::new();
    for &shards in &args.shards {
        let label = format!("{shards} shard{}", if shards == 1 { "" } else { "s" });
        eprintln!(
            "starting the {label} row: a cluster of {shards} master(s) at {} core each",
            args.redis_cpu_cap
        );
        let redis = RedisShards::start(shards, args.redis_port, args.redis_cpu_cap, &logs)?;
        let matrix = MatrixArgs {
            load: load.clone(),
            workers: vec![args.workers],
            tasks_per_worker: args.tasks_per_worker,
            no_embedded: true,
            no_distributed: false,
            stack: StackArgs {
                bin: Some(bin.clone()),
                amqp_url: args.amqp_url.clone(),
                redis_url: redis.seeds(),
            },
            csv: args.csv.clone(),
            plot_dir: None,
            cpu_cap: cap,
        };
        let setup = Setup::new(&bin, &matrix, Some(args.workers), &logs);
        let mut processes = Cluster::new(cap);
        let measured = async {
            let base = setup.start(&mut processes).await?;
            let (service_before, redis_before) = (processes.cpu_seconds(), redis.counters()?);
            let window = Instant::now();
            let records = run_cells(&load, &base, &label, &images, Some(&mut csv), started).await?;
            let seconds = window.elapsed().as_secs_f64();
            let (service_after, redis_after) = (processes.cpu_seconds(), redis.counters()?);
            let keys = redis.keys()?;
            let report = Report::new(records);
            let cell = report.cells.first().context("no request was recorded")?;
            let images = cell.requests - cell.failures + load.warmup as usize;
            let service_cpu =
                service_after.iter().zip(&service_before).map(|((_, a), (_, b))| a - b).sum::<f64>()
                    / images.max(1) as f64;
            let per_shard = redis_before
                .iter()
                .zip(&redis_after)
                .zip(keys)
                .map(|((before, after), keys)| ShardFigures {
                    port: before.port,
                    cpu: after.cpu - before.cpu,
                    bytes_in: after.bytes_in.saturating_sub(before.bytes_in),
                    bytes_out: after.bytes_out.saturating_sub(before.bytes_out),
                    commands: after.commands.saturating_sub(before.commands),
                    keys,
                })
                .collect();
            Ok::<StoreRow, anyhow::Error>(StoreRow {
                shards,
                throughput: cell.throughput,
                images,
                failures: report.failed(),
                seconds,
                p50_ms: cell.p50_ms,
                service_cpu,
                per_shard,
            })
        }
        .await;
        processes.stop().await;
        setup.delete_queues(&args.amqp_url).await;
        drop(redis);
        rows.push(measured.with_context(|| format!("the {label} row"))?);
    }
    Ok(rows)
}

/// The table `dsobel bench store` prints (Markdown), with each master's figures below it.
pub fn store_table(rows: &[StoreRow], args: &StoreArgs) -> String {
    let mut out = String::new();
    let service =
        if args.cpu_cap > 0.0 { format!("{} core each", args.cpu_cap) } else { "uncapped".to_owned() };
    let image = match &args.image {
        Some(path) => path.display().to_string(),
        None => format!("a generated {} JPEG", args.size),
    };
    let _ = writeln!(
        out,
        "\nstore: each Redis master capped at {} core; 1 backend and {} worker(s) ({service}); {image}; \
         concurrency {}, {} s per row\n",
        args.redis_cpu_cap, args.workers, args.concurrency, args.duration
    );
    let _ = writeln!(
        out,
        "| shards | img/s | × first row | p50 ms | Redis CPU ms/img | Redis CPU of its cap | Redis in KB/img | Redis out KB/img | commands/img | keys spread | commands spread | service CPU ms/img | failed |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let first = rows.first().map(|r| r.throughput).unwrap_or(0.0);
    for r in rows {
        let ratio = if first > 0.0 { r.throughput / first } else { 0.0 };
        let (bytes_in, bytes_out) = r.bytes_per_image();
        let keys: Vec<u64> = r.per_shard.iter().map(|s| s.keys).collect();
        let commands: Vec<u64> = r.per_shard.iter().map(|s| s.commands).collect();
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.2} | {:.1} | {:.3} | {:.0} % | {:.1} | {:.1} | {:.1} | {:.1} % | {:.1} % | {:.2} | {} |",
            r.shards,
            r.throughput,
            ratio,
            r.p50_ms,
            r.redis_cpu_per_image() * 1e3,
            r.cap_use(args.redis_cpu_cap) * 100.0,
            bytes_in / 1024.0,
            bytes_out / 1024.0,
            r.commands_per_image(),
            spread(&keys),
            spread(&commands),
            r.service_cpu * 1e3,
            r.failures
        );
    }
    let _ = writeln!(out, "\nper master:\n");
    let _ = writeln!(out, "| shards | port | CPU of its cap | keys | commands |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for r in rows {
        for s in &r.per_shard {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} % | {} | {} |",
                r.shards,
                s.port,
                s.cpu / (r.seconds * args.redis_cpu_cap) * 100.0,
                s.keys,
                s.commands
            );
        }
    }
    out
}

/// A master's counters at one moment.
#[derive(Debug, Clone)]
struct Counters {
    port: u16,
    cpu: f64,
    bytes_in: u64,
    bytes_out: u64,
    commands: u64,
}

/// The masters of one row: `redis-server` processes of the bench's own, each in a capped CPU
/// control group, formed into a cluster; killed and their folder removed when dropped.
struct RedisShards {
    /// Port and process of each master.
    nodes: Vec<(u16, Child)>,
    /// Dropped after the processes (fields drop in order), when they can be removed.
    groups: Vec<CpuGroup>,
    dir: PathBuf,
}

impl RedisShards {
    /// Starts `count` masters on `base..base + count`, each capped at `cores`, and forms the
    /// cluster: slots split evenly, distinct configuration epochs, every node met.
    fn start(count: usize, base: u16, cores: f64, logs: &Path) -> Result<RedisShards> {
        let dir = std::env::temp_dir().join(format!("dsobel-bench-store-{}", random_suffix()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut shards = RedisShards { nodes: Vec::new(), groups: Vec::new(), dir };
        for i in 0..count {
            let port = base + i as u16;
            for taken in [port, port + 10_000] {
                if std::net::TcpListener::bind(("127.0.0.1", taken)).is_err() {
                    bail!("port {taken} is taken: give another --redis-port");
                }
            }
            let group = CpuGroup::create(&format!("dsobel-bench-redis-{port}-{}", random_suffix()), cores)?;
            let log = logs.join(format!("redis-{count}-{port}.log"));
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "15000"])
                .args(["--cluster-require-full-coverage", "no"])
                .arg("--cluster-config-file")
                .arg(shards.dir.join(format!("nodes-{port}.conf")))
                .arg("--dir")
                .arg(&shards.dir)
                .arg("--logfile")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start redis-server (is it installed?)")?;
            let pid = child.id();
            shards.nodes.push((port, child));
            group.add(pid)?;
            shards.groups.push(group);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for (port, _) in &shards.nodes {
            while command(*port, &["PING"]).is_err() {
                if Instant::now() > deadline {
                    bail!("the Redis on port {port} does not answer (see {})", logs.display());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let per_master = SLOTS / count;
        for (i, (port, _)) in shards.nodes.iter().enumerate() {
            let first = i * per_master;
            let last = if i + 1 == count { SLOTS - 1 } else { first + per_master - 1 };
            expect_ok(*port, &["CLUSTER", "ADDSLOTSRANGE", &first.to_string(), &last.to_string()])?;
            expect_ok(*port, &["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()])?;
        }
        let first = base.to_string();
        for (port, _) in shards.nodes.iter().skip(1) {
            expect_ok(*port, &["CLUSTER", "MEET", "127.0.0.1", &first])?;
        }
        let whole = |port: u16| {
            command(port, &["CLUSTER", "INFO"]).is_ok_and(|info| {
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && info.contains(&format!("cluster_known_nodes:{count}\r"))
            })
        };
        while !shards.nodes.iter().all(|(port, _)| whole(*port)) {
            if Instant::now() > deadline {
                bail!("the Redis Cluster of {count} master(s) did not form within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(shards)
    }

    /// The seed list for `DSOBEL_REDIS_URL`.
    fn seeds(&self) -> String {
        self.nodes.iter().map(|(port, _)| format!("redis://127.0.0.1:{port}")).collect::<Vec<_>>().join(",")
    }

    /// Every master's counters now.
    fn counters(&self) -> Result<Vec<Counters>> {
        self.nodes
            .iter()
            .map(|(port, child)| {
                let info = command(*port, &["INFO", "stats"])?;
                let field = |name: &str| -> Result<u64> {
                    info.lines()
                        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
                        .with_context(|| format!("no {name} in the INFO of port {port}"))
                };
                Ok(Counters {
                    port: *port,
                    cpu: cpu_seconds(child.id()).context("the Redis process is gone")?,
                    bytes_in: field("total_net_input_bytes")?,
                    bytes_out: field("total_net_output_bytes")?,
                    commands: field("total_commands_processed")?,
                })
            })
            .collect()
    }

    /// Every master's key count.
    fn keys(&self) -> Result<Vec<u64>> {
        self.nodes
            .iter()
            .map(|(port, _)| {
                let reply = command(*port, &["DBSIZE"])?;
                reply.trim().parse().with_context(|| format!("DBSIZE of port {port} answered {reply:?}"))
            })
            .collect()
    }
}

impl Drop for RedisShards {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.nodes.clear();
        self.groups.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends one command to the Redis on `127.0.0.1:port` and returns its reply as text (a
/// status, an integer or a bulk string); an error for an error reply or no answer.
fn command(port: u16, args: &[&str]) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        let _ = write!(request, "${}\r\n{arg}\r\n", arg.len());
    }
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end();
    match line.split_at_checked(1) {
        Some(("+" | ":", rest)) => Ok(rest.to_owned()),
        Some(("-", rest)) => bail!("port {port}: {args:?} answered {rest}"),
        Some(("$", length)) => {
            let length: usize = length.parse().with_context(|| format!("a bad reply {line:?}"))?;
            let mut body = vec![0; length + 2];
            reader.read_exact(&mut body)?;
            body.truncate(length);
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        _ => bail!("port {port}: an unexpected reply {line:?} to {args:?}"),
    }
}

/// [`command`], expecting `OK`.
fn expect_ok(port: u16, args: &[&str]) -> Result<()> {
    let reply = command(port, args)?;
    if reply != "OK" {
        bail!("port {port}: {args:?} answered {reply:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_largest_deviation_from_the_mean_in_percent() {
        assert_eq!(spread(&[]), 0.0);
        assert_eq!(spread(&[7]), 0.0);
        assert_eq!(spread(&[0, 0]), 0.0);
        assert_eq!(spread(&[100, 100, 100]), 0.0);
        // Mean 100: 130 is 30 % above it, 80 is 20 % below.
        assert!((spread(&[130, 90, 80]) - 30.0).abs() < 1e-9);
    }
}
