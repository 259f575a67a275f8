//! Large values in and out without copying them: for a `SET`, the command's header, the
//! caller's buffer and the command's tail go to the socket in one vectored write; for a
//! `GETRANGE`, the reply's bytes are read from the socket straight into one buffer of the size
//! the reply announces. Both on connections kept for this.
//!
//! The general client packs every command into a fresh buffer and then into its connection's
//! write buffer: a one-megabyte upload is copied three times before it reaches the socket,
//! which was most of the backend's CPU per job. Its reply parser reads a large value through
//! its own buffers too, at about 450 MB/s here: 22 ms of a worker's 10 MB share of a 48 MP
//! JPEG. Here each is copied once, by the kernel.
//!
//! Connections come from a small pool. A pooled connection may have been closed by the server
//! since its last use (a restart, an idle timeout): a command that fails on one is tried once
//! more on a new connection, which is safe because a `SET` of the same value and TTL is
//! idempotent. Only TCP and Unix-socket URLs are handled; for others (TLS) the store uses the
//! general client.

use std::io::IoSlice;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use redis::{ConnectionAddr, ConnectionInfo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Connections kept idle at most.
const IDLE_CONNECTIONS: usize = 16;
/// The longest reply line read (`+OK` or an error message).
const LONGEST_REPLY: usize = 4096;

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}
type Connection = Pin<Box<dyn Stream>>;

/// Where the server is.
#[derive(Debug, Clone)]
enum Address {
    Tcp(String, u16),
    Unix(PathBuf),
}

/// A pool of connections for large `SET`s and `GETRANGE`s.
pub(crate) struct BulkWriter {
    address: Address,
    /// `AUTH` and `SELECT`, encoded, sent on every new connection (empty when not needed),
    /// and how many replies they give.
    handshake: (Vec<u8>, usize),
    idle: Mutex<Vec<Connection>>,
}

/// Why a bulk `SET` failed.
#[derive(Debug)]
pub(crate) enum BulkError {
    /// The connection failed: the server may be down.
    Io(std::io::Error),
    /// The server refused the command (its error line).
    Refused(String),
}

impl std::fmt::Display for BulkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BulkError::Io(e) => e.fmt(f),
            BulkError::Refused(line) => f.write_str(line),
        }
    }
}

impl From<std::io::Error> for BulkError {
    fn from(e: std::io::Error) -> Self {
        BulkError::Io(e)
    }
}

