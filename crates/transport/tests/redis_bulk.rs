//! Large values on a Redis server of the test's own (never the shared one): written with a
//! password and a database number in the URL, read back in large ranges, and written and
//! read again after the server restarted under the store's idle connections.
//!
//! Needs `redis-server` on the `PATH`; without it the test says so and passes, except when
//! `CI` is set, where it fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsobel_transport::{RedisStore, Store};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `redis-server` on `port` with a password, and waits until it accepts connections.
fn start(port: u16) -> Option<Server> {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--requirepass", "s3cret"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(server)
}

#[tokio::test]
async fn large_values_with_a_password_a_database_and_a_restart() {
    let port = free_port();
    let Some(server) = start(port) else {
        assert!(std::env::var_os("CI").is_none(), "redis-server is not installed (CI is set, so this fails)");
        eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
        return;
    };
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
    drop(server);
    let _server = start(port).expect("restart");
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
