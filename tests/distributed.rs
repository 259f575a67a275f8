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
    // Strips of at least 10,000 pixels, so that these small images are worth splitting.
    let serve = stack.serve(&["--min-strip-pixels", "10000"]);
    let address = serve.address.clone().unwrap();
    // A JPEG with restart markers meets two idle workers: one strip each, read from its
    // intervals, and the result is what `dsobel process` gives.
    let jpeg = fixture("q50-420-restart.jpg");
    let id = submit(&address, &jpeg, "");
    let status = wait_job(&address, &id, Duration::from_secs(30));
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(
        (status["strips_total"].as_u64(), status["cut"].as_str()),
        (Some(2), Some("restart-intervals"))
    );
    let result = http("GET", &address, &format!("/result/{id}"), b"").unwrap();
    assert!(decode_png(&result.body) == processed_locally(&jpeg).unwrap());
    // Any other image is one whole-image task: a split decoded by one worker does not pay.
    let (png, luma) = test_png(900, 700, 1);
    let id = submit(&address, &png, "");
    let status = wait_job(&address, &id, Duration::from_secs(30));
    assert_eq!(
        (status["strips_total"].as_u64(), status["cut"].as_str()),
        (Some(1), Some("whole")),
        "{status}"
    );
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
    let key = format!("{}:job:{{{id}}}:upload", stack.namespace);
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
    wait_until(Duration::from_secs(5), || metric(&address, "dsobel_dead_letters_total") == 1.0)
        .expect("the backend counts the dead letter it consumed");
    // Bad input is refused at the door and never reaches a worker.
    let refused = http("POST", &address, "/upload", b"\x89PNG\r\n\x1a\nbut the rest is missing").unwrap();
    assert_eq!(refused.status, 422);
    assert_eq!(refused.json()["error"]["code"], "corrupt-image");
}

#[test]
fn every_cut_and_strip_count_gives_what_dsobel_process_gives() {
    let Some(servers) = servers("every_cut") else { return };
    let stack = Stack::new(&servers);
    let _workers = [stack.worker(0), stack.worker(0)];
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();
    let (png, _) = test_png(157, 203, 8);
    // A JPEG with restart markers (every 3 MCUs, not a divisor of a row; 13 MCU rows), one
    // with a marker every MCU (5 MCU rows: at most 5 strips from its intervals, more are
    // decoded and handed out), a baseline JPEG without markers, a progressive one, and a PNG.
    let inputs = [
        ("q50-420-restart.jpg", fixture("q50-420-restart.jpg"), 13),
        ("q98-444-restart1.jpg", fixture("q98-444-restart1.jpg"), 5),
        ("q90-420.jpg", fixture("q90-420.jpg"), 0),
        ("progressive-420.jpg", fixture("progressive-420.jpg"), 0),
        ("photo.png", png, 0),
    ];
    for (name, bytes, restart_strips) in &inputs {
        let want = processed_locally(bytes).expect("dsobel process takes it");
        for fragments in [1u32, 2, 3, 7] {
            let split_cut =
                if fragments <= *restart_strips { "restart-intervals" } else { "decode-and-split" };
            let id = submit(&address, bytes, &format!("?fragments={fragments}"));
            let status = wait_job(&address, &id, Duration::from_secs(30));
            assert_eq!(status["state"], "done", "{name} fragments={fragments}: {status}");
            assert_eq!(status["strips_total"], fragments, "{name}");
            let cut = if fragments == 1 { "whole" } else { split_cut };
            assert_eq!(status["cut"], cut, "{name} fragments={fragments}");
            let result = http("GET", &address, &format!("/result/{id}"), b"").unwrap();
            assert_eq!(result.status, 200);
            assert!(
                decode_png(&result.body) == want,
                "{name} fragments={fragments}: differs from dsobel process"
            );
        }
    }
    // Decoded rows are handed out through the store only while their job runs, and a finished
    // job keeps no work keys (upload, inputs, the started mark).
    std::thread::sleep(Duration::from_millis(300));
    let keys = redis_keys(&stack.namespace);
    assert!(
        !keys.is_empty()
            && keys
                .iter()
                .all(|k| !k.contains(":in:") && !k.ends_with(":upload") && !k.ends_with(":started")),
        "{keys:?}"
    );
}

