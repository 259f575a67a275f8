//! The contract every adapter keeps, written once.
//!
//! Each function checks one behaviour of a [`JobQueue`], a [`Store`] or a [`Notifier`] and
//! panics (like an `assert!`) when the adapter breaks it. `tests/contract.rs` runs every one of
//! them on the memory adapter always and on RabbitMQ and Redis when those servers are
//! reachable, so the embedded mode and the cluster mode cannot drift apart.
//!
//! The queue functions want a fresh, empty queue each (a random name on a broker); the store
//! and notifier functions take a `prefix` for their keys so that runs never collide. Waits are
//! bounded ([`PATIENCE`]) and poll for a condition rather than sleep, except where a check
//! must show that something does *not* happen ([`QUIET`]).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::notify::{Listener, Notification, Notifier};
use crate::queue::{Consumer, Delivery, JobQueue, QueueLoad};
use crate::store::Store;

/// The longest any single expected event may take before a check fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How long a check watches for something that must not happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// The `max_deliveries` the queue passed to [`dead_letters_after_max_deliveries`] must have.
pub const MAX_DELIVERIES: u32 = 3;

/// A TTL long enough that nothing expires during a check.
const LONG: Duration = Duration::from_secs(300);

/// A TTL short enough to watch it run out.
const SHORT: Duration = Duration::from_secs(1);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: nothing within {PATIENCE:?}"),
    }
}

/// Polls `probe` until it returns true, failing after [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !probe().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not so within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn take(consumer: &mut Box<dyn Consumer>, what: &str) -> Delivery {
    match within(what, consumer.next()).await {
        Some(Ok(delivery)) => delivery,
        Some(Err(error)) => panic!("{what}: {error}"),
        None => panic!("{what}: the consumer ended"),
    }
}

async fn publish(queue: &dyn JobQueue, payload: &'static str) {
    queue.publish(Bytes::from_static(payload.as_bytes())).await.expect("publish");
}

async fn depth_is(queue: &dyn JobQueue, expected: u64) {
    eventually(&format!("depth == {expected}"), || async { queue.depth().await.expect("depth") == expected })
        .await;
}

async fn consumers_are(queue: &dyn JobQueue, expected: u32) {
    eventually(&format!("consumer_count == {expected}"), || async {
        queue.consumer_count().await.expect("consumer_count") == expected
    })
    .await;
}

/// Messages arrive once, in order, marked as first deliveries; acknowledged ones are gone for
/// good (the next consumer sees only what was published after them).
pub async fn publish_consume_ack(queue: &dyn JobQueue) {
    publish(queue, "one").await;
    publish(queue, "two").await;
    let mut consumer = queue.consume(10).await.expect("consume");
    for expected in ["one", "two"] {
        let delivery = take(&mut consumer, "a published message").await;
        assert_eq!(delivery.payload, expected.as_bytes());
        assert_eq!(delivery.delivery_count, 1, "first delivery of {expected}");
        delivery.ack().await.expect("ack");
    }
    drop(consumer);

    publish(queue, "marker").await;
    let mut consumer = queue.consume(10).await.expect("consume again");
    let delivery = take(&mut consumer, "the marker").await;
    assert_eq!(delivery.payload, "marker".as_bytes(), "an acknowledged message came back");
    delivery.ack().await.expect("ack");
}

/// A message handed back with `requeue` is delivered again, its delivery count one higher.
pub async fn nack_requeue_redelivers(queue: &dyn JobQueue) {
    publish(queue, "again").await;
    let mut consumer = queue.consume(1).await.expect("consume");
    let first = take(&mut consumer, "the first delivery").await;
    assert_eq!(first.delivery_count, 1);
    first.requeue().await.expect("requeue");
    let second = take(&mut consumer, "the redelivery").await;
    assert_eq!(second.payload, "again".as_bytes());
    assert_eq!(second.delivery_count, 2, "delivery_count of a redelivery");
    second.ack().await.expect("ack");
}

