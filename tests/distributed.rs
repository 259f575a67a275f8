//! The distributed system end to end: `dsobel serve` and `dsobel worker` processes from the
//! built binary against the real RabbitMQ and Redis, each test on its own random queue and key
//! namespace. The guarantees of DESIGN §4, each with a test that would fail without it.

use std::time::Duration;

use dsobel_client::{Cut, ErrorCode, JobId, JobState};
use dsobel_testkit::api::Backend;
use dsobel_testkit::images::restart_jpeg;
use dsobel_testkit::process::{embedded_serve, log_lines, processed_locally, start_upload};
use dsobel_testkit::{
    Need, Servers, Stack, Test, decode_png, fixture, random_name, test_png, wait_for, wait_until,
};

fn main() -> std::process::ExitCode {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    let servers = [Need::RabbitMq, Need::Redis];
    let tests: [(&str, fn()); 13] = [
        (
            "one_backend_two_workers_exact_results_one_strip_per_worker",
            one_backend_two_workers_exact_results_one_strip_per_worker,
        ),
        ("a_worker_killed_mid_strip_loses_nothing", a_worker_killed_mid_strip_loses_nothing),
        (
            "a_backend_restarted_mid_job_still_finishes_it_once",
            a_backend_restarted_mid_job_still_finishes_it_once,
        ),
        (
            "two_backend_replicas_stitch_each_job_exactly_once",
            two_backend_replicas_stitch_each_job_exactly_once,
        ),
        (
            "sigterm_lets_workers_and_backend_finish_what_they_hold",
            sigterm_lets_workers_and_backend_finish_what_they_hold,
        ),
        (
            "a_strip_that_keeps_failing_is_dead_lettered_and_fails_its_job",
            a_strip_that_keeps_failing_is_dead_lettered_and_fails_its_job,
        ),
        (
            "every_cut_and_strip_count_gives_what_dsobel_process_gives",
            every_cut_and_strip_count_gives_what_dsobel_process_gives,
        ),
        ("a_worker_killed_mid_whole_image_loses_nothing", a_worker_killed_mid_whole_image_loses_nothing),
        (
            "a_decode_killed_after_handing_out_strips_is_redone_without_counting_twice",
            a_decode_killed_after_handing_out_strips_is_redone_without_counting_twice,
        ),
        (
            "a_cancelled_job_drops_its_queued_strips_and_nothing_else",
            a_cancelled_job_drops_its_queued_strips_and_nothing_else,
        ),
        (
            "a_jpeg_damaged_past_its_header_fails_in_the_worker_with_the_doors_answer",
            a_jpeg_damaged_past_its_header_fails_in_the_worker_with_the_doors_answer,
        ),
        (
            "a_job_a_worker_has_started_is_processing_not_queued",
            a_job_a_worker_has_started_is_processing_not_queued,
        ),
        ("the_stack_leaves_no_queue_behind", the_stack_leaves_no_queue_behind),
    ];
    let mut all: Vec<Test> = tests.iter().map(|&(name, body)| Test::new(name, &servers, body)).collect();
    // The same tests on a Redis Cluster: the store that scales changes nothing of what they see.
    let on_the_cluster = [Need::RabbitMq, Need::RedisCluster];
    all.extend(tests.iter().map(|&(name, body)| {
        Test::new(&format!("{name}::on_a_redis_cluster"), &on_the_cluster, move || {
            dsobel_testkit::on_cluster(body)
        })
    }));
    all.push(Test::new(
        "a_large_upload_is_stored_as_it_arrives_and_its_strips_are_read_in_pieces",
        &[Need::RabbitMq, Need::Redis, Need::JPEGTRAN],
        a_large_upload_is_stored_as_it_arrives_and_its_strips_are_read_in_pieces,
    ));
    dsobel_testkit::run(all)
}

/// The store the stack uses, for looking into it.
fn store() -> dsobel_testkit::RedisClient {
    dsobel_testkit::RedisClient::from_url(&Servers::shared().redis)
}

/// The keys under a namespace.
fn redis_keys(namespace: &str) -> Vec<String> {
    store().keys(&format!("{namespace}:*"))
}

