//! Large values on a Redis server of the test's own (never the shared one): written with a
//! password and a database number in the URL, read back in large ranges, and written and
//! read again after the server restarted under the store's idle connections.
//!
//! Needs `redis-server`; the test kit's harness shows the test as ignored with the reason when
//! it is missing, or fails it when `CI` is set. The store reaches the server through a proxy of
//! the test's own, so a restarted server may come back on another port.

use std::time::Duration;

use bytes::Bytes;
use dsobel_testkit::{Need, OwnRedis, Proxy, Test, block_on, wait_until_async};
use dsobel_transport::{RedisStore, Store};

fn main() -> std::process::ExitCode {
    dsobel_testkit::run(vec![Test::new(
        "large_values_with_a_password_a_database_and_a_restart",
        &[Need::REDIS_SERVER],
        || block_on(large_values_with_a_password_a_database_and_a_restart()),
    )])
}

async fn large_values_with_a_password_a_database_and_a_restart() {
    let mut server = OwnRedis::start_with_password(None, Some("s3cret"));
    let proxy = Proxy::start(server.port);
    let port = proxy.port;
    let store = RedisStore::connect(&format!("redis://:s3cret@127.0.0.1:{port}/3")).await.expect("connect");
    let value: Bytes = (0..3_000_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let ttl = Duration::from_secs(60);
    store.put("big", value.clone(), ttl).await.expect("put a large value");
    assert_eq!(store.get("big").await.expect("get"), Some(value.clone()), "read back from database 3");
    assert_eq!(store.get_range("big", 1000..2000).await.unwrap().as_deref(), Some(&value[1000..2000]));
    // A large range is read on the bulk connections, through the same AUTH and SELECT.
    let large = store.get_range("big", 500_000..2_500_000).await.expect("a large range");
    assert_eq!(large.as_deref(), Some(&value[500_000..2_500_000]));
    // The server restarts (losing everything) while the store holds idle connections.
    server.restart_empty();
    proxy.retarget(server.port);
    // A large read first: the pooled bulk connections are dead, and the restarted server
    // has lost the value (a missing key reads as `None`, not as an error).
    assert_eq!(store.get_range("big", 0..1_000_000).await.expect("a large read after the restart"), None);
    store.put("big", value.clone(), ttl).await.expect("a large put after the restart, at the first try");
    let large = store.get_range("big", 1..2_000_001).await.expect("a large range after the restart");
    assert_eq!(large.as_deref(), Some(&value[1..2_000_001]));
    // The general client reconnects on the call after the one that found its connection gone.
    let read = wait_until_async(Duration::from_secs(5), "the general client to reconnect", || async {
        store.get("big").await.ok()
    })
    .await;
    assert_eq!(read, Some(value));
}
