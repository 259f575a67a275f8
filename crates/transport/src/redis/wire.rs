//! Raw connections to Redis nodes, for the paths the general client does not serve well: large
//! values ([`super::bulk`]), sharded subscriptions ([`super::pubsub`]) and the slot map
//! ([`super::slots`]).
//!
//! A connection is TCP or a Unix socket, with TLS when the URL says `rediss://`, and starts
//! with the URL's `AUTH` (and `SELECT`, for a database other than 0). Commands are written as
//! RESP arrays of bulk strings; replies are read with [`parse`], which never trusts a length
//! the server announces beyond the [`Limits`] it is given, so a misbehaving server cannot make
//! the client allocate what it says.

use std::io::IoSlice;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use redis::{ConnectionAddr, ConnectionInfo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest reply line read (`+OK`, an error message, a length).
pub(crate) const LONGEST_LINE: usize = 4096;

/// A byte stream to a node.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}
/// An open, authenticated connection to a node.
pub(crate) type Connection = Pin<Box<dyn Stream>>;

/// Where a node is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Address {
    /// Host name or IP address, and port.
    Tcp(String, u16),
    /// A Unix socket's path.
    Unix(PathBuf),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(host, port) if host.contains(':') => write!(f, "[{host}]:{port}"),
            Address::Tcp(host, port) => write!(f, "{host}:{port}"),
            Address::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

impl Address {
    /// The address of a node named by a redirect or the slot map (`host:port`, the host
    /// possibly an IPv6 address without brackets).
    pub(crate) fn parse(text: &str) -> Option<Address> {
        let (host, port) = text.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse().ok()?;
        (!host.is_empty()).then(|| Address::Tcp(host.to_owned(), port))
    }
}

/// Why an exchange with a node failed.
#[derive(Debug)]
pub(crate) enum WireError {
    /// The connection failed: the node may be down.
    Io(std::io::Error),
    /// The node refused the command (its error line, without the `-`).
    Refused(String),
    /// The node answered something that is not a valid reply, or more than was asked for.
    Malformed(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => e.fmt(f),
            WireError::Refused(line) => f.write_str(line),
            WireError::Malformed(what) => write!(f, "malformed reply: {what}"),
        }
    }
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Io(e)
    }
}

fn eof() -> WireError {
    WireError::Io(std::io::ErrorKind::UnexpectedEof.into())
}

/// One RESP bulk string.
pub(crate) fn bulk(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// One RESP command.
pub(crate) fn command(out: &mut Vec<u8>, words: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", words.len()).as_bytes());
    for word in words {
        bulk(out, word);
    }
}

/// One RESP command, in a buffer of its own.
pub(crate) fn encode(words: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + words.iter().map(|w| w.len() + 16).sum::<usize>());
    command(&mut out, words);
    out
}

/// How to open a connection to any node of the target: TLS or not, and the handshake.
pub(crate) struct Access {
    tls: Option<tokio_rustls::TlsConnector>,
    /// `AUTH` and `SELECT`, encoded, sent on every new connection (empty when not needed),
    /// and how many replies they give.
    handshake: (Vec<u8>, usize),
    /// The database of the URL (a cluster has only 0).
    db: i64,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").field("tls", &self.tls.is_some()).field("db", &self.db).finish()
    }
}

