//! The RabbitMQ adapter of [`JobQueue`]: a durable quorum queue with publisher confirms, a
//! bounded number of deliveries and a dead-letter queue.
//!
//! Topology, declared idempotently on every (re)connection:
//!
//! - the work queue `name`: durable, `x-queue-type: quorum`, `x-delivery-limit` set so that a
//!   message is delivered at most [`QueueConfig::max_deliveries`] times (a quorum queue
//!   dead-letters a message once it has been *returned* more often than the limit, so the
//!   limit is one less than the number of deliveries), dead-lettered through the default
//!   exchange to `name.dead`;
//! - the dead-letter queue `name.dead`: a durable quorum queue too.
//!
//! Messages are persistent and every publish waits for the broker's confirm. Each consumer has
//! its own channel with a per-consumer prefetch window; dropping the consumer closes that
//! channel, and the broker hands every unacknowledged delivery back to the queue. The queue's
//! load ([`JobQueue::load`]: consumers and ready messages) is read with a passive declaration
//! on one long-lived channel of its own, opened again only when the broker closed it (a failed
//! declaration closes its channel) or the connection changed.
//!
//! Failure handling: every network step runs under a deadline ([`OPERATION_TIMEOUT`]), so a
//! dead broker turns into [`TransportError::Unavailable`] instead of a hang. The connection
//! sits behind a lock and is re-opened by the next call that finds it gone, so the adapter
//! recovers by itself once the broker is back. A [`Consumer`] whose connection died ends
//! (`next()` returns `None`); the caller consumes again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::time::{Instant, timeout_at};

use crate::queue::{Acker, Consumer, Delivery, JobQueue, QueueConfig, QueueLoad};
use crate::{Result, TransportError};

const SERVICE: &str = "rabbitmq";

/// How long one operation (including a reconnection it needs) may take before it fails with
/// [`TransportError::Unavailable`].
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Heartbeat interval asked for when the URL does not set one: a silently dead connection (no
/// reset from the peer) is noticed within about two intervals.
const DEFAULT_HEARTBEAT_SECS: u16 = 10;

/// AMQP delivery mode of a persistent message.
const PERSISTENT: u8 = 2;

fn unavailable(detail: impl Into<String>) -> TransportError {
    TransportError::Unavailable { service: SERVICE, detail: detail.into() }
}

fn protocol(detail: impl Into<String>) -> TransportError {
    TransportError::Protocol { service: SERVICE, detail: detail.into() }
}

/// Classifies a client error: a refusal by the broker that retrying will not cure (a queue
/// declared with other arguments, missing permissions) is a protocol error; everything else
/// (I/O, closed connection or channel, a broker shutting down) is a transient unavailability.
fn classify(what: &str, error: lapin::Error) -> TransportError {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) if error.is_amqp_soft_error() => {
            protocol(format!("{what}: {amqp}"))
        }
        lapin::ErrorKind::ParsingError(_)
        | lapin::ErrorKind::SerialisationError(_)
        | lapin::ErrorKind::InvalidProtocolVersion(_) => protocol(format!("{what}: {error}")),
        _ => unavailable(format!("{what}: {error}")),
    }
}

/// Runs one network step under the operation's deadline.
async fn step<T>(deadline: Instant, what: &str, future: impl Future<Output = lapin::Result<T>>) -> Result<T> {
    match timeout_at(deadline, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(classify(what, error)),
        Err(_) => Err(unavailable(format!("{what}: no answer within {OPERATION_TIMEOUT:?}"))),
    }
}

/// An open connection with its publishing channel (in confirm mode).
#[derive(Clone)]
struct Link {
    connection: Arc<Connection>,
    publisher: Channel,
}

impl Link {
    fn connected(&self) -> bool {
        self.connection.status().connected()
    }
}

/// A RabbitMQ work queue (a quorum queue) with its dead-letter queue.
pub struct RabbitQueue {
    uri: AMQPUri,
    config: QueueConfig,
    link: tokio::sync::Mutex<Option<Link>>,
    /// The channel the queue's load is read on, and the connection it belongs to.
    inspector: tokio::sync::Mutex<Option<(Arc<Connection>, Channel)>>,
}

