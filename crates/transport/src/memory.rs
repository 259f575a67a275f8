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
use tokio::sync::{Notify, mpsc};

use crate::Result;
use crate::notify::{Listener, Notification, Notifier};
use crate::queue::{Acker, Consumer, Delivery, JobQueue, QueueConfig};
use crate::store::{ShardMemory, Store};

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

    /// The bytes of the live keys and their values, without a limit: the process's own memory
    /// is the limit, which the store does not know.
    async fn memory(&self) -> Result<Vec<ShardMemory>> {
        let now = Instant::now();
        let state = lock(&self.state);
        let used = state
            .entries
            .iter()
            .filter(|(_, entry)| entry.expires > now)
            .map(|(key, entry)| {
                key.len()
                    + match &entry.value {
                        Value::Plain(bytes) => bytes.len(),
                        Value::Hash(fields) => fields.iter().map(|(f, v)| f.len() + v.len()).sum(),
                        Value::Set(members) => members.iter().map(String::len).sum(),
                    }
            })
            .sum::<usize>();
        Ok(vec![ShardMemory { shard: "memory".into(), used: used as u64, limit: None }])
    }
}

/// An in-process notifier: the channels and listeners of one process.
#[derive(Debug, Clone, Default)]
pub struct MemoryNotifier {
    hub: Arc<Mutex<Hub>>,
}

/// Who listens to what.
#[derive(Debug, Default)]
struct Hub {
    next_listener: u64,
    /// For each channel, its listeners and how many times each subscribed.
    channels: HashMap<String, HashMap<u64, usize>>,
    /// Each listener's inbox.
    inboxes: HashMap<u64, mpsc::Sender<Notification>>,
}

/// Messages an idle listener keeps before it misses new ones.
const INBOX: usize = 4096;

impl MemoryNotifier {
    /// A new notifier with no listeners.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Notifier for MemoryNotifier {
    async fn publish(&self, channel: &str, message: &str) -> Result<()> {
        let hub = lock(&self.hub);
        let Some(listeners) = hub.channels.get(channel) else { return Ok(()) };
        for id in listeners.keys() {
            let notification = Notification { channel: channel.to_owned(), message: message.to_owned() };
            // A listener that does not read misses messages: wake-ups are best effort.
            if let Some(inbox) = hub.inboxes.get(id)
                && inbox.try_send(notification).is_err()
            {
                tracing::debug!(channel, "a listener's inbox is full; a wake-up is dropped");
            }
        }
        Ok(())
    }

    async fn listen(&self) -> Result<Box<dyn Listener>> {
        let (sender, inbox) = mpsc::channel(INBOX);
        let mut hub = lock(&self.hub);
        let id = hub.next_listener;
        hub.next_listener += 1;
        hub.inboxes.insert(id, sender);
        Ok(Box::new(MemoryListener { id, hub: self.hub.clone(), inbox: tokio::sync::Mutex::new(inbox) }))
    }

    async fn health_check(&self) -> Result<()> {
        Ok(())
    }
}

/// A listener of a [`MemoryNotifier`].
struct MemoryListener {
    id: u64,
    hub: Arc<Mutex<Hub>>,
    inbox: tokio::sync::Mutex<mpsc::Receiver<Notification>>,
}

#[async_trait]
impl Listener for MemoryListener {
    async fn subscribe(&self, channel: &str) -> Result<()> {
        let mut hub = lock(&self.hub);
        *hub.channels.entry(channel.to_owned()).or_default().entry(self.id).or_default() += 1;
        Ok(())
    }

    async fn unsubscribe(&self, channel: &str) -> Result<()> {
        let mut hub = lock(&self.hub);
        if let Some(listeners) = hub.channels.get_mut(channel) {
            if let Some(count) = listeners.get_mut(&self.id) {
                *count -= 1;
                if *count == 0 {
                    listeners.remove(&self.id);
                }
            }
            if listeners.is_empty() {
                hub.channels.remove(channel);
            }
        }
        Ok(())
    }

    async fn next(&self) -> Option<Notification> {
        self.inbox.lock().await.recv().await
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        let mut hub = lock(&self.hub);
        hub.inboxes.remove(&self.id);
        hub.channels.retain(|_, listeners| {
            listeners.remove(&self.id);
            !listeners.is_empty()
        });
    }
}
