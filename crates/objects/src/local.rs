//! Local folders (`file:///path`) as an object store, with the same contract as S3.
//!
//! `object_store`'s own local-file store cannot keep user metadata (it refuses attributes) and
//! lists in directory order, so resuming a listing after a key would miss files. This module
//! keeps both promises with the standard library:
//!
//! - **listing** walks the tree depth-first, each folder's entries sorted so that the keys come
//!   out in byte order (a folder `a` sorts as `a/`), on a blocking thread that hands them over
//!   a bounded channel; one folder's names are in memory at a time. Symbolic links and names
//!   that are not UTF-8 are not objects; names ending in `#` and digits are writes in progress;
//! - **writes** go to a temporary file beside the target (`name#digits`), carry the metadata
//!   as extended attributes (`user.dsobel.<name>`), and are renamed into place, so readers see
//!   the old file or the new one, never a part;
//! - **ETags** are `"inode-mtime-size"` in hex, as web servers make them: a rewrite changes it;
//! - **symbolic links** below the allowed root are refused (`store-not-allowed`) on every
//!   path an operation takes, so a link planted in a shared folder cannot lead a read or a
//!   write outside it. (The check is made just before the operation, not atomically with it.)
//!
//! A filesystem without user extended attributes (some network or FAT mounts) still takes
//! the objects; their metadata is then lost (with a warning), so the skip rule never skips them.

use std::fs::{self, File, Metadata as FsMetadata};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::{Result, StoreError};
use crate::store::{Metadata, ObjectHead, ObjectInfo};

/// The prefix of the extended attributes that hold an object's metadata.
const XATTR_PREFIX: &str = "user.dsobel.";

/// How many listed objects wait in the channel for the consumer.
const LIST_BUFFER: usize = 256;

/// The absolute path of an object name (`srv/in/a.jpg` → `/srv/in/a.jpg`).
pub(crate) fn path_of(object_name: &str) -> PathBuf {
    Path::new("/").join(object_name)
}

/// A file path and the allowed root it must stay under.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The allowed root (absolute); links above it are the operator's business.
    pub(crate) root: PathBuf,
    /// The file (absolute), under `root`.
    pub(crate) path: PathBuf,
}

impl Target {
    /// Refuses the path when a component below the root is a symbolic link.
    fn check(&self, what: &str) -> Result<()> {
        let Ok(rest) = self.path.strip_prefix(&self.root) else {
            return Err(StoreError::not_allowed(format!("{what}: outside its allowed folder")));
        };
        let mut current = self.root.clone();
        for component in rest.components() {
            current.push(component);
            match fs::symlink_metadata(&current) {
                Ok(metadata) if metadata.file_type().is_symlink() => {
                    return Err(StoreError::not_allowed(format!(
                        "{what}: {} is a symbolic link, which is not followed",
                        current.display()
                    )));
                }
                Ok(_) => {}
                // The rest does not exist yet (a write creates real folders) or cannot.
                Err(error)
                    if matches!(error.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) =>
                {
                    return Ok(());
                }
                Err(error) => return Err(io_error(error, what)),
            }
        }
        Ok(())
    }
}

/// Maps an I/O error on `what` to a store error.
fn io_error(error: io::Error, what: &str) -> StoreError {
    match error.kind() {
        io::ErrorKind::NotFound => StoreError::NotFound { what: what.to_owned() },
        io::ErrorKind::PermissionDenied => StoreError::Unauthorized { detail: format!("{what}: {error}") },
        _ => StoreError::failed(format!("{what}: {error}")),
    }
}

/// The ETag of a file from its metadata.
fn etag(metadata: &FsMetadata) -> String {
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{:x}-{:x}-{:x}\"", metadata.ino(), mtime, metadata.len())
}

fn modified(metadata: &FsMetadata) -> SystemTime {
    metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH)
}

