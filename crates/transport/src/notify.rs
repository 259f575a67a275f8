//! The wake-up channel: every subscriber (in every process) sees every message published
//! after it subscribed. Delivery is best effort; correctness never depends on it.

use async_trait::async_trait;

use crate::Result;

/// A broadcast channel of short text messages.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Publishes one message to every current subscriber.
    async fn publish(&self, message: &str) -> Result<()>;
    /// Subscribes; messages published from now on arrive on the returned subscription.
    async fn subscribe(&self) -> Result<Box<dyn Subscription>>;
    /// Checks that the channel's server answers.
    async fn health_check(&self) -> Result<()>;
}

/// Messages of one subscription.
#[async_trait]
pub trait Subscription: Send {
    /// The next message; `None` when the subscription is lost (subscribe again).
    async fn next(&mut self) -> Option<String>;
}
