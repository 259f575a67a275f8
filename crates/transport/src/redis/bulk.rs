//! Large values in and out without copying them: for a `SET`, the command's header, the
//! caller's buffer and the command's tail go to the socket in one vectored write; for a
//! `GETRANGE`, the reply's bytes are read from the socket straight into one buffer of the size
//! the reply announces, once that size is checked against the range asked for. Both on raw
//! connections ([`super::wire`]) kept for this.
//!
//! The general client packs every command into a fresh buffer and then into its connection's
//! write buffer: a one-megabyte upload is copied three times before it reaches the socket,
//! which was most of the backend's CPU per job. Its reply parser reads a large value through
//! its own buffers too, at about 450 MB/s here: 22 ms of a worker's 10 MB share of a 48 MP
//! JPEG. Here each is copied once, by the kernel (and once more by TLS, when used).
//!
//! # Which node
//!
//! Each command goes to the node that owns its key's slot ([`Routing`]), on a connection from
//! that node's small pool. What a node answers decides what happens next:
//!
//! - `-MOVED <slot> <node>`: the slot has a new owner for good. The map learns it at once
//!   ([`super::slots::Topology::moved`]) and the command goes to that node.
//! - `-ASK <slot> <node>`: the slot is being moved and the key is already at `<node>` (or, for
//!   a new key, will be). The command goes there once, after `ASKING`; the map is not changed,
//!   since the slot still belongs to the first node until the move ends.
//! - A connection that fails (the node died, a failover is under way), or `-TRYAGAIN`,
//!   `-CLUSTERDOWN`, `-MASTERDOWN`, `-READONLY`, `-LOADING`: the slot map is read again and
//!   the command tried again after a short pause, until its deadline. A pooled connection
//!   that the server closed while it was idle is replaced at once, without a new map. On one
//!   server there is no map: these failures end the command.
//!
//! Every command here may be sent twice: a `SET` of the same value and TTL and a `GETRANGE`
//! are idempotent. A value written in parts ([`PartedSet`]) is the exception: its bytes are
//! gone once sent, so when its slot moves while it is written, the node refuses the `SET` at
//! its end (`MOVED` or `ASK`), nothing is set, and the caller writes the value again whole.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::slots::{self, Routing};
use super::wire::{self, Access, Address, Connection, LONGEST_LINE, WireError};

/// Connections kept idle at most, per node.
const IDLE_CONNECTIONS: usize = 16;

/// Redirects followed for one command before it fails (a slot does not move that often).
const MOST_REDIRECTS: usize = 5;

/// The pause before a command is tried again after a failure that may pass.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The longest `INFO` section read.
const LONGEST_INFO: usize = 1 << 20;

/// Pools of connections for large `SET`s and `GETRANGE`s, one per node.
pub(crate) struct Bulk {
    routing: Arc<Routing>,
    access: Arc<Access>,
    idle: Mutex<HashMap<Address, Vec<Connection>>>,
}

/// Where the next attempt of a command goes.
enum Next {
    /// To the owner of the key's slot in the map.
    Owner,
    /// To a node a `MOVED` named.
    Moved(Address),
    /// To a node an `ASK` named, after `ASKING`.
    Ask(Address),
}

/// What a node's refusal means for the command.
enum Refusal {
    /// `MOVED`: the slot's new owner.
    Moved(u16, Address),
    /// `ASK`: the node to ask once.
    Ask(Address),
    /// A state that passes: try again after a pause and a new map.
    Passing,
    /// Final: the command fails with it.
    Final,
}

