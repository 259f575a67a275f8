//! Jobs that succeed: raw and multipart uploads, options, strip counts, `?wait=`, events,
//! expiry, and the result equal to the scalar reference.

use dsobel_kernel::{FilterParams, Magnitude, OutputMode};
use std::time::Duration;

use dsobel_service::model::JobId;
use serde_json::Value;

use crate::helpers::{decode_result, expected, spawn_app, spawn_app_with, test_png};

#[tokio::test]
async fn raw_upload_gives_the_reference_result() {
    let app = spawn_app().await;
    let (png, luma) = test_png(97, 61);
    let response = app.upload(png, "").await;
    assert_eq!(response.status(), 202);
    assert!(response.headers().get("location").is_some());
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(body["result_url"], format!("/result/{id}"));
    assert_eq!(body["events_url"], format!("/events/{id}"));
    let result = app.wait_result(&id).await;
    assert_eq!(result.status(), 200);
    assert_eq!(result.headers()["content-type"], "image/png");
    let (w, h, pixels) = decode_result(&result.bytes().await.unwrap());
    assert_eq!((w, h), (97, 61));
    assert_eq!(pixels, expected(&luma, 97, 61, &FilterParams::default()));
    let status = app.status(&id).await;
    assert_eq!(status["state"], "done");
    assert_eq!(status["strips_done"], status["strips_total"]);
    assert!(status["timings_ms"]["total"].as_f64().is_some());
    // A small image on its own is one whole-image task: the worker finishes it, nothing is
    // stitched, and it is counted done once.
    assert_eq!(status["strips_total"], 1);
    assert_eq!(app.metric("dsobel_jobs_finished_total{outcome=\"done\"}").await, 1.0);
    assert_eq!(app.metric("dsobel_stitches_total").await, 0.0);
    app.stop().await;
}

#[tokio::test]
async fn multipart_with_the_seed_field_name_and_form_options() {
    let app = spawn_app().await;
    let (png, luma) = test_png(40, 33);
    let boundary = "dsobelboundary";
    let mut body = Vec::new();
    for (name, value) in [("threshold", "40"), ("magnitude", "l1"), ("output", "magnitude")] {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"cat.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
    body.extend(&png);
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = app
        .client
        .post(app.url("/upload?wait=10"))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "wait= answers with the PNG itself");
    let (_, _, pixels) = decode_result(&response.bytes().await.unwrap());
    let params = FilterParams { threshold: 40, magnitude: Magnitude::L1, output: OutputMode::Magnitude };
    assert_eq!(pixels, expected(&luma, 40, 33, &params));
    app.stop().await;
}

#[tokio::test]
async fn any_strip_count_gives_the_same_pixels() {
    let app = spawn_app().await;
    let (png, luma) = test_png(64, 50);
    let want = expected(&luma, 64, 50, &FilterParams { threshold: 30, ..FilterParams::default() });
    for fragments in ["1", "2", "7", "50", "9999"] {
        let id = app.submit(png.clone(), &format!("?threshold=30&fragments={fragments}")).await;
        let result = app.wait_result(&id).await;
        assert_eq!(result.status(), 200);
        assert_eq!(decode_result(&result.bytes().await.unwrap()).2, want, "fragments={fragments}");
        let total = app.status(&id).await["strips_total"].as_u64().unwrap();
        // No strip thinner than 4 rows: 50 rows make 12 strips at most.
        assert_eq!(total, fragments.parse::<u64>().unwrap().min(12));
    }
    app.stop().await;
}

#[tokio::test]
async fn events_stream_progress_then_done() {
    let app = spawn_app().await;
    let (png, _) = test_png(120, 80);
    let id = app.submit(png, "?fragments=4").await;
    let text = app.client.get(app.url(&format!("/events/{id}"))).send().await.unwrap().text().await.unwrap();
    // The stream ends by itself after `done`.
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(events.last(), Some(&"done"), "{text}");
    let last_data = text.lines().rev().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let status: Value = serde_json::from_str(last_data).unwrap();
    assert_eq!(status["strips_done"], 4);
    assert_eq!(status["state"], "done");
    app.stop().await;
}

