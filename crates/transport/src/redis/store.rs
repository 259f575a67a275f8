//! [`RedisStore`]: the [`Store`] on one Redis server or a Redis Cluster.
//!
//! Small values and every command on hashes and sets go through the general client; values of
//! [`BULK_VALUE`] bytes and more, values in parts and large ranges go through [`Bulk`]. The
//! memory figures come from `INFO memory` of every master, asked on the bulk connections.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;
use tokio::time::Instant;

use super::bulk::{Bulk, PartedSet, bulk_timeout};
use super::slots::{self, Routing};
use super::wire::WireError;
use super::{Commands, OPERATION_TIMEOUT, classify_wire, connect, millis, protocol, unavailable};
use crate::Result;
use crate::store::{ShardMemory, Store, ValueSink};

/// Values at least this large are written by [`Bulk`], straight from their buffer.
const BULK_VALUE: usize = 64 * 1024;

/// A [`Store`] on a Redis server or a Redis Cluster.
#[derive(Clone)]
pub struct RedisStore {
    commands: Commands,
    routing: Arc<Routing>,
    bulk: Arc<Bulk>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("routing", &self.routing).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url`: one server (`redis://host:port/db`, `rediss://` for TLS), or the
    /// seed nodes of a Redis Cluster separated by commas (see [`crate::redis`]).
    pub async fn connect(url: &str) -> Result<Self> {
        let connected = connect(url).await?;
        let bulk = Arc::new(Bulk::new(connected.routing.clone(), connected.access.clone()));
        Ok(RedisStore { commands: connected.commands, routing: connected.routing, bulk })
    }

    /// Whether this store is a Redis Cluster (as opposed to one server).
    pub fn is_cluster(&self) -> bool {
        self.commands.is_cluster()
    }

    /// Runs one bulk step under its time bound (the usual one, plus time for `bytes`), and
    /// classifies its failure. A step that runs out of time leaves its connection's state
    /// unknown: the idle connections go too.
    async fn bounded_bulk<T>(
        &self,
        what: &str,
        bytes: usize,
        step: impl Future<Output = std::result::Result<T, WireError>>,
    ) -> Result<T> {
        let limit = bulk_timeout(OPERATION_TIMEOUT, bytes);
        match tokio::time::timeout(limit, step).await {
            Ok(done) => done.map_err(|e| classify_wire(what, &e)),
            Err(_) => {
                self.bulk.forget_all();
                Err(unavailable(format!("{what}: no answer within {limit:?}")))
            }
        }
    }

    /// The time a bulk step of `bytes` may retry until.
    fn deadline(bytes: usize) -> Instant {
        // A little before the outer bound, so that the step ends with its own error.
        Instant::now() + bulk_timeout(OPERATION_TIMEOUT, bytes) - Duration::from_millis(100)
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        if value.len() >= BULK_VALUE {
            let step = self.bulk.set(key, &value, millis(ttl), Self::deadline(value.len()));
            return self.bounded_bulk("SET", value.len(), step).await;
        }
        let command = redis::cmd("SET").arg(key).arg(value.as_ref()).arg("PX").arg(millis(ttl)).to_owned();
        self.commands.query::<()>("SET", &command).await
    }

