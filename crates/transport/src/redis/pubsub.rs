//! [`RedisNotifier`]: wake-ups on Redis sharded pub/sub (`SPUBLISH`, `SSUBSCRIBE`; Redis 7),
//! on one server or a cluster.
//!
//! A sharded channel lives on the master that owns its hash slot, as a key does: a message
//! published there reaches the clients subscribed there, and no other shard does any work for
//! it. Publishing goes through the general client, which routes `SPUBLISH` by the channel's
//! slot.
//!
//! # A listener
//!
//! A [`Listener`] is a task (the *supervisor*) that owns one subscribed connection per node
//! (a *link*), opened when the first channel of that node is subscribed and kept while the
//! node is a master. The supervisor keeps, for every channel wanted, how many times it was
//! subscribed and where it is placed: not yet, asked of a node (`SSUBSCRIBE` sent), or
//! confirmed by it. [`Listener::subscribe`] returns when the node confirms.
//!
//! Subscriptions move by themselves:
//!
//! - When a slot moves (resharding, or a replica taking over its master's slots), the node
//!   that loses it tells its subscribers with a `sunsubscribe` they did not ask for. The
//!   channel is placed again after the slot map is read anew, on its new owner.
//! - A node that answers `SSUBSCRIBE` with `-MOVED` names the owner; the map learns it and
//!   the channel goes there.
//! - A link that fails (the node died, the connection was cut, no answer to the heartbeat
//!   `PING` for [`SILENCE`]) loses its channels; they are placed again after the map is read
//!   anew, and again after a growing pause (up to [`LONGEST_PAUSE`]) until a node confirms.
//! - Every [`CHECK_INTERVAL`] the map is read again and any channel whose slot has another
//!   owner is moved, in case a notice was lost.
//!
//! Messages published while a channel was being moved are lost, which is fine for wake-ups:
//! what they announce is in the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::slots::{self, Routing};
use super::wire::{self, Access, Address, Limits, Reply, WireError};
use super::{Commands, OPERATION_TIMEOUT, connect, unavailable};
use crate::Result;
use crate::notify::{Listener, Notification, Notifier};

/// A link that hears nothing for this long (not even the answer to its heartbeat) is taken
/// for lost.
pub(crate) const SILENCE: Duration = Duration::from_secs(15);

/// How often an idle link sends its heartbeat `PING`.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// The longest pause between two attempts to place channels that could not be placed.
pub(crate) const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// How often a cluster listener reads the slot map to find channels whose slot moved.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Messages a listener keeps for its readers before it drops new ones.
const INBOX: usize = 4096;

/// What a subscribed connection accepts: short messages.
const MESSAGE_LIMITS: Limits = Limits { bulk: 16 << 20, elements: 8, depth: 2 };

/// A [`Notifier`] on Redis sharded pub/sub.
#[derive(Clone)]
pub struct RedisNotifier {
    commands: Commands,
    routing: Arc<Routing>,
    access: Arc<Access>,
}

impl std::fmt::Debug for RedisNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisNotifier").field("routing", &self.routing).finish_non_exhaustive()
    }
}

impl RedisNotifier {
    /// Connects to `url`: one server or the seed nodes of a Redis Cluster, as
    /// [`super::RedisStore::connect`] takes them.
    pub async fn connect(url: &str) -> Result<Self> {
        let connected = connect(url).await?;
        Ok(RedisNotifier {
            commands: connected.commands,
            routing: connected.routing,
            access: connected.access,
        })
    }
}

#[async_trait]
impl Notifier for RedisNotifier {
    async fn publish(&self, channel: &str, message: &str) -> Result<()> {
        let command = redis::cmd("SPUBLISH").arg(channel).arg(message).to_owned();
        // The reply is the number of receivers; none is not an error.
        self.commands.query::<u64>("SPUBLISH", &command).await.map(drop)
    }

