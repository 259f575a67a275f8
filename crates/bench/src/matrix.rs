//! `dsobel bench matrix`: the seed's three dimensions in one command — image size ×
//! concurrency × number of workers — on this machine, with real processes.
//!
//! For each worker count N it starts one `dsobel serve` and N `dsobel worker` processes against
//! the local RabbitMQ and Redis, on a fresh random queue name and key namespace (so runs never
//! see each other's strips), each process listening on port 0 and reporting the address it
//! bound (`--address-file`), waits until every process answers `/readyz`, runs every cell, then
//! stops them all with SIGTERM and deletes the queues. The embedded mode (one `dsobel serve`
//! with no broker) is its own row, labelled `embedded`. All rows go to one CSV, the summary is
//! printed, and every child process is stopped at the end — also when something fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use dsobel_transport::queue::QueueConfig;
use dsobel_transport::rabbitmq::RabbitQueue;

use crate::cgroup::{CpuGroup, cpu_seconds};
use crate::images::{ImageSize, load_images};
use crate::load::{LoadArgs, run_cells};
use crate::record::{CsvWriter, Record};
use crate::stats::Report;

/// Arguments of `dsobel bench matrix`.
#[derive(Debug, Clone, Args)]
pub struct MatrixArgs {
    /// The load of each cell (without --requests nor --duration: 5 seconds per cell).
    #[command(flatten)]
    pub load: LoadArgs,
    /// Worker process counts, one run of every cell per count.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub workers: Vec<usize>,
    /// Strips each worker process handles at once (its `--workers`).
    #[arg(long, default_value_t = 1)]
    pub tasks_per_worker: usize,
    /// Skip the embedded row.
    #[arg(long)]
    pub no_embedded: bool,
    /// Skip the distributed rows (only the embedded one).
    #[arg(long)]
    pub no_distributed: bool,
    /// The processes to start and the servers they use.
    #[command(flatten)]
    pub stack: StackArgs,
    /// Where the rows go; the child processes' logs go to a `logs` folder beside it.
    #[arg(long, value_name = "FILE", default_value = "bench-out/matrix.csv")]
    pub csv: PathBuf,
    /// Draw the plots (PNG) into this folder at the end.
    #[arg(long, value_name = "DIR")]
    pub plot_dir: Option<PathBuf>,
    /// Run every process in a CPU control group of its own capped at this many cores (0.25:
    /// a quarter of a core), as if each were a small machine. Linux, as root.
    #[arg(long, value_name = "CORES")]
    pub cpu_cap: Option<f64>,
}

/// The `dsobel` processes a benchmark starts and the servers of their distributed runs (shared
/// by `bench matrix` and `bench scaling`).
#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// The `dsobel` binary to start (default: this program).
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// RabbitMQ of the distributed rows.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Redis of the distributed rows.
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    pub redis_url: String,
}

impl StackArgs {
    /// The binary to start: `--bin`, or this program.
    pub fn program(&self) -> Result<PathBuf> {
        match &self.bin {
            Some(bin) => Ok(bin.clone()),
            None => std::env::current_exe().context("cannot find this program's path (give --bin)"),
        }
    }
}

/// `dsobel bench matrix`: runs every cell for every worker count, prints the summary; the exit
/// code is 1 when any request failed.
pub async fn matrix(args: MatrixArgs) -> Result<i32> {
    let report = run_matrix(args.clone()).await?;
    print!("{}", report.table());
    eprintln!("rows written to {}", args.csv.display());
    if let Some(dir) = &args.plot_dir {
        for path in crate::plot::plot_records(&report.records, dir)? {
            eprintln!("plot written to {}", path.display());
        }
    }
    Ok(report.exit_code())
}