fn read_refusal(line: &str) -> Refusal {
    let mut words = line.split_ascii_whitespace();
    let (kind, slot, node) = (words.next(), words.next(), words.next());
    let redirect = slot.and_then(|s| s.parse::<u16>().ok()).zip(node.and_then(Address::parse));
    match (kind, redirect) {
        (Some("MOVED"), Some((slot, node))) => Refusal::Moved(slot, node),
        (Some("ASK"), Some((_, node))) => Refusal::Ask(node),
        (Some("TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "READONLY" | "LOADING"), _) => Refusal::Passing,
        _ => Refusal::Final,
    }
}

impl Bulk {
    /// Pools for the nodes of `routing`, connected with `access`.
    pub(crate) fn new(routing: Arc<Routing>, access: Arc<Access>) -> Bulk {
        Bulk { routing, access, idle: Mutex::new(HashMap::new()) }
    }

    /// `SET key value PX ttl`, the value written straight from `value`.
    pub(crate) async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: u64,
        deadline: Instant,
    ) -> Result<(), WireError> {
        let (head, tail) = set_command(key, value.len() as u64, ttl_ms);
        self.routed(key, deadline, &Request::Set([&head, value, &tail])).await.map(|_| ())
    }

    /// `GETRANGE key start end` (`end` inclusive, as Redis takes it), the reply read into one
    /// buffer of the announced size, which may not exceed the range.
    pub(crate) async fn get_range(
        &self,
        key: &str,
        start: u64,
        end: u64,
        deadline: Instant,
    ) -> Result<Bytes, WireError> {
        let (first, last) = (start.to_string(), end.to_string());
        let command = wire::encode(&[b"GETRANGE", key.as_bytes(), first.as_bytes(), last.as_bytes()]);
        let most = usize::try_from(end - start + 1).unwrap_or(usize::MAX);
        self.routed(key, deadline, &Request::Read(&command, most)).await
    }

    /// The `INFO` section `section` of the node at `address` (no redirects: a node answers
    /// for itself).
    pub(crate) async fn info(&self, address: &Address, section: &str) -> Result<String, WireError> {
        let command = wire::encode(&[b"INFO", section.as_bytes()]);
        let reply = self.run_on(address, false, &Request::Read(&command, LONGEST_INFO)).await?;
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }

    /// Starts `SET key value PX ttl` for a value of `len` bytes written in parts
    /// ([`PartedSet::write`]), on a new connection to the owner of the key's slot: the server
    /// takes the bytes as they come and sets the value once the last one and the command's
    /// tail are in.
    pub(crate) async fn set_in_parts(
        &self,
        key: &str,
        len: u64,
        ttl_ms: u64,
    ) -> Result<PartedSet, WireError> {
        let address = self.owner(slots::slot(key.as_bytes()))?;
        let connection = match self.access.connect(&address).await {
            Ok(connection) => connection,
            Err(error) => {
                self.lost(&address).await;
                return Err(error);
            }
        };
        let (head, tail) = set_command(key, len, ttl_ms);
        Ok(PartedSet { connection, address, head, remaining: len, tail })
    }

    /// The node that owns `slot`, as far as the map knows.
    fn owner(&self, slot: u16) -> Result<Address, WireError> {
        self.routing
            .owner(slot)
            .ok_or_else(|| WireError::Refused(format!("CLUSTERDOWN no node owns slot {slot}")))
    }

    /// Runs `request` for `key` on the node that owns its slot, following redirects and
    /// retrying failures that pass until `deadline` (see the module's documentation).
    async fn routed(&self, key: &str, deadline: Instant, request: &Request<'_>) -> Result<Bytes, WireError> {
        let slot = slots::slot(key.as_bytes());
        let mut next = Next::Owner;
        let mut redirects = 0;
        loop {
            let (address, asking) = match next {
                Next::Owner => (self.owner(slot)?, false),
                Next::Moved(address) => (address, false),
                Next::Ask(address) => (address, true),
            };
            let error = match self.run_on(&address, asking, request).await {
                Ok(reply) => return Ok(reply),
                Err(error) => error,
            };
            let Some(topology) = self.routing.topology() else { return Err(error) };
            next = match &error {
                WireError::Refused(line) => match read_refusal(line) {
                    Refusal::Moved(slot, node) if redirects < MOST_REDIRECTS => {
                        topology.moved(slot, &node);
                        redirects += 1;
                        Next::Moved(node)
                    }
                    Refusal::Ask(node) if redirects < MOST_REDIRECTS => {
                        redirects += 1;
                        Next::Ask(node)
                    }
                    Refusal::Passing => Next::Owner,
                    _ => return Err(error),
                },
                WireError::Io(_) => Next::Owner,
                WireError::Malformed(_) => return Err(error),
            };
            if matches!(next, Next::Owner) {
                if Instant::now() + RETRY_PAUSE >= deadline {
                    return Err(error);
                }
                tracing::debug!(%address, %error, "a bulk command failed; reading the slot map again");
                tokio::time::sleep(RETRY_PAUSE).await;
                topology.refresh().await;
            }
        }
    }

    /// Runs one request on a pooled (or new) connection to `address`, once more on a new
    /// connection when a pooled one turns out closed, and gives the connection back unless
    /// its I/O failed or its reply was not understood (then its state is unknown).
    async fn run_on(
        &self,
        address: &Address,
        asking: bool,
        request: &Request<'_>,
    ) -> Result<Bytes, WireError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.get_mut(address)?.pop());
        let reused = pooled.is_some();
        let mut connection = match pooled {
            Some(connection) => connection,
            None => self.connect(address).await?,
        };
        let mut result = request.run(&mut connection, asking).await;
        if reused && matches!(result, Err(WireError::Io(_))) {
            // Closed while idle: once more on a new connection.
            connection = self.connect(address).await?;
            result = request.run(&mut connection, asking).await;
        }
        match &result {
            // A refusal leaves the connection in a known state.
            Ok(_) | Err(WireError::Refused(_)) => self.give_back(address, connection),
            Err(WireError::Io(_)) => self.forget(address),
            Err(WireError::Malformed(_)) => {}
        }
        result
    }

    /// A new connection to `address`; when that fails, the node's idle connections go too.
    async fn connect(&self, address: &Address) -> Result<Connection, WireError> {
        self.access.connect(address).await.inspect_err(|_| self.forget(address))
    }

    /// After a connection to `address` failed outside [`Bulk::routed`]: its idle
    /// connections go, and a cluster's map is read again.
    async fn lost(&self, address: &Address) {
        self.forget(address);
        if let Some(topology) = self.routing.topology() {
            topology.refresh().await;
        }
    }

    /// Keeps `connection` for later commands to `address`, if its pool has room.
    fn give_back(&self, address: &Address, connection: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            let pool = idle.entry(address.clone()).or_default();
            if pool.len() < IDLE_CONNECTIONS {
                pool.push(connection);
            }
        }
    }

    /// Drops the idle connections to `address` (after it was found unreachable).
    pub(crate) fn forget(&self, address: &Address) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.remove(address);
        }
    }

    /// Drops every idle connection (after a command timed out, with its node unknown).
    pub(crate) fn forget_all(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

/// The parts of `SET key <value of len bytes> PX ttl` before and after the value.
fn set_command(key: &str, len: u64, ttl_ms: u64) -> (Vec<u8>, Vec<u8>) {
    let mut head = Vec::with_capacity(64 + key.len());
    head.extend_from_slice(b"*5\r\n");
    wire::bulk(&mut head, b"SET");
    wire::bulk(&mut head, key.as_bytes());
    head.extend_from_slice(format!("${len}\r\n").as_bytes());
    let mut tail = b"\r\n".to_vec();
    wire::bulk(&mut tail, b"PX");
    wire::bulk(&mut tail, ttl_ms.to_string().as_bytes());
    (head, tail)
}

/// A `SET` whose value is being written in parts. Dropped before [`PartedSet::finish`], its
/// connection closes with the command unfinished, and the server drops it.
pub(crate) struct PartedSet {
    connection: Connection,
    /// The node it is written to.
    address: Address,
    /// The command up to the value, sent with the first part (empty once sent).
    head: Vec<u8>,
    /// Bytes of the value still to come.
    remaining: u64,
    /// The command after the value.
    tail: Vec<u8>,
}

impl PartedSet {
    /// Writes the next bytes of the value, `parts` in one vectored write.
    pub(crate) async fn write(&mut self, parts: &[&[u8]]) -> Result<(), WireError> {
        let bytes: u64 = parts.iter().map(|p| p.len() as u64).sum();
        if bytes > self.remaining {
            return Err(WireError::Malformed("more bytes than the value's announced length".into()));
        }
        let mut all = Vec::with_capacity(parts.len() + 1);
        all.push(&self.head[..]);
        all.extend_from_slice(parts);
        wire::write_all(&mut self.connection, &all).await?;
        self.head.clear();
        self.remaining -= bytes;
        Ok(())
    }

    /// Sends the command's tail and reads the `+OK`; the connection goes back to `bulk`'s
    /// pool. A `MOVED` answer is recorded in the slot map (the value is not set).
    pub(crate) async fn finish(mut self, bulk: &Bulk) -> Result<(), WireError> {
        if self.remaining > 0 {
            return Err(WireError::Malformed(format!(
                "the value ended {} bytes short of its announced length",
                self.remaining
            )));
        }
        let sent = wire::write_all(&mut self.connection, &[&self.head, &self.tail]).await;
        let result = match sent {
            Ok(()) => wire::read_ok(&mut self.connection, 1).await,
            Err(error) => Err(error.into()),
        };
        match &result {
            Ok(()) | Err(WireError::Refused(_)) => bulk.give_back(&self.address, self.connection),
            Err(_) => bulk.lost(&self.address).await,
        }
        if let (Err(WireError::Refused(line)), Some(topology)) = (&result, bulk.routing.topology())
            && let Refusal::Moved(slot, node) = read_refusal(line)
        {
            topology.moved(slot, &node);
        }
        result
    }
}

/// One command on a bulk connection.
enum Request<'a> {
    /// A `SET` in parts (header, value, tail), answered `+OK`.
    Set([&'a [u8]; 3]),
    /// A command answered with one bulk string of at most this many bytes.
    Read(&'a [u8], usize),
}

impl Request<'_> {
    /// Sends the command (after `ASKING`, when `asking`) and reads its reply (empty for a
    /// `SET`).
    async fn run(&self, connection: &mut Connection, asking: bool) -> Result<Bytes, WireError> {
        if asking {
            wire::write_all(connection, &[b"*1\r\n$6\r\nASKING\r\n"]).await?;
            wire::read_ok(connection, 1).await?;
        }
        match self {
            Request::Set(parts) => {
                wire::write_all(connection, parts).await?;
                wire::read_ok(connection, 1).await.map(|()| Bytes::new())
            }
            Request::Read(command, most) => {
                wire::write_all(connection, &[command]).await?;
                read_bulk(connection, *most).await
            }
        }
    }
}

/// Reads one bulk-string reply (`$<len>\r\n<bytes>\r\n`; `$-1` reads as empty, as
/// `GETRANGE` answers for a missing key) into a buffer of exactly its size, once that size is
/// found to be at most `most` bytes: a server that announces more than was asked for is
/// answered with [`WireError::Malformed`] before anything is allocated for it.
pub(crate) async fn read_bulk(connection: &mut Connection, most: usize) -> Result<Bytes, WireError> {
    let mut head = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    // The length line is short: read it a byte at a time so nothing of the value is taken.
    while !head.ends_with(b"\r\n") {
        if connection.read(&mut byte).await? == 0 {
            return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        head.push(byte[0]);
        if head.len() > LONGEST_LINE {
            return Err(WireError::Malformed("reply line too long".into()));
        }
    }
    let line = String::from_utf8_lossy(&head[..head.len() - 2]).into_owned();
    let length = match line.strip_prefix('$') {
        Some("-1") => return Ok(Bytes::new()),
        Some(n) => n.parse::<u64>().map_err(|_| WireError::Malformed(format!("bad bulk length {n:?}")))?,
        None if line.starts_with('-') => return Err(wire::refusal(line.as_bytes())),
        None => return Err(WireError::Malformed(format!("unexpected reply {line:?}"))),
    };
    let length = usize::try_from(length).ok().filter(|&n| n <= most).ok_or_else(|| {
        WireError::Malformed(format!(
            "the server announced {length} bytes where at most {most} were asked for"
        ))
    })?;
    let mut value = BytesMut::with_capacity(length + 2);
    while value.len() < length + 2 {
        if connection.read_buf(&mut value).await? == 0 {
            return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
    if !value.ends_with(b"\r\n") || value.len() != length + 2 {
        return Err(WireError::Malformed("bulk reply without its end".into()));
    }
    value.truncate(length);
    Ok(value.freeze())
}

/// How long a bulk command may take: the usual bound, plus time for the bytes at 100 MB/s.
pub(crate) fn bulk_timeout(base: Duration, bytes: usize) -> Duration {
    base + Duration::from_millis(bytes as u64 / 100_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_read() {
        assert!(matches!(read_refusal("MOVED 3999 127.0.0.1:6381"), Refusal::Moved(3999, _)));
        assert!(matches!(read_refusal("ASK 3999 127.0.0.1:6381"), Refusal::Ask(_)));
        assert!(matches!(
            read_refusal("TRYAGAIN Multiple keys request during rehashing of slot"),
            Refusal::Passing
        ));
        assert!(matches!(
            read_refusal("READONLY You can't write against a read only replica."),
            Refusal::Passing
        ));
        assert!(matches!(read_refusal("OOM command not allowed"), Refusal::Final));
        assert!(matches!(read_refusal("MOVED nonsense"), Refusal::Final));
    }
}
