//! The store: values, hashes and sets under string keys, each with a time to live, and the
//! memory each of its shards uses.
//!
//! A store may be sharded (a Redis Cluster): each key lives on the shard that owns its hash
//! slot. Operations on one key work anywhere. Operations on several keys at once
//! ([`Store::get_many`]) are only asked for keys that share a hash tag, the part of the key
//! between the first `{` and the next `}` (`dsobel:job:{<id>}:strips` and
//! `dsobel:job:{<id>}:result` share `<id>`), so that one shard answers them atomically; a
//! sharded store refuses keys of several slots with [`crate::TransportError::Protocol`].

use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::Result;

/// Keys, hashes and sets with expiry. Every write takes a TTL: nothing grows without bound.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Sets `key` to `value`.
    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()>;
    /// Sets `key` only if it does not exist; true when this call set it.
    async fn put_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool>;
    /// The value of `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    /// The values of several keys in one round trip, in order (`None` for a missing key, or
    /// one that holds another kind of value). On a sharded store the keys must share a hash
    /// tag (see the module's documentation), else the call fails with
    /// [`crate::TransportError::Protocol`].
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>>;
    /// The bytes `range` of the value of `key`; `None` when the key is missing or the value is
    /// shorter than `range.end` (so a part of an upload is read without fetching all of it).
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Option<Bytes>>;
    /// Removes keys (of any kind); missing keys are ignored. On a sharded store, keys of
    /// several slots are removed slot by slot (each slot's keys at once).
    async fn delete(&self, keys: &[String]) -> Result<()>;
    /// Sets `field` of the hash `key` and refreshes the hash's TTL; true when the field is
    /// new (so a repeated write of the same field is not counted twice).
    async fn hash_put(&self, key: &str, field: &str, value: Bytes, ttl: Duration) -> Result<bool>;
    /// Number of fields of the hash `key` (0 when missing).
    async fn hash_len(&self, key: &str) -> Result<u64>;
    /// One field of the hash `key`.
    async fn hash_get(&self, key: &str, field: &str) -> Result<Option<Bytes>>;
    /// Adds `member` to the set `key` and refreshes the set's TTL.
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()>;
    /// Removes `member` from the set `key`.
    async fn set_remove(&self, key: &str, member: &str) -> Result<()>;
    /// Members of the set `key` (empty when missing).
    async fn set_members(&self, key: &str) -> Result<Vec<String>>;
    /// Checks that the store answers (every shard of a sharded store).
    async fn health_check(&self) -> Result<()>;
    /// Checks that the store answers for `key`: on a sharded store, that the shard which owns
    /// the key's slot can be reached by the path the key's commands take (while another shard
    /// may be down, or this one may be failing over). The key need not exist.
    async fn health_check_key(&self, key: &str) -> Result<()> {
        let _ = key;
        self.health_check().await
    }
    /// The memory each shard uses and may use, one entry per shard (per master of a Redis
    /// Cluster), read afresh on each call; empty when the store has nothing to say. A writer
    /// compares [`ShardMemory::fraction`] with its own watermark to refuse new work before the
    /// store refuses writes ([`crate::TransportError::OutOfMemory`]).
    async fn memory(&self) -> Result<Vec<ShardMemory>> {
        Ok(Vec::new())
    }
    /// Starts setting `key` to a value of `len` bytes given in parts ([`ValueSink::write`]),
    /// so that a large value reaches the store while it is still being received; the value is
    /// set, with `ttl`, by [`ValueSink::finish`], and not at all when the sink is dropped
    /// before. `None` when the store gains nothing from parts (it keeps values in memory by
    /// reference): then the value is [`Store::put`] whole.
    async fn put_in_parts(&self, key: &str, len: u64, ttl: Duration) -> Result<Option<Box<dyn ValueSink>>> {
        let _ = (key, len, ttl);
        Ok(None)
    }
}

/// The memory of one shard of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMemory {
    /// Which shard: the server's address (`host:port`), or the adapter's name.
    pub shard: String,
    /// Bytes in use (Redis: `used_memory`).
    pub used: u64,
    /// The most it may use before writes are refused (Redis: `maxmemory`); `None` when
    /// unlimited.
    pub limit: Option<u64>,
}

impl ShardMemory {
    /// The part of its limit in use (1.0 = full; above 1.0 when over it); `None` without a
    /// limit.
    pub fn fraction(&self) -> Option<f64> {
        self.limit.map(|limit| self.used as f64 / limit.max(1) as f64)
    }
}

/// A value being written in parts ([`Store::put_in_parts`]).
#[async_trait]
pub trait ValueSink: Send {
    /// Writes the next bytes of the value, `parts` one after the other (in as few system
    /// calls as the store's connection takes); an error when they go past its announced length.
    async fn write(&mut self, parts: &[&[u8]]) -> Result<()>;
    /// Sets the value; an error when fewer bytes were written than announced.
    async fn finish(self: Box<Self>) -> Result<()>;
}