fn one_backend_two_workers_exact_results_one_strip_per_worker() {
    let stack = Stack::new(&Servers::shared());
    let _workers = [stack.worker(0), stack.worker(0)];
    // Strips of at least 10,000 pixels, so that these small images are worth splitting.
    let serve = stack.serve(&["--min-strip-pixels", "10000"]);
    let backend = serve.backend();
    // A JPEG with restart markers meets two idle workers: one strip each, read from its
    // intervals, and the result is what `dsobel process` gives.
    let jpeg = fixture("q50-420-restart.jpg");
    let id = backend.submit(&jpeg, "");
    let status = backend.wait_done(&id, Duration::from_secs(30));
    assert_eq!((status.strips_total, status.cut), (2, Cut::RestartIntervals), "{status:?}");
    assert!(decode_png(&backend.result_png(&id)) == processed_locally(&jpeg).unwrap());
    // Any other image is one whole-image task: a split decoded by one worker does not pay.
    let (png, luma) = test_png(900, 700, 1);
    let id = backend.submit(&png, "");
    let status = backend.wait_job(&id, Duration::from_secs(30));
    assert_eq!((status.strips_total, status.cut), (1, Cut::Whole), "{status:?}");
    backend.assert_exact(&id, &luma, 900, 700);
    // Several at once, explicit strip counts, and ?wait=.
    let jobs: Vec<_> = (0..4u64)
        .map(|i| {
            let (png, luma) = test_png(200 + i as u32 * 37, 150, 10 + i);
            (backend.submit(&png, &format!("?fragments={}", i + 1)), luma, 200 + i as u32 * 37)
        })
        .collect();
    for (id, luma, w) in jobs {
        backend.wait_done(&id, Duration::from_secs(30));
        backend.assert_exact(&id, &luma, w, 150);
    }
    let (png, _) = test_png(64, 64, 3);
    match backend.upload(&png, "wait=20") {
        Ok(dsobel_client::Upload::Finished { png, .. }) => assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n"),
        other => panic!("?wait=20 answers with the PNG: {other:?}"),
    }
}

fn a_worker_killed_mid_strip_loses_nothing() {
    let stack = Stack::new(&Servers::shared());
    // Slow workers, so the kill lands while both hold a strip.
    let doomed = stack.worker(1500);
    let survivor = stack.worker(1500);
    let (doomed_health, survivor_health) = (doomed.backend(), survivor.backend());
    let serve = stack.serve(&[]);
    let backend = serve.backend();
    let (png, luma) = test_png(300, 240, 4);
    let id = backend.submit(&png, "?fragments=2");
    wait_for(Duration::from_secs(20), "both workers to hold a strip", || {
        doomed_health.metric("dsobel_strips_in_flight") == 1.0
            && survivor_health.metric("dsobel_strips_in_flight") == 1.0
    });
    doomed.kill();
    let status = backend.wait_done(&id, Duration::from_secs(40));
    assert_eq!(status.strips_done, 2);
    backend.assert_exact(&id, &luma, 300, 240);
    assert!(
        survivor_health.metric("dsobel_strip_redeliveries_total") >= 1.0,
        "the killed worker's strip was redelivered"
    );
    assert_eq!(backend.metric("dsobel_stitches_total"), 1.0);
}

fn a_backend_restarted_mid_job_still_finishes_it_once() {
    let stack = Stack::new(&Servers::shared());
    let _workers = [stack.worker(800), stack.worker(800)];
    let first = stack.serve(&[]);
    let (png, luma) = test_png(320, 200, 5);
    let id = first.backend().submit(&png, "?fragments=2");
    first.kill();
    // The strips finish while no backend runs, so their wake-ups are missed entirely.
    let strips = format!("{}:job:{{{id}}}:strips", stack.namespace);
    wait_for(Duration::from_secs(20), "both strips stored while no backend runs", || {
        store().command(&["HLEN", &strips]) == dsobel_testkit::servers::Reply::Integer(2)
    });
    let second = stack.serve(&[]);
    let backend = second.backend();
    backend.wait_done(&id, Duration::from_secs(30));
    backend.assert_exact(&id, &luma, 320, 200);
    assert_eq!(backend.metric("dsobel_stitches_total"), 1.0);
}