/// True for names this store writes while an object is being written (`name#123`).
fn is_in_progress(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, digits)| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// A new temporary path beside `target`.
fn temporary_path(target: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = RandomState::new().hash_one((n, std::process::id())) % 1_000_000_000_000;
    let mut name = target.as_os_str().to_owned();
    name.push(format!("#{random}"));
    PathBuf::from(name)
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StoreError::failed(format!("file task: {error}")))?
}

/// Streams the objects under `folder` (absolute) in key order, keys relative to it, those
/// not after `after` left out.
pub(crate) fn list(
    folder: Target,
    after: Option<String>,
) -> futures_util::stream::BoxStream<'static, Result<(String, ObjectInfoParts)>> {
    let (sender, receiver) = mpsc::channel(LIST_BUFFER);
    tokio::task::spawn_blocking(move || match folder.check(&format!("list {}", folder.path.display())) {
        Ok(()) => walk(&folder.path, after.as_deref(), &sender),
        Err(error) => {
            let _ = sender.blocking_send(Err(error));
        }
    });
    Box::pin(futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    }))
}

/// What the listing knows of one file, before the caller turns it into an [`ObjectInfo`].
pub(crate) struct ObjectInfoParts {
    pub(crate) size: u64,
    pub(crate) etag: String,
    pub(crate) last_modified: SystemTime,
}

type ListSender = mpsc::Sender<Result<(String, ObjectInfoParts)>>;

/// The depth-first walk behind [`list`]. Stops when the receiver is gone.
fn walk(root: &Path, after: Option<&str>, sender: &ListSender) {
    // Each level: the key prefix of its folder ("" or "a/b/") and its sorted entries, reversed
    // so that `pop` takes the next one.
    let mut stack: Vec<(String, Vec<(String, bool)>)> = Vec::new();
    match sorted_entries(root) {
        Ok(entries) => stack.push((String::new(), entries)),
        // A folder that does not exist (or is a file) holds no objects, like an empty prefix.
        Err(error) if matches!(error.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
            return;
        }
        Err(error) => {
            let _ = sender.blocking_send(Err(io_error(error, &format!("list {}", root.display()))));
            return;
        }
    }
    while let Some((prefix, entries)) = stack.last_mut() {
        let Some((name, is_folder)) = entries.pop() else {
            stack.pop();
            continue;
        };
        let key = format!("{prefix}{name}");
        let path = root.join(&key);
        if is_folder {
            let folder_prefix = format!("{key}/");
            // Everything in this folder sorts before `after`: skip it without reading it.
            if after.is_some_and(|after| after > folder_prefix.as_str() && !after.starts_with(&folder_prefix))
            {
                continue;
            }
            match sorted_entries(&path) {
                Ok(entries) => stack.push((folder_prefix, entries)),
                // Gone, or replaced by a file, since its parent was read.
                Err(error)
                    if matches!(error.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {}
                Err(error) => {
                    let _ = sender.blocking_send(Err(io_error(error, &format!("list {}", path.display()))));
                    return;
                }
            }
            continue;
        }
        if after.is_some_and(|after| key.as_str() <= after) {
            continue;
        }
        let item = match fs::symlink_metadata(&path) {
            Ok(metadata) => Ok((
                key,
                ObjectInfoParts {
                    size: metadata.len(),
                    etag: etag(&metadata),
                    last_modified: modified(&metadata),
                },
            )),
            // Gone since the folder was read.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => Err(io_error(error, &format!("list {}", path.display()))),
        };
        let stop = item.is_err();
        if sender.blocking_send(item).is_err() || stop {
            return;
        }
    }
}

/// The objects and folders of one folder, sorted by key (a folder `x` as `x/`), reversed.
fn sorted_entries(folder: &Path) -> io::Result<Vec<(String, bool)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(folder)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            tracing::warn!(folder = %folder.display(), "a file name that is not UTF-8 is not listed");
            continue;
        };
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        if file_type.is_dir() {
            entries.push((name, true));
        } else if file_type.is_file() && !is_in_progress(&name) && crate::Key::parse(&name).is_ok() {
            entries.push((name, false));
        }
    }
    entries.sort_by(|(a, a_folder), (b, b_folder)| {
        let a = a.as_bytes().iter().chain(if *a_folder { &b"/"[..] } else { &b""[..] });
        let b = b.as_bytes().iter().chain(if *b_folder { &b"/"[..] } else { &b""[..] });
        b.cmp(a)
    });
    Ok(entries)
}

