//! The Redis adapters: [`RedisStore`] implements [`crate::Store`], [`RedisNotifier`]
//! implements [`crate::Notifier`] with sharded pub/sub. Both work on one server or on a Redis
//! Cluster, chosen by the URL, with the same code paths where the two agree.
//!
//! # One server or a cluster
//!
//! `DSOBEL_REDIS_URL` is one URL (`redis://:password@host:6379/0`, `rediss://` for TLS) or a
//! comma-separated list of seed nodes (`redis://h1:7000,redis://h2:7000`). At connection the
//! seeds are asked for the slot map (`CLUSTER SLOTS`): a list must name nodes of a Redis
//! Cluster; a single URL that names a cluster node is taken as that cluster's seed (a managed
//! cluster's discovery endpoint is one address); a single URL of a server with cluster support
//! disabled is that one server. Credentials and TLS are the seeds' (all the same), and a
//! cluster has only database 0.
//!
//! # How a command finds its node
//!
//! A Redis Cluster splits keys into 16384 hash slots, each owned by one master: a key's slot
//! is the CRC16 of its hash tag (the part between the first `{` and the next `}`, or the whole
//! key) modulo 16384. Sharded pub/sub channels hash the same way. Three paths, each on
//! connections of its own:
//!
//! - **Commands** (small values, hashes, sets, `SPUBLISH`, `PING`) go through the redis
//!   crate's clients: a [`ConnectionManager`] to one server, or a cluster connection that
//!   routes each command by its key's slot, follows `MOVED` and `ASK` and reads the slot map
//!   again when a node fails. A multi-key command is asked only for keys of one slot
//!   ([`crate::store`] explains hash tags); in a cluster, `get_many` refuses keys of several
//!   slots with [`TransportError::Protocol`] rather than let them be split over shards. A
//!   transaction (`MULTI`) that a node refuses because its slot just moved, which the client
//!   does not redirect, is sent again after a plain command on its key has brought the
//!   client's slot map up to date.
//! - **Large values** (`SET`s of 64 KiB and more, values in parts, large `GETRANGE`s) are
//!   written and read without copies on raw connections (`redis/bulk.rs`), one small pool per
//!   node, routed by a slot map of their own read with `CLUSTER SLOTS` (`redis/slots.rs`). A
//!   `-MOVED <slot> <node>` answer means the slot has a new owner: the map learns it at once
//!   and the command goes there. A `-ASK <slot> <node>` answer means the slot is being moved
//!   and this key is (or, new, will be) at `<node>`: the command goes there once, after
//!   `ASKING`, and the map stays as it is until the move ends. A node that cannot be reached
//!   (a failover is under way), or answers `-TRYAGAIN`, `-CLUSTERDOWN`, `-MASTERDOWN`,
//!   `-READONLY` or `-LOADING`, makes the map be read again (once for all who found it stale,
//!   at most every 100 ms) and the command tried again after a pause, until its deadline. A
//!   value written in parts cannot be sent twice: when its slot moves while it is written,
//!   the node refuses it at its end and nothing is set ([`TransportError::Unavailable`]; the
//!   caller stores the value whole).
//! - **Subscriptions** (`redis/pubsub.rs`): a listener is a task that keeps one subscribed
//!   connection per node that owns subscribed channels, and knows where each channel is.
//!   When a slot moves, its old owner ends the subscriptions of its channels with a
//!   `sunsubscribe` nobody asked for; a node that answers `SSUBSCRIBE` with `-MOVED` names
//!   the owner; a connection that fails or falls silent (a heartbeat `PING` unanswered) loses
//!   its channels. In each case the listener reads the slot map again and subscribes those
//!   channels where their slots are now, trying again after a growing pause until a node
//!   confirms; every 30 s it also checks that no channel sits on a node that lost its slot.

//! # Failures
//!
//! Every operation is bounded ([`OPERATION_TIMEOUT`], plus time for the bytes of a large
//! value), so while Redis (or one shard) is down every call that needs it fails fast with
//! [`TransportError::Unavailable`], and the calls after its return (or after a replica took
//! over) succeed again. A write refused because the store is full (`-OOM`) is
//! [`TransportError::OutOfMemory`], so that the caller can wait for memory instead of treating
//! it as an outage or a bug. Every write sets a time to live in the same atomic step (`SET …
//! PX`, or `MULTI` with `PEXPIRE` for hashes and sets): no key can be left without one.

mod bulk;
mod pubsub;
mod slots;
mod store;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Client, ConnectionInfo, IntoConnectionInfo, RedisError};

pub use self::pubsub::RedisNotifier;
use self::slots::{Discovery, Routing, Topology};
pub use self::store::RedisStore;
use self::wire::{Access, WireError};
use crate::{Result, TransportError};

