//! Settings of `serve` and `worker`: every one a flag with a `DSOBEL_*` environment twin and
//! a default, all listed by `--help` (DESIGN §6).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use dsobel_codec::Limits;

/// Where tasks travel and results are kept.
#[derive(Debug, Clone, Args)]
pub struct TransportArgs {
    /// RabbitMQ URL (amqp://user:pass@host:5672/%2f). `serve` with neither this nor --redis-url
    /// runs the embedded mode (in-memory queue and store, worker tasks inside it); `worker`
    /// needs both.
    #[arg(long, env = "DSOBEL_AMQP_URL", hide_env_values = true, value_parser = secret)]
    pub amqp_url: Option<SecretString>,
    /// Redis URL (redis://:password@host:6379/0; rediss:// for TLS), or a Redis Cluster's seed
    /// nodes separated by commas (redis://h1:7000,redis://h2:7000); a single URL of a cluster
    /// node works too. `serve` with neither this nor --amqp-url runs the embedded mode; `worker`
    /// needs both.
    #[arg(long, env = "DSOBEL_REDIS_URL", hide_env_values = true, value_parser = secret)]
    pub redis_url: Option<SecretString>,
    /// Redis for the large values (uploads, strip rows and results, finished PNGs), which need
    /// no persistence: one URL, or a comma-separated list of a Redis Cluster's seed nodes.
    /// Unset: they go to --redis-url.
    #[arg(long, env = "DSOBEL_REDIS_BYTES_URL", hide_env_values = true, value_parser = secret)]
    pub redis_bytes_url: Option<SecretString>,
    /// Work queue name (its dead-letter queue is NAME.dead).
    #[arg(long, env = "DSOBEL_QUEUE", default_value = "dsobel.strips")]
    pub queue: String,
    /// Prefix of every Redis key and of the wake-up channels (letters, digits, `.`, `_`, `-`;
    /// no braces, which would change the keys' Redis Cluster hash tags).
    #[arg(long, env = "DSOBEL_NAMESPACE", default_value = "dsobel", value_parser = namespace)]
    pub namespace: String,
    /// Deliveries of one task before it goes to the dead-letter queue.
    #[arg(long, env = "DSOBEL_MAX_DELIVERIES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_deliveries: u32,
}

/// A namespace: 1 to 64 of letters, digits, `.`, `_` and `-`. Braces would move the hash tag
/// of every job's keys (`{ns}:job:{<id>}:...`), so a job's keys would no longer share a slot.
fn namespace(value: &str) -> Result<String, String> {
    let fine = (1..=64).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if fine {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a namespace: use 1 to 64 letters, digits, '.', '_' or '-' (braces would break the \
             Redis Cluster hash tags of the keys)"
        ))
    }
}

/// How logs look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line (containers).
    Json,
    /// Human-readable.
    Pretty,
}

/// What one client may hold of an HTTP listener (`serve`, and a worker's health endpoints).
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// A request's headers must arrive complete within this many seconds of the connection
    /// opening (or of the previous response on a kept-alive connection, which is closed when
    /// idle that long).
    #[arg(long, env = "DSOBEL_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// Most HTTP connections open at once; at the cap, the oldest connection that has not
    /// sent a request is closed for a new one. Keep it under the open-file limit (`ulimit -n`).
    #[arg(long, env = "DSOBEL_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}

impl ConnectionArgs {
    /// The listener's limits.
    pub fn limits(&self) -> crate::listener::ConnectionLimits {
        crate::listener::ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            max_connections: self.max_connections as usize,
        }
    }
}

/// Logging settings (the filter comes from `RUST_LOG`, default `info`).
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "DSOBEL_LOG_FORMAT", value_enum, default_value = "auto")]
    pub log_format: LogFormat,
}