fn two_backend_replicas_stitch_each_job_exactly_once() {
    let stack = Stack::new(&Servers::shared());
    let _workers = [stack.worker(0), stack.worker(0)];
    let replicas = [stack.serve(&[]), stack.serve(&[])];
    let backends: Vec<Backend> = replicas.iter().map(|r| r.backend()).collect();
    let mut jobs = Vec::new();
    for i in 0..8u64 {
        let (png, luma) = test_png(180, 120, 20 + i);
        jobs.push((backends[i as usize % 2].submit(&png, "?fragments=3"), luma));
    }
    for (i, (id, luma)) in jobs.iter().enumerate() {
        // Ask the other replica: any replica answers for any job.
        let backend = &backends[(i + 1) % 2];
        backend.wait_done(id, Duration::from_secs(30));
        backend.assert_exact(id, luma, 180, 120);
    }
    // Every job is done, so no stitch can start any more; the counters catch up with the
    // records a moment after them.
    let stitched = || backends.iter().map(|b| b.metric("dsobel_stitches_total")).sum::<f64>();
    wait_for(Duration::from_secs(10), "the replicas to count 8 stitches", || stitched() >= 8.0);
    assert_eq!(stitched(), 8.0, "each job stitched exactly once across replicas");
}

fn sigterm_lets_workers_and_backend_finish_what_they_hold() {
    let stack = Stack::new(&Servers::shared());
    let leaving = stack.worker(1000);
    let staying = stack.worker(1000);
    let (leaving_health, staying_health) = (leaving.backend(), staying.backend());
    let serve = stack.serve(&[]);
    let backend = serve.backend();
    let (png, luma) = test_png(260, 180, 6);
    let id = backend.submit(&png, "?fragments=4");
    wait_for(Duration::from_secs(20), "the leaving worker to hold a strip", || {
        leaving_health.metric("dsobel_strips_in_flight") == 1.0
    });
    let asked = std::time::Instant::now();
    let status = leaving.terminate();
    assert!(status.success(), "worker exit status {status:?}");
    // It finished the strip it held (the drill makes a strip take a second) instead of
    // dropping it and leaving at once.
    assert!(asked.elapsed() >= Duration::from_millis(300), "the worker left after {:?}", asked.elapsed());
    backend.wait_done(&id, Duration::from_secs(40));
    backend.assert_exact(&id, &luma, 260, 180);
    assert!(staying_health.metric("dsobel_strips_processed_total") >= 1.0);
    assert!(serve.terminate().success());
    assert!(staying.terminate().success());
}

fn a_strip_that_keeps_failing_is_dead_lettered_and_fails_its_job() {
    let mut stack = Stack::new(&Servers::shared());
    stack.env.push(("DSOBEL_MAX_DELIVERIES".into(), "3".into()));
    let serve = stack.serve(&[]);
    let backend = serve.backend();
    let (png, _) = test_png(100, 80, 7);
    let id = backend.submit(&png, "?fragments=1");
    // Before any worker runs, replace the upload in Redis with a value of the wrong type:
    // every read fails, so every delivery fails, until the queue gives up on it.
    let key = format!("{}:job:{{{id}}}:upload", stack.namespace);
    store().command(&["DEL", &key]);
    store().command(&["HSET", &key, "x", "y"]);
    let worker = stack.worker(0);
    let status = backend.wait_job(&id, Duration::from_secs(40));
    assert_eq!(status.state, JobState::Failed, "{status:?}");
    let message = status.error.expect("the reason").message;
    assert!(message.contains("after 3 deliveries"), "{message}");
    let refused = backend.result(&id).expect_err("a failed job has no result");
    assert_eq!((refused.status(), refused.code()), (422, "job-failed"));
    assert!(worker.backend().metric("dsobel_strip_redeliveries_total") >= 2.0);
    wait_for(Duration::from_secs(5), "the backend to count the dead letter it consumed", || {
        backend.metric("dsobel_dead_letters_total") == 1.0
    });
    // Bad input is refused at the door and never reaches a worker.
    let refused = backend.upload(b"\x89PNG\r\n\x1a\nbut the rest is missing", "").expect_err("refused");
    assert_eq!((refused.status(), refused.code()), (422, "corrupt-image"));
}

