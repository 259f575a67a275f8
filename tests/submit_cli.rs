//! `dsobel submit` against a real `dsobel serve` (embedded mode) started from the built binary.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

#[test]
fn submit_saves_exact_results_and_reports_failures() {
    let address = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_dsobel"))
        .args(["serve", "--listen", &address, "--workers", "2"])
        .env_remove("DSOBEL_AMQP_URL")
        .env_remove("DSOBEL_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _serve = Proc { child, name: "serve".into(), address: Some(address.clone()) };
    wait_until(Duration::from_secs(20), || http("GET", &address, "/healthz", b"").is_some())
        .expect("server up");
    let dir = tempfile::tempdir().unwrap();
    let (png, luma) = test_png(150, 90, 9);
    std::fs::write(dir.path().join("good.png"), &png).unwrap();
    std::fs::write(dir.path().join("bad.png"), b"not a png at all").unwrap();
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_dsobel"))
        .args(["submit", "--server", &format!("http://{address}"), "--fragments", "3", "--out-dir"])
        .arg(&out)
        .arg(dir.path().join("good.png"))
        .arg(dir.path().join("bad.png"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad.png") && stderr.contains("unsupported-format"), "{stderr}");
    assert!(stderr.contains("1 of 2 images done, 1 failed"), "{stderr}");
    let (w, h, pixels) = decode_png(&std::fs::read(out.join("good-edges.png")).unwrap());
    assert_eq!((w, h), (150, 90));
    assert_eq!(pixels, dsobel_kernel::reference::filter_image(&luma, 150, 90, &Default::default()));
    assert!(!out.join("bad-edges.png").exists());
}
