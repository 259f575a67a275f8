//! The benchmark commands as a stand-alone program, the same as `dsobel bench …`:
//!
//! ```text
//! cargo run --release -p dsobel-bench --example bench -- run --size 1mb --concurrency 1,4
//! cargo run --release -p dsobel-bench --example bench -- matrix --bin target/release/dsobel
//! cargo run --release -p dsobel-bench --example bench -- plot --csv bench-out/matrix.csv
//! cargo run --release -p dsobel-bench --example bench -- gen-image --size 10mb -o big.jpg
//! ```
//!
//! `matrix` starts `dsobel serve` and `dsobel worker` processes, so it needs `--bin` here (this
//! program is not `dsobel`).

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bench", about = "dsobel benchmark: load, matrix, plots, images")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Closed-loop clients against a URL or an embedded server.
    Run(dsobel_bench::BenchArgs),
    /// Image sizes × concurrency × worker processes, on the local RabbitMQ and Redis.
    Matrix(dsobel_bench::MatrixArgs),
    /// PNG charts of a CSV.
    Plot(dsobel_bench::PlotArgs),
    /// Writes a generated photograph-like JPEG.
    GenImage(dsobel_bench::GenImageArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let result = match cli.command {
        Command::Run(args) => runtime.block_on(dsobel_bench::run(args)),
        Command::Matrix(args) => runtime.block_on(dsobel_bench::matrix(args)),
        Command::Plot(args) => dsobel_bench::plot_command(args),
        Command::GenImage(args) => dsobel_bench::gen_image(args),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
