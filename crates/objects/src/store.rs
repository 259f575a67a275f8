//! Opening allowed locations ([`Stores`]) and the operations a batch needs ([`Objects`]).
//!
//! [`Stores`] holds the allow-list and the cloud settings, and one client per bucket (a client
//! keeps its connections, so every task of a worker shares them). [`Stores::open`] checks a
//! location against the allow-list and gives the [`Objects`] under it: list (a stream, in key
//! order, resumable after a key), head, get (with a size limit), ranged get, put with
//! metadata (atomic), a streaming writer for large objects, delete. Every key an operation
//! takes is relative to the location, so nothing can reach outside it.
//!
//! S3 and GCS go through `object_store`'s clients, `memory://` through its in-memory store
//! (one per name, in this process), and `file://` through this crate's own code (the `local` module).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::buffered::BufWriter;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
};
use tokio::io::AsyncWriteExt;

use crate::allow::AllowList;
use crate::config::CloudConfig;
use crate::error::{Redactor, Result, StoreError, classify};
use crate::local;
use crate::location::{Key, Location, Scheme};

/// The stream [`Objects::list`] returns: objects in key order, an error ending it.
pub type ObjectStream = BoxStream<'static, Result<ObjectInfo>>;

/// How much of a streamed object is buffered before a part goes out (and the largest object
/// [`ObjectWriter`] writes with one put instead of a multipart upload). S3's smallest part is
/// 5 MiB.
pub const WRITER_PART_SIZE: usize = 8 * 1024 * 1024;

/// How many parts of one streamed object are uploaded at once.
const WRITER_CONCURRENCY: usize = 2;

/// The longest metadata name, and the most metadata bytes one object may carry (S3 takes 2 KB
/// of user metadata).
const MAX_METADATA_NAME: usize = 64;
const MAX_METADATA_BYTES: usize = 2048;

/// An object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key, relative to the listed location.
    pub key: Key,
    /// Its size in bytes.
    pub size: u64,
    /// Its ETag as the store gives it (quotes included for S3); changes when the object does.
    pub etag: String,
    /// When it was last written.
    pub last_modified: SystemTime,
}

/// What [`Objects::head`] tells of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// Its size in bytes.
    pub size: u64,
    /// Its ETag (the same string a listing gives).
    pub etag: String,
    /// When it was last written.
    pub last_modified: SystemTime,
    /// The user metadata it was written with.
    pub metadata: Metadata,
}

/// An object read whole by [`Objects::get`].
#[derive(Debug, Clone)]
pub struct Object {
    /// Size, ETag and metadata of the bytes read.
    pub head: ObjectHead,
    /// The bytes.
    pub bytes: Bytes,
}

/// User metadata of an object: names of lowercase letters, digits and `-` (at most 64), values
/// of printable ASCII, at most 2 KB in all, so they survive S3, GCS and local files alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(BTreeMap<String, String>);

impl Metadata {
    /// Sets `name` to `value`; [`StoreError::Failed`] when either breaks the rules above.
    pub fn insert(&mut self, name: &str, value: &str) -> Result<()> {
        let name_ok = !name.is_empty()
            && name.len() <= MAX_METADATA_NAME
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-');
        if !name_ok {
            return Err(StoreError::failed(format!("invalid metadata name {name:?}")));
        }
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(StoreError::failed(format!("metadata {name}: only printable ASCII values are kept")));
        }
        let total: usize = self.0.iter().filter(|(n, _)| *n != name).map(|(n, v)| n.len() + v.len()).sum();
        if total + name.len() + value.len() > MAX_METADATA_BYTES {
            return Err(StoreError::failed(format!("metadata over {MAX_METADATA_BYTES} bytes")));
        }
        self.0.insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The names and values, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn to_attributes(&self) -> Attributes {
        self.0.iter().map(|(name, value)| (Attribute::Metadata(name.clone().into()), value.clone())).collect()
    }

    fn from_attributes(attributes: &Attributes) -> Metadata {
        let mut metadata = Metadata::default();
        for (attribute, value) in attributes {
            if let Attribute::Metadata(name) = attribute {
                // A name or value another writer set that breaks the rules is not ours: left out.
                let _ = metadata.insert(&name.to_ascii_lowercase(), value.as_ref());
            }
        }
        metadata
    }
}