/// One RESP bulk string.
fn bulk(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// One RESP command.
fn command(out: &mut Vec<u8>, words: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
    for word in words {
        bulk(out, word);
    }
}

impl BulkWriter {
    /// A writer for the server of `info`; `None` for connections it does not handle (TLS).
    pub(crate) fn new(info: &ConnectionInfo) -> Option<BulkWriter> {
        let address = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Address::Tcp(host.clone(), *port),
            ConnectionAddr::Unix(path) => Address::Unix(path.clone()),
            _ => return None,
        };
        let settings = info.redis_settings();
        let (mut handshake, mut replies) = (Vec::new(), 0);
        if let Some(password) = settings.password() {
            match settings.username() {
                Some(user) => command(&mut handshake, &[b"AUTH", user.as_bytes(), password.as_bytes()]),
                None => command(&mut handshake, &[b"AUTH", password.as_bytes()]),
            }
            replies += 1;
        }
        if settings.db() != 0 {
            command(&mut handshake, &[b"SELECT", settings.db().to_string().as_bytes()]);
            replies += 1;
        }
        Some(BulkWriter { address, handshake: (handshake, replies), idle: Mutex::new(Vec::new()) })
    }

    async fn connect(&self) -> Result<Connection, BulkError> {
        let mut connection: Connection = match &self.address {
            Address::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                Box::pin(stream)
            }
            #[cfg(unix)]
            Address::Unix(path) => Box::pin(tokio::net::UnixStream::connect(path).await?),
            #[cfg(not(unix))]
            Address::Unix(_) => {
                return Err(BulkError::Io(std::io::Error::other("Unix sockets need a Unix system")));
            }
        };
        let (handshake, replies) = &self.handshake;
        if !handshake.is_empty() {
            connection.write_all(handshake).await?;
            read_ok(&mut connection, *replies).await?;
        }
        Ok(connection)
    }

    /// `SET key value PX ttl`, the value written straight from `value`.
    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<(), BulkError> {
        let mut head = Vec::with_capacity(64 + key.len());
        head.extend_from_slice(b"*5\r\n");
        bulk(&mut head, b"SET");
        bulk(&mut head, key.as_bytes());
        head.extend_from_slice(format!("${}\r\n", value.len()).as_bytes());
        let mut tail = b"\r\n".to_vec();
        bulk(&mut tail, b"PX");
        bulk(&mut tail, ttl_ms.to_string().as_bytes());
        self.exchange(&Request::Set([&head, value, &tail])).await.map(|_| ())
    }

    /// Starts `SET key value PX ttl` for a value of `len` bytes written in parts
    /// ([`PartedSet::write`]), on a new connection: the server takes the bytes as they come and
    /// sets the value once the last one and the command's tail are in.
    pub(crate) async fn set_in_parts(
        &self,
        key: &str,
        len: u64,
        ttl_ms: u64,
    ) -> Result<PartedSet, BulkError> {
        let mut head = Vec::with_capacity(64 + key.len());
        head.extend_from_slice(b"*5\r\n");
        bulk(&mut head, b"SET");
        bulk(&mut head, key.as_bytes());
        head.extend_from_slice(format!("${len}\r\n").as_bytes());
        let mut tail = b"\r\n".to_vec();
        bulk(&mut tail, b"PX");
        bulk(&mut tail, ttl_ms.to_string().as_bytes());
        Ok(PartedSet { connection: self.connect().await?, head, remaining: len, tail })
    }

    /// Keeps `connection` for later commands, if the pool has room.
    fn give_back(&self, connection: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE_CONNECTIONS
        {
            idle.push(connection);
        }
    }

    /// `GETRANGE key start end` (`end` inclusive, as Redis takes it), the reply read into one
    /// buffer of the announced size.
    pub(crate) async fn get_range(&self, key: &str, start: u64, end: u64) -> Result<Bytes, BulkError> {
        let mut request = Vec::with_capacity(64 + key.len());
        let (start, end) = (start.to_string(), end.to_string());
        command(&mut request, &[b"GETRANGE", key.as_bytes(), start.as_bytes(), end.as_bytes()]);
        self.exchange(&Request::Read(&request)).await
    }

    /// Runs one request on a pooled (or new) connection, once more on a new connection when a
    /// pooled one turns out closed (every request here is idempotent), and gives the
    /// connection back unless its I/O failed (then its state is unknown).
    async fn exchange(&self, request: &Request<'_>) -> Result<Bytes, BulkError> {
        let pooled = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
        let reused = pooled.is_some();
        let mut connection = match pooled {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        let mut result = request.run(&mut connection).await;
        if reused && matches!(result, Err(BulkError::Io(_))) {
            // Closed while idle: once more on a new connection.
            connection = self.connect().await?;
            result = request.run(&mut connection).await;
        }
        match result {
            // Errors on the I/O drop the connection; a refusal leaves it in a known state.
            Ok(_) | Err(BulkError::Refused(_)) => self.give_back(connection),
            Err(BulkError::Io(_)) => {}
        }
        result
    }

    /// Drops the idle connections (after the server was found unreachable).
    pub(crate) fn forget(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

/// A `SET` whose value is being written in parts. Dropped before [`PartedSet::finish`], its
/// connection closes with the command unfinished, and the server drops it.
pub(crate) struct PartedSet {
    connection: Connection,
    /// The command up to the value, sent with the first part (empty once sent).
    head: Vec<u8>,
    /// Bytes of the value still to come.
    remaining: u64,
    /// The command after the value.
    tail: Vec<u8>,
}

impl PartedSet {
    /// Writes the next bytes of the value, `parts` in one vectored write.
    pub(crate) async fn write(&mut self, parts: &[&[u8]]) -> Result<(), BulkError> {
        let bytes: u64 = parts.iter().map(|p| p.len() as u64).sum();
        if bytes > self.remaining {
            return Err(BulkError::Io(std::io::Error::other("more bytes than the value's announced length")));
        }
        let mut all = Vec::with_capacity(parts.len() + 1);
        all.push(&self.head[..]);
        all.extend_from_slice(parts);
        write_all(&mut self.connection, &all).await?;
        self.head.clear();
        self.remaining -= bytes;
        Ok(())
    }

    /// Sends the command's tail and reads the `+OK`; the connection goes back to `pool`.
    pub(crate) async fn finish(mut self, pool: &BulkWriter) -> Result<(), BulkError> {
        if self.remaining > 0 {
            return Err(BulkError::Io(std::io::Error::other(format!(
                "the value ended {} bytes short of its announced length",
                self.remaining
            ))));
        }
        send(&mut self.connection, &[&self.head, &self.tail]).await?;
        pool.give_back(self.connection);
        Ok(())
    }
}

/// One command on a bulk connection.
enum Request<'a> {
    /// A `SET` in parts (header, value, tail), answered `+OK`.
    Set([&'a [u8]; 3]),
    /// A command answered with one bulk string.
    Read(&'a [u8]),
}

impl Request<'_> {
    /// Sends the command and reads its reply (empty for a `SET`).
    async fn run(&self, connection: &mut Connection) -> Result<Bytes, BulkError> {
        match self {
            Request::Set(parts) => send(connection, parts).await.map(|()| Bytes::new()),
            Request::Read(command) => {
                write_all(connection, &[command]).await?;
                read_bulk(connection).await
            }
        }
    }
}

/// Writes every part, then reads the `+OK`.
async fn send(connection: &mut Connection, parts: &[&[u8]]) -> Result<(), BulkError> {
    write_all(connection, parts).await?;
    read_ok(connection, 1).await
}

/// Writes `parts` in as few system calls as the socket takes.
async fn write_all(connection: &mut Connection, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut remaining: &mut [IoSlice<'_>] = &mut slices;
    while !remaining.is_empty() {
        let written = connection.write_vectored(remaining).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut remaining, written);
    }
    connection.flush().await
}

/// Reads the one-line replies of `count` commands: `+…` is success, `-…` the server's
/// refusal (the first one is returned). Nothing else is in flight on these connections, so
/// those lines are all there is to read.
async fn read_ok(connection: &mut Connection, count: usize) -> Result<(), BulkError> {
    let mut replies = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    let lines = |bytes: &[u8]| bytes.iter().filter(|&&b| b == b'\n').count();
    while lines(&replies) < count || !replies.ends_with(b"\r\n") {
        let n = connection.read(&mut chunk).await?;
        if n == 0 {
            return Err(BulkError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        replies.extend_from_slice(&chunk[..n]);
        if replies.len() > LONGEST_REPLY * count {
            return Err(BulkError::Io(std::io::Error::other("reply too long")));
        }
    }
    if lines(&replies) > count {
        return Err(BulkError::Io(std::io::Error::other("more replies than commands")));
    }
    match replies.split(|&b| b == b'\n').find(|line| !line.starts_with(b"+") && !line.is_empty()) {
        None => Ok(()),
        Some(line) => Err(BulkError::Refused(String::from_utf8_lossy(line).trim_end().to_owned())),
    }
}

/// Reads one bulk-string reply (`$<len>\r\n<bytes>\r\n`; `$-1` reads as empty, as
/// `GETRANGE` answers for a missing key) into a buffer of exactly its size.
async fn read_bulk(connection: &mut Connection) -> Result<Bytes, BulkError> {
    let mut head = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    // The length line is short: read it a byte at a time so nothing of the value is taken.
    while !head.ends_with(b"\r\n") {
        if connection.read(&mut byte).await? == 0 {
            return Err(BulkError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        head.push(byte[0]);
        if head.len() > LONGEST_REPLY {
            return Err(BulkError::Io(std::io::Error::other("reply too long")));
        }
    }
    let line = String::from_utf8_lossy(&head[..head.len() - 2]).into_owned();
    let length = match line.strip_prefix('$') {
        Some("-1") => return Ok(Bytes::new()),
        Some(n) => n.parse::<usize>().map_err(|_| BulkError::Io(std::io::Error::other("bad bulk length")))?,
        None if line.starts_with('-') => return Err(BulkError::Refused(line)),
        None => return Err(BulkError::Io(std::io::Error::other("unexpected reply"))),
    };
    let mut value = BytesMut::with_capacity(length + 2);
    while value.len() < length + 2 {
        if connection.read_buf(&mut value).await? == 0 {
            return Err(BulkError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
    if !value.ends_with(b"\r\n") || value.len() != length + 2 {
        return Err(BulkError::Io(std::io::Error::other("malformed bulk reply")));
    }
    value.truncate(length);
    Ok(value.freeze())
}

/// How long a bulk `SET` may take: the usual bound, plus time for the bytes at 100 MB/s.
pub(crate) fn bulk_timeout(base: Duration, bytes: usize) -> Duration {
    base + Duration::from_millis(bytes as u64 / 100_000)
}