/// Settings of `dsobel serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (containers use 0.0.0.0:8080).
    #[arg(long, env = "DSOBEL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Once listening, write the address bound (`127.0.0.1:43117`, one line) to this file: for
    /// scripts and tests that start dsobel on port 0 (`--listen 127.0.0.1:0`) and need to know
    /// where it went. The file appears whole (written aside, then renamed).
    #[arg(long, env = "DSOBEL_ADDRESS_FILE", value_name = "PATH")]
    pub address_file: Option<std::path::PathBuf>,
    /// When set, the API requires `Authorization: Bearer <key>`.
    #[arg(long, env = "DSOBEL_API_KEY", hide_env_values = true, value_parser = secret)]
    pub api_key: Option<SecretString>,
    /// Worker tasks inside this process in embedded mode (default: number of cores).
    #[arg(long, env = "DSOBEL_WORKERS")]
    pub workers: Option<usize>,
    /// Largest upload accepted, in bytes.
    #[arg(long, env = "DSOBEL_MAX_UPLOAD_BYTES", default_value_t = 64 << 20)]
    pub max_upload_bytes: u64,
    /// Memory the bodies of uploads being received may hold in all, in bytes (at least
    /// `DSOBEL_MAX_UPLOAD_BYTES`). Each upload reserves its declared length, or the upload
    /// limit when it declares none, before its body is read; one that does not fit gets 429.
    #[arg(long, env = "DSOBEL_UPLOAD_MEMORY_BYTES", default_value_t = 1 << 30)]
    pub upload_memory_bytes: u64,
    /// Largest image accepted, in pixels (checked from the header).
    #[arg(long, env = "DSOBEL_MAX_PIXELS", default_value_t = Limits::default().max_pixels)]
    pub max_pixels: u64,
    /// Largest width or height accepted.
    #[arg(long, env = "DSOBEL_MAX_DIMENSION", default_value_t = Limits::default().max_dimension)]
    pub max_dimension: u32,
    /// Jobs this backend accepted and has not seen end before uploads get 429 (a bound on
    /// the backend's own memory; the system-wide bound is DSOBEL_MAX_QUEUED_JOBS).
    #[arg(long, env = "DSOBEL_MAX_JOBS_IN_FLIGHT", default_value_t = 1024)]
    pub max_jobs_in_flight: usize,
    /// The part of a store shard's memory limit (Redis `maxmemory`) past which uploads are
    /// refused with 503, so that the jobs already accepted still have room to finish.
    #[arg(long, env = "DSOBEL_STORE_MEMORY_WATERMARK", default_value_t = 0.8, value_parser = watermark)]
    pub store_memory_watermark: f64,
    /// Jobs the whole system may hold beyond one per consuming worker before uploads get 429:
    /// how many may wait in the queue, whichever backend replica they reach.
    #[arg(long, env = "DSOBEL_MAX_QUEUED_JOBS", default_value_t = 256)]
    pub max_queued_jobs: u64,
    /// How long what the store holds lives.
    #[command(flatten)]
    pub lifetimes: LifetimeArgs,
    /// No strip smaller than this many pixels, when the strip count is chosen automatically.
    #[arg(long, env = "DSOBEL_MIN_STRIP_PIXELS", default_value_t = 1 << 18)]
    pub min_strip_pixels: u64,
    /// No decoded strip's rows larger than this many bytes in the store (a split decoded by a
    /// worker gets at least as many strips as this needs).
    #[arg(long, env = "DSOBEL_MAX_STRIP_BYTES", default_value_t = 8 << 20)]
    pub max_strip_bytes: u64,
    /// Most strips one job is cut into (a larger `fragments` is reduced to this; no strip is
    /// thinner than 4 rows either).
    #[arg(long, env = "DSOBEL_MAX_FRAGMENTS", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_fragments: u16,
    /// PNG deflate level of the strips, 1..=9.
    #[arg(long, env = "DSOBEL_COMPRESSION", default_value_t = dsobel_kernel::png::CompressionLevel::default().0, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub compression: u8,
    /// How often pending jobs are checked for missed wake-ups, in milliseconds.
    #[arg(long, env = "DSOBEL_SWEEP_INTERVAL_MS", default_value_t = 1000)]
    pub sweep_interval_ms: u64,
    /// Fault drill: hold each stitch this many milliseconds while it has its job's lock, to
    /// rehearse a backend stopped in the middle of stitching. Never needed in production.
    #[arg(long, env = "DSOBEL_DRILL_STITCH_DELAY_MS", default_value_t = 0)]
    pub drill_stitch_delay_ms: u64,
    /// Stopping.
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    /// An upload whose body sends nothing for this many seconds is dropped with 408.
    #[arg(long, env = "DSOBEL_BODY_IDLE_TIMEOUT_SECS", default_value_t = 30)]
    pub body_idle_timeout_secs: u64,
    /// An upload whose body takes longer than this many seconds in all is dropped with 408.
    #[arg(long, env = "DSOBEL_UPLOAD_TIMEOUT_SECS", default_value_t = 300)]
    pub upload_timeout_secs: u64,
    /// Listener limits.
    #[command(flatten)]
    pub connections: ConnectionArgs,
    /// Requests per second per client address (bursts of twice that pass); 0: no limit.
    #[arg(long, env = "DSOBEL_RATE_LIMIT", default_value_t = 0.0)]
    pub rate_limit: f64,
    /// Event streams (`/events`) open at once on this server; 0: no cap.
    #[arg(long, env = "DSOBEL_MAX_EVENT_STREAMS", default_value_t = 768)]
    pub max_event_streams: usize,
    /// Event streams open at once per client address; 0: no cap.
    #[arg(long, env = "DSOBEL_MAX_EVENT_STREAMS_PER_CLIENT", default_value_t = 64)]
    pub max_event_streams_per_client: usize,
    /// Proxies in front of this server whose `X-Forwarded-For` entries name the client (1
    /// behind nginx, 3 behind a GCP HTTP(S) load balancer and nginx); 0: the connection's
    /// address is the client.
    #[arg(long, env = "DSOBEL_TRUSTED_PROXY_HOPS", default_value_t = 0)]
    pub trusted_proxy_hops: usize,
    /// Serve the web page from this folder instead of the copy built into the binary (for
    /// working on the page without rebuilding).
    #[arg(long, env = "DSOBEL_WEB_DIR")]
    pub web_dir: Option<std::path::PathBuf>,
    /// Open the page in a browser once listening.
    #[arg(long)]
    pub open: bool,
    /// Queue and store.
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Batches.
    #[command(flatten)]
    pub batches: BatchArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

