//! A Redis Cluster of a test's own: masters and their replicas as `redis-server` processes on
//! random loopback ports, never the shared servers, stopped when dropped.
//!
//! The cluster is formed by hand, as `redis-cli --cluster create` would (slots split evenly
//! over the masters, distinct configuration epochs, `CLUSTER MEET`, `CLUSTER REPLICATE`), so
//! that any number of masters works, one included, and node `i` of shard `s` is known: the
//! masters are nodes `0..masters`, the replicas of master `m` follow. Optionally every node
//! sits behind a [`Proxy`] of its own and announces the proxy's port (`cluster-announce-port`,
//! with the bus port kept direct): every client connection to the node — the service's, a
//! replica's replication link — goes through the proxy, so a test can cut, delay or stall one
//! shard while the cluster bus, and so the cluster's view of its own health, is untouched.
//!
//! The faults a test plays: a node killed with SIGKILL and started again on its
//! configuration (it rejoins, as a replica when its replica took over), slots moved with
//! `redis-cli --cluster reshard` (the way an operator does it, key by key with `MIGRATE`), and
//! the proxy's cuts, latency and stalls. Nothing is persisted (no RDB, no AOF):
//! `cluster-require-full-coverage no` lets the other shards serve while one has no master.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::find_program;
use crate::process::random_name;
use crate::servers::{Proxy, RedisClient, Reply};
use crate::wait::{poll_until, wait_for};

/// How long the cluster may take to form, or to become whole again after a fault.
const PATIENCE: Duration = Duration::from_secs(60);

/// One node of an [`OwnCluster`].
pub struct ClusterNode {
    /// The port the server listens on (its cluster bus on `port + 10000`).
    pub port: u16,
    /// The proxy in front of it, when the cluster was started with proxies.
    pub proxy: Option<Proxy>,
    config: PathBuf,
    child: Option<Child>,
}

impl ClusterNode {
    /// The port the node announces to clients and other nodes: its proxy's, or its own.
    pub fn announced_port(&self) -> u16 {
        self.proxy.as_ref().map_or(self.port, |proxy| proxy.port)
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A node as `CLUSTER NODES` shows it.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// Node id.
    pub id: String,
    /// The port it announces.
    pub port: u16,
    /// `master` or `slave`, with `myself`, `fail`, `fail?`, `handshake`, `noaddr`… as listed.
    pub flags: String,
    /// The id of its master (`-` for a master).
    pub master_id: String,
    /// How many slots it owns.
    pub slots: usize,
}

impl NodeView {
    /// Whether it is a master that owns slots and is not marked failed.
    pub fn is_serving_master(&self) -> bool {
        self.flags.contains("master") && !self.flags.contains("fail") && self.slots > 0
    }
}

/// A Redis Cluster of a test's own (a test that starts one needs [`crate::Need::REDIS_SERVER`]
/// and [`crate::Need::REDIS_CLI`]).
pub struct OwnCluster {
    /// The nodes: masters `0..masters`, then the replicas of each master in turn.
    pub nodes: Vec<ClusterNode>,
    masters: usize,
    dir: PathBuf,
}

impl OwnCluster {
    /// Starts `masters` masters, each with `replicas` replicas, every node behind a proxy of
    /// its own when `proxied`; `node_timeout_ms` is `cluster-node-timeout` (a failed master's
    /// replica takes over within about twice that). Returns once every node sees all slots
    /// served and every replica is in sync.
    pub fn start(masters: usize, replicas: usize, proxied: bool, node_timeout_ms: u64) -> OwnCluster {
        assert!(masters >= 1, "a cluster needs a master");
        let count = masters * (1 + replicas);
        for _ in 0..10 {
            let base = fastrand::u16(20_000..(29_000 - count as u16));
            let dir = std::env::temp_dir().join(random_name("dsobel-test-cluster"));
            std::fs::create_dir_all(&dir).expect("a folder for the cluster");
            let mut cluster = OwnCluster { nodes: Vec::new(), masters, dir };
            let started = (0..count).all(|i| {
                let port = base + i as u16;
                let proxy = proxied.then(|| Proxy::start(port));
                let node = cluster.configure(port, proxy, node_timeout_ms);
                cluster.nodes.push(node);
                cluster.boot(i)
            });
            if started {
                cluster.form(replicas);
                return cluster;
            }
            eprintln!("a cluster node could not start on the ports from {base}; trying others");
        }
        panic!("no Redis Cluster could be started");
    }