/// One client per bucket, shared by every [`Objects`] of that bucket.
#[derive(Clone)]
enum Backend {
    /// S3, GCS and memory, through `object_store`.
    Remote(Arc<dyn ObjectStore>),
    /// Local folders.
    Local,
}

/// The in-memory stores of this process, by name.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    let mut stores = STORES.get_or_init(Default::default).lock().unwrap_or_else(|poison| poison.into_inner());
    stores.entry(name.to_owned()).or_insert_with(|| Arc::new(InMemory::new())).clone()
}

/// The entry point: the allow-list, the cloud settings and the clients made so far.
pub struct Stores {
    allow: AllowList,
    cloud: CloudConfig,
    clients: Mutex<HashMap<(Scheme, String), Backend>>,
}

impl Stores {
    /// Stores with this allow-list and these cloud settings.
    pub fn new(allow: AllowList, cloud: CloudConfig) -> Stores {
        Stores { allow, cloud, clients: Mutex::new(HashMap::new()) }
    }

    /// Stores configured by the environment: `DSOBEL_BATCH_STORES` and the `AWS_*` and
    /// `GOOGLE_*` variables.
    pub fn from_env() -> Result<Stores> {
        Ok(Stores::new(AllowList::from_env()?, CloudConfig::from_env()))
    }

    /// The allow-list.
    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    /// The objects under the location `url`, when the allow-list allows it
    /// ([`StoreError::NotAllowed`] otherwise). No request is made: a missing bucket or bad
    /// credentials show at the first operation (or at [`Objects::health_check`]).
    pub fn open(&self, url: &str) -> Result<Objects> {
        let location = self.allow.check(url)?;
        self.open_location(&location)
    }

    /// [`Stores::open`] for a location already parsed.
    pub fn open_location(&self, location: &Location) -> Result<Objects> {
        let root = self.allow.root_of(location)?;
        let backend = self.backend(location)?;
        Ok(Objects {
            location: location.clone(),
            backend,
            redactor: self.cloud.redactor().clone(),
            local_root: local::path_of(root.prefix()),
        })
    }

    fn backend(&self, location: &Location) -> Result<Backend> {
        let id = (location.scheme(), location.bucket().to_owned());
        let mut clients = self.clients.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(backend) = clients.get(&id) {
            return Ok(backend.clone());
        }
        let backend = match location.scheme() {
            Scheme::S3 => Backend::Remote(self.cloud.s3(location.bucket())?),
            Scheme::Gcs => Backend::Remote(self.cloud.gcs(location.bucket())?),
            Scheme::Memory => Backend::Remote(memory_store(location.bucket())),
            Scheme::File => Backend::Local,
        };
        clients.insert(id, backend.clone());
        Ok(backend)
    }
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores")
            .field("allow", &self.allow)
            .field("cloud", &self.cloud)
            .finish_non_exhaustive()
    }
}

/// The objects under one allowed location, and what can be done with them.
///
/// Cheap to clone (the client is shared). Keys are relative to [`Objects::location`].
#[derive(Clone)]
pub struct Objects {
    location: Location,
    backend: Backend,
    redactor: Redactor,
    /// For `file://`: the allowed root's folder, below which no symbolic link is followed.
    local_root: std::path::PathBuf,
}

impl fmt::Debug for Objects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Objects({})", self.location)
    }
}

impl Objects {
    /// The location these objects are under.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The objects under this location at any depth, in byte order of their keys, as a
    /// stream: the store is asked one page at a time (S3: 1,000 keys) as the stream is read,
    /// so a million keys are never in memory. An error ends the stream.
    pub fn list(&self) -> ObjectStream {
        self.list_from(None)
    }

    /// [`Objects::list`] without the keys up to and including `after`: how a listing that
    /// stopped resumes from the last key it handed out.
    pub fn list_after(&self, after: &Key) -> ObjectStream {
        self.list_from(Some(after))
    }