/// Dropping a consumer returns what it had not settled, even while its deliveries are still
/// held: the next consumer receives them as redeliveries.
pub async fn dropped_consumer_returns_unacked(queue: &dyn JobQueue) {
    publish(queue, "first").await;
    publish(queue, "second").await;
    let mut consumer = queue.consume(10).await.expect("consume");
    let held = [take(&mut consumer, "first").await, take(&mut consumer, "second").await];
    drop(consumer);

    let mut next = queue.consume(10).await.expect("consume again");
    let mut payloads = Vec::new();
    for _ in 0..2 {
        let delivery = take(&mut next, "a returned message").await;
        assert_eq!(delivery.delivery_count, 2, "delivery_count of a returned message");
        payloads.push(delivery.payload.clone());
        delivery.ack().await.expect("ack");
    }
    payloads.sort();
    assert_eq!(payloads, [Bytes::from_static(b"first"), Bytes::from_static(b"second")]);
    drop(held);
}

/// A consumer never holds more than `prefetch` unsettled deliveries: the rest stay in the
/// queue for other consumers, and settling one opens the window again.
pub async fn prefetch_limits_unacked(queue: &dyn JobQueue) {
    for payload in ["p1", "p2", "p3"] {
        publish(queue, payload).await;
    }
    let mut narrow = queue.consume(2).await.expect("consume with prefetch 2");
    let a = take(&mut narrow, "p1").await;
    let b = take(&mut narrow, "p2").await;
    assert!(
        tokio::time::timeout(QUIET, narrow.next()).await.is_err(),
        "a third delivery arrived beyond the prefetch window"
    );
    // The third message is still in the queue, not in the first consumer's buffer.
    let mut other = queue.consume(10).await.expect("a second consumer");
    let c = take(&mut other, "p3 on the second consumer").await;
    assert_eq!(c.payload, "p3".as_bytes());
    c.ack().await.expect("ack");
    drop(other);

    a.ack().await.expect("ack");
    publish(queue, "p4").await;
    let d = take(&mut narrow, "p4 once the window opened").await;
    assert_eq!(d.payload, "p4".as_bytes());
    b.ack().await.expect("ack");
    d.ack().await.expect("ack");
}

/// A message handed back `max_deliveries` times ([`MAX_DELIVERIES`] for this check) goes to the
/// dead-letter queue instead of being delivered again.
pub async fn dead_letters_after_max_deliveries(queue: &dyn JobQueue) {
    publish(queue, "poison").await;
    let mut consumer = queue.consume(1).await.expect("consume");
    for attempt in 1..=MAX_DELIVERIES {
        let delivery = take(&mut consumer, "a delivery of the poison message").await;
        assert_eq!(delivery.payload, "poison".as_bytes());
        assert_eq!(delivery.delivery_count, attempt);
        delivery.requeue().await.expect("requeue");
    }
    let mut dead = queue.consume_dead_letters(10).await.expect("consume dead letters");
    let delivery = take(&mut dead, "the dead letter").await;
    assert_eq!(delivery.payload, "poison".as_bytes());
    assert_eq!(delivery.delivery_count, 1, "the dead-letter queue counts its own deliveries");
    delivery.ack().await.expect("ack the dead letter");

    // Nothing of it is left in the work queue: the next delivery there is a new message.
    publish(queue, "marker").await;
    let delivery = take(&mut consumer, "the marker").await;
    assert_eq!(delivery.payload, "marker".as_bytes(), "the poison message was delivered again");
    delivery.ack().await.expect("ack");
}

