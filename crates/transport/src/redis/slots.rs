//! Which node serves a key or a sharded channel: hash slots and the cluster's slot map.
//!
//! Redis Cluster splits keys into 16384 hash slots: a key's slot is the CRC16 (XMODEM) of its
//! hash tag modulo 16384, where the hash tag is the part between the first `{` and the next
//! `}` when that part is not empty, and the whole key otherwise. Sharded pub/sub channels hash
//! the same way. Each slot is owned by one master.
//!
//! [`Routing`] answers "which node?" for one server (always that server) and for a cluster (the
//! [`Topology`]: a slot map read with `CLUSTER SLOTS`). The map changes when slots move
//! (resharding) and when a replica takes over from a failed master; the users of the map say
//! so: a `MOVED` redirect sets the one slot it names at once ([`Topology::moved`]), and a
//! node that cannot be reached, or a notice that a slot moved, asks for a new map
//! ([`Topology::refresh`]). Refreshes are shared: callers that find the map stale together
//! cause one `CLUSTER SLOTS`, asked of the known masters first and the seed nodes after, and
//! at most one every [`REFRESH_INTERVAL`].

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;

use super::wire::{self, Access, Address, Limits, Reply, WireError};

/// Hash slots of a Redis Cluster.
pub(crate) const SLOTS: usize = 16384;

/// The shortest time between two reads of the slot map.
pub(crate) const REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// How long one node may take to answer `CLUSTER SLOTS` before the next one is asked.
const ASK_NODE_TIMEOUT: Duration = Duration::from_secs(1);

/// CRC16 with the XMODEM parameters (polynomial 0x1021, initial value 0), as Redis Cluster
/// hashes keys.
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The part of `key` that decides its slot: its hash tag, or all of it.
pub(crate) fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(length) = key[open + 1..].iter().position(|&b| b == b'}')
        && length > 0
    {
        return &key[open + 1..open + 1 + length];
    }
    key
}

/// The hash slot of a key or sharded channel.
pub(crate) fn slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS as u16
}

/// The owner of each slot: an index into `nodes`, or [`SlotMap::NOBODY`].
#[derive(Debug, Clone)]
pub(crate) struct SlotMap {
    owners: Vec<u16>,
    nodes: Vec<Address>,
}

impl SlotMap {
    const NOBODY: u16 = u16::MAX;

    fn empty() -> SlotMap {
        SlotMap { owners: vec![Self::NOBODY; SLOTS], nodes: Vec::new() }
    }

    fn node_index(&mut self, address: &Address) -> u16 {
        match self.nodes.iter().position(|node| node == address) {
            Some(index) => index as u16,
            None => {
                self.nodes.push(address.clone());
                (self.nodes.len() - 1) as u16
            }
        }
    }

    /// The master that owns `slot`, if any.
    pub(crate) fn owner(&self, slot: u16) -> Option<&Address> {
        let index = *self.owners.get(usize::from(slot))?;
        self.nodes.get(usize::from(index))
    }

    /// Every master that owns at least one slot.
    pub(crate) fn masters(&self) -> Vec<Address> {
        let mut owning = vec![false; self.nodes.len()];
        for &index in &self.owners {
            if let Some(flag) = owning.get_mut(usize::from(index)) {
                *flag = true;
            }
        }
        self.nodes.iter().zip(owning).filter(|(_, owns)| *owns).map(|(node, _)| node.clone()).collect()
    }

    /// Reads a `CLUSTER SLOTS` reply, given by the node at `asked` (whose host stands in for
    /// a node that does not know its own address).
    fn from_cluster_slots(reply: &Reply, asked: &Address) -> Result<SlotMap, String> {
        let Reply::Array(Some(ranges)) = reply else {
            return Err(format!("CLUSTER SLOTS answered {reply:?}"));
        };
        let mut map = SlotMap::empty();
        for range in ranges {
            let Reply::Array(Some(fields)) = range else { return Err("a slot range is not an array".into()) };
            let (Some(Reply::Integer(first)), Some(Reply::Integer(last)), Some(Reply::Array(Some(master)))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err("a slot range without its bounds and master".into());
            };
            let (Some(host), Some(Reply::Integer(port))) =
                (master.first().and_then(Reply::text), master.get(1))
            else {
                return Err("a master without its address".into());
            };
            let host = match (host, asked) {
                // An empty or unknown endpoint means "the address you reached me at".
                ("" | "?", Address::Tcp(asked_host, _)) => asked_host.clone(),
                (host, _) => host.to_owned(),
            };
            let port = u16::try_from(*port).map_err(|_| format!("port {port}"))?;
            let (first, last) = (usize::try_from(*first), usize::try_from(*last));
            let (Ok(first), Ok(last)) = (first, last) else { return Err("negative slot".into()) };
            if first > last || last >= SLOTS {
                return Err(format!("slot range {first}-{last}"));
            }
            let index = map.node_index(&Address::Tcp(host, port));
            map.owners[first..=last].fill(index);
        }
        Ok(map)
    }
}

