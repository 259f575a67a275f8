//! Redis or RabbitMQ going away and coming back, without touching the real servers: every
//! process of the stack talks to them through a TCP proxy that the test can cut and restore.
//! While a dependency is down, `/readyz` answers 503 and uploads get a 503 JSON error quickly
//! instead of hanging; once it is back, service resumes by itself.

mod support;

use std::time::{Duration, Instant};

use support::*;

fn outage_of(which: &str) {
    let Some(servers) = servers(&format!("outage of {which}")) else { return };
    let rabbit = Proxy::start(5672);
    let redis = Proxy::start(6379);
    let mut stack = Stack::new(&servers);
    stack.amqp = format!("amqp://guest:guest@127.0.0.1:{}/%2f", rabbit.port);
    stack.redis = format!("redis://127.0.0.1:{}/", redis.port);
    let _worker = stack.worker(0);
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();
    let (png, luma) = test_png(120, 90, 11);
    let before = submit(&address, &png, "");
    assert_eq!(wait_job(&address, &before, Duration::from_secs(20))["state"], "done");

    let proxy = if which == "redis" { &redis } else { &rabbit };
    proxy.cut();
    wait_until(Duration::from_secs(20), || {
        http("GET", &address, "/readyz", b"").is_some_and(|r| r.status == 503)
    })
    .expect("/readyz turns 503 while a dependency is down");
    let started = Instant::now();
    let refused = http("POST", &address, "/upload", &png).expect("the backend itself still answers");
    assert_eq!(refused.status, 503, "{}", String::from_utf8_lossy(&refused.body));
    assert_eq!(refused.json()["error"]["code"], "unavailable");
    assert!(refused.header("retry-after").is_some());
    assert!(started.elapsed() < Duration::from_secs(15), "upload answered after {:?}", started.elapsed());

    proxy.restore();
    wait_until(Duration::from_secs(40), || {
        http("GET", &address, "/readyz", b"").is_some_and(|r| r.status == 200)
    })
    .expect("/readyz recovers by itself");
    // The worker reconnects by itself too: a new job goes all the way through.
    let mut after = None;
    wait_until(Duration::from_secs(40), || {
        if after.is_none() {
            after = http("POST", &address, "/upload", &png)
                .filter(|r| r.status == 202)
                .map(|r| r.json()["id"].as_str().unwrap().to_owned());
        }
        after.as_ref().is_some_and(|id| wait_job(&address, id, Duration::from_secs(5))["state"] == "done")
    })
    .expect("a job completes after the outage");
    assert_exact(&address, after.as_ref().unwrap(), &luma, 120, 90);
}

#[test]
fn redis_outage_gives_503_and_service_resumes() {
    outage_of("redis");
}

#[test]
fn rabbitmq_outage_gives_503_and_service_resumes() {
    outage_of("rabbitmq");
}