    async fn listen(&self) -> Result<Box<dyn Listener>> {
        let (requests, requests_in) = mpsc::unbounded_channel();
        let (heard_out, heard) = mpsc::channel(INBOX);
        let (events, events_in) = mpsc::unbounded_channel();
        let supervisor = Supervisor {
            routing: self.routing.clone(),
            access: self.access.clone(),
            wanted: HashMap::new(),
            links: HashMap::new(),
            next_link: 0,
            events,
            heard: heard_out,
            retry_at: None,
            pause: Duration::ZERO,
            stale: false,
        };
        let task = Task(tokio::spawn(supervisor.run(requests_in, events_in)));
        Ok(Box::new(RedisListener { requests, heard: tokio::sync::Mutex::new(heard), _supervisor: task }))
    }

    async fn health_check(&self) -> Result<()> {
        self.commands.query::<()>("PING", &redis::cmd("PING")).await
    }
}

/// A task that ends when its handle is dropped.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a listener asks of its supervisor.
enum Request {
    /// One more subscription of a channel; `confirmed` is answered once the node confirms.
    Subscribe { channel: String, confirmed: oneshot::Sender<()> },
    /// One subscription less.
    Unsubscribe { channel: String },
}

/// A [`Listener`] on Redis: the handle of its supervisor task.
struct RedisListener {
    requests: mpsc::UnboundedSender<Request>,
    heard: tokio::sync::Mutex<mpsc::Receiver<Notification>>,
    _supervisor: Task,
}

fn stopped() -> crate::TransportError {
    unavailable("the listener has stopped")
}

#[async_trait]
impl Listener for RedisListener {
    async fn subscribe(&self, channel: &str) -> Result<()> {
        let (confirmed, confirmation) = oneshot::channel();
        let request = Request::Subscribe { channel: channel.to_owned(), confirmed };
        self.requests.send(request).map_err(|_| stopped())?;
        match tokio::time::timeout(OPERATION_TIMEOUT, confirmation).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(unavailable(format!(
                "SSUBSCRIBE {channel}: not confirmed within {OPERATION_TIMEOUT:?}; the listener keeps trying"
            ))),
        }
    }

    async fn unsubscribe(&self, channel: &str) -> Result<()> {
        self.requests.send(Request::Unsubscribe { channel: channel.to_owned() }).map_err(|_| stopped())
    }

    async fn next(&self) -> Option<Notification> {
        self.heard.lock().await.recv().await
    }
}

/// Where a wanted channel is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placement {
    /// On no node: to be placed.
    Unplaced,
    /// `SSUBSCRIBE` sent to this node, not yet confirmed.
    Asked(Address),
    /// Confirmed by this node.
    Confirmed(Address),
}

impl Placement {
    fn node(&self) -> Option<&Address> {
        match self {
            Placement::Unplaced => None,
            Placement::Asked(node) | Placement::Confirmed(node) => Some(node),
        }
    }
}

/// A channel the listener wants.
struct Wanted {
    /// Subscriptions not undone yet.
    count: usize,
    placement: Placement,
    /// Subscribers waiting for the confirmation.
    waiters: Vec<oneshot::Sender<()>>,
}

/// A subscribed connection to one node, run by its own task.
struct Link {
    id: u64,
    /// Commands to write on the connection.
    commands: mpsc::UnboundedSender<Vec<u8>>,
    _task: Task,
}

/// What a link reports.
enum Event {
    /// A message on a channel.
    Message(String, String),
    /// The node confirmed a subscription.
    Subscribed(String),
    /// The node ended a subscription (asked, or because the channel's slot moved).
    Unsubscribed(String),
    /// The node refused a command (its error line).
    Refused(String),
    /// The connection is gone.
    Lost(String),
}