/// A message handed back without `requeue` goes to the dead-letter queue at once.
pub async fn nack_dead_letters_immediately(queue: &dyn JobQueue) {
    publish(queue, "bad").await;
    let mut consumer = queue.consume(1).await.expect("consume");
    let delivery = take(&mut consumer, "the bad message").await;
    assert_eq!(delivery.delivery_count, 1);
    delivery.dead_letter().await.expect("dead-letter");
    let mut dead = queue.consume_dead_letters(1).await.expect("consume dead letters");
    let delivery = take(&mut dead, "the dead letter").await;
    assert_eq!(delivery.payload, "bad".as_bytes());
    assert_eq!(delivery.delivery_count, 1, "the dead-letter queue counts its own deliveries");
    // Dead letters can be handed back too; they stay in the dead-letter queue.
    delivery.requeue().await.expect("requeue the dead letter");
    let delivery = take(&mut dead, "the requeued dead letter").await;
    assert_eq!(delivery.payload, "bad".as_bytes());
    assert_eq!(delivery.delivery_count, 2);
    delivery.ack().await.expect("ack the dead letter");
    depth_is(queue, 0).await;

    publish(queue, "marker").await;
    let delivery = take(&mut consumer, "the marker").await;
    assert_eq!(delivery.payload, "marker".as_bytes(), "the dead-lettered message came back");
    delivery.ack().await.expect("ack");
}

/// `depth` counts ready messages, `consumer_count` the work queue's consumers (not the
/// dead-letter queue's); both follow consumers coming and going, and `load` gives both.
pub async fn consumer_count_and_depth(queue: &dyn JobQueue) {
    depth_is(queue, 0).await;
    consumers_are(queue, 0).await;
    for payload in ["d1", "d2", "d3"] {
        publish(queue, payload).await;
    }
    depth_is(queue, 3).await;

    assert_eq!(queue.load().await.expect("load"), QueueLoad { consumers: 0, ready: 3 });

    let first = queue.consume(1).await.expect("consume");
    let second = queue.consume(1).await.expect("consume");
    let dead = queue.consume_dead_letters(1).await.expect("consume dead letters");
    consumers_are(queue, 2).await;
    assert_eq!(queue.load().await.expect("load").consumers, 2);
    drop(first);
    consumers_are(queue, 1).await;
    drop(second);
    drop(dead);
    consumers_are(queue, 0).await;
    // Whatever the consumers had been sent came back.
    depth_is(queue, 3).await;
}

/// The queue's `health_check` passes while its server is up.
pub async fn queue_health(queue: &dyn JobQueue) {
    queue.health_check().await.expect("health_check");
}

/// `put` then `get` returns the value, a second `put` replaces it, `delete` removes it (and
/// ignores missing keys), and a missing key reads as `None`.
pub async fn put_get_delete(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}:value");
    assert_eq!(store.get(&key).await.expect("get"), None);
    store.put(&key, Bytes::from_static(b"first"), LONG).await.expect("put");
    assert_eq!(store.get(&key).await.expect("get").as_deref(), Some(&b"first"[..]));
    store.put(&key, Bytes::from_static(b"second"), LONG).await.expect("put again");
    assert_eq!(store.get(&key).await.expect("get").as_deref(), Some(&b"second"[..]));
    // Binary values survive unchanged.
    let binary = Bytes::from_static(&[0, 159, 146, 150, 255, b'\n']);
    store.put(&key, binary.clone(), LONG).await.expect("put binary");
    assert_eq!(store.get(&key).await.expect("get"), Some(binary));
    store.delete(&[key.clone(), format!("{prefix}:never-written")]).await.expect("delete");
    assert_eq!(store.get(&key).await.expect("get"), None);
    store.delete(&[]).await.expect("delete nothing");
}

/// `get_many` reads several values at once, in order; missing keys and keys of another kind
/// read as `None`. The keys share a hash tag, as they must on a sharded store.
pub async fn several_values_at_once(store: &dyn Store, prefix: &str) {
    let key = |name: &str| format!("{{{prefix}}}:{name}");
    let (a, b, hash, missing) = (key("a"), key("b"), key("h"), key("none"));
    store.put(&a, Bytes::from_static(b"first"), LONG).await.expect("put");
    store.put(&b, Bytes::from_static(b"second"), LONG).await.expect("put");
    store.hash_put(&hash, "f", Bytes::from_static(b"v"), LONG).await.expect("hash_put");
    let values = store.get_many(&[b.clone(), missing, a.clone(), hash]).await.expect("get_many");
    let values: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
    assert_eq!(values, [Some(&b"second"[..]), None, Some(&b"first"[..]), None]);
    assert!(store.get_many(&[]).await.expect("get_many of nothing").is_empty());
}