/// Runs the matrix and returns what it measured (what [`matrix`] prints).
pub async fn run_matrix(mut args: MatrixArgs) -> Result<Report> {
    args.load.validate()?;
    if args.load.requests.is_none() && args.load.duration.is_none() {
        args.load.duration = Some(5.0);
    }
    if args.load.sizes.is_empty() && args.load.images.is_empty() {
        args.load.sizes = vec![ImageSize::OneMb, ImageSize::TenMb];
    }
    if args.workers.contains(&0) || args.tasks_per_worker == 0 {
        bail!("worker counts and --tasks-per-worker must be at least 1");
    }
    let bin = args.stack.program()?;
    let mut runs: Vec<Option<usize>> = Vec::new();
    if !args.no_embedded {
        runs.push(None);
    }
    if !args.no_distributed {
        runs.extend(args.workers.iter().map(|&n| Some(n)));
    }
    if runs.is_empty() {
        bail!("nothing to run: both --no-embedded and --no-distributed");
    }
    eprintln!("preparing images…");
    let images = load_images(&args.load.images, &args.load.sizes)?;
    let logs = args.csv.parent().unwrap_or(Path::new(".")).join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let mut csv = CsvWriter::create(&args.csv)?;
    let started = Instant::now();
    let mut records: Vec<Record> = Vec::new();
    for run in runs {
        let label = run.map(|n| n.to_string()).unwrap_or_else(|| "embedded".to_owned());
        eprintln!("starting the {label} run");
        let setup = Setup::new(&bin, &args, run, &logs);
        let mut cluster = Cluster::new(args.cpu_cap);
        let outcome = async {
            let base = setup.start(&mut cluster).await?;
            run_cells(&args.load, &base, &label, &images, Some(&mut csv), started).await
        }
        .await;
        cluster.stop().await;
        if run.is_some() {
            setup.delete_queues(&args.stack.amqp_url).await;
        }
        records.extend(outcome.with_context(|| format!("the {label} run"))?);
    }
    Ok(Report::new(records))
}

/// What one run starts: names and settings.
pub(crate) struct Setup {
    bin: PathBuf,
    workers: Option<usize>,
    tasks_per_worker: usize,
    amqp_url: String,
    redis_url: String,
    queue: String,
    namespace: String,
    logs: PathBuf,
    in_flight: usize,
}

/// Random hex for queue names and namespaces.
pub(crate) fn random_suffix() -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(std::process::id(), Instant::now(), std::time::SystemTime::now()), &mut h);
    let a = std::hash::Hasher::finish(&h);
    // A second, differently seeded hasher, for 128 bits of name.
    let b = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), a);
    format!("{a:016x}{b:016x}")
}

impl Setup {
    pub(crate) fn new(bin: &Path, args: &MatrixArgs, workers: Option<usize>, logs: &Path) -> Setup {
        let suffix = random_suffix();
        Setup {
            bin: bin.to_owned(),
            workers,
            tasks_per_worker: args.tasks_per_worker,
            amqp_url: args.stack.amqp_url.clone(),
            redis_url: args.stack.redis_url.clone(),
            queue: format!("dsobel-bench-{suffix}"),
            namespace: format!("dsobel-bench-{suffix}"),
            logs: logs.to_owned(),
            in_flight: args.load.concurrency.iter().copied().max().unwrap_or(1).max(64),
        }
    }

