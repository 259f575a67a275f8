//! A store that fills up, end to end on real processes with a Redis of the test's own whose
//! `maxmemory` is a few megabytes: the backend refuses new uploads (`503` with `Retry-After`)
//! before the store refuses writes, and says so in `/readyz`; a worker whose result the full
//! store refuses holds it and writes it once there is room, without handing its task back (so
//! without spending a delivery); no accepted job fails, and everything resumes when memory
//! frees.

use std::time::Duration;

use dsobel_client::{ClientError, JobId, JobState, Upload};
use dsobel_testkit::servers::Reply;
use dsobel_testkit::{Need, OwnRedis, RedisClient, Servers, Stack, Test, test_png, wait_for};

fn main() -> std::process::ExitCode {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    dsobel_testkit::run(vec![
        Test::new(
            "a_nearly_full_store_refuses_uploads_and_finishes_every_accepted_job",
            &[Need::RabbitMq, Need::REDIS_SERVER],
            a_nearly_full_store_refuses_uploads_and_finishes_every_accepted_job,
        ),
        Test::new(
            "a_worker_holds_its_result_while_the_store_is_full_without_spending_a_delivery",
            &[Need::RabbitMq, Need::REDIS_SERVER],
            a_worker_holds_its_result_while_the_store_is_full_without_spending_a_delivery,
        ),
    ])
}

/// A Redis of the test's own that refuses writes past `megabytes` of memory.
fn small_redis(megabytes: u32) -> OwnRedis {
    let redis = OwnRedis::start(None);
    let client = redis.client();
    for (name, value) in [("maxmemory", format!("{megabytes}mb")), ("maxmemory-policy", "noeviction".into())]
    {
        assert_eq!(client.command(&["CONFIG", "SET", name, &value]), Reply::Status("OK".into()));
    }
    redis
}

/// Bytes the server holds now.
fn used_memory(client: &RedisClient) -> u64 {
    let info = client.command(&["INFO", "memory"]).text();
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO memory gives used_memory")
}

fn a_nearly_full_store_refuses_uploads_and_finishes_every_accepted_job() {
    let redis = small_redis(8);
    let mut stack = Stack::new(&Servers { amqp: Servers::shared().amqp, redis: redis.url() });
    stack.env.push(("DSOBEL_STORE_MEMORY_WATERMARK".into(), "0.5".into()));
    let serve = stack.serve(&["--sweep-interval-ms", "100"]);
    let backend = serve.backend();
    // A slow worker: uploads pile up in the store while it works through them.
    let worker = stack.worker(400);
    // Photograph-like PNGs of about 700 KB: a few of them reach half of 8 MB.
    let images: Vec<_> = (0..30).map(|seed| test_png(640, 480, 40 + seed)).collect();
    let mut accepted: Vec<(JobId, &[u8])> = Vec::new();
    let mut refusal = None;
    for (png, luma) in &images {
        match backend.upload(png, "") {
            Ok(Upload::Accepted(links)) => accepted.push((links.id, luma)),
            Ok(other) => panic!("an upload without ?wait= answered {other:?}"),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
        // Each upload lands in the store before the next: the next beat sees the memory.
        std::thread::sleep(Duration::from_millis(150));
    }
    let refusal = refusal.expect("the store filled up before 30 uploads");
    let ClientError::Api { status, code, message, retry_after } = &refusal else {
        panic!("the refusal is an answer of the API: {refusal}")
    };
    assert_eq!((*status, code.as_str()), (503, "unavailable"), "{message}");
    assert!(message.contains("nearly full") && retry_after.is_some(), "{message}");
    assert!(!accepted.is_empty(), "some uploads were accepted before the store filled");
    // Ready, but saying that uploads are refused, and why.
    let ready = backend.http("GET", "/readyz", &[], b"").expect("readyz answers");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["uploads"], "refused", "{}", ready.text());
    // Every accepted job ends done, with exact pixels: none failed for the full store.
    for (id, luma) in &accepted {
        let status = backend.wait_job(id, Duration::from_secs(60));
        assert_eq!(status.state, JobState::Done, "{status:?}");
        backend.assert_exact(id, luma, 640, 480);
    }
    // Finished jobs' uploads are deleted: memory frees, and uploads are taken again.
    wait_for(Duration::from_secs(20), "the backend to take uploads again", || {
        matches!(backend.upload(&images[0].0, ""), Ok(Upload::Accepted(_)))
    });
    assert_eq!(worker.backend().metric("dsobel_strip_redeliveries_total"), 0.0);
}

fn a_worker_holds_its_result_while_the_store_is_full_without_spending_a_delivery() {
    let redis = small_redis(16);
    let client = redis.client();
    let mut stack = Stack::new(&Servers { amqp: Servers::shared().amqp, redis: redis.url() });
    // The backend never refuses here: the store itself fills up under the worker.
    stack.env.push(("DSOBEL_STORE_MEMORY_WATERMARK".into(), "1".into()));
    let serve = stack.serve(&[]);
    let backend = serve.backend();
    // The drill holds each task 2 s before the worker computes it: the store fills meanwhile.
    let worker = stack.worker(2000);
    let health = worker.backend();
    let (png, luma) = test_png(320, 240, 77);
    let id = backend.submit(&png, "");
    wait_for(Duration::from_secs(20), "the worker to hold the task", || {
        health.metric("dsobel_strips_in_flight") == 1.0
    });
    // The store is over its limit from now on: its limit goes below what it holds (filling it
    // with values instead is not exact: a refused value's buffer is freed with it, which can
    // leave room for a small result).
    let used = used_memory(&client);
    let limit = (used / 2).to_string();
    assert_eq!(client.command(&["CONFIG", "SET", "maxmemory", &limit]), Reply::Status("OK".into()));
    assert!(matches!(client.command(&["SET", "probe", "x"]), Reply::Error(e) if e.starts_with("OOM")));
    // The worker's result is refused: it holds the task and tries again, never handing it back.
    wait_for(Duration::from_secs(20), "the worker to wait for room", || {
        health.metric("dsobel_full_store_waits_total") >= 1.0
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(health.metric("dsobel_strips_in_flight"), 1.0, "the worker still holds its task");
    assert_eq!(backend.status(&id).state, JobState::Processing);
    // Room comes back (as when results expire): the result goes in at the worker's next try,
    // and the job is done.
    assert_eq!(client.command(&["CONFIG", "SET", "maxmemory", "16mb"]), Reply::Status("OK".into()));
    let status = backend.wait_done(&id, Duration::from_secs(30));
    assert_eq!(status.state, JobState::Done);
    backend.assert_exact(&id, &luma, 320, 240);
    assert_eq!(health.metric("dsobel_strip_redeliveries_total"), 0.0, "no delivery was spent");
    assert_eq!(backend.metric("dsobel_dead_letters_total"), 0.0);
}
