//! The id of one backend replica: random, chosen when the process starts.

use serde::{Deserialize, Serialize};

/// A backend replica's id: 64 random bits as 16 lowercase hex digits, new at every start, so
/// a restarted backend is a new replica (the old one's jobs are taken over like any stopped
/// replica's).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReplicaId(String);

impl ReplicaId {
    /// A new id.
    pub fn random() -> ReplicaId {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system's random source works");
        ReplicaId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// `id` if it has the shape of a replica id.
    pub fn parse(id: &str) -> Option<ReplicaId> {
        let valid = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        valid.then(|| ReplicaId(id.to_owned()))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ReplicaId {
    type Error = String;

    fn try_from(id: String) -> Result<ReplicaId, String> {
        ReplicaId::parse(&id)
            .ok_or_else(|| format!("{:?} is not a replica id", id.chars().take(32).collect::<String>()))
    }
}

impl From<ReplicaId> for String {
    fn from(id: ReplicaId) -> String {
        id.0
    }
}

impl std::fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