impl Access {
    /// The access a URL describes (its TLS, credentials and database), or why it cannot be
    /// used.
    pub(crate) fn new(info: &ConnectionInfo) -> Result<Access, String> {
        let tls = match info.addr() {
            ConnectionAddr::TcpTls { insecure: true, .. } => {
                return Err("rediss:// URLs with #insecure are not supported: trust the server's \
                            certificate authority instead (SSL_CERT_FILE)"
                    .into());
            }
            ConnectionAddr::TcpTls { .. } => Some(tls_connector()?),
            _ => None,
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
        Ok(Access { tls, handshake: (handshake, replies), db: settings.db() })
    }

    /// The database number the URL asks for.
    pub(crate) fn db(&self) -> i64 {
        self.db
    }

    /// Opens a connection to `address` and authenticates it.
    pub(crate) async fn connect(&self, address: &Address) -> Result<Connection, WireError> {
        let mut connection: Connection = match address {
            Address::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                match &self.tls {
                    Some(tls) => {
                        let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
                            WireError::Io(std::io::Error::other(format!("TLS server name {host:?}: {e}")))
                        })?;
                        Box::pin(tls.connect(name, stream).await?)
                    }
                    None => Box::pin(stream),
                }
            }
            #[cfg(unix)]
            Address::Unix(path) => Box::pin(tokio::net::UnixStream::connect(path).await?),
            #[cfg(not(unix))]
            Address::Unix(_) => {
                return Err(WireError::Io(std::io::Error::other("Unix sockets need a Unix system")));
            }
        };
        let (handshake, replies) = &self.handshake;
        if !handshake.is_empty() {
            write_all(&mut connection, &[handshake]).await?;
            read_ok(&mut connection, *replies).await?;
        }
        Ok(connection)
    }
}

/// The address of a URL's server.
pub(crate) fn address_of(info: &ConnectionInfo) -> Address {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            Address::Tcp(host.clone(), *port)
        }
        ConnectionAddr::Unix(path) => Address::Unix(path.clone()),
        // The redis crate may name more kinds of address one day; none is parsed from a URL
        // today, so this one is shown, not used.
        other => Address::Unix(PathBuf::from(format!("{other:?}"))),
    }
}

/// A TLS client that trusts the system's certificate authorities (or those of the file named
/// by `SSL_CERT_FILE`, or the folder named by `SSL_CERT_DIR`), with the ring provider, which
/// is also made the process's default so that the general client's TLS finds it.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let provider = Arc::new(ring_provider());
    // Only the first call in a process installs it; later ones (and a provider installed by
    // someone else) are fine.
    let _ = ring_provider().install_default();
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found.errors.first().map(|e| e.to_string()).unwrap_or_else(|| "none found".into());
        return Err(format!("no certificate authority to trust for rediss:// ({why})"));
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The ring cryptography of rustls: it builds with a C compiler alone (the alternative,
/// aws-lc-rs, wants CMake and a larger build), and ring is in the build already. rustls marks
/// it deprecated because ring has no post-quantum key exchange, which a connection to a store
/// inside one's own network does without.
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Writes `parts` in as few system calls as the socket takes.
pub(crate) async fn write_all(connection: &mut Connection, parts: &[&[u8]]) -> std::io::Result<()> {
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
pub(crate) async fn read_ok(connection: &mut Connection, count: usize) -> Result<(), WireError> {
    let mut replies = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    let lines = |bytes: &[u8]| bytes.iter().filter(|&&b| b == b'\n').count();
    while lines(&replies) < count || !replies.ends_with(b"\r\n") {
        let n = connection.read(&mut chunk).await?;
        if n == 0 {
            return Err(eof());
        }
        replies.extend_from_slice(&chunk[..n]);
        if replies.len() > LONGEST_LINE * count {
            return Err(WireError::Malformed("reply too long".into()));
        }
    }
    if lines(&replies) > count {
        return Err(WireError::Malformed("more replies than commands".into()));
    }
    match replies.split(|&b| b == b'\n').find(|line| !line.starts_with(b"+") && !line.is_empty()) {
        None => Ok(()),
        Some(line) => Err(refusal(line)),
    }
}

/// The server's refusal in an error line (`-MOVED 3999 127.0.0.1:6381\r\n`), or a malformed
/// reply when the line is not an error.
pub(crate) fn refusal(line: &[u8]) -> WireError {
    let text = String::from_utf8_lossy(line).trim_end().to_owned();
    match text.strip_prefix('-') {
        Some(error) => WireError::Refused(error.to_owned()),
        None => WireError::Malformed(format!("unexpected reply {text:?}")),
    }
}

/// One reply of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+…`
    Status(String),
    /// `-…`, without the `-`.
    Error(String),
    /// `:…`
    Integer(i64),
    /// `$…`; `None` for the null bulk string.
    Bulk(Option<Bytes>),
    /// `*…`; `None` for the null array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The bytes of a bulk or status reply.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(Some(bytes)) => Some(bytes),
            Reply::Status(text) => Some(text.as_bytes()),
            _ => None,
        }
    }

    /// The text of a bulk or status reply, if it is UTF-8.
    pub(crate) fn text(&self) -> Option<&str> {
        self.bytes().and_then(|bytes| std::str::from_utf8(bytes).ok())
    }
}

