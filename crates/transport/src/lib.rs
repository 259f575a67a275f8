//! # dsobel-transport: how strips travel and results come back
//!
//! Three roles, each a trait with a `health_check`:
//!
//! - [`JobQueue`]: a durable work queue with acknowledgements, redelivery, a bounded number of
//!   deliveries and a dead-letter queue (RabbitMQ in a cluster);
//! - [`Store`]: keys, hashes and sets with a TTL on everything, and the memory each shard uses
//!   (one Redis server or a Redis Cluster);
//! - [`Notifier`]: wake-ups on named channels, heard by the [`Listener`]s subscribed to them
//!   (Redis sharded pub/sub). Only a wake-up: state lives in the store, so a missed message
//!   delays nothing for long.
//!
//! The [`memory`] adapter implements all three inside one process. It is the embedded mode of
//! `dsobel serve`, not a test double, and it passes the same contract suite as the real servers.
//! The server adapters are [`rabbitmq::RabbitQueue`], [`redis::RedisStore`] and
//! [`redis::RedisNotifier`]; the Redis ones take one server or a Redis Cluster
//! ([`redis`] explains how commands, large values and subscriptions find their shard). The
//! `contract` module (cargo feature `contract`) holds that suite: one generic function per
//! behaviour, run on every adapter by `tests/contract.rs`.

#[cfg(feature = "contract")]
pub mod contract;
pub mod memory;
pub mod notify;
pub mod queue;
pub mod rabbitmq;
pub mod redis;
pub mod store;

pub use notify::{Listener, Notification, Notifier};
pub use queue::{Acker, Consumer, Delivery, JobQueue, QueueConfig, QueueLoad};
pub use store::{ShardMemory, Store, ValueSink};

pub use self::memory::{MemoryNotifier, MemoryQueue, MemoryStore};
pub use self::rabbitmq::RabbitQueue;
pub use self::redis::{RedisNotifier, RedisStore};

/// A failure to reach or use the queue, the store or the notifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The server cannot be reached or refused the operation for now; try again later.
    /// The HTTP API answers these with 503.
    #[error("{service} unavailable: {detail}")]
    Unavailable {
        /// Which service ("rabbitmq", "redis", "memory").
        service: &'static str,
        /// What happened.
        detail: String,
    },
    /// The store refused a write because it is full (Redis: `-OOM`, its `maxmemory` reached
    /// under the `noeviction` policy). Reads and deletes still work, and the same write
    /// succeeds once memory frees (results expire, jobs are collected): a worker waits and
    /// tries again instead of counting it as a failed attempt.
    #[error("{service} is full: {detail}")]
    OutOfMemory {
        /// Which service.
        service: &'static str,
        /// What happened.
        detail: String,
    },
    /// The server answered something the adapter did not expect, or the request cannot be
    /// served as asked (keys of several Redis Cluster slots in one multi-key operation).
    #[error("{service} protocol error: {detail}")]
    Protocol {
        /// Which service.
        service: &'static str,
        /// What happened.
        detail: String,
    },
}

impl TransportError {
    /// The same error, saying which server it concerns (a URL without its password).
    pub fn at(self, server: &str) -> TransportError {
        match self {
            TransportError::Unavailable { service, detail } => {
                TransportError::Unavailable { service, detail: format!("{detail} (at {server})") }
            }
            TransportError::OutOfMemory { service, detail } => {
                TransportError::OutOfMemory { service, detail: format!("{detail} (at {server})") }
            }
            TransportError::Protocol { service, detail } => {
                TransportError::Protocol { service, detail: format!("{detail} (at {server})") }
            }
        }
    }

    /// Whether the store refused a write for lack of memory ([`TransportError::OutOfMemory`]).
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, TransportError::OutOfMemory { .. })
    }
}

/// Result type of this crate.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;
