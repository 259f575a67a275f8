//! Redis losing its data under jobs in flight: emptied with `FLUSHALL`, or restarted without
//! persistence. Every job that got its `202` must end `failed` with the code `job-lost` (or
//! `done`, if a worker finished it after all), never turn into `404 unknown`; a client waiting
//! with `?wait=` is answered `503 job-lost`, and `dsobel submit` sends its file again. The
//! backend knows the jobs it accepted, and the task messages in RabbitMQ carry theirs: either
//! rebuilds the failed record.
//!
//! The stack uses a Redis server of the test's own on a spare port (never the shared one) and
//! the real RabbitMQ with a queue of its own.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

fn lost_store(how: &str) {
    let Some(servers) = servers(&format!("store loss by {how}")) else { return };
    let port = free_port();
    let Some(mut redis) = OwnRedis::start(port, None) else {
        assert!(std::env::var_os("CI").is_none(), "redis-server is not installed (CI is set, so this fails)");
        eprintln!(
            "skipped store loss by {how}: redis-server is not installed (apt-get install redis-server)"
        );
        return;
    };
    let mut stack = Stack::new(&servers);
    stack.redis = format!("redis://127.0.0.1:{port}/");
    // One slow worker: one job is being worked on and the others wait in the queue when the
    // data goes.
    let _worker = stack.worker(1500);
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();
    let (png, luma) = test_png(96, 64, 5);
    let ids: Vec<String> = (0..4).map(|_| submit(&address, &png, "")).collect();
    let waiting = {
        let (address, png) = (address.clone(), png.clone());
        std::thread::spawn(move || {
            http("POST", &address, "/upload?wait=30", &png).expect("backend reachable")
        })
    };
    // `dsobel submit`, which still has the file, sends a lost job again.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("photo.png"), &png).unwrap();
    let submit_cli = Command::new(env!("CARGO_BIN_EXE_dsobel"))
        .args(["submit", "--server", &format!("http://{address}")])
        .arg(dir.path().join("photo.png"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dsobel submit");
    // The waiting request's and the submitted jobs are accepted, and the worker has the first.
    wait_until(Duration::from_secs(10), || metric(&address, "dsobel_jobs_in_flight") >= 6.0)
        .expect("six jobs in flight");
    wait_until(Duration::from_secs(10), || {
        http("GET", &address, &format!("/status/{}", ids[0]), b"")
            .is_some_and(|r| r.json()["state"] == "processing")
    })
    .expect("the worker took the first job");

    match how {
        "flush" => redis.flush_all(),
        _ => redis.restart_empty(),
    }

    for id in &ids {
        let mut last = None;
        wait_until(Duration::from_secs(30), || {
            last = http("GET", &address, &format!("/status/{id}"), b"");
            last.as_ref().is_some_and(|r| {
                r.status == 200 && (r.json()["state"] == "failed" || r.json()["state"] == "done")
            })
        })
        .unwrap_or_else(|| {
            let r = last.as_ref().map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned()));
            panic!("job {id} neither failed nor done after the store lost it: {r:?}")
        });
        let status = last.unwrap().json();
        if status["state"] == "failed" {
            assert_eq!(status["error"]["code"], "job-lost", "{status}");
            let message = status["error"]["message"].as_str().unwrap();
            assert!(message.contains("submit it again"), "{message}");
        }
    }
    let answer = waiting.join().unwrap();
    if answer.status != 200 {
        assert_eq!(answer.status, 503, "{}", String::from_utf8_lossy(&answer.body));
        assert_eq!(answer.json()["error"]["code"], "job-lost");
    }
    // Service goes on, and the submitted file got its result.
    let id = submit(&address, &png, "");
    assert_eq!(wait_job(&address, &id, Duration::from_secs(30))["state"], "done");
    let submitted = submit_cli.wait_with_output().expect("dsobel submit ends");
    let stderr = String::from_utf8_lossy(&submitted.stderr);
    assert_eq!(submitted.status.code(), Some(0), "{stderr}");
    let (w, h, pixels) = decode_png(&std::fs::read(dir.path().join("photo-edges.png")).expect("the result"));
    assert_eq!((w, h), (96, 64));
    assert_eq!(pixels, dsobel_kernel::reference::filter_image(&luma, 96, 64, &Default::default()));
}

#[test]
fn jobs_in_flight_when_redis_is_flushed_end_failed_not_unknown() {
    lost_store("flush");
}

#[test]
fn jobs_in_flight_when_redis_restarts_without_its_data_end_failed_not_unknown() {
    lost_store("restart");
}