/// `get_range` reads part of a value without the rest; a missing key or a range past the end
/// of the value reads as `None`.
pub async fn ranges_of_values(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}:ranged");
    assert_eq!(store.get_range(&key, 0..1).await.expect("get_range"), None);
    let value: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    store.put(&key, Bytes::from(value.clone()), LONG).await.expect("put");
    for range in [0..1u64, 0..100_000, 255..256, 70_000..99_999, 99_999..100_000] {
        let part = store.get_range(&key, range.clone()).await.expect("get_range");
        assert_eq!(part.as_deref(), Some(&value[range.start as usize..range.end as usize]), "{range:?}");
    }
    assert_eq!(store.get_range(&key, 99_999..100_001).await.expect("get_range"), None);
    // Large ranges (read straight into one buffer where the adapter can) past the end, and of
    // a missing key.
    assert_eq!(store.get_range(&key, 0..100_001).await.expect("get_range"), None);
    let missing = format!("{prefix}:ranged-missing");
    assert_eq!(store.get_range(&missing, 0..100_000).await.expect("get_range"), None);
    assert_eq!(store.get_range(&key, 200_000..200_010).await.expect("get_range"), None);
}

/// A value written in parts ([`Store::put_in_parts`]) is there once finished, whole, with its
/// TTL, and readable in ranges; a sink dropped before its end, finished short, or given more
/// than its length sets nothing and leaves an earlier value alone. For stores that take
/// parts: a store that answers `None` fails this check.
pub async fn values_in_parts(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}:parts");
    let value: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let start = async |key: &str, len: usize| {
        store
            .put_in_parts(key, len as u64, SHORT * 5)
            .await
            .expect("put_in_parts")
            .expect("this store takes parts")
    };
    let mut sink = start(&key, value.len()).await;
    for parts in value.chunks(70_001).collect::<Vec<_>>().chunks(2) {
        sink.write(parts).await.expect("write parts");
        assert_eq!(store.get(&key).await.expect("get"), None, "not set before it is finished");
    }
    sink.finish().await.expect("finish");
    assert_eq!(store.get(&key).await.expect("get").as_deref(), Some(&value[..]));
    assert_eq!(
        store.get_range(&key, 100_000..200_000).await.expect("range").as_deref(),
        Some(&value[100_000..200_000])
    );
    // Dropped half way, finished short, or overfilled: the earlier value stays.
    let mut dropped = start(&key, value.len()).await;
    dropped.write(&[&[1; 1000]]).await.expect("write");
    drop(dropped);
    let mut short = start(&key, value.len()).await;
    short.write(&[&[2; 1000]]).await.expect("write");
    assert!(short.finish().await.is_err(), "finished short of its length");
    let mut overfilled = start(&key, 10).await;
    assert!(overfilled.write(&[&[3; 5], &[3; 6]]).await.is_err(), "more than its length");
    drop(overfilled);
    assert_eq!(store.get(&key).await.expect("get").as_deref(), Some(&value[..]));
    // An empty value, and the TTL.
    let empty = format!("{prefix}:parts-empty");
    start(&empty, 0).await.finish().await.expect("finish an empty value");
    assert_eq!(store.get(&empty).await.expect("get"), Some(Bytes::new()));
    eventually("the value in parts expires", || async { store.get(&key).await.expect("get").is_none() })
        .await;
}