const SERVICE: &str = "redis";

/// How long one command (or one connection attempt) may take before it fails with
/// [`TransportError::Unavailable`].
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

fn unavailable(detail: impl Into<String>) -> TransportError {
    TransportError::Unavailable { service: SERVICE, detail: detail.into() }
}

fn protocol(detail: impl Into<String>) -> TransportError {
    TransportError::Protocol { service: SERVICE, detail: detail.into() }
}

/// Server error codes of states that pass: a server loading its data, a replica, a failover, a
/// slot on the move.
const PASSING: [&str; 7] = ["LOADING", "TRYAGAIN", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "MOVED", "ASK"];

/// Classifies a client error: connection trouble and a server that cannot serve right now
/// ([`PASSING`]) are transient; a write refused for memory is
/// [`TransportError::OutOfMemory`]; anything else is a protocol error (a key holding another
/// kind of value, keys of several slots, a bad reply). A transaction that the server aborted
/// is classified by the errors of its commands (a full store refuses each with `OOM`).
fn classify(what: &str, error: RedisError) -> TransportError {
    let codes: Vec<String> = match error.clone().into_server_errors() {
        Some(errors) => errors.iter().map(|(_, e)| e.code().to_owned()).collect(),
        None => Vec::new(),
    };
    if codes.iter().any(|code| code == "OOM") {
        return TransportError::OutOfMemory { service: SERVICE, detail: format!("{what}: {error}") };
    }
    let transient = error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(error.kind(), redis::ErrorKind::ClusterConnectionNotFound)
        || codes.iter().any(|code| PASSING.contains(&code.as_str()));
    if transient { unavailable(format!("{what}: {error}")) } else { protocol(format!("{what}: {error}")) }
}

/// Classifies a failure of a raw connection ([`wire`]) as [`classify`] does the general
/// client's (a refusal because the key's slot moved under a value written in parts is
/// transient: the value is then written again, whole).
fn classify_wire(what: &str, error: &WireError) -> TransportError {
    match error {
        WireError::Refused(line) if line.starts_with("OOM") => {
            TransportError::OutOfMemory { service: SERVICE, detail: format!("{what}: {line}") }
        }
        WireError::Refused(line)
            if line.split_ascii_whitespace().next().is_some_and(|c| PASSING.contains(&c)) =>
        {
            unavailable(format!("{what}: {line}"))
        }
        WireError::Refused(line) => protocol(format!("{what}: {line}")),
        WireError::Io(e) => unavailable(format!("{what}: {e}")),
        WireError::Malformed(detail) => protocol(format!("{what}: {detail}")),
    }
}

/// How many times a transaction refused because its slot moved is sent in all.
const TRANSACTION_TRIES: u32 = 6;