fn every_cut_and_strip_count_gives_what_dsobel_process_gives() {
    let stack = Stack::new(&Servers::shared());
    let _workers = [stack.worker(0), stack.worker(0)];
    let serve = stack.serve(&[]);
    let backend = serve.backend();
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
                if fragments <= *restart_strips { Cut::RestartIntervals } else { Cut::DecodeAndSplit };
            let id = backend.submit(bytes, &format!("?fragments={fragments}"));
            let status = backend.wait_job(&id, Duration::from_secs(30));
            assert_eq!(status.state, JobState::Done, "{name} fragments={fragments}: {status:?}");
            assert_eq!(status.strips_total, fragments, "{name}");
            let cut = if fragments == 1 { Cut::Whole } else { split_cut };
            assert_eq!(status.cut, cut, "{name} fragments={fragments}");
            assert!(
                decode_png(&backend.result_png(&id)) == want,
                "{name} fragments={fragments}: differs from dsobel process"
            );
        }
    }
    // Decoded rows are handed out through the store only while their job runs, and a finished
    // job keeps no work keys (upload, inputs, the started mark): they go right after it ends.
    let work_keys = || {
        redis_keys(&stack.namespace)
            .into_iter()
            .filter(|k| k.contains(":in:") || k.ends_with(":upload") || k.ends_with(":started"))
            .collect::<Vec<_>>()
    };
    wait_for(Duration::from_secs(10), "the finished jobs' work keys to go", || work_keys().is_empty());
    assert!(!redis_keys(&stack.namespace).is_empty(), "the records and results stay");
}

/// Which of `workers` holds a task right now.
fn holder(workers: &[Backend]) -> Option<usize> {
    workers.iter().position(|w| w.metric("dsobel_strips_in_flight") == 1.0)
}

fn a_worker_killed_mid_whole_image_loses_nothing() {
    let stack = Stack::new(&Servers::shared());
    let mut workers = [Some(stack.worker(1500)), Some(stack.worker(1500))];
    let health: Vec<Backend> = workers.iter().map(|w| w.as_ref().unwrap().backend()).collect();
    let serve = stack.serve(&[]);
    let backend = serve.backend();
    let (png, luma) = test_png(240, 160, 9);
    let id = backend.submit(&png, "?fragments=1");
    let doomed = wait_until(Duration::from_secs(20), "a worker to hold the image", || holder(&health));
    workers[doomed].take().unwrap().kill();
    let survivor = &health[1 - doomed];
    let status = backend.wait_done(&id, Duration::from_secs(40));
    assert_eq!(status.cut, Cut::Whole);
    backend.assert_exact(&id, &luma, 240, 160);
    assert!(survivor.metric("dsobel_strip_redeliveries_total") >= 1.0, "the image was redelivered");
    assert_eq!(survivor.metric("dsobel_jobs_finished_total{outcome=\"done\"}"), 1.0, "finished once");
}

fn a_decode_killed_after_handing_out_strips_is_redone_without_counting_twice() {
    let stack = Stack::new(&Servers::shared());
    // The drill makes the decode pause a second after each strip it hands out.
    let mut workers = [Some(stack.worker(1000)), Some(stack.worker(1000))];
    let health: Vec<Backend> = workers.iter().map(|w| w.as_ref().unwrap().backend()).collect();
    let serve = stack.serve(&[]);
    let backend = serve.backend();
    let (png, luma) = test_png(320, 240, 10);
    let id = backend.submit(&png, "?fragments=4");
    let decoder = wait_until(Duration::from_secs(20), "a worker to hand out a strip", || {
        health.iter().position(|w| w.metric("dsobel_strips_published_total") >= 1.0)
    });
    assert!(health[decoder].metric("dsobel_strips_published_total") < 3.0, "the decode was still going");
    workers[decoder].take().unwrap().kill();
    let survivor = &health[1 - decoder];
    let status = backend.wait_done(&id, Duration::from_secs(60));
    assert_eq!(status.cut, Cut::DecodeAndSplit);
    assert_eq!((status.strips_done, status.strips_total), (4, 4));
    backend.assert_exact(&id, &luma, 320, 240);
    assert!(survivor.metric("dsobel_strip_redeliveries_total") >= 1.0, "the decode was redelivered");
    assert_eq!(backend.metric("dsobel_stitches_total"), 1.0, "stitched once");
    // Everything of the job but its record and result goes once it is done (the stitch lock
    // expires on its own a minute later).
    let mut expected =
        vec![format!("{}:job:{{{id}}}", stack.namespace), format!("{}:job:{{{id}}}:result", stack.namespace)];
    expected.sort();
    let left = || {
        let mut left = redis_keys(&stack.namespace);
        left.retain(|k| k.contains(id.as_str()) && !k.ends_with(":stitch"));
        left.sort();
        left
    };
    wait_for(Duration::from_secs(10), "the job's work keys to go", || left() == expected);
    assert_eq!(left(), expected);
}

