//! The in-memory adapter: queue, store and notifier inside one process.
//!
//! This is what `dsobel serve` runs on when no broker is configured (the embedded default).
//! It keeps the real semantics — unacknowledged deliveries return to the queue when their
//! consumer goes away, a message is dead-lettered after `max_deliveries`, every key expires —
//! so the service above it cannot tell it from RabbitMQ and Redis, and the same contract suite
//! runs on all of them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{Notify, broadcast};

use crate::Result;
use crate::notify::{Notifier, Subscription};
use crate::queue::{Acker, Consumer, Delivery, JobQueue, QueueConfig};
use crate::store::Store;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data half-updated (each
    // critical section is a few container operations), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Clone)]
struct Message {
    payload: Bytes,
    deliveries: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Work,
    Dead,
}

#[derive(Debug, Default)]
struct QueueState {
    work: VecDeque<Message>,
    dead: VecDeque<Message>,
    unacked: HashMap<u64, (Lane, Message)>,
    next_tag: u64,
    consumers: u32,
}

impl QueueState {
    fn lane(&mut self, lane: Lane) -> &mut VecDeque<Message> {
        match lane {
            Lane::Work => &mut self.work,
            Lane::Dead => &mut self.dead,
        }
    }
}

#[derive(Debug)]
struct QueueInner {
    config: QueueConfig,
    state: Mutex<QueueState>,
    changed: Notify,
}

impl QueueInner {
    /// Puts a delivered message back: to the front of its lane, or to the dead letters once it
    /// has used up its deliveries. Dead letters that are returned stay dead letters.
    fn give_back(&self, state: &mut QueueState, lane: Lane, message: Message, requeue: bool) {
        match (lane, requeue) {
            (Lane::Work, true) if message.deliveries < self.config.max_deliveries => {
                state.work.push_front(message)
            }
            // As with RabbitMQ, the dead-letter queue counts its own deliveries from 1 again.
            (Lane::Work, _) => state.dead.push_back(Message { deliveries: 0, ..message }),
            (Lane::Dead, true) => state.dead.push_front(message),
            (Lane::Dead, false) => {}
        }
        self.changed.notify_waiters();
    }
}

/// An in-process work queue with a dead-letter queue.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    inner: Arc<QueueInner>,
}

impl MemoryQueue {
    /// A new, empty queue.
    pub fn new(config: QueueConfig) -> Self {
        MemoryQueue {
            inner: Arc::new(QueueInner {
                config,
                state: Mutex::new(QueueState::default()),
                changed: Notify::new(),
            }),
        }
    }

    /// Messages waiting in the dead-letter queue.
    pub fn dead_letter_depth(&self) -> usize {
        lock(&self.inner.state).dead.len()
    }

