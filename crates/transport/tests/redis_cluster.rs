//! The Redis adapters on Redis Clusters of the tests' own (`scripts/redis-cluster.sh`: three
//! masters, three replicas), while they fail and change: a master killed (its replica takes
//! over), slots resharded by `redis-cli --cluster reshard`, one slot moved by hand through
//! its `ASK` phase, every connection of every master cut. In each, reads and writes go on
//! throughout (a load of small values, large values on the bulk path, and hashes in `MULTI`)
//! and sharded subscriptions must be heard again afterwards.
//!
//! What is asserted of the load: no operation fails other than as a passing outage
//! ([`TransportError::Unavailable`]) or returns data that was not written for its key; a
//! large value's operations (the bulk path, which follows `MOVED` and `ASK` itself) do not
//! fail at all while slots move; and once the cluster is ok again, every key's operations
//! succeed. A write acknowledged by a master killed before its replica had it may be lost (Redis
//! replicates asynchronously): values written before the kill are checked only once the
//! replicas had them.
//!
//! Needs `redis-server` and `redis-cli`; without them the tests say so and pass, except when
//! `CI` is set, where they fail. The tests run one at a time: failovers are timed.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_transport::{Listener, Notifier, RedisNotifier, RedisStore, Store, TransportError};
use support::{Cluster, redis_installed, wait_until};

/// One cluster test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Keys of the load: spread over every shard.
const KEYS: u64 = 256;

/// Bytes of a large value (written and read on the bulk path).
const LARGE: usize = 160 << 10;

/// Bytes of a small value.
const SMALL: usize = 512;

const TTL: Duration = Duration::from_secs(600);

/// A value that says which key and which round wrote it.
fn value(n: u64, round: u64, size: usize) -> Bytes {
    let mut bytes = format!("{n}:{round}:").into_bytes();
    bytes.resize(size, (n % 251) as u8);
    bytes.into()
}

/// Checks that `read` is a value written for key `n` in a round up to `round`, of `size`
/// bytes; the round it was written in.
fn check(read: &[u8], n: u64, round: u64, size: usize) -> Result<u64, String> {
    let text = String::from_utf8_lossy(&read[..read.len().min(40)]).into_owned();
    let mut fields = text.splitn(3, ':');
    let (key, written) = (
        fields.next().and_then(|f| f.parse::<u64>().ok()),
        fields.next().and_then(|f| f.parse::<u64>().ok()),
    );
    match (key, written) {
        (Some(key), Some(written)) if key == n && written <= round && read.len() == size => Ok(written),
        _ => Err(format!("key {n} round {round}: read {} bytes starting {text:?}", read.len())),
    }
}

/// What a load saw.
#[derive(Debug, Default)]
struct Stats {
    ok: u64,
    /// Operations that failed as passing outages, by kind of operation.
    unavailable: u64,
    /// Failures of the bulk path (large values), which must follow slot moves without error.
    bulk_failures: Vec<String>,
    /// Reads of a value older than the one last written for its key (a write lost with a
    /// killed master).
    stale_reads: u64,
    /// Anything that must never happen: another kind of error, or data not written for the key.
    wrong: Vec<String>,
    /// Operations since the last failure.
    clean_streak: u64,
}