fn a_cancelled_job_drops_its_queued_strips_and_nothing_else() {
    let stack = Stack::new(&Servers::shared());
    // One slow worker: while it computes one strip, the job's other strips wait in the queue.
    let worker = stack.worker(1500);
    let health = worker.backend();
    let serve = stack.serve(&[]);
    let backend = serve.backend();
    let (png, _) = test_png(300, 240, 6);
    let id = backend.submit(&png, "?fragments=4");
    wait_for(Duration::from_secs(20), "the worker to hold a strip", || {
        health.metric("dsobel_strips_in_flight") == 1.0
    });

    let cancelled = backend.cancel(&id).expect("the job is cancelled");
    assert_eq!(cancelled.state, JobState::Cancelled);
    let again = backend.cancel(&id).expect("cancelling twice answers the same");
    assert_eq!(again.state, JobState::Cancelled);

    // The strip in hand finishes; the queued ones are taken and dropped without being
    // computed: once nothing is queued or in hand, the count is final.
    wait_for(Duration::from_secs(20), "the queue to drain", || {
        health.metric("dsobel_strips_in_flight") == 0.0 && health.metric("dsobel_queue_depth") == 0.0
    });
    let processed = health.metric("dsobel_strips_processed_total");
    assert!(processed <= 1.0, "only the strip in hand was computed, not {processed}");
    let status = backend.status(&id);
    assert_eq!(status.state, JobState::Cancelled, "{status:?}");
    assert_eq!(status.error.map(|e| e.code), Some(ErrorCode::Cancelled));
    let gone = backend.result(&id).expect_err("a cancelled job has no result");
    assert_eq!((gone.status(), gone.code()), (410, "cancelled"));
    let events = backend.http("GET", &format!("/events/{id}"), &[], b"").expect("backend reachable");
    let text = events.text();
    assert!(text.contains("event: cancelled"), "{text}");
    let left = redis_keys(&stack.namespace);
    assert!(left.iter().all(|k| !k.ends_with(":upload") && !k.contains(":in:")), "{left:?}");

    // Nothing else is affected: the next job runs to the exact result, and it cannot be
    // cancelled once done.
    let (png, luma) = test_png(200, 120, 7);
    let next = backend.submit(&png, "?fragments=2");
    backend.wait_done(&next, Duration::from_secs(30));
    backend.assert_exact(&next, &luma, 200, 120);
    let late = backend.cancel(&next).expect_err("a finished job cannot be cancelled");
    assert_eq!((late.status(), late.code()), (409, "job-finished"));
    let unknown = backend.cancel(&JobId::parse(&"0".repeat(32)).unwrap()).expect_err("unknown");
    assert_eq!(unknown.status(), 404);
}

fn a_jpeg_damaged_past_its_header_fails_in_the_worker_with_the_doors_answer() {
    let stack = Stack::new(&Servers::shared());
    let _worker = stack.worker(0);
    let serve = stack.serve(&[]);
    let backend = serve.backend();
    let jpeg = fixture("q50-420-restart.jpg");
    // Cut in its last restart intervals: the header and the first strips are fine.
    let cut = &jpeg[..jpeg.len() * 9 / 10];
    for query in ["?wait=30", "?wait=30&fragments=3", "?wait=30&fragments=1"] {
        let refused = backend.upload(cut, query).expect_err("a damaged JPEG is refused");
        assert_eq!((refused.status(), refused.code()), (422, "corrupt-image"), "{query}: {refused}");
        assert!(refused.to_string().contains("corrupt JPEG image"), "{query}: {refused}");
    }
}

fn a_job_a_worker_has_started_is_processing_not_queued() {
    let stack = Stack::new(&Servers::shared());
    let worker = stack.worker(1500);
    let health = worker.backend();
    let serve = stack.serve(&[]);
    let backend = serve.backend();
    let (png, luma) = test_png(120, 90, 12);
    let id = backend.submit(&png, "?fragments=1");
    wait_for(Duration::from_secs(20), "the worker to hold the job", || {
        health.metric("dsobel_strips_in_flight") == 1.0
    });
    // The worker marks the job started right after taking it, then holds it for 1.5 s.
    wait_for(Duration::from_millis(1200), "the job to read processing while the worker holds it", || {
        backend.status(&id).state == JobState::Processing
    });
    backend.wait_done(&id, Duration::from_secs(30));
    backend.assert_exact(&id, &luma, 120, 90);
}

