//! `dsobel batch SRC DEST`: starts a batch on a server (every image under one object-store
//! location into edge maps under another), follows it with a progress bar, prints a summary
//! and the manifest's URL, and exits non-zero when any item failed or the batch did not end
//! `done`.

use std::io::IsTerminal;

use anyhow::{Result, bail};
use clap::Args;
use dsobel_client::{BatchRequest, BatchState, BatchStatus, Client, JobOptions};
use dsobel_service::config::SecretString;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{OperatorArgs, refusal};

/// Arguments of `dsobel batch`.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Where the images are: s3://bucket/prefix, gs://bucket/prefix or file:///path (under one
    /// of the server's DSOBEL_BATCH_STORES).
    pub source: String,
    /// Where the edge maps go (`SRC/a/b.jpg` becomes `DEST/a/b.png`), with the manifest in
    /// `DEST/_manifest/<batch id>.jsonl`.
    pub destination: String,
    /// Base URL of a dsobel server.
    #[arg(long, env = "DSOBEL_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API key, when the server requires one.
    #[arg(long, env = "DSOBEL_API_KEY", hide_env_values = true, value_parser = dsobel_service::config::secret)]
    pub api_key: Option<SecretString>,
    /// The operator, under the same names as `dsobel process` and the API.
    #[command(flatten)]
    pub operator: OperatorArgs,
    /// Sent as `Idempotency-Key`: running the command again with the same key follows the
    /// batch the first run started instead of starting another.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Start the batch and print its id, without following it.
    #[arg(long)]
    pub detach: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs `dsobel batch`; the exit code is 0 when every item is done or skipped, 1 otherwise.
pub fn run(args: BatchArgs) -> Result<i32> {
    let options = args.operator.options().map_err(|e| anyhow::anyhow!(refusal(&e)))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let client = Client::new(&args.server, args.api_key.clone());
        let request = BatchRequest {
            source: args.source.clone(),
            destination: args.destination.clone(),
            options: JobOptions::new(options, None),
        };
        let links = match client.start_batch(&request, args.idempotency_key.as_deref()).await {
            Ok(links) => links,
            Err(e) => bail!("{e}"),
        };
        if args.detach {
            println!("{}", links.id);
            return Ok(0);
        }
        let bar = if args.quiet || !std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} batch {prefix} [{bar:30}] {pos}/{len} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(links.id.to_string()[..8].to_owned());
        let status = client.follow_batch(&links.id, |status| show(&bar, status)).await;
        bar.finish_and_clear();
        let status = match status {
            Ok(status) => status,
            Err(e) => bail!("{e}"),
        };
        print_summary(&status);
        let ok = status.state == BatchState::Done && status.counts.failed == 0;
        Ok(if ok { 0 } else { 1 })
    })
}

fn show(bar: &ProgressBar, status: &BatchStatus) {
    let c = status.counts;
    bar.set_length(c.total);
    bar.set_position(c.ended());
    let listing = if status.state == BatchState::Listing { ", listing" } else { "" };
    let eta = status.eta_secs.map(|s| format!(", {s:.0} s left")).unwrap_or_default();
    let rate = status.rate_per_sec.map(|r| format!(" {r:.1}/s")).unwrap_or_default();
    bar.set_message(format!("done {} skipped {} failed {}{rate}{listing}{eta}", c.done, c.skipped, c.failed));
}

fn print_summary(status: &BatchStatus) {
    let c = status.counts;
    println!(
        "batch {} {}: {} items, {} done, {} skipped, {} failed{}",
        status.id,
        status.state.as_str(),
        c.total,
        c.done,
        c.skipped,
        c.failed,
        status.rate_per_sec.map(|r| format!(" ({r:.1} items/s)")).unwrap_or_default()
    );
    if let Some(error) = &status.error {
        println!("  {}: {}", error.code, error.message);
    }
    println!("manifest: {}", status.manifest);
}
