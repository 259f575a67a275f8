//! The randomized fault test ("nemesis"): a whole distributed stack under a steady load of mixed
//! images while faults are injected at random, one after another, then a reckoning of every
//! upload that was answered `202`.
//!
//! The stack is its own: a Redis (with an append-only file, as deployed) and a RabbitMQ node on
//! spare loopback ports, never the shared servers; two backends and three workers from the
//! built binary, each reaching Redis and RabbitMQ through a proxy of the test's
//! ([`dsobel_testkit::Proxy`]). Clients post mixed images (JPEGs with and without restart markers,
//! one of them large enough that its strips are read in pieces; progressive; PNGs, one over
//! 2 MiB that is stored as it arrives; one damaged JPEG; automatic and explicit strip counts)
//! to either backend,
//! each upload with its own `Idempotency-Key`, and send it again with the same key whenever
//! they get no answer or a `503`/`429`. The faults, each at least once and then at random:
//!
//! - a worker killed with SIGKILL, started again after up to 2 s;
//! - a backend killed with SIGKILL, started again on its address after up to 2 s;
//! - Redis restarted with SIGTERM (it keeps its data in its append-only file);
//! - Redis killed with SIGKILL and started on its append-only file (fsync every second, so the
//!   last second of writes may be lost), and Redis killed and started with none of its data
//!   (a server without persistence);
//! - RabbitMQ stopped with SIGTERM and started again, and (once the node has run for a minute)
//!   killed with SIGKILL and started again: its quorum queue is on disk;
//! - every connection to Redis, or to RabbitMQ, cut for 0.5–3 s;
//! - 20–150 ms of latency on every chunk to and from both, for 2–5 s;
//! - loss, as TCP shows it to a program: 3 % of the chunks stall their connection 200–600 ms.
//!
//! After each fault the test measures recovery: the time from the fault's end until an upload
//! with `?wait=` gets its PNG. At the end every `202` must have become `done`, with the pixels
//! of `dsobel process` for the same file, or `failed` with a code and a message: the damaged
//! JPEG with `corrupt-image`; a job in flight when Redis lost data with `job-lost`, or with
//! `input-expired` once it could no longer finish (the processes run with a work TTL of 30 s,
//! so such a job fails after 60 s); nothing else. None may read `404` or stay unfinished, no job may be finished twice (the
//! processes' logs), an upload sent again with its key must get the same job, and every key in
//! Redis must carry a TTL.
//!
//! RabbitMQ 3.10 killed within seconds of its first start has come back with the queue declared
//! but its Raft member not started (every `basic.consume` timed out until the queue was
//! deleted): a matter of the broker's own bookkeeping, so the test sends SIGKILL only to a node
//! that has run for a minute.
//!
//! A backend killed within a moment of a Redis data loss would lose the jobs whose only other
//! trace it held (the documented limit of `docs/reliability.md`): the test lets the backend's
//! sweep run (2 s) after a data loss before the next fault.
//!
//! `DSOBEL_NEMESIS_SECS` sets how long faults are injected (default 45) and
//! `DSOBEL_NEMESIS_SEED` the random seed (default: random, printed); the report is printed, so
//! run it with `--nocapture` to read it:
//!
//! ```text
//! DSOBEL_NEMESIS_SECS=600 cargo test --release --test nemesis -- --nocapture
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use dsobel_client::{JobId, JobResult, Upload};
use dsobel_testkit::api::Backend;
use dsobel_testkit::images::restart_jpeg;
use dsobel_testkit::process::processed_locally;
use dsobel_testkit::{
    Need, OwnRabbit, OwnRedis, Proc, Proxy, Servers, Stack, Test, decode_png, fixture, random_name, test_png,
};

fn main() -> std::process::ExitCode {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    dsobel_testkit::run(vec![Test::new(
        "under_random_faults_every_accepted_job_ends_exact_or_failed_with_a_reason",
        &[Need::RabbitMqServer, Need::REDIS_SERVER, Need::REDIS_CLI, Need::JPEGTRAN],
        under_random_faults_every_accepted_job_ends_exact_or_failed_with_a_reason,
    )])
}

