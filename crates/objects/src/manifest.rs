//! The manifest of a batch: `DEST/_manifest/<batch id>.jsonl`, one JSON line per item.
//!
//! Each line is a [`ManifestEntry`]: the source key and ETag, the output key, the status
//! (`done`, `skipped`, `failed`) and, for a failure, the error's code and message. Keys are
//! full object names in their buckets (the source's prefix included), so a line names its
//! objects without the batch's request at hand.
//!
//! [`ManifestWriter`] streams the lines to the store as they come (a multipart upload of
//! [`WRITER_PART_SIZE`](crate::WRITER_PART_SIZE) parts): memory holds one part, whatever the
//! number of items, and the manifest appears whole when [`ManifestWriter::finish`] is called,
//! never half-written. [`read_manifest`] streams it back, one bounded piece at a time.

use futures_util::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::location::{Key, Location};
use crate::store::{ObjectWriter, Objects};

/// The folder of the destination that holds the manifests.
pub const MANIFEST_FOLDER: &str = "_manifest";

/// How much of a manifest [`read_manifest`] reads at a time.
const READ_PIECE: u64 = 1024 * 1024;

/// The longest manifest line [`read_manifest`] accepts.
const MAX_LINE: usize = 64 * 1024;

/// The key of a batch's manifest under its destination: `_manifest/<batch id>.jsonl`. The id
/// must be 1 to 128 ASCII letters, digits, `-` or `_` (refused `store-not-allowed`).
pub fn manifest_key(batch_id: &str) -> Result<Key> {
    let valid = (1..=128).contains(&batch_id.len())
        && batch_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(StoreError::not_allowed(format!(
            "invalid batch id {:?}",
            batch_id.escape_debug().to_string()
        )));
    }
    Key::parse(&format!("{MANIFEST_FOLDER}/{batch_id}.jsonl"))
}

/// What happened to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Computed and written.
    Done,
    /// Its output was already current (the skip rule).
    Skipped,
    /// Not computed: see the error.
    Failed,
}

/// One line of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The source object's full name in its bucket.
    pub source_key: String,
    /// The ETag of the source bytes read (absent when it could not be read).
    pub source_etag: Option<String>,
    /// The output's full name in the destination bucket (absent when none could be named).
    pub output_key: Option<String>,
    /// What happened.
    pub status: ItemStatus,
    /// The error's stable code, for a failure (`corrupt-image`, `store-not-found`, ...).
    pub error_code: Option<String>,
    /// The error's message, for a failure.
    pub error_message: Option<String>,
}

impl ManifestEntry {
    /// An item computed and written.
    pub fn done(
        source: &Location,
        key: &Key,
        etag: &str,
        destination: &Location,
        output: &Key,
    ) -> ManifestEntry {
        ManifestEntry::success(ItemStatus::Done, source, key, etag, destination, output)
    }

    /// An item whose output was already current.
    pub fn skipped(
        source: &Location,
        key: &Key,
        etag: &str,
        destination: &Location,
        output: &Key,
    ) -> ManifestEntry {
        ManifestEntry::success(ItemStatus::Skipped, source, key, etag, destination, output)
    }

    fn success(
        status: ItemStatus,
        source: &Location,
        key: &Key,
        etag: &str,
        destination: &Location,
        output: &Key,
    ) -> ManifestEntry {
        ManifestEntry {
            source_key: source.object_name(key),
            source_etag: Some(etag.to_owned()),
            output_key: Some(destination.object_name(output)),
            status,
            error_code: None,
            error_message: None,
        }
    }

    /// An item that failed, with the error's code and message.
    pub fn failed(
        source: &Location,
        key: &Key,
        etag: Option<&str>,
        output: Option<(&Location, &Key)>,
        code: &str,
        message: &str,
    ) -> ManifestEntry {
        ManifestEntry {
            source_key: source.object_name(key),
            source_etag: etag.map(str::to_owned),
            output_key: output.map(|(destination, output)| destination.object_name(output)),
            status: ItemStatus::Failed,
            error_code: Some(code.to_owned()),
            error_message: Some(message.to_owned()),
        }
    }
}

/// Writes a manifest line by line; see the module's notes.
#[derive(Debug)]
pub struct ManifestWriter {
    writer: ObjectWriter,
    line: Vec<u8>,
    lines: u64,
}

impl ManifestWriter {
    /// Starts the manifest of `batch_id` under `destination`.
    pub async fn create(destination: &Objects, batch_id: &str) -> Result<ManifestWriter> {
        let key = manifest_key(batch_id)?;
        Ok(ManifestWriter {
            writer: destination.writer(&key).await?,
            line: Vec::with_capacity(512),
            lines: 0,
        })
    }

