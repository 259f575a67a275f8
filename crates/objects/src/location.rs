//! Locations (`s3://bucket/prefix`) and keys, parsed strictly.
//!
//! A [`Location`] is where a batch reads or writes: a scheme, a bucket (a store name for
//! `memory://`, nothing for `file://`) and a prefix of whole path segments. A [`Key`] is an
//! object's name relative to a location. Both are parsed once, by rules that leave nothing to
//! interpret later: no empty, `.` or `..` segment, no control character, and in a location no
//! `%`, `\`, `?`, `#` or `user@` part at all. So two spellings can never name the same place,
//! and a prefix comparison of segments ([`Location::contains`]) is all the allow-list needs.

use std::fmt;

use crate::error::{Result, StoreError};

/// The longest location accepted, in bytes.
pub const MAX_LOCATION_LEN: usize = 2048;

/// The longest key accepted, in bytes (S3's and GCS's limit).
pub const MAX_KEY_LEN: usize = 1024;

/// The kind of store a location is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `s3://bucket/prefix`: Amazon S3 or any S3-compatible server (`AWS_ENDPOINT_URL`).
    S3,
    /// `gs://bucket/prefix`: Google Cloud Storage.
    Gcs,
    /// `file:///absolute/path`: a local (or mounted) folder.
    File,
    /// `memory://name/prefix`: a store inside this process, shared by every user of the same
    /// name (the embedded mode and tests).
    Memory,
}

impl Scheme {
    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::Gcs => "gs",
            Scheme::File => "file",
            Scheme::Memory => "memory",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A place in object storage: scheme, bucket and prefix, in canonical form.
///
/// Displayed (and compared) canonically: `s3://bucket/a/b`, `file:///srv/images`,
/// `memory://name`. Parse with [`Location::parse`]; whether it may be used is the
/// [`AllowList`](crate::AllowList)'s decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    scheme: Scheme,
    /// Empty for `file://`.
    bucket: String,
    /// Segments joined by `/`, without a leading or trailing `/`; empty for a whole bucket.
    prefix: String,
}