impl ServeArgs {
    /// The per-client limits.
    pub fn client_limits(&self) -> crate::client_limits::ClientLimitSettings {
        crate::client_limits::ClientLimitSettings {
            rate_per_second: self.rate_limit.max(0.0),
            max_event_streams: self.max_event_streams,
            max_event_streams_per_client: self.max_event_streams_per_client,
            trusted_proxy_hops: self.trusted_proxy_hops,
        }
    }

    /// Decode limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_pixels: self.max_pixels,
            max_dimension: self.max_dimension,
            max_bytes: self.max_upload_bytes,
        }
    }
}

/// Settings of `dsobel worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Tasks (whole images or strips) processed at once by this process (default: number of
    /// cores).
    #[arg(long, env = "DSOBEL_WORKERS")]
    pub workers: Option<usize>,
    /// Unacknowledged tasks each worker task may hold. 1 keeps a whole image from waiting
    /// behind another on a busy worker while an idle one could take it.
    #[arg(long, env = "DSOBEL_PREFETCH", default_value_t = 1)]
    pub prefetch: u16,
    /// Address for /healthz, /readyz and /metrics (unset: no HTTP).
    #[arg(long, env = "DSOBEL_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
    /// Once the health endpoints listen, write their address (`127.0.0.1:43117`, one line) to
    /// this file: for scripts and tests that start a worker with `--health-listen 127.0.0.1:0`.
    /// The file appears whole (written aside, then renamed); nothing is written without
    /// --health-listen.
    #[arg(long, env = "DSOBEL_ADDRESS_FILE", value_name = "PATH")]
    pub address_file: Option<std::path::PathBuf>,
    /// Limits of the health listener.
    #[command(flatten)]
    pub connections: ConnectionArgs,
    /// How long what the store holds lives.
    #[command(flatten)]
    pub lifetimes: LifetimeArgs,
    /// Stopping.
    #[command(flatten)]
    pub shutdown: ShutdownArgs,
    /// Queue and store.
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Batches (the object stores items may use).
    #[command(flatten)]
    pub batches: BatchArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Batches from object storage to object storage; `serve` and `worker` read the same list.