impl std::fmt::Debug for RabbitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitQueue")
            .field("host", &self.uri.authority.host)
            .field("port", &self.uri.authority.port)
            .field("vhost", &self.uri.vhost)
            .field("config", &self.config)
            .finish()
    }
}

impl RabbitQueue {
    /// Connects to `amqp_url` and declares the work queue and its dead-letter queue (a no-op
    /// when they exist with the same arguments; a [`TransportError::Protocol`] when they exist
    /// with other ones).
    pub async fn connect(amqp_url: &str, config: QueueConfig) -> Result<Self> {
        let mut uri: AMQPUri = amqp_url.parse().map_err(|e| protocol(format!("invalid AMQP URL: {e}")))?;
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(DEFAULT_HEARTBEAT_SECS);
        }
        let queue = RabbitQueue {
            uri,
            config,
            link: tokio::sync::Mutex::new(None),
            inspector: tokio::sync::Mutex::new(None),
        };
        queue.link(Instant::now() + OPERATION_TIMEOUT).await?;
        Ok(queue)
    }

    /// The queue's names and limits.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The `x-delivery-limit` that makes the broker deliver a message at most
    /// `max_deliveries` times: a quorum queue dead-letters a message when it has been returned
    /// more often than the limit.
    fn delivery_limit(&self) -> i32 {
        let deliveries = self.config.max_deliveries.clamp(1, i32::MAX as u32) as i32;
        deliveries - 1
    }

    /// The current connection, re-opened (and the topology declared again) if it is gone.
    async fn link(&self, deadline: Instant) -> Result<Link> {
        let mut slot = timeout_at(deadline, self.link.lock())
            .await
            .map_err(|_| unavailable("waiting for the connection: timed out"))?;
        if let Some(link) = slot.as_ref() {
            if link.connected() && link.publisher.status().connected() {
                return Ok(link.clone());
            }
            if link.connected() {
                // Only the publishing channel was closed (a channel-level error): open another.
                let publisher = self.open_publisher(&link.connection, deadline).await?;
                let link = Link { connection: link.connection.clone(), publisher };
                *slot = Some(link.clone());
                return Ok(link);
            }
            tracing::warn!(queue = %self.config.name, "RabbitMQ connection lost; reconnecting");
        }
        *slot = None;
        let connection = step(
            deadline,
            "connect",
            Connection::connect_uri(
                self.uri.clone(),
                ConnectionProperties::default().with_connection_name("dsobel".into()),
            ),
        )
        .await?;
        let connection = Arc::new(connection);
        let publisher = self.open_publisher(&connection, deadline).await?;
        let link = Link { connection, publisher };
        *slot = Some(link.clone());
        tracing::info!(queue = %self.config.name, "connected to RabbitMQ");
        Ok(link)
    }

    /// Opens a channel, declares the topology on it and puts it in confirm mode.
    async fn open_publisher(&self, connection: &Connection, deadline: Instant) -> Result<Channel> {
        let channel = step(deadline, "open channel", connection.create_channel()).await?;
        let dead = self.config.dead_letter_name();

        let mut dead_arguments = FieldTable::default();
        dead_arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        step(
            deadline,
            "declare the dead-letter queue",
            channel.queue_declare(dead.as_str().into(), QueueDeclareOptions::durable(), dead_arguments),
        )
        .await?;

        let mut arguments = FieldTable::default();
        arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        arguments.insert("x-delivery-limit".into(), AMQPValue::LongInt(self.delivery_limit()));
        arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from("")));
        arguments.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(dead.as_str().into()));
        step(
            deadline,
            "declare the work queue",
            channel.queue_declare(
                self.config.name.as_str().into(),
                QueueDeclareOptions::durable(),
                arguments,
            ),
        )
        .await?;

        step(deadline, "confirm.select", channel.confirm_select(ConfirmSelectOptions::default())).await?;
        Ok(channel)
    }

    /// Forgets `link` if it is still the current one, so the next call opens a new
    /// connection. Used when the broker stops answering without closing the connection.
    async fn forget(&self, link: &Link) {
        let mut slot = self.link.lock().await;
        if slot.as_ref().is_some_and(|current| Arc::ptr_eq(&current.connection, &link.connection)) {
            *slot = None;
        }
    }

    /// Runs `f` on the current link; a timeout drops the link so that the next call
    /// reconnects instead of waiting on a connection that no longer answers.
    async fn with_link<T, F>(&self, f: impl FnOnce(Link, Instant) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        let link = self.link(deadline).await?;
        let result = f(link.clone(), deadline).await;
        if result.is_err() && Instant::now() >= deadline {
            self.forget(&link).await;
        }
        result
    }

    async fn consume_queue(&self, queue: String, prefetch: u16) -> Result<Box<dyn Consumer>> {
        self.with_link(|link, deadline| async move {
            let channel = step(deadline, "open channel", link.connection.create_channel()).await?;
            step(
                deadline,
                "basic.qos",
                channel.basic_qos(prefetch.max(1), BasicQosOptions { global: false }),
            )
            .await?;
            let consumer = step(
                deadline,
                "basic.consume",
                channel.basic_consume(
                    queue.as_str().into(),
                    ShortString::from(""),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await?;
            Ok(Box::new(RabbitConsumer { channel, consumer }) as Box<dyn Consumer>)
        })
        .await
    }

    /// The passive declaration of the work queue (its ready messages and consumers), on the
    /// long-lived inspection channel.
    async fn inspect(&self) -> Result<lapin::Queue> {
        let name = self.config.name.clone();
        self.with_link(|link, deadline| async move {
            let mut inspector = timeout_at(deadline, self.inspector.lock())
                .await
                .map_err(|_| unavailable("waiting for the inspection channel: timed out"))?;
            let open = inspector.as_ref().filter(|(connection, channel)| {
                Arc::ptr_eq(connection, &link.connection) && channel.status().connected()
            });
            let channel = match open {
                Some((_, channel)) => channel.clone(),
                None => {
                    let channel = step(deadline, "open channel", link.connection.create_channel()).await?;
                    *inspector = Some((link.connection.clone(), channel.clone()));
                    channel
                }
            };
            let declared = step(
                deadline,
                "passive queue.declare",
                channel.queue_declare(
                    name.as_str().into(),
                    QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
                    FieldTable::default(),
                ),
            )
            .await;
            if declared.is_err() {
                // The broker closes a channel whose passive declaration failed: open another
                // next time.
                *inspector = None;
            }
            declared
        })
        .await
    }

    /// The id of the inspection channel, once one is open (it stays the same from one
    /// [`JobQueue::load`] to the next while the broker keeps it open).
    pub async fn inspection_channel(&self) -> Option<u16> {
        self.inspector.lock().await.as_ref().map(|(_, channel)| channel.id())
    }

    /// Deletes the work queue and the dead-letter queue with everything in them. Meant for
    /// tests and tear-down; the service never calls it.
    pub async fn delete_queues(&self) -> Result<()> {
        let names = [self.config.name.clone(), self.config.dead_letter_name()];
        self.with_link(|link, deadline| async move {
            let channel = step(deadline, "open channel", link.connection.create_channel()).await?;
            for name in names {
                step(
                    deadline,
                    "queue.delete",
                    channel.queue_delete(name.as_str().into(), QueueDeleteOptions::default()),
                )
                .await?;
            }
            Ok(())
        })
        .await?;
        // The publishing channel would re-declare nothing until the next reconnection; make
        // sure a later publish does not go to a queue that no longer exists.
        *self.link.lock().await = None;
        Ok(())
    }
}

#[async_trait]
impl JobQueue for RabbitQueue {
    async fn publish(&self, payload: Bytes) -> Result<()> {
        let name = self.config.name.clone();
        let confirmation = self
            .with_link(|link, deadline| async move {
                let confirm = step(
                    deadline,
                    "basic.publish",
                    link.publisher.basic_publish(
                        ShortString::from(""),
                        name.as_str().into(),
                        // Mandatory: a message the broker cannot route (the queue was deleted)
                        // comes back instead of vanishing.
                        BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
                        &payload,
                        BasicProperties::default().with_delivery_mode(PERSISTENT),
                    ),
                )
                .await?;
                step(deadline, "publisher confirm", confirm).await
            })
            .await?;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_returned)) => {
                // The queue is missing: declare it again on the next call.
                *self.link.lock().await = None;
                Err(unavailable(format!(
                    "queue {} does not exist; the message was returned",
                    self.config.name
                )))
            }
            Confirmation::Nack(_) => Err(unavailable("the broker refused the message (nack)")),
            Confirmation::NotRequested => Err(protocol("publisher confirms are not enabled")),
        }
    }

    async fn consume(&self, prefetch: u16) -> Result<Box<dyn Consumer>> {
        self.consume_queue(self.config.name.clone(), prefetch).await
    }

    async fn consume_dead_letters(&self, prefetch: u16) -> Result<Box<dyn Consumer>> {
        self.consume_queue(self.config.dead_letter_name(), prefetch).await
    }

    async fn consumer_count(&self) -> Result<u32> {
        Ok(self.inspect().await?.consumer_count())
    }

    async fn depth(&self) -> Result<u64> {
        Ok(u64::from(self.inspect().await?.message_count()))
    }

    async fn load(&self) -> Result<QueueLoad> {
        let queue = self.inspect().await?;
        Ok(QueueLoad { consumers: queue.consumer_count(), ready: u64::from(queue.message_count()) })
    }

    async fn health_check(&self) -> Result<()> {
        self.with_link(|link, _| async move {
            if link.connected() { Ok(()) } else { Err(unavailable("connection is not open")) }
        })
        .await
    }
}

