//! `dsobel submit`: a client of the HTTP API. Uploads files, follows each job on its event
//! stream with a progress bar, and saves the results, so nobody has to write curl loops.
//!
//! Overload answers (429, 503) are retried after their `Retry-After`, a bounded number of times;
//! any other refusal prints one line with the API's error code and the rest carry on.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use dsobel_client::{Client, ErrorCode, JobId, JobResult, JobState, JobStatus, Upload};
use dsobel_service::config::SecretString;

use crate::cli::OperatorArgs;
use crate::inputs::{image_files, output_name};
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Arguments of `dsobel submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Image files, or directories of images, to send.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Walk directories recursively.
    #[arg(short, long)]
    pub recursive: bool,
    /// Base URL of a dsobel server (or of nginx in front of it).
    #[arg(long, env = "DSOBEL_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API key, when the server requires one.
    #[arg(long, env = "DSOBEL_API_KEY", hide_env_values = true, value_parser = dsobel_service::config::secret)]
    pub api_key: Option<SecretString>,
    /// Output file (one input only).
    #[arg(short, long, value_name = "OUT", conflicts_with = "out_dir")]
    pub output_file: Option<PathBuf>,
    /// Directory for the results (`<stem>-edges.png`); default: beside each input.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// The operator, under the same names as `dsobel process` and the API.
    #[command(flatten)]
    pub operator: OperatorArgs,
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
    let name = output_name(input, args.operator.format);
    match &args.out_dir {
        Some(dir) => dir.join(name),
        None => input.with_file_name(name),
    }
}

/// One file: upload (retrying overload answers), follow, download, save. A job the server
/// lost is sent again once.
async fn one(client: &Client, path: &Path, query: &str, out: &Path, bar: &ProgressBar) -> Result<()> {
    let bytes = tokio::fs::read(path).await.with_context(|| format!("cannot read {}", path.display()))?;
    bar.set_message("uploading");
    let mut id = upload(client, bytes.clone(), query, bar).await?;
    // A job the server's store lost (it restarted without its data, or was emptied) ends
    // `job-lost`, or, for the moment before the server notices, reads as unknown. This file is
    // still here, so it is sent once more, as a new job.
    let followed = match client.follow(&id, |status| show(bar, status)).await {
        Ok(status) if status.error.as_ref().is_some_and(|e| e.code == ErrorCode::JobLost) => None,
        Ok(status) => Some(status),
        Err(e) if e.code() == "not-found" => None,
        Err(e) => return Err(e.into()),
    };
    let status = match followed {
        Some(status) => status,
        None => {
            bar.set_message("the server lost the job; sending it again");
            id = upload(client, bytes, query, bar).await?;
            client.follow(&id, |status| show(bar, status)).await?
        }
    };
    if status.state != JobState::Done {
        let error = status.error.map(|e| format!("{} ({})", e.message, e.code));
        bail!("{}", error.unwrap_or_else(|| format!("the job ended {:?}", status.state)));
    }
    let JobResult::Ready(png) = client.result(&id).await? else {
        bail!("the job is done but its result is not ready");
    };
    save(&png, out).await?;
    bar.set_message(format!("saved {}", out.display()));
    Ok(())
}

async fn upload(client: &Client, bytes: Vec<u8>, query: &str, bar: &ProgressBar) -> Result<JobId> {
    // One key for every attempt: a retry after a lost answer gets the same job, not a second.
    let key = JobId::random().to_string();
    let mut attempt = 0;
    loop {
        match client.upload_once(bytes.clone(), query, Some(&key)).await {
            Ok(Upload::Accepted(links)) => return Ok(links.id),
            Ok(Upload::Finished { id: Some(id), .. }) => return Ok(id),
            Ok(Upload::Finished { id: None, .. }) => bail!("the server answered without a job id"),
            Err(e) if e.is_busy() && attempt < MAX_RETRIES => {
                attempt += 1;
                let wait = e.retry_after().unwrap_or(2).clamp(1, 60);
                bar.set_message(format!("server busy; retrying in {wait} s"));
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            Err(e) if e.is_busy() => bail!("the server stayed busy after {MAX_RETRIES} retries: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes beside the target first, so an interrupted run never leaves half a file.
async fn save(png: &[u8], out: &Path) -> Result<()> {
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    tokio::fs::write(&partial, png).await.with_context(|| format!("cannot write {}", partial.display()))?;
    tokio::fs::rename(&partial, out).await.with_context(|| format!("cannot write {}", out.display()))
}

fn show(bar: &ProgressBar, status: &JobStatus) {
    bar.set_length(u64::from(status.strips_total).max(1));
    bar.set_position(u64::from(status.strips_done));
    bar.set_message(status.state.as_str());
}

/// The upload's query: every operator option (checked here first) and the strip count.
fn query(args: &SubmitArgs) -> Result<String> {
    let mut query = args.operator.query().map_err(|e| anyhow::anyhow!("{}", crate::cli::refusal(&e)))?;
    if let Some(f) = args.fragments {
        query.push_str(&format!("&fragments={f}"));
    }
    Ok(query)
}

/// Runs `dsobel submit`; returns the exit code.
pub fn run(args: SubmitArgs) -> Result<i32> {
    let mut files = Vec::new();
    for input in &args.inputs {
        files.extend(image_files(input, args.recursive)?);
    }
    if args.output_file.is_some() && files.len() != 1 {
        bail!("-o/--output-file takes exactly one image ({} given); use --out-dir for several", files.len());
    }
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let query = query(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let http = dsobel_client::http_builder().connect_timeout(Duration::from_secs(10)).build()?;
        let client = Client::with_http(http, &args.server, args.api_key.clone());
        let bars = MultiProgress::with_draw_target(if args.quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
        let style = ProgressStyle::with_template("{prefix:>24} {bar:30.cyan/blue} {pos}/{len} strips  {msg}")
            .expect("valid template");
        let jobs = files.iter().map(|path| {
            let bar = bars.add(ProgressBar::new(1).with_style(style.clone()));
            bar.set_prefix(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            let out = output_path(&args, path);
            let (client, query, bars) = (&client, &query, &bars);
            async move {
                let result = one(client, path, query, &out, &bar).await;
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