#[tokio::test]
async fn results_expire() {
    let app = spawn_app_with(&["--result-ttl-secs", "1"]).await;
    let (png, _) = test_png(16, 16);
    let id = app.submit(png, "").await;
    assert_eq!(app.wait_result(&id).await.status(), 200);
    // The result lives a second: it goes by itself.
    let gone = dsobel_testkit::wait_until_async(Duration::from_secs(10), "the result to expire", || async {
        let answer = app.client.get(app.url(&format!("/result/{id}"))).send().await.unwrap();
        (answer.status() != 200).then_some(answer)
    })
    .await;
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not-found");
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_limits_page_and_metrics() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/api/limits", "/", "/app.js", "/style.css", "/favicon.svg"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let limits: Value = app.client.get(app.url("/api/limits")).send().await.unwrap().json().await.unwrap();
    assert_eq!(limits["max_upload_bytes"], 64 << 20);
    let (png, _) = test_png(20, 20);
    let id = app.submit(png, "").await;
    app.wait_result(&id).await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for name in [
        "dsobel_job_duration_seconds_bucket",
        "dsobel_queue_wait_seconds_bucket",
        "dsobel_decode_seconds_bucket",
        "dsobel_filter_seconds_bucket",
        "dsobel_encode_seconds_bucket",
        "dsobel_stitch_seconds_bucket",
        "dsobel_jobs_in_flight",
        "dsobel_queue_depth",
        "dsobel_worker_busy_seconds_total",
        "dsobel_http_requests_total{route=\"/upload\"",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn finished_and_unknown_jobs_cannot_be_cancelled() {
    let app = spawn_app().await;
    let (png, _) = test_png(40, 30);
    let id = app.submit(png, "").await;
    assert_eq!(app.wait_result(&id).await.status(), 200);
    let late = app.client.delete(app.url(&format!("/jobs/{id}"))).send().await.unwrap();
    assert_eq!(late.status(), 409);
    let body: Value = late.json().await.unwrap();
    assert_eq!(body["error"]["code"], "job-finished");
    assert_eq!(app.status(&id).await["state"], "done", "a refused cancel changes nothing");
    let unknown = app.client.delete(app.url(&format!("/jobs/{}", "a".repeat(32)))).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn the_page_is_served_compressed_with_validators() {
    let app = spawn_app().await;
    let plain = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none(), "no gzip unless accepted");
    let tag = plain.headers()["etag"].to_str().unwrap().to_owned();
    let page = plain.text().await.unwrap();
    assert!(page.contains("<html"), "the index");

    let zipped = app.client.get(app.url("/")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["vary"], "accept-encoding");
    let compressed = zipped.bytes().await.unwrap();
    assert!(compressed.len() * 2 < page.len(), "{} of {} bytes", compressed.len(), page.len());
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, page);

    let again = app.client.get(app.url("/")).header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn the_page_can_come_from_a_folder() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir(folder.path().join("js")).unwrap();
    std::fs::write(folder.path().join("index.html"), "<html>from disk</html>").unwrap();
    std::fs::write(folder.path().join("js/extra.js"), "export const x = 1;").unwrap();
    let dir = folder.path().to_str().unwrap();
    let app = spawn_app_with(&["--web-dir", dir]).await;
    assert_eq!(
        app.client.get(app.url("/")).send().await.unwrap().text().await.unwrap(),
        "<html>from disk</html>"
    );
    let module = app.client.get(app.url("/js/extra.js")).send().await.unwrap();
    assert_eq!(module.status(), 200);
    assert_eq!(module.headers()["content-type"], "text/javascript; charset=utf-8");
    let outside = app.client.get(app.url("/js/../../etc/passwd")).send().await.unwrap();
    assert_eq!(outside.status(), 404);
    let missing = app.client.get(app.url("/nothing.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn the_typed_client_reads_every_answer() {
    use dsobel_client::{Client, JobResult, JobState, Upload};
    let app = spawn_app().await;
    let client = Client::new(&app.address, None);
    let (png, luma) = test_png(90, 70);
    let Upload::Accepted(links) = client.upload(png.clone(), "fragments=3").await.unwrap() else {
        panic!("no wait asked: 202 expected");
    };
    assert_eq!(links.status_url, format!("/status/{}", links.id));
    let mut seen = Vec::new();
    let status = client.follow(&links.id, |s| seen.push(s.state)).await.unwrap();
    assert_eq!(status.state, JobState::Done);
    assert_eq!((status.strips_done, status.strips_total, status.width, status.height), (3, 3, 90, 70));
    assert_eq!(seen.last(), Some(&JobState::Done));
    let JobResult::Ready(result) = client.result(&links.id).await.unwrap() else { panic!("done") };
    assert_eq!(decode_result(&result).2, expected(&luma, 90, 70, &FilterParams::default()));
    let refused = client.cancel(&links.id).await.unwrap_err();
    assert_eq!((refused.status(), refused.code()), (409, "job-finished"));

    let Upload::Finished { id, png: waited } = client.upload(png, "wait=30").await.unwrap() else {
        panic!("wait=30 answers with the PNG");
    };
    assert_eq!(decode_result(&waited), decode_result(&result), "one whole strip, the same pixels");
    assert!(client.status(&id.unwrap()).await.is_ok());
    let bad = client.upload(b"not an image".to_vec(), "").await.unwrap_err();
    assert_eq!((bad.status(), bad.code()), (415, "unsupported-format"));
    app.stop().await;
}

#[tokio::test]
async fn a_huge_fragment_count_is_capped_so_one_upload_cannot_flood_the_queue() {
    let (png, _) = test_png(200, 600);
    let app = spawn_app().await;
    let id = app.submit(png.clone(), "?fragments=10000").await;
    assert_eq!(app.wait_result(&id).await.status(), 200);
    assert_eq!(app.status(&id).await["strips_total"], 64, "the default maximum");
    app.stop().await;
    let app = spawn_app_with(&["--max-fragments", "8"]).await;
    let id = app.submit(png, "?fragments=10000").await;
    assert_eq!(app.wait_result(&id).await.status(), 200);
    assert_eq!(app.status(&id).await["strips_total"], 8, "the configured maximum");
    app.stop().await;
}

#[tokio::test]
async fn an_upload_sent_again_with_its_idempotency_key_gets_the_same_job() {
    let app = spawn_app().await;
    let (png, luma) = test_png(48, 40);
    let send = |key: &'static str, query: &'static str| {
        app.client
            .post(app.url(&format!("/upload{query}")))
            .header("idempotency-key", key)
            .body(png.clone())
            .send()
    };
    let first = send("photo-1", "").await.unwrap();
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotency-replayed").is_none());
    let id = first.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    // The same key again, after the job is done and while it runs: the same job, never a new one.
    let again = send("photo-1", "").await.unwrap();
    assert_eq!(again.headers()["idempotency-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap()["id"], id.as_str());
    let waited = send("photo-1", "?wait=30").await.unwrap();
    assert_eq!(waited.status(), 200);
    assert_eq!(waited.headers()["x-dsobel-job-id"], id.as_str());
    assert_eq!(
        decode_result(&waited.bytes().await.unwrap()).2,
        expected(&luma, 48, 40, &FilterParams::default())
    );
    // Another key is another job; a bad key is refused.
    let other = send("photo-2", "").await.unwrap().json::<Value>().await.unwrap();
    assert_ne!(other["id"], id.as_str());
    let bad = app.client.post(app.url("/upload")).header("idempotency-key", "has space").body(png.clone());
    assert_eq!(bad.send().await.unwrap().status(), 400);
    // A claim that names no stored job, as a backend that died mid-submission leaves it: the
    // resend is told to retry, not handed a job that reads 404; once the claim lapses, the
    // resend makes the job.
    let transport = app.coordinator.transport();
    let orphan = transport.keys.idempotency("photo-3");
    let claim = bytes::Bytes::from(JobId::random().to_string());
    transport.store.put(&orphan, claim, Duration::from_millis(300)).await.unwrap();
    let cut_off = send("photo-3", "").await.unwrap();
    assert_eq!(cut_off.status(), 503);
    assert!(cut_off.headers().get("retry-after").is_some());
    let message = cut_off.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("Idempotency-Key"), "{message}");
    dsobel_testkit::wait_for_async(Duration::from_secs(10), "the orphaned claim to lapse", || async {
        transport.store.get(&orphan).await.unwrap().is_none()
    })
    .await;
    let made = send("photo-3", "").await.unwrap();
    assert_eq!(made.status(), 202);
    let made = made.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let replayed = send("photo-3", "").await.unwrap();
    assert_eq!(replayed.headers()["idempotency-replayed"], "true");
    assert_eq!(replayed.json::<Value>().await.unwrap()["id"], made.as_str());
    app.stop().await;
}
