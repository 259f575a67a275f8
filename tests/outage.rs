//! Redis or RabbitMQ going away and coming back, without touching the real servers: every
//! process of the stack talks to them through a TCP proxy that the test can cut and restore.
//! While a dependency is down, `/readyz` answers 503 and uploads get a 503 JSON error quickly
//! instead of hanging; once it is back, service resumes by itself.

use std::time::{Duration, Instant};

use dsobel_client::Upload;
use dsobel_testkit::harness::host_port;
use dsobel_testkit::process::{log_lines, start_upload};
use dsobel_testkit::{Need, Proxy, Servers, Stack, Test, random_name, test_png, wait_for, wait_until};

fn main() -> std::process::ExitCode {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    let servers = [Need::RabbitMq, Need::Redis];
    dsobel_testkit::run(vec![
        Test::new("redis_outage_gives_503_and_service_resumes", &servers, || outage_of("redis")),
        Test::new("rabbitmq_outage_gives_503_and_service_resumes", &servers, || outage_of("rabbitmq")),
        Test::new(
            "a_redis_cut_during_a_large_upload_loses_nothing",
            &servers,
            a_redis_cut_during_a_large_upload_loses_nothing,
        ),
    ])
}

/// A proxy in front of the server of `url`.
fn proxy_for(url: &str, default_port: u16) -> Proxy {
    let address = host_port(url, default_port);
    let port = address.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("a port");
    Proxy::start(port)
}

fn outage_of(which: &str) {
    let servers = Servers::shared();
    let rabbit = proxy_for(&servers.amqp, 5672);
    let redis = proxy_for(&servers.redis, 6379);
    let mut stack = Stack::new(&servers);
    stack.amqp = format!("amqp://guest:guest@127.0.0.1:{}/%2f", rabbit.port);
    stack.redis = format!("redis://127.0.0.1:{}/", redis.port);
    let _worker = stack.worker(0);
    let serve = stack.serve(&[]);
    let backend = serve.backend();
    let (png, luma) = test_png(120, 90, 11);
    let before = backend.submit(&png, "");
    backend.wait_done(&before, Duration::from_secs(20));

    let proxy = if which == "redis" { &redis } else { &rabbit };
    proxy.cut();
    wait_for(Duration::from_secs(20), "/readyz to turn 503 while a dependency is down", || {
        backend.readyz() == Some(503)
    });
    let started = Instant::now();
    let refused = backend.upload(&png, "").expect_err("refused while a dependency is down");
    assert_eq!((refused.status(), refused.code()), (503, "unavailable"), "{refused}");
    assert!(refused.retry_after().is_some(), "a Retry-After");
    assert!(started.elapsed() < Duration::from_secs(15), "upload answered after {:?}", started.elapsed());

    proxy.restore();
    wait_for(Duration::from_secs(40), "/readyz to recover by itself", || backend.is_ready());
    // The worker reconnects by itself too: a new job goes all the way through.
    let after = wait_until(Duration::from_secs(40), "an upload accepted after the outage", || match backend
        .upload(&png, "")
    {
        Ok(Upload::Accepted(links)) => Some(links.id),
        _ => None,
    });
    backend.wait_done(&after, Duration::from_secs(40));
    backend.assert_exact(&after, &luma, 120, 90);
}

fn a_redis_cut_during_a_large_upload_loses_nothing() {
    let servers = Servers::shared();
    let redis = proxy_for(&servers.redis, 6379);
    let logs = std::env::temp_dir().join(random_name("dsobel-cut-upload"));
    std::fs::create_dir_all(&logs).unwrap();
    let mut stack = Stack::new(&servers);
    stack.redis = format!("redis://127.0.0.1:{}/", redis.port);
    stack.log_dir = Some(logs.clone());
    let _worker = stack.worker(0);
    let serve = stack.serve(&[]);
    let backend = serve.backend();
    // A PNG over 2 MiB: its body goes to Redis as it arrives.
    let (png, luma) = test_png(2000, 1500, 5);
    assert!(png.len() > 2 << 20, "large enough to be stored as it arrives: {} bytes", png.len());

    // Half the body, then every connection to Redis cut (the one taking the upload too) once
    // the upload is being written, and restored once the backend has noticed, then the rest:
    // the upload is stored whole once in, and the job finishes.
    let written_before = redis.upstream_bytes();
    let mut upload = start_upload(&backend.address, &png, png.len() / 2);
    wait_for(Duration::from_secs(20), "the upload to be written to Redis as it arrives", || {
        redis.upstream_bytes() - written_before > (png.len() / 4) as u64
    });
    redis.cut();
    wait_for(Duration::from_secs(20), "the backend to notice Redis is gone", || {
        backend.readyz() == Some(503)
    });
    redis.restore();
    wait_for(Duration::from_secs(30), "the backend to be ready again", || backend.is_ready());
    std::io::Write::write_all(&mut upload, &png[png.len() / 2..]).unwrap();
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut upload, &mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let links: dsobel_client::JobLinks = serde_json::from_str(body).expect("the 202's links");
    backend.wait_done(&links.id, Duration::from_secs(30));
    backend.assert_exact(&links.id, &luma, 2000, 1500);
    let queued = log_lines(&logs, "job queued");
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0]["fields"]["stored_as_received"], false, "stored at submission instead");
    let _ = std::fs::remove_dir_all(&logs);
}
