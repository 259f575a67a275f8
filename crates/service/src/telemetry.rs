//! Logs and metrics: `tracing` with JSON or pretty output, and the Prometheus registry.
//!
//! Spans carry the job id (`job` spans in the backend, `strip` spans in workers), so every log
//! line about a job, in any process, can be found by its id.

use std::io::IsTerminal;
use std::sync::{Arc, LazyLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global `tracing` subscriber (once; later calls are ignored).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        builder.json().with_current_span(true).with_span_list(false).try_init()
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}

/// Stored records that did not parse (each one failed its job instead of being skipped).
pub static UNREADABLE_RECORDS: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Labels of the request counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route pattern, e.g. `/status/{id}`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Status code.
    pub status: u16,
}

/// Labels of finished jobs and ended batch items.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `done` or `failed` (and `skipped` for a batch item).
    pub outcome: String,
}

/// Every metric of a process. Cheap to clone (all handles are shared).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// HTTP requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Upload accepted → PNG ready.
    pub job_duration: Histogram,
    /// Strip published → picked up by a worker.
    pub queue_wait: Histogram,
    /// Decoding uploads.
    pub decode: Histogram,
    /// Filtering strips.
    pub filter: Histogram,
    /// Encoding strips.
    pub encode: Histogram,
    /// Stitching results.
    pub stitch: Histogram,
    /// Jobs accepted by this backend and not finished.
    pub jobs_in_flight: Gauge,
    /// Strips being processed by this process.
    pub strips_in_flight: Gauge,
    /// Messages waiting in the work queue (read when scraped).
    pub queue_depth: Gauge,
    /// Worker tasks of this process.
    pub worker_slots: Gauge,
    /// Worker tasks of this process attached to the queue right now.
    pub consuming: Gauge,
    /// Seconds worker tasks spent processing (utilisation = rate / slots).
    pub worker_busy_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    /// Strips processed by this process.
    pub strips_processed: Counter,
    /// Strips received again after a failed or interrupted delivery.
    pub strip_redeliveries: Counter,
    /// Jobs stitched by this process.
    pub stitches: Counter,
    /// Strips a decoding worker handed to the queue for other workers.
    pub strips_published: Counter,
    /// Dead-lettered tasks whose job this backend failed.
    pub dead_letters: Counter,
    /// Jobs this backend took over from a replica that stopped.
    pub jobs_taken_over: Counter,
    /// Writes a worker held and tried again because the store was full.
    pub full_store_waits: Counter,
    /// Jobs finished, by outcome, seen by this process.
    pub jobs_finished: Family<OutcomeLabels, Counter>,
    /// Batch items ended by this process's workers, by outcome (`done`, `skipped`, `failed`).
    pub batch_items: Family<OutcomeLabels, Counter>,
    /// HTTP connections open.
    pub connections_open: Gauge,
    /// HTTP connections closed to make room (or refused) at the connection cap.
    pub connections_shed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A new registry with every metric registered.
    pub fn new() -> Self {
        let seconds = || Histogram::new(exponential_buckets(0.0005, 2.0, 18));
        let mut registry = Registry::with_prefix("dsobel");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            requests: Family::default(),
            job_duration: seconds(),
            queue_wait: seconds(),
            decode: seconds(),
            filter: seconds(),
            encode: seconds(),
            stitch: seconds(),
            jobs_in_flight: Gauge::default(),
            strips_in_flight: Gauge::default(),
            queue_depth: Gauge::default(),
            worker_slots: Gauge::default(),
            consuming: Gauge::default(),
            worker_busy_seconds: Counter::default(),
            strips_processed: Counter::default(),
            strip_redeliveries: Counter::default(),
            stitches: Counter::default(),
            strips_published: Counter::default(),
            dead_letters: Counter::default(),
            jobs_taken_over: Counter::default(),
            full_store_waits: Counter::default(),
            jobs_finished: Family::default(),
            batch_items: Family::default(),
            connections_open: Gauge::default(),
            connections_shed: Counter::default(),
        };
        registry.register("http_requests", "HTTP requests by route, method and status", m.requests.clone());
        registry.register("http_connections_open", "HTTP connections open", m.connections_open.clone());
        registry.register(
            "http_connections_shed",
            "HTTP connections closed to make room, or refused, at the connection cap",
            m.connections_shed.clone(),
        );
        registry.register("job_duration_seconds", "Upload accepted to result ready", m.job_duration.clone());
        registry.register("queue_wait_seconds", "Strip published to picked up", m.queue_wait.clone());
        registry.register("decode_seconds", "Decoding an upload to luma", m.decode.clone());
        registry.register("filter_seconds", "Filtering one strip", m.filter.clone());
        registry.register("encode_seconds", "Encoding one strip", m.encode.clone());
        registry.register("stitch_seconds", "Stitching one result", m.stitch.clone());
        registry.register("jobs_in_flight", "Jobs accepted here and not finished", m.jobs_in_flight.clone());
        registry.register("strips_in_flight", "Strips being processed here", m.strips_in_flight.clone());
        registry.register("queue_depth", "Messages waiting in the work queue", m.queue_depth.clone());
        registry.register("worker_slots", "Worker tasks in this process", m.worker_slots.clone());
        registry.register("consuming", "Worker tasks attached to the queue", m.consuming.clone());
        registry.register(
            "worker_busy_seconds",
            "Time worker tasks spent on strips",
            m.worker_busy_seconds.clone(),
        );
        registry.register("strips_processed", "Strips processed here", m.strips_processed.clone());
        registry.register("strip_redeliveries", "Strips received again", m.strip_redeliveries.clone());
        registry.register("stitches", "Jobs stitched here", m.stitches.clone());
        registry.register(
            "dead_letters",
            "Dead-lettered tasks whose job was failed here",
            m.dead_letters.clone(),
        );
        registry.register(
            "jobs_taken_over",
            "Jobs taken over here from a backend replica that stopped",
            m.jobs_taken_over.clone(),
        );
        registry.register(
            "full_store_waits",
            "Results a worker held until the full store had room for them",
            m.full_store_waits.clone(),
        );
        registry.register(
            "strips_published",
            "Strips a decoding worker here handed to other workers",
            m.strips_published.clone(),
        );
        registry.register("jobs_finished", "Jobs finished, by outcome", m.jobs_finished.clone());
        registry.register(
            "batch_items",
            "Batch items ended by the workers here, by outcome (done, skipped, failed)",
            m.batch_items.clone(),
        );
        registry.register(
            "poisoned_locks",
            "Locks found poisoned by a panic (a bug; their data was used as it was)",
            crate::locks::POISONED_LOCKS.clone(),
        );
        registry.register(
            "unreadable_records",
            "Stored records that did not parse (their jobs failed as internal errors)",
            UNREADABLE_RECORDS.clone(),
        );
        Metrics { registry: Arc::new(registry), ..m }
    }

    /// Counts a job that ended here (`done`, `failed` or `cancelled`) and, for one that is
    /// done, its time from upload to result.
    pub fn job_finished(&self, outcome: &str, total_ms: Option<f64>) {
        self.jobs_finished.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
        if let Some(total) = total_ms.filter(|_| outcome == "done") {
            self.job_duration.observe(total / 1e3);
        }
    }

    /// Counts a batch item that ended with `outcome`.
    pub fn batch_item_ended(&self, outcome: &str) {
        self.batch_items.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}
