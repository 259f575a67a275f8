//! # dsobel-testkit: the kit every dsobel test is written with
//!
//! One place for what the project's tests share, so that each helper exists once:
//!
//! - [`harness`]: a test runner (on `libtest-mimic`) for test files that need something from
//!   outside — RabbitMQ, Redis, a `redis-server` or `rabbitmq-server` to start, Chromium,
//!   nginx, Node, jpegtran. Each test declares what it needs; what is missing is checked once
//!   per test binary, and a test that cannot run shows as *ignored* with the reason in the
//!   ordinary `cargo test` output (never as a pass), or fails when `CI` is set.
//! - [`process`]: `dsobel serve` and `dsobel worker` started as real processes on port 0,
//!   reading back the address each bound (`--address-file`), killed when the test ends; a
//!   test's queue deleted with everything in it, whatever its settings.
//! - [`servers`]: servers of a test's own (`redis-server`, a RabbitMQ node) on a random port,
//!   tried again on another when the port turns out taken; a TCP proxy that cuts, delays and
//!   stalls connections; a port that refuses connections; a small Redis client.
//! - [`cluster`]: a Redis Cluster of a test's own (any number of masters and replicas, each
//!   node optionally behind a proxy it announces), with its faults: a node killed and
//!   started again, slots resharded.
//! - [`api`]: jobs through the typed client (`dsobel-client`): submit, wait, fetch, compare with
//!   the scalar reference; a metric read from `/metrics` that fails when the metric is missing.
//! - [`images`]: test images, PNG decoding, the scalar reference's expectation, fixtures.
//! - [`weed`]: a SeaweedFS (S3) server of a test's own, restartable.
//! - [`wait`]: waiting for a condition with a deadline and a message, never a bare sleep.

pub mod api;
pub mod cluster;
pub mod harness;
pub mod images;
pub mod process;
pub mod servers;
pub mod wait;
pub mod weed;

pub use api::{Backend, metric_in, wait_job};
pub use cluster::OwnCluster;
pub use harness::{Need, Test, block_on, in_ci, run};
pub use images::{decode_png, expected, fixture, photo, test_png};
pub use process::{Proc, Servers, Stack, dsobel_binary, on_cluster, random_name, register_binary};
pub use servers::{ClosedPort, OwnRabbit, OwnRedis, Proxy, RedisClient};
pub use wait::{poll_until, wait_for, wait_for_async, wait_until, wait_until_async};
