//! Stopping with work in hand, end to end on real processes: SIGTERM to a backend and a worker
//! while their store is down, and to a backend in the middle of stitching. Each stops within
//! its grace period (`--shutdown-timeout-secs`) and leaves nothing that holds up the rest of
//! the system: the task it held goes back to the queue, the stitch lock it held goes, and
//! another backend finishes the job at once instead of after the lock's minute.

use std::time::{Duration, Instant};

use dsobel_client::JobState;
use dsobel_testkit::process::{Proc, queue_depth};
use dsobel_testkit::{
    Need, OwnRedis, RedisClient, Servers, Stack, Test, block_on, random_name, test_png, wait_for,
};

fn main() -> std::process::ExitCode {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    dsobel_testkit::run(vec![
        Test::new(
            "serve_and_worker_stop_within_their_grace_while_redis_is_down",
            &[Need::RabbitMq, Need::REDIS_SERVER],
            serve_and_worker_stop_within_their_grace_while_redis_is_down,
        ),
        Test::new(
            "a_backend_stopped_mid_stitch_lets_its_lock_go_and_another_finishes_the_job_at_once",
            &[Need::RabbitMq, Need::Redis],
            a_backend_stopped_mid_stitch_lets_its_lock_go_and_another_finishes_the_job_at_once,
        ),
    ])
}

/// What a process may take past its grace period to exit (the runtime winding down).
const MARGIN: Duration = Duration::from_secs(3);

/// Sends SIGTERM to each of `procs` at once; how long each took to exit (panics for one still
/// running after `limit`).
fn stop_all(procs: &mut [&mut Proc], limit: Duration) -> Vec<Duration> {
    let asked = Instant::now();
    for proc in procs.iter() {
        proc.signal("TERM");
    }
    procs
        .iter_mut()
        .map(|proc| {
            let status = proc
                .terminate_within(limit.saturating_sub(asked.elapsed()))
                .unwrap_or_else(|| panic!("{} still runs {:?} after SIGTERM", proc.name, asked.elapsed()));
            assert!(status.success(), "{} exited with {status}", proc.name);
            asked.elapsed()
        })
        .collect()
}

fn serve_and_worker_stop_within_their_grace_while_redis_is_down() {
    let logs = tempdir("dsobel-stop-store-down");
    let mut redis = OwnRedis::start(None);
    let mut stack = Stack::new(&Servers { amqp: Servers::shared().amqp, redis: redis.url() });
    stack.log_dir = Some(logs.clone());
    let grace = Duration::from_secs(5);
    let grace_flag = ["--shutdown-timeout-secs", "5"];
    // The drill holds the task 2 s before the worker reads its input: Redis goes meanwhile.
    let mut worker = stack.worker_with(2000, &grace_flag);
    let mut serve = stack.serve(&grace_flag);
    let (health, backend) = (worker.backend(), serve.backend());
    let (png, _) = test_png(160, 120, 31);
    let id = backend.submit(&png, "?fragments=1");
    wait_for(Duration::from_secs(20), "the worker to hold the task", || {
        health.metric("dsobel_strips_in_flight") == 1.0
    });
    redis.kill();
    // The store does not answer: the worker holds the task, waiting for the store (up to a
    // minute) before it would hand the task back.
    let worker_log = worker.log.clone().expect("the worker's log");
    wait_for(Duration::from_secs(30), "the worker to hold the task while the store is out", || {
        std::fs::read_to_string(&worker_log).unwrap_or_default().contains("task handed back to the queue")
    });
    assert_eq!(health.metric("dsobel_strips_in_flight"), 1.0, "the task is still in the worker's hands");

    let took = stop_all(&mut [&mut worker, &mut serve], grace + MARGIN + Duration::from_secs(30));
    let (worker_took, serve_took) = (took[0], took[1]);
    // Shutdown cuts the worker's wait for the store short: it hands the task back at once
    // instead of holding it until the grace period runs out.
    assert!(worker_took < grace / 2, "the worker took {worker_took:?} to stop (grace {grace:?})");
    assert!(serve_took <= grace + MARGIN, "serve took {serve_took:?} to stop (grace {grace:?})");
    // The task went back to the queue for another worker, not with the process.
    let amqp = stack.amqp.clone();
    wait_for(Duration::from_secs(10), "the task of job to be back in the queue", || {
        block_on(queue_depth(&amqp, &stack.queue)) == Some(1)
    });
    eprintln!(
        "job {id}: worker stopped in {worker_took:?}, serve in {serve_took:?}; its task is queued again"
    );
    let _ = std::fs::remove_dir_all(&logs);
}

fn a_backend_stopped_mid_stitch_lets_its_lock_go_and_another_finishes_the_job_at_once() {
    let servers = Servers::shared();
    let mut stack = Stack::new(&servers);
    let logs = tempdir("dsobel-stop-mid-stitch");
    stack.log_dir = Some(logs.clone());
    let store = RedisClient::from_url(&servers.redis);
    let _worker = stack.worker(0);
    // Backend A holds every stitch a minute while it has the job's lock. B starts once A is
    // gone (a replica running beside A would race it for the stitch, and keep its own lock
    // after stitching, which would hide A's).
    let mut a = stack.serve(&["--drill-stitch-delay-ms", "60000", "--shutdown-timeout-secs", "2"]);
    let (png, luma) = test_png(200, 150, 32);
    let id = a.backend().submit(&png, "?fragments=2");
    // `{ns}:job:{<id>}:stitch` (the pattern also finds the lock of builds that wrote the id
    // without its hash-tag braces).
    let lock = format!("{}:job:*{id}*:stitch", stack.namespace);
    let locked = || !store.keys(&lock).is_empty();
    wait_for(Duration::from_secs(30), "backend A to take the job's stitch lock", locked);
    let a_log = a.log.clone().expect("A's log");

    let took = stop_all(&mut [&mut a], Duration::from_secs(2) + MARGIN + Duration::from_secs(30))[0];
    assert!(took <= Duration::from_secs(2) + MARGIN, "backend A took {took:?} to stop (grace 2 s)");
    assert!(!locked(), "backend A left the stitch lock {lock} behind");
    let said = std::fs::read_to_string(&a_log).unwrap_or_default();
    assert!(
        !said.contains("\"job done\""),
        "A finished the job instead of being stopped mid-stitch:\n{said}"
    );
    // B's sweeper finds the job with all its strips and no lock: done at once, not after the
    // lock's 60 s.
    let finished = Instant::now();
    let b = stack.serve(&[]);
    let status = b.backend().wait_job(&id, Duration::from_secs(15));
    assert_eq!(status.state, JobState::Done, "{status:?}");
    b.backend().assert_exact(&id, &luma, 200, 150);
    eprintln!("job {id}: A stopped in {took:?}; B started and finished the job in {:?}", finished.elapsed());
    let _ = std::fs::remove_dir_all(&logs);
}

fn tempdir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(random_name(prefix));
    std::fs::create_dir_all(&dir).expect("a folder for the logs");
    dir
}