    fn list_from(&self, after: Option<&Key>) -> ObjectStream {
        let location = self.location.clone();
        let doing = format!("list {location}");
        match &self.backend {
            Backend::Local => {
                let folder =
                    local::Target { root: self.local_root.clone(), path: local::path_of(location.prefix()) };
                local::list(folder, after.map(|key| key.as_str().to_owned()))
                    .map(move |item| {
                        let (key, parts) = item?;
                        let key = Key::parse(&key)?;
                        Ok(local::info(key, parts))
                    })
                    .boxed()
            }
            Backend::Remote(store) => {
                let prefix = match store_path(location.prefix()) {
                    Ok(prefix) => prefix,
                    Err(error) => return futures_util::stream::once(async move { Err(error) }).boxed(),
                };
                let prefix = (!location.prefix().is_empty()).then_some(prefix);
                let listing = match after {
                    None => store.list(prefix.as_ref()),
                    Some(after) => match store_path(&location.object_name(after)) {
                        Ok(offset) => store.list_with_offset(prefix.as_ref(), &offset),
                        Err(error) => return futures_util::stream::once(async move { Err(error) }).boxed(),
                    },
                };
                let redactor = self.redactor.clone();
                listing
                    .filter_map(move |item| {
                        let outcome = match item {
                            Err(error) => Some(Err(classify(error, &doing, &redactor))),
                            Ok(meta) => match location.key_of(meta.location.as_ref()) {
                                Some(key) => Some(Ok(ObjectInfo {
                                    key,
                                    size: meta.size,
                                    etag: etag_or_fallback(meta.e_tag, meta.size, meta.last_modified.timestamp_micros()),
                                    last_modified: system_time(meta.last_modified.timestamp_micros()),
                                })),
                                None => {
                                    tracing::warn!(object = %meta.location, "{doing}: a key that cannot be used is left out");
                                    None
                                }
                            },
                        };
                        std::future::ready(outcome)
                    })
                    .boxed()
            }
        }
    }

    /// Size, ETag and metadata of the object `key`; [`StoreError::NotFound`] when it (or its
    /// bucket) does not exist.
    pub async fn head(&self, key: &Key) -> Result<ObjectHead> {
        let doing = format!("head {}", self.location.url_of(key));
        match &self.backend {
            Backend::Local => local::head(self.file_path(key), doing).await,
            Backend::Remote(store) => {
                let path = self.store_path(key)?;
                let options = GetOptions { head: true, ..GetOptions::default() };
                let result =
                    store.get_opts(&path, options).await.map_err(|e| classify(e, &doing, &self.redactor))?;
                Ok(remote_head(result.meta, &result.attributes))
            }
        }
    }

    /// The whole object `key`, with its head. More than `limit` bytes is
    /// [`StoreError::TooLarge`] (code `payload-too-large`), found before the body is read.
    pub async fn get(&self, key: &Key, limit: u64) -> Result<Object> {
        let doing = format!("get {}", self.location.url_of(key));
        let name = self.location.object_name(key);
        match &self.backend {
            Backend::Local => {
                let (head, bytes) = local::get(self.file_path(key), doing, name, limit).await?;
                Ok(Object { head, bytes })
            }
            Backend::Remote(store) => {
                let path = self.store_path(key)?;
                let result = store
                    .get_opts(&path, GetOptions::default())
                    .await
                    .map_err(|e| classify(e, &doing, &self.redactor))?;
                if result.meta.size > limit {
                    return Err(StoreError::TooLarge { key: name, limit });
                }
                let head = remote_head(result.meta.clone(), &result.attributes);
                let bytes = result.bytes().await.map_err(|e| classify(e, &doing, &self.redactor))?;
                if bytes.len() as u64 > limit {
                    return Err(StoreError::TooLarge { key: name, limit });
                }
                Ok(Object { head, bytes })
            }
        }
    }

