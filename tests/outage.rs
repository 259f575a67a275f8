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

#[test]
fn a_redis_cut_during_a_large_upload_loses_nothing() {
    let Some(servers) = servers("redis cut during a large upload") else { return };
    let redis = Proxy::start(6379);
    let logs = std::env::temp_dir().join(random_name("dsobel-cut-upload"));
    std::fs::create_dir_all(&logs).unwrap();
    let mut stack = Stack::new(&servers);
    stack.redis = format!("redis://127.0.0.1:{}/", redis.port);
    stack.log_dir = Some(logs.clone());
    let _worker = stack.worker(0);
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();
    // A PNG over 2 MiB: its body goes to Redis as it arrives.
    let (png, luma) = test_png(2000, 1500, 5);
    assert!(png.len() > 2 << 20, "large enough to be stored as it arrives: {} bytes", png.len());

    // Half the body, then every connection to Redis cut (the one taking the upload too) and
    // restored, then the rest: the upload is stored whole once in, and the job finishes.
    let mut upload = start_upload(&address, &png, png.len() / 2);
    std::thread::sleep(Duration::from_millis(300));
    redis.cut();
    std::thread::sleep(Duration::from_millis(500));
    redis.restore();
    wait_until(Duration::from_secs(30), || {
        http("GET", &address, "/readyz", b"").is_some_and(|r| r.status == 200)
    })
    .expect("the backend is ready again");
    std::io::Write::write_all(&mut upload, &png[png.len() / 2..]).unwrap();
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut upload, &mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let id = serde_json::from_str::<serde_json::Value>(body).unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(wait_job(&address, &id, Duration::from_secs(30))["state"], "done");
    assert_exact(&address, &id, &luma, 2000, 1500);
    let queued = log_lines(&logs, "job queued");
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["fields"]["stored_as_received"], false, "stored at submission instead");
    let _ = std::fs::remove_dir_all(&logs);
}