/// The keys under a namespace (KEYS is fine on a test's own namespace).
fn redis_keys(namespace: &str) -> Vec<String> {
    let mut redis = std::net::TcpStream::connect("127.0.0.1:6379").unwrap();
    let pattern = format!("{namespace}:*");
    let command = format!("*2\r\n$4\r\nKEYS\r\n${}\r\n{pattern}\r\n", pattern.len());
    std::io::Write::write_all(&mut redis, command.as_bytes()).unwrap();
    redis.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = std::io::Read::read(&mut redis, &mut buf).unwrap_or(0);
        reply.extend_from_slice(&buf[..n]);
        if n == 0 || parse_array(&reply).is_some() {
            break;
        }
    }
    parse_array(&reply).unwrap_or_default()
}

/// A RESP array of bulk strings, once complete.
fn parse_array(reply: &[u8]) -> Option<Vec<String>> {
    let text = String::from_utf8_lossy(reply);
    let mut lines = text.split("\r\n");
    let count: usize = lines.next()?.strip_prefix('*')?.parse().ok()?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        lines.next()?.strip_prefix('$')?;
        out.push(lines.next()?.to_owned());
    }
    Some(out)
}

/// Which of `workers` (health addresses) holds a task right now.
fn holder(workers: &[String]) -> Option<usize> {
    workers.iter().position(|w| metric(w, "dsobel_strips_in_flight") == 1.0)
}

#[test]
fn a_worker_killed_mid_whole_image_loses_nothing() {
    let Some(servers) = servers("killed_mid_whole_image") else { return };
    let stack = Stack::new(&servers);
    let mut workers = [Some(stack.worker(1500)), Some(stack.worker(1500))];
    let health: Vec<String> = workers.iter().map(|w| w.as_ref().unwrap().address.clone().unwrap()).collect();
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();
    let (png, luma) = test_png(240, 160, 9);
    let id = submit(&address, &png, "?fragments=1");
    let mut doomed = None;
    wait_until(Duration::from_secs(20), || {
        doomed = holder(&health);
        doomed.is_some()
    })
    .expect("a worker holds the image");
    let doomed = doomed.unwrap();
    workers[doomed].take().unwrap().kill();
    let survivor = &health[1 - doomed];
    let status = wait_job(&address, &id, Duration::from_secs(40));
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["cut"], "whole");
    assert_exact(&address, &id, &luma, 240, 160);
    assert!(metric(survivor, "dsobel_strip_redeliveries_total") >= 1.0, "the image was redelivered");
    assert_eq!(metric(survivor, "dsobel_jobs_finished_total{outcome=\"done\"}"), 1.0, "finished once");
}

#[test]
fn a_decode_killed_after_handing_out_strips_is_redone_without_counting_twice() {
    let Some(servers) = servers("killed_mid_decode") else { return };
    let stack = Stack::new(&servers);
    // The drill makes the decode pause a second after each strip it hands out.
    let mut workers = [Some(stack.worker(1000)), Some(stack.worker(1000))];
    let health: Vec<String> = workers.iter().map(|w| w.as_ref().unwrap().address.clone().unwrap()).collect();
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();
    let (png, luma) = test_png(320, 240, 10);
    let id = submit(&address, &png, "?fragments=4");
    let mut decoder = None;
    wait_until(Duration::from_secs(20), || {
        decoder = health.iter().position(|w| metric(w, "dsobel_strips_published_total") >= 1.0);
        decoder.is_some()
    })
    .expect("a worker hands out a strip");
    let decoder = decoder.unwrap();
    assert!(metric(&health[decoder], "dsobel_strips_published_total") < 3.0, "the decode was still going");
    workers[decoder].take().unwrap().kill();
    let survivor = &health[1 - decoder];
    let status = wait_job(&address, &id, Duration::from_secs(60));
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["cut"], "decode-and-split");
    assert_eq!((status["strips_done"].as_u64(), status["strips_total"].as_u64()), (Some(4), Some(4)));
    assert_exact(&address, &id, &luma, 320, 240);
    assert!(metric(survivor, "dsobel_strip_redeliveries_total") >= 1.0, "the decode was redelivered");
    assert_eq!(metric(&address, "dsobel_stitches_total"), 1.0, "stitched once");
    // Everything of the job but its record and result is gone once it is done (the stitch
    // lock expires on its own a minute later).
    std::thread::sleep(Duration::from_millis(500));
    let mut left = redis_keys(&stack.namespace);
    left.retain(|k| k.contains(&id) && !k.ends_with(":stitch"));
    left.sort();
    let mut expected =
        vec![format!("{}:job:{{{id}}}", stack.namespace), format!("{}:job:{{{id}}}:result", stack.namespace)];
    expected.sort();
    assert_eq!(left, expected);
}

