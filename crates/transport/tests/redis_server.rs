//! The Redis adapters on one server of the test's own (never the shared one): large values
//! with a password and a database number, across a restart; a server that announces more
//! than was asked for; a full server (`maxmemory`); a listener across a restart.
//!
//! Needs `redis-server` on the `PATH`; without it the tests say so and pass, except when `CI`
//! is set, where they fail.

mod support;

use std::time::Duration;

use bytes::Bytes;
use dsobel_transport::{Notifier, RedisNotifier, RedisStore, Store, TransportError};
use support::{Server, redis_installed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_with_a_password_a_database_and_a_restart() {
    if !redis_installed("large_values_with_a_password_a_database_and_a_restart") {
        return;
    }
    let server = Server::start(&["--requirepass", "s3cret"]);
    let port = server.port;
    let store = RedisStore::connect(&format!("redis://:s3cret@127.0.0.1:{port}/3")).await.expect("connect");
    assert!(!store.is_cluster());
    let value: Bytes = (0..3_000_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let ttl = Duration::from_secs(60);
    store.put("big", value.clone(), ttl).await.expect("put a large value");
    assert_eq!(store.get("big").await.expect("get"), Some(value.clone()), "read back from database 3");
    assert_eq!(store.get_range("big", 1000..2000).await.unwrap().as_deref(), Some(&value[1000..2000]));
    // A large range is read on the bulk connections, through the same AUTH and SELECT.
    let large = store.get_range("big", 500_000..2_500_000).await.expect("a large range");
    assert_eq!(large.as_deref(), Some(&value[500_000..2_500_000]));
    // The server restarts (losing everything) while the store holds idle connections.
    server.stop();
    server.restart();
    // A large read first: the pooled bulk connections are dead, and the restarted server
    // has lost the value (a missing key reads as `None`, not as an error).
    assert_eq!(store.get_range("big", 0..1_000_000).await.expect("a large read after the restart"), None);
    store.put("big", value.clone(), ttl).await.expect("a large put after the restart, at the first try");
    let large = store.get_range("big", 1..2_000_001).await.expect("a large range after the restart");
    assert_eq!(large.as_deref(), Some(&value[1..2_000_001]));
    // The general client reconnects on the call after the one that found its connection gone.
    let mut read = store.get("big").await;
    for _ in 0..20 {
        if read.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        read = store.get("big").await;
    }
    assert_eq!(read.expect("get after the restart"), Some(value));
}

/// The commands of one request read from a client (a RESP array of bulk strings), or `None`
/// when the client went away.
async fn read_command(stream: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> Option<Vec<String>> {
    loop {
        if let Some((words, used)) = parse_command(buffer) {
            buffer.drain(..used);
            return Some(words);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn parse_command(buffer: &[u8]) -> Option<(Vec<String>, usize)> {
    let line_end = |from: usize| buffer[from..].windows(2).position(|w| w == b"\r\n").map(|p| from + p);
    let end = line_end(0)?;
    let count: usize = std::str::from_utf8(&buffer[1..end]).ok()?.parse().ok()?;
    let mut at = end + 2;
    let mut words = Vec::new();
    for _ in 0..count {
        let end = line_end(at)?;
        let length: usize = std::str::from_utf8(&buffer[at + 1..end]).ok()?.parse().ok()?;
        let start = end + 2;
        if buffer.len() < start + length + 2 {
            return None;
        }
        words.push(String::from_utf8_lossy(&buffer[start..start + length]).into_owned());
        at = start + length + 2;
    }
    Some((words, at))
}

/// A server on loopback that speaks enough RESP to be connected to, and answers `GETRANGE`
/// with the bulk length `announced`, whatever the range.
async fn lying_server(announced: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                while let Some(words) = read_command(&mut stream, &mut buffer).await {
                    let reply: String = match words.first().map(|w| w.to_ascii_uppercase()).as_deref() {
                        Some("CLUSTER") => "-ERR This instance has cluster support disabled\r\n".into(),
                        Some("PING") => "+PONG\r\n".into(),
                        Some("GETRANGE") => format!("${announced}\r\n"),
                        _ => "+OK\r\n".into(),
                    };
                    if stream.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A server that announces a bulk length beyond the range asked for is refused with a
/// protocol error, before anything of that size is allocated (a terabyte here: allocated, the
/// test would abort).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_announcing_more_than_the_range_asked_for_is_refused() {
    for announced in ["1000000000000", "100001", "99999999999999999999999"] {
        let port = lying_server(announced).await;
        let store = RedisStore::connect(&format!("redis://127.0.0.1:{port}/")).await.expect("connect");
        let started = std::time::Instant::now();
        match store.get_range("key", 0..100_000).await {
            Err(TransportError::Protocol { detail, .. }) => {
                assert!(detail.contains("GETRANGE"), "{detail}");
                if announced != "99999999999999999999999" {
                    assert!(detail.contains("at most 100000 were asked for"), "{detail}");
                }
            }
            other => panic!("announced {announced}: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(1), "refused at once");
    }
}

/// A full server (`maxmemory`, `noeviction`): every kind of write is refused with
/// `OutOfMemory` (not as an outage, not as a protocol error), reads and deletes still work,
/// the memory figures show the limit, and writes work again once memory is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_says_so_and_recovers() {
    if !redis_installed("a_full_store_says_so_and_recovers") {
        return;
    }
    let server = Server::start(&["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let store = RedisStore::connect(&format!("redis://127.0.0.1:{}/", server.port)).await.expect("connect");
    let ttl = Duration::from_secs(300);
    let shards = store.memory().await.expect("memory");
    assert_eq!(shards.len(), 1, "{shards:?}");
    assert_eq!(shards[0].shard, format!("127.0.0.1:{}", server.port));
    assert_eq!(shards[0].limit, Some(4 << 20));
    let before = shards[0].used;

    // Fill it with values of 256 KiB (written by the bulk path) until it refuses one (a large
    // value is refused first: its bytes count while the command is read), then with small
    // ones (written by the general client) until it is full.
    let mut written = Vec::new();
    for (size, path) in [(256 << 10, "the bulk path"), (4 << 10, "the general client")] {
        let value = Bytes::from(vec![1u8; size]);
        let refusal = loop {
            let key = format!("fill:{}", written.len());
            match store.put(&key, value.clone(), ttl).await {
                Ok(()) => written.push(key),
                Err(error) => break error,
            }
            assert!(written.len() < 2000, "4 MiB hold fewer values");
        };
        assert!(refusal.is_out_of_memory(), "a SET on {path} refused: {refusal:?}");
    }
    let full = store.memory().await.expect("memory when full");
    assert!(full[0].used > before + (1 << 20), "{full:?}");
    assert!(full[0].fraction().expect("a limit") > 0.95, "{full:?}");
    // A few bytes may still fit; with the limit lowered under what is used (as when memory
    // grows past it), none does.
    assert_eq!(support::cli(server.port, &[], &["config", "set", "maxmemory", "3mb"]), "OK");
    let over = store.memory().await.expect("memory over the limit");
    assert_eq!(over[0].limit, Some(3 << 20));
    assert!(over[0].fraction().expect("a limit") > 1.0, "{over:?}");

    // Every kind of write is refused the same way.
    let large = store.put("large", Bytes::from(vec![1u8; 256 << 10]), ttl).await;
    assert!(large.as_ref().is_err_and(TransportError::is_out_of_memory), "a large SET: {large:?}");
    let small = store.put("small", Bytes::from_static(b"v"), ttl).await;
    assert!(small.as_ref().is_err_and(TransportError::is_out_of_memory), "a small SET: {small:?}");
    let claim = store.put_if_absent("claim", Bytes::from_static(b"v"), ttl).await;
    assert!(claim.as_ref().is_err_and(TransportError::is_out_of_memory), "SET NX: {claim:?}");
    let field = store.hash_put("hash", "f", Bytes::from_static(b"v"), ttl).await;
    assert!(field.as_ref().is_err_and(TransportError::is_out_of_memory), "HSET in MULTI: {field:?}");
    let member = store.set_add("set", "m", ttl).await;
    assert!(member.as_ref().is_err_and(TransportError::is_out_of_memory), "SADD in MULTI: {member:?}");
    let mut parts =
        store.put_in_parts("parted", 300_000, ttl).await.expect("start a value in parts").expect("parts");
    parts.write(&[&[2u8; 300_000]]).await.expect("the bytes go out");
    let finished = parts.finish().await;
    assert!(finished.as_ref().is_err_and(TransportError::is_out_of_memory), "a value in parts: {finished:?}");

    // Reads and deletes still work; once memory is freed, writes work again.
    let first = store.get(&written[0]).await.expect("a read of a full store");
    assert_eq!(first.map(|v| v.len()), Some(256 << 10));
    store.delete(&written).await.expect("a delete of a full store");
    store.put("small", Bytes::from_static(b"v"), ttl).await.expect("a small SET after freeing memory");
    store
        .put("large", Bytes::from(vec![1u8; 256 << 10]), ttl)
        .await
        .expect("a large SET after freeing memory");
    assert!(store.hash_put("hash", "f", Bytes::from_static(b"v"), ttl).await.expect("HSET"));
    store.set_add("set", "m", ttl).await.expect("SADD");
}

/// A listener's channels are heard again after the server restarted under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_subscribes_again_after_a_restart() {
    if !redis_installed("a_listener_subscribes_again_after_a_restart") {
        return;
    }
    let server = Server::start(&[]);
    let notifier =
        RedisNotifier::connect(&format!("redis://127.0.0.1:{}/", server.port)).await.expect("connect");
    let listener = notifier.listen().await.expect("listen");
    let channels = ["dsobel:job:{a}:events", "dsobel:job:{b}:events"];
    for channel in channels {
        listener.subscribe(channel).await.expect("subscribe");
    }
    notifier.publish(channels[0], "before").await.expect("publish");
    assert_eq!(listener.next().await.expect("a message").message, "before");

    server.stop();
    server.restart();
    // Published until heard: the listener notices the lost connection and subscribes again.
    for channel in channels {
        let heard = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let _ = notifier.publish(channel, "after").await;
                if let Ok(Some(heard)) =
                    tokio::time::timeout(Duration::from_millis(200), listener.next()).await
                    && heard.channel == channel
                {
                    return heard;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{channel} not heard again after the restart:\n{}", server.log()));
        assert_eq!(heard.message, "after");
    }
}