/// What [`parse`] accepts from a server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The longest bulk string.
    pub(crate) bulk: usize,
    /// The most elements of one array.
    pub(crate) elements: usize,
    /// The deepest nesting of arrays.
    pub(crate) depth: usize,
}

/// Parses one reply at the start of `buffer`: the reply and the bytes it took, or `None`
/// while it is incomplete. Lengths beyond `limits` are refused before anything is allocated
/// for them.
pub(crate) fn parse(buffer: &[u8], limits: Limits) -> Result<Option<(Reply, usize)>, WireError> {
    parse_at(buffer, 0, limits, 0)
}

fn parse_at(
    buffer: &[u8],
    at: usize,
    limits: Limits,
    depth: usize,
) -> Result<Option<(Reply, usize)>, WireError> {
    let rest = &buffer[at.min(buffer.len())..];
    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
        if rest.len() > LONGEST_LINE {
            return Err(WireError::Malformed("reply line too long".into()));
        }
        return Ok(None);
    };
    if end == 0 {
        return Err(WireError::Malformed("empty reply line".into()));
    }
    let line =
        std::str::from_utf8(&rest[1..end]).map_err(|_| WireError::Malformed("reply line not UTF-8".into()));
    let next = at + end + 2;
    let number =
        |line: &str| line.parse::<i64>().map_err(|_| WireError::Malformed(format!("bad number {line:?}")));
    match rest[0] {
        b'+' => Ok(Some((Reply::Status(line?.to_owned()), next))),
        b'-' => Ok(Some((Reply::Error(String::from_utf8_lossy(&rest[1..end]).into_owned()), next))),
        b':' => Ok(Some((Reply::Integer(number(line?)?), next))),
        b'$' => {
            let length = number(line?)?;
            if length == -1 {
                return Ok(Some((Reply::Bulk(None), next)));
            }
            let length = usize::try_from(length)
                .ok()
                .filter(|&n| n <= limits.bulk)
                .ok_or_else(|| WireError::Malformed(format!("bulk string of {length} bytes")))?;
            if buffer.len() < next + length + 2 {
                return Ok(None);
            }
            if &buffer[next + length..next + length + 2] != b"\r\n" {
                return Err(WireError::Malformed("bulk string without its end".into()));
            }
            let value = Bytes::copy_from_slice(&buffer[next..next + length]);
            Ok(Some((Reply::Bulk(Some(value)), next + length + 2)))
        }
        b'*' => {
            let count = number(line?)?;
            if count == -1 {
                return Ok(Some((Reply::Array(None), next)));
            }
            let count = usize::try_from(count)
                .ok()
                .filter(|&n| n <= limits.elements && depth < limits.depth)
                .ok_or_else(|| WireError::Malformed(format!("array of {count} elements at depth {depth}")))?;
            let mut elements = Vec::with_capacity(count.min(64));
            let mut at = next;
            for _ in 0..count {
                match parse_at(buffer, at, limits, depth + 1)? {
                    Some((element, after)) => {
                        elements.push(element);
                        at = after;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(elements)), at)))
        }
        other => Err(WireError::Malformed(format!("unknown reply type {:?}", other as char))),
    }
}

