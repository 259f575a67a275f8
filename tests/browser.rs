//! The web page in a real browser (headless Chromium through playwright-core), against the
//! built `dsobel serve` and through nginx: `tests/browser/run.sh` does the work; this test runs
//! it with the binary cargo just built, so `cargo test` covers the page too.

use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

#[test]
fn web_page_in_a_real_browser() {
    let missing: Vec<&str> = ["node", "npm"].into_iter().filter(|t| !have(t)).collect();
    if !missing.is_empty() {
        if std::env::var_os("CI").is_some() {
            panic!("browser tests need {} in CI", missing.join(" and "));
        }
        eprintln!(
            "skipped web_page_in_a_real_browser: {} not installed (install Node.js 20+)",
            missing.join(" and ")
        );
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/run.sh");
    let status = Command::new("bash")
        .arg(script)
        .env("DSOBEL_BIN", env!("CARGO_BIN_EXE_dsobel"))
        .status()
        .expect("run the browser tests");
    assert!(status.success(), "browser tests failed (see their report above)");
}
