//! The Redis adapters: [`RedisStore`] implements [`Store`], [`RedisNotifier`] implements
//! [`Notifier`] with pub/sub.
//!
//! Commands go through a [`ConnectionManager`], which reconnects by itself after the server
//! went away. Connection attempts and responses are bounded ([`OPERATION_TIMEOUT`]), and the
//! manager retries a lost connection only briefly, so while Redis is down every call fails
//! fast with [`TransportError::Unavailable`] and the calls after its return succeed again.
//!
//! Every write sets a time to live in the same atomic step (`SET … PX`, or `MULTI` with
//! `PEXPIRE` for hashes and sets): no key can be left without one.
//!
//! A subscription uses a connection of its own (Redis puts a subscribed connection in a
//! special mode). When that connection drops, the subscription ends and the caller subscribes
//! again; messages published in between are lost, which is fine for wake-ups.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubStream};
use redis::{Client, RedisError, Value};

use crate::notify::{Notifier, Subscription};
use crate::redis_bulk::{BulkError, BulkWriter, PartedSet, bulk_timeout};
use crate::store::Store;
use crate::store::ValueSink;
use crate::{Result, TransportError};

const SERVICE: &str = "redis";

/// How long one command (or one connection attempt) may take before it fails with
/// [`TransportError::Unavailable`].
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

fn unavailable(detail: impl Into<String>) -> TransportError {
    TransportError::Unavailable { service: SERVICE, detail: detail.into() }
}

/// Classifies a client error: connection trouble and a server that cannot serve right now
/// (loading its data, a replica, a failover) are transient; anything else is a protocol
/// error (a key holding another kind of value, a bad reply).
fn classify(what: &str, error: RedisError) -> TransportError {
    use redis::{ErrorKind, ServerErrorKind};
    let transient = error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(
            error.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
            )
        );
    if transient {
        unavailable(format!("{what}: {error}"))
    } else {
        TransportError::Protocol { service: SERVICE, detail: format!("{what}: {error}") }
    }
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

fn open_client(url: &str) -> Result<Client> {
    Client::open(url)
        .map_err(|e| TransportError::Protocol { service: SERVICE, detail: format!("invalid Redis URL: {e}") })
}

async fn manager(client: Client) -> Result<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(OPERATION_TIMEOUT))
        .set_response_timeout(Some(OPERATION_TIMEOUT))
        // Retry a lost connection once, briefly; the calls after that trigger new attempts.
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    bounded("connect", ConnectionManager::new_with_config(client, config)).await
}

/// Values at least this large are written by [`BulkWriter`], straight from their buffer.
const BULK_VALUE: usize = 64 * 1024;

/// What a failed bulk command means: the server's transient refusals (as the general client
/// classifies them) and lost connections are outages, other refusals protocol errors.
fn bulk_failure(bulk: &BulkWriter, what: &str, error: BulkError) -> TransportError {
    match error {
        BulkError::Refused(line) => {
            let transient = ["-LOADING", "-TRYAGAIN", "-MASTERDOWN", "-READONLY", "-CLUSTERDOWN", "-OOM"];
            if transient.iter().any(|p| line.starts_with(p)) {
                unavailable(format!("{what}: {line}"))
            } else {
                TransportError::Protocol { service: SERVICE, detail: format!("{what}: {line}") }
            }
        }
        BulkError::Io(e) => {
            bulk.forget();
            unavailable(format!("{what}: {e}"))
        }
    }
}

/// A value on its way to Redis in parts ([`Store::put_in_parts`]).
struct RedisValueSink {
    bulk: Arc<BulkWriter>,
    set: PartedSet,
}

impl RedisValueSink {
    /// Bounds one step by the usual time plus time for its bytes, and classifies its failure.
    async fn bounded<T>(
        bulk: &BulkWriter,
        bytes: usize,
        step: impl Future<Output = std::result::Result<T, BulkError>>,
    ) -> Result<T> {
        let limit = bulk_timeout(OPERATION_TIMEOUT, bytes);
        match tokio::time::timeout(limit, step).await {
            Ok(done) => done.map_err(|e| bulk_failure(bulk, "SET", e)),
            Err(_) => Err(unavailable(format!("SET: no answer within {limit:?}"))),
        }
    }
}

