//! # dsobel-transport: how strips travel and results come back
//!
//! Three roles, each a trait with a `health_check`:
//!
//! - [`JobQueue`]: a durable work queue with acknowledgements, redelivery, a bounded number of
//!   deliveries and a dead-letter queue (RabbitMQ in a cluster);
//! - [`Store`]: keys, hashes and sets with a TTL on everything (Redis in a cluster);
//! - [`Notifier`]: a broadcast wake-up channel (Redis pub/sub in a cluster). Only a wake-up:
//!   state lives in the store, so a missed message delays nothing for long.
//!
//! The [`memory`] adapter implements all three inside one process. It is the embedded mode of
//! `dsobel serve`, not a test double, and it passes the same contract suite as the real servers.
//! The cluster adapters are [`rabbitmq::RabbitQueue`], [`redis::RedisStore`] and
//! [`redis::RedisNotifier`]. The `contract` module (cargo feature `contract`) holds that suite: one generic function per
//! behaviour, run on every adapter by `tests/contract.rs`.

#[cfg(feature = "contract")]
pub mod contract;
pub mod memory;
pub mod notify;
pub mod queue;
pub mod rabbitmq;
pub mod redis;
mod redis_bulk;
pub mod store;

pub use notify::{Notifier, Subscription};
pub use queue::{Acker, Consumer, Delivery, JobQueue, QueueConfig};
pub use store::{Store, ValueSink};

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
    /// The server answered something the adapter did not expect.
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
            TransportError::Protocol { service, detail } => {
                TransportError::Protocol { service, detail: format!("{detail} (at {server})") }
            }
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;
