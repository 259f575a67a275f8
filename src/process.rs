//! `dsobel process`: local files (or stdin) to edge PNGs, with no server.
//!
//! Inputs are files, directories (with `--recursive`) or `-`. Each image goes through the same
//! strip pipeline as the distributed system. One failed input prints one line and does not
//! stop the others; the exit code says whether any failed.
//!
//! With an object-store URL as the input or `--out-dir` (`s3://`, `gs://`, `file://`), the
//! images of that location are listed, fetched, computed and put (`objects`).

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use dsobel_codec::{Limits, RunOptions, process_file};
use dsobel_kernel::Format;
use dsobel_kernel::png::CompressionLevel;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::cli::{FilterArgs, LimitArgs, refusal};
use crate::inputs::{image_files, output_name};

/// Arguments of `dsobel process`.
#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Image files, directories, or `-` for standard input; or one object-store location
    /// (`s3://bucket/prefix`, `gs://bucket/prefix`, `file:///path`), with `--out-dir`.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output file (one input only); `-` writes to standard output.
    #[arg(short, long, value_name = "OUT", conflicts_with = "out_dir")]
    pub output_file: Option<PathBuf>,
    /// Directory for the outputs (named `<input stem>-edges.png`, or `.tif` / `.npy` for those
    /// formats); created if missing. Or an object-store location: outputs keep the source's
    /// key with the format's extension, and outputs already current are skipped.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Walk directories recursively.
    #[arg(short, long)]
    pub recursive: bool,
    /// Split each image into N strips (exercises the distributed strip path locally);
    /// default: one per thread.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub strips: Option<u32>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
    /// No progress bar and no summary.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Largest input file accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().max_bytes)]
    pub max_bytes: u64,
}

/// `dsobel process` between object-store locations (see `objects`).
fn run_on_objects(args: &ProcessArgs, operator: dsobel_kernel::Options) -> Result<i32> {
    let [input] = args.inputs.as_slice() else {
        bail!("with an object-store URL, give one input location (a bucket/prefix or a folder)");
    };
    let Some(out_dir) = &args.out_dir else {
        bail!(
            "with an object-store URL, give --out-dir (a location or a folder): outputs never go into the source"
        );
    };
    let run = RunOptions {
        options: operator,
        limits: Limits {
            max_pixels: args.limits.max_pixels,
            max_dimension: args.limits.max_dimension,
            max_bytes: args.max_bytes,
        },
        strips: Some(args.strips.unwrap_or(1) as usize),
        compression: CompressionLevel(args.filter.compression),
        overlap_decode: false,
    };
    let parallel = args.threads.map(|t| t as usize).unwrap_or_else(dsobel_service::config::cores);
    crate::objects::run(input, out_dir, run, parallel, args.quiet)
}

/// Where one job reads from and writes to.
#[derive(Debug, Clone)]
enum Source {
    Stdin,
    File(PathBuf),
}

#[derive(Debug, Clone)]
enum Sink {
    Stdout,
    File(PathBuf),
}

impl Source {
    fn label(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".into(),
            Source::File(p) => p.display().to_string(),
        }
    }
}

/// Resolves inputs and outputs into (source, sink) pairs, refusing ambiguous requests.
fn plan(args: &ProcessArgs, format: Format) -> Result<Vec<(Source, Sink)>> {
    let mut sources = Vec::new();
    for input in &args.inputs {
        if input.as_os_str() == "-" {
            sources.push(Source::Stdin);
        } else {
            sources.extend(image_files(input, args.recursive)?.into_iter().map(Source::File));
        }
    }
    if sources.iter().filter(|s| matches!(s, Source::Stdin)).count() > 1 {
        bail!("standard input can be given only once");
    }
    if let Some(out) = &args.output_file {
        if sources.len() != 1 {
            bail!(
                "-o/--output-file takes exactly one input ({} given); use --out-dir for several",
                sources.len()
            );
        }
        let sink = if out.as_os_str() == "-" { Sink::Stdout } else { Sink::File(out.clone()) };
        return Ok(vec![(sources.remove(0), sink)]);
    }
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    sources
        .into_iter()
        .map(|source| {
            let sink = match (&source, &args.out_dir) {
                (Source::Stdin, None) => Sink::Stdout,
                (Source::Stdin, Some(dir)) => {
                    Sink::File(dir.join(format!("stdin-edges.{}", format.extension())))
                }
                (Source::File(p), Some(dir)) => Sink::File(dir.join(output_name(p, format))),
                (Source::File(p), None) => Sink::File(p.with_file_name(output_name(p, format))),
            };
            Ok((source, sink))
        })
        .collect()
}