/// Reads and writes on a store from a task of its own until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<Stats>>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(store: Arc<RedisStore>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(Stats::default()));
        let task = tokio::spawn(run_load(store, stop.clone(), stats.clone()));
        Load { stop, stats, task }
    }

    /// Waits until every key's operations succeeded in a row (three rounds of all keys).
    async fn wait_clean(&self, patience: Duration) {
        let deadline = Instant::now() + patience;
        loop {
            let streak = self.stats.lock().unwrap().clean_streak;
            if streak >= 3 * 3 * KEYS {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the load did not run clean within {patience:?}: {:?}",
                self.stats
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the load did `operations` more operations.
    async fn run_for(&self, operations: u64) {
        let start = self.stats.lock().unwrap().ok;
        while self.stats.lock().unwrap().ok < start + operations {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) -> Stats {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the load task");
        Arc::try_unwrap(self.stats).expect("the only holder").into_inner().unwrap()
    }
}

async fn run_load(store: Arc<RedisStore>, stop: Arc<AtomicBool>, stats: Arc<Mutex<Stats>>) {
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (n, round) = (i % KEYS, i / KEYS);
        i += 1;
        let (small, large, hash) =
            (format!("load:{{{n}}}:small"), format!("load:{{{n}}}:large"), format!("load:{{{n}}}:hash"));
        // A small value through the general client.
        let outcome = async {
            store.put(&small, value(n, round, SMALL), TTL).await?;
            store.get(&small).await
        }
        .await;
        record(&stats, "small", outcome.map(|read| read.map(|r| check(&r, n, round, SMALL))), false);
        // A large value on the bulk path, read back in one large range.
        let outcome = async {
            store.put(&large, value(n, round, LARGE), TTL).await?;
            store.get_range(&large, 0..LARGE as u64).await
        }
        .await;
        record(&stats, "large", outcome.map(|read| read.map(|r| check(&r, n, round, LARGE))), true);
        // A hash field, written in MULTI.
        let outcome = async {
            store.hash_put(&hash, "f", value(n, round, SMALL), TTL).await?;
            store.hash_get(&hash, "f").await
        }
        .await;
        record(&stats, "hash", outcome.map(|read| read.map(|r| check(&r, n, round, SMALL))), false);
    }
}

/// Counts one operation's outcome: the value read back (checked), missing, or an error.
fn record(
    stats: &Mutex<Stats>,
    what: &str,
    outcome: Result<Option<Result<u64, String>>, TransportError>,
    bulk: bool,
) {
    let mut stats = stats.lock().unwrap();
    match outcome {
        Ok(Some(Ok(_written))) => {
            stats.ok += 1;
            stats.clean_streak += 1;
        }
        Ok(Some(Err(wrong))) => stats.wrong.push(format!("{what}: {wrong}")),
        // Written, acknowledged, then missing: only a write lost with a killed master.
        Ok(None) => {
            stats.stale_reads += 1;
            stats.clean_streak = 0;
        }
        Err(TransportError::Unavailable { detail, .. }) => {
            stats.unavailable += 1;
            stats.clean_streak = 0;
            if bulk {
                stats.bulk_failures.push(format!("{what}: {detail}"));
            }
        }
        Err(other) => stats.wrong.push(format!("{what}: {other}")),
    }
}

/// Channels of many slots, so that every master holds some.
fn channels(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("dsobel:job:{{channel-{n}}}:events")).collect()
}

/// Publishes on each channel until the listener hears it (each within `patience`).
async fn hear_each(
    notifier: &RedisNotifier,
    listener: &dyn Listener,
    channels: &[String],
    patience: Duration,
) {
    for channel in channels {
        let heard = tokio::time::timeout(patience, async {
            loop {
                if let Err(error) = notifier.publish(channel, "ping").await {
                    eprintln!("publishing on {channel}: {error}");
                }
                if let Ok(Some(heard)) =
                    tokio::time::timeout(Duration::from_millis(250), listener.next()).await
                    && &heard.channel == channel
                {
                    return;
                }
            }
        })
        .await;
        assert!(heard.is_ok(), "{channel} is not heard within {patience:?}");
    }
    // What is left of the repeated messages.
    while tokio::time::timeout(Duration::from_millis(300), listener.next()).await.is_ok() {}
}

/// Writes `count` values that the rest of a test checks, and waits until every replica has
/// them.
async fn durable_values(store: &RedisStore, cluster: &Arc<Cluster>, count: u64) -> Vec<(String, Bytes)> {
    let mut values = Vec::new();
    for n in 0..count {
        let (key, size) = if n % 2 == 0 {
            (format!("durable:{{{n}}}:large"), LARGE)
        } else {
            (format!("durable:{{{n}}}:small"), SMALL)
        };
        let value = value(n, 0, size);
        store.put(&key, value.clone(), TTL).await.expect("write a durable value");
        values.push((key, value));
    }
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("every replica in sync", Duration::from_secs(20), || {
            cluster.masters().into_iter().all(|m| cluster.replica_in_sync(m))
        })
    })
    .await
    .unwrap();
    values
}