impl Location {
    /// Parses a location URL. Any refusal is [`StoreError::NotAllowed`] with the reason.
    ///
    /// Accepted: `s3://bucket[/prefix][/]`, `gs://bucket[/prefix][/]`, `file:///path[/]`,
    /// `memory://name[/prefix][/]`; the scheme in any case. Refused: every other scheme
    /// (`http`, `https`, `ftp`, ...), credentials or ports in the URL, invalid bucket names,
    /// empty, `.` and `..` segments, control characters, and the characters `%`, `\`, `?`
    /// and `#` (no percent-encoding, query or fragment is ever interpreted).
    pub fn parse(text: &str) -> Result<Location> {
        let refuse = |why: &str| Err(StoreError::not_allowed(format!("{}: {why}", describe_input(text))));
        if text.is_empty() {
            return refuse("the location is empty");
        }
        if text.len() > MAX_LOCATION_LEN {
            return refuse(&format!("longer than {MAX_LOCATION_LEN} bytes"));
        }
        if text.trim() != text {
            return refuse("spaces around the location");
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return refuse("not a URL of the form scheme://bucket/prefix");
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "s3" => Scheme::S3,
            "gs" => Scheme::Gcs,
            "file" => Scheme::File,
            "memory" => Scheme::Memory,
            "http" | "https" => {
                return refuse("http(s) locations are never accepted; use s3://, gs:// or file://");
            }
            _ => return refuse("unsupported scheme; use s3://, gs:// or file://"),
        };
        if let Some(bad) = rest.chars().find(|&c| c.is_control() || matches!(c, '%' | '\\' | '?' | '#')) {
            return refuse(&format!("the character {bad:?} is not accepted in a location"));
        }
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, path),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return refuse("credentials are never accepted in a location");
        }
        let bucket = match scheme {
            Scheme::File if !authority.is_empty() => {
                return refuse("a file location has no host: write file:///absolute/path");
            }
            Scheme::File => String::new(),
            Scheme::S3 | Scheme::Gcs | Scheme::Memory => {
                if let Err(why) = check_bucket(scheme, authority) {
                    return refuse(&why);
                }
                authority.to_owned()
            }
        };
        let path = path.strip_suffix('/').unwrap_or(path);
        if !path.is_empty()
            && let Err(why) = check_segments(path)
        {
            return refuse(&why);
        }
        Ok(Location { scheme, bucket, prefix: path.to_owned() })
    }

    /// The kind of store.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The bucket (S3, GCS) or store name (memory); empty for local files.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix inside the bucket: segments joined by `/`, empty for the whole bucket. For
    /// `file://` it is the absolute path without its leading `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// True when `other` is this location or lies under it: same scheme and bucket, and this
    /// prefix's segments begin `other`'s (`s3://b/a` contains `s3://b/a/x`, not `s3://b/ab`).
    pub fn contains(&self, other: &Location) -> bool {
        self.scheme == other.scheme
            && self.bucket == other.bucket
            && (self.prefix.is_empty()
                || other.prefix == self.prefix
                || other.prefix.strip_prefix(&self.prefix).is_some_and(|rest| rest.starts_with('/')))
    }

    /// True when one of the two locations contains the other.
    pub fn overlaps(&self, other: &Location) -> bool {
        self.contains(other) || other.contains(self)
    }

    /// The full name, inside the bucket, of `key` under this location.
    pub fn object_name(&self, key: &Key) -> String {
        if self.prefix.is_empty() { key.0.clone() } else { format!("{}/{}", self.prefix, key.0) }
    }

    /// The key of a full object name under this location; `None` when the name is not under
    /// it or is not a valid key.
    pub fn key_of(&self, object_name: &str) -> Option<Key> {
        let relative = if self.prefix.is_empty() {
            object_name
        } else {
            object_name.strip_prefix(&self.prefix)?.strip_prefix('/')?
        };
        Key::parse(relative).ok()
    }

    /// The location of `key` (or of a folder named by it) under this one.
    pub fn join(&self, key: &Key) -> Location {
        Location { scheme: self.scheme, bucket: self.bucket.clone(), prefix: self.object_name(key) }
    }

    /// The URL of `key` under this location, for messages and manifests.
    pub fn url_of(&self, key: &Key) -> String {
        self.join(key).to_string()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.scheme, self.prefix.is_empty()) {
            (Scheme::File, _) => write!(f, "file:///{}", self.prefix),
            (_, true) => write!(f, "{}://{}", self.scheme, self.bucket),
            (_, false) => write!(f, "{}://{}/{}", self.scheme, self.bucket, self.prefix),
        }
    }
}

