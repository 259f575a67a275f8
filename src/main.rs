//! The `dsobel` command: one binary for every role of the system.
//!
//! `serve` runs the HTTP service (embedded, or the backend of the distributed system), `worker`
//! consumes tasks, `process` runs images locally with no server, `submit` sends images to a
//! server, `batch` runs a batch from one object-store location to another on a server, `bench` load-tests a server (`bench matrix`, `bench scaling`, `bench store`, `bench plot`),
//! `gen-image` writes a test JPEG, and `engine-bench` times the engine's stages.
//! Each subcommand lives in its own module; this file only parses arguments and dispatches.

mod batch;
mod cli;
mod engine_bench;
mod inputs;
mod objects;
mod process;
mod serve;
mod submit;

use clap::{Parser, Subcommand};

/// The allocator: it keeps freed memory for reuse and gives it back to the system after a
/// short delay, so the large buffers of every job (uploads, luma planes, PNGs) do not fault in
/// fresh pages each time, and an idle process shrinks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exact, fast Sobel edge detection: locally, as a service, or distributed over workers.
#[derive(Debug, Parser)]
#[command(name = "dsobel", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Filter local image files (or stdin) into edge PNGs, without any server.
    Process(process::ProcessArgs),
    /// Run the HTTP service and web page (embedded mode unless --amqp-url and --redis-url).
    Serve(Box<dsobel_service::config::ServeArgs>),
    /// Take tasks (whole images or strips) from RabbitMQ, compute them, store the results in
    /// Redis; needs both servers (--amqp-url, --redis-url).
    Worker(Box<serve::WorkerCommand>),
    /// Send images (files, or directories with --recursive) to a dsobel server and save the
    /// results, with live progress.
    Submit(submit::SubmitArgs),
    /// Start a batch on a server: every image under an object-store location (s3://, gs://,
    /// file://) into edge maps under another, with a progress bar and a manifest.
    Batch(batch::BatchArgs),
    #[cfg(feature = "bench")]
    /// Load-test a dsobel URL (or an embedded server) with closed-loop clients; `matrix` and
    /// `plot` run the size × concurrency × workers matrix and chart it.
    Bench(Box<BenchCommand>),
    #[cfg(feature = "bench")]
    /// Write a deterministic, photograph-like JPEG of a given size.
    GenImage(dsobel_bench::GenImageArgs),
    /// Time decode, kernel, encode and end-to-end on files, in memory.
    EngineBench(engine_bench::EngineBenchArgs),
}

#[cfg(feature = "bench")]
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct BenchCommand {
    #[command(subcommand)]
    command: Option<BenchSubcommand>,
    #[command(flatten)]
    load: dsobel_bench::BenchArgs,
}

#[cfg(feature = "bench")]
#[derive(Debug, Subcommand)]
enum BenchSubcommand {
    /// Image sizes × concurrency levels × worker processes on the local RabbitMQ and Redis,
    /// plus the embedded mode.
    Matrix(Box<dsobel_bench::MatrixArgs>),
    /// Throughput and each role's CPU per image for 1, 2, 4… worker processes, each process
    /// capped at a fraction of a core in a CPU control group of its own (Linux, as root).
    Scaling(Box<dsobel_bench::ScalingArgs>),
    /// Throughput against a Redis Cluster of 1 master, then of N, each master of the bench's
    /// own capped at a fraction of a core so that the store binds (Linux, as root).
    Store(Box<dsobel_bench::StoreArgs>),
    /// Draw the PNG charts of a bench CSV.
    Plot(dsobel_bench::PlotArgs),
}

#[cfg(feature = "bench")]
fn bench(command: BenchCommand) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match command.command {
        None => runtime.block_on(dsobel_bench::run(command.load)),
        Some(BenchSubcommand::Matrix(args)) => runtime.block_on(dsobel_bench::matrix(*args)),
        Some(BenchSubcommand::Scaling(args)) => runtime.block_on(dsobel_bench::scaling(*args)),
        Some(BenchSubcommand::Store(args)) => runtime.block_on(dsobel_bench::store(*args)),
        Some(BenchSubcommand::Plot(args)) => dsobel_bench::plot_command(args),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Process(args) => process::run(args),
        Command::Serve(args) => serve::serve(*args).map(|()| 0),
        Command::Worker(command) => serve::worker(*command).map(|()| 0),
        Command::Submit(args) => submit::run(args),
        Command::Batch(args) => batch::run(args),
        #[cfg(feature = "bench")]
        Command::Bench(command) => bench(*command),
        #[cfg(feature = "bench")]
        Command::GenImage(args) => dsobel_bench::gen_image(args),
        Command::EngineBench(args) => engine_bench::run(args).map(|()| 0),
    };
    match result {
        Ok(0) => std::process::ExitCode::SUCCESS,
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
