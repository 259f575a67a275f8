//! Wiring: what `dsobel serve` and `dsobel worker` start, given a listener and a shutdown
//! token. Tests pass a port-0 listener and a token they control; `main` passes SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{ServeArgs, WorkerArgs, cores};
use crate::coordinator::{Coordinator, CoordinatorConfig};
use crate::error::SetupError;
use crate::http::{AppState, router};
use crate::telemetry::Metrics;
use crate::transport::Transport;
use crate::worker::{Worker, WorkerConfig};

/// A token cancelled on SIGTERM or SIGINT (Ctrl-C).
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        tracing::info!("shutdown requested; finishing in-flight work");
        cancel.cancel();
    });
    token
}

/// A running `serve`: its state, for tests that look inside.
pub struct Serving {
    /// The coordinator.
    pub coordinator: Arc<Coordinator>,
    /// The metrics.
    pub metrics: Metrics,
}

/// Builds the backend (and, in embedded mode, its worker tasks) on an already-connected
/// transport, serves on `listener` until `shutdown`, then drains: requests in flight, then (in
/// embedded mode) the jobs accepted, then the background loops and tasks, each within the
/// grace period.
pub async fn serve_with(
    args: ServeArgs,
    transport: Transport,
    listener: TcpListener,
    shutdown: CancellationToken,
    ready: impl FnOnce(Serving),
) -> Result<(), SetupError> {
    let metrics = Metrics::new();
    let config = CoordinatorConfig {
        limits: args.limits(),
        result_ttl: args.lifetimes.result_ttl(),
        work_ttl: args.lifetimes.work_ttl(),
        min_strip_pixels: args.min_strip_pixels,
        max_strip_bytes: args.max_strip_bytes,
        compression: args.compression,
        max_jobs_in_flight: args.max_jobs_in_flight,
        max_queued_jobs: args.max_queued_jobs,
        memory_watermark: args.store_memory_watermark,
        sweep_interval: Duration::from_millis(args.sweep_interval_ms.max(10)),
        max_deliveries: args.transport.max_deliveries,
        max_strips: usize::from(args.max_fragments),
        max_background_stitches: 2 * cores(),
        stitch_delay: Duration::from_millis(args.drill_stitch_delay_ms),
        batch_ttl: args.batches.batch_ttl(),
    };
    let stores = Arc::new(args.batches.stores().map_err(SetupError::BatchStores)?);
    let batches = crate::batch::Batches::new(
        transport.clone(),
        stores.clone(),
        crate::batch::BatchConfig {
            limits: dsobel_codec::Limits { max_bytes: args.max_upload_bytes, ..args.limits() },
            compression: args.compression,
            queue_ahead: args.batches.batch_queue_ahead,
            record_ttl: args.batches.batch_ttl(),
            lease: Duration::from_secs(10),
            sweep_interval: Duration::from_secs(2),
        },
    );
    let wakeups = transport.notifier.listen().await.map_err(SetupError::Connect)?;
    let coordinator = Coordinator::new(transport.clone(), config, metrics.clone(), Arc::from(wakeups));
    let loops_stop = CancellationToken::new();
    let loops = tokio::spawn(coordinator.clone().run_loops(loops_stop.clone()));
    let batch_sweeper = tokio::spawn(batches.clone().run_sweeper(loops_stop.clone()));
    let workers_stop = CancellationToken::new();
    let embedded_workers = if transport.embedded {
        let slots = args.workers.unwrap_or_else(cores).max(1);
        let config = WorkerConfig::new(&args.lifetimes, Duration::ZERO)
            .with_batches(stores.clone(), args.batches.batch_ttl());
        let worker = Worker::new(transport.clone(), metrics.clone(), config, workers_stop.clone());
        tracing::info!(
            workers = slots,
            "embedded mode: in-memory queue and store, worker tasks in this process"
        );
        Some(tokio::spawn(worker.run(slots, 1)))
    } else {
        tracing::info!(queue = %args.transport.queue, "distributed mode: RabbitMQ and Redis");
        None
    };
    // One beat before the first upload can arrive: admission and the automatic strip count
    // then know the system from the start (later beats come with the sweeps).
    if let Err(e) = coordinator.beat_now().await {
        tracing::warn!(error = %e, "could not read the system's load yet; the sweeper will");
    }
    let state = Arc::new(AppState {
        coordinator: coordinator.clone(),
        batches: batches.clone(),
        metrics: metrics.clone(),
        api_key: args.api_key.clone().filter(|k| !k.expose_secret().is_empty()),
        max_upload_bytes: args.max_upload_bytes,
        upload_memory: crate::http::UploadMemory::new(args.upload_memory_bytes.max(args.max_upload_bytes)),
        shutdown: shutdown.clone(),
        page: args.web_dir.clone().map_or(crate::web::Page::Embedded, crate::web::Page::Folder),
        body_idle_timeout: Duration::from_secs(args.body_idle_timeout_secs.max(1)),
        upload_timeout: Duration::from_secs(args.upload_timeout_secs.max(1)),
        client_limits: crate::client_limits::ClientLimits::new(args.client_limits()),
    });
    let address = listener.local_addr().map_err(SetupError::Serve)?;
    tracing::info!(%address, backend = %dsobel_kernel::Backend::detect(), "dsobel listening on http://{address}/");
    report_address(args.address_file.as_deref(), address)?;
    let coordinator_for_drain = coordinator.clone();
    let metrics_for_listener = metrics.clone();
    ready(Serving { coordinator, metrics });
    let grace = args.shutdown.grace();
    let server = tokio::spawn(crate::listener::serve(
        listener,
        router(state),
        args.connections.limits(),
        metrics_for_listener,
        shutdown.clone(),
    ));
    shutdown.cancelled().await;
    // Batches are driven on by another replica (or, embedded, end with this process).
    batches.stop(grace.min(Duration::from_secs(5))).await;
    // Requests in flight get the grace period; then embedded workers finish their strips.
    if tokio::time::timeout(grace, server).await.is_err() {
        tracing::warn!("HTTP requests still open after the grace period; closing them");
    }
    // In embedded mode the queue lives in this process: accepted jobs are finished before
    // exit (within the grace period), since nothing else could pick them up.
    if embedded_workers.is_some() && !coordinator_for_drain.drain(grace).await {
        tracing::warn!("jobs still pending after the grace period; they are lost with this process");
    }
    workers_stop.cancel();
    if let Some(workers) = embedded_workers
        && tokio::time::timeout(grace, workers).await.is_err()
    {
        tracing::warn!("embedded workers still busy after the grace period");
    }
    loops_stop.cancel();
    let _ = loops.await;
    let _ = batch_sweeper.await;
    coordinator_for_drain.stop_background(grace).await;
    coordinator_for_drain.leave().await;
    tracing::info!("stopped");
    Ok(())
}

