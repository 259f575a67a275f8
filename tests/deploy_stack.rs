//! The deployment's settings, proven without a cluster: `deploy/local/run-stack.sh` starts the
//! built binary as one backend and two workers with the environment of the Kubernetes ConfigMap
//! (hostnames pointed at the local RabbitMQ and Redis), runs a job through and stops them with
//! SIGTERM, checking each exits cleanly.

mod support;

use std::process::Command;

#[test]
fn the_configmap_settings_run_a_job_on_local_servers() {
    if support::servers("the_configmap_settings_run_a_job").is_none() {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/local/run-stack.sh");
    let output = Command::new("bash")
        .arg(script)
        .args(["--workers", "2"])
        .env("DSOBEL_BIN", env!("CARGO_BIN_EXE_dsobel"))
        .output()
        .expect("run deploy/local/run-stack.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "run-stack.sh failed:\n{stdout}\n{stderr}");
    let report = format!("{stdout}{stderr}");
    assert!(report.contains("OK: 1 backend + 2 worker(s) processed a job and stopped cleanly"), "{report}");
}
