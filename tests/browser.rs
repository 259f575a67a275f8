//! The web page in a real browser (headless Chromium through playwright-core), against the
//! built `dsobel serve` and through nginx: `tests/browser/run.sh` runs each file of tests;
//! this test binary runs them with the binary cargo just built, so `cargo test` covers the
//! page too. Each file is one test here, with what it needs: without it, it shows as ignored
//! with the reason (or fails under CI).

use std::process::Command;

use dsobel_testkit::{Need, Test};

fn main() -> std::process::ExitCode {
    let browser = [Need::NODE, Need::NPM, Need::Chromium];
    let through_nginx = [Need::NODE, Need::NPM, Need::Chromium, Need::NGINX];
    dsobel_testkit::run(vec![
        Test::new("web_page_in_a_real_browser", &browser, || run_file("page.test.mjs")),
        Test::new("result_viewer_in_a_real_browser", &browser, || run_file("viewer.test.mjs")),
        Test::new("jobs_in_a_real_browser", &browser, || run_file("jobs.test.mjs")),
        Test::new("operators_in_a_real_browser", &browser, || run_file("operators.test.mjs")),
        Test::new("store_batches_in_a_real_browser", &browser, || run_file("store-batch.test.mjs")),
        Test::new("web_page_through_nginx", &through_nginx, || run_file("nginx.test.mjs")),
    ])
}

/// Runs one file of browser tests; Node's test runner reports each test. A test that skips
/// itself inside (a tool it found missing) fails here: the needs above were checked.
fn run_file(file: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/run.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg(format!("./{file}"))
        .env("DSOBEL_BIN", env!("CARGO_BIN_EXE_dsobel"))
        .output()
        .expect("run the browser tests");
    let report =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{report}");
    assert!(output.status.success(), "{file}: browser tests failed (see their report above)");
    let skipped = report.lines().find_map(|l| l.trim().strip_prefix("ℹ skipped ")).unwrap_or("0");
    assert_eq!(skipped.trim(), "0", "{file}: Node skipped tests although their tools are here:\n{report}");
}