/// The backends' addresses now: a backend killed and started again may come back on another
/// port.
type Addresses = Arc<RwLock<Vec<String>>>;

/// The backend in `slot` (modulo their number) as it is now.
fn backend_at(backends: &Addresses, slot: usize) -> Backend {
    let addresses = backends.read().unwrap();
    Backend::new(&addresses[slot % addresses.len()])
}

/// What an image should become.
#[derive(Clone)]
enum Expected {
    /// `done`, with these pixels (what `dsobel process` gives).
    Pixels(Arc<(u32, u32, Vec<u8>)>),
    /// `failed` with this code.
    Failure(&'static str),
}

#[derive(Clone)]
struct Input {
    name: String,
    bytes: Arc<Vec<u8>>,
    query: &'static str,
    expected: Expected,
}

fn inputs() -> Vec<Input> {
    let restart = fixture("q50-420-restart.jpg");
    let plain = fixture("q90-420.jpg");
    let mut damaged = plain.clone();
    damaged.truncate(plain.len() * 6 / 10);
    let mut images: Vec<(String, Vec<u8>, &'static str)> = vec![
        ("restart markers".into(), restart.clone(), ""),
        ("restart markers, 3 strips".into(), restart, "?fragments=3"),
        ("restart every MCU, 4 strips".into(), fixture("q98-444-restart1.jpg"), "?fragments=4"),
        ("baseline, 2 strips".into(), plain.clone(), "?fragments=2"),
        ("baseline".into(), plain, ""),
        ("progressive".into(), fixture("progressive-420.jpg"), ""),
        ("png 640x480".into(), test_png(640, 480, 7).0, ""),
        ("png 300x200, 5 strips".into(), test_png(300, 200, 8).0, "?fragments=5"),
        ("jpeg cut at 60 %".into(), damaged, ""),
        // Over 2 MiB: stored in Redis as it arrives.
        ("png 2000x1500, stored as it arrives".into(), test_png(2000, 1500, 9).0, ""),
    ];
    // Its strips' intervals are read in pieces.
    let dir = std::env::temp_dir().join(random_name("dsobel-nemesis-images"));
    std::fs::create_dir_all(&dir).unwrap();
    let large = restart_jpeg(&dir, "3000x2000");
    images.push(("restart markers, 3000x2000 in pieces, 2 strips".into(), large, "?fragments=2"));
    let _ = std::fs::remove_dir_all(&dir);
    images
        .into_iter()
        .map(|(name, bytes, query)| {
            let expected = match processed_locally(&bytes) {
                Some(pixels) => Expected::Pixels(Arc::new(pixels)),
                None => Expected::Failure("corrupt-image"),
            };
            Input { name, bytes: Arc::new(bytes), query, expected }
        })
        .collect()
}

/// What became of one upload that was answered `202` (or, with `?wait=`, its PNG).
struct Accepted {
    id: String,
    key: String,
    outcome: Outcome,
    /// The address of the backend that accepted it, and when.
    by: String,
    at: Instant,
}

/// How a followed job ended, as its client saw it.
#[derive(Debug, Clone)]
enum Outcome {
    /// `done`, with exactly the expected pixels.
    Exact,
    /// `failed` with a code and message the test allows for this job.
    FailedAsAllowed(String),
    /// Unknown (`404`) after Redis lost its data: right if the job had ended (its record went
    /// with the data), which the client saw or the processes' logs show; else lost.
    UnknownAfterDataLoss { seen_done: bool },
    /// Unknown (`404`) before it finished: the backend that accepted it was killed, and the
    /// store lost its data before another replica could take the job over (its heartbeat
    /// lives 5 s): nothing anywhere knows the job any more (a double fault no single process
    /// can survive without a durable log elsewhere; the client still has its file).
    LostWithItsBackend,
    /// Anything that breaks a guarantee, said in words.
    Broken(String),
    /// Not finished within the time limit.
    Stuck,
}

impl Outcome {
    fn label(&self) -> String {
        match self {
            Outcome::Exact => "done, exact".into(),
            Outcome::FailedAsAllowed(code) => format!("failed, {code}"),
            Outcome::UnknownAfterDataLoss { .. } => "ended, then lost with the store's data".into(),
            Outcome::LostWithItsBackend => "lost with its backend and the store's data together".into(),
            Outcome::Broken(_) => "BROKEN".into(),
            Outcome::Stuck => "STUCK".into(),
        }
    }
}

/// Everything the run records, shared by its threads.
#[derive(Default)]
struct Ledger {
    accepted: Vec<Accepted>,
    /// Uploads sent again with the same key after their `202`: (key, first id, id the resend got).
    replays: Vec<(String, String, String)>,
    /// Answers no upload should get (status, body), as evidence.
    unexpected: Vec<String>,
    /// Resends of one upload because of no answer, 503 or 429.
    resends: u64,
    /// When Redis lost data, all or its last writes (shared with the clients, which judge
    /// `job-lost` and `input-expired` by it).
    wipes: Arc<Mutex<Vec<Instant>>>,
    /// Backends killed: (address, when).
    backend_kills: Vec<(String, Instant)>,
    /// Fault kind → recovery times.
    recoveries: BTreeMap<&'static str, Vec<Duration>>,
}

/// The stack's processes, which faults kill and start again.
struct Fleet {
    stack: Stack,
    backends: Vec<Option<Proc>>,
    addresses: Addresses,
    /// Each worker's fault-drill delay and process.
    workers: Vec<(u64, Option<Proc>)>,
}

/// Posts `input` with `key` until some backend accepts it; gives up after 120 s. Returns the
/// job id and the address of the backend that accepted it.
fn upload_until_accepted(
    backends: &Addresses,
    input: &Input,
    key: &str,
    query: &str,
    ledger: &Mutex<Ledger>,
) -> Option<(String, String)> {
    let started = Instant::now();
    let mut attempt = fastrand::usize(..8);
    while started.elapsed() < Duration::from_secs(120) {
        let address = {
            let addresses = backends.read().unwrap();
            addresses[attempt % addresses.len()].clone()
        };
        let backend = Backend::new(&address);
        attempt += 1;
        match backend.upload_once(&input.bytes, query, key) {
            Ok(Upload::Accepted(links)) => return Some((links.id.to_string(), address)),
            Ok(Upload::Finished { id, .. }) => {
                return Some((id.expect("the job id of a ?wait= answer").to_string(), address));
            }
            Err(e) if matches!(e.status(), 0 | 503 | 429 | 502 | 504) => {}
            Err(e) => {
                ledger.lock().unwrap().unexpected.push(format!("{} {}: {e}", input.name, key));
                return None;
            }
        }
        ledger.lock().unwrap().resends += 1;
        std::thread::sleep(Duration::from_millis(fastrand::u64(100..600)));
    }
    ledger.lock().unwrap().unexpected.push(format!("{}: no backend accepted it in 120 s", input.name));
    None
}

/// A client: uploads at random, one at a time, until `stop`, and follows each job to its end
/// as a user would (polling `/status` at either backend, then fetching the result); one upload
/// in four is sent again with its key after its `202`, which must give the same job.
fn client(backends: Addresses, inputs: Arc<Vec<Input>>, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    let wipes = ledger.lock().unwrap().wipes.clone();
    while !stop.load(Ordering::SeqCst) {
        let input = &inputs[fastrand::usize(..inputs.len())];
        let key = random_name("nemesis");
        let Some((id, by)) = upload_until_accepted(&backends, input, &key, input.query, &ledger) else {
            continue;
        };
        let accepted_at = Instant::now();
        if fastrand::u8(..4) == 0
            && let Some(again) = upload_until_accepted(&backends, input, &key, input.query, &ledger)
        {
            ledger.lock().unwrap().replays.push((key.clone(), id.clone(), again.0));
        }
        let outcome = follow(&backends, &id, input, accepted_at, &wipes);
        ledger.lock().unwrap().accepted.push(Accepted { id, key, outcome, by, at: accepted_at });
    }
}

/// Follows a job until it ends and judges the end against what `input` should become.
fn follow(
    backends: &Addresses,
    id: &str,
    input: &Input,
    accepted_at: Instant,
    wipes: &Mutex<Vec<Instant>>,
) -> Outcome {
    let wiped_since =
        |at: Instant| wipes.lock().unwrap().iter().any(|wipe| *wipe + Duration::from_secs(2) > at);
    let job = JobId::parse(id).expect("a job id");
    let mut last_state = String::new();
    let mut unknown_since: Option<Instant> = None;
    while accepted_at.elapsed() < Duration::from_secs(180) {
        let backend = backend_at(backends, fastrand::usize(..8));
        let status = match backend.try_status(&job) {
            Ok(status) => status,
            Err(e) if e.status() == 404 => {
                if (last_state == "done" || last_state == "failed") && wiped_since(accepted_at) {
                    return Outcome::UnknownAfterDataLoss { seen_done: true };
                }
                // A job the store lost reads unknown until a sweep records it lost (1 s by default).
                let since = *unknown_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(10) && wiped_since(accepted_at) {
                    return Outcome::UnknownAfterDataLoss { seen_done: false };
                }
                if since.elapsed() > Duration::from_secs(10) {
                    return Outcome::Broken(format!(
                        "job {id} ({}) reads 404 (last seen {last_state:?})",
                        input.name
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        unknown_since = None;
        last_state = status.state.as_str().to_owned();
        match (last_state.as_str(), &input.expected) {
            ("done", Expected::Pixels(pixels)) => match backend.result(&job) {
                Ok(JobResult::Ready(png)) if decode_png(&png) == **pixels => return Outcome::Exact,
                Ok(JobResult::Ready(_)) => {
                    return Outcome::Broken(format!(
                        "job {id} ({}): the result differs from dsobel process",
                        input.name
                    ));
                }
                _ => {}
            },
            ("failed", expected) => {
                let code = status.error.as_ref().map(|e| e.code.as_str()).unwrap_or_default().to_owned();
                let message = status.error.as_ref().map(|e| e.message.as_str()).unwrap_or_default();
                let allowed = matches!(expected, Expected::Failure(want) if *want == code)
                    || (matches!(code.as_str(), "job-lost" | "input-expired") && wiped_since(accepted_at));
                if allowed && !message.is_empty() {
                    return Outcome::FailedAsAllowed(code);
                }
                return Outcome::Broken(format!("job {id} ({}) failed: {status:?}", input.name));
            }
            ("done", Expected::Failure(code)) => {
                return Outcome::Broken(format!(
                    "job {id} ({}) is done, expected failed with {code}",
                    input.name
                ));
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Outcome::Stuck
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    KillWorker,
    KillBackend,
    RedisRestart,
    RedisCrash,
    RedisDataLoss,
    RabbitRestart,
    RabbitCrash,
    CutRedis,
    CutRabbit,
    Latency,
    Loss,
}

impl Fault {
    const ALL: [Fault; 11] = [
        Fault::KillWorker,
        Fault::KillBackend,
        Fault::RedisRestart,
        Fault::RedisCrash,
        Fault::RedisDataLoss,
        Fault::RabbitRestart,
        Fault::RabbitCrash,
        Fault::CutRedis,
        Fault::CutRabbit,
        Fault::Latency,
        Fault::Loss,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::KillWorker => "worker SIGKILL",
            Fault::KillBackend => "backend SIGKILL",
            Fault::RedisRestart => "Redis restart (AOF)",
            Fault::RedisCrash => "Redis SIGKILL (AOF)",
            Fault::RedisDataLoss => "Redis data loss",
            Fault::RabbitRestart => "RabbitMQ restart",
            Fault::RabbitCrash => "RabbitMQ SIGKILL",
            Fault::CutRedis => "Redis connections cut",
            Fault::CutRabbit => "RabbitMQ connections cut",
            Fault::Latency => "latency 20-150 ms",
            Fault::Loss => "loss (3 % stalls)",
        }
    }
}

/// Everything a fault can touch.
struct World {
    fleet: Fleet,
    redis: OwnRedis,
    rabbit: OwnRabbit,
    redis_proxy: Proxy,
    rabbit_proxy: Proxy,
}

impl World {
    fn inject(&mut self, fault: Fault, ledger: &Mutex<Ledger>) {
        let pause = |low: u64, high: u64| std::thread::sleep(Duration::from_millis(fastrand::u64(low..high)));
        match fault {
            Fault::KillWorker => {
                let slot = fastrand::usize(..self.fleet.workers.len());
                let (delay, proc) = &mut self.fleet.workers[slot];
                proc.take().expect("the worker runs").kill();
                pause(0, 2000);
                *proc = Some(self.fleet.stack.worker(*delay));
            }
            Fault::KillBackend => {
                let slot = fastrand::usize(..self.fleet.backends.len());
                let doomed = self.fleet.backends[slot].take().expect("the backend runs");
                ledger.lock().unwrap().backend_kills.push((doomed.address.clone(), Instant::now()));
                doomed.kill();
                pause(0, 2000);
                let proc = self.fleet.stack.serve(&[]);
                self.fleet.addresses.write().unwrap()[slot] = proc.address.clone();
                self.fleet.backends[slot] = Some(proc);
            }
            Fault::RedisRestart => {
                self.redis.restart_gracefully();
                self.redis_proxy.retarget(self.redis.port);
            }
            Fault::RedisCrash => {
                self.redis.crash_and_restart();
                self.redis_proxy.retarget(self.redis.port);
                ledger.lock().unwrap().wipes.lock().unwrap().push(Instant::now());
            }
            Fault::RedisDataLoss => {
                self.redis.restart_empty();
                self.redis_proxy.retarget(self.redis.port);
                ledger.lock().unwrap().wipes.lock().unwrap().push(Instant::now());
            }
            Fault::RabbitRestart => {
                self.rabbit.restart_after("TERM");
                self.rabbit_proxy.retarget(self.rabbit.port);
            }
            Fault::RabbitCrash => {
                self.rabbit.restart_after("KILL");
                self.rabbit_proxy.retarget(self.rabbit.port);
            }
            Fault::CutRedis | Fault::CutRabbit => {
                let proxy = if fault == Fault::CutRedis { &self.redis_proxy } else { &self.rabbit_proxy };
                proxy.cut();
                pause(500, 3000);
                proxy.restore();
            }
            Fault::Latency | Fault::Loss => {
                let latency = fastrand::u64(20..150);
                for proxy in [&self.redis_proxy, &self.rabbit_proxy] {
                    match fault {
                        Fault::Latency => proxy.set_latency(latency),
                        _ => proxy.set_loss(30),
                    }
                }
                pause(2000, 5000);
                self.redis_proxy.restore();
                self.rabbit_proxy.restore();
            }
        }
    }
}

/// Uploads a small PNG with `?wait=` until one comes back done; returns how long that took.
/// Each try is a new upload (a `?wait=` answered with an error is not sent again).
fn probe(backends: &Addresses, input: &Input, ledger: &Mutex<Ledger>) -> Duration {
    let started = Instant::now();
    for attempt in 0.. {
        assert!(started.elapsed() < Duration::from_secs(120), "the stack did not recover in 120 s");
        let key = random_name("probe");
        let by = backends.read().unwrap()[attempt % backends.read().unwrap().len()].clone();
        if let Ok(Upload::Finished { id, png }) = Backend::new(&by).upload_once(&input.bytes, "wait=30", &key)
        {
            let elapsed = started.elapsed();
            let id = id.expect("the job id of a ?wait= answer").to_string();
            let outcome = match &input.expected {
                Expected::Pixels(pixels) if decode_png(&png) == **pixels => Outcome::Exact,
                _ => Outcome::Broken(format!("probe job {id}: the result differs from dsobel process")),
            };
            ledger.lock().unwrap().accepted.push(Accepted { id, key, outcome, by, at: Instant::now() });
            return elapsed;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    unreachable!()
}

/// How many times each job was finished ("job done" or "job failed" log lines), over every
/// process's log.
fn finishes_per_job(log_dir: &Path) -> HashMap<String, u32> {
    let mut finishes = HashMap::new();
    for entry in std::fs::read_dir(log_dir).expect("the log folder") {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if event["fields"]["message"] != "job done" && event["fields"]["message"] != "job failed" {
                continue;
            }
            let id = event["fields"]["job_id"].as_str().or_else(|| event["span"]["job_id"].as_str());
            if let Some(id) = id {
                *finishes.entry(id.to_owned()).or_insert(0) += 1;
            }
        }
    }
    finishes
}

/// Whether the backend that accepted `job` was killed after it accepted the job, and the
/// store lost its data within the takeover window after that kill (before another replica
/// could see the dead one's heartbeat expire and take its jobs: 5 s, doubled for margin).
fn lost_with_its_backend(job: &Accepted, ledger: &Ledger) -> bool {
    let wipes = ledger.wipes.lock().unwrap();
    ledger.backend_kills.iter().any(|(address, killed)| {
        *address == job.by
            && *killed >= job.at
            && wipes.iter().any(|wipe| *wipe >= *killed && *wipe <= *killed + Duration::from_secs(10))
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn under_random_faults_every_accepted_job_ends_exact_or_failed_with_a_reason() {
    let seed = std::env::var("DSOBEL_NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    fastrand::seed(seed);
    let run_for = Duration::from_secs(
        std::env::var("DSOBEL_NEMESIS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(45),
    );
    eprintln!("nemesis: seed {seed}, faults for {run_for:?}");

    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let rabbit = OwnRabbit::start(&dir.path().join("rabbitmq"));
    std::fs::create_dir_all(dir.path().join("redis")).unwrap();
    let redis = OwnRedis::start(Some(&dir.path().join("redis")));
    let redis_proxy = Proxy::start(redis.port);
    let rabbit_proxy = Proxy::start(rabbit.port);
    let servers = Servers {
        amqp: format!("amqp://guest:guest@127.0.0.1:{}/%2f", rabbit_proxy.port),
        redis: format!("redis://127.0.0.1:{}/", redis_proxy.port),
    };
    let mut stack = Stack::new(&servers);
    stack.log_dir = Some(logs.clone());
    // A job the store lost part of fails after twice the work TTL: short here, so that the
    // run can wait for it.
    stack.env.push(("DSOBEL_WORK_TTL_SECS".into(), "30".into()));
    let backends: Vec<Option<Proc>> = (0..2).map(|_| Some(stack.serve(&[]))).collect();
    let addresses: Addresses =
        Arc::new(RwLock::new(backends.iter().map(|b| b.as_ref().unwrap().address.clone()).collect()));
    let workers = [0u64, 20, 60].into_iter().map(|delay| (delay, Some(stack.worker(delay)))).collect();
    let fleet = Fleet { stack, backends, addresses: addresses.clone(), workers };
    let mut world = World { fleet, redis, rabbit, redis_proxy, rabbit_proxy };

    let inputs = Arc::new(inputs());
    let probe_input = Input {
        name: "probe png".into(),
        bytes: Arc::new(test_png(160, 120, 3).0),
        query: "",
        expected: Expected::Pixels(Arc::new(processed_locally(&test_png(160, 120, 3).0).unwrap())),
    };
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (backends, inputs, ledger, stop) =
                (addresses.clone(), inputs.clone(), ledger.clone(), stop.clone());
            std::thread::spawn(move || client(backends, inputs, ledger, stop))
        })
        .collect();

    // Every kind of fault once, in random order, then at random until the time is up; SIGKILL
    // to RabbitMQ only once the node has run for a minute.
    let started = Instant::now();
    let mut schedule: Vec<Fault> = Fault::ALL.iter().copied().filter(|f| *f != Fault::RabbitCrash).collect();
    fastrand::shuffle(&mut schedule);
    let mut injected: Vec<Fault> = Vec::new();
    while injected.len() < schedule.len() || started.elapsed() < run_for {
        let mut fault = schedule
            .get(injected.len())
            .copied()
            .unwrap_or_else(|| Fault::ALL[fastrand::usize(..Fault::ALL.len())]);
        if fault == Fault::RabbitCrash && world.rabbit.born.elapsed() < Duration::from_secs(60) {
            fault = Fault::RabbitRestart;
        }
        eprintln!("nemesis: {:>5.1} s  {}", started.elapsed().as_secs_f64(), fault.name());
        world.inject(fault, &ledger);
        let recovery = probe(&addresses, &probe_input, &ledger);
        ledger.lock().unwrap().recoveries.entry(fault.name()).or_default().push(recovery);
        injected.push(fault);
        if matches!(fault, Fault::RedisDataLoss | Fault::RedisCrash) {
            std::thread::sleep(Duration::from_secs(2));
        }
        std::thread::sleep(Duration::from_millis(fastrand::u64(200..1500)));
    }
    let faults_over = Instant::now();
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("a client thread");
    }

    // The reckoning.
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    let mut problems: Vec<String> = ledger.unexpected.clone();
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    let mut seen_ids: HashMap<&str, &str> = HashMap::new();
    let finishes = finishes_per_job(&logs);
    for job in &ledger.accepted {
        if let Some(other) = seen_ids.insert(&job.id, &job.key) {
            problems.push(format!("job {} was given to two uploads ({other} and {})", job.id, job.key));
        }
        let outcome = match job.outcome {
            // Lost before it finished, with its record: only its own backend could still know
            // it, and only if that backend lived on.
            Outcome::UnknownAfterDataLoss { seen_done: false }
                if !finishes.contains_key(&job.id) && !lost_with_its_backend(job, &ledger) =>
            {
                Outcome::Broken(format!(
                    "job {} was lost with the store's data before it finished: it reads 404",
                    job.id
                ))
            }
            Outcome::UnknownAfterDataLoss { seen_done: false } if !finishes.contains_key(&job.id) => {
                Outcome::LostWithItsBackend
            }
            _ => job.outcome.clone(),
        };
        *outcomes.entry(outcome.label()).or_default() += 1;
        match &outcome {
            Outcome::Broken(what) => problems.push(what.clone()),
            Outcome::Stuck => problems.push(format!("job {} is stuck: not finished in 180 s", job.id)),
            _ => {}
        }
    }
    let wiped = !ledger.wipes.lock().unwrap().is_empty();
    for (key, first, again) in &ledger.replays {
        if first != again && !wiped {
            problems.push(format!("the upload with key {key} made two jobs: {first} and {again}"));
        }
    }
    let replays_same = ledger.replays.iter().filter(|(_, a, b)| a == b).count();
    for (id, count) in &finishes {
        if *count > 1 {
            problems.push(format!("job {id} was finished {count} times"));
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let keys = world.redis.keys_with_ttl();
    let without_ttl: Vec<&(String, i64)> = keys.iter().filter(|(_, ttl)| *ttl == -1).collect();
    if !without_ttl.is_empty() {
        problems.push(format!("keys without a TTL: {without_ttl:?}"));
    }

    // The report.
    let mut report = format!(
        "nemesis report (seed {seed}): {:.0} s of faults, {} faults injected, {} uploads accepted, {} resends on no answer/503/429\n",
        faults_over.duration_since(started).as_secs_f64(),
        injected.len(),
        ledger.accepted.len(),
        ledger.resends,
    );
    report += "  fault                        count  recovery p50   max\n";
    for (name, times) in &ledger.recoveries {
        let mut times = times.clone();
        times.sort();
        report += &format!(
            "  {name:<28} {:>5}  {:>9.2} s  {:>5.2} s\n",
            times.len(),
            percentile(&times, 0.5).as_secs_f64(),
            times.last().unwrap().as_secs_f64()
        );
    }
    report += "  outcomes of the accepted uploads:\n";
    for (outcome, count) in &outcomes {
        report += &format!("    {outcome:<28} {count}\n");
    }
    report += &format!(
        "  resends with the same key: {} ({} the same job); jobs finished more than once: {}; keys in Redis: {}, without TTL: {}\n",
        ledger.replays.len(),
        replays_same,
        finishes.values().filter(|c| **c > 1).count(),
        keys.len(),
        without_ttl.len()
    );
    eprintln!("{report}");
    let distinct: HashSet<&str> = ledger.accepted.iter().map(|a| a.id.as_str()).collect();
    assert!(distinct.len() >= 10, "too little load got through to judge: {report}");
    if !problems.is_empty() {
        let kept = dir.keep();
        panic!(
            "{} problems (the processes' logs are in {}):\n{}\n{report}",
            problems.len(),
            kept.display(),
            problems.join("\n")
        );
    }
}
