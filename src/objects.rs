//! `dsobel process` with object-store locations: `dsobel process s3://photos/2024 --out-dir
//! s3://edges/2024` (or `gs://`, `file://`, and local folders on either side) lists the source,
//! fetches each image, computes it here and puts the output, with the same naming and skip
//! rule as a server's batch (`SRC/a/b.jpg` becomes `DEST/a/b.png`, stamped with the source's
//! ETag and the options digest; an output already current is skipped). No server, no manifest:
//! a summary, one line per failed item, and a non-zero exit code when any failed. Each image
//! is one strip (as a batch computes it), several images at once.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use dsobel_codec::RunOptions;
use dsobel_objects::batch::{ItemPlan, OptionsDigest, OutputExtension, check_batch_locations, plan_item};
use dsobel_objects::{AllowList, CloudConfig, Key, ObjectInfo, Objects, Stores};
use dsobel_service::batch::{ItemEnd, ItemObjects, ItemStop, compute_object, options_digest};
use dsobel_service::model::JobOptions;
use futures_util::StreamExt;

/// Whether a command-line path is a URL (`s3://`, `gs://`, `file://`, or one refused later).
pub fn is_url(path: &Path) -> bool {
    path.to_str().is_some_and(|s| s.contains("://"))
}

/// The location of a command-line path: a URL as it is, a local folder as `file://` (created
/// when `create`).
fn location_of(path: &Path, create: bool) -> Result<String> {
    if is_url(path) {
        return Ok(path.to_str().expect("a URL is text").to_owned());
    }
    if create {
        std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    }
    let absolute = path.canonicalize().with_context(|| format!("cannot open {}", path.display()))?;
    Ok(format!("file://{}", absolute.display()))
}

/// How one item ended.
enum Ended {
    Done,
    Skipped,
    Failed(String),
}

/// Runs the object-store form of `dsobel process`: `input` to `out_dir` with `run`'s options,
/// `parallel` images at once. The exit code is 1 when an item failed.
pub fn run(input: &Path, out_dir: &Path, run: RunOptions, parallel: usize, quiet: bool) -> Result<i32> {
    let (source, destination) = (location_of(input, false)?, location_of(out_dir, true)?);
    let allow = AllowList::parse(&format!("{source},{destination}")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let stores = Stores::new(allow, CloudConfig::from_env());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let source = stores.open(&source).map_err(|e| anyhow::anyhow!("{e}"))?;
        let destination = stores.open(&destination).map_err(|e| anyhow::anyhow!("{e}"))?;
        check_batch_locations(source.location(), destination.location()).map_err(|e| anyhow::anyhow!("{e}"))?;
        source.check_source().await.map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
        let extension = OutputExtension::new(run.options.format.extension()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let stamp_digest = options_digest(&JobOptions::new(run.options, None));
        let shared = Arc::new((source, destination, run, stamp_digest));
        // Items are computed as they are listed, `parallel` at a time: the listing is never
        // held whole in memory.
        let (mut done, mut skipped, mut failed) = (0u64, 0u64, 0u64);
        let ignored = std::sync::atomic::AtomicU64::new(0);
        let listing_error = std::sync::Mutex::new(None);
        let work = shared
            .0
            .list()
            .take_while(|object| {
                let go_on = match object {
                    Ok(_) => true,
                    Err(e) => {
                        *listing_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                        false
                    }
                };
                std::future::ready(go_on)
            })
            .filter_map(|object| {
                let planned = object.ok().and_then(|object| match plan_item(&object.key, &extension) {
                    Ok(ItemPlan::Ignore(_)) => {
                        ignored.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        None
                    }
                    Ok(ItemPlan::Process { output }) => Some((object, Ok(output))),
                    Err(e) => Some((object, Err(e))),
                });
                std::future::ready(planned)
            });
        let mut ended = work
            .map(|(object, output)| {
                let shared = shared.clone();
                async move {
                    let key = object.key.to_string();
                    let ended = match output {
                        Ok(output) => one(&shared.0, &shared.1, &object, &output, shared.2, &shared.3).await,
                        Err(e) => Ended::Failed(format!("{}: {e}", e.code())),
                    };
                    (key, ended)
                }
            })
            .buffer_unordered(parallel.max(1));
        while let Some((key, outcome)) = ended.next().await {
            match outcome {
                Ended::Done => done += 1,
                Ended::Skipped => skipped += 1,
                Ended::Failed(why) => {
                    failed += 1;
                    eprintln!("{key}: {why}");
                }
            }
        }
        drop(ended);
        let ignored = ignored.into_inner();
        if let Some(e) = listing_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            bail!("cannot list {} (after {} items): {e}", shared.0.location(), done + skipped + failed);
        }
        if !quiet {
            eprintln!(
                "{} items: {done} done, {skipped} skipped (already current), {failed} failed; {ignored} other objects ignored",
                done + skipped + failed
            );
        }
        Ok(if failed > 0 { 1 } else { 0 })
    })
}

/// One item, as a batch's worker computes it.
async fn one(
    source: &Objects,
    destination: &Objects,
    object: &ObjectInfo,
    output: &Key,
    run: RunOptions,
    digest: &OptionsDigest,
) -> Ended {
    let objects = ItemObjects { source, key: &object.key, destination, output };
    match compute_object(objects, &object.etag, digest, run, None).await {
        Ok(ItemEnd::Written { .. }) => Ended::Done,
        Ok(ItemEnd::Current { .. }) => Ended::Skipped,
        Err(ItemStop::Failed(code, message)) => Ended::Failed(format!("{code}: {message}")),
        Err(ItemStop::Unavailable(e)) => Ended::Failed(format!("{}: {e}", e.code())),
        Err(ItemStop::Crashed(e)) => Ended::Failed(format!("the computation crashed: {e}")),
    }
}