    async fn put_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool> {
        let command =
            redis::cmd("SET").arg(key).arg(value.as_ref()).arg("PX").arg(millis(ttl)).arg("NX").to_owned();
        // OK when set, nil when the key exists.
        let reply: Value = self.commands.query("SET NX", &command).await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let reply: Option<Vec<u8>> = self.commands.query("GET", redis::cmd("GET").arg(key)).await?;
        Ok(reply.map(Bytes::from))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if self.is_cluster() {
            let first = slots::slot(keys[0].as_bytes());
            if let Some(other) = keys.iter().find(|key| slots::slot(key.as_bytes()) != first) {
                return Err(protocol(format!(
                    "MGET: keys of several hash slots ({} and {other}) in one request; keys read together \
                     must share a hash tag",
                    keys[0]
                )));
            }
        }
        // MGET answers nil for a key of another kind, as documented on the trait.
        let reply: Vec<Option<Vec<u8>>> = self.commands.query("MGET", redis::cmd("MGET").arg(keys)).await?;
        Ok(reply.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Option<Bytes>> {
        if range.is_empty() {
            return Ok(self.get(key).await?.filter(|v| v.len() as u64 >= range.end).map(|_| Bytes::new()));
        }
        // GETRANGE's end is inclusive, and it answers "" for a missing key and clips a range
        // past the end: a reply shorter than asked means the value is not there.
        let wanted = range.end - range.start;
        let reply = if wanted >= BULK_VALUE as u64 {
            let bytes = usize::try_from(wanted).unwrap_or(usize::MAX);
            let step = self.bulk.get_range(key, range.start, range.end - 1, Self::deadline(bytes));
            self.bounded_bulk("GETRANGE", bytes, step).await?
        } else {
            let command = redis::cmd("GETRANGE").arg(key).arg(range.start).arg(range.end - 1).to_owned();
            Bytes::from(self.commands.query::<Vec<u8>>("GETRANGE", &command).await?)
        };
        Ok((reply.len() as u64 == wanted).then_some(reply))
    }

    async fn put_in_parts(&self, key: &str, len: u64, ttl: Duration) -> Result<Option<Box<dyn ValueSink>>> {
        let set = self.bounded_bulk("SET", 0, self.bulk.set_in_parts(key, len, millis(ttl))).await?;
        Ok(Some(Box::new(RedisValueSink { store: self.clone(), set })))
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        // In a cluster, the client splits a DEL of several slots into one per slot.
        self.commands.query::<()>("DEL", redis::cmd("DEL").arg(keys)).await
    }

    async fn hash_put(&self, key: &str, field: &str, value: Bytes, ttl: Duration) -> Result<bool> {
        let pipeline = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(key)
            .arg(field)
            .arg(value.as_ref())
            .cmd("PEXPIRE")
            .arg(key)
            .arg(millis(ttl))
            .ignore()
            .to_owned();
        // HSET answers the number of fields added: 1 for a new field, 0 for an overwrite.
        let (added,): (u64,) = self.commands.pipeline("HSET", key, &pipeline).await?;
        Ok(added == 1)
    }

    async fn hash_len(&self, key: &str) -> Result<u64> {
        self.commands.query("HLEN", redis::cmd("HLEN").arg(key)).await
    }

    async fn hash_get(&self, key: &str, field: &str) -> Result<Option<Bytes>> {
        let reply: Option<Vec<u8>> =
            self.commands.query("HGET", redis::cmd("HGET").arg(key).arg(field)).await?;
        Ok(reply.map(Bytes::from))
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        let pipeline = redis::pipe()
            .atomic()
            .cmd("SADD")
            .arg(key)
            .arg(member)
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(millis(ttl))
            .ignore()
            .to_owned();
        self.commands.pipeline::<()>("SADD", key, &pipeline).await
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<()> {
        self.commands.query::<()>("SREM", redis::cmd("SREM").arg(key).arg(member)).await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>> {
        let mut members: Vec<String> =
            self.commands.query("SMEMBERS", redis::cmd("SMEMBERS").arg(key)).await?;
        // Redis answers in no particular order; sorted, like the memory adapter.
        members.sort_unstable();
        Ok(members)
    }

    async fn health_check(&self) -> Result<()> {
        // In a cluster, PING goes to every master.
        self.commands.query::<()>("PING", &redis::cmd("PING")).await
    }

    async fn health_check_key(&self, key: &str) -> Result<()> {
        // Routed by the key's slot, as the key's own commands are: a plain command, then a
        // transaction, as the store's writes to hashes and sets are (in a cluster, a node
        // refuses a transaction whole while its slot is on the move).
        self.commands.query::<i64>("EXISTS", redis::cmd("EXISTS").arg(key)).await?;
        let transaction = redis::pipe().atomic().cmd("EXISTS").arg(key).to_owned();
        self.commands.pipeline::<(i64,)>("EXISTS", key, &transaction).await.map(drop)
    }

    async fn memory(&self) -> Result<Vec<ShardMemory>> {
        let mut shards = Vec::new();
        for master in self.routing.masters() {
            let info = self.bounded_bulk("INFO memory", 0, self.bulk.info(&master, "memory")).await?;
            let field = |name: &str| {
                info.lines()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix(':')?.trim().parse::<u64>().ok())
            };
            let used = field("used_memory")
                .ok_or_else(|| protocol(format!("INFO memory of {master} has no used_memory")))?;
            let limit = field("maxmemory").filter(|&limit| limit > 0);
            shards.push(ShardMemory { shard: master.to_string(), used, limit });
        }
        Ok(shards)
    }
}

/// A value on its way to Redis in parts ([`Store::put_in_parts`]).
struct RedisValueSink {
    store: RedisStore,
    set: PartedSet,
}

#[async_trait]
impl ValueSink for RedisValueSink {
    async fn write(&mut self, parts: &[&[u8]]) -> Result<()> {
        let bytes = parts.iter().map(|p| p.len()).sum();
        self.store.bounded_bulk("SET", bytes, self.set.write(parts)).await
    }

    async fn finish(self: Box<Self>) -> Result<()> {
        let RedisValueSink { store, set } = *self;
        store.bounded_bulk("SET", 0, set.finish(&store.bulk)).await
    }
}
