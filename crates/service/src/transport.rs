//! The transport handles a process works with, chosen from the configuration: the in-memory
//! adapter (embedded mode) or RabbitMQ and Redis.
//!
//! The store has two roles. The *state* store (`DSOBEL_REDIS_URL`) holds what must survive a
//! restart: job records and failures, idempotency claims, the replicas' pending sets and
//! heartbeats, stitch locks. The *bytes* store (`DSOBEL_REDIS_BYTES_URL`) holds what is large
//! and can be made again by submitting again: uploads, decoded strip rows, strip results and
//! finished PNGs; it needs no persistence (losing it ends the jobs in flight with a reason:
//! `input-expired` for an upload gone before a worker read it, a failure once overdue for a
//! split job whose strips are gone, `job-lost` for a finished job whose result is gone).
//! Unset, the bytes go to the state store.

use std::sync::Arc;

use dsobel_transport::memory::{MemoryNotifier, MemoryQueue, MemoryStore};
use dsobel_transport::{JobQueue, Notifier, QueueConfig, Store, TransportError};

use crate::config::{ExposeSecret, TransportArgs};
use crate::error::SetupError;
use crate::model::Keys;

/// Queue, store, notifier and the key names, shared by every part of a process.
#[derive(Clone)]
pub struct Transport {
    /// The work queue.
    pub queue: Arc<dyn JobQueue>,
    /// The state store: records, failures, claims, pending sets, heartbeats, locks.
    pub store: Arc<dyn Store>,
    /// The bytes store: uploads, strip rows and results, finished PNGs (the state store itself
    /// unless a store of its own is configured).
    pub bytes: Arc<dyn Store>,
    /// The wake-up channels (one per job: [`Keys::events`]).
    pub notifier: Arc<dyn Notifier>,
    /// Key names.
    pub keys: Keys,
    /// True for the in-memory adapter.
    pub embedded: bool,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("keys", &self.keys).field("embedded", &self.embedded).finish()
    }
}

impl Transport {
    /// An in-memory transport (the embedded mode).
    pub fn memory(args: &TransportArgs) -> Transport {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        Transport {
            queue: Arc::new(MemoryQueue::new(queue_config(args))),
            bytes: store.clone(),
            store,
            notifier: Arc::new(MemoryNotifier::new()),
            keys: Keys::new(&args.namespace),
            embedded: true,
        }
    }

    /// RabbitMQ and Redis when both URLs are set, memory when neither is.
    pub async fn from_args(args: &TransportArgs) -> Result<Transport, SetupError> {
        match (&args.amqp_url, &args.redis_url) {
            (None, None) => Ok(Transport::memory(args)),
            (Some(amqp), Some(redis)) => {
                Transport::connect(args, amqp.expose_secret(), redis.expose_secret()).await
            }
            _ => Err(SetupError::HalfConfigured),
        }
    }

    async fn connect(args: &TransportArgs, amqp: &str, redis: &str) -> Result<Transport, SetupError> {
        use dsobel_transport::rabbitmq::RabbitQueue;
        use dsobel_transport::redis::{RedisNotifier, RedisStore};
        let keys = Keys::new(&args.namespace);
        let at = |url: &str| {
            let shown = without_password(url);
            move |e: TransportError| e.at(&shown)
        };
        let queue = Arc::new(RabbitQueue::connect(amqp, queue_config(args)).await.map_err(at(amqp))?);
        let store: Arc<dyn Store> = Arc::new(RedisStore::connect(redis).await.map_err(at(redis))?);
        let bytes: Arc<dyn Store> = match &args.redis_bytes_url {
            Some(url) => {
                let url = url.expose_secret();
                Arc::new(RedisStore::connect(url).await.map_err(at(url))?)
            }
            None => store.clone(),
        };
        Ok(Transport {
            queue,
            store,
            bytes,
            notifier: Arc::new(RedisNotifier::connect(redis).await.map_err(at(redis))?),
            keys,
            embedded: false,
        })
    }

    /// Checks the queue, the stores and the notifier; lists what failed.
    pub async fn health(&self) -> Result<(), Vec<String>> {
        let (q, s, b, n) = tokio::join!(
            self.queue.health_check(),
            self.store.health_check(),
            self.bytes.health_check(),
            self.notifier.health_check()
        );
        let failures: Vec<String> = [("queue", q), ("store", s), ("bytes store", b), ("notifier", n)]
            .into_iter()
            .filter_map(|(name, r)| r.err().map(|e| format!("{name}: {e}")))
            .collect();
        if failures.is_empty() { Ok(()) } else { Err(failures) }
    }
}

fn queue_config(args: &TransportArgs) -> QueueConfig {
    QueueConfig { name: args.queue.clone(), max_deliveries: args.max_deliveries }
}

/// `url` with its password (if any) replaced by `***`, fit for an error message; each URL of a
/// comma-separated list (a Redis Cluster's seed nodes) alike.
pub fn without_password(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(without_password).collect::<Vec<_>>().join(",");
    }
    let Some((scheme, rest)) = url.split_once("://") else { return "(unparsable URL)".into() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let masked = if userinfo.contains(':') { format!("{user}:***") } else { "***".into() };
            format!("{scheme}://{masked}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(without_password("amqp://guest:pw@host:5672/%2f"), "amqp://guest:***@host:5672/%2f");
        assert_eq!(without_password("redis://:pw@host:6379/0"), "redis://:***@host:6379/0");
        assert_eq!(without_password("redis://token@host"), "redis://***@host");
        assert_eq!(without_password("redis://host:6379/"), "redis://host:6379/");
        assert_eq!(without_password("a:b@c"), "(unparsable URL)");
        assert_eq!(
            without_password("redis://:pw@h1:7000,rediss://u:pw@h2:7001/"),
            "redis://:***@h1:7000,rediss://u:***@h2:7001/"
        );
    }
}