    /// A command of the `dsobel` binary with a clean environment of `DSOBEL_*` settings.
    fn command(&self, role: &str, log: &str) -> Result<Command> {
        let mut command = Command::new(&self.bin);
        command.arg(role);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DSOBEL_") {
                command.env_remove(key);
            }
        }
        command.env("DSOBEL_LOG_FORMAT", "json").env("RUST_LOG", "warn");
        if self.workers.is_some() {
            command
                .env("DSOBEL_AMQP_URL", &self.amqp_url)
                .env("DSOBEL_REDIS_URL", &self.redis_url)
                .env("DSOBEL_QUEUE", &self.queue)
                .env("DSOBEL_NAMESPACE", &self.namespace);
        }
        let path = self.logs.join(log);
        let file =
            std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        command.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
        Ok(command)
    }

    /// Starts the processes of this run and returns the backend's base URL once all are ready.
    /// Each listens on port 0 and writes the address it bound to a file beside the logs.
    pub(crate) async fn start(&self, cluster: &mut Cluster) -> Result<String> {
        let label = self.workers.map(|n| format!("w{n}")).unwrap_or_else(|| "embedded".into());
        let address_file = |name: &str| {
            let path = self.logs.join(format!("{label}-{name}.address"));
            let _ = std::fs::remove_file(&path);
            path
        };
        let mut files = vec![address_file("serve")];
        let mut serve = self.command("serve", &format!("{label}-serve.log"))?;
        serve.args(["--listen", "127.0.0.1:0"]).arg("--address-file").arg(&files[0]);
        serve.args(["--max-jobs-in-flight", &self.in_flight.to_string()]);
        serve.args(["--result-ttl-secs", "600", "--work-ttl-secs", "600"]);
        cluster.spawn("serve", serve)?;
        for i in 0..self.workers.unwrap_or(0) {
            let file = address_file(&format!("worker{i}"));
            let mut worker = self.command("worker", &format!("{label}-worker{i}.log"))?;
            worker.args(["--workers", &self.tasks_per_worker.to_string()]);
            worker.args(["--health-listen", "127.0.0.1:0"]).arg("--address-file").arg(&file);
            cluster.spawn(&format!("worker {i}"), worker)?;
            files.push(file);
        }
        let client = dsobel_client::http_builder().timeout(Duration::from_secs(3)).build()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut ready = Vec::new();
        for file in &files {
            let address = loop {
                cluster.check_alive()?;
                if let Ok(address) = std::fs::read_to_string(file) {
                    break address.trim().to_owned();
                }
                if Instant::now() > deadline {
                    bail!(
                        "no address in {} within 60 s (see the logs in {})",
                        file.display(),
                        self.logs.display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            ready.push(address);
        }
        for address in &ready {
            loop {
                cluster.check_alive()?;
                let answer = client.get(format!("http://{address}/readyz")).send().await;
                if answer.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{address} was not ready within 60 s (see the logs in {})", self.logs.display());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(format!("http://{}", ready[0]))
    }

    /// Deletes this run's work and dead-letter queues (best effort: a leftover queue is
    /// harmless, only untidy).
    pub(crate) async fn delete_queues(&self, amqp_url: &str) {
        let config = QueueConfig { name: self.queue.clone(), ..QueueConfig::default() };
        let deleted = tokio::time::timeout(Duration::from_secs(10), async {
            RabbitQueue::connect(amqp_url, config).await?.delete_queues().await
        })
        .await;
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!("note: could not delete the queue {} after the run", self.queue);
        }
    }
}

/// The child processes of a run; stopped with SIGTERM by [`Cluster::stop`], killed on drop as
/// a last resort. With a CPU cap, each runs in a control group of its own.
pub(crate) struct Cluster {
    children: Vec<(String, Child)>,
    cpu_cap: Option<f64>,
    /// Dropped after the children (fields drop in order), when they can be removed.
    groups: Vec<CpuGroup>,
}

impl Cluster {
    pub(crate) fn new(cpu_cap: Option<f64>) -> Cluster {
        Cluster { children: Vec::new(), cpu_cap: cpu_cap.filter(|&c| c > 0.0), groups: Vec::new() }
    }

    fn spawn(&mut self, name: &str, mut command: Command) -> Result<()> {
        let group = match self.cpu_cap {
            Some(cores) => {
                let label = name.replace(' ', "-");
                // A process started in a capped group sizes its thread pools to the cap (the
                // standard library reads the quota), as on a small machine or in a pod with a
                // CPU limit; this one joins its group after it started, so it is told.
                let threads = cores.ceil().max(1.0).to_string();
                command.env("TOKIO_WORKER_THREADS", &threads).env("RAYON_NUM_THREADS", &threads);
                Some(CpuGroup::create(&format!("dsobel-bench-{}-{label}", random_suffix()), cores)?)
            }
            None => None,
        };
        let child = command.spawn().with_context(|| format!("cannot start {name} ({command:?})"))?;
        let pid = child.id();
        self.children.push((name.to_owned(), child));
        if let Some(group) = group {
            group.add(pid)?;
            self.groups.push(group);
        }
        Ok(())
    }

    /// CPU seconds each child has spent so far, by name (`serve`, `worker 0`, …).
    pub(crate) fn cpu_seconds(&self) -> Vec<(String, f64)> {
        self.children
            .iter()
            .map(|(name, child)| (name.clone(), cpu_seconds(child.id()).unwrap_or(0.0)))
            .collect()
    }

    /// An error when a child has already exited (a wrong binary, a port taken, a broker down).
    fn check_alive(&mut self) -> Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited early ({status})");
            }
        }
        Ok(())
    }

    /// SIGTERM to every child, then up to 30 s for all to exit; SIGKILL for any still running.
    pub(crate) async fn stop(&mut self) {
        for (_, child) in &mut self.children {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for (name, child) in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        eprintln!("{name} did not stop on SIGTERM within 30 s; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
        self.children.clear();
        self.groups.clear();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
