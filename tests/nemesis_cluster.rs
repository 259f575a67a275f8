//! The randomized fault test on a Redis Cluster: the nemesis's steady mixed load and its
//! reckoning (`tests/nemesis_kit`), with the faults a sharded store has.
//!
//! The store is the test's own Redis Cluster of three masters, each with a replica, on spare
//! loopback ports ([`OwnCluster`]), every node behind a proxy of the test's that it announces
//! as its address (`cluster-announce-port`), so that the service, and the replicas' links to
//! their masters, reach each node only through its proxy while the cluster bus stays direct.
//! Two backends and three workers of the built binary are given the seed list; the work queue
//! is a queue of the test's own on the shared RabbitMQ. The faults, each at least once and
//! then at random:
//!
//! - a master killed with SIGKILL: its replica takes over (the cluster's node timeout is 2 s),
//!   and after 0.5–3 s the killed node is started again, empty, and rejoins as the new
//!   master's replica. Replication is asynchronous, so the last writes the master took may be
//!   lost with it: the test counts the kill as a loss of data, as the single-Redis nemesis
//!   counts a crash;
//! - 500 slots moved from one master to another under load with `redis-cli --cluster
//!   reshard`, key by key (`MIGRATE`), as an operator does;
//! - every connection to one shard's master cut for 0.5–3 s (its proxy closes them and refuses
//!   new ones: the shard is unreachable for clients while the cluster sees it healthy);
//! - 20–150 ms of latency, or stalls of 200–600 ms on 3 % of the chunks, on one shard's master
//!   for 2–5 s;
//! - a worker, or a backend, killed with SIGKILL and started again after up to 2 s.
//!
//! After each fault the test measures recovery (an upload with `?wait=` until one gets its
//! PNG) and, before the next fault, waits until the cluster is whole again (every slot served,
//! every replica in sync). At the end every `202` must have become `done` with the pixels of
//! `dsobel process`, or `failed` with a code and message the test allows (`corrupt-image` for
//! the damaged JPEG; `job-lost` or `input-expired` for a job in flight when a master was
//! killed); none lost, none stuck, none finished twice, every key with a TTL.
//!
//! `DSOBEL_NEMESIS_SECS` (default 45) and `DSOBEL_NEMESIS_SEED` as for the nemesis:
//!
//! ```text
//! DSOBEL_NEMESIS_SECS=240 cargo test --test nemesis_cluster -- --nocapture
//! ```

mod nemesis_kit;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dsobel_testkit::harness::amqp_url;
use dsobel_testkit::{Need, OwnCluster, Servers, Stack, Test};
use nemesis_kit::{
    Fleet, Ledger, Load, Run, pause, percentile, probe, probe_input, reckon, seed_and_duration,
};

fn main() -> std::process::ExitCode {
    dsobel_testkit::register_binary(env!("CARGO_BIN_EXE_dsobel"));
    dsobel_testkit::run(vec![Test::new(
        "on_a_redis_cluster_under_random_faults_every_accepted_job_ends_exact_or_failed_with_a_reason",
        &[Need::RabbitMq, Need::REDIS_SERVER, Need::REDIS_CLI, Need::JPEGTRAN],
        on_a_redis_cluster_under_random_faults_every_accepted_job_ends_exact_or_failed_with_a_reason,
    )])
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    KillMaster,
    Reshard,
    CutShard,
    SlowShard,
    StallShard,
    KillWorker,
    KillBackend,
}

impl Fault {
    const ALL: [Fault; 7] = [
        Fault::KillMaster,
        Fault::Reshard,
        Fault::CutShard,
        Fault::SlowShard,
        Fault::StallShard,
        Fault::KillWorker,
        Fault::KillBackend,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::KillMaster => "master SIGKILL, failover",
            Fault::Reshard => "500 slots resharded",
            Fault::CutShard => "one shard's connections cut",
            Fault::SlowShard => "one shard 20-150 ms slower",
            Fault::StallShard => "one shard 3 % stalls",
            Fault::KillWorker => "worker SIGKILL",
            Fault::KillBackend => "backend SIGKILL",
        }
    }
}

/// Everything a fault can touch, and the cluster's own timings.
struct World {
    fleet: Fleet,
    cluster: OwnCluster,
    /// A killed master, to start again once the probe went through.
    down: Option<usize>,
    /// Kill → its replica serves, per kill.
    failovers: Vec<Duration>,
    /// Restart of a killed master → the cluster whole again, its copy in sync.
    rejoins: Vec<Duration>,
    /// How long each `redis-cli --cluster reshard` of 500 slots took.
    reshards: Vec<Duration>,
}

impl World {
    /// A master that serves slots now, at random.
    fn some_master(&self) -> usize {
        let masters = self.cluster.masters();
        masters[fastrand::usize(..masters.len())].0
    }

    /// Node `index` for the log: its index, its port and the port it announces.
    fn node(&self, index: usize) -> String {
        let node = &self.cluster.nodes[index];
        format!("node {index} (port {}, announced {})", node.port, node.announced_port())
    }