#[async_trait]
impl ValueSink for RedisValueSink {
    async fn write(&mut self, parts: &[&[u8]]) -> Result<()> {
        let bytes = parts.iter().map(|p| p.len()).sum();
        Self::bounded(&self.bulk, bytes, self.set.write(parts)).await
    }

    async fn finish(self: Box<Self>) -> Result<()> {
        let RedisValueSink { bulk, set } = *self;
        Self::bounded(&bulk, 0, set.finish(&bulk)).await
    }
}

/// A [`Store`] on a Redis server.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    /// Large `SET`s without copies (absent for TLS URLs).
    bulk: Option<Arc<BulkWriter>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`).
    pub async fn connect(url: &str) -> Result<Self> {
        let client = open_client(url)?;
        let bulk = BulkWriter::new(client.get_connection_info()).map(Arc::new);
        Ok(RedisStore { connection: manager(client).await?, bulk })
    }

    /// A large `SET` through the bulk writer.
    async fn put_bulk(&self, bulk: &BulkWriter, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let limit = bulk_timeout(OPERATION_TIMEOUT, value.len());
        match tokio::time::timeout(limit, bulk.set(key, value, millis(ttl))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(bulk_failure(bulk, "SET", e)),
            Err(_) => {
                bulk.forget();
                Err(unavailable(format!("SET: no answer within {limit:?}")))
            }
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, what: &str, command: &redis::Cmd) -> Result<T> {
        let mut connection = self.connection.clone();
        bounded(what, command.query_async(&mut connection)).await
    }

    async fn transaction<T: redis::FromRedisValue>(
        &self,
        what: &str,
        pipeline: &redis::Pipeline,
    ) -> Result<T> {
        let mut connection = self.connection.clone();
        bounded(what, pipeline.query_async(&mut connection)).await
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        if let Some(bulk) = self.bulk.as_deref().filter(|_| value.len() >= BULK_VALUE) {
            return self.put_bulk(bulk, key, &value, ttl).await;
        }
        let command = redis::cmd("SET").arg(key).arg(value.as_ref()).arg("PX").arg(millis(ttl)).to_owned();
        self.query::<()>("SET", &command).await
    }

    async fn put_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool> {
        let command =
            redis::cmd("SET").arg(key).arg(value.as_ref()).arg("PX").arg(millis(ttl)).arg("NX").to_owned();
        // OK when set, nil when the key exists.
        let reply: Value = self.query("SET NX", &command).await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let reply: Option<Vec<u8>> = self.query("GET", redis::cmd("GET").arg(key)).await?;
        Ok(reply.map(Bytes::from))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // MGET answers nil for a key of another kind, as documented on the trait.
        let reply: Vec<Option<Vec<u8>>> = self.query("MGET", redis::cmd("MGET").arg(keys)).await?;
        Ok(reply.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Option<Bytes>> {
        if range.is_empty() {
            return Ok(self.get(key).await?.filter(|v| v.len() as u64 >= range.end).map(|_| Bytes::new()));
        }
        // GETRANGE's end is inclusive, and it answers "" for a missing key and clips a range
        // past the end: a reply shorter than asked means the value is not there.
        let wanted = range.end - range.start;
        let reply = match self.bulk.as_deref().filter(|_| wanted >= BULK_VALUE as u64) {
            Some(bulk) => {
                let limit = bulk_timeout(OPERATION_TIMEOUT, wanted as usize);
                let read = tokio::time::timeout(limit, bulk.get_range(key, range.start, range.end - 1));
                match read.await {
                    Ok(Ok(reply)) => reply,
                    Ok(Err(e)) => return Err(bulk_failure(bulk, "GETRANGE", e)),
                    Err(_) => {
                        bulk.forget();
                        return Err(unavailable(format!("GETRANGE: no answer within {limit:?}")));
                    }
                }
            }
            None => {
                let command = redis::cmd("GETRANGE").arg(key).arg(range.start).arg(range.end - 1).to_owned();
                Bytes::from(self.query::<Vec<u8>>("GETRANGE", &command).await?)
            }
        };
        Ok((reply.len() as u64 == wanted).then_some(reply))
    }

    async fn put_in_parts(&self, key: &str, len: u64, ttl: Duration) -> Result<Option<Box<dyn ValueSink>>> {
        let Some(bulk) = self.bulk.clone() else { return Ok(None) };
        let set = RedisValueSink::bounded(&bulk, 0, bulk.set_in_parts(key, len, millis(ttl))).await?;
        Ok(Some(Box::new(RedisValueSink { bulk, set })))
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.query::<()>("DEL", redis::cmd("DEL").arg(keys)).await
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
        let (added,): (u64,) = self.transaction("HSET", &pipeline).await?;
        Ok(added == 1)
    }

    async fn hash_len(&self, key: &str) -> Result<u64> {
        self.query("HLEN", redis::cmd("HLEN").arg(key)).await
    }

    async fn hash_get(&self, key: &str, field: &str) -> Result<Option<Bytes>> {
        let reply: Option<Vec<u8>> = self.query("HGET", redis::cmd("HGET").arg(key).arg(field)).await?;
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
        self.transaction::<()>("SADD", &pipeline).await
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<()> {
        self.query::<()>("SREM", redis::cmd("SREM").arg(key).arg(member)).await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>> {
        let mut members: Vec<String> = self.query("SMEMBERS", redis::cmd("SMEMBERS").arg(key)).await?;
        // Redis answers in no particular order; sorted, like the memory adapter.
        members.sort_unstable();
        Ok(members)
    }

    async fn health_check(&self) -> Result<()> {
        self.query::<()>("PING", &redis::cmd("PING")).await
    }
}

/// A [`Notifier`] on one Redis pub/sub channel.
#[derive(Clone)]
pub struct RedisNotifier {
    client: Client,
    channel: String,
    connection: ConnectionManager,
}

impl std::fmt::Debug for RedisNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisNotifier").field("channel", &self.channel).finish_non_exhaustive()
    }
}

impl RedisNotifier {
    /// Connects to `url`; messages go through the pub/sub channel `channel`.
    pub async fn connect(url: &str, channel: &str) -> Result<Self> {
        let client = open_client(url)?;
        let connection = manager(client.clone()).await?;
        Ok(RedisNotifier { client, channel: channel.to_owned(), connection })
    }
}

#[async_trait]
impl Notifier for RedisNotifier {
    async fn publish(&self, message: &str) -> Result<()> {
        let mut connection = self.connection.clone();
        let command = redis::cmd("PUBLISH").arg(&self.channel).arg(message).to_owned();
        // The reply is the number of receivers; none is not an error.
        bounded("PUBLISH", command.query_async::<u64>(&mut connection)).await.map(drop)
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>> {
        let mut pubsub = bounded("connect for SUBSCRIBE", self.client.get_async_pubsub()).await?;
        bounded("SUBSCRIBE", pubsub.subscribe(&self.channel)).await?;
        Ok(Box::new(RedisSubscription { stream: pubsub.into_on_message() }))
    }

    async fn health_check(&self) -> Result<()> {
        let mut connection = self.connection.clone();
        bounded("PING", redis::cmd("PING").query_async::<()>(&mut connection)).await
    }
}

/// Messages of one subscription, on its own connection.
struct RedisSubscription {
    stream: PubSubStream,
}

#[async_trait]
impl Subscription for RedisSubscription {
    async fn next(&mut self) -> Option<String> {
        loop {
            let stream = &mut self.stream;
            let message =
                std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut *stream), cx))
                    .await?;
            match message.get_payload::<String>() {
                Ok(text) => return Some(text),
                // Not text: not one of ours. Skip it.
                Err(error) => tracing::debug!(%error, "ignoring a non-text notification"),
            }
        }
    }
}