/// An object's name relative to a [`Location`]: one or more `/`-separated segments, none
/// empty, `.` or `..`, no control character, at most [`MAX_KEY_LEN`] bytes.
///
/// Keys come from listings (where `%`, `#`, spaces and any Unicode are ordinary characters of
/// a name, never decoded) or from the batch rules; a key can never leave its location.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// Checks and wraps a relative key. A refusal is [`StoreError::NotAllowed`].
    pub fn parse(text: &str) -> Result<Key> {
        if text.is_empty() {
            return Err(StoreError::not_allowed("empty key"));
        }
        if text.len() > MAX_KEY_LEN {
            return Err(StoreError::not_allowed(format!("key longer than {MAX_KEY_LEN} bytes")));
        }
        check_segments(text)
            .map_err(|why| StoreError::not_allowed(format!("key {}: {why}", describe_input(text))))?;
        Ok(Key(text.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment (the file name).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Everything before the last segment, with its trailing `/` (empty at the top).
    pub fn folder(&self) -> &str {
        &self.0[..self.0.len() - self.file_name().len()]
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks `/`-separated segments: none empty, `.` or `..`, no control character.
fn check_segments(path: &str) -> std::result::Result<(), String> {
    if path.len() > MAX_KEY_LEN {
        return Err(format!("path longer than {MAX_KEY_LEN} bytes"));
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err("empty path segment (a leading, trailing or double /)".into()),
            "." | ".." => return Err("`.` and `..` segments are not accepted".into()),
            _ => {}
        }
        if segment.chars().any(char::is_control) {
            return Err("control characters are not accepted".into());
        }
    }
    Ok(())
}

/// Checks a bucket (or memory store) name by the rules of its scheme.
fn check_bucket(scheme: Scheme, name: &str) -> std::result::Result<(), String> {
    let (allowed_punctuation, max) = match scheme {
        Scheme::S3 => (&['.', '-'][..], 63),
        // GCS allows up to 222 characters when the name has dots, 63 between them.
        Scheme::Gcs => (&['.', '-', '_'][..], 222),
        Scheme::Memory => (&['.', '-', '_'][..], 63),
        Scheme::File => unreachable!("file locations have no bucket"),
    };
    let min = if scheme == Scheme::Memory { 1 } else { 3 };
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || allowed_punctuation.contains(&c));
    let ends_alphanumeric = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if name.is_empty() {
        return Err("no bucket name".into());
    }
    if !(min..=max).contains(&name.len())
        || !valid_chars
        || !ends_alphanumeric(name.chars().next())
        || !ends_alphanumeric(name.chars().last())
        || name.contains("..")
        || name.split('.').any(|part| part.len() > 63)
        || (scheme == Scheme::Gcs && !name.contains('.') && name.len() > 63)
    {
        return Err(format!(
            "invalid bucket name {name:?} ({min}–{max} lowercase letters, digits, {}; beginning and ending with a letter or digit)",
            allowed_punctuation.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    if scheme == Scheme::S3
        && name.split('.').count() == 4
        && name.split('.').all(|p| p.parse::<u8>().is_ok())
    {
        return Err("a bucket name cannot be an IP address".into());
    }
    Ok(())
}

/// A client's input as it may appear in a message: anything between `://` and an `@` (a
/// would-be password) removed, control characters replaced, cut to 200 characters.
pub(crate) fn describe_input(text: &str) -> String {
    let shown = match (text.find("://"), text.rfind('@')) {
        (Some(start), Some(at)) if at > start => format!("{}://…@{}", &text[..start], &text[at + 1..]),
        _ => text.to_owned(),
    };
    let mut out: String = shown.chars().take(200).map(|c| if c.is_control() { '?' } else { c }).collect();
    if shown.chars().count() > 200 {
        out.push('…');
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Location {
        Location::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn refused(text: &str) -> String {
        match Location::parse(text) {
            Ok(location) => panic!("{text:?} was accepted as {location}"),
            Err(error) => {
                assert_eq!(error.code(), crate::StoreErrorCode::NotAllowed, "{text:?}");
                error.to_string()
            }
        }
    }

    #[test]
    fn canonical_forms() {
        for (text, canonical) in [
            ("s3://bucket", "s3://bucket"),
            ("s3://bucket/", "s3://bucket"),
            ("S3://bucket/a/b/", "s3://bucket/a/b"),
            ("gs://my_bucket.example.com/x", "gs://my_bucket.example.com/x"),
            ("file:///srv/images/", "file:///srv/images"),
            ("file:///", "file:///"),
            ("memory://test-1/in", "memory://test-1/in"),
            ("s3://bucket/photos 2024/é+x", "s3://bucket/photos 2024/é+x"),
        ] {
            assert_eq!(parse(text).to_string(), canonical, "{text}");
            assert_eq!(parse(canonical).to_string(), canonical, "{canonical} again");
        }
        let location = parse("s3://bucket/a/b");
        assert_eq!((location.scheme(), location.bucket(), location.prefix()), (Scheme::S3, "bucket", "a/b"));
        let file = parse("file:///srv/in");
        assert_eq!((file.bucket(), file.prefix()), ("", "srv/in"));
    }

    #[test]
    fn hostile_and_malformed_locations_are_refused() {
        for text in [
            "",
            " s3://bucket/a",
            "s3://bucket/a ",
            "http://169.254.169.254/latest/meta-data",
            "https://bucket.s3.amazonaws.com/a",
            "HTTP://example.com",
            "ftp://host/x",
            "s3a://bucket/x",
            "bucket/prefix",
            "/etc/passwd",
            "s3:/bucket",
            "s3://",
            "s3:///prefix",
            "s3://bu",
            "s3://Bucket/a",
            "s3://-bucket/a",
            "s3://bucket-/a",
            "s3://bu..cket/a",
            "s3://192.168.1.10/a",
            "s3://bucket:9000/a",
            "s3://user:password@bucket/a",
            "s3://user@bucket/a",
            "s3://bucket/a/../b",
            "s3://bucket/..",
            "s3://bucket/./a",
            "s3://bucket/a//b",
            "s3://bucket//a",
            "s3://bucket/a%2F..%2Fb",
            "s3://bucket/%2e%2e/b",
            "s3://bucket/a\\..\\b",
            "s3://bucket/a?x=1",
            "s3://bucket/a#frag",
            "s3://bucket/a\u{0}b",
            "s3://bucket/a\nb",
            "s3://bucket/a\u{85}b",
            "file://localhost/etc",
            "file://host/share",
            "file:relative",
            "file:///etc/../root",
            "memory://",
            "memory://UPPER",
            "gs://x",
            &format!("s3://bucket/{}", "a".repeat(MAX_LOCATION_LEN)),
        ] {
            refused(text);
        }
    }

    #[test]
    fn refusals_never_echo_a_password() {
        let message = refused("s3://AKIAEXAMPLE:hunter2secret@bucket/a");
        assert!(!message.contains("hunter2secret"), "{message}");
        assert!(!message.contains("AKIAEXAMPLE"), "{message}");
        let message = refused("https://user:hunter2secret@example.com/");
        assert!(!message.contains("hunter2secret"), "{message}");
    }

    #[test]
    fn containment_is_by_whole_segments() {
        let root = parse("s3://bucket/photos");
        assert!(root.contains(&parse("s3://bucket/photos")));
        assert!(root.contains(&parse("s3://bucket/photos/")));
        assert!(root.contains(&parse("s3://bucket/photos/2024/a")));
        assert!(!root.contains(&parse("s3://bucket/photos2024")));
        assert!(!root.contains(&parse("s3://bucket/photo")));
        assert!(!root.contains(&parse("s3://bucket")));
        assert!(!root.contains(&parse("s3://bucket2/photos")));
        assert!(!root.contains(&parse("gs://bucket/photos")));
        assert!(!root.contains(&parse("memory://bucket/photos")));
        let whole = parse("s3://bucket");
        assert!(whole.contains(&parse("s3://bucket/anything/at/all")));
        assert!(!whole.contains(&parse("s3://bucket.other/x")));
        let file = parse("file:///srv/in");
        assert!(file.contains(&parse("file:///srv/in/a")));
        assert!(!file.contains(&parse("file:///srv/input")));
        assert!(!file.contains(&parse("file:///srv")));
        assert!(parse("s3://b12/a").overlaps(&parse("s3://b12/a/b")));
        assert!(parse("s3://b12/a/b").overlaps(&parse("s3://b12/a")));
        assert!(!parse("s3://b12/a").overlaps(&parse("s3://b12/b")));
    }

    #[test]
    fn keys() {
        for good in ["a.jpg", "a/b.jpg", "100%.jpg", "a b/#1?.png", "é/ü.JPG", ".hidden", "a..b"] {
            assert_eq!(Key::parse(good).expect(good).as_str(), good);
        }
        for bad in
            ["", "/a", "a/", "a//b", "..", "a/../b", "./a", "a/.", "a\u{0}b", "a\rb", &"k".repeat(1025)]
        {
            assert!(Key::parse(bad).is_err(), "{bad:?} accepted");
        }
        let key = Key::parse("a/b/c.jpg").unwrap();
        assert_eq!((key.folder(), key.file_name()), ("a/b/", "c.jpg"));
        let top = Key::parse("c.jpg").unwrap();
        assert_eq!((top.folder(), top.file_name()), ("", "c.jpg"));
    }

    #[test]
    fn keys_under_locations() {
        let location = parse("s3://bucket/in");
        let key = Key::parse("a/b.jpg").unwrap();
        assert_eq!(location.object_name(&key), "in/a/b.jpg");
        assert_eq!(location.url_of(&key), "s3://bucket/in/a/b.jpg");
        assert_eq!(location.key_of("in/a/b.jpg"), Some(key));
        assert_eq!(location.key_of("input/a.jpg"), None);
        assert_eq!(location.key_of("in"), None);
        assert_eq!(location.key_of("in/"), None);
        let whole = parse("s3://bucket");
        assert_eq!(whole.object_name(&Key::parse("x.jpg").unwrap()), "x.jpg");
        assert_eq!(parse("file:///srv/in").url_of(&Key::parse("x.jpg").unwrap()), "file:///srv/in/x.jpg");
    }
}