    fn inject(&mut self, fault: Fault, ledger: &Mutex<Ledger>) {
        match fault {
            Fault::KillMaster => {
                let master = self.some_master();
                let replicas = self.cluster.replicas_of(master);
                assert!(!replicas.is_empty(), "the master on node {master} has no replica");
                eprintln!("  killing {}", self.node(master));
                let killed = Instant::now();
                self.cluster.kill(master);
                // Writes acknowledged by the master but not yet copied to its replica are gone.
                ledger.lock().unwrap().wiped();
                dsobel_testkit::wait_for(Duration::from_secs(60), "a replica to take over", || {
                    replicas.iter().any(|&replica| self.cluster.serves(replica))
                });
                self.failovers.push(killed.elapsed());
                self.down = Some(master);
            }
            Fault::Reshard => {
                let mut masters = self.cluster.masters();
                // From the master with the most slots, so that it always has 500 to give.
                masters.sort_by_key(|&(_, slots)| std::cmp::Reverse(slots));
                let from = masters[0].0;
                let to = masters[1 + fastrand::usize(..masters.len() - 1)].0;
                eprintln!("  from {} to {}", self.node(from), self.node(to));
                let started = Instant::now();
                self.cluster.reshard(from, to, 500);
                self.reshards.push(started.elapsed());
            }
            Fault::CutShard => {
                let master = self.some_master();
                eprintln!("  {}", self.node(master));
                let proxy = self.cluster.nodes[master].proxy.as_ref().expect("a proxied node");
                proxy.cut();
                pause(500, 3000);
                proxy.restore();
            }
            Fault::SlowShard | Fault::StallShard => {
                let master = self.some_master();
                eprintln!("  {}", self.node(master));
                let proxy = self.cluster.nodes[master].proxy.as_ref().expect("a proxied node");
                match fault {
                    Fault::SlowShard => proxy.set_latency(fastrand::u64(20..150)),
                    _ => proxy.set_loss(30),
                }
                pause(2000, 5000);
                proxy.restore();
            }
            Fault::KillWorker => self.fleet.kill_worker(),
            Fault::KillBackend => self.fleet.kill_backend(),
        }
    }

    /// Starts a killed master again (after 0.5–3 s) and waits until the cluster is whole.
    fn settle(&mut self) {
        if let Some(node) = self.down.take() {
            pause(500, 3000);
            let restarted = Instant::now();
            self.cluster.restart(node);
            self.cluster.wait_whole();
            self.rejoins.push(restarted.elapsed());
        } else {
            self.cluster.wait_whole();
        }
    }
}

/// `label: p50 x s, max y s (n)`, or nothing when `times` is empty.
fn timing(label: &str, times: &[Duration]) -> String {
    let mut times = times.to_vec();
    times.sort();
    match times.last() {
        Some(max) => format!(
            "  {label}: p50 {:.2} s, max {:.2} s ({})\n",
            percentile(&times, 0.5).as_secs_f64(),
            max.as_secs_f64(),
            times.len()
        ),
        None => String::new(),
    }
}

fn on_a_redis_cluster_under_random_faults_every_accepted_job_ends_exact_or_failed_with_a_reason() {
    let (seed, run_for) = seed_and_duration("nemesis on a Redis Cluster");
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let cluster = OwnCluster::start(3, 1, true, 2000);
    let servers = Servers { amqp: amqp_url(), redis: cluster.seeds() };
    let mut stack = Stack::new(&servers);
    stack.log_dir = Some(logs.clone());
    // A job the store lost part of fails after twice the work TTL: short here, so that the
    // run can wait for it.
    stack.env.push(("DSOBEL_WORK_TTL_SECS".into(), "30".into()));
    let fleet = Fleet::start(stack, 2, &[0, 20, 60]);
    let addresses = fleet.addresses.clone();
    let mut world = World {
        fleet,
        cluster,
        down: None,
        failovers: Vec::new(),
        rejoins: Vec::new(),
        reshards: Vec::new(),
    };

    let probe_input = probe_input();
    let load = Load::start(&addresses, 4);
    let ledger = load.ledger.clone();

    // Every kind of fault once, in random order, then at random until the time is up.
    let started = Instant::now();
    let mut schedule = Fault::ALL.to_vec();
    fastrand::shuffle(&mut schedule);
    let mut injected: Vec<Fault> = Vec::new();
    while injected.len() < schedule.len() || started.elapsed() < run_for {
        let fault = schedule
            .get(injected.len())
            .copied()
            .unwrap_or_else(|| Fault::ALL[fastrand::usize(..Fault::ALL.len())]);
        eprintln!("nemesis on a Redis Cluster: {:>5.1} s  {}", started.elapsed().as_secs_f64(), fault.name());
        world.inject(fault, &ledger);
        let recovery = probe(&addresses, &probe_input, &ledger);
        ledger.lock().unwrap().recoveries.entry(fault.name()).or_default().push(recovery);
        injected.push(fault);
        world.settle();
        pause(200, 1500);
    }
    let faults_for = started.elapsed();
    drop(ledger);
    let ledger = load.finish();

    // The reckoning, with every key the store holds once the last jobs settled.
    std::thread::sleep(Duration::from_secs(1));
    let keys = world.cluster.client().keys_with_ttl();
    let mut extra = timing("master killed → its replica serves", &world.failovers);
    extra += &timing("killed master started again → rejoined as a replica, in sync", &world.rejoins);
    extra += &timing("reshard of 500 slots", &world.reshards);
    let mut slots: BTreeMap<u16, usize> = BTreeMap::new();
    for (node, count) in world.cluster.masters() {
        slots.insert(world.cluster.nodes[node].port, count);
    }
    let _ = writeln!(extra, "  slots per master at the end (by port): {slots:?}");
    let run = Run {
        name: "nemesis on a Redis Cluster",
        seed,
        faults_for,
        injected: injected.len(),
        extra,
        logs: &logs,
        keys,
        backend_kills: world.fleet.backend_kills.clone(),
    };
    reckon(ledger, run, dir);
}