/// Values, hashes and sets disappear once their TTL has run out; a hash's TTL is the one of
/// its latest write.
pub async fn ttl_expiry(store: &dyn Store, prefix: &str) {
    let value = format!("{prefix}:short-value");
    let hash = format!("{prefix}:short-hash");
    let set = format!("{prefix}:short-set");
    let kept = format!("{prefix}:kept");
    store.put(&value, Bytes::from_static(b"v"), SHORT).await.expect("put");
    store.hash_put(&hash, "a", Bytes::from_static(b"1"), LONG).await.expect("hash_put");
    store.hash_put(&hash, "b", Bytes::from_static(b"2"), SHORT).await.expect("hash_put");
    store.set_add(&set, "m", SHORT).await.expect("set_add");
    store.put(&kept, Bytes::from_static(b"k"), LONG).await.expect("put");
    assert!(store.get(&value).await.expect("get").is_some(), "expired far too early");
    assert_eq!(store.hash_len(&hash).await.expect("hash_len"), 2);
    assert_eq!(store.set_members(&set).await.expect("set_members"), ["m"]);

    eventually("the value expired", || async { store.get(&value).await.expect("get").is_none() }).await;
    eventually("the hash expired", || async { store.hash_len(&hash).await.expect("hash_len") == 0 }).await;
    eventually("the set expired", || async {
        store.set_members(&set).await.expect("set_members").is_empty()
    })
    .await;
    assert_eq!(store.hash_get(&hash, "a").await.expect("hash_get"), None);
    assert!(store.get(&kept).await.expect("get").is_some(), "a key with a long TTL expired");
    store.delete(&[kept]).await.expect("delete");
}

/// `put_if_absent` sets a key once: later calls leave the first value and say so, until the
/// key is deleted.
pub async fn put_if_absent_once(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}:claim");
    assert!(store.put_if_absent(&key, Bytes::from_static(b"first"), LONG).await.expect("put_if_absent"));
    assert!(!store.put_if_absent(&key, Bytes::from_static(b"second"), LONG).await.expect("put_if_absent"));
    assert_eq!(store.get(&key).await.expect("get").as_deref(), Some(&b"first"[..]));
    store.delete(std::slice::from_ref(&key)).await.expect("delete");
    assert!(store.put_if_absent(&key, Bytes::from_static(b"third"), LONG).await.expect("put_if_absent"));
    assert_eq!(store.get(&key).await.expect("get").as_deref(), Some(&b"third"[..]));
    store.delete(&[key]).await.expect("delete");
}

/// `hash_put` counts a field once however often it is written (the last value wins), and
/// missing hashes and fields read as empty.
pub async fn hash_put_idempotent(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}:hash");
    assert_eq!(store.hash_len(&key).await.expect("hash_len"), 0);
    assert_eq!(store.hash_get(&key, "0").await.expect("hash_get"), None);
    assert!(store.hash_put(&key, "0", Bytes::from_static(b"a"), LONG).await.expect("hash_put"));
    assert!(!store.hash_put(&key, "0", Bytes::from_static(b"b"), LONG).await.expect("hash_put again"));
    assert!(store.hash_put(&key, "1", Bytes::from_static(b"c"), LONG).await.expect("hash_put"));
    assert_eq!(store.hash_len(&key).await.expect("hash_len"), 2);
    assert_eq!(store.hash_get(&key, "0").await.expect("hash_get").as_deref(), Some(&b"b"[..]));
    assert_eq!(store.hash_get(&key, "1").await.expect("hash_get").as_deref(), Some(&b"c"[..]));
    assert_eq!(store.hash_get(&key, "2").await.expect("hash_get"), None);
    store.delete(std::slice::from_ref(&key)).await.expect("delete");
    assert_eq!(store.hash_len(&key).await.expect("hash_len"), 0);
}