    fn consumer(&self, lane: Lane, prefetch: u16) -> Box<dyn Consumer> {
        if lane == Lane::Work {
            lock(&self.inner.state).consumers += 1;
        }
        Box::new(MemoryConsumer {
            queue: self.inner.clone(),
            lane,
            prefetch: prefetch.max(1) as usize,
            outstanding: Arc::new(Mutex::new(HashSet::new())),
        })
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn publish(&self, payload: Bytes) -> Result<()> {
        lock(&self.inner.state).work.push_back(Message { payload, deliveries: 0 });
        self.inner.changed.notify_waiters();
        Ok(())
    }

    async fn consume(&self, prefetch: u16) -> Result<Box<dyn Consumer>> {
        Ok(self.consumer(Lane::Work, prefetch))
    }

    async fn consume_dead_letters(&self, prefetch: u16) -> Result<Box<dyn Consumer>> {
        Ok(self.consumer(Lane::Dead, prefetch))
    }

    async fn consumer_count(&self) -> Result<u32> {
        Ok(lock(&self.inner.state).consumers)
    }

    async fn depth(&self) -> Result<u64> {
        Ok(lock(&self.inner.state).work.len() as u64)
    }

    async fn health_check(&self) -> Result<()> {
        Ok(())
    }
}

struct MemoryConsumer {
    queue: Arc<QueueInner>,
    lane: Lane,
    prefetch: usize,
    /// Delivery tags handed out by this consumer and not yet settled.
    outstanding: Arc<Mutex<HashSet<u64>>>,
}

impl MemoryConsumer {
    fn try_take(&self) -> Option<Delivery> {
        let mut outstanding = lock(&self.outstanding);
        if outstanding.len() >= self.prefetch {
            return None;
        }
        let mut state = lock(&self.queue.state);
        let mut message = state.lane(self.lane).pop_front()?;
        message.deliveries += 1;
        let tag = state.next_tag;
        state.next_tag += 1;
        state.unacked.insert(tag, (self.lane, message.clone()));
        outstanding.insert(tag);
        Some(Delivery {
            payload: message.payload,
            delivery_count: message.deliveries,
            acker: Box::new(MemoryAcker {
                queue: self.queue.clone(),
                tag,
                outstanding: self.outstanding.clone(),
            }),
        })
    }
}

#[async_trait]
impl Consumer for MemoryConsumer {
    async fn next(&mut self) -> Option<Result<Delivery>> {
        loop {
            let changed = self.queue.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(delivery) = self.try_take() {
                return Some(Ok(delivery));
            }
            changed.await;
        }
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        // A consumer that goes away hands back everything it had not settled, as a broker
        // does when a connection drops.
        let tags: Vec<u64> = lock(&self.outstanding).drain().collect();
        let mut state = lock(&self.queue.state);
        if self.lane == Lane::Work {
            state.consumers = state.consumers.saturating_sub(1);
        }
        for tag in tags.into_iter().rev() {
            if let Some((lane, message)) = state.unacked.remove(&tag) {
                self.queue.give_back(&mut state, lane, message, true);
            }
        }
        self.queue.changed.notify_waiters();
    }
}

struct MemoryAcker {
    queue: Arc<QueueInner>,
    tag: u64,
    outstanding: Arc<Mutex<HashSet<u64>>>,
}

impl MemoryAcker {
    fn settle(&self, requeue: Option<bool>) {
        lock(&self.outstanding).remove(&self.tag);
        let mut state = lock(&self.queue.state);
        if let Some((lane, message)) = state.unacked.remove(&self.tag)
            && let Some(requeue) = requeue
        {
            self.queue.give_back(&mut state, lane, message, requeue);
        }
        self.queue.changed.notify_waiters();
    }
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(&self) -> Result<()> {
        self.settle(None);
        Ok(())
    }

    async fn nack(&self, requeue: bool) -> Result<()> {
        self.settle(Some(requeue));
        Ok(())
    }
}

#[derive(Debug)]
enum Value {
    Plain(Bytes),
    Hash(BTreeMap<String, Bytes>),
    Set(BTreeSet<String>),
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expires: Instant,
}

#[derive(Debug, Default)]
struct StoreState {
    entries: HashMap<String, Entry>,
    writes_since_sweep: usize,
}

impl StoreState {
    fn live(&mut self, key: &str) -> Option<&mut Entry> {
        let now = Instant::now();
        if self.entries.get(key).is_some_and(|e| e.expires <= now) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    /// Drops expired entries now and then, so keys nobody reads again still go away.
    fn after_write(&mut self) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= 256 {
            self.writes_since_sweep = 0;
            let now = Instant::now();
            self.entries.retain(|_, e| e.expires > now);
        }
    }
}

/// An in-process key-value store with expiry.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<StoreState>>,
}

impl MemoryStore {
    /// A new, empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of live keys (expired ones are not counted).
    pub fn len(&self) -> usize {
        let now = Instant::now();
        lock(&self.state).entries.values().filter(|e| e.expires > now).count()
    }