/// Reads one whole reply from `connection`, keeping what follows it in `buffer`.
pub(crate) async fn read_reply(
    connection: &mut Connection,
    buffer: &mut BytesMut,
    limits: Limits,
) -> Result<Reply, WireError> {
    loop {
        if let Some((reply, used)) = parse(buffer, limits)? {
            buffer.advance(used);
            return Ok(reply);
        }
        if connection.read_buf(buffer).await? == 0 {
            return Err(eof());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { bulk: 100, elements: 10, depth: 3 };

    fn whole(bytes: &[u8]) -> Reply {
        let (reply, used) = parse(bytes, LIMITS).expect("valid").expect("complete");
        assert_eq!(used, bytes.len(), "the reply takes all of {bytes:?}");
        reply
    }

    #[test]
    fn replies_of_every_kind() {
        assert_eq!(whole(b"+OK\r\n"), Reply::Status("OK".into()));
        assert_eq!(whole(b"-MOVED 1 h:2\r\n"), Reply::Error("MOVED 1 h:2".into()));
        assert_eq!(whole(b":-42\r\n"), Reply::Integer(-42));
        assert_eq!(whole(b"$-1\r\n"), Reply::Bulk(None));
        assert_eq!(whole(b"$0\r\n\r\n"), Reply::Bulk(Some(Bytes::new())));
        assert_eq!(whole(b"$4\r\na\r\nb\r\n"), Reply::Bulk(Some(Bytes::from_static(b"a\r\nb"))));
        assert_eq!(whole(b"*-1\r\n"), Reply::Array(None));
        let message = whole(b"*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        let Reply::Array(Some(parts)) = message else { panic!("an array") };
        assert_eq!(parts.iter().map(|p| p.text().unwrap()).collect::<Vec<_>>(), ["smessage", "ch", "hi"]);
    }

    #[test]
    fn an_incomplete_reply_waits_for_more_and_what_follows_is_left() {
        let full = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n+OK\r\n";
        for cut in 0..20 {
            assert_eq!(parse(&full[..cut], LIMITS).expect("valid so far"), None, "cut at {cut}");
        }
        let (_, used) = parse(full, LIMITS).unwrap().unwrap();
        assert_eq!(&full[used..], b"+OK\r\n");
    }

    #[test]
    fn lengths_beyond_the_limits_are_refused_before_the_bytes_arrive() {
        assert!(matches!(parse(b"$101\r\n", LIMITS), Err(WireError::Malformed(_))));
        assert!(matches!(parse(b"$99999999999999999999\r\n", LIMITS), Err(WireError::Malformed(_))));
        assert!(matches!(parse(b"*11\r\n", LIMITS), Err(WireError::Malformed(_))));
        assert!(matches!(parse(b"*1\r\n*1\r\n*1\r\n*1\r\n", LIMITS), Err(WireError::Malformed(_))));
        assert!(matches!(parse(b"$3\r\nabcd\r\n", LIMITS), Err(WireError::Malformed(_))));
        assert!(matches!(parse(b"?\r\n", LIMITS), Err(WireError::Malformed(_))));
        assert!(matches!(parse(&[b'+'; LONGEST_LINE + 2], LIMITS), Err(WireError::Malformed(_))));
    }

    #[test]
    fn addresses_of_redirects() {
        assert_eq!(Address::parse("127.0.0.1:7001"), Some(Address::Tcp("127.0.0.1".into(), 7001)));
        assert_eq!(Address::parse("::1:7001"), Some(Address::Tcp("::1".into(), 7001)));
        assert_eq!(Address::parse("[::1]:7001").unwrap().to_string(), "[::1]:7001");
        assert_eq!(Address::parse(":7001"), None);
        assert_eq!(Address::parse("host"), None);
    }
}
