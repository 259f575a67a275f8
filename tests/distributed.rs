//! The distributed system end to end: `dsobel serve` and `dsobel worker` processes from the
//! built binary against the real RabbitMQ and Redis, each test on its own random queue and key
//! namespace. The guarantees of DESIGN §4, each with a test that would fail without it.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn one_backend_two_workers_exact_results_one_strip_per_worker() {
    let Some(servers) = servers("one_backend_two_workers") else { return };
    let stack = Stack::new(&servers);
    let _workers = [stack.worker(0), stack.worker(0)];
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();
    // Large enough for two strips of the default minimum size.
    let (png, luma) = test_png(900, 700, 1);
    let id = submit(&address, &png, "");
    let status = wait_job(&address, &id, Duration::from_secs(30));
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["strips_total"], 2, "one strip per consuming worker");
    assert_exact(&address, &id, &luma, 900, 700);
    // Several at once, explicit strip counts, and ?wait=.
    let jobs: Vec<_> = (0..4u64)
        .map(|i| {
            let (png, luma) = test_png(200 + i as u32 * 37, 150, 10 + i);
            (submit(&address, &png, &format!("?fragments={}", i + 1)), luma, 200 + i as u32 * 37)
        })
        .collect();
    for (id, luma, w) in jobs {
        assert_eq!(wait_job(&address, &id, Duration::from_secs(30))["state"], "done");
        assert_exact(&address, &id, &luma, w, 150);
    }
    let (png, _) = test_png(64, 64, 3);
    let waited = http("POST", &address, "/upload?wait=20", &png).unwrap();
    assert_eq!(waited.status, 200);
    assert_eq!(&waited.body[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn a_worker_killed_mid_strip_loses_nothing() {
    let Some(servers) = servers("a_worker_killed_mid_strip") else { return };
    let stack = Stack::new(&servers);
    // Slow workers, so the kill lands while both hold a strip.
    let doomed = stack.worker(1500);
    let survivor = stack.worker(1500);
    let (doomed_health, survivor_health) =
        (doomed.address.clone().unwrap(), survivor.address.clone().unwrap());
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();
    let (png, luma) = test_png(300, 240, 4);
    let id = submit(&address, &png, "?fragments=2");
    wait_until(Duration::from_secs(20), || {
        metric(&doomed_health, "dsobel_strips_in_flight") == 1.0
            && metric(&survivor_health, "dsobel_strips_in_flight") == 1.0
    })
    .expect("both workers hold a strip");
    doomed.kill();
    let status = wait_job(&address, &id, Duration::from_secs(40));
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["strips_done"], 2);
    assert_exact(&address, &id, &luma, 300, 240);
    assert!(
        metric(&survivor_health, "dsobel_strip_redeliveries_total") >= 1.0,
        "the killed worker's strip was redelivered"
    );
    assert_eq!(metric(&address, "dsobel_stitches_total"), 1.0);
}

#[test]
fn a_backend_restarted_mid_job_still_finishes_it_once() {
    let Some(servers) = servers("a_backend_restarted_mid_job") else { return };
    let stack = Stack::new(&servers);
    let _workers = [stack.worker(800), stack.worker(800)];
    let first = stack.serve(&[]);
    let (png, luma) = test_png(320, 200, 5);
    let id = submit(first.address.as_deref().unwrap(), &png, "?fragments=2");
    first.kill();
    // The strips finish while no backend runs, so their wake-ups are missed entirely.
    std::thread::sleep(Duration::from_millis(1500));
    let second = stack.serve(&[]);
    let address = second.address.clone().unwrap();
    let status = wait_job(&address, &id, Duration::from_secs(30));
    assert_eq!(status["state"], "done", "{status}");
    assert_exact(&address, &id, &luma, 320, 200);
    assert_eq!(metric(&address, "dsobel_stitches_total"), 1.0);
}

#[test]
fn two_backend_replicas_stitch_each_job_exactly_once() {
    let Some(servers) = servers("two_backend_replicas") else { return };
    let stack = Stack::new(&servers);
    let _workers = [stack.worker(0), stack.worker(0)];
    let replicas = [stack.serve(&[]), stack.serve(&[])];
    let addresses: Vec<String> = replicas.iter().map(|r| r.address.clone().unwrap()).collect();
    let mut jobs = Vec::new();
    for i in 0..8u64 {
        let (png, luma) = test_png(180, 120, 20 + i);
        let address = &addresses[i as usize % 2];
        jobs.push((submit(address, &png, "?fragments=3"), luma));
    }
    for (i, (id, luma)) in jobs.iter().enumerate() {
        // Ask the other replica: any replica answers for any job.
        let address = &addresses[(i + 1) % 2];
        assert_eq!(wait_job(address, id, Duration::from_secs(30))["state"], "done");
        assert_exact(address, id, luma, 180, 120);
    }
    std::thread::sleep(Duration::from_millis(500));
    let stitched: f64 = addresses.iter().map(|a| metric(a, "dsobel_stitches_total")).sum();
    assert_eq!(stitched, 8.0, "each job stitched exactly once across replicas");
}

#[test]
fn sigterm_lets_workers_and_backend_finish_what_they_hold() {
    let Some(servers) = servers("sigterm") else { return };
    let stack = Stack::new(&servers);
    let leaving = stack.worker(1000);
    let staying = stack.worker(1000);
    let (leaving_health, staying_health) =
        (leaving.address.clone().unwrap(), staying.address.clone().unwrap());
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();
    let (png, luma) = test_png(260, 180, 6);
    let id = submit(&address, &png, "?fragments=4");
    wait_until(Duration::from_secs(20), || metric(&leaving_health, "dsobel_strips_in_flight") == 1.0)
        .expect("the leaving worker holds a strip");
    let asked = std::time::Instant::now();
    let status = leaving.terminate();
    assert!(status.success(), "worker exit status {status:?}");
    // It finished the strip it held (the drill makes a strip take a second) instead of
    // dropping it and leaving at once.
    assert!(asked.elapsed() >= Duration::from_millis(300), "the worker left after {:?}", asked.elapsed());
    let status = wait_job(&address, &id, Duration::from_secs(40));
    assert_eq!(status["state"], "done", "{status}");
    assert_exact(&address, &id, &luma, 260, 180);
    assert!(metric(&staying_health, "dsobel_strips_processed_total") >= 1.0);
    assert!(serve.terminate().success());
    assert!(staying.terminate().success());
}

#[test]
fn a_strip_that_keeps_failing_is_dead_lettered_and_fails_its_job() {
    let Some(servers) = servers("poison") else { return };
    let mut stack = Stack::new(&servers);
    stack.env.push(("DSOBEL_MAX_DELIVERIES".into(), "3".into()));
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();
    let (png, _) = test_png(100, 80, 7);
    let id = submit(&address, &png, "?fragments=1");
    // Before any worker runs, replace the upload in Redis with a value of the wrong type:
    // every read fails, so every delivery fails, until the queue gives up on it.
    let key = format!("{}:job:{id}:upload", stack.namespace);
    let mut redis = std::net::TcpStream::connect("127.0.0.1:6379").unwrap();
    let command = format!(
        "*2\r\n$3\r\nDEL\r\n${}\r\n{key}\r\n*4\r\n$4\r\nHSET\r\n${}\r\n{key}\r\n$1\r\nx\r\n$1\r\ny\r\n",
        key.len(),
        key.len()
    );
    std::io::Write::write_all(&mut redis, command.as_bytes()).unwrap();
    let mut reply = [0u8; 64];
    let _ = std::io::Read::read(&mut redis, &mut reply);
    let worker = stack.worker(0);
    let status = wait_job(&address, &id, Duration::from_secs(40));
    assert_eq!(status["state"], "failed", "{status}");
    let message = status["error"]["message"].as_str().unwrap();
    assert!(message.contains("after 3 deliveries"), "{message}");
    let result = http("GET", &address, &format!("/result/{id}"), b"").unwrap();
    assert_eq!(result.status, 422);
    assert_eq!(result.json()["error"]["code"], "job-failed");
    assert!(metric(worker.address.as_deref().unwrap(), "dsobel_strip_redeliveries_total") >= 2.0);
    // Bad input is refused at the door and never reaches a worker.
    let refused = http("POST", &address, "/upload", b"\x89PNG\r\n\x1a\nbut the rest is missing").unwrap();
    assert_eq!(refused.status, 422);
    assert_eq!(refused.json()["error"]["code"], "corrupt-image");
}
