//! The rules of a batch, as plain functions: which source keys are items and what their
//! outputs are called, what an output carries, and when an output is already done.
//!
//! **Naming** ([`plan_item`]). An item's output has the source's folders and stem with the
//! output format's extension: `SRC/a/b.jpg` → `DEST/a/b.png` (`a/b.tiff` for TIFF output).
//!
//! - Keys with an image extension (any case: `jpg jpeg jpe jfif png webp gif bmp dib tif
//!   tiff`) are items; the extension is replaced.
//! - Keys without an extension (`IMG_0001`) are items too: the decoder reads the content, and
//!   a file that is no image is recorded `unsupported-format`. The output extension is added.
//! - Keys with another extension (`notes.txt`, `x.json`, a manifest) and hidden files (a name
//!   starting with `.`, such as `.DS_Store` or `._x.jpg`) are not items: the batch ignores
//!   them (the service may count them).
//!
//! Two sources can name the same output (`a/b.jpg` and `a/b.png`, or `b.JPG` and `b.jpg`);
//! the rule is not one-to-one. Each output carries its source's ETag, so the skip rule never
//! takes one source's output for the other's (both are recomputed, the last write wins) and
//! the manifest shows both lines with the same output key.
//!
//! **Stamp** ([`OutputStamp`]). Every output is written with two metadata entries: the ETag
//! of the source bytes it was computed from (`dsobel-source-etag`) and a digest of the options
//! that shaped it (`dsobel-options-digest`, see [`options_digest`]).
//!
//! **Skip rule** ([`OutputStamp::is_current`]). An item is skipped when its output exists
//! with the same source ETag and options digest: same input, same options, so the same bytes.
//!
//! **Locations** ([`check_batch_locations`]). Source and destination may not overlap: outputs
//! inside the source would be listed as inputs by the next run, and a source inside the
//! destination could be overwritten by outputs.

use std::fmt;

use crate::error::{Result, StoreError};
use crate::location::{Key, Location, MAX_KEY_LEN};
use crate::store::{Metadata, ObjectHead, Objects};

/// The extensions of the images a batch takes (compared in lowercase).
pub const IMAGE_EXTENSIONS: [&str; 11] =
    ["jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "bmp", "dib", "tif", "tiff"];

/// The metadata name of the source's ETag on an output.
pub const SOURCE_ETAG_METADATA: &str = "dsobel-source-etag";

/// The metadata name of the options digest on an output.
pub const OPTIONS_DIGEST_METADATA: &str = "dsobel-options-digest";

/// The extension of the output format, without the dot: `png`, `tiff`, `npy`...
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutputExtension(String);

impl OutputExtension {
    /// Checks an extension: 1 to 8 lowercase ASCII letters or digits.
    pub fn new(extension: &str) -> Result<OutputExtension> {
        if (1..=8).contains(&extension.len())
            && extension.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            Ok(OutputExtension(extension.to_owned()))
        } else {
            Err(StoreError::failed(format!("invalid output extension {extension:?}")))
        }
    }

    /// `png`, the extension of every output mode today.
    pub fn png() -> OutputExtension {
        OutputExtension("png".to_owned())
    }

    /// The extension as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a batch does with one listed source key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemPlan {
    /// An item: compute it and write this output key (relative to the destination).
    Process {
        /// The output's key.
        output: Key,
    },
    /// Not an item.
    Ignore(IgnoreReason),
}

/// Why a listed key is not an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// Its name starts with `.`.
    Hidden,
    /// Its extension is not an image's.
    NotAnImage,
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IgnoreReason::Hidden => "hidden file",
            IgnoreReason::NotAnImage => "not an image by its extension",
        })
    }
}

/// The plan for a source key (relative to the source location): its output key, or why it is
/// not an item. An error (`store-not-allowed`) when the output's name would be invalid (over
/// 1,024 bytes): the item is then recorded as failed with it.
pub fn plan_item(source: &Key, extension: &OutputExtension) -> Result<ItemPlan> {
    let name = source.file_name();
    if name.starts_with('.') {
        return Ok(ItemPlan::Ignore(IgnoreReason::Hidden));
    }
    let stem = match name.rsplit_once('.') {
        None => name,
        Some((stem, source_extension)) => {
            if !IMAGE_EXTENSIONS.contains(&source_extension.to_ascii_lowercase().as_str()) {
                return Ok(ItemPlan::Ignore(IgnoreReason::NotAnImage));
            }
            stem
        }
    };
    let output = format!("{}{stem}.{}", source.folder(), extension.as_str());
    if output.len() > MAX_KEY_LEN {
        return Err(StoreError::not_allowed(format!(
            "the output name of {source} would be longer than {MAX_KEY_LEN} bytes"
        )));
    }
    Ok(ItemPlan::Process { output: Key::parse(&output)? })
}

