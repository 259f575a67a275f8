//! Runs the contract suite (`dsobel_transport::contract`) on every adapter: always on the
//! memory adapter, and on RabbitMQ, one Redis server and a Redis Cluster when they answer.
//!
//! Servers: `DSOBEL_TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`),
//! `DSOBEL_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/`) and
//! `DSOBEL_TEST_REDIS_CLUSTER_URL` (the seed list `scripts/redis-cluster.sh start DIR PORT`
//! prints; no default). An unreachable server, or an unset cluster URL, skips its tests with a
//! message, except when `CI` is set: there it fails them.
//!
//! Every broker test works on its own queue `dsobel.test.<random>` (deleted afterwards, also
//! when the check fails), every store and notifier test under its own random key prefix and
//! channel, so parallel and repeated runs never see each other.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dsobel_transport::contract::{self, MAX_DELIVERIES};
use dsobel_transport::{
    JobQueue, MemoryNotifier, MemoryQueue, MemoryStore, QueueConfig, RabbitQueue, RedisNotifier, RedisStore,
    Store, TransportError,
};

/// Which Redis a test runs on.
#[derive(Clone, Copy)]
enum Redis {
    /// One server (`DSOBEL_TEST_REDIS_URL`).
    Single,
    /// A Redis Cluster (`DSOBEL_TEST_REDIS_CLUSTER_URL`).
    Cluster,
}

const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// A random name component: hex of a randomly keyed hash of a counter.
fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", RandomState::new().hash_one((n, std::process::id())))
}

fn url(variable: &str, default: &str) -> String {
    std::env::var(variable).ok().filter(|url| !url.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// Decides what an unreachable server means: a failure under CI, a skip elsewhere. Any other
/// error fails the test.
fn unreachable(server: &str, url: &str, variable: &str, error: TransportError) {
    match error {
        TransportError::Unavailable { .. } if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {server} not reachable at {url} (start it, or set {variable}): {error}");
        }
        TransportError::Unavailable { .. } => {
            panic!("{server} not reachable at {url} (CI is set, so this fails): {error}")
        }
        other => panic!("{server} at {url}: {other}"),
    }
}

/// Runs `check` in a task of its own, so that cleanup can run even if it panics; then
/// re-raises the panic.
async fn isolated<Fut>(check: Fut) -> Result<(), Box<dyn std::any::Any + Send>>
where
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(check).await.map_err(|error| error.into_panic())
}

fn test_queue_config() -> QueueConfig {
    QueueConfig { name: format!("dsobel.test.{}", random_hex()), max_deliveries: MAX_DELIVERIES }
}

async fn on_memory_queue<F, Fut>(check: F)
where
    F: FnOnce(Arc<dyn JobQueue>) -> Fut,
    Fut: Future<Output = ()>,
{
    check(Arc::new(MemoryQueue::new(test_queue_config()))).await;
}

async fn on_rabbitmq<F, Fut>(check: F)
where
    F: FnOnce(Arc<dyn JobQueue>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = url("DSOBEL_TEST_AMQP_URL", DEFAULT_AMQP_URL);
    let queue = match RabbitQueue::connect(&url, test_queue_config()).await {
        Ok(queue) => Arc::new(queue),
        Err(error) => return unreachable("RabbitMQ", &url, "DSOBEL_TEST_AMQP_URL", error),
    };
    let outcome = isolated(check(queue.clone())).await;
    let cleanup = queue.delete_queues().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    cleanup.expect("delete the test queues");
}

async fn on_redis<F, Fut, T>(
    redis: Redis,
    connect: impl AsyncFnOnce(&str) -> dsobel_transport::Result<T>,
    check: F,
) where
    F: FnOnce(Arc<T>) -> Fut,
    Fut: Future<Output = ()>,
{
    let (url, variable) = match redis {
        Redis::Single => (url("DSOBEL_TEST_REDIS_URL", DEFAULT_REDIS_URL), "DSOBEL_TEST_REDIS_URL"),
        Redis::Cluster => match std::env::var("DSOBEL_TEST_REDIS_CLUSTER_URL") {
            Ok(url) if !url.is_empty() => (url, "DSOBEL_TEST_REDIS_CLUSTER_URL"),
            _ if std::env::var_os("CI").is_some() => {
                panic!("DSOBEL_TEST_REDIS_CLUSTER_URL is not set (CI is set, so this fails)")
            }
            _ => {
                eprintln!(
                    "skipped: no Redis Cluster (start one with scripts/redis-cluster.sh start DIR PORT and \
                     set DSOBEL_TEST_REDIS_CLUSTER_URL to the seed list it prints)"
                );
                return;
            }
        },
    };
    match connect(&url).await {
        Ok(adapter) => check(Arc::new(adapter)).await,
        Err(error) => unreachable("Redis", &url, variable, error),
    }
}

fn prefix() -> String {
    format!("dsobel.test.{}", random_hex())
}

macro_rules! queue_contract {
    ($($check:ident),* $(,)?) => {
        mod queue {
            use super::*;
            $(
                mod $check {
                    use super::*;

                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn memory() {
                        on_memory_queue(|queue| async move { contract::$check(&*queue).await }).await;
                    }

                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn rabbitmq() {
                        on_rabbitmq(|queue| async move { contract::$check(&*queue).await }).await;
                    }
                }
            )*
        }
    };
}