    /// Whether no live key exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn wrong_kind(key: &str) -> crate::TransportError {
    crate::TransportError::Protocol {
        service: "memory",
        detail: format!("key {key} holds another kind of value"),
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put(&self, key: &str, value: Bytes, ttl: Duration) -> Result<()> {
        let mut state = lock(&self.state);
        state
            .entries
            .insert(key.to_owned(), Entry { value: Value::Plain(value), expires: Instant::now() + ttl });
        state.after_write();
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool> {
        let mut state = lock(&self.state);
        if state.live(key).is_some() {
            return Ok(false);
        }
        state
            .entries
            .insert(key.to_owned(), Entry { value: Value::Plain(value), expires: Instant::now() + ttl });
        state.after_write();
        Ok(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match lock(&self.state).live(key) {
            None => Ok(None),
            Some(Entry { value: Value::Plain(v), .. }) => Ok(Some(v.clone())),
            Some(_) => Err(wrong_kind(key)),
        }
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let mut state = lock(&self.state);
        Ok(keys
            .iter()
            .map(|key| match state.live(key) {
                Some(Entry { value: Value::Plain(v), .. }) => Some(v.clone()),
                _ => None,
            })
            .collect())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Option<Bytes>> {
        let whole = self.get(key).await?;
        let (start, end) = (range.start as usize, range.end as usize);
        Ok(whole.filter(|v| start <= end && end <= v.len()).map(|v| v.slice(start..end)))
    }

    async fn delete(&self, keys: &[String]) -> Result<()> {
        let mut state = lock(&self.state);
        for key in keys {
            state.entries.remove(key);
        }
        Ok(())
    }

    async fn hash_put(&self, key: &str, field: &str, value: Bytes, ttl: Duration) -> Result<bool> {
        let mut state = lock(&self.state);
        let expires = Instant::now() + ttl;
        let entry = match state.live(key) {
            Some(entry) => entry,
            None => {
                state.entries.insert(key.to_owned(), Entry { value: Value::Hash(BTreeMap::new()), expires });
                state.entries.get_mut(key).expect("just inserted")
            }
        };
        entry.expires = expires;
        let Value::Hash(fields) = &mut entry.value else { return Err(wrong_kind(key)) };
        let new = fields.insert(field.to_owned(), value).is_none();
        state.after_write();
        Ok(new)
    }

    async fn hash_len(&self, key: &str) -> Result<u64> {
        match lock(&self.state).live(key) {
            None => Ok(0),
            Some(Entry { value: Value::Hash(h), .. }) => Ok(h.len() as u64),
            Some(_) => Err(wrong_kind(key)),
        }
    }

    async fn hash_get(&self, key: &str, field: &str) -> Result<Option<Bytes>> {
        match lock(&self.state).live(key) {
            None => Ok(None),
            Some(Entry { value: Value::Hash(h), .. }) => Ok(h.get(field).cloned()),
            Some(_) => Err(wrong_kind(key)),
        }
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        let mut state = lock(&self.state);
        let expires = Instant::now() + ttl;
        let entry = match state.live(key) {
            Some(entry) => entry,
            None => {
                state.entries.insert(key.to_owned(), Entry { value: Value::Set(BTreeSet::new()), expires });
                state.entries.get_mut(key).expect("just inserted")
            }
        };
        entry.expires = expires;
        let Value::Set(members) = &mut entry.value else { return Err(wrong_kind(key)) };
        members.insert(member.to_owned());
        state.after_write();
        Ok(())
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<()> {
        if let Some(Entry { value: Value::Set(members), .. }) = lock(&self.state).live(key) {
            members.remove(member);
        }
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>> {
        match lock(&self.state).live(key) {
            None => Ok(Vec::new()),
            Some(Entry { value: Value::Set(s), .. }) => Ok(s.iter().cloned().collect()),
            Some(_) => Err(wrong_kind(key)),
        }
    }

    async fn health_check(&self) -> Result<()> {
        Ok(())
    }
}

/// An in-process broadcast notifier.
#[derive(Debug, Clone)]
pub struct MemoryNotifier {
    sender: broadcast::Sender<String>,
}

impl Default for MemoryNotifier {
    fn default() -> Self {
        MemoryNotifier { sender: broadcast::channel(4096).0 }
    }
}

impl MemoryNotifier {
    /// A new notifier with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Notifier for MemoryNotifier {
    async fn publish(&self, message: &str) -> Result<()> {
        // No subscriber is not an error: wake-ups are best effort.
        let _ = self.sender.send(message.to_owned());
        Ok(())
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>> {
        Ok(Box::new(MemorySubscription { receiver: self.sender.subscribe() }))
    }

    async fn health_check(&self) -> Result<()> {
        Ok(())
    }
}

struct MemorySubscription {
    receiver: broadcast::Receiver<String>,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Option<String> {
        loop {
            match self.receiver.recv().await {
                Ok(message) => return Some(message),
                // A slow subscriber skips what it missed: the state is in the store.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
