//! The work queue: durable publish, consume with a prefetch window, acknowledge after the
//! result is stored, redeliver what was not acknowledged, dead-letter what keeps failing.

use async_trait::async_trait;
use bytes::Bytes;

use crate::Result;

/// Names and limits of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// The work queue's name.
    pub name: String,
    /// A message delivered this many times without an acknowledgement is dead-lettered
    /// instead of delivered again.
    pub max_deliveries: u32,
}

impl QueueConfig {
    /// The dead-letter queue's name: the work queue's name with `.dead` appended.
    pub fn dead_letter_name(&self) -> String {
        format!("{}.dead", self.name)
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { name: "dsobel.strips".into(), max_deliveries: 5 }
    }
}

/// The work queue's load at one moment ([`JobQueue::load`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLoad {
    /// Consumers attached to the work queue (all processes).
    pub consumers: u32,
    /// Messages waiting in it, not yet delivered.
    pub ready: u64,
}

/// A durable work queue with a dead-letter queue.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Publishes one persistent message; returns once the broker has confirmed it.
    async fn publish(&self, payload: Bytes) -> Result<()>;
    /// Starts consuming the work queue with at most `prefetch` unacknowledged deliveries.
    async fn consume(&self, prefetch: u16) -> Result<Box<dyn Consumer>>;
    /// Starts consuming the dead-letter queue.
    async fn consume_dead_letters(&self, prefetch: u16) -> Result<Box<dyn Consumer>>;
    /// How many consumers are attached to the work queue right now (all processes).
    async fn consumer_count(&self) -> Result<u32>;
    /// How many messages wait in the work queue (ready, not yet delivered).
    async fn depth(&self) -> Result<u64>;
    /// Both figures at once, as one question to the broker.
    async fn load(&self) -> Result<QueueLoad> {
        Ok(QueueLoad { consumers: self.consumer_count().await?, ready: self.depth().await? })
    }
    /// Checks that the broker answers.
    async fn health_check(&self) -> Result<()>;
}

/// A stream of deliveries. Dropping it (or losing its connection) hands every delivery it had
/// not acknowledged back to the queue.
#[async_trait]
pub trait Consumer: Send {
    /// The next delivery; `None` once the consumer is closed for good.
    async fn next(&mut self) -> Option<Result<Delivery>>;
}

/// Settles one delivery.
#[async_trait]
pub trait Acker: Send + Sync {
    /// Done: remove the message.
    async fn ack(&self) -> Result<()>;
    /// Not done: put it back for another delivery (`requeue`), or send it to the dead-letter
    /// queue (`!requeue`).
    async fn nack(&self, requeue: bool) -> Result<()>;
}

/// One message handed to a consumer.
pub struct Delivery {
    /// The message body.
    pub payload: Bytes,
    /// 1 on the first delivery, 2 on the first redelivery, and so on.
    pub delivery_count: u32,
    /// Settles the delivery.
    pub acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("bytes", &self.payload.len())
            .field("delivery_count", &self.delivery_count)
            .finish()
    }
}

impl Delivery {
    /// Acknowledges: the work is done and its result stored.
    pub async fn ack(self) -> Result<()> {
        self.acker.ack().await
    }

    /// Hands the message back for another delivery.
    pub async fn requeue(self) -> Result<()> {
        self.acker.nack(true).await
    }

    /// Sends the message to the dead-letter queue.
    pub async fn dead_letter(self) -> Result<()> {
        self.acker.nack(false).await
    }
}