/// Refuses a source and a destination that overlap (`store-not-allowed`).
pub fn check_batch_locations(source: &Location, destination: &Location) -> Result<()> {
    if source.contains(destination) {
        Err(StoreError::not_allowed(format!(
            "the destination {destination} lies inside the source {source}: its outputs would become inputs"
        )))
    } else if destination.contains(source) {
        Err(StoreError::not_allowed(format!(
            "the source {source} lies inside the destination {destination}: outputs could overwrite sources"
        )))
    } else {
        Ok(())
    }
}

/// A digest of the options that shape an output (SHA-256, in hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OptionsDigest(String);

impl OptionsDigest {
    /// The digest as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OptionsDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The digest of a set of options given as name and value pairs, in any order. Pass every
/// option that changes the output's bytes, with its default filled in (so that "threshold
/// left out" and "threshold=100" agree), and a version of the output's definition if it
/// changes. Names and values are length-prefixed, so no choice of them can collide with
/// another set.
pub fn options_digest<'a>(options: impl IntoIterator<Item = (&'a str, &'a str)>) -> OptionsDigest {
    let mut options: Vec<(&str, &str)> = options.into_iter().collect();
    options.sort_unstable();
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"dsobel-options/1\n");
    for (name, value) in options {
        for part in [name, value] {
            context.update(format!("{}:", part.len()).as_bytes());
            context.update(part.as_bytes());
        }
    }
    OptionsDigest(hex(context.finish().as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What an output says about how it was made: its source's ETag and the options digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputStamp {
    /// The ETag of the source bytes the output was computed from.
    pub source_etag: String,
    /// The options digest.
    pub options_digest: OptionsDigest,
}

impl OutputStamp {
    /// A stamp.
    pub fn new(source_etag: &str, options_digest: OptionsDigest) -> OutputStamp {
        OutputStamp { source_etag: source_etag.to_owned(), options_digest }
    }

    /// The metadata to write the output with.
    pub fn metadata(&self) -> Metadata {
        let mut metadata = Metadata::default();
        metadata
            .insert(SOURCE_ETAG_METADATA, &etag_token(&self.source_etag))
            .and_then(|()| metadata.insert(OPTIONS_DIGEST_METADATA, self.options_digest.as_str()))
            .expect("an ETag token and a digest are always valid metadata");
        metadata
    }

    /// The skip rule: true when `output` (the existing output's head) was made from the same
    /// source bytes with the same options.
    pub fn is_current(&self, output: &ObjectHead) -> bool {
        output.metadata.get(SOURCE_ETAG_METADATA) == Some(etag_token(&self.source_etag).as_str())
            && output.metadata.get(OPTIONS_DIGEST_METADATA) == Some(self.options_digest.as_str())
    }

    /// Looks the output up and applies the skip rule: false when it does not exist.
    pub async fn output_is_current(&self, destination: &Objects, output: &Key) -> Result<bool> {
        match destination.head(output).await {
            Ok(head) => Ok(self.is_current(&head)),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }
}

/// An ETag as metadata can hold it: as it is when it is short printable ASCII (all the
/// supported stores' are), else a digest of it.
fn etag_token(etag: &str) -> String {
    if etag.len() <= 200 && etag.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        etag.to_owned()
    } else {
        format!("sha256:{}", hex(ring::digest::digest(&ring::digest::SHA256, etag.as_bytes()).as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn plan(source: &str) -> ItemPlan {
        plan_item(&Key::parse(source).unwrap(), &OutputExtension::png()).unwrap()
    }

    fn output(source: &str) -> String {
        match plan(source) {
            ItemPlan::Process { output } => output.as_str().to_owned(),
            ItemPlan::Ignore(reason) => panic!("{source} ignored: {reason}"),
        }
    }

    #[test]
    fn output_names() {
        assert_eq!(output("a/b.jpg"), "a/b.png");
        assert_eq!(output("b.JPEG"), "b.png");
        assert_eq!(output("x/y/z.tiff"), "x/y/z.png");
        assert_eq!(output("photo.png"), "photo.png");
        assert_eq!(output("archive.tar.gif"), "archive.tar.png");
        assert_eq!(output("a.b/c.webp"), "a.b/c.png");
        assert_eq!(output("IMG_0001"), "IMG_0001.png");
        assert_eq!(output("a.b/IMG_0001"), "a.b/IMG_0001.png");
        let tiff =
            plan_item(&Key::parse("a/b.jpg").unwrap(), &OutputExtension::new("tiff").unwrap()).unwrap();
        assert_eq!(tiff, ItemPlan::Process { output: Key::parse("a/b.tiff").unwrap() });
    }

    #[test]
    fn keys_that_are_not_items() {
        for (source, reason) in [
            (".DS_Store", IgnoreReason::Hidden),
            ("a/._b.jpg", IgnoreReason::Hidden),
            ("a/.hidden", IgnoreReason::Hidden),
            ("notes.txt", IgnoreReason::NotAnImage),
            ("a/b.jpg.json", IgnoreReason::NotAnImage),
            ("_manifest/batch.jsonl", IgnoreReason::NotAnImage),
            ("a/b.jpg~", IgnoreReason::NotAnImage),
            ("trailing.", IgnoreReason::NotAnImage),
        ] {
            assert_eq!(plan(source), ItemPlan::Ignore(reason), "{source}");
        }
    }

    #[test]
    fn an_output_name_too_long_is_an_error() {
        let source = Key::parse(&"x".repeat(MAX_KEY_LEN - 2)).unwrap();
        let error = plan_item(&source, &OutputExtension::png()).expect_err("too long");
        assert_eq!(error.code(), crate::StoreErrorCode::NotAllowed);
    }

    #[test]
    fn output_extensions() {
        for good in ["png", "tiff", "npy", "jp2"] {
            assert_eq!(OutputExtension::new(good).unwrap().as_str(), good);
        }
        for bad in ["", "PNG", ".png", "p/ng", "averylongext", "pn g"] {
            assert!(OutputExtension::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlapping_locations_are_refused() {
        let location = |url: &str| Location::parse(url).unwrap();
        check_batch_locations(&location("s3://bkt/in"), &location("s3://bkt/out")).unwrap();
        check_batch_locations(&location("s3://bkt/in"), &location("s3://bkt/in-edges")).unwrap();
        check_batch_locations(&location("s3://bkt/in"), &location("s3://other/in")).unwrap();
        for (source, destination) in [
            ("s3://bkt/in", "s3://bkt/in"),
            ("s3://bkt/in", "s3://bkt/in/edges"),
            ("s3://bkt/in/photos", "s3://bkt/in"),
            ("s3://bkt", "s3://bkt/out"),
            ("file:///srv/a", "file:///srv/a/b"),
        ] {
            let error =
                check_batch_locations(&location(source), &location(destination)).expect_err(destination);
            assert_eq!(error.code(), crate::StoreErrorCode::NotAllowed);
        }
    }

    #[test]
    fn options_digests() {
        let a = options_digest([("threshold", "100"), ("magnitude", "l2"), ("output", "binary")]);
        let b = options_digest([("output", "binary"), ("threshold", "100"), ("magnitude", "l2")]);
        assert_eq!(a, b, "order does not matter");
        assert_eq!(a.as_str().len(), 64);
        assert_ne!(a, options_digest([("threshold", "101"), ("magnitude", "l2"), ("output", "binary")]));
        // Length prefixes: moving characters between names and values changes the digest.
        assert_ne!(options_digest([("ab", "c")]), options_digest([("a", "bc")]));
        assert_ne!(options_digest([("a", "b:1:c")]), options_digest([("a", "b"), ("c", "")]));
        // A known value, so a change of the definition cannot go unnoticed.
        assert_eq!(
            options_digest([]).as_str(),
            hex(ring::digest::digest(&ring::digest::SHA256, b"dsobel-options/1\n").as_ref())
        );
    }

    fn head_with(metadata: Metadata) -> ObjectHead {
        ObjectHead { size: 1, etag: "\"x\"".into(), last_modified: SystemTime::UNIX_EPOCH, metadata }
    }

    #[test]
    fn the_skip_rule() {
        let digest = options_digest([("threshold", "100")]);
        let stamp = OutputStamp::new("\"9b2cf535f27731c974343645a3985328\"", digest.clone());
        let metadata = stamp.metadata();
        assert_eq!(metadata.get(SOURCE_ETAG_METADATA), Some("\"9b2cf535f27731c974343645a3985328\""));
        assert!(stamp.is_current(&head_with(metadata.clone())));
        assert!(!OutputStamp::new("\"other\"", digest).is_current(&head_with(metadata.clone())));
        assert!(!OutputStamp::new(&stamp.source_etag, options_digest([])).is_current(&head_with(metadata)));
        assert!(!stamp.is_current(&head_with(Metadata::default())), "an output without a stamp is redone");
        let odd = OutputStamp::new("é\u{1}", options_digest([]));
        assert!(odd.metadata().get(SOURCE_ETAG_METADATA).unwrap().starts_with("sha256:"));
        assert!(odd.is_current(&head_with(odd.metadata())));
    }
}
