//! What the randomized fault tests share (`tests/nemesis.rs` on one Redis, and
//! `tests/nemesis_cluster.rs` on a Redis Cluster): the mixed images and what each should
//! become, the clients that post them and follow every job to its end, the probe that times a
//! recovery, the fleet of backends and workers that faults kill and start again, and the
//! reckoning of every upload that was answered `202` with its report.
//!
//! A test builds its stack, starts a [`Load`], injects its own faults one after another (each
//! followed by a [`probe`]), then hands the [`Ledger`] to [`reckon`], which fails the test on
//! any job lost, stuck, finished twice or ended in a way the test does not allow.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dsobel_client::{JobId, JobResult, Upload};
use dsobel_testkit::api::Backend;
use dsobel_testkit::images::restart_jpeg;
use dsobel_testkit::process::processed_locally;
use dsobel_testkit::{Proc, Stack, decode_png, fixture, random_name, test_png};

/// The backends' addresses now: a backend killed and started again may come back on another
/// port.
pub type Addresses = Arc<RwLock<Vec<String>>>;

/// The backend in `slot` (modulo their number) as it is now.
pub fn backend_at(backends: &Addresses, slot: usize) -> Backend {
    Backend::new(&address_at(backends, slot))
}

/// The random seed (`DSOBEL_NEMESIS_SEED`, default random) and how long faults are injected
/// (`DSOBEL_NEMESIS_SECS`, default 45 s); seeds the random numbers and prints both.
pub fn seed_and_duration(test: &str) -> (u64, Duration) {
    let seed = std::env::var("DSOBEL_NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    fastrand::seed(seed);
    let run_for = Duration::from_secs(
        std::env::var("DSOBEL_NEMESIS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(45),
    );
    eprintln!("{test}: seed {seed}, faults for {run_for:?}");
    (seed, run_for)
}

/// What an image should become.
#[derive(Clone)]
pub enum Expected {
    /// `done`, with these pixels (what `dsobel process` gives).
    Pixels(Arc<(u32, u32, Vec<u8>)>),
    /// `failed` with this code.
    Failure(&'static str),
}

/// One image of the mixed load.
#[derive(Clone)]
pub struct Input {
    /// What it is, for messages.
    pub name: String,
    /// The file.
    pub bytes: Arc<Vec<u8>>,
    /// The upload's options.
    pub query: &'static str,
    /// What it should become.
    pub expected: Expected,
}

/// The mixed images: JPEGs with and without restart markers (one large enough that its
/// strips are read in pieces), progressive, PNGs (one over 2 MiB, stored as it arrives), one
/// damaged JPEG, automatic and explicit strip counts.
pub fn inputs() -> Vec<Input> {
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

/// The small PNG the recovery probe posts.
pub fn probe_input() -> Input {
    let png = test_png(160, 120, 3).0;
    let pixels = processed_locally(&png).expect("the probe image processes");
    Input {
        name: "probe png".into(),
        bytes: Arc::new(png),
        query: "",
        expected: Expected::Pixels(Arc::new(pixels)),
    }
}

/// What became of one upload that was answered `202` (or, with `?wait=`, its PNG).
pub struct Accepted {
    /// The job id.
    pub id: String,
    /// Its `Idempotency-Key`.
    pub key: String,
    /// How it ended.
    pub outcome: Outcome,
    /// From the `202` to the end the client saw (polling every 100 ms), for a followed job
    /// that ended as allowed.
    pub latency: Option<Duration>,
    /// The address of the backend that accepted it.
    pub by: String,
    /// When it was accepted.
    pub at: Instant,
}

/// How a followed job ended, as its client saw it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `done`, with exactly the expected pixels.
    Exact,
    /// `failed` with a code and message the test allows for this job.
    FailedAsAllowed(String),
    /// Unknown (`404`) after the store lost data: right if the job had ended (its record went
    /// with the data), which the client saw or the processes' logs show; else lost.
    UnknownAfterDataLoss {
        /// Whether the client saw it end before it read `404`.
        seen_done: bool,
    },
    /// Unknown (`404`) before it finished: the backend that accepted it was killed, and the
    /// store lost its data before another replica could take the job over (a dead backend's
    /// heartbeat lives 5 s). Nothing anywhere knows the job any more: a double fault no
    /// process survives without a durable log elsewhere (the client still has its file).
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
pub struct Ledger {
    /// Every upload answered `202`, with its end.
    pub accepted: Vec<Accepted>,
    /// Uploads sent again with the same key after their `202`: (key, first id, id the resend got).
    pub replays: Vec<(String, String, String)>,
    /// Answers no upload should get (status, body), as evidence.
    pub unexpected: Vec<String>,
    /// Resends of one upload because of no answer, 503 or 429.
    pub resends: u64,
    /// When the store lost data, all or its last writes (shared with the clients, which judge
    /// `job-lost` and `input-expired` by it).
    pub wipes: Arc<Mutex<Vec<Instant>>>,
    /// Fault kind → recovery times.
    pub recoveries: BTreeMap<&'static str, Vec<Duration>>,
}

impl Ledger {
    /// Records that the store may have lost data now.
    pub fn wiped(&self) {
        self.wipes.lock().unwrap().push(Instant::now());
    }
}

/// The stack's processes, which faults kill and start again.
pub struct Fleet {
    /// The settings every process shares.
    pub stack: Stack,
    /// The backends (`None` for a moment while one is down).
    pub backends: Vec<Option<Proc>>,
    /// Their addresses now, shared with the clients.
    pub addresses: Addresses,
    /// Each worker's fault-drill delay and process.
    pub workers: Vec<(u64, Option<Proc>)>,
    /// The backends killed: (address, when).
    pub backend_kills: Vec<(String, Instant)>,
}

impl Fleet {
    /// `backends` backends and a worker for each of `worker_delays` (its fault-drill pause per
    /// task), all on `stack`.
    pub fn start(stack: Stack, backends: usize, worker_delays: &[u64]) -> Fleet {
        let backends: Vec<Option<Proc>> = (0..backends).map(|_| Some(stack.serve(&[]))).collect();
        let addresses: Addresses =
            Arc::new(RwLock::new(backends.iter().map(|b| b.as_ref().unwrap().address.clone()).collect()));
        let workers = worker_delays.iter().map(|&delay| (delay, Some(stack.worker(delay)))).collect();
        Fleet { stack, backends, addresses, workers, backend_kills: Vec::new() }
    }

    /// A worker at random killed with SIGKILL, started again after up to 2 s.
    pub fn kill_worker(&mut self) {
        let slot = fastrand::usize(..self.workers.len());
        let (delay, proc) = &mut self.workers[slot];
        proc.take().expect("the worker runs").kill();
        pause(0, 2000);
        *proc = Some(self.stack.worker(*delay));
    }

    /// A backend at random killed with SIGKILL, started again after up to 2 s (on another
    /// port, which the clients learn).
    pub fn kill_backend(&mut self) {
        let slot = fastrand::usize(..self.backends.len());
        let doomed = self.backends[slot].take().expect("the backend runs");
        self.backend_kills.push((doomed.address.clone(), Instant::now()));
        doomed.kill();
        pause(0, 2000);
        let proc = self.stack.serve(&[]);
        self.addresses.write().unwrap()[slot] = proc.address.clone();
        self.backends[slot] = Some(proc);
    }
}

/// A random pause of `low..high` milliseconds: how long a fault lasts, not a synchronisation.
pub fn pause(low: u64, high: u64) {
    std::thread::sleep(Duration::from_millis(fastrand::u64(low..high)));
}

/// The address of the backend in `slot` (modulo their number) as it is now.
fn address_at(backends: &Addresses, slot: usize) -> String {
    let addresses = backends.read().unwrap();
    addresses[slot % addresses.len()].clone()
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
        let address = address_at(backends, attempt);
        attempt += 1;
        match Backend::new(&address).upload_once(&input.bytes, query, key) {
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
        pause(100, 600);
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
        let latency =
            matches!(outcome, Outcome::Exact | Outcome::FailedAsAllowed(_)).then(|| accepted_at.elapsed());
        ledger.lock().unwrap().accepted.push(Accepted { id, key, outcome, latency, by, at: accepted_at });
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

/// The steady mixed load: `clients` threads posting [`inputs`] to the backends and following
/// every job, into one [`Ledger`].
pub struct Load {
    /// What the run records.
    pub ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` clients against `backends`.
    pub fn start(backends: &Addresses, clients: usize) -> Load {
        let inputs = Arc::new(inputs());
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|_| {
                let (backends, inputs, ledger, stop) =
                    (backends.clone(), inputs.clone(), ledger.clone(), stop.clone());
                std::thread::spawn(move || client(backends, inputs, ledger, stop))
            })
            .collect();
        Load { ledger, stop, clients }
    }

    /// Stops the clients once each has followed its last job to its end; the ledger.
    pub fn finish(self) -> Ledger {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.join().expect("a client thread");
        }
        Arc::try_unwrap(self.ledger).ok().expect("the clients are gone").into_inner().unwrap()
    }
}

/// Uploads a small PNG with `?wait=` until one comes back done; returns how long that took.
/// Each try is a new upload (a `?wait=` answered with an error is not sent again).
pub fn probe(backends: &Addresses, input: &Input, ledger: &Mutex<Ledger>) -> Duration {
    let started = Instant::now();
    for attempt in 0.. {
        assert!(started.elapsed() < Duration::from_secs(120), "the stack did not recover in 120 s");
        let key = random_name("probe");
        let by = address_at(backends, attempt);
        if let Ok(Upload::Finished { id, png }) = Backend::new(&by).upload_once(&input.bytes, "wait=30", &key)
        {
            let elapsed = started.elapsed();
            let id = id.expect("the job id of a ?wait= answer").to_string();
            let outcome = match &input.expected {
                Expected::Pixels(pixels) if decode_png(&png) == **pixels => Outcome::Exact,
                _ => Outcome::Broken(format!("probe job {id}: the result differs from dsobel process")),
            };
            let at = Instant::now();
            ledger.lock().unwrap().accepted.push(Accepted { id, key, outcome, latency: None, by, at });
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

/// The value at fraction `p` of `sorted` (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// What the run did besides its ledger, for the reckoning and the report.
pub struct Run<'a> {
    /// The test's name, heading the report.
    pub name: &'a str,
    /// The random seed.
    pub seed: u64,
    /// How long faults were injected.
    pub faults_for: Duration,
    /// How many faults were injected.
    pub injected: usize,
    /// Lines of the test's own to add to the report (each ending with a newline).
    pub extra: String,
    /// Where the processes' logs are.
    pub logs: &'a Path,
    /// Every key left in the store, with its TTL in seconds (-1: none).
    pub keys: Vec<(String, i64)>,
    /// The backends killed: (address, when) ([`Fleet::backend_kills`]).
    pub backend_kills: Vec<(String, Instant)>,
}

/// Whether the backend that accepted `job` was killed after it accepted the job, and the
/// store lost its data within the takeover window after that kill (before another replica
/// could see the dead one's heartbeat expire and take its jobs: 5 s, doubled for margin).
fn lost_with_its_backend(job: &Accepted, ledger: &Ledger, kills: &[(String, Instant)]) -> bool {
    let wipes = ledger.wipes.lock().unwrap();
    kills.iter().any(|(address, killed)| {
        *address == job.by
            && *killed >= job.at
            && wipes.iter().any(|wipe| *wipe >= *killed && *wipe <= *killed + Duration::from_secs(10))
    })
}

/// The reckoning: every accepted upload must have ended as allowed, none finished twice, a
/// resend with its key must have got the same job (unless the store lost data), and every key
/// must carry a TTL. Prints the report; panics with every problem found, keeping `dir` (the
/// processes' logs) for a look.
pub fn reckon(ledger: Ledger, run: Run<'_>, dir: tempfile::TempDir) {
    let mut problems: Vec<String> = ledger.unexpected.clone();
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    let mut seen_ids: HashMap<&str, &str> = HashMap::new();
    let finishes = finishes_per_job(run.logs);
    for job in &ledger.accepted {
        if let Some(other) = seen_ids.insert(&job.id, &job.key) {
            problems.push(format!("job {} was given to two uploads ({other} and {})", job.id, job.key));
        }
        let outcome = match job.outcome {
            // Lost before it finished, with its record: only its own backend could still know
            // it, and only if that backend lived on.
            Outcome::UnknownAfterDataLoss { seen_done: false }
                if !finishes.contains_key(&job.id)
                    && lost_with_its_backend(job, &ledger, &run.backend_kills) =>
            {
                Outcome::LostWithItsBackend
            }
            Outcome::UnknownAfterDataLoss { seen_done: false } if !finishes.contains_key(&job.id) => {
                Outcome::Broken(format!(
                    "job {} was lost with the store's data before it finished: it reads 404",
                    job.id
                ))
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
    let without_ttl: Vec<&(String, i64)> = run.keys.iter().filter(|(_, ttl)| *ttl == -1).collect();
    if !without_ttl.is_empty() {
        problems.push(format!("keys without a TTL: {without_ttl:?}"));
    }

    let mut report = format!(
        "{} report (seed {}): {:.0} s of faults, {} faults injected, {} uploads accepted, {} resends on no answer/503/429\n",
        run.name,
        run.seed,
        run.faults_for.as_secs_f64(),
        run.injected,
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
    report += &run.extra;
    report += "  outcomes of the accepted uploads:\n";
    for (outcome, count) in &outcomes {
        report += &format!("    {outcome:<28} {count}\n");
    }
    let mut latencies: Vec<Duration> = ledger.accepted.iter().filter_map(|a| a.latency).collect();
    latencies.sort();
    if !latencies.is_empty() {
        report += &format!(
            "  latency from 202 to the end the client saw ({} followed jobs): p50 {:.2} s, p99 {:.2} s, max {:.2} s\n",
            latencies.len(),
            percentile(&latencies, 0.5).as_secs_f64(),
            percentile(&latencies, 0.99).as_secs_f64(),
            latencies.last().unwrap().as_secs_f64()
        );
    }
    report += &format!(
        "  resends with the same key: {} ({} the same job); jobs finished more than once: {}; keys in Redis: {}, without TTL: {}\n",
        ledger.replays.len(),
        replays_same,
        finishes.values().filter(|c| **c > 1).count(),
        run.keys.len(),
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
