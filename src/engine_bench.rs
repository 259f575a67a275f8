//! `dsobel engine-bench`: times the engine's stages on real files, in memory, so it can be
//! compared with other tools measured the same way (see `scripts/compare-opencv.py`).
//!
//! For each file and each output asked for, each stage runs `--repeat` times and the fastest
//! run is reported: decode (bytes → luma), kernel (luma → output samples in memory, no
//! encoding: for Canny the edge map, for Otsu the histogram and the thresholded map),
//! encode (luma → the stitched file, kernel included) and end to end (bytes → file bytes,
//! what `dsobel process` does).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use dsobel_codec::pipeline::encode_luma;
use dsobel_codec::{Limits, ProcessOptions, RunOptions, decode_luma, process_file};
use dsobel_kernel::png::CompressionLevel;
use dsobel_kernel::{
    Backend, Options, Output, RowBlock, Samples, Threshold, compute_block_with, compute_image_with,
    filter_block, run_strips,
};

use crate::cli::{FilterArgs, refusal};

/// Arguments of `dsobel engine-bench`.
#[derive(Debug, Args)]
pub struct EngineBenchArgs {
    /// Image files to measure.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Threads (1 measures one core).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Runs per stage; the fastest is reported.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Print one JSON object per file and output instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Measure each of these outputs in turn (comma-separated; `all` for every one), with the
    /// other options as given; default: `--output` alone.
    #[arg(long, value_delimiter = ',', value_name = "OUTPUT,...")]
    pub outputs: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

fn best<T>(repeat: usize, mut f: impl FnMut() -> Result<T>) -> Result<(Duration, T)> {
    let mut fastest = Duration::MAX;
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let started = Instant::now();
        let value = f()?;
        fastest = fastest.min(started.elapsed());
        last = Some(value);
    }
    Ok((fastest, last.expect("at least one run")))
}

/// The options of each output to measure.
fn outputs(args: &EngineBenchArgs) -> Result<Vec<Options>> {
    let base = args.filter.options().map_err(|e| anyhow::anyhow!("{}", refusal(&e)))?;
    if args.outputs.is_empty() {
        return Ok(vec![base]);
    }
    let words: Vec<String> = if args.outputs.iter().any(|w| w == "all") {
        Output::ALL.iter().map(|o| o.as_str().to_owned()).collect()
    } else {
        args.outputs.clone()
    };
    let mut all = Vec::new();
    for word in words {
        let output: Output = word.parse().map_err(|e| anyhow::anyhow!("--outputs: {e}"))?;
        let mut options = Options { output, ..base };
        // A format that cannot hold this output gives way to one that can, and a threshold
        // meant for another output to the default.
        if options.validate().is_err() {
            options.format = dsobel_kernel::Format::Npy;
        }
        if output != Output::Binary {
            options.threshold = Threshold::default();
        }
        if let Err(e) = options.validate() {
            bail!("{}", refusal(&e));
        }
        all.push(options);
    }
    Ok(all)
}

/// Runs the benchmark and prints the results.
pub fn run(args: EngineBenchArgs) -> Result<()> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.threads.max(1)).build()?;
    let limits = Limits::default();
    let compression = CompressionLevel(args.filter.compression);
    let measured = outputs(&args)?;
    if !args.json {
        println!("backend {} · {} thread(s) · best of {}", Backend::detect(), args.threads, args.repeat);
        println!(
            "{:<24} {:>11} {:<24} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
            "file", "size", "output", "decode ms", "kernel ms", "encode ms", "total ms", "GPx/s", "MPx/s"
        );
    }
    pool.install(|| -> Result<()> {
        for path in &args.files {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let (decode, image) = best(args.repeat, || Ok(decode_luma(&bytes, &limits)?))?;
            let (w, h) = (image.width, image.height);
            for options in &measured {
                let run = RunOptions {
                    options: *options,
                    limits,
                    strips: None,
                    compression,
                    // One image at a time: a second thread overlaps the decode with the rest.
                    overlap_decode: args.threads >= 2,
                };
                let legacy = options.filter_params().filter(|_| options.format == dsobel_kernel::Format::Png);
                // Into a reused buffer, as the pipeline does: the kernel, not fresh pages, is timed.
                let (kernel, _) = if let Some(params) = legacy {
                    let mut edges = vec![0u8; image.pixels.len()];
                    best(args.repeat, || {
                        let block = RowBlock::whole(&image.pixels, w, h);
                        Ok(filter_block(&block, 0..h, &params, &mut edges)?)
                    })?
                } else if options.output == Output::Canny || options.threshold == Threshold::Otsu {
                    best(args.repeat, || Ok(compute_image_with(Backend::detect(), options, &image.pixels, w, h).map(|_| ())?))?
                } else {
                    let mut out = Samples::zeros(options.sample()?, w * h);
                    best(args.repeat, || {
                        let block = RowBlock::whole(&image.pixels, w, h);
                        Ok(compute_block_with(Backend::detect(), options, &block, 0..h, out.slice_mut(0..w * h))?)
                    })?
                };
                let (encode, _) = if let Some(params) = legacy {
                    let legacy_options = ProcessOptions { params, limits, strips: None, compression, overlap_decode: false };
                    best(args.repeat, || Ok(encode_luma(&image, &legacy_options).map(|e| e.png.len())?))?
                } else {
                    let count = rayon::current_num_threads();
                    best(args.repeat, || Ok(run_strips(options, &image.pixels, w, h, count, compression).map(|r| r.0.len())?))?
                };
                let (total, done) = best(args.repeat, || Ok(process_file(&bytes, &run)?))?;
                let mpx = (w * h) as f64 / 1e6;
                let ms = |d: Duration| d.as_secs_f64() * 1e3;
                let label = format!("{}/{}/k{}/{}", options.output, options.kernel, options.ksize, options.format);
                if args.json {
                    println!(
                        "{{\"file\":{:?},\"output\":\"{}\",\"kernel\":\"{}\",\"ksize\":{},\"magnitude\":\"{}\",\"format\":\"{}\",\"width\":{w},\"height\":{h},\"threads\":{},\"repeat\":{},\"backend\":\"{}\",\"decode_ms\":{:.3},\"kernel_ms\":{:.3},\"encode_ms\":{:.3},\"end_to_end_ms\":{:.3},\"png_bytes\":{},\"result_bytes\":{}}}",
                        path.display().to_string(),
                        options.output,
                        options.kernel,
                        options.ksize,
                        options.magnitude,
                        options.format,
                        args.threads,
                        args.repeat,
                        Backend::detect(),
                        ms(decode),
                        ms(kernel),
                        ms(encode),
                        ms(total),
                        done.bytes.len(),
                        done.bytes.len()
                    );
                } else {
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    println!(
                        "{:<24} {:>11} {:<24} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8.2} {:>8.0}",
                        name,
                        format!("{w}x{h}"),
                        label,
                        ms(decode),
                        ms(kernel),
                        ms(encode),
                        ms(total),
                        mpx / 1e3 / kernel.as_secs_f64(),
                        mpx / total.as_secs_f64()
                    );
                }
            }
        }
        Ok(())
    })
}