#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    /// The object-store locations batches may read and write, comma-separated root URLs
    /// (`s3://bucket/prefix`, `gs://bucket/prefix`, `file:///path`; `memory://name` for the
    /// embedded mode's own store). Anything else is refused `store-not-allowed`; empty: no
    /// batches. Credentials come from the standard variables (`AWS_*`, Workload Identity or
    /// `GOOGLE_APPLICATION_CREDENTIALS`), never from a URL.
    #[arg(long, env = "DSOBEL_BATCH_STORES", default_value = "")]
    pub batch_stores: String,
    /// Tasks waiting in the work queue past which a batch's listing holds back.
    #[arg(long, env = "DSOBEL_BATCH_QUEUE_AHEAD", default_value_t = 256)]
    pub batch_queue_ahead: u64,
    /// How long a batch's record (its status and counts) is kept, in seconds.
    #[arg(long, env = "DSOBEL_BATCH_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub batch_ttl_secs: u64,
}

impl BatchArgs {
    /// The object stores of the allow-list, with credentials from the environment.
    pub fn stores(&self) -> Result<dsobel_objects::Stores, dsobel_objects::StoreError> {
        let allow = dsobel_objects::AllowList::parse(&self.batch_stores)?;
        Ok(dsobel_objects::Stores::new(allow, dsobel_objects::CloudConfig::from_env()))
    }

    /// How long a batch's record and its items' lines live.
    pub fn batch_ttl(&self) -> Duration {
        Duration::from_secs(self.batch_ttl_secs.max(60))
    }
}

/// How long the store keeps a job's data; `serve` and `worker` must agree on these.
#[derive(Debug, Clone, Args)]
pub struct LifetimeArgs {
    /// How long finished PNGs (and job records) are kept, in seconds.
    #[arg(long, env = "DSOBEL_RESULT_TTL_SECS", default_value_t = 3600)]
    pub result_ttl_secs: u64,
    /// How long uploads, strip inputs and partial results are kept, in seconds.
    #[arg(long, env = "DSOBEL_WORK_TTL_SECS", default_value_t = 900)]
    pub work_ttl_secs: u64,
}

impl LifetimeArgs {
    /// How long results and job records live.
    pub fn result_ttl(&self) -> Duration {
        Duration::from_secs(self.result_ttl_secs.max(1))
    }
    /// How long work in progress lives.
    pub fn work_ttl(&self) -> Duration {
        Duration::from_secs(self.work_ttl_secs.max(1))
    }
}

/// How a process stops on SIGTERM or Ctrl-C.
#[derive(Debug, Clone, Args)]
pub struct ShutdownArgs {
    /// Longest wait for in-flight requests and tasks on shutdown, in seconds.
    #[arg(long, env = "DSOBEL_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
}

impl ShutdownArgs {
    /// The grace period.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

/// A setting that may hold a password: no `Debug`, log line or error can print it; only
/// `expose_secret()` at the point of use (a connection, a comparison) reads it.
pub use secrecy::{ExposeSecret, SecretString};

/// Parses a secret setting (an empty value counts as unset where the setting is used).
pub fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_owned()))
}

/// Parses a memory watermark: a fraction above 0 and at most 1.
fn watermark(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
        _ => Err(format!("{value:?} is not a fraction above 0 and at most 1 (0.8 is 80 %)")),
    }
}

/// Number of logical cores.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::namespace;

    #[test]
    fn a_namespace_that_would_move_the_hash_tags_is_refused() {
        assert_eq!(namespace("dsobel-prod_2.eu").unwrap(), "dsobel-prod_2.eu");
        for bad in ["", "a{b}", "{dsobel}", "a:b", "has space", &"x".repeat(65)] {
            assert!(namespace(bad).is_err(), "{bad:?} accepted");
        }
    }
}