/// Whether a node refused a command (or a transaction's commands) because the slot is served
/// elsewhere now or is being moved.
fn redirected(error: &RedisError) -> bool {
    error
        .clone()
        .into_server_errors()
        .is_some_and(|errors| errors.iter().any(|(_, e)| matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN")))
}

/// Runs one request under [`OPERATION_TIMEOUT`] (a second bound on top of the client's own).
async fn bounded<T>(what: &str, future: impl Future<Output = redis::RedisResult<T>>) -> Result<T> {
    match tokio::time::timeout(OPERATION_TIMEOUT, future).await {
        Ok(result) => result.map_err(|e| classify(what, e)),
        Err(_) => Err(unavailable(format!("{what}: no answer within {OPERATION_TIMEOUT:?}"))),
    }
}

/// Milliseconds of a TTL for `PX`/`PEXPIRE`, at least 1 (Redis rejects 0).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The general client: to one server, or to a cluster.
#[derive(Clone)]
enum Commands {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Commands {
    /// Runs one command.
    async fn query<T: redis::FromRedisValue>(&self, what: &str, command: &redis::Cmd) -> Result<T> {
        match self.clone() {
            Commands::Single(mut connection) => bounded(what, command.query_async(&mut connection)).await,
            Commands::Cluster(mut connection) => bounded(what, command.query_async(&mut connection)).await,
        }
    }

    /// Runs one pipeline (a `MULTI` transaction when it is atomic) on `key` and keys of its
    /// slot.
    ///
    /// In a cluster, a transaction sent to a node that no longer owns the slot (it just moved,
    /// by a reshard or a failover) is refused whole with `MOVED` or `ASK`, which the client
    /// follows for a single command but not for a transaction. A refused transaction did
    /// nothing, so it is sent again, up to [`TRANSACTION_TRIES`] times, each time after a
    /// plain command on `key` (which follows the redirect and has the client read the slot map
    /// again) and a short pause (a slot being migrated moves within moments).
    async fn pipeline<T: redis::FromRedisValue>(
        &self,
        what: &str,
        key: &str,
        pipeline: &redis::Pipeline,
    ) -> Result<T> {
        match self.clone() {
            Commands::Single(mut connection) => bounded(what, pipeline.query_async(&mut connection)).await,
            Commands::Cluster(mut connection) => {
                let mut pause = Duration::from_millis(20);
                for _ in 1..TRANSACTION_TRIES {
                    match tokio::time::timeout(OPERATION_TIMEOUT, pipeline.query_async(&mut connection)).await
                    {
                        Ok(Err(error)) if redirected(&error) => {
                            let follow = redis::cmd("EXISTS").arg(key).to_owned();
                            let _ = bounded::<i64>("EXISTS", follow.query_async(&mut connection)).await;
                            tokio::time::sleep(pause).await;
                            pause *= 2;
                        }
                        Ok(result) => return result.map_err(|e| classify(what, e)),
                        Err(_) => {
                            return Err(unavailable(format!(
                                "{what}: no answer within {OPERATION_TIMEOUT:?}"
                            )));
                        }
                    }
                }
                bounded(what, pipeline.query_async(&mut connection)).await
            }
        }
    }

    fn is_cluster(&self) -> bool {
        matches!(self, Commands::Cluster(_))
    }
}

/// A connection to what a URL names: the general client, the routing of keys and channels,
/// and how to open raw connections to its nodes.
struct Connected {
    commands: Commands,
    routing: Arc<Routing>,
    access: Arc<Access>,
}

/// Parses `urls` (one URL, or seeds separated by commas).
fn parse_urls(urls: &str) -> Result<Vec<ConnectionInfo>> {
    let infos = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| url.into_connection_info().map_err(|e| protocol(format!("invalid Redis URL: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    if infos.is_empty() {
        return Err(protocol("invalid Redis URL: none given"));
    }
    let first = &infos[0];
    let same = |info: &ConnectionInfo| {
        let (a, b) = (info.redis_settings(), first.redis_settings());
        a.username() == b.username()
            && a.password() == b.password()
            && a.db() == b.db()
            && matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. })
                == matches!(first.addr(), redis::ConnectionAddr::TcpTls { .. })
    };
    if !infos.iter().all(same) {
        return Err(protocol(
            "the seed nodes must share their credentials, database and TLS (redis:// or rediss://)",
        ));
    }
    Ok(infos)
}

/// Connects to what `urls` names (see the module's documentation for how one server and a
/// cluster are told apart).
async fn connect(urls: &str) -> Result<Connected> {
    let infos = parse_urls(urls)?;
    let access = Arc::new(Access::new(&infos[0]).map_err(protocol)?);
    let seeds: Vec<_> = infos.iter().map(wire::address_of).collect();
    let discovery =
        tokio::time::timeout(OPERATION_TIMEOUT, Topology::discover(access.clone(), seeds.clone()))
            .await
            .map_err(|_| unavailable(format!("connect: no answer within {OPERATION_TIMEOUT:?}")))?
            .map_err(|e| classify_wire("connect", &e))?;
    match discovery {
        Discovery::Cluster(topology) => {
            if access.db() != 0 {
                return Err(protocol(format!("a Redis Cluster has only database 0, not {}", access.db())));
            }
            let client = ClusterClientBuilder::new(infos)
                .connection_timeout(OPERATION_TIMEOUT)
                .response_timeout(OPERATION_TIMEOUT)
                // A redirect or two, and a short wait on a failover; the callers retry the rest.
                .retries(3)
                .min_retry_wait(20)
                .max_retry_wait(500)
                .build()
                .map_err(|e| protocol(format!("invalid Redis Cluster URLs: {e}")))?;
            let connection = bounded("connect", client.get_async_connection()).await?;
            Ok(Connected {
                commands: Commands::Cluster(connection),
                routing: Arc::new(Routing::Cluster(topology)),
                access,
            })
        }
        Discovery::NotACluster(address) if infos.len() > 1 => Err(protocol(format!(
            "several Redis servers are listed, which means a Redis Cluster, but {address} has cluster \
             support disabled"
        ))),
        Discovery::NotACluster(address) => {
            let client =
                Client::open(infos[0].clone()).map_err(|e| protocol(format!("invalid Redis URL: {e}")))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(OPERATION_TIMEOUT))
                .set_response_timeout(Some(OPERATION_TIMEOUT))
                // Retry a lost connection once, briefly; the calls after that trigger new attempts.
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(200));
            let manager = bounded("connect", ConnectionManager::new_with_config(client, config)).await?;
            Ok(Connected {
                commands: Commands::Single(manager),
                routing: Arc::new(Routing::Single(address)),
                access,
            })
        }
    }
}