#[test]
fn a_cancelled_job_drops_its_queued_strips_and_nothing_else() {
    let Some(servers) = servers("a_cancelled_job_drops_its_queued_strips") else { return };
    let stack = Stack::new(&servers);
    // One slow worker: while it computes one strip, the job's other strips wait in the queue.
    let worker = stack.worker(1500);
    let health = worker.address.clone().unwrap();
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();
    let (png, _) = test_png(300, 240, 6);
    let id = submit(&address, &png, "?fragments=4");
    wait_until(Duration::from_secs(20), || metric(&health, "dsobel_strips_in_flight") == 1.0)
        .expect("the worker holds a strip");

    let cancelled = http("DELETE", &address, &format!("/jobs/{id}"), b"").expect("backend reachable");
    assert_eq!(cancelled.status, 200, "{}", String::from_utf8_lossy(&cancelled.body));
    assert_eq!(cancelled.json()["state"], "cancelled");
    let again = http("DELETE", &address, &format!("/jobs/{id}"), b"").unwrap();
    assert_eq!(again.status, 200, "cancelling twice answers the same");

    // The strip in hand finishes; the queued ones are dropped without being computed.
    wait_until(Duration::from_secs(20), || {
        metric(&health, "dsobel_strips_in_flight") == 0.0 && metric(&health, "dsobel_queue_depth") == 0.0
    })
    .expect("the queue drains");
    std::thread::sleep(Duration::from_millis(500));
    let processed = metric(&health, "dsobel_strips_processed_total");
    assert!(processed <= 1.0, "only the strip in hand was computed, not {processed}");
    let status = http("GET", &address, &format!("/status/{id}"), b"").unwrap().json();
    assert_eq!(status["state"], "cancelled", "{status}");
    assert_eq!(status["error"]["code"], "cancelled");
    let result = http("GET", &address, &format!("/result/{id}"), b"").unwrap();
    assert_eq!(result.status, 410);
    assert_eq!(result.json()["error"]["code"], "cancelled");
    let events = http("GET", &address, &format!("/events/{id}"), b"").unwrap();
    let text = String::from_utf8_lossy(&events.body).into_owned();
    assert!(text.contains("event: cancelled"), "{text}");
    let left = redis_keys(&stack.namespace);
    assert!(left.iter().all(|k| !k.ends_with(":upload") && !k.contains(":in:")), "{left:?}");

    // Nothing else is affected: the next job runs to the exact result, and it cannot be
    // cancelled once done.
    let (png, luma) = test_png(200, 120, 7);
    let next = submit(&address, &png, "?fragments=2");
    let status = wait_job(&address, &next, Duration::from_secs(30));
    assert_eq!(status["state"], "done", "{status}");
    assert_exact(&address, &next, &luma, 200, 120);
    let late = http("DELETE", &address, &format!("/jobs/{next}"), b"").unwrap();
    assert_eq!(late.status, 409);
    assert_eq!(late.json()["error"]["code"], "job-finished");
    let unknown = http("DELETE", &address, &format!("/jobs/{}", "0".repeat(32)), b"").unwrap();
    assert_eq!(unknown.status, 404);
}

#[test]
fn a_jpeg_damaged_past_its_header_fails_in_the_worker_with_the_doors_answer() {
    let Some(servers) = servers("a_jpeg_damaged_past_its_header") else { return };
    let stack = Stack::new(&servers);
    let _worker = stack.worker(0);
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();
    let jpeg = fixture("q50-420-restart.jpg");
    // Cut in its last restart intervals: the header and the first strips are fine.
    let cut = &jpeg[..jpeg.len() * 9 / 10];
    for query in ["?wait=30", "?wait=30&fragments=3", "?wait=30&fragments=1"] {
        let answer = http("POST", &address, &format!("/upload{query}"), cut).expect("backend reachable");
        assert_eq!(answer.status, 422, "{query}: {}", String::from_utf8_lossy(&answer.body));
        let error = &answer.json()["error"];
        assert_eq!(error["code"], "corrupt-image", "{query}: {error}");
        assert!(error["message"].as_str().unwrap().contains("corrupt JPEG image"), "{query}: {error}");
    }
}