    /// The bytes `range` of the object `key` (for the strips of a JPEG with restart markers).
    /// An empty range, or one past the end of the object, is [`StoreError::Failed`].
    pub async fn get_range(&self, key: &Key, range: Range<u64>) -> Result<Bytes> {
        let doing = format!("get bytes {}..{} of {}", range.start, range.end, self.location.url_of(key));
        if range.start >= range.end {
            return Err(StoreError::failed(format!("{doing}: empty range")));
        }
        match &self.backend {
            Backend::Local => local::get_range(self.file_path(key), doing, range).await,
            Backend::Remote(store) => {
                let path = self.store_path(key)?;
                let options =
                    GetOptions { range: Some(GetRange::Bounded(range.clone())), ..GetOptions::default() };
                let result =
                    store.get_opts(&path, options).await.map_err(|e| classify(e, &doing, &self.redactor))?;
                if result.range != range {
                    return Err(StoreError::failed(format!(
                        "{doing}: past the end of the object ({} bytes)",
                        result.meta.size
                    )));
                }
                let bytes = result.bytes().await.map_err(|e| classify(e, &doing, &self.redactor))?;
                if bytes.len() as u64 != range.end - range.start {
                    return Err(StoreError::failed(format!("{doing}: the store sent {} bytes", bytes.len())));
                }
                Ok(bytes)
            }
        }
    }

    /// Writes the object `key` with `metadata` in one atomic put: a reader sees the previous
    /// object or this one, never a part. Returns the new ETag.
    pub async fn put(&self, key: &Key, bytes: Bytes, metadata: &Metadata) -> Result<String> {
        let doing = format!("put {}", self.location.url_of(key));
        match &self.backend {
            Backend::Local => local::put(self.file_path(key), doing, bytes, metadata.clone()).await,
            Backend::Remote(store) => {
                let path = self.store_path(key)?;
                let size = bytes.len() as u64;
                let options = PutOptions { attributes: metadata.to_attributes(), ..PutOptions::default() };
                let result = store
                    .put_opts(&path, PutPayload::from_bytes(bytes), options)
                    .await
                    .map_err(|e| classify(e, &doing, &self.redactor))?;
                match result.e_tag {
                    Some(etag) => Ok(etag),
                    None => Ok(self
                        .head(key)
                        .await
                        .map(|head| head.etag)
                        .unwrap_or_else(|_| format!("W/\"{size}\""))),
                }
            }
        }
    }

    /// Starts writing the object `key` as a stream (the manifest): parts of
    /// [`WRITER_PART_SIZE`] go out as they fill (a multipart upload), and the object appears,
    /// whole, only at [`ObjectWriter::finish`]. Memory stays bounded by two or three parts.
    pub async fn writer(&self, key: &Key) -> Result<ObjectWriter> {
        let doing = format!("write {}", self.location.url_of(key));
        let inner = match &self.backend {
            Backend::Local => {
                WriterInner::Local(local::LocalWriter::create(self.file_path(key), doing.clone()).await?)
            }
            Backend::Remote(store) => {
                let path = self.store_path(key)?;
                WriterInner::Remote(Box::new(
                    BufWriter::with_capacity(store.clone(), path, WRITER_PART_SIZE)
                        .with_max_concurrency(WRITER_CONCURRENCY),
                ))
            }
        };
        Ok(ObjectWriter { inner: Some(inner), doing, redactor: self.redactor.clone(), written: 0 })
    }

    /// Removes the object `key`; a missing object is not an error.
    pub async fn delete(&self, key: &Key) -> Result<()> {
        let doing = format!("delete {}", self.location.url_of(key));
        match &self.backend {
            Backend::Local => local::delete(self.file_path(key), doing).await,
            Backend::Remote(store) => {
                let path = self.store_path(key)?;
                match store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(error) => Err(classify(error, &doing, &self.redactor)),
                }
            }
        }
    }

    /// Checks that the location can be listed: the bucket exists and the credentials are
    /// accepted. Asks for the first key only.
    pub async fn health_check(&self) -> Result<()> {
        match self.list().next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(error)) => Err(error),
        }
    }

    /// Checks that the location can be read as a batch's source: [`Objects::health_check`],
    /// and for a local folder that it exists (listing a missing folder finds nothing, which
    /// would hide a typo as an empty batch).
    pub async fn check_source(&self) -> Result<()> {
        if matches!(self.backend, Backend::Local) {
            let folder = local::path_of(self.location.prefix());
            if !std::fs::metadata(&folder).is_ok_and(|m| m.is_dir()) {
                return Err(StoreError::NotFound { what: format!("the folder {}", self.location) });
            }
        }
        self.health_check().await
    }

    fn store_path(&self, key: &Key) -> Result<StorePath> {
        store_path(&self.location.object_name(key))
    }

    fn file_path(&self, key: &Key) -> local::Target {
        local::Target { root: self.local_root.clone(), path: local::path_of(&self.location.object_name(key)) }
    }
}

