//! A tiny benchmark against the embedded server: the CSV has its header and one row per
//! request, every request succeeded, the summary has one cell per (image, concurrency), and the
//! plots are PNG files that decode.

use clap::Parser;
use dsobel_bench::{BenchArgs, PlotArgs, bench, plot_command};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn decode_png(path: &std::path::Path) -> (u32, u32) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut pixels).expect("PNG pixels");
    // A chart is not blank: some pixels are not white.
    assert!(pixels.iter().any(|&p| p < 200), "{} is blank", path.display());
    (info.width, info.height)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_bench_writes_csv_summary_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out/results.csv");
    let plots = dir.path().join("plots");
    let argv = [
        "bench",
        "--size",
        "160x120",
        "--size",
        "320x200",
        "--concurrency",
        "1,2",
        "--requests",
        "3",
        "--warmup",
        "1",
        "--timeout",
        "30",
        "--embedded-workers",
        "2",
        "--csv",
        csv.to_str().unwrap(),
    ];
    let args = Cli::try_parse_from(argv).expect("valid flags").bench;
    let report = tokio::time::timeout(std::time::Duration::from_secs(120), bench(args))
        .await
        .expect("the tiny benchmark finishes in time")
        .expect("the benchmark runs");

    // The summary: 2 images × 2 levels, 3 requests each, no failure.
    assert_eq!(report.records.len(), 12);
    assert_eq!(report.cells.len(), 4);
    for cell in &report.cells {
        assert_eq!(cell.requests, 3, "{cell:?}");
        assert_eq!(cell.failures, 0, "{cell:?}");
        assert_eq!(cell.workers, "embedded");
        assert!(cell.throughput > 0.0);
        assert!(cell.p50_ms > 0.0 && cell.p50_ms <= cell.p95_ms && cell.p95_ms <= cell.p99_ms);
        assert!(cell.p99_ms <= cell.max_ms);
    }
    let levels: Vec<(String, usize)> =
        report.cells.iter().map(|c| (c.image.clone(), c.concurrency)).collect();
    assert_eq!(
        levels,
        [
            ("160x120".to_owned(), 1),
            ("160x120".to_owned(), 2),
            ("320x200".to_owned(), 1),
            ("320x200".to_owned(), 2)
        ]
    );
    assert_eq!(report.exit_code(), 0);
    let table = report.table();
    assert!(table.contains("p95_ms") && table.contains("img/s"), "{table}");
    assert!(table.contains("all 12 requests succeeded"), "{table}");

    // The CSV: the seed's columns first, one row per recorded request, all 200 with timings.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header[..12],
        [
            "status",
            "elapsed_ms",
            "image_kb",
            "concurrency",
            "upload_ms",
            "queue_wait_ms",
            "processing_ms",
            "download_ms",
            "result_bytes",
            "strips",
            "workers",
            "error"
        ]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 12);
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for row in &rows {
        assert_eq!(row.len(), header.len());
        assert_eq!(row[column("status")], "200");
        assert_eq!(row[column("error")], "");
        assert_eq!(row[column("workers")], "embedded");
        assert!(row[column("elapsed_ms")].parse::<f64>().unwrap() > 0.0);
        assert!(row[column("image_kb")].parse::<f64>().unwrap() > 0.0);
        for timing in ["upload_ms", "queue_wait_ms", "processing_ms", "download_ms", "decode_ms"] {
            assert!(row[column(timing)].parse::<f64>().is_ok(), "{timing} in {row:?}");
        }
        assert!(row[column("result_bytes")].parse::<u64>().unwrap() > 0);
        assert!(row[column("strips")].parse::<u32>().unwrap() >= 1);
        assert_eq!(row[column("job_id")].len(), 32);
    }
    for (level, expected) in [("1", 6), ("2", 6)] {
        assert_eq!(rows.iter().filter(|r| r[column("concurrency")] == level).count(), expected);
    }

    // The plots, from the CSV as `dsobel bench plot` draws them.
    let code = plot_command(PlotArgs { csv: csv.clone(), out_dir: plots.clone() }).expect("plots drawn");
    assert_eq!(code, 0);
    for name in ["latency.png", "throughput.png", "stages.png"] {
        let (w, h) = decode_png(&plots.join(name));
        assert!(w >= 900 && h >= 400, "{name}: {w}x{h}");
    }
}

#[tokio::test]
async fn refusals_are_failures_with_their_code() {
    // Nothing listens on this port (held, never listening): every request fails with
    // `connect`, the exit code is 1.
    let closed = dsobel_testkit::ClosedPort::new();
    let url = format!("http://127.0.0.1:{}", closed.port());
    let argv =
        ["bench", "--url", &url, "--size", "64x48", "--concurrency", "2", "--requests", "4", "--warmup", "0"];
    let args = Cli::try_parse_from(argv).unwrap().bench;
    let report = bench(args).await.unwrap();
    assert_eq!(report.records.len(), 4);
    assert_eq!(report.failures.get("connect"), Some(&4), "{:?}", report.failures);
    assert_eq!(report.exit_code(), 1);
    assert!(report.table().contains("connect: 4"));
}

#[derive(Parser)]
struct ServeCli {
    #[command(flatten)]
    serve: dsobel_service::config::ServeArgs,
}

#[tokio::test]
async fn too_busy_answers_are_counted_not_retried() {
    // A server that takes no job at all: every upload is answered 429 too-busy.
    let args = ServeCli::try_parse_from(["serve", "--listen", "127.0.0.1:0", "--max-jobs-in-flight", "0"])
        .unwrap()
        .serve;
    let listener = tokio::net::TcpListener::bind(args.listen).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let transport = dsobel_service::transport::Transport::memory(&args.transport);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server =
        tokio::spawn(dsobel_service::app::serve_with(args, transport, listener, shutdown.clone(), |_| {}));
    let argv = ["bench", "--url", &url, "--size", "64x48", "--concurrency", "1", "--requests", "3"];
    let report = bench(Cli::try_parse_from(argv).unwrap().bench).await.unwrap();
    shutdown.cancel();
    let _ = server.await;
    assert_eq!(report.records.len(), 3);
    assert!(report.records.iter().all(|r| r.status == 429 && r.error == "too-busy"));
    assert_eq!(report.failures.get("too-busy"), Some(&3));
    assert_eq!(report.cells[0].workers, "unknown");
    assert_eq!(report.exit_code(), 1);
}