/// The state of one listener, owned by its task.
struct Supervisor {
    routing: Arc<Routing>,
    access: Arc<Access>,
    wanted: HashMap<String, Wanted>,
    links: HashMap<Address, Link>,
    next_link: u64,
    /// Where links report, with their id.
    events: mpsc::UnboundedSender<(u64, Event)>,
    /// Where messages go to the listener's readers.
    heard: mpsc::Sender<Notification>,
    /// When to place the unplaced channels again.
    retry_at: Option<Instant>,
    /// The pause before the next attempt after a failed one.
    pause: Duration,
    /// Whether the slot map must be read before channels are placed again.
    stale: bool,
}

impl Supervisor {
    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<Request>,
        mut events: mpsc::UnboundedReceiver<(u64, Event)>,
    ) {
        let mut check = tokio::time::interval_at(Instant::now() + CHECK_INTERVAL, CHECK_INTERVAL);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let retry_at = self.retry_at;
            let retry = async move {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Requests first: a message that arrives after an unsubscription is not heard.
                biased;
                request = requests.recv() => match request {
                    Some(request) => self.on_request(request),
                    None => return,
                },
                Some((link, event)) = events.recv() => self.on_event(link, event),
                () = retry => {
                    self.retry_at = None;
                    self.place_all().await;
                }
                _ = check.tick(), if self.routing.topology().is_some() && !self.wanted.is_empty() => {
                    self.stale = true;
                    self.place_all().await;
                }
            }
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Subscribe { channel, confirmed } => {
                let wanted = self.wanted.entry(channel.clone()).or_insert_with(|| Wanted {
                    count: 0,
                    placement: Placement::Unplaced,
                    waiters: Vec::new(),
                });
                wanted.count += 1;
                match wanted.placement {
                    Placement::Confirmed(_) => {
                        let _ = confirmed.send(());
                    }
                    Placement::Asked(_) => wanted.waiters.push(confirmed),
                    Placement::Unplaced => {
                        wanted.waiters.push(confirmed);
                        self.place(&channel);
                    }
                }
            }
            Request::Unsubscribe { channel } => {
                let Some(wanted) = self.wanted.get_mut(&channel) else { return };
                wanted.count -= 1;
                if wanted.count > 0 {
                    return;
                }
                if let Some(wanted) = self.wanted.remove(&channel)
                    && let Some(link) = wanted.placement.node().and_then(|node| self.links.get(node))
                {
                    let _ = link.commands.send(wire::encode(&[b"SUNSUBSCRIBE", channel.as_bytes()]));
                }
            }
        }
    }

    fn on_event(&mut self, link: u64, event: Event) {
        let Some(node) = self.links.iter().find(|(_, l)| l.id == link).map(|(node, _)| node.clone()) else {
            return; // A link replaced since; what it says no longer matters.
        };
        match event {
            Event::Message(channel, message) => {
                if self.wanted.contains_key(&channel)
                    && let Err(mpsc::error::TrySendError::Full(_)) =
                        self.heard.try_send(Notification { channel, message })
                {
                    tracing::debug!("nobody reads the listener's messages; a wake-up is dropped");
                }
            }
            Event::Subscribed(channel) => {
                if let Some(wanted) = self.wanted.get_mut(&channel)
                    && wanted.placement == Placement::Asked(node.clone())
                {
                    wanted.placement = Placement::Confirmed(node);
                    for waiter in wanted.waiters.drain(..) {
                        let _ = waiter.send(());
                    }
                    self.pause = Duration::ZERO;
                }
            }
            Event::Unsubscribed(channel) => {
                if let Some(wanted) = self.wanted.get_mut(&channel)
                    && wanted.placement.node() == Some(&node)
                {
                    // Not asked for: the channel's slot left this node.
                    tracing::debug!(%node, channel, "a node ended a subscription; placing it again");
                    wanted.placement = Placement::Unplaced;
                    self.stale = true;
                    self.retry_soon(Duration::ZERO);
                }
            }
            Event::Refused(line) => self.on_refusal(&node, &line),
            Event::Lost(why) => {
                tracing::warn!(%node, why, "a subscribed connection to Redis was lost; subscribing again");
                self.links.remove(&node);
                for wanted in self.wanted.values_mut() {
                    if wanted.placement.node() == Some(&node) {
                        wanted.placement = Placement::Unplaced;
                    }
                }
                self.stale = true;
                let pause = self.pause;
                self.pause = (self.pause * 2).clamp(Duration::from_millis(50), LONGEST_PAUSE);
                self.retry_soon(pause);
            }
        }
    }

    /// A node refused a subscription: `MOVED` names the channel's owner; anything else is
    /// retried after a pause, for every channel still waiting on that node.
    fn on_refusal(&mut self, node: &Address, line: &str) {
        let mut words = line.split_ascii_whitespace();
        let moved = match (words.next(), words.next(), words.next()) {
            (Some("MOVED"), Some(slot), Some(owner)) => slot.parse::<u16>().ok().zip(Address::parse(owner)),
            _ => None,
        };
        if let (Some((slot, owner)), Some(topology)) = (&moved, self.routing.topology()) {
            topology.moved(*slot, owner);
        } else {
            tracing::warn!(%node, refusal = line, "Redis refused a subscription; trying again");
        }
        let mut again = Vec::new();
        for (channel, wanted) in &mut self.wanted {
            let waiting_here = wanted.placement == Placement::Asked(node.clone());
            let concerned = match moved {
                Some((slot, _)) => slots::slot(channel.as_bytes()) == slot,
                None => true,
            };
            if waiting_here && concerned {
                wanted.placement = Placement::Unplaced;
                again.push(channel.clone());
            }
        }
        if moved.is_some() {
            for channel in again {
                self.place(&channel);
            }
        } else {
            let pause = self.pause;
            self.pause = (self.pause * 2).clamp(Duration::from_millis(50), LONGEST_PAUSE);
            self.retry_soon(pause.max(Duration::from_millis(50)));
        }
    }

    /// Places the unplaced channels after `pause` (or sooner, if already due).
    fn retry_soon(&mut self, pause: Duration) {
        let at = Instant::now() + pause;
        self.retry_at = Some(self.retry_at.map_or(at, |due| due.min(at)));
    }

    /// Reads the slot map if it is stale, moves channels whose slot has another owner, and
    /// places every unplaced channel.
    async fn place_all(&mut self) {
        if let Some(topology) = self.routing.topology()
            && std::mem::take(&mut self.stale)
        {
            if !topology.refresh().await {
                tracing::debug!("no node gave the slot map; trying again");
            }
            // Channels placed on a node that no longer owns their slot move.
            for (channel, wanted) in &mut self.wanted {
                let owner = topology.owner(slots::slot(channel.as_bytes()));
                if wanted.placement.node().is_some() && wanted.placement.node() != owner.as_ref() {
                    if let Some(link) = wanted.placement.node().and_then(|node| self.links.get(node)) {
                        let _ = link.commands.send(wire::encode(&[b"SUNSUBSCRIBE", channel.as_bytes()]));
                    }
                    wanted.placement = Placement::Unplaced;
                }
            }
            // Links to nodes that are no longer masters, with nothing on them, close.
            let masters = self.routing.masters();
            let wanted = &self.wanted;
            self.links.retain(|node, _| {
                masters.contains(node) || wanted.values().any(|w| w.placement.node() == Some(node))
            });
        }
        let unplaced: Vec<String> = self
            .wanted
            .iter()
            .filter(|(_, wanted)| wanted.placement == Placement::Unplaced)
            .map(|(channel, _)| channel.clone())
            .collect();
        for channel in unplaced {
            self.place(&channel);
        }
    }

    /// Asks the owner of `channel`'s slot to subscribe it, opening a link to it if needed.
    fn place(&mut self, channel: &str) {
        let Some(node) = self.routing.owner(slots::slot(channel.as_bytes())) else {
            self.stale = true;
            let pause = self.pause.max(Duration::from_millis(50));
            self.retry_soon(pause);
            return;
        };
        let link = match self.links.get(&node) {
            Some(link) => link,
            None => {
                let link = self.open_link(&node);
                self.links.entry(node.clone()).or_insert(link)
            }
        };
        if link.commands.send(wire::encode(&[b"SSUBSCRIBE", channel.as_bytes()])).is_ok()
            && let Some(wanted) = self.wanted.get_mut(channel)
        {
            wanted.placement = Placement::Asked(node);
        }
    }

    fn open_link(&mut self, node: &Address) -> Link {
        let id = self.next_link;
        self.next_link += 1;
        let (commands, commands_in) = mpsc::unbounded_channel();
        let (access, events, address) = (self.access.clone(), self.events.clone(), node.clone());
        let task = tokio::spawn(async move {
            let why = match run_link(&access, &address, commands_in, &events, id).await {
                Ok(()) => return, // The supervisor closed it.
                Err(error) => error.to_string(),
            };
            let _ = events.send((id, Event::Lost(why)));
        });
        Link { id, commands, _task: Task(task) }
    }
}