/// Reads the dsobel metadata of an open file.
fn read_metadata(file: &File) -> Metadata {
    let mut names = vec![0u8; 4096];
    let Ok(len) = rustix::fs::flistxattr(file, &mut names[..]) else { return Metadata::default() };
    let mut metadata = Metadata::default();
    for name in names[..len].split(|&b| b == 0) {
        let Some(short) = std::str::from_utf8(name).ok().and_then(|n| n.strip_prefix(XATTR_PREFIX)) else {
            continue;
        };
        let mut value = vec![0u8; 2048];
        if let Ok(len) = rustix::fs::fgetxattr(file, name, &mut value[..])
            && let Ok(value) = std::str::from_utf8(&value[..len])
        {
            let _ = metadata.insert(short, value);
        }
    }
    metadata
}

/// Opens a regular file (a folder is not an object).
fn open_object(path: &Path, what: &str) -> Result<(File, FsMetadata)> {
    let file = File::open(path).map_err(|error| io_error(error, what))?;
    let metadata = file.metadata().map_err(|error| io_error(error, what))?;
    if !metadata.is_file() {
        return Err(StoreError::NotFound { what: format!("{what} (not a file)") });
    }
    Ok((file, metadata))
}

fn head_of(file: &File, metadata: &FsMetadata) -> ObjectHead {
    ObjectHead {
        size: metadata.len(),
        etag: etag(metadata),
        last_modified: modified(metadata),
        metadata: read_metadata(file),
    }
}

/// Size, ETag and metadata of a file.
pub(crate) async fn head(target: Target, what: String) -> Result<ObjectHead> {
    blocking(move || {
        target.check(&what)?;
        let (file, metadata) = open_object(&target.path, &what)?;
        Ok(head_of(&file, &metadata))
    })
    .await
}

/// The whole file, refused when longer than `limit` (no more than `limit + 1` bytes read).
pub(crate) async fn get(
    target: Target,
    what: String,
    key: String,
    limit: u64,
) -> Result<(ObjectHead, Bytes)> {
    blocking(move || {
        target.check(&what)?;
        let (file, metadata) = open_object(&target.path, &what)?;
        if metadata.len() > limit {
            return Err(StoreError::TooLarge { key, limit });
        }
        let head = head_of(&file, &metadata);
        let mut bytes = Vec::with_capacity(metadata.len() as usize);
        (&file)
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|error| io_error(error, &what))?;
        if bytes.len() as u64 > limit {
            return Err(StoreError::TooLarge { key, limit });
        }
        Ok((head, Bytes::from(bytes)))
    })
    .await
}

/// The bytes `range` of a file; an error when the file is shorter.
pub(crate) async fn get_range(target: Target, what: String, range: Range<u64>) -> Result<Bytes> {
    blocking(move || {
        target.check(&what)?;
        let (mut file, metadata) = open_object(&target.path, &what)?;
        if range.end > metadata.len() {
            return Err(StoreError::failed(format!(
                "{what}: range {}..{} is past the end of the object ({} bytes)",
                range.start,
                range.end,
                metadata.len()
            )));
        }
        let mut bytes = vec![0; (range.end - range.start) as usize];
        file.seek(SeekFrom::Start(range.start)).map_err(|error| io_error(error, &what))?;
        file.read_exact(&mut bytes).map_err(|error| io_error(error, &what))?;
        Ok(Bytes::from(bytes))
    })
    .await
}