macro_rules! store_contract {
    ($($check:ident),* $(,)?) => {
        mod store {
            use super::*;
            $(
                mod $check {
                    use super::*;

                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn memory() {
                        contract::$check(&MemoryStore::new(), &prefix()).await;
                    }

                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn redis() {
                        on_redis(Redis::Single, async |url: &str| RedisStore::connect(url).await, |store| async move {
                            contract::$check(&*store, &prefix()).await
                        })
                        .await;
                    }

                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn redis_cluster() {
                        on_redis(Redis::Cluster, async |url: &str| RedisStore::connect(url).await, |store| async move {
                            contract::$check(&*store, &prefix()).await
                        })
                        .await;
                    }
                }
            )*
        }
    };
}

macro_rules! notifier_contract {
    ($($check:ident),* $(,)?) => {
        mod notifier {
            use super::*;
            $(
                mod $check {
                    use super::*;

                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn memory() {
                        contract::$check(&MemoryNotifier::new(), &prefix()).await;
                    }

                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn redis() {
                        on_redis(Redis::Single, async |url: &str| RedisNotifier::connect(url).await, |notifier| async move {
                            contract::$check(&*notifier, &prefix()).await
                        })
                        .await;
                    }

                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn redis_cluster() {
                        on_redis(Redis::Cluster, async |url: &str| RedisNotifier::connect(url).await, |notifier| async move {
                            contract::$check(&*notifier, &prefix()).await
                        })
                        .await;
                    }
                }
            )*
        }
    };
}

queue_contract!(
    publish_consume_ack,
    nack_requeue_redelivers,
    dropped_consumer_returns_unacked,
    prefetch_limits_unacked,
    dead_letters_after_max_deliveries,
    nack_dead_letters_immediately,
    consumer_count_and_depth,
    queue_health,
);

store_contract!(
    put_get_delete,
    several_values_at_once,
    ranges_of_values,
    ttl_expiry,
    put_if_absent_once,
    hash_put_idempotent,
    sets,
    memory_figures,
);

notifier_contract!(
    listeners_hear_their_channels,
    subscriptions_are_counted,
    one_listener_for_several_tasks,
    channels_of_many_slots,
);

/// Only the stores that take values in parts: the memory store keeps values by reference,
/// where parts would only be one more copy.
mod values_in_parts {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_takes_values_whole() {
        let store = MemoryStore::new();
        assert!(store.put_in_parts("k", 10, Duration::from_secs(1)).await.expect("put_in_parts").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis() {
        on_redis(
            Redis::Single,
            async |url: &str| RedisStore::connect(url).await,
            |store| async move { contract::values_in_parts(&*store, &prefix()).await },
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_cluster() {
        on_redis(
            Redis::Cluster,
            async |url: &str| RedisStore::connect(url).await,
            |store| async move { contract::values_in_parts(&*store, &prefix()).await },
        )
        .await;
    }
}

mod health {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory() {
        contract::store_health(&MemoryStore::new()).await;
        contract::notifier_health(&MemoryNotifier::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis() {
        health_on(Redis::Single).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_cluster() {
        health_on(Redis::Cluster).await;
    }

    async fn health_on(redis: Redis) {
        on_redis(
            redis,
            async |url: &str| RedisStore::connect(url).await,
            |store| async move { contract::store_health(&*store).await },
        )
        .await;
        on_redis(
            redis,
            async |url: &str| RedisNotifier::connect(url).await,
            |notifier| async move { contract::notifier_health(&*notifier).await },
        )
        .await;
    }
}

/// A cluster refuses a multi-key read of several slots clearly instead of splitting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_refuses_keys_of_several_slots() {
    on_redis(
        Redis::Cluster,
        async |url: &str| RedisStore::connect(url).await,
        |store| async move {
            assert!(store.is_cluster());
            let prefix = prefix();
            let keys = [format!("{prefix}:{{one}}:a"), format!("{prefix}:{{two}}:a")];
            match store.get_many(&keys).await {
                Err(TransportError::Protocol { detail, .. }) => {
                    assert!(detail.contains("hash tag"), "the error says what to do: {detail}")
                }
                other => panic!("keys of two slots: {other:?}"),
            }
            // Keys of one slot are fine, and deleting keys of several slots works slot by slot.
            let tagged = [format!("{{{prefix}}}:a"), format!("{{{prefix}}}:b")];
            assert_eq!(store.get_many(&tagged).await.expect("one slot"), [None, None]);
            store.delete(&keys).await.expect("delete keys of several slots");
        },
    )
    .await;
}

/// RabbitMQ's load is read on one channel that stays open from one reading to the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_load_is_read_on_one_long_lived_channel() {
    let url = url("DSOBEL_TEST_AMQP_URL", DEFAULT_AMQP_URL);
    let queue = match RabbitQueue::connect(&url, test_queue_config()).await {
        Ok(queue) => Arc::new(queue),
        Err(error) => return unreachable("RabbitMQ", &url, "DSOBEL_TEST_AMQP_URL", error),
    };
    let check = {
        let queue = queue.clone();
        async move {
            assert_eq!(queue.inspection_channel().await, None, "no channel before the first reading");
            queue.load().await.expect("load");
            let channel = queue.inspection_channel().await.expect("a channel after a reading");
            for _ in 0..20 {
                queue.load().await.expect("load");
                queue.depth().await.expect("depth");
                queue.consumer_count().await.expect("consumer_count");
            }
            assert_eq!(queue.inspection_channel().await, Some(channel), "the same channel throughout");
        }
    };
    let outcome = isolated(check).await;
    let cleanup = queue.delete_queues().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    cleanup.expect("delete the test queues");
}