/// The sum of `/upload` requests the backend has answered, whatever their status.
fn upload_requests(backend: &Backend) -> f64 {
    let page = backend.http("GET", "/metrics", &[], b"").expect("GET /metrics").text();
    page.lines()
        .filter(|l| l.starts_with("dsobel_http_requests_total{") && l.contains("route=\"/upload\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn a_large_upload_is_stored_as_it_arrives_and_its_strips_are_read_in_pieces() {
    let dir = std::env::temp_dir().join(random_name("dsobel-large"));
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let jpeg = restart_jpeg(&dir, "4000x3000");
    assert!(jpeg.len() > 4 << 20, "large enough to be stored in parts: {} bytes", jpeg.len());
    let want = processed_locally(&jpeg).expect("dsobel process takes it");
    let mut stack = Stack::new(&Servers::shared());
    stack.log_dir = Some(dir.join("logs"));
    stack.env.push(("RUST_LOG".into(), "info,dsobel_service=debug".into()));
    let _workers = [stack.worker(0), stack.worker(0)];
    let serve = stack.serve(&[]);
    let backend = serve.backend();

    // Split along its intervals, each strip read in pieces of about a megabyte: the pixels of
    // `dsobel process`, and the upload was in the store when its last byte arrived.
    let split_in_two_exactly = |backend: &Backend, mode: &str| {
        let id = backend.submit(&jpeg, "?fragments=2");
        let status = backend.wait_job(&id, Duration::from_secs(60));
        assert_eq!((status.state, status.cut), (JobState::Done, Cut::RestartIntervals), "{status:?}");
        assert!(decode_png(&backend.result_png(&id)) == want, "{mode}: differs from dsobel process");
    };
    split_in_two_exactly(&backend, "distributed");
    let queued = log_lines(&dir.join("logs"), "job queued");
    assert!(queued.iter().any(|l| l["fields"]["stored_as_received"] == true), "{queued:?}");
    let strips = log_lines(&dir.join("logs"), "strip input read and decoded");
    assert!(
        strips.len() >= 2 && strips.iter().all(|l| l["fields"]["pieces"].as_u64() >= Some(2)),
        "{strips:?}"
    );

    // A resend with the same Idempotency-Key: the same job, and its second copy of the upload,
    // stored as it arrived, is deleted.
    let first = match backend.upload_once(&jpeg, "wait=60", "large-upload-1") {
        Ok(dsobel_client::Upload::Finished { id: Some(id), .. }) => id,
        other => panic!("?wait=60 answers with the PNG and its job id: {other:?}"),
    };
    let key = [("idempotency-key", "large-upload-1")];
    let again = backend.http("POST", "/upload?wait=60", &key, &jpeg).expect("backend reachable");
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotency-replayed"), Some("true"));
    assert_eq!(again.header("x-dsobel-job-id"), Some(first.as_str()));

    // An upload cut off half way makes no job and leaves nothing in the store.
    let answered = upload_requests(&backend);
    drop(start_upload(&backend.address, &jpeg, jpeg.len() / 2));
    wait_for(Duration::from_secs(30), "the backend to finish with the cut upload", || {
        upload_requests(&backend) > answered
    });
    let uploads =
        || redis_keys(&stack.namespace).into_iter().filter(|k| k.ends_with(":upload")).collect::<Vec<_>>();
    wait_for(Duration::from_secs(10), "no upload left in the store", || uploads().is_empty());
    assert_eq!(log_lines(&dir.join("logs"), "job queued").len(), 2, "the cut upload made no job");

    // The embedded mode reads a large body the same way (its restart markers found as it
    // arrives, its memory store taking it whole): the same pixels from the same cut.
    let embedded = embedded_serve(&[]);
    split_in_two_exactly(&embedded.backend(), "embedded");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The queues of a stack go when the stack does, also when they were declared with another
/// delivery limit than the default (deleting them must not declare them first).
fn the_stack_leaves_no_queue_behind() {
    let mut stack = Stack::new(&Servers::shared());
    stack.env.push(("DSOBEL_MAX_DELIVERIES".into(), "3".into()));
    let queue = stack.queue.clone();
    let serve = stack.serve(&[]);
    let amqp = stack.amqp.clone();
    let exists = |name: &str| dsobel_testkit::block_on(dsobel_testkit::process::queue_exists(&amqp, name));
    assert!(exists(&queue) && exists(&format!("{queue}.dead")), "the backend declared its queues");
    drop(serve);
    drop(stack);
    assert!(!exists(&queue), "the work queue {queue} is left");
    assert!(!exists(&format!("{queue}.dead")), "the dead-letter queue of {queue} is left");
}