/// Sets hold each member once, in sorted order; removing a member (or a missing one) works;
/// a missing set is empty.
pub async fn sets(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}:set");
    assert!(store.set_members(&key).await.expect("set_members").is_empty());
    for member in ["b", "a", "b", "c"] {
        store.set_add(&key, member, LONG).await.expect("set_add");
    }
    assert_eq!(store.set_members(&key).await.expect("set_members"), ["a", "b", "c"]);
    store.set_remove(&key, "b").await.expect("set_remove");
    store.set_remove(&key, "never-added").await.expect("set_remove of a missing member");
    store.set_remove(&format!("{prefix}:no-set"), "x").await.expect("set_remove on a missing set");
    assert_eq!(store.set_members(&key).await.expect("set_members"), ["a", "c"]);
    store.delete(std::slice::from_ref(&key)).await.expect("delete");
    assert!(store.set_members(&key).await.expect("set_members").is_empty());
}

/// `memory` names each shard once, with its limit (if any) above zero; a value written shows
/// in the figures.
pub async fn memory_figures(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}:memory");
    store.put(&key, Bytes::from(vec![7u8; 2 << 20]), LONG).await.expect("put");
    let shards = store.memory().await.expect("memory");
    assert!(!shards.is_empty(), "no shard reported");
    let mut names: Vec<&str> = shards.iter().map(|s| s.shard.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), shards.len(), "a shard reported twice: {shards:?}");
    assert!(shards.iter().all(|s| s.limit != Some(0)), "a limit of zero: {shards:?}");
    let used: u64 = shards.iter().map(|s| s.used).sum();
    assert!(used >= 2 << 20, "2 MiB written, {used} bytes in use: {shards:?}");
    store.delete(&[key]).await.expect("delete");
}

/// The store's `health_check` passes while its server is up, and so does `health_check_key`
/// for keys of any slot, whether they exist or not.
pub async fn store_health(store: &dyn Store) {
    store.health_check().await.expect("health_check");
    for key in ["contract:job:{health-a}:record", "contract:job:{health-b}:record", "contract:health"] {
        store.health_check_key(key).await.expect("health_check_key");
    }
}

/// The channel `name` of a check: a hash tag of its own, so that in a cluster the channels of
/// a check live on several shards.
fn channel(prefix: &str, name: &str) -> String {
    format!("{prefix}:job:{{{prefix}-{name}}}:events")
}

async fn hear(listener: &dyn Listener, what: &str) -> Notification {
    within(what, listener.next()).await.unwrap_or_else(|| panic!("{what}: the listener stopped"))
}

/// Fails if `listener` hears anything within [`QUIET`].
async fn hears_nothing(listener: &dyn Listener, what: &str) {
    if let Ok(heard) = tokio::time::timeout(QUIET, listener.next()).await {
        panic!("{what}: heard {heard:?}");
    }
}

fn note(channel: &str, message: &str) -> Notification {
    Notification { channel: channel.to_owned(), message: message.to_owned() }
}

/// A listener hears the channels it subscribed to and no other, each channel's messages in
/// the order published; every listener subscribed to a channel hears each of its messages;
/// publishing with nobody listening is not an error.
pub async fn listeners_hear_their_channels(notifier: &dyn Notifier, prefix: &str) {
    let (a, b, c) = (channel(prefix, "a"), channel(prefix, "b"), channel(prefix, "c"));
    notifier.publish(&a, "nobody listens").await.expect("publish without listeners");
    let first = notifier.listen().await.expect("listen");
    let second = notifier.listen().await.expect("listen");
    first.subscribe(&a).await.expect("subscribe");
    first.subscribe(&b).await.expect("subscribe");
    second.subscribe(&a).await.expect("subscribe");
    for (channel, message) in [(&a, "a1"), (&b, "b1"), (&c, "c1"), (&a, "a2")] {
        notifier.publish(channel, message).await.expect("publish");
    }
    // Each channel's messages in order; channels of different shards may interleave.
    let mut heard = Vec::new();
    for _ in 0..3 {
        heard.push(hear(&*first, "a message of a subscribed channel").await);
    }
    let of = |channel: &str| {
        heard.iter().filter(|n| n.channel == channel).map(|n| n.message.clone()).collect::<Vec<_>>()
    };
    assert_eq!(of(&a), ["a1", "a2"], "the first listener, channel a: {heard:?}");
    assert_eq!(of(&b), ["b1"], "the first listener, channel b: {heard:?}");
    assert_eq!(hear(&*second, "a1").await, note(&a, "a1"));
    assert_eq!(hear(&*second, "a2").await, note(&a, "a2"));
    hears_nothing(&*first, "the first listener, after its messages").await;
    hears_nothing(&*second, "the second listener, after its messages").await;
}

