//! Redis losing its data under jobs in flight: emptied with `FLUSHALL`, or restarted without
//! persistence. Every job that got its `202` must end `failed` with the code `job-lost` (or
//! `done`, if a worker finished it after all), never turn into `404 unknown`; a client waiting
//! with `?wait=` is answered `503 job-lost`, and `dsobel submit` sends its file again. The
//! backend knows the jobs it accepted, and the task messages in RabbitMQ carry theirs: either
//! rebuilds the failed record. A job the backend still holds reads `failed` (`job-lost`) at
//! once, before any sweep has recorded the loss.
//!
//! The stack uses a Redis server of the test's own (never the shared one), behind a proxy so
//! that a restarted server may come back on another port, and the real RabbitMQ with a queue
//! of its own.

use std::process::{Command, Stdio};
use std::time::Duration;

use dsobel_client::{ErrorCode, JobState, Upload};
use dsobel_testkit::{
    Need, OwnRedis, Proxy, Servers, Stack, Test, decode_png, dsobel_binary, expected, test_png, wait_for,
    wait_until,
};

fn main() -> std::process::ExitCode {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    let needs = [Need::RabbitMq, Need::REDIS_SERVER];
    dsobel_testkit::run(vec![
        Test::new("jobs_in_flight_when_redis_is_flushed_end_failed_not_unknown", &needs, || {
            lost_store("flush")
        }),
        Test::new(
            "jobs_in_flight_when_redis_restarts_without_its_data_end_failed_not_unknown",
            &needs,
            || lost_store("restart"),
        ),
        Test::new(
            "a_job_this_backend_holds_reads_job_lost_at_once_never_404",
            &needs,
            a_job_this_backend_holds_reads_job_lost_at_once_never_404,
        ),
    ])
}

fn lost_store(how: &str) {
    let mut redis = OwnRedis::start(None);
    let proxy = Proxy::start(redis.port);
    let mut stack = Stack::new(&Servers::shared());
    stack.redis = format!("redis://127.0.0.1:{}/", proxy.port);
    // One slow worker: one job is being worked on and the others wait in the queue when the
    // data goes.
    let _worker = stack.worker(1500);
    let serve = stack.serve(&[]);
    let backend = serve.backend();
    let (png, luma) = test_png(96, 64, 5);
    let ids: Vec<_> = (0..4).map(|_| backend.submit(&png, "")).collect();
    let waiting = {
        let (backend, png) = (backend.clone(), png.clone());
        std::thread::spawn(move || backend.upload(&png, "wait=30"))
    };
    // `dsobel submit`, which still has the file, sends a lost job again.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("photo.png"), &png).unwrap();
    let submit_cli = Command::new(dsobel_binary())
        .args(["submit", "--server", &format!("http://{}", backend.address)])
        .arg(dir.path().join("photo.png"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dsobel submit");
    // The waiting request's and the submitted jobs are accepted, and the worker has the first.
    wait_for(Duration::from_secs(10), "six jobs in flight", || {
        backend.metric("dsobel_jobs_in_flight") >= 6.0
    });
    wait_for(Duration::from_secs(10), "the worker to take the first job", || {
        backend.try_status(&ids[0]).is_ok_and(|s| s.state == JobState::Processing)
    });

    match how {
        "flush" => redis.flush_all(),
        _ => {
            redis.restart_empty();
            proxy.retarget(redis.port);
        }
    }

    for id in &ids {
        let status = wait_until(
            Duration::from_secs(30),
            &format!("job {id} to fail or finish after the loss"),
            || backend.try_status(id).ok().filter(|s| matches!(s.state, JobState::Failed | JobState::Done)),
        );
        if status.state == JobState::Failed {
            let error = status.error.expect("the reason");
            assert_eq!(error.code, ErrorCode::JobLost, "{error:?}");
            assert!(error.message.contains("submit it again"), "{}", error.message);
        }
    }
    match waiting.join().unwrap() {
        Ok(Upload::Finished { .. }) => {}
        Ok(other) => panic!("?wait=30 answered {other:?}"),
        Err(refused) => assert_eq!((refused.status(), refused.code()), (503, "job-lost"), "{refused}"),
    }
    // Service goes on, and the submitted file got its result.
    let id = backend.submit(&png, "");
    backend.wait_done(&id, Duration::from_secs(30));
    let submitted = submit_cli.wait_with_output().expect("dsobel submit ends");
    let stderr = String::from_utf8_lossy(&submitted.stderr);
    assert_eq!(submitted.status.code(), Some(0), "{stderr}");
    let (w, h, pixels) = decode_png(&std::fs::read(dir.path().join("photo-edges.png")).expect("the result"));
    assert_eq!((w, h), (96, 64));
    assert_eq!(pixels, expected(&luma, 96, 64, &Default::default()));
}

/// The store emptied under two jobs this backend accepted (one in a worker's hands, one
/// queued behind it), with the backend's sweep an hour away: both read `200 failed job-lost`
/// on `/status` and `503 job-lost` on `/result` right away, never `404`.
fn a_job_this_backend_holds_reads_job_lost_at_once_never_404() {
    let redis = OwnRedis::start(None);
    let stack = Stack::new(&Servers { amqp: Servers::shared().amqp, redis: redis.url() });
    // The worker holds each task 10 s before reading its input, so it rebuilds no record
    // while the test looks.
    let worker = stack.worker(10_000);
    let serve = stack.serve(&["--sweep-interval-ms", "3600000"]);
    let (health, backend) = (worker.backend(), serve.backend());
    let (png, _) = test_png(96, 64, 33);
    let in_hand = backend.submit(&png, "");
    let queued = backend.submit(&png, "");
    wait_for(Duration::from_secs(20), "the worker to hold the first job", || {
        health.metric("dsobel_strips_in_flight") == 1.0
    });
    redis.flush_all();
    for id in [&in_hand, &queued] {
        let status = backend.try_status(id).unwrap_or_else(|e| panic!("/status/{id} after the loss: {e}"));
        assert_eq!(status.state, JobState::Failed, "job {id}: {status:?}");
        let error = status.error.expect("the reason");
        assert_eq!(error.code, ErrorCode::JobLost, "job {id}: {error:?}");
        assert!(error.message.contains("submit it again"), "{}", error.message);
        let refused = backend.result(id).expect_err("a lost job has no result");
        assert_eq!((refused.status(), refused.code()), (503, "job-lost"), "/result/{id}: {refused}");
    }
    assert_eq!(health.metric("dsobel_strips_in_flight"), 1.0, "the worker still held the first job");
}
