//! The allow-list: the only locations a batch may read or write.
//!
//! The operator lists root URLs in `DSOBEL_BATCH_STORES` (comma-separated); a client's
//! location is accepted only when one root [contains](Location::contains) it. Both sides are
//! parsed by the same strict rules ([`Location::parse`]), so a match is a comparison of whole
//! path segments and nothing a client writes (`..`, `%2e`, `user@`, another scheme, a longer
//! bucket name) can move a location out of its root.

use std::fmt;

use crate::error::{Result, StoreError};
use crate::location::Location;

/// The environment variable that lists the allowed roots.
pub const BATCH_STORES_VAR: &str = "DSOBEL_BATCH_STORES";

/// The allowed roots. Empty means batches are disabled.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    roots: Vec<Location>,
}

impl AllowList {
    /// Parses a comma-separated list of root URLs (spaces around entries and empty entries
    /// are ignored). An entry that is not a valid location is a [`StoreError::Config`] naming it.
    pub fn parse(list: &str) -> Result<AllowList> {
        let mut roots = Vec::new();
        for (index, entry) in list.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let root = Location::parse(entry).map_err(|error| StoreError::Config {
                detail: format!("{BATCH_STORES_VAR} entry {}: {error}", index + 1),
            })?;
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
        Ok(AllowList { roots })
    }

    /// The list in `DSOBEL_BATCH_STORES`; empty when it is unset or empty.
    pub fn from_env() -> Result<AllowList> {
        match std::env::var(BATCH_STORES_VAR) {
            Ok(list) => AllowList::parse(&list),
            Err(std::env::VarError::NotPresent) => Ok(AllowList::default()),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(StoreError::Config { detail: format!("{BATCH_STORES_VAR} is not valid UTF-8") })
            }
        }
    }

    /// The roots, in the order given.
    pub fn roots(&self) -> &[Location] {
        &self.roots
    }

    /// True when no root is allowed (batches are disabled).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Parses a client's location and accepts it only under an allowed root; every refusal is
    /// [`StoreError::NotAllowed`] (HTTP 403), with a reason that does not list the roots.
    pub fn check(&self, url: &str) -> Result<Location> {
        let location = Location::parse(url)?;
        self.check_location(&location)?;
        Ok(location)
    }

    /// Accepts an already parsed location only under an allowed root.
    pub fn check_location(&self, location: &Location) -> Result<()> {
        self.root_of(location).map(drop)
    }

    /// The most specific allowed root that contains `location`; refused as in
    /// [`AllowList::check`] when there is none.
    pub fn root_of(&self, location: &Location) -> Result<&Location> {
        let root =
            self.roots.iter().filter(|root| root.contains(location)).max_by_key(|root| root.prefix().len());
        if let Some(root) = root {
            Ok(root)
        } else if self.roots.is_empty() {
            Err(StoreError::not_allowed(format!(
                "{location}: batches are disabled on this server ({BATCH_STORES_VAR} is not set)"
            )))
        } else {
            Err(StoreError::not_allowed(format!(
                "{location} is not under any location this server allows ({BATCH_STORES_VAR})"
            )))
        }
    }
}

impl fmt::Debug for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.roots.iter().map(ToString::to_string)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreErrorCode;

    fn list() -> AllowList {
        AllowList::parse(
            " s3://images/in , s3://images/out/, gs://gcs-bucket, file:///srv/batches,,memory://embedded",
        )
        .expect("parse")
    }

    #[test]
    fn parses_roots() {
        let roots: Vec<String> = list().roots().iter().map(ToString::to_string).collect();
        assert_eq!(
            roots,
            [
                "s3://images/in",
                "s3://images/out",
                "gs://gcs-bucket",
                "file:///srv/batches",
                "memory://embedded"
            ]
        );
        assert!(AllowList::parse("").unwrap().is_empty());
        assert!(AllowList::parse(" , ").unwrap().is_empty());
        assert_eq!(AllowList::parse("s3://a12/x,s3://a12/x/").unwrap().roots().len(), 1);
    }

    #[test]
    fn invalid_roots_are_configuration_errors() {
        for bad in ["http://example.com/x", "s3://images/in,s3://images/../etc", "nonsense", "s3://a%2fb"] {
            let error = AllowList::parse(bad).expect_err(bad);
            assert_eq!(error.code(), StoreErrorCode::ConfigInvalid, "{bad}: {error}");
            assert!(error.to_string().contains(BATCH_STORES_VAR), "{error}");
        }
    }

    #[test]
    fn accepts_only_under_a_root() {
        let list = list();
        for good in [
            "s3://images/in",
            "s3://images/in/",
            "s3://images/in/2024/may",
            "S3://images/out/x",
            "gs://gcs-bucket",
            "gs://gcs-bucket/any/where",
            "file:///srv/batches/run-1",
            "memory://embedded/x",
        ] {
            let location = list.check(good).unwrap_or_else(|error| panic!("{good}: {error}"));
            assert!(list.roots().iter().any(|root| root.contains(&location)));
        }
    }

    #[test]
    fn hostile_locations_are_refused() {
        let list = list();
        for bad in [
            // Outside the roots.
            "s3://images",
            "s3://images/",
            "s3://images/inside",
            "s3://images/in2/x",
            "s3://images/i",
            "s3://images/other/in",
            "s3://images-in/x",
            "s3://images.evil/in",
            "s3://imagesx/in",
            "gs://images/in",
            "memory://images/in",
            "memory://embedded2",
            "file:///srv/batches2",
            "file:///srv",
            "file:///etc/passwd",
            // Escapes that a naive prefix test or a later decoding would let through.
            "s3://images/in/../secret",
            "s3://images/in/..",
            "s3://images/in/./../x",
            "s3://images/in/%2e%2e/secret",
            "s3://images/in%2F..%2Fsecret",
            "s3://images/in/..%2fsecret",
            "s3://images/in\\..\\secret",
            "s3://images/in//x",
            "s3://images/in/x?prefix=../",
            "s3://images/in#/../x",
            "file:///srv/batches/../../etc",
            "file://localhost/srv/batches",
            "file:///srv/batches/\u{0}",
            // Credentials or a host in the URL, other schemes: no server-side request forgery.
            "s3://key:secret@images/in",
            "s3://images:443/in",
            "http://images/in",
            "https://images.s3.amazonaws.com/in/x",
            "http://169.254.169.254/latest/meta-data/iam",
            "http://127.0.0.1:6379/",
            "gopher://127.0.0.1:6379/_FLUSHALL",
            "ftp://images/in",
            "s3a://images/in",
            "data:text/plain,hi",
            "/srv/batches/x",
            "images/in",
            "",
        ] {
            match list.check(bad) {
                Ok(location) => panic!("{bad:?} was allowed as {location}"),
                Err(error) => assert_eq!(error.code(), StoreErrorCode::NotAllowed, "{bad:?}: {error}"),
            }
        }
    }

    #[test]
    fn an_empty_list_refuses_everything_and_says_why() {
        let error = AllowList::default().check("s3://images/in").expect_err("refused");
        assert_eq!(error.code(), StoreErrorCode::NotAllowed);
        assert!(error.to_string().contains("disabled"), "{error}");
        let error = list().check("s3://images/elsewhere").expect_err("refused");
        assert!(!error.to_string().contains("gcs-bucket"), "the roots are not listed: {error}");
    }
}
