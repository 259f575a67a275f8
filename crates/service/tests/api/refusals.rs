//! Bad input and refusals: every one the right 4xx with a JSON error, and no worker ever sees
//! it (no strip is processed and the queue stays empty).

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_with, test_png};

async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    body
}

fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut out = dsobel_kernel::png::PNG_SIGNATURE.to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    dsobel_kernel::png::write_chunk(&mut out, b"IHDR", &ihdr);
    dsobel_kernel::png::write_chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0, 0, 0, 0, 1]);
    dsobel_kernel::png::write_chunk(&mut out, b"IEND", &[]);
    out
}

#[tokio::test]
async fn bad_uploads_get_the_right_error_and_never_reach_a_worker() {
    let app = spawn_app_with(&["--max-upload-bytes", "100000"]).await;
    let (png, _) = test_png(30, 30);
    assert_error(app.upload(b"plain text, not an image".to_vec(), "").await, 415, "unsupported-format").await;
    assert_error(app.upload(png[..20].to_vec(), "").await, 422, "corrupt-image").await;
    assert_error(app.upload(Vec::new(), "").await, 400, "missing-file").await;
    let bomb =
        assert_error(app.upload(png_declaring(64_000, 64_000), "").await, 413, "image-too-large").await;
    assert!(bomb["error"]["message"].as_str().unwrap().contains("100000000"), "{bomb}");
    let big = assert_error(app.upload(vec![0xFF; 200_000], "").await, 413, "payload-too-large").await;
    assert!(big["error"]["message"].as_str().unwrap().contains("100000"), "{big}");
    assert_error(app.upload(png.clone(), "?colour=red").await, 400, "invalid-option").await;
    assert_error(app.upload(png.clone(), "?threshold=-3").await, 400, "invalid-option").await;
    assert_error(app.upload(png.clone(), "?magnitude=l3").await, 400, "invalid-option").await;
    assert_error(app.upload(png.clone(), "?output=fancy").await, 400, "invalid-option").await;
    assert_error(app.upload(png.clone(), "?fragments=0").await, 400, "invalid-option").await;
    assert_error(app.upload(png.clone(), "?wait=forever").await, 400, "invalid-option").await;
    let form = app
        .client
        .post(app.url("/upload"))
        .header("content-type", "multipart/form-data; boundary=b")
        .body("--b\r\nContent-Disposition: form-data; name=\"threshold\"\r\n\r\n50\r\n--b--\r\n")
        .send()
        .await
        .unwrap();
    assert_error(form, 400, "missing-file").await;
    assert_eq!(app.metric("dsobel_strips_processed_total").await, 0.0, "a worker saw a refused upload");
    assert_eq!(app.coordinator.transport().queue.depth().await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test]
async fn damage_past_the_header_fails_the_job_in_the_worker_with_the_same_code() {
    // The backend reads headers only; a file cut after its header is found out by the worker
    // that decodes it, and the job fails with the refusal the door would have given.
    let app = spawn_app().await;
    let (png, _) = test_png(300, 200);
    let cut = png[..png.len() / 2].to_vec();
    assert_error(app.upload(cut.clone(), "?wait=10").await, 422, "corrupt-image").await;
    let id = app.submit(cut, "").await;
    let result = app.wait_result(&id).await;
    let body = assert_error(result, 422, "corrupt-image").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("PNG"), "{body}");
    let status = app.status(&id).await;
    assert_eq!(status["state"], "failed");
    assert_eq!(status["error"]["code"], "corrupt-image");
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_not_found() {
    let app = spawn_app().await;
    for path in [
        "/result/0123456789abcdef0123456789abcdef",
        "/status/nope",
        "/events/../../etc/passwd",
        "/no/such/route",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_error(response, 404, "not-found").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn overload_answers_429_with_retry_after() {
    let app = spawn_app_with(&["--max-jobs-in-flight", "0"]).await;
    let (png, _) = test_png(10, 10);
    let response = app.upload(png, "").await;
    let retry = response.headers().get("retry-after").cloned();
    assert_error(response, 429, "too-busy").await;
    assert!(retry.is_some());
    app.stop().await;
}

#[tokio::test]
async fn the_api_key_guards_the_api_but_not_health() {
    let app = spawn_app_with(&["--api-key", "s3cret"]).await;
    let (png, _) = test_png(12, 12);
    assert_error(app.upload(png.clone(), "").await, 401, "unauthorized").await;
    let wrong =
        app.client.post(app.url("/upload")).bearer_auth("nope").body(png.clone()).send().await.unwrap();
    assert_error(wrong, 401, "unauthorized").await;
    let ok =
        app.client.post(app.url("/upload?wait=10")).bearer_auth("s3cret").body(png).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let id = ok.headers()["x-dsobel-job-id"].to_str().unwrap().to_owned();
    let by_query =
        app.client.get(app.url(&format!("/status/{id}?access_token=s3cret"))).send().await.unwrap();
    assert_eq!(by_query.status(), 200);
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    app.stop().await;
}

/// Sends the head of an upload declaring `declared` bytes, then `sent` bytes of it, then
/// nothing more, and reads the answer (with a deadline of `within`).
fn upload_part_of(address: &str, declared: usize, sent: usize, within: Duration) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(within)).map_err(|e| e.to_string())?;
    write!(stream, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n")
        .map_err(|e| e.to_string())?;
    stream.write_all(&vec![0x42u8; sent]).map_err(|e| format!("sending the body failed: {e}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| format!("reading the answer failed: {e}"))?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn a_refused_upload_is_answered_at_once_and_its_body_is_not_read() {
    let app = spawn_app_with(&["--max-jobs-in-flight", "0"]).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    // 64 MiB declared, 64 KiB sent, then the client waits for the answer: it comes at once,
    // closing the connection, instead of after the server read (and dropped) the whole body.
    let answer = tokio::task::spawn_blocking({
        let address = address.clone();
        move || upload_part_of(&address, 64 << 20, 64 << 10, Duration::from_secs(3))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.contains("too-busy") && answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    // A small body sent whole before the client reads (as simple clients do) is drained
    // first, so that client gets the answer rather than a reset connection.
    let answer = tokio::task::spawn_blocking(move || {
        upload_part_of(&address, 100 << 10, 100 << 10, Duration::from_secs(3))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    app.stop().await;
}

use dsobel_testkit::fixture as jpeg_fixture;

#[tokio::test]
async fn damaged_jpegs_are_refused_with_what_is_wrong_never_answered_with_invented_pixels() {
    let app = spawn_app().await;
    let baseline = jpeg_fixture("q90-420.jpg");
    let progressive = jpeg_fixture("progressive-420.jpg");
    let mut out_of_sequence = jpeg_fixture("q50-420-restart.jpg");
    let rst0 = out_of_sequence.windows(2).rposition(|w| w == [0xFF, 0xD0]).unwrap();
    out_of_sequence[rst0 + 1] = 0xD5;
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("cut at 60 %", baseline[..baseline.len() * 6 / 10].to_vec(), "the data ends after row"),
        ("no end marker", baseline[..baseline.len() - 2].to_vec(), "end-of-image marker"),
        ("progressive cut at 60 %", progressive[..progressive.len() * 6 / 10].to_vec(), "corrupt JPEG"),
        ("restart marker out of sequence", out_of_sequence, "restart marker 5 found where"),
        ("whole but for one byte", baseline[..baseline.len() - 1].to_vec(), "corrupt JPEG"),
    ];
    let mut arithmetic = baseline.clone();
    let sof = arithmetic.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    arithmetic[sof + 1] = 0xC9;
    let refused = assert_error(app.upload(arithmetic, "?wait=30").await, 415, "unsupported-image").await;
    assert_eq!(refused["error"]["message"], "unsupported JPEG image: arithmetic coding is not supported");
    for (name, bytes, words) in cases {
        // With ?wait= the refusal is the answer; without it, the job fails and says why.
        let waited = assert_error(app.upload(bytes.clone(), "?wait=30").await, 422, "corrupt-image").await;
        let message = waited["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(words), "{name}: {message:?}");
        let id = app.submit(bytes, "?fragments=2").await;
        let result = app.wait_result(&id).await;
        assert_error(result, 422, "corrupt-image").await;
        let status = app.status(&id).await;
        assert_eq!(status["state"], "failed", "{name}: {status}");
        assert_eq!(status["error"]["code"], "corrupt-image", "{name}: {status}");
    }
    app.stop().await;
}

#[tokio::test]
async fn made_up_methods_share_one_metric_series() {
    let app = spawn_app().await;
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let response = app.client.request(method, app.url("/status/x")).send().await.unwrap();
        assert!(response.status().is_client_error());
    }
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("MADEUP"), "a made-up method became a label");
    let series = metrics
        .lines()
        .filter(|l| l.starts_with("dsobel_http_requests_total{") && l.contains("method=\"other\""))
        .count();
    assert!(series >= 1, "{metrics}");
    assert!(series <= 2, "one series per route and status, not per method: {series}");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_method_gets_the_json_error_and_a_stalled_body_is_dropped() {
    let app = spawn_app_with(&["--body-idle-timeout-secs", "1"]).await;
    let wrong = app.client.put(app.url("/upload")).body("x").send().await.unwrap();
    assert_error(wrong, 405, "method-not-allowed").await;

    // Headers that promise 1000 bytes, 10 of them, then silence.
    use tokio::io::AsyncReadExt;
    let mut stream = app.start_upload(1000, b"0123456789").await;
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the stalled upload was still open after 10 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request-timeout"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    app.stop().await;
}

/// Opens a connection and sends the start of a request whose headers never end.
async fn half_open(address: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    stream
}

#[tokio::test]
async fn headers_that_never_end_or_trickle_are_cut_off_at_the_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(&["--header-read-timeout-secs", "1"]).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    let mut silent = half_open(&address).await;
    let mut trickling = half_open(&address).await;
    let trickle = tokio::spawn(async move {
        // One header line every 300 ms, for ever: each line is progress, the deadline is not.
        for n in 0.. {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            if trickling.write_all(format!("X-Line-{n}: y\r\n").as_bytes()).await.is_err() {
                return started.elapsed();
            }
        }
        unreachable!()
    });
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), silent.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a connection whose headers never end was still open after 5 s");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "closed before the deadline");
    let cut = tokio::time::timeout(std::time::Duration::from_secs(10), trickle).await;
    let cut = cut.expect("trickled headers were still accepted after 10 s").unwrap();
    assert!(cut < std::time::Duration::from_secs(5), "trickled headers held the connection {cut:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_flood_of_half_open_connections_does_not_lock_out_a_normal_request() {
    let app = spawn_app_with(&["--max-connections", "64", "--header-read-timeout-secs", "30"]).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    // Four times the cap, each holding its connection with headers that never end.
    let mut flood = Vec::new();
    for _ in 0..256 {
        flood.push(half_open(&address).await);
    }
    let started = std::time::Instant::now();
    let fresh = dsobel_client::http_builder().pool_max_idle_per_host(0).build().unwrap();
    let answer = fresh.get(app.url("/healthz")).send().await.expect("a normal request during the flood");
    assert_eq!(answer.status(), 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "answered after {:?}", started.elapsed());
    assert!(app.metric("dsobel_http_connections_shed_total").await >= 190.0, "the oldest were shed");
    assert!(app.metric("dsobel_http_connections_open").await <= 64.0);
    drop(flood);
    app.stop().await;
}

#[tokio::test]
async fn an_upload_that_takes_too_long_in_all_is_dropped_with_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(&["--upload-timeout-secs", "1", "--body-idle-timeout-secs", "30"]).await;
    let stream = app.start_upload(1000, b"").await;
    // A byte every 200 ms: never idle for long, but slow in all.
    let (mut reader, mut writer) = stream.into_split();
    let slow = tokio::spawn(async move {
        while writer.write_all(b"x").await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    let mut answer = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(10), reader.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the slow upload was still open after 10 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("in all"), "{answer}");
    slow.abort();
    app.stop().await;
}

/// A multipart body of `(name, file name, value)` parts.
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "dsobel-test-boundary";
    let mut body = Vec::new();
    for (name, file_name, value) in parts {
        let file = file_name.map(|f| format!("; filename=\"{f}\"")).unwrap_or_default();
        let head = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n");
        body.extend_from_slice(head.as_bytes());
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn every_part_of_a_form_counts_and_option_fields_stay_short() {
    let app = spawn_app_with(&["--max-upload-bytes", "200000"]).await;
    let (png, _) = test_png(40, 30);
    let send = |(content_type, body): (String, Vec<u8>), chunked: bool| {
        let request = app.client.post(app.url("/upload")).header("content-type", content_type);
        let request = if chunked {
            // No declared length: the limit is found while reading.
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                body.chunks(16_384).map(|c| Ok(c.to_vec())).collect();
            request.body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        } else {
            request.body(body)
        };
        request.send()
    };
    let normal = form(&[("threshold", None, b"40"), ("image", Some("a.png"), &png)]);
    assert_eq!(send(normal, true).await.unwrap().status(), 202, "a normal form");
    let long_option = form(&[("threshold", None, &[b'7'; 5000]), ("image", Some("a.png"), &png)]);
    assert_error(send(long_option, true).await.unwrap(), 400, "invalid-option").await;
    // A second file is not kept, but its bytes count.
    let big_second = vec![0u8; 300_000];
    let two_files = form(&[("image", Some("a.png"), &png), ("extra", Some("b.bin"), &big_second)]);
    assert_error(send(two_files, true).await.unwrap(), 413, "payload-too-large").await;
    app.stop().await;
}

#[tokio::test]
async fn one_client_is_held_to_its_rate_and_its_open_event_streams() {
    let app = spawn_app_with(&["--rate-limit", "2", "--max-event-streams-per-client", "1"]).await;
    // Large enough to be still in work while the streams are opened (a finished job's stream
    // ends, and gives its place back).
    let (png, _) = test_png(1600, 1600);
    let id = app.submit(png, "").await;
    let first = app.client.get(app.url(&format!("/events/{id}"))).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let second = app.client.get(app.url(&format!("/events/{id}"))).send().await.unwrap();
    let body = assert_error(second, 429, "rate-limited").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("event streams"), "{body}");
    drop(first);
    // Three requests were used of a burst of four; the next ones wait for tokens.
    // Four requests were used of a burst of four; the next ones wait for tokens.
    let mut refused = None;
    for _ in 0..4 {
        let r = app.client.get(app.url(&format!("/status/{id}"))).send().await.unwrap();
        if r.status() == 429 {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("a burst past twice the rate is refused");
    assert!(refused.headers().get("retry-after").is_some());
    assert_error(refused, 429, "rate-limited").await;
    // Health and the page are not counted.
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    // Tokens come back with time (two a second): a request passes again.
    dsobel_testkit::wait_for_async(Duration::from_secs(5), "the client's tokens to refill", || async {
        app.client.get(app.url(&format!("/status/{id}"))).send().await.unwrap().status() == 200
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn uploads_being_received_share_a_memory_budget() {
    let app = spawn_app_with(&["--upload-memory-bytes", "100000", "--max-upload-bytes", "60000"]).await;
    // One upload declares 60,000 bytes and sends them slowly: it holds 60,000 of the 100,000.
    let slow = app.start_upload(60_000, b"0123456789").await;
    // Another of 50,000 does not fit once the slow one holds its share: 429 too-busy with
    // Retry-After, before its body is kept. (Until the server has the slow one's head, the
    // other is read, and refused as not an image: sent again until the slow one holds.)
    let refused = dsobel_testkit::wait_until_async(
        Duration::from_secs(5),
        "the slow upload to hold its share",
        || async {
            let answer = app.upload(vec![7u8; 50_000], "").await;
            (answer.status() == 429).then_some(answer)
        },
    )
    .await;
    assert_eq!(refused.headers()["retry-after"], "2");
    let refused = assert_error(refused, 429, "too-busy").await;
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("DSOBEL_UPLOAD_MEMORY_BYTES"), "{message}");
    // One without a declared length reserves the whole upload limit: refused too.
    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(vec![1u8; 10]))]);
    let chunked = app.client.post(app.url("/upload")).body(reqwest::Body::wrap_stream(chunks)).send().await;
    assert_error(chunked.unwrap(), 429, "too-busy").await;
    // A small one fits beside the slow one, and once the slow one is gone a large one does.
    let (png, _) = test_png(40, 30);
    assert_eq!(app.upload(png, "").await.status(), 202);
    drop(slow);
    // (Not an image, so refused for that: what matters is that it was read, not turned away,
    // once the server has let the slow one's share go.)
    let read = dsobel_testkit::wait_until_async(
        Duration::from_secs(5),
        "the slow upload's share to be let go",
        || async {
            let answer = app.upload(vec![7u8; 50_000], "").await;
            (answer.status() != 429).then_some(answer)
        },
    )
    .await;
    assert_error(read, 415, "unsupported-format").await;
    app.stop().await;
}