/// A consumer on a channel of its own. Dropping it drops the channel, which closes it: the
/// broker then requeues every delivery the consumer had not settled.
struct RabbitConsumer {
    channel: Channel,
    consumer: lapin::Consumer,
}

/// The delivery number of a message. Quorum queues count earlier deliveries in a header:
/// `x-acquired-count` from RabbitMQ 4.3 on (where `x-delivery-count` counts only failed ones),
/// `x-delivery-count` before. Other queues only say whether it was delivered before.
fn delivery_count(delivery: &lapin::message::Delivery) -> u32 {
    let headers = delivery.properties.headers().as_ref();
    let header = |name: &str| headers.and_then(|headers| headers.inner().get(name)).and_then(count);
    match header("x-acquired-count").or_else(|| header("x-delivery-count")) {
        Some(earlier) => earlier.saturating_add(1),
        None if delivery.redelivered => 2,
        None => 1,
    }
}

fn count(value: &AMQPValue) -> Option<u32> {
    match value {
        AMQPValue::ShortShortInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u32::from(*n)),
        AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(*n),
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        _ => None,
    }
}

#[async_trait]
impl Consumer for RabbitConsumer {
    async fn next(&mut self) -> Option<Result<Delivery>> {
        let consumer = &mut self.consumer;
        let item = std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut *consumer), cx)
        })
        .await;
        match item {
            Some(Ok(delivery)) => {
                let delivery_count = delivery_count(&delivery);
                Some(Ok(Delivery {
                    payload: Bytes::from(delivery.data),
                    delivery_count,
                    acker: Box::new(RabbitAcker { acker: delivery.acker }),
                }))
            }
            Some(Err(error)) => {
                // The channel or its connection is gone: this consumer is over, the broker has
                // requeued what it held, and the caller consumes again.
                tracing::warn!(error = %error, channel = self.channel.id(), "RabbitMQ consumer lost");
                None
            }
            None => None,
        }
    }
}

struct RabbitAcker {
    acker: lapin::Acker,
}

impl RabbitAcker {
    async fn settle(&self, what: &str, future: impl Future<Output = lapin::Result<bool>>) -> Result<()> {
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        if step(deadline, what, future).await? {
            Ok(())
        } else {
            // The channel closed under the delivery: the broker requeues it by itself.
            Err(unavailable(format!("{what}: the delivery's channel is closed")))
        }
    }
}

#[async_trait]
impl Acker for RabbitAcker {
    async fn ack(&self) -> Result<()> {
        self.settle("basic.ack", self.acker.ack(BasicAckOptions::default())).await
    }

    async fn nack(&self, requeue: bool) -> Result<()> {
        // basic.reject rather than basic.nack: from RabbitMQ 4.3 on, a quorum queue counts only
        // returns that mean failure against its delivery limit, and basic.reject is that one.
        self.settle("basic.reject", self.acker.reject(BasicRejectOptions { requeue })).await
    }
}