/// Where keys and channels go.
#[derive(Debug)]
pub(crate) enum Routing {
    /// One server serves everything.
    Single(Address),
    /// A Redis Cluster.
    Cluster(Topology),
}

impl Routing {
    /// The node that serves `slot`, as far as is known.
    pub(crate) fn owner(&self, slot: u16) -> Option<Address> {
        match self {
            Routing::Single(address) => Some(address.clone()),
            Routing::Cluster(topology) => topology.owner(slot),
        }
    }

    /// Every master (the one server, or each master that owns slots).
    pub(crate) fn masters(&self) -> Vec<Address> {
        match self {
            Routing::Single(address) => vec![address.clone()],
            Routing::Cluster(topology) => topology.map().masters(),
        }
    }

    /// The cluster's topology; `None` for one server.
    pub(crate) fn topology(&self) -> Option<&Topology> {
        match self {
            Routing::Single(_) => None,
            Routing::Cluster(topology) => Some(topology),
        }
    }
}

/// A cluster's slot map, kept fresh.
pub(crate) struct Topology {
    access: Arc<Access>,
    seeds: Vec<Address>,
    map: RwLock<Arc<SlotMap>>,
    /// Serialises refreshes; holds when the last one ended and whether it found the map.
    refreshes: tokio::sync::Mutex<(Instant, bool)>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("seeds", &self.seeds)
            .field("masters", &self.map().masters())
            .finish()
    }
}

/// What [`Topology::discover`] found at the seed nodes.
pub(crate) enum Discovery {
    /// A Redis Cluster, with its slot map.
    Cluster(Topology),
    /// A server with cluster support disabled (at this address).
    NotACluster(Address),
}

/// Replies to `CLUSTER SLOTS`: a few thousand ranges at most.
const SLOT_MAP_LIMITS: Limits = Limits { bulk: 1024, elements: SLOTS, depth: 4 };

impl Topology {
    /// Asks the seed nodes, in order, for the slot map; the first that answers decides.
    pub(crate) async fn discover(access: Arc<Access>, seeds: Vec<Address>) -> Result<Discovery, WireError> {
        let mut last_error = None;
        for seed in &seeds {
            match ask_slots(&access, seed).await {
                Ok(Ok(map)) => {
                    let topology = Topology {
                        access,
                        seeds,
                        map: RwLock::new(Arc::new(map)),
                        refreshes: tokio::sync::Mutex::new((Instant::now(), true)),
                    };
                    return Ok(Discovery::Cluster(topology));
                }
                Ok(Err(refused)) if refused.contains("cluster support disabled") => {
                    return Ok(Discovery::NotACluster(seed.clone()));
                }
                Ok(Err(refused)) => last_error = Some(WireError::Refused(refused)),
                Err(error @ WireError::Refused(_)) => return Err(error),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| WireError::Io(std::io::Error::other("no seed node given"))))
    }

    /// The current map.
    pub(crate) fn map(&self) -> Arc<SlotMap> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The master that owns `slot` in the current map.
    pub(crate) fn owner(&self, slot: u16) -> Option<Address> {
        self.map().owner(slot).cloned()
    }

    /// Records a `MOVED` redirect: `slot` is served by `address` from now on.
    pub(crate) fn moved(&self, slot: u16, address: &Address) {
        let mut current = self.map.write().unwrap_or_else(|e| e.into_inner());
        if current.owner(slot) != Some(address) {
            let mut map = (**current).clone();
            let index = map.node_index(address);
            map.owners[usize::from(slot)] = index;
            *current = Arc::new(map);
        }
    }

