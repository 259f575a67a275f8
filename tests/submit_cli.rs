//! `dsobel submit` against a real `dsobel serve` (embedded mode) started from the built binary.

use std::process::Command;

use dsobel_testkit::process::embedded_serve;
use dsobel_testkit::{decode_png, expected, test_png};

#[test]
fn submit_saves_exact_results_and_reports_failures() {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    let serve = embedded_serve(&["--workers", "2"]);
    let address = serve.address.clone();
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
    assert_eq!(pixels, expected(&luma, 150, 90, &Default::default()));
    assert!(!out.join("bad-edges.png").exists());
}
