//! `dsobel serve` and `dsobel worker`: thin wrappers that start the service library on a
//! tokio runtime with SIGTERM/SIGINT as the shutdown signal.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use dsobel_service::config::{ServeArgs, WorkerArgs};
use dsobel_service::telemetry::init_logging;

/// Arguments of `dsobel worker` (the service's settings plus a fault drill).
#[derive(Debug, Args)]
pub struct WorkerCommand {
    /// Worker settings.
    #[command(flatten)]
    pub args: WorkerArgs,
    /// Fault drill: sleep this many milliseconds before each strip, to rehearse a worker
    /// killed mid-strip (its strip must be redelivered). Never needed in production.
    #[arg(long, env = "DSOBEL_DRILL_STRIP_DELAY_MS", default_value_t = 0)]
    pub drill_strip_delay_ms: u64,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

/// Runs `dsobel serve`.
pub fn serve(args: ServeArgs) -> Result<()> {
    init_logging(args.log.log_format);
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        if args.open {
            open_browser(&format!("http://{address}/"));
        }
        let shutdown = dsobel_service::app::shutdown_on_signals();
        dsobel_service::app::serve(args, listener, shutdown).await?;
        Ok(())
    })
}

/// Runs `dsobel worker`.
pub fn worker(command: WorkerCommand) -> Result<()> {
    init_logging(command.args.log.log_format);
    runtime()?.block_on(async move {
        let shutdown = dsobel_service::app::shutdown_on_signals();
        let delay = Duration::from_millis(command.drill_strip_delay_ms);
        dsobel_service::app::worker(command.args, shutdown, delay).await?;
        Ok(())
    })
}

/// Opens `url` in the desktop's browser, if there is one; always prints it.
fn open_browser(url: &str) {
    eprintln!("dsobel is running: open {url}");
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        eprintln!("(no browser opener found; open the address above yourself)");
    }
}