/// Writes `address` to `file` (when one is given) for the script or test that started this
/// process on port 0: to a file beside it first, then renamed, so a reader never sees half a
/// line.
fn report_address(file: Option<&std::path::Path>, address: std::net::SocketAddr) -> Result<(), SetupError> {
    let Some(file) = file else { return Ok(()) };
    let mut aside = file.as_os_str().to_owned();
    aside.push(".partial");
    let written = std::fs::write(&aside, format!("{address}\n")).and_then(|()| std::fs::rename(&aside, file));
    written.map_err(|e| {
        SetupError::Serve(std::io::Error::new(
            e.kind(),
            format!("cannot write the address file {}: {e}", file.display()),
        ))
    })
}

/// `dsobel serve`: connects the transport named by `args` and serves until `shutdown`.
pub async fn serve(
    args: ServeArgs,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), SetupError> {
    let transport = Transport::from_args(&args.transport).await?;
    serve_with(args, transport, listener, shutdown, |_| {}).await
}

/// `dsobel worker`: consumes strips until `shutdown`, then finishes the ones it holds.
pub async fn worker(
    args: WorkerArgs,
    shutdown: CancellationToken,
    strip_delay: Duration,
) -> Result<(), SetupError> {
    if args.transport.amqp_url.is_none() || args.transport.redis_url.is_none() {
        return Err(SetupError::WorkerNeedsServers);
    }
    let transport = Transport::from_args(&args.transport).await?;
    let metrics = Metrics::new();
    let slots = args.workers.unwrap_or_else(cores).max(1);
    // Known before the health endpoint answers, so it is not "ready" with no task consuming.
    metrics.worker_slots.set(slots as i64);
    let stores = Arc::new(args.batches.stores().map_err(SetupError::BatchStores)?);
    let config =
        WorkerConfig::new(&args.lifetimes, strip_delay).with_batches(stores, args.batches.batch_ttl());
    let worker = Worker::new(transport.clone(), metrics.clone(), config, shutdown.clone());
    let health = match args.health_listen {
        Some(address) => {
            let listener =
                TcpListener::bind(address).await.map_err(|source| SetupError::Bind { address, source })?;
            let address = listener.local_addr().map_err(SetupError::Serve)?;
            tracing::info!(%address, "worker health endpoints on http://{address}/healthz");
            report_address(args.address_file.as_deref(), address)?;
            let app: Router = crate::health::router(crate::health::Health {
                transport: transport.clone(),
                metrics: metrics.clone(),
                needs_consumers: true,
                coordinator: None,
            });
            let limits = args.connections.limits();
            Some(tokio::spawn(crate::listener::serve(
                listener,
                app,
                limits,
                metrics.clone(),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    tracing::info!(slots, prefetch = args.prefetch, backend = %dsobel_kernel::Backend::detect(), "worker consuming {}", args.transport.queue);
    let run = tokio::spawn(worker.run(slots, args.prefetch));
    shutdown.cancelled().await;
    if tokio::time::timeout(args.shutdown.grace(), run).await.is_err() {
        tracing::warn!("strips still running after the grace period; they return to the queue");
    }
    if let Some(health) = health {
        let _ = health.await;
    }
    tracing::info!("worker stopped");
    Ok(())
}