fn read_source(source: &Source, max_bytes: u64) -> Result<Vec<u8>> {
    match source {
        Source::Stdin => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .take(max_bytes + 1)
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
            Ok(bytes)
        }
        Source::File(path) => {
            let size =
                std::fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?.len();
            if size > max_bytes {
                bail!("input of {size} bytes exceeds the limit of {max_bytes} bytes (payload-too-large)");
            }
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
    }
}

fn write_sink(sink: &Sink, file: &[u8]) -> Result<()> {
    match sink {
        Sink::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(file).and_then(|()| out.flush()).context("cannot write standard output")
        }
        Sink::File(path) => {
            // Write beside the target and rename, so a failure never leaves half a file.
            let mut partial = path.as_os_str().to_owned();
            partial.push(".partial");
            let tmp = PathBuf::from(partial);
            std::fs::write(&tmp, file).with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
        }
    }
}

/// Runs `dsobel process`; returns the process exit code.
pub fn run(args: ProcessArgs) -> Result<i32> {
    let operator = match args.filter.options() {
        Ok(options) => options,
        Err(e) => bail!("{}", refusal(&e)),
    };
    if args.inputs.iter().any(|p| crate::objects::is_url(p))
        || args.out_dir.as_deref().is_some_and(crate::objects::is_url)
    {
        return run_on_objects(&args, operator);
    }
    let jobs = plan(&args, operator.format)?;
    let threads = args.threads.map(|t| t as usize).unwrap_or_else(dsobel_service::config::cores);
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().context("cannot start threads")?;
    let options = RunOptions {
        options: operator,
        limits: Limits {
            max_pixels: args.limits.max_pixels,
            max_dimension: args.limits.max_dimension,
            max_bytes: args.max_bytes,
        },
        strips: args.strips.map(|s| s as usize),
        compression: CompressionLevel(args.filter.compression),
        // Fewer images than threads leaves cores idle: overlap each image's decode with the
        // rest of its work.
        overlap_decode: jobs.len() < threads,
    };
    let writes_stdout = jobs.iter().any(|(_, sink)| matches!(sink, Sink::Stdout));
    let total_bytes: u64 = jobs
        .iter()
        .filter_map(|(s, _)| match s {
            Source::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Source::Stdin => None,
        })
        .sum();
    let long_work = jobs.len() > 4 || total_bytes > 8 << 20;
    let show_bar = !args.quiet && long_work && std::io::stderr().is_terminal();
    let bar = if show_bar {
        let bar = ProgressBar::with_draw_target(Some(jobs.len() as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40.cyan/blue} {pos}/{len} images  {elapsed_precise} ({eta} left)  {msg}",
            )
            .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let failures = Mutex::new(Vec::new());
    let megapixels = Mutex::new(0f64);
    pool.install(|| {
        jobs.par_iter().for_each(|(source, sink)| {
            let result = read_source(source, args.max_bytes).and_then(|bytes| {
                let done = process_file(&bytes, &options).map_err(|e| match &e {
                    dsobel_codec::ProcessError::Decode(d) => anyhow::anyhow!("{d} ({})", d.code()),
                    _ => anyhow::anyhow!(e),
                })?;
                write_sink(sink, &done.bytes)?;
                if let Some(t) = done.otsu_threshold
                    && !args.quiet
                {
                    bar.suspend(|| eprintln!("{}: otsu threshold {t}", source.label()));
                }
                Ok((done.width * done.height) as f64 / 1e6)
            });
            match result {
                Ok(mp) => *megapixels.lock().expect("lock") += mp,
                Err(e) => {
                    let line = format!("error: {}: {e:#}", source.label());
                    bar.suspend(|| eprintln!("{line}"));
                    failures.lock().expect("lock").push(line);
                }
            }
            bar.set_message(source.label());
            bar.inc(1);
        })
    });
    bar.finish_and_clear();
    let failures = failures.into_inner().expect("lock");
    let megapixels = megapixels.into_inner().expect("lock");
    let seconds = started.elapsed().as_secs_f64();
    let succeeded = jobs.len() - failures.len();
    if !args.quiet && (!writes_stdout || std::io::stderr().is_terminal() || !failures.is_empty()) {
        eprintln!(
            "{succeeded} image{} processed, {megapixels:.1} MP in {seconds:.2} s ({:.1} MPx/s){}",
            if succeeded == 1 { "" } else { "s" },
            if seconds > 0.0 { megapixels / seconds } else { 0.0 },
            if failures.is_empty() { String::new() } else { format!(", {} failed", failures.len()) }
        );
    }
    Ok(if failures.is_empty() { 0 } else { 1 })
}
