//! `dsobel engine-bench`: times the engine's stages on real files, in memory, so it can be
//! compared with other tools measured the same way (see `scripts/compare-opencv.py`).
//!
//! For each file, each stage runs `--repeat` times and the fastest run is reported: decode
//! (bytes → luma), kernel (luma → output bytes, no encoding), encode (luma → stitched PNG,
//! filter included) and end to end (bytes → PNG bytes, what `dsobel process` does).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use dsobel_codec::pipeline::encode_luma;
use dsobel_codec::{Limits, ProcessOptions, decode_luma, process_bytes};
use dsobel_kernel::png::CompressionLevel;
use dsobel_kernel::{Backend, RowBlock, filter_block};

use crate::cli::FilterArgs;

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
    /// Print one JSON object per file instead of a table.
    #[arg(long)]
    pub json: bool,
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

/// Runs the benchmark and prints the results.
pub fn run(args: EngineBenchArgs) -> Result<()> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.threads.max(1)).build()?;
    let options = ProcessOptions {
        params: args.filter.params(),
        limits: Limits::default(),
        strips: None,
        compression: CompressionLevel(args.filter.compression),
        // One image at a time: a second thread overlaps the decode with the rest.
        overlap_decode: args.threads >= 2,
    };
    if !args.json {
        println!("backend {} · {} thread(s) · best of {}", Backend::detect(), args.threads, args.repeat);
        println!(
            "{:<28} {:>11} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "file", "size", "decode ms", "kernel ms", "encode ms", "total ms", "MPx/s"
        );
    }
    pool.install(|| -> Result<()> {
        for path in &args.files {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let (decode, image) = best(args.repeat, || Ok(decode_luma(&bytes, &options.limits)?))?;
            // Into a reused buffer, as the pipeline does: the kernel, not fresh pages, is timed.
            let mut edges = vec![0u8; image.pixels.len()];
            let (kernel, _) = best(args.repeat, || {
                let block = RowBlock::whole(&image.pixels, image.width, image.height);
                Ok(filter_block(&block, 0..image.height, &options.params, &mut edges)?)
            })?;
            let (encode, _) = best(args.repeat, || Ok(encode_luma(&image, &options)?))?;
            let (total, done) = best(args.repeat, || Ok(process_bytes(&bytes, &options)?))?;
            let mpx = (image.width * image.height) as f64 / 1e6;
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            if args.json {
                println!(
                    "{{\"file\":{:?},\"width\":{},\"height\":{},\"threads\":{},\"repeat\":{},\"backend\":\"{}\",\"decode_ms\":{:.3},\"kernel_ms\":{:.3},\"encode_ms\":{:.3},\"end_to_end_ms\":{:.3},\"png_bytes\":{}}}",
                    path.display().to_string(),
                    image.width,
                    image.height,
                    args.threads,
                    args.repeat,
                    Backend::detect(),
                    ms(decode),
                    ms(kernel),
                    ms(encode),
                    ms(total),
                    done.png.len()
                );
            } else {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                println!(
                    "{:<28} {:>11} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.0}",
                    name,
                    format!("{}x{}", image.width, image.height),
                    ms(decode),
                    ms(kernel),
                    ms(encode),
                    ms(total),
                    mpx / total.as_secs_f64()
                );
            }
        }
        Ok(())
    })
}
