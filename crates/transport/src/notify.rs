//! Wake-ups on named channels: a message published on a channel reaches every [`Listener`]
//! subscribed to that channel at the time, in every process. Delivery is best effort;
//! correctness never depends on it.
//!
//! A process keeps one listener and changes its channels while it runs: a backend subscribes
//! to the channel of each job it owns, and of each job somebody waits for, and unsubscribes
//! when the job is over. On Redis, channels are sharded pub/sub channels (`SSUBSCRIBE`,
//! `SPUBLISH`): a channel lives on the shard of its hash slot, so a channel named with a job's
//! hash tag (`dsobel:job:{<id>}:events`) travels through the shard that holds the job's keys,
//! and only the processes subscribed to it hear it.

use async_trait::async_trait;

use crate::Result;

/// Publishes wake-ups and makes listeners.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Publishes `message` on `channel` to every listener subscribed to it now; nobody
    /// listening is not an error.
    async fn publish(&self, channel: &str, message: &str) -> Result<()>;
    /// A new listener, subscribed to nothing yet. A process needs one: its channels change
    /// while it runs ([`Listener::subscribe`]), and several tasks may share it.
    async fn listen(&self) -> Result<Box<dyn Listener>>;
    /// Checks that the channel's servers answer.
    async fn health_check(&self) -> Result<()>;
}

/// One message heard by a [`Listener`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The channel it was published on.
    pub channel: String,
    /// The message.
    pub message: String,
}

/// A set of subscribed channels and the messages published on them. Every method takes
/// `&self`: tasks share one listener (in an `Arc`) to subscribe, unsubscribe and read.
///
/// Subscriptions are counted: a channel subscribed twice (a job this process owns, and a
/// client waiting for it) stays subscribed until it is unsubscribed twice. A subscribed
/// channel stays subscribed across lost connections and server failovers: the listener
/// subscribes again by itself, and messages published while it was away are lost (the state
/// they announce is in the store).
#[async_trait]
pub trait Listener: Send + Sync {
    /// Subscribes to `channel` (once more). Returns when the server confirmed the
    /// subscription: a message published on the channel after that is heard. An error means
    /// the server could not confirm it in time; the channel still counts as subscribed (call
    /// [`Listener::unsubscribe`] as usual), and the listener keeps trying.
    async fn subscribe(&self, channel: &str) -> Result<()>;
    /// Undoes one [`Listener::subscribe`] of `channel`; once none is left, nothing more of
    /// the channel is heard. Unsubscribing a channel that is not subscribed does nothing.
    async fn unsubscribe(&self, channel: &str) -> Result<()>;
    /// The next message of a subscribed channel, in the order published on that channel.
    /// Several tasks may wait at once; each message goes to one of them. `None` when the
    /// listener has stopped for good.
    async fn next(&self) -> Option<Notification>;
}
