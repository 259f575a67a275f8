//! # dsobel-service: the backend, the worker and the HTTP API
//!
//! Where a request goes:
//!
//! - [`http`]: the axum router of DESIGN §5 — upload, status, result, events, cancel, and the
//!   page ([`web`]); [`health`]: health, readiness and metrics, shared with the worker;
//! - [`coordinator`]: read the header → store the upload → write the record → queue the
//!   task(s) (one whole image, or strips cut along JPEG restart intervals or by a decoding
//!   worker); later, stitch a split job once every strip is stored (driven by wake-ups and a
//!   sweeper);
//! - [`worker`]: take a task → decode, filter and encode on a blocking thread → store → wake →
//!   acknowledge;
//! - [`batch`]: batches from one object-store location to another (`/batches`): list, queue
//!   items, follow, write the manifest; workers read and write the objects themselves;
//! - [`jobs`] and [`model`]: what lives in the store and on the queue;
//! - [`transport`]: in-memory (embedded) or RabbitMQ + Redis, behind the traits of
//!   `dsobel-transport`;
//! - [`config`], [`telemetry`], [`error`]: settings with `DSOBEL_*` twins, logs and metrics, and
//!   the JSON errors;
//! - [`listener`]: accepting connections under a header deadline and a connection cap;
//!   [`client_limits`]: a request rate and open event streams per client;
//! - [`app`]: the wiring of `serve` and `worker` around a listener and a shutdown token.

pub mod app;
pub mod background;
pub mod batch;
pub mod client_limits;
pub mod config;
pub mod coordinator;
pub mod error;
pub mod health;
pub mod http;
pub mod jobs;
pub mod listener;
mod locks;
pub mod model;
mod retry;
pub mod telemetry;
pub mod transport;
pub mod wakeups;
pub mod web;
pub mod worker;
