//! The job id: 128 random bits as 32 lowercase hex digits.

use serde::{Deserialize, Serialize};

/// A job's id: 128 random bits as 32 lowercase hex digits. It is checked once, where it enters
/// (a path of the API, a task message, a wake-up, a stored record, an answer read by the
/// client), so no other string reaches the store as a job's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    /// A new unguessable id.
    pub fn random() -> JobId {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the operating system's random source works");
        JobId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// `id` if it has the shape of a job id.
    pub fn parse(id: &str) -> Option<JobId> {
        let valid = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        valid.then(|| JobId(id.to_owned()))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first eight digits, enough to tell jobs apart in a file name.
    pub fn short(&self) -> &str {
        &self.0[..8]
    }
}

impl TryFrom<String> for JobId {
    type Error = String;

    fn try_from(id: String) -> Result<JobId, String> {
        JobId::parse(&id)
            .ok_or_else(|| format!("{:?} is not a job id", id.chars().take(64).collect::<String>()))
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_random_and_recognised() {
        let (a, b) = (JobId::random(), JobId::random());
        assert_ne!(a, b);
        assert_eq!(JobId::parse(a.as_str()), Some(a.clone()));
        assert!(JobId::parse("../../etc/passwd").is_none());
        assert!(JobId::parse(&a.as_str().to_uppercase()).is_none());
        // Stored and sent ids are checked when read back too.
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<JobId>(&json).unwrap(), a);
        assert!(serde_json::from_str::<JobId>("\"../x\"").is_err());
    }
}