/// The `object_store` path of an object name (already checked by [`Key`]'s rules, which are
/// stricter than `object_store`'s).
fn store_path(name: &str) -> Result<StorePath> {
    StorePath::parse(name).map_err(|error| StoreError::not_allowed(format!("object name {name:?}: {error}")))
}

fn remote_head(meta: object_store::ObjectMeta, attributes: &Attributes) -> ObjectHead {
    ObjectHead {
        size: meta.size,
        etag: etag_or_fallback(meta.e_tag, meta.size, meta.last_modified.timestamp_micros()),
        last_modified: system_time(meta.last_modified.timestamp_micros()),
        metadata: Metadata::from_attributes(attributes),
    }
}

/// The store's ETag; a weak one made of size and time for a store that gives none (none of
/// the supported ones does that).
fn etag_or_fallback(etag: Option<String>, size: u64, modified_micros: i64) -> String {
    etag.unwrap_or_else(|| format!("W/\"{size:x}-{modified_micros:x}\""))
}

fn system_time(micros: i64) -> SystemTime {
    if micros >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_micros(micros as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_micros(micros.unsigned_abs())
    }
}

/// An object being written by [`Objects::writer`].
///
/// End it with [`ObjectWriter::finish`] (the object appears) or [`ObjectWriter::abort`]
/// (nothing appears, the parts are discarded). Dropped without either, nothing appears
/// either; a local temporary file is removed, but on S3 and GCS the parts already sent stay
/// in an unfinished upload until the bucket's lifecycle rule for incomplete uploads removes
/// them, so prefer `abort`.
pub struct ObjectWriter {
    inner: Option<WriterInner>,
    doing: String,
    redactor: Redactor,
    written: u64,
}

enum WriterInner {
    Remote(Box<BufWriter>),
    Local(local::LocalWriter),
}

impl fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectWriter({}, {} bytes)", self.doing, self.written)
    }
}

impl ObjectWriter {
    /// Appends bytes (buffered; a full part goes out before this returns).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let doing = &self.doing;
        match self.inner.as_mut() {
            None => return Err(StoreError::failed(format!("{doing}: write after the end"))),
            Some(WriterInner::Local(writer)) => writer.write(Bytes::copy_from_slice(bytes)).await?,
            Some(WriterInner::Remote(writer)) => {
                writer.write_all(bytes).await.map_err(|error| io_store_error(error, doing, &self.redactor))?
            }
        }
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// How many bytes were written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Completes the object: it appears whole, now.
    pub async fn finish(mut self) -> Result<()> {
        let doing = self.doing.clone();
        match self.inner.take() {
            None => Err(StoreError::failed(format!("{doing}: finished twice"))),
            Some(WriterInner::Local(writer)) => writer.finish().await.map(drop),
            Some(WriterInner::Remote(mut writer)) => {
                writer.shutdown().await.map_err(|error| io_store_error(error, &doing, &self.redactor))
            }
        }
    }

    /// Gives up: nothing appears, and the parts sent so far are discarded.
    pub async fn abort(mut self) -> Result<()> {
        let doing = self.doing.clone();
        match self.inner.take() {
            None => Ok(()),
            Some(WriterInner::Local(writer)) => writer.abort().await,
            Some(WriterInner::Remote(mut writer)) => {
                writer.abort().await.map_err(|error| classify(error, &doing, &self.redactor))
            }
        }
    }
}

/// A `BufWriter` error comes as an I/O error wrapping the store's.
fn io_store_error(error: std::io::Error, doing: &str, redactor: &Redactor) -> StoreError {
    match error.downcast::<object_store::Error>() {
        Ok(store_error) => classify(store_error, doing, redactor),
        Err(error) => StoreError::failed(redactor.clean(&format!("{doing}: {error}"))),
    }
}