async fn check_durable(store: &RedisStore, values: &[(String, Bytes)]) {
    for (key, value) in values {
        let read = store.get(key).await.unwrap_or_else(|e| panic!("read {key}: {e}"));
        assert_eq!(read.as_ref(), Some(value), "{key} survived");
    }
}

/// Runs `f` on a blocking thread (it runs `redis-cli` and waits).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("a blocking step")
}

struct Setup {
    cluster: Arc<Cluster>,
    store: Arc<RedisStore>,
    notifier: RedisNotifier,
    listener: Box<dyn Listener>,
    channels: Vec<String>,
}

/// A cluster, a store and a notifier on it, and a listener subscribed to `channel_count`
/// channels, each heard once.
async fn setup(test: &str, channel_count: usize) -> Option<Setup> {
    if !redis_installed(test) {
        return None;
    }
    let cluster = Arc::new(blocking(|| Cluster::start(&[], &[])).await);
    let store = Arc::new(RedisStore::connect(&cluster.seeds).await.expect("connect the store"));
    assert!(store.is_cluster());
    let notifier = RedisNotifier::connect(&cluster.seeds).await.expect("connect the notifier");
    let listener = notifier.listen().await.expect("listen");
    let channels = channels(channel_count);
    for channel in &channels {
        listener.subscribe(channel).await.expect("subscribe");
    }
    hear_each(&notifier, &*listener, &channels, Duration::from_secs(5)).await;
    Some(Setup { cluster, store, notifier, listener, channels })
}

