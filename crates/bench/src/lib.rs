//! # dsobel-bench: load generator, benchmark matrix and plots
//!
//! The seed measured its platform along three dimensions — image size, concurrency and the
//! number of workers — with a script that sent images, a CSV of results and a scatter plot.
//! This crate is that, done so the numbers can be trusted and repeated:
//!
//! - [`images`]: deterministic, photograph-like JPEGs near the seed's sizes (1 MB, 10 MB),
//!   or the user's files ([`gen_image`] writes one to disk);
//! - [`client`]: one request as a real client makes it — upload, follow the job's events,
//!   download — each step timed, failures kept with the API's error code;
//! - [`load`]: closed-loop clients per concurrency level, bounded in count and time, against
//!   any URL or an embedded server started in this process ([`run`]);
//! - [`matrix`](mod@matrix): every size × concurrency × worker count, with real `dsobel serve` and
//!   `dsobel worker` processes on the local RabbitMQ and Redis, plus the embedded row
//!   ([`matrix()`]);
//! - [`scaling`](mod@scaling): does every worker add throughput? The backend and each worker
//!   in a CPU control group of its own ([`cgroup`]), capped at a fraction of a core, as if
//!   each were a small machine; throughput and each role's CPU per image for 1, 2, 4… workers
//!   ([`scaling()`]);
//! - [`store`](mod@store): does the store scale by shards? The same load against a Redis
//!   Cluster of 1 master and of N, each master of the bench's own capped at a fraction of a
//!   core so that the store binds; throughput, Redis CPU and bytes per image, and how evenly
//!   keys and commands spread over the masters ([`store()`]);
//! - [`record`] and [`stats`]: one CSV row per request, and the summary per cell (throughput,
//!   p50/p95/p99/max latency, failures by code);
//! - [`plot`](mod@plot): latency against size, throughput against concurrency, and where the
//!   time goes, as PNG ([`plot_command`]).
//!
//! Every entry point returns the process exit code: 0 when every request succeeded.

pub mod cgroup;
pub mod client;
pub mod images;
pub mod load;
pub mod matrix;
pub mod plot;
pub mod record;
pub mod scaling;
pub mod stats;
pub mod store;

pub use images::{GenImageArgs, gen_image};
pub use load::{BenchArgs, bench, run};
pub use matrix::{MatrixArgs, matrix, run_matrix};
pub use plot::{PlotArgs, plot, plot_command};
pub use scaling::{ScalingArgs, scaling};
pub use stats::Report;
pub use store::{StoreArgs, store};