/// Runs one subscribed connection: writes the supervisor's commands, reports what the node
/// says, and sends a heartbeat while idle. Ends with `Ok` when the supervisor closes the
/// link, with the failure otherwise.
async fn run_link(
    access: &Access,
    node: &Address,
    mut commands: mpsc::UnboundedReceiver<Vec<u8>>,
    events: &mpsc::UnboundedSender<(u64, Event)>,
    id: u64,
) -> std::result::Result<(), WireError> {
    let mut connection = match tokio::time::timeout(OPERATION_TIMEOUT, access.connect(node)).await {
        Ok(connection) => connection?,
        Err(_) => return Err(WireError::Io(std::io::ErrorKind::TimedOut.into())),
    };
    let mut buffer = BytesMut::with_capacity(4096);
    let mut heard_at = Instant::now();
    let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return Ok(()) };
                match tokio::time::timeout(OPERATION_TIMEOUT, wire::write_all(&mut connection, &[&command])).await {
                    Ok(written) => written?,
                    Err(_) => return Err(WireError::Io(std::io::ErrorKind::TimedOut.into())),
                }
            }
            read = connection.read_buf(&mut buffer) => {
                if read? == 0 {
                    return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                }
                heard_at = Instant::now();
                while let Some((reply, used)) = wire::parse(&buffer, MESSAGE_LIMITS)? {
                    buffer.advance(used);
                    if let Some(event) = event_of(reply) {
                        let _ = events.send((id, event));
                    }
                }
            }
            _ = heartbeat.tick() => {
                if heard_at.elapsed() > SILENCE {
                    return Err(WireError::Io(std::io::Error::other(format!("no answer for {SILENCE:?}"))));
                }
                let ping = wire::encode(&[b"PING"]);
                match tokio::time::timeout(OPERATION_TIMEOUT, wire::write_all(&mut connection, &[&ping])).await {
                    Ok(written) => written?,
                    Err(_) => return Err(WireError::Io(std::io::ErrorKind::TimedOut.into())),
                }
            }
        }
    }
}

/// What a reply on a subscribed connection means (`None`: nothing to report, such as the
/// heartbeat's answer).
fn event_of(reply: Reply) -> Option<Event> {
    match reply {
        Reply::Error(line) => Some(Event::Refused(line)),
        Reply::Array(Some(parts)) => {
            let kind = parts.first().and_then(Reply::text)?;
            let channel = || parts.get(1).and_then(Reply::text).map(str::to_owned);
            match kind {
                "smessage" => match parts.get(2).and_then(Reply::text) {
                    Some(message) => Some(Event::Message(channel()?, message.to_owned())),
                    None => {
                        tracing::debug!("ignoring a notification that is not text");
                        None
                    }
                },
                "ssubscribe" => Some(Event::Subscribed(channel()?)),
                "sunsubscribe" => Some(Event::Unsubscribed(channel()?)),
                _ => None,
            }
        }
        _ => None,
    }
}