fn assert_sound(stats: &Stats) {
    assert!(stats.wrong.is_empty(), "operations that must not happen: {:#?}", stats.wrong);
    assert!(stats.ok > 0, "the load did something: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_master_killed_under_load_is_replaced_by_its_replica() {
    let _serial = SERIAL.lock().await;
    let Some(Setup { cluster, store, notifier, listener, channels }) =
        setup("a_master_killed_under_load_is_replaced_by_its_replica", 24).await
    else {
        return;
    };
    let durable = durable_values(&store, &cluster, 24).await;
    let load = Load::start(store.clone());
    load.run_for(300).await;

    // The master of the first channel's slot dies; its replica takes over.
    let slot = cluster.cli(cluster.base, &["cluster", "keyslot", &channels[0]]).parse().unwrap();
    let victim = cluster.owner_of(cluster.base, slot);
    let replica = cluster.replica_of(victim);
    cluster.kill(victim);
    let promoted = cluster.clone();
    blocking(move || {
        wait_until("the replica takes over", Duration::from_secs(30), || {
            promoted.cli(replica, &["info", "replication"]).contains("role:master")
        });
        promoted.wait_ok(Duration::from_secs(30));
    })
    .await;
    load.wait_clean(Duration::from_secs(30)).await;
    let stats = load.stop().await;
    eprintln!("load across the failover: {stats:?}");
    assert_sound(&stats);

    check_durable(&store, &durable).await;
    hear_each(&notifier, &*listener, &channels, Duration::from_secs(20)).await;
    let shards = store.memory().await.expect("memory after the failover");
    let mut names: Vec<String> = shards.iter().map(|s| s.shard.clone()).collect();
    names.sort();
    let mut masters: Vec<String> = cluster.masters().iter().map(|p| format!("127.0.0.1:{p}")).collect();
    masters.sort();
    assert_eq!(names, masters, "one figure per master, the promoted replica among them");
    assert!(!names.contains(&format!("127.0.0.1:{victim}")));

    // The killed node comes back as a replica; nothing changes for the clients.
    let back = cluster.clone();
    blocking(move || {
        back.restart(victim);
        back.wait_ok(Duration::from_secs(30));
    })
    .await;
    check_durable(&store, &durable).await;
    hear_each(&notifier, &*listener, &channels[..3], Duration::from_secs(20)).await;
}

/// The owner of every slot, by port, as the node on `asked` sees it.
fn slot_owners(cluster: &Cluster) -> Vec<u16> {
    let nodes = cluster.cli(cluster.masters()[0], &["cluster", "nodes"]);
    let mut owners = vec![0u16; 16384];
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 9 || !fields[2].contains("master") {
            continue;
        }
        let port: u16 = fields[1].split(['@', ':']).nth(1).and_then(|p| p.parse().ok()).unwrap();
        for range in fields[8..].iter().filter(|r| !r.starts_with('[')) {
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            let (first, last): (usize, usize) = (first.parse().unwrap(), last.parse().unwrap());
            owners[first..=last].fill(port);
        }
    }
    owners
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn slots_resharded_under_load_are_followed() {
    let _serial = SERIAL.lock().await;
    let Some(Setup { cluster, store, notifier, listener, channels }) =
        setup("slots_resharded_under_load_are_followed", 64).await
    else {
        return;
    };
    let durable = durable_values(&store, &cluster, 24).await;
    let before = blocking({
        let cluster = cluster.clone();
        move || slot_owners(&cluster)
    })
    .await;
    let load = Load::start(store.clone());
    load.run_for(300).await;

    let masters = cluster.masters();
    let (from, to) = (masters[0], masters[1]);
    let resharding = cluster.clone();
    blocking(move || resharding.reshard(from, to, 2000)).await;
    load.run_for(3 * KEYS).await;
    let stats = load.stop().await;
    eprintln!("load across the reshard: {stats:?}");
    assert_sound(&stats);
    assert!(stats.bulk_failures.is_empty(), "large values follow MOVED and ASK: {:#?}", stats.bulk_failures);
    assert_eq!(stats.stale_reads, 0, "nothing is lost when slots move");

    let after = blocking({
        let cluster = cluster.clone();
        move || slot_owners(&cluster)
    })
    .await;
    let moved = |key: &str| {
        let slot: usize = cluster.cli(cluster.base, &["cluster", "keyslot", key]).parse().unwrap();
        before[slot] != after[slot]
    };
    let keys_moved = (0..KEYS).filter(|n| moved(&format!("load:{{{n}}}:large"))).count();
    assert!(keys_moved > 0, "the load used keys of the slots that moved");
    let channels_moved = channels.iter().filter(|c| moved(c)).count();
    assert!(channels_moved > 0, "some subscribed channels were in the slots that moved");
    check_durable(&store, &durable).await;
    // The channels whose slot moved were ended by their old node and subscribed again.
    hear_each(&notifier, &*listener, &channels, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn one_slot_moved_by_hand_through_ask_and_moved() {
    let _serial = SERIAL.lock().await;
    let Some(Setup { cluster, store, notifier, listener, .. }) =
        setup("one_slot_moved_by_hand_through_ask_and_moved", 1).await
    else {
        return;
    };
    let tag = "{moving}";
    let slot: u16 = cluster.cli(cluster.base, &["cluster", "keyslot", tag]).parse().unwrap();
    let source = cluster.owner_of(cluster.base, slot);
    let target = *cluster.masters().iter().find(|&&m| m != source).unwrap();
    let key = |name: &str| format!("dsobel:{tag}:{name}");
    let channel = format!("dsobel:job:{tag}:events");
    listener.subscribe(&channel).await.expect("subscribe");
    let (first, second) = (value(1, 0, LARGE), value(2, 0, LARGE));
    store.put(&key("first"), first.clone(), TTL).await.expect("put");
    store.put(&key("second"), second.clone(), TTL).await.expect("put");

    // The slot starts moving, and one of its two keys is already at the target.
    let (source_id, target_id) = (cluster.id(source), cluster.id(target));
    assert_eq!(
        cluster.cli(target, &["cluster", "setslot", &slot.to_string(), "importing", &source_id]),
        "OK"
    );
    assert_eq!(
        cluster.cli(source, &["cluster", "setslot", &slot.to_string(), "migrating", &target_id]),
        "OK"
    );
    let migrate = ["migrate", "127.0.0.1", &target.to_string(), "", "0", "5000", "keys", &key("first")];
    assert_eq!(cluster.cli(source, &migrate), "OK");

    // ASK: a key already moved is read at the target; a key not yet moved at the source;
    // a new key is written at the target. Large values (the bulk path) and small ones.
    let range = 0..LARGE as u64;
    assert_eq!(
        store.get_range(&key("first"), range.clone()).await.expect("a moved key"),
        Some(first.clone())
    );
    assert_eq!(
        store.get_range(&key("second"), range.clone()).await.expect("a key not moved"),
        Some(second.clone())
    );
    assert_eq!(store.get(&key("first")).await.expect("a small read of a moved key"), Some(first.clone()));
    let third = value(3, 0, LARGE);
    store.put(&key("third"), third.clone(), TTL).await.expect("a new key while the slot moves");
    let keys_at = |node| cluster.cli(node, &["cluster", "countkeysinslot", &slot.to_string()]);
    assert_eq!((keys_at(source), keys_at(target)), ("1".into(), "2".into()), "the new key is at the target");
    // A value in parts cannot be sent again: its node refuses it with ASK at its end, and it
    // is not set (the caller stores it whole instead).
    let mut parts = store.put_in_parts(&key("parted"), 1000, TTL).await.expect("parts").expect("a sink");
    parts.write(&[&[9u8; 1000]]).await.expect("write");
    match parts.finish().await {
        Err(TransportError::Unavailable { detail, .. }) => assert!(detail.contains("ASK"), "{detail}"),
        other => panic!("a value in parts while its slot moves: {other:?}"),
    }

    // The move ends: the source answers MOVED from now on, and ends the channel's subscription.
    let migrate = ["migrate", "127.0.0.1", &target.to_string(), "", "0", "5000", "keys", &key("second")];
    assert_eq!(cluster.cli(source, &migrate), "OK");
    for node in [target, source] {
        assert_eq!(cluster.cli(node, &["cluster", "setslot", &slot.to_string(), "node", &target_id]), "OK");
    }
    assert_eq!(store.get_range(&key("second"), range.clone()).await.expect("MOVED"), Some(second));
    assert_eq!(store.get_range(&key("first"), range.clone()).await.expect("at the target"), Some(first));
    assert_eq!(store.get_range(&key("third"), range).await.expect("at the target"), Some(third));
    store.put(&key("fourth"), value(4, 0, LARGE), TTL).await.expect("a new key after the move");
    hear_each(&notifier, &*listener, &[channel], Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn every_connection_cut_under_load_is_made_again() {
    let _serial = SERIAL.lock().await;
    let Some(Setup { cluster, store, notifier, listener, channels }) =
        setup("every_connection_cut_under_load_is_made_again", 24).await
    else {
        return;
    };
    let load = Load::start(store.clone());
    load.run_for(300).await;
    for master in cluster.masters() {
        for kind in ["pubsub", "normal"] {
            let killed = cluster.cli(master, &["client", "kill", "type", kind]);
            assert!(
                killed.parse::<u32>().is_ok_and(|n| n > 0),
                "{kind} connections of {master} cut: {killed}"
            );
        }
    }
    load.wait_clean(Duration::from_secs(30)).await;
    let stats = load.stop().await;
    eprintln!("load across the cuts: {stats:?}");
    assert_sound(&stats);
    hear_each(&notifier, &*listener, &channels, Duration::from_secs(20)).await;
}
