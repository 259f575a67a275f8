//! Runs the contract suite (`dsobel_transport::contract`) on every adapter: always on the
//! memory adapter, and on RabbitMQ, one Redis server and a Redis Cluster when they answer.
//!
//! Servers: `DSOBEL_TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`),
//! `DSOBEL_TEST_REDIS_URL` (default `redis://127.0.0.1:6379/`) and
//! `DSOBEL_TEST_REDIS_CLUSTER_URL` (the seed list `scripts/redis-cluster.sh start DIR PORT`
//! prints; no default). The test kit's harness runs these tests: one whose server does not
//! answer shows as ignored with the reason, except when `CI` is set, where it fails.
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

use dsobel_testkit::harness::{amqp_url, redis_cluster_url, redis_url};
use dsobel_testkit::{Need, Test, block_on};

/// A random name component: hex of a randomly keyed hash of a counter.
fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", RandomState::new().hash_one((n, std::process::id())))
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
    let url = amqp_url();
    let queue = match RabbitQueue::connect(&url, test_queue_config()).await {
        Ok(queue) => Arc::new(queue),
        Err(error) => panic!("RabbitMQ at {url}: {error}"),
    };
    let outcome = isolated(check(queue.clone())).await;
    let cleanup = queue.delete_queues().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    cleanup.expect("delete the test queues");
}

/// Which Redis a test runs on.
#[derive(Clone, Copy)]
enum Redis {
    /// One server (`DSOBEL_TEST_REDIS_URL`).
    Single,
    /// A Redis Cluster (`DSOBEL_TEST_REDIS_CLUSTER_URL`).
    Cluster,
}

impl Redis {
    fn url(self) -> String {
        match self {
            Redis::Single => redis_url(),
            Redis::Cluster => redis_cluster_url().expect("the harness checked DSOBEL_TEST_REDIS_CLUSTER_URL"),
        }
    }

    fn need(self) -> Need {
        match self {
            Redis::Single => Need::Redis,
            Redis::Cluster => Need::RedisCluster,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Redis::Single => "redis",
            Redis::Cluster => "redis_cluster",
        }
    }
}

async fn on_redis<F, Fut, T>(
    redis: Redis,
    connect: impl AsyncFnOnce(&str) -> dsobel_transport::Result<T>,
    check: F,
) where
    F: FnOnce(Arc<T>) -> Fut,
    Fut: Future<Output = ()>,
{
    let url = redis.url();
    match connect(&url).await {
        Ok(adapter) => check(Arc::new(adapter)).await,
        Err(error) => panic!("Redis at {url}: {error}"),
    }
}

fn prefix() -> String {
    format!("dsobel.test.{}", random_hex())
}

/// One memory and one RabbitMQ test per queue check.
macro_rules! queue_contract {
    ($tests:ident: $($check:ident),* $(,)?) => {
        $(
            $tests.push(Test::new(concat!("queue::", stringify!($check), "::memory"), &[], || {
                block_on(on_memory_queue(|queue| async move { contract::$check(&*queue).await }))
            }));
            $tests.push(Test::new(concat!("queue::", stringify!($check), "::rabbitmq"), &[Need::RabbitMq], || {
                block_on(on_rabbitmq(|queue| async move { contract::$check(&*queue).await }))
            }));
        )*
    };
}

/// A test of each Redis kind (`redis`, `redis_cluster`) named `prefix::<kind>`.
fn on_each_redis(tests: &mut Vec<Test>, prefix: &'static str, body: fn(Redis)) {
    for redis in [Redis::Single, Redis::Cluster] {
        tests.push(Test::new(&format!("{prefix}::{}", redis.name()), &[redis.need()], move || body(redis)));
    }
}

/// One memory test and one of each Redis per store check.
macro_rules! store_contract {
    ($tests:ident: $($check:ident),* $(,)?) => {
        $(
            $tests.push(Test::new(concat!("store::", stringify!($check), "::memory"), &[], || {
                block_on(contract::$check(&MemoryStore::new(), &prefix()))
            }));
            on_each_redis(&mut $tests, concat!("store::", stringify!($check)), |redis| {
                block_on(on_redis(redis, async |url: &str| RedisStore::connect(url).await, |store| async move {
                    contract::$check(&*store, &prefix()).await
                }))
            });
        )*
    };
}

/// One memory test and one of each Redis per notifier check.
macro_rules! notifier_contract {
    ($tests:ident: $($check:ident),* $(,)?) => {
        $(
            $tests.push(Test::new(concat!("notifier::", stringify!($check), "::memory"), &[], || {
                block_on(contract::$check(&MemoryNotifier::new(), &prefix()))
            }));
            on_each_redis(&mut $tests, concat!("notifier::", stringify!($check)), |redis| {
                block_on(on_redis(redis, async |url: &str| RedisNotifier::connect(url).await, |notifier| async move {
                    contract::$check(&*notifier, &prefix()).await
                }))
            });
        )*
    };
}

fn main() -> std::process::ExitCode {
    let mut tests = Vec::new();
    queue_contract!(tests:
        publish_consume_ack,
        nack_requeue_redelivers,
        dropped_consumer_returns_unacked,
        prefetch_limits_unacked,
        dead_letters_after_max_deliveries,
        nack_dead_letters_immediately,
        consumer_count_and_depth,
        queue_health,
    );
    store_contract!(tests:
        put_get_delete,
        several_values_at_once,
        ranges_of_values,
        ttl_expiry,
        put_if_absent_once,
        hash_put_idempotent,
        sets,
        memory_figures,
    );
    notifier_contract!(tests:
        listeners_hear_their_channels,
        subscriptions_are_counted,
        one_listener_for_several_tasks,
        channels_of_many_slots,
    );
    // Only the stores that take values in parts: the memory store keeps values by reference,
    // where parts would only be one more copy.
    tests.push(Test::new("values_in_parts::memory_takes_values_whole", &[], || {
        block_on(async {
            let store = MemoryStore::new();
            assert!(
                store.put_in_parts("k", 10, Duration::from_secs(1)).await.expect("put_in_parts").is_none()
            );
        })
    }));
    on_each_redis(&mut tests, "values_in_parts", |redis| {
        block_on(on_redis(
            redis,
            async |url: &str| RedisStore::connect(url).await,
            |store| async move { contract::values_in_parts(&*store, &prefix()).await },
        ))
    });
    tests.push(Test::new("health::memory", &[], || {
        block_on(async {
            contract::store_health(&MemoryStore::new()).await;
            contract::notifier_health(&MemoryNotifier::new()).await;
        })
    }));
    on_each_redis(&mut tests, "health", |redis| {
        block_on(async {
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
        })
    });
    tests.push(Test::new("a_cluster_refuses_keys_of_several_slots", &[Need::RedisCluster], || {
        block_on(a_cluster_refuses_keys_of_several_slots())
    }));
    tests.push(Test::new("rabbitmq_load_is_read_on_one_long_lived_channel", &[Need::RabbitMq], || {
        block_on(rabbitmq_load_is_read_on_one_long_lived_channel())
    }));
    dsobel_testkit::run(tests)
}

/// A cluster refuses a multi-key read of several slots clearly instead of splitting it.
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
async fn rabbitmq_load_is_read_on_one_long_lived_channel() {
    let url = amqp_url();
    let queue = match RabbitQueue::connect(&url, test_queue_config()).await {
        Ok(queue) => Arc::new(queue),
        Err(error) => panic!("RabbitMQ at {url}: {error}"),
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