/// Writes a file atomically (temporary file, metadata, rename); returns its ETag.
pub(crate) async fn put(target: Target, what: String, bytes: Bytes, metadata: Metadata) -> Result<String> {
    blocking(move || {
        let mut file = LocalFile::create(&target, &what)?;
        file.write(&bytes)?;
        file.set_metadata(&metadata)?;
        file.finish()
    })
    .await
}

/// Removes a file; a missing one is not an error.
pub(crate) async fn delete(target: Target, what: String) -> Result<()> {
    blocking(move || {
        target.check(&what)?;
        match fs::remove_file(&target.path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(io_error(error, &what)),
        }
    })
    .await
}

/// A file being written: a temporary file renamed into place by [`LocalFile::finish`], removed
/// when dropped before.
pub(crate) struct LocalFile {
    target: PathBuf,
    temporary: PathBuf,
    file: Option<File>,
    what: String,
}

impl LocalFile {
    /// Creates the temporary file (and the folders above the target).
    pub(crate) fn create(target: &Target, what: &str) -> Result<LocalFile> {
        target.check(what)?;
        let target = target.path.as_path();
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|error| io_error(error, what))?;
        }
        let temporary = temporary_path(target);
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(|error| io_error(error, what))?;
        Ok(LocalFile { target: target.to_owned(), temporary, file: Some(file), what: what.to_owned() })
    }

    /// Appends bytes.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| StoreError::failed(format!("{}: already finished", self.what)))?;
        file.write_all(bytes).map_err(|error| io_error(error, &self.what))
    }

    /// Stores the metadata on the file, before it is renamed into place.
    fn set_metadata(&mut self, metadata: &Metadata) -> Result<()> {
        static WARNED: AtomicBool = AtomicBool::new(false);
        let Some(file) = self.file.as_ref() else { return Ok(()) };
        for (name, value) in metadata.iter() {
            let attribute = format!("{XATTR_PREFIX}{name}");
            match rustix::fs::fsetxattr(
                file,
                attribute.as_str(),
                value.as_bytes(),
                rustix::fs::XattrFlags::empty(),
            ) {
                Ok(()) => {}
                Err(rustix::io::Errno::NOTSUP) => {
                    if !WARNED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            path = %self.target.display(),
                            "this filesystem keeps no extended attributes: outputs here carry no metadata, so they are never skipped"
                        );
                    }
                    return Ok(());
                }
                Err(error) => {
                    return Err(StoreError::failed(format!("{}: metadata: {error}", self.what)));
                }
            }
        }
        Ok(())
    }

    /// Renames the file into place; returns its ETag.
    pub(crate) fn finish(mut self) -> Result<String> {
        let file =
            self.file.take().ok_or_else(|| StoreError::failed(format!("{}: already finished", self.what)))?;
        file.sync_data().map_err(|error| io_error(error, &self.what))?;
        drop(file);
        fs::rename(&self.temporary, &self.target).map_err(|error| io_error(error, &self.what))?;
        let metadata = fs::metadata(&self.target).map_err(|error| io_error(error, &self.what))?;
        Ok(etag(&metadata))
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

/// Puts a [`LocalFile`] into an async writer's hands: every call runs on a blocking thread.
pub(crate) struct LocalWriter {
    file: Option<LocalFile>,
}

impl LocalWriter {
    /// Starts writing `path`.
    pub(crate) async fn create(target: Target, what: String) -> Result<LocalWriter> {
        let file = blocking(move || LocalFile::create(&target, &what)).await?;
        Ok(LocalWriter { file: Some(file) })
    }

    /// Appends bytes.
    pub(crate) async fn write(&mut self, bytes: Bytes) -> Result<()> {
        let mut file = self.file.take().ok_or_else(|| StoreError::failed("write after the end"))?;
        let (file, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = file.write(&bytes);
            (file, outcome)
        })
        .await
        .map_err(|error| StoreError::failed(format!("file task: {error}")))?;
        self.file = Some(file);
        outcome
    }

    /// Renames the file into place.
    pub(crate) async fn finish(mut self) -> Result<String> {
        let file = self.file.take().ok_or_else(|| StoreError::failed("finish after the end"))?;
        blocking(move || file.finish()).await
    }

    /// Removes the temporary file.
    pub(crate) async fn abort(mut self) -> Result<()> {
        if let Some(file) = self.file.take() {
            blocking(move || {
                drop(file);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

/// Turns listing parts into an [`ObjectInfo`].
pub(crate) fn info(key: crate::Key, parts: ObjectInfoParts) -> ObjectInfo {
    ObjectInfo { key, size: parts.size, etag: parts.etag, last_modified: parts.last_modified }
}

/// A metadata map for tests of this module.
#[cfg(test)]
fn metadata_of(pairs: &[(&str, &str)]) -> Metadata {
    let mut metadata = Metadata::default();
    for (name, value) in pairs {
        metadata.insert(name, value).expect("valid metadata");
    }
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn target(root: &Path, path: PathBuf) -> Target {
        Target { root: root.to_owned(), path }
    }

    async fn keys(folder: &Path, after: Option<&str>) -> Vec<String> {
        list(target(folder, folder.to_owned()), after.map(str::to_owned))
            .map(|item| item.expect("listed").0)
            .collect::<Vec<_>>()
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lists_in_key_order_and_resumes_after_a_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["a-b", "a/x", "a/y/z", "a.c", "b", "a0", "é", "c#12", "c#x"] {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, name).unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let expected = vec!["a-b", "a.c", "a/x", "a/y/z", "a0", "b", "c#x", "é"];
        assert_eq!(keys(dir.path(), None).await, expected);
        let mut sorted = expected.clone();
        sorted.sort();
        assert_eq!(sorted, expected, "byte order");
        for after in ["a.c", "a/", "a/x", "a/y", "a/y/z", "a0", "0", "zz"] {
            let rest: Vec<&str> = expected.iter().copied().filter(|key| *key > after).collect();
            assert_eq!(keys(dir.path(), Some(after)).await, rest, "after {after}");
        }
        assert!(keys(&dir.path().join("missing"), None).await.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_are_atomic_and_carry_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = target(dir.path(), dir.path().join("out/a.png"));
        let what = "put a.png".to_owned();
        let metadata = metadata_of(&[("dsobel-source-etag", "\"abc\""), ("dsobel-options", "1234")]);
        let etag =
            put(path.clone(), what.clone(), Bytes::from_static(b"first"), metadata.clone()).await.unwrap();
        let first = head(path.clone(), what.clone()).await.unwrap();
        assert_eq!((first.size, first.etag.as_str(), &first.metadata), (5, etag.as_str(), &metadata));
        let second = put(path.clone(), what.clone(), Bytes::from_static(b"second"), Metadata::default())
            .await
            .unwrap();
        assert_ne!(second, etag);
        let (now, bytes) = get(path.clone(), what.clone(), "a.png".into(), 100).await.unwrap();
        assert_eq!(&bytes[..], b"second");
        assert!(now.metadata.is_empty(), "metadata of the overwritten file: {:?}", now.metadata);
        let names: Vec<_> =
            fs::read_dir(dir.path().join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a.png"], "no temporary file is left");
        let error = get(path.clone(), what.clone(), "a.png".into(), 5).await.expect_err("too large");
        assert_eq!(error.code(), crate::StoreErrorCode::PayloadTooLarge);
        assert_eq!(&get_range(path.clone(), what.clone(), 1..4).await.unwrap()[..], b"eco");
        assert!(get_range(path.clone(), what.clone(), 4..7).await.is_err());
        delete(path.clone(), what.clone()).await.unwrap();
        delete(path.clone(), what.clone()).await.unwrap();
        assert_eq!(head(path, what).await.unwrap_err().code(), crate::StoreErrorCode::NotFound);
    }

    #[test]
    fn in_progress_names() {
        assert!(is_in_progress("a.png#123"));
        assert!(!is_in_progress("a.png#"));
        assert!(!is_in_progress("a#b.png"));
        assert!(!is_in_progress("a.png"));
    }
}