    /// Reads the slot map again. A caller that finds a read already under way waits for it
    /// and takes its outcome instead of reading once more, and reads are at least
    /// [`REFRESH_INTERVAL`] apart. True when a node gave the map; false when none answered.
    pub(crate) async fn refresh(&self) -> bool {
        let mut last = match self.refreshes.try_lock() {
            Ok(last) => last,
            Err(_) => return self.refreshes.lock().await.1,
        };
        let wait = REFRESH_INTERVAL.saturating_sub(last.0.elapsed());
        tokio::time::sleep(wait).await;
        let current = self.map();
        let masters = current.masters();
        let mut candidates = masters.clone();
        candidates.extend(self.seeds.iter().filter(|seed| !masters.contains(seed)).cloned());
        candidates.extend(
            current.nodes.iter().filter(|node| !candidates.contains(node)).cloned().collect::<Vec<_>>(),
        );
        let mut found = false;
        for node in &candidates {
            match tokio::time::timeout(ASK_NODE_TIMEOUT, ask_slots(&self.access, node)).await {
                Ok(Ok(Ok(map))) if map.owners.iter().any(|&owner| owner != SlotMap::NOBODY) => {
                    *self.map.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
                    found = true;
                    break;
                }
                Ok(Ok(Ok(_))) => tracing::debug!(%node, "a node knows no slot owner; asking another"),
                Ok(Ok(Err(refused))) => tracing::debug!(%node, refused, "a node refused CLUSTER SLOTS"),
                Ok(Err(error)) => tracing::debug!(%node, %error, "a node did not give the slot map"),
                Err(_) => tracing::debug!(%node, "a node did not give the slot map in time"),
            }
        }
        *last = (Instant::now(), found);
        found
    }
}

/// Asks `node` for `CLUSTER SLOTS`: the map, or the node's refusal.
async fn ask_slots(access: &Access, node: &Address) -> Result<Result<SlotMap, String>, WireError> {
    let mut connection = access.connect(node).await?;
    wire::write_all(&mut connection, &[&wire::encode(&[b"CLUSTER", b"SLOTS"])]).await?;
    let mut buffer = BytesMut::with_capacity(4096);
    match wire::read_reply(&mut connection, &mut buffer, SLOT_MAP_LIMITS).await? {
        Reply::Error(refused) => Ok(Err(refused)),
        reply => SlotMap::from_cluster_slots(&reply, node).map(Ok).map_err(WireError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_the_xmodem_variant() {
        // The check value of CRC-16/XMODEM, and the examples of the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn hash_tags_follow_the_cluster_specification() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"no tag"), b"no tag");
        assert_eq!(hash_tag(b"open{only"), b"open{only");
        assert_eq!(slot(b"dsobel:job:{abc}:strips"), slot(b"dsobel:job:{abc}:result"));
        // Values `CLUSTER KEYSLOT` gives (Redis 7).
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{foo}bar"), 12182);
    }

    #[test]
    fn a_slot_map_from_cluster_slots() {
        let node = |host: &str, port: i64| {
            Reply::Array(Some(vec![
                Reply::Bulk(Some(host.as_bytes().to_vec().into())),
                Reply::Integer(port),
                Reply::Bulk(Some(b"id".to_vec().into())),
            ]))
        };
        let range = |first, last, master| {
            Reply::Array(Some(vec![Reply::Integer(first), Reply::Integer(last), master]))
        };
        let reply = Reply::Array(Some(vec![
            range(0, 5460, node("10.0.0.1", 7000)),
            range(5461, 10922, node("", 7001)),
            range(10923, 16383, node("10.0.0.1", 7000)),
        ]));
        let asked = Address::Tcp("10.0.0.9".into(), 7005);
        let map = SlotMap::from_cluster_slots(&reply, &asked).expect("a valid map");
        assert_eq!(map.owner(0), Some(&Address::Tcp("10.0.0.1".into(), 7000)));
        assert_eq!(map.owner(5461), Some(&Address::Tcp("10.0.0.9".into(), 7001)));
        assert_eq!(map.owner(16383), Some(&Address::Tcp("10.0.0.1".into(), 7000)));
        assert_eq!(map.masters().len(), 2);
        let bad = Reply::Array(Some(vec![range(5, 16384, node("h", 1))]));
        assert!(SlotMap::from_cluster_slots(&bad, &asked).is_err());
    }
}
