//! The deployment's settings, proven without a cluster: `deploy/local/run-stack.sh` starts the
//! built binary as one backend and two workers with the environment of the Kubernetes ConfigMap
//! (hostnames pointed at the local RabbitMQ and Redis), runs a job through and stops them with
//! SIGTERM, checking each exits cleanly.

//!
//! The script names its queue `dsobel.strips.test-…` and deletes it when `rabbitmqctl` is at
//! hand; the test deletes it too (by the name the script prints), so no run leaves it behind.

use std::process::Command;

use dsobel_testkit::process::QueueCleanup;
use dsobel_testkit::{Need, Servers, Test};

fn main() -> std::process::ExitCode {
    dsobel_testkit::run(vec![Test::new(
        "the_configmap_settings_run_a_job_on_local_servers",
        &[Need::RabbitMq, Need::Redis],
        the_configmap_settings_run_a_job_on_local_servers,
    )])
}

fn the_configmap_settings_run_a_job_on_local_servers() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/local/run-stack.sh");
    let output = Command::new("bash")
        .arg(script)
        .args(["--workers", "2"])
        .env("DSOBEL_BIN", env!("CARGO_BIN_EXE_dsobel"))
        .output()
        .expect("run deploy/local/run-stack.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = format!("{stdout}{stderr}");
    let queue = report
        .split_whitespace()
        .find(|word| word.starts_with("dsobel.strips.test-"))
        .map(|q| q.trim_end_matches(',').to_owned());
    drop(queue.map(|q| QueueCleanup::new(&Servers::shared().amqp, vec![q])));
    assert!(output.status.success(), "run-stack.sh failed:\n{stdout}\n{stderr}");
    assert!(report.contains("OK: 1 backend + 2 worker(s) processed a job and stopped cleanly"), "{report}");
}