    /// Appends one line.
    pub async fn append(&mut self, entry: &ManifestEntry) -> Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, entry)
            .map_err(|error| StoreError::failed(format!("manifest: {error}")))?;
        self.line.push(b'\n');
        self.writer.write(&self.line).await?;
        self.lines += 1;
        Ok(())
    }

    /// How many lines were appended.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Completes the manifest (it appears now); returns the number of lines.
    pub async fn finish(self) -> Result<u64> {
        self.writer.finish().await?;
        Ok(self.lines)
    }

    /// Gives up: no manifest appears.
    pub async fn abort(self) -> Result<()> {
        self.writer.abort().await
    }
}

/// The entries of the manifest of `batch_id` under `destination`, streamed: a piece of at most
/// 1 MiB is read at a time. A line that is not an entry ends the stream with
/// [`StoreError::Failed`].
pub fn read_manifest(destination: &Objects, batch_id: &str) -> BoxStream<'static, Result<ManifestEntry>> {
    let key = match manifest_key(batch_id) {
        Ok(key) => key,
        Err(error) => return stream::once(async move { Err(error) }).boxed(),
    };
    let state =
        Reader { objects: destination.clone(), key, size: None, offset: 0, pending: Vec::new(), done: false };
    stream::unfold(state, |mut reader| async move {
        let next = reader.next_entry().await;
        match next {
            Ok(Some(entry)) => Some((Ok(entry), reader)),
            Ok(None) => None,
            Err(error) if !reader.done => {
                reader.done = true;
                Some((Err(error), reader))
            }
            Err(_) => None,
        }
    })
    .boxed()
}

struct Reader {
    objects: Objects,
    key: Key,
    size: Option<u64>,
    offset: u64,
    pending: Vec<u8>,
    done: bool,
}

impl Reader {
    async fn next_entry(&mut self) -> Result<Option<ManifestEntry>> {
        if self.done {
            return Ok(None);
        }
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return self.parse(&line[..end]).map(Some);
            }
            if self.pending.len() > MAX_LINE {
                self.done = true;
                return Err(StoreError::failed(format!(
                    "manifest {}: a line over {MAX_LINE} bytes",
                    self.key
                )));
            }
            let size = match self.size {
                Some(size) => size,
                None => {
                    let size = self.objects.head(&self.key).await?.size;
                    self.size = Some(size);
                    size
                }
            };
            if self.offset >= size {
                self.done = true;
                if self.pending.is_empty() {
                    return Ok(None);
                }
                let line = std::mem::take(&mut self.pending);
                return self.parse(&line).map(Some);
            }
            let end = size.min(self.offset + READ_PIECE);
            let piece = self.objects.get_range(&self.key, self.offset..end).await?;
            self.offset = end;
            self.pending.extend_from_slice(&piece);
        }
    }

    fn parse(&mut self, line: &[u8]) -> Result<ManifestEntry> {
        serde_json::from_slice(line).map_err(|error| {
            self.done = true;
            StoreError::failed(format!("manifest {}: {error}", self.key))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_keys() {
        assert_eq!(manifest_key("b-0123_x").unwrap().as_str(), "_manifest/b-0123_x.jsonl");
        for bad in ["", "../x", "a/b", "a.b", "a b", "é", &"x".repeat(129), "a\n"] {
            assert_eq!(manifest_key(bad).unwrap_err().code(), crate::StoreErrorCode::NotAllowed, "{bad:?}");
        }
    }

    #[test]
    fn entries_as_json_lines() {
        let source = Location::parse("s3://src-bucket/in").unwrap();
        let destination = Location::parse("s3://dst-bucket/out").unwrap();
        let key = Key::parse("a/b.jpg").unwrap();
        let output = Key::parse("a/b.png").unwrap();
        let done = ManifestEntry::done(&source, &key, "\"e1\"", &destination, &output);
        assert_eq!(
            serde_json::to_string(&done).unwrap(),
            r#"{"source_key":"in/a/b.jpg","source_etag":"\"e1\"","output_key":"out/a/b.png","status":"done","error_code":null,"error_message":null}"#
        );
        let failed = ManifestEntry::failed(
            &source,
            &key,
            Some("\"e1\""),
            Some((&destination, &output)),
            "corrupt-image",
            "corrupt JPEG image: line\nbreak",
        );
        let line = serde_json::to_string(&failed).unwrap();
        assert!(!line.contains('\n'), "one line: {line}");
        assert_eq!(serde_json::from_str::<ManifestEntry>(&line).unwrap(), failed);
        let skipped = ManifestEntry::skipped(&source, &key, "\"e1\"", &destination, &output);
        assert_eq!(skipped.status, ItemStatus::Skipped);
    }
}