    fn configure(&self, port: u16, proxy: Option<Proxy>, node_timeout_ms: u64) -> ClusterNode {
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir).expect("a folder for the node");
        let mut config = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nlogfile {}\nsave \"\"\nappendonly no\n\
             cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout {node_timeout_ms}\n\
             cluster-require-full-coverage no\n",
            dir.display(),
            dir.join("redis.log").display()
        );
        if let Some(proxy) = &proxy {
            config += &format!(
                "cluster-announce-ip 127.0.0.1\ncluster-announce-port {}\ncluster-announce-bus-port {}\n",
                proxy.port,
                u32::from(port) + 10_000
            );
        }
        let path = dir.join("redis.conf");
        std::fs::write(&path, config).expect("write redis.conf");
        ClusterNode { port, proxy, config: path, child: None }
    }

    /// Starts node `index` on its configuration; whether it answers (not: its port was taken).
    fn boot(&mut self, index: usize) -> bool {
        let node = &mut self.nodes[index];
        let mut child = Command::new(find_program("redis-server").expect("redis-server is installed"))
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let client = RedisClient::local(node.port, None);
        let pid = format!("process_id:{}", child.id());
        let mut exited = false;
        let ours = poll_until(Duration::from_secs(20), || {
            exited = matches!(child.try_wait(), Ok(Some(_)));
            exited || client.try_command(&["INFO", "server"]).is_ok_and(|info| info.text().contains(&pid))
        });
        if ours && !exited {
            node.child = Some(child);
            return true;
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(node.config.with_file_name("redis.log")).unwrap_or_default();
        eprintln!(
            "redis-server on port {} did not start: {}",
            node.port,
            log.lines().last().unwrap_or("no log")
        );
        false
    }

    /// Slots, epochs, meetings and replication, then waits until the cluster is whole.
    fn form(&mut self, replicas: usize) {
        let per_master = 16384 / self.masters;
        for m in 0..self.masters {
            let first = m * per_master;
            let last = if m + 1 == self.masters { 16383 } else { first + per_master - 1 };
            let reply =
                self.direct(m).command(&["CLUSTER", "ADDSLOTSRANGE", &first.to_string(), &last.to_string()]);
            assert_eq!(reply, Reply::Status("OK".into()), "ADDSLOTSRANGE on node {m}");
        }
        for i in 0..self.nodes.len() {
            self.direct(i).command(&["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()]);
        }
        let first = self.nodes[0].port.to_string();
        for i in 1..self.nodes.len() {
            let reply = self.direct(i).command(&["CLUSTER", "MEET", "127.0.0.1", &first]);
            assert_eq!(reply, Reply::Status("OK".into()), "CLUSTER MEET from node {i}");
        }
        let count = self.nodes.len();
        wait_for(PATIENCE, "every node to know every other", || {
            (0..count).all(|i| {
                self.direct(i).try_command(&["CLUSTER", "INFO"]).is_ok_and(|info| {
                    info.text().contains(&format!("cluster_known_nodes:{count}\r"))
                        && self.view_from(i).is_some_and(|view| {
                            view.iter().all(|node| !node.flags.contains("handshake") && node.port != 0)
                        })
                })
            })
        });
        for m in 0..self.masters {
            let id = self.id(m);
            for r in 0..replicas {
                let replica = self.masters + m * replicas + r;
                wait_for(PATIENCE, "a replica to take its master", || {
                    self.direct(replica)
                        .try_command(&["CLUSTER", "REPLICATE", &id])
                        .is_ok_and(|reply| reply == Reply::Status("OK".into()))
                });
            }
        }
        self.wait_whole();
    }

    /// A client of node `index` on its own port (around its proxy).
    pub fn direct(&self, index: usize) -> RedisClient {
        RedisClient::local(self.nodes[index].port, None)
    }

    /// The seed list for `DSOBEL_REDIS_URL`: every master as it was started, at its announced
    /// address.
    pub fn seeds(&self) -> String {
        (0..self.masters)
            .map(|m| format!("redis://127.0.0.1:{}", self.nodes[m].announced_port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A client that asks every node (announced addresses) for keys and follows `MOVED`.
    pub fn client(&self) -> RedisClient {
        let all: Vec<String> =
            self.nodes.iter().map(|n| format!("redis://127.0.0.1:{}", n.announced_port())).collect();
        RedisClient::from_url(&all.join(","))
    }

    /// Node `index`'s id.
    pub fn id(&self, index: usize) -> String {
        self.direct(index).command(&["CLUSTER", "MYID"]).text()
    }

    /// Whether node `index` runs and answers.
    pub fn is_up(&self, index: usize) -> bool {
        self.nodes[index].child.is_some() && self.direct(index).try_command(&["PING"]).is_ok()
    }

    /// The index of the node announcing `port`.
    pub fn index_of(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.announced_port() == port)
    }

    /// `CLUSTER NODES` as node `index` sees it, if it answers.
    pub fn view_from(&self, index: usize) -> Option<Vec<NodeView>> {
        let text = self.direct(index).try_command(&["CLUSTER", "NODES"]).ok()?.text();
        Some(
            text.lines()
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    if fields.len() < 8 {
                        return None;
                    }
                    let port = fields[1].split(['@', ',']).next()?.rsplit(':').next()?.parse().unwrap_or(0);
                    let slots = fields[8..]
                        .iter()
                        .filter(|range| !range.starts_with('['))
                        .map(|range| {
                            let (first, last) = range.split_once('-').unwrap_or((range, range));
                            let first: usize = first.parse().unwrap_or(0);
                            last.parse::<usize>().unwrap_or(first) - first + 1
                        })
                        .sum();
                    Some(NodeView {
                        id: fields[0].to_owned(),
                        port,
                        flags: fields[2].to_owned(),
                        master_id: fields[3].to_owned(),
                        slots,
                    })
                })
                .collect(),
        )
    }

    /// The view of some live node.
    pub fn view(&self) -> Vec<NodeView> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_some())
            .find_map(|i| self.view_from(i))
            .expect("a live node that answers CLUSTER NODES")
    }

    /// The nodes that serve slots now (as some live node sees it), with how many slots each.
    pub fn masters(&self) -> Vec<(usize, usize)> {
        self.view()
            .iter()
            .filter(|n| n.is_serving_master())
            .filter_map(|n| Some((self.index_of(n.port)?, n.slots)))
            .collect()
    }

    /// The replicas of the node `master` (as some live node sees it).
    pub fn replicas_of(&self, master: usize) -> Vec<usize> {
        let id = self.id(master);
        self.view().iter().filter(|n| n.master_id == id).filter_map(|n| self.index_of(n.port)).collect()
    }

    /// Whether the node `index` sees itself as a master that serves slots.
    pub fn serves(&self, index: usize) -> bool {
        self.view_from(index)
            .is_some_and(|view| view.iter().any(|n| n.flags.contains("myself") && n.is_serving_master()))
    }

    /// Kills node `index` at once (SIGKILL); it stays down until [`OwnCluster::restart`].
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `index` again on its configuration: it rejoins the cluster (as a replica
    /// when another node took its slots over) and, empty, copies its master's data.
    pub fn restart(&mut self, index: usize) {
        assert!(self.boot(index), "node {index} did not start again on port {}", self.nodes[index].port);
    }

    /// Whether the cluster is whole: every node runs and sees every slot served, nobody
    /// marked failed, and every replica linked to its master and in sync.
    pub fn is_whole(&self) -> bool {
        (0..self.nodes.len()).all(|i| {
            let Ok(info) = self.direct(i).try_command(&["CLUSTER", "INFO"]) else { return false };
            let info = info.text();
            if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                return false;
            }
            let Some(view) = self.view_from(i) else { return false };
            if view.iter().any(|n| n.flags.contains("fail") || n.flags.contains("handshake")) {
                return false;
            }
            let Ok(replication) = self.direct(i).try_command(&["INFO", "replication"]) else { return false };
            let replication = replication.text();
            !replication.contains("role:slave")
                || (replication.contains("master_link_status:up")
                    && replication.contains("master_sync_in_progress:0"))
        })
    }

    /// Waits until the cluster is whole ([`OwnCluster::is_whole`]); panics after a minute.
    pub fn wait_whole(&self) {
        wait_for(PATIENCE, "the Redis Cluster to be whole", || self.is_whole());
    }

    /// `redis-cli --cluster reshard`: moves `count` slots from node `from` to node `to`, key by
    /// key, as an operator would; panics if it fails.
    pub fn reshard(&self, from: usize, to: usize, count: usize) {
        let output = Command::new(find_program("redis-cli").expect("redis-cli is installed"))
            .args(["--cluster", "reshard", &format!("127.0.0.1:{}", self.nodes[from].announced_port())])
            .args(["--cluster-from", &self.id(from), "--cluster-to", &self.id(to)])
            .args(["--cluster-slots", &count.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster reshard");
        assert!(
            output.status.success(),
            "reshard failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