#[test]
fn a_job_a_worker_has_started_is_processing_not_queued() {
    let Some(servers) = servers("a_job_a_worker_has_started_is_processing") else { return };
    let stack = Stack::new(&servers);
    let worker = stack.worker(1500);
    let health = worker.address.clone().unwrap();
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();
    let (png, luma) = test_png(120, 90, 12);
    let id = submit(&address, &png, "?fragments=1");
    wait_until(Duration::from_secs(20), || metric(&health, "dsobel_strips_in_flight") == 1.0)
        .expect("the worker holds the job");
    // The worker marks the job started right after taking it, then holds it for 1.5 s.
    let mut seen = serde_json::Value::Null;
    wait_until(Duration::from_millis(1200), || {
        seen = http("GET", &address, &format!("/status/{id}"), b"").unwrap().json();
        seen["state"] == "processing"
    })
    .unwrap_or_else(|| panic!("never processing while the worker held it: {seen}"));
    let status = wait_job(&address, &id, Duration::from_secs(30));
    assert_eq!(status["state"], "done", "{status}");
    assert_exact(&address, &id, &luma, 120, 90);
}

#[test]
fn a_large_upload_is_stored_as_it_arrives_and_its_strips_are_read_in_pieces() {
    let Some(servers) = servers("stored_as_received") else { return };
    let dir = std::env::temp_dir().join(random_name("dsobel-large"));
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let Some(jpeg) = restart_jpeg(&dir, "4000x3000") else { return };
    assert!(jpeg.len() > 4 << 20, "large enough to be stored in parts: {} bytes", jpeg.len());
    let want = processed_locally(&jpeg).expect("dsobel process takes it");
    let mut stack = Stack::new(&servers);
    stack.log_dir = Some(dir.join("logs"));
    stack.env.push(("RUST_LOG".into(), "info,dsobel_service=debug".into()));
    let _workers = [stack.worker(0), stack.worker(0)];
    let serve = stack.serve(&[]);
    let address = serve.address.clone().unwrap();

    // Split along its intervals, each strip read in pieces of about a megabyte: the pixels of
    // `dsobel process`, and the upload was in the store when its last byte arrived.
    let split_in_two_exactly = |address: &str, mode: &str| {
        let id = submit(address, &jpeg, "?fragments=2");
        let status = wait_job(address, &id, Duration::from_secs(60));
        assert_eq!(
            (&status["state"], &status["cut"]),
            (&"done".into(), &"restart-intervals".into()),
            "{status}"
        );
        let result = http("GET", address, &format!("/result/{id}"), b"").unwrap();
        assert!(decode_png(&result.body) == want, "{mode}: differs from dsobel process");
    };
    split_in_two_exactly(&address, "distributed");
    let queued = log_lines(&dir.join("logs"), "job queued");
    assert!(queued.iter().any(|l| l["fields"]["stored_as_received"] == true), "{queued:?}");
    let strips = log_lines(&dir.join("logs"), "strip input read and decoded");
    assert!(
        strips.len() >= 2 && strips.iter().all(|l| l["fields"]["pieces"].as_u64() >= Some(2)),
        "{strips:?}"
    );

    // A resend with the same Idempotency-Key: the same job, and its second copy of the upload,
    // stored as it arrived, is deleted.
    let key = [("idempotency-key", "large-upload-1")];
    let first = http_with("POST", &address, "/upload?wait=60", &key, &jpeg).unwrap();
    let again = http_with("POST", &address, "/upload?wait=60", &key, &jpeg).unwrap();
    assert_eq!((first.status, again.status), (200, 200));
    assert_eq!(again.header("idempotency-replayed"), Some("true"));
    assert_eq!(first.header("x-dsobel-job-id"), again.header("x-dsobel-job-id"));

    // An upload cut off half way makes no job and leaves nothing in the store.
    drop(start_upload(&address, &jpeg, jpeg.len() / 2));
    let uploads =
        || redis_keys(&stack.namespace).into_iter().filter(|k| k.ends_with(":upload")).collect::<Vec<_>>();
    wait_until(Duration::from_secs(10), || uploads().is_empty())
        .unwrap_or_else(|| panic!("uploads left in the store: {:?}", uploads()));
    std::thread::sleep(Duration::from_millis(500));
    assert!(uploads().is_empty(), "{:?}", uploads());
    assert_eq!(log_lines(&dir.join("logs"), "job queued").len(), 2, "the cut upload made no job");

    // The embedded mode reads a large body the same way (its restart markers found as it
    // arrives, its memory store taking it whole): the same pixels from the same cut.
    let embedded = embedded_serve();
    split_in_two_exactly(embedded.address.as_deref().unwrap(), "embedded");
    let _ = std::fs::remove_dir_all(&dir);
}