/// Subscriptions are counted: a channel subscribed twice is heard until it is unsubscribed
/// twice; unsubscribing a channel that is not subscribed does nothing; a channel
/// subscribed again is heard again.
pub async fn subscriptions_are_counted(notifier: &dyn Notifier, prefix: &str) {
    let a = channel(prefix, "counted");
    let listener = notifier.listen().await.expect("listen");
    listener.subscribe(&a).await.expect("subscribe");
    listener.subscribe(&a).await.expect("subscribe again");
    listener.unsubscribe(&a).await.expect("unsubscribe once");
    notifier.publish(&a, "1").await.expect("publish");
    assert_eq!(hear(&*listener, "still subscribed once").await, note(&a, "1"));
    listener.unsubscribe(&a).await.expect("unsubscribe twice");
    notifier.publish(&a, "2").await.expect("publish");
    hears_nothing(&*listener, "unsubscribed").await;
    listener.unsubscribe(&a).await.expect("unsubscribe a channel not subscribed");
    listener.unsubscribe(&channel(prefix, "never")).await.expect("unsubscribe a channel never subscribed");
    listener.subscribe(&a).await.expect("subscribe anew");
    notifier.publish(&a, "3").await.expect("publish");
    assert_eq!(hear(&*listener, "subscribed anew").await, note(&a, "3"));
}

/// Tasks share a listener: while several wait on it at once, each message goes to exactly
/// one of them.
pub async fn one_listener_for_several_tasks(notifier: &dyn Notifier, prefix: &str) {
    let a = channel(prefix, "shared");
    let listener = notifier.listen().await.expect("listen");
    listener.subscribe(&a).await.expect("subscribe");
    let read = async || {
        let mut got = Vec::new();
        while let Ok(Some(heard)) = tokio::time::timeout(QUIET * 3, listener.next()).await {
            got.push(heard.message);
        }
        got
    };
    let publish = async {
        for n in 0..20 {
            notifier.publish(&a, &n.to_string()).await.expect("publish");
        }
    };
    let (first, second, ()) = tokio::join!(read(), read(), publish);
    let mut all: Vec<u32> = first.iter().chain(&second).map(|m| m.parse().expect("a number")).collect();
    all.sort_unstable();
    assert_eq!(all, (0..20).collect::<Vec<_>>(), "each message once: {first:?} and {second:?}");
}

/// Channels of many hash slots (every shard of a cluster) are heard at once, and each
/// unsubscribed one falls silent.
pub async fn channels_of_many_slots(notifier: &dyn Notifier, prefix: &str) {
    let channels: Vec<String> = (0..24).map(|n| channel(prefix, &format!("many-{n}"))).collect();
    let listener = notifier.listen().await.expect("listen");
    for channel in &channels {
        listener.subscribe(channel).await.expect("subscribe");
    }
    for channel in &channels {
        notifier.publish(channel, "hello").await.expect("publish");
    }
    let mut heard = Vec::new();
    for _ in &channels {
        heard.push(hear(&*listener, "a message of one of many channels").await.channel);
    }
    heard.sort();
    let mut expected = channels.clone();
    expected.sort();
    assert_eq!(heard, expected);
    for channel in &channels {
        listener.unsubscribe(channel).await.expect("unsubscribe");
    }
    for channel in &channels {
        notifier.publish(channel, "goodbye").await.expect("publish");
    }
    hears_nothing(&*listener, "after unsubscribing every channel").await;
}

/// The notifier's `health_check` passes while its server is up.
pub async fn notifier_health(notifier: &dyn Notifier) {
    notifier.health_check().await.expect("health_check");
}
