//! The contract every store keeps, written once.
//!
//! Each function checks one behaviour of [`Objects`] and panics (like an `assert!`) when the
//! store breaks it. `tests/contract.rs` runs every one on `memory://` and `file://`, and
//! `tests/seaweedfs.rs` on `s3://` against a real SeaweedFS server, so the embedded mode, local
//! folders and S3 cannot drift apart.
//!
//! Each function takes the [`Stores`] and a fresh, empty `base` location it may fill (a
//! random prefix), and opens the locations it needs under it.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::batch::{OutputStamp, options_digest};
use crate::manifest::{ItemStatus, ManifestEntry, ManifestWriter, manifest_key, read_manifest};
use crate::{Key, Location, Metadata, Objects, StoreErrorCode, Stores, WRITER_PART_SIZE};

/// How many objects [`list_beyond_one_page_and_resume`] writes: more than one S3 page (1,000).
pub const MANY: usize = 1_234;

fn key(text: &str) -> Key {
    Key::parse(text).unwrap_or_else(|error| panic!("key {text:?}: {error}"))
}

fn open(stores: &Stores, base: &Location, sub: &str) -> Objects {
    let location = if sub.is_empty() { base.clone() } else { base.join(&key(sub)) };
    stores.open_location(&location).unwrap_or_else(|error| panic!("open {location}: {error}"))
}

fn metadata(pairs: &[(&str, &str)]) -> Metadata {
    let mut metadata = Metadata::default();
    for (name, value) in pairs {
        metadata.insert(name, value).expect("valid metadata");
    }
    metadata
}

async fn keys_of(objects: &Objects) -> Vec<String> {
    objects.list().map_ok(|info| info.key.as_str().to_owned()).try_collect().await.expect("list")
}

/// A put with metadata reads back whole: the same bytes, the same metadata, and one ETag
/// (the put's, the head's, the get's and the listing's).
pub async fn put_get_head_with_metadata(stores: &Stores, base: &Location) {
    let objects = open(stores, base, "");
    let photo = key("a/photo.png");
    let bytes = Bytes::from((0..=255u8).cycle().take(100_000).collect::<Vec<u8>>());
    let meta = metadata(&[("dsobel-source-etag", "\"0123abc\""), ("dsobel-options-digest", "ff00")]);
    let etag = objects.put(&photo, bytes.clone(), &meta).await.expect("put");
    let head = objects.head(&photo).await.expect("head");
    assert_eq!(head.size, 100_000);
    assert_eq!(head.etag, etag, "the head's ETag is the put's");
    assert_eq!(head.metadata, meta, "metadata read back");
    let object = objects.get(&photo, 1 << 20).await.expect("get");
    assert_eq!(object.bytes, bytes);
    assert_eq!(object.head.etag, etag);
    assert_eq!(object.head.metadata, meta);
    let listed: Vec<_> = objects.list().try_collect().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].key.as_str(), listed[0].size, listed[0].etag.as_str()),
        ("a/photo.png", 100_000, etag.as_str())
    );
    // Without metadata, none is read back.
    let plain = key("plain.bin");
    objects.put(&plain, Bytes::from_static(b"x"), &Metadata::default()).await.expect("put plain");
    assert!(objects.head(&plain).await.expect("head plain").metadata.is_empty());
}

/// Ranged reads give exactly the bytes asked for; a range past the end or an empty one is an
/// error, never short data.
pub async fn ranged_get(stores: &Stores, base: &Location) {
    let objects = open(stores, base, "");
    let object = key("ranges.bin");
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    objects.put(&object, Bytes::from(bytes.clone()), &Metadata::default()).await.expect("put");
    for range in [0..1, 0..10_000, 1234..5678, 9_999..10_000, 5000..5001] {
        let got =
            objects.get_range(&object, range.clone()).await.unwrap_or_else(|e| panic!("{range:?}: {e}"));
        assert_eq!(&got[..], &bytes[range.start as usize..range.end as usize], "{range:?}");
    }
    for range in [9_000..10_001, 10_000..10_010, 20_000..20_001, 5..5] {
        let error = objects.get_range(&object, range.clone()).await.expect_err("refused");
        assert_eq!(error.code(), StoreErrorCode::Failed, "{range:?}: {error}");
    }
}

/// An object over the limit is refused `payload-too-large`; one at the limit is read.
pub async fn get_with_a_limit(stores: &Stores, base: &Location) {
    let objects = open(stores, base, "");
    let object = key("big.bin");
    objects.put(&object, Bytes::from(vec![7u8; 4096]), &Metadata::default()).await.expect("put");
    assert_eq!(objects.get(&object, 4096).await.expect("at the limit").bytes.len(), 4096);
    let error = objects.get(&object, 4095).await.expect_err("over the limit");
    assert_eq!(error.code(), StoreErrorCode::PayloadTooLarge, "{error}");
}

/// A listing shows the objects under its location at every depth, keys relative to it, and
/// nothing from a sibling whose name merely begins the same.
pub async fn list_under_a_prefix(stores: &Stores, base: &Location) {
    let root = open(stores, base, "");
    for name in ["in/a.jpg", "in/b/c.jpg", "in/b/d/e.jpg", "in/b-x.jpg", "in2/f.jpg", "inx.jpg", "out/g.png"]
    {
        root.put(&key(name), Bytes::from(name.as_bytes().to_vec()), &Metadata::default()).await.expect("put");
    }
    let sorted = |mut keys: Vec<String>| {
        keys.sort();
        keys
    };
    assert_eq!(
        sorted(keys_of(&open(stores, base, "in")).await),
        ["a.jpg", "b-x.jpg", "b/c.jpg", "b/d/e.jpg"]
    );
    assert_eq!(sorted(keys_of(&open(stores, base, "in/b")).await), ["c.jpg", "d/e.jpg"]);
    assert_eq!(keys_of(&open(stores, base, "in2")).await, ["f.jpg"]);
    assert!(keys_of(&open(stores, base, "nothing")).await.is_empty());
    assert!(keys_of(&open(stores, base, "in/a.jpg")).await.is_empty(), "an object is not a folder");
    assert_eq!(keys_of(&root).await.len(), 7);
    root.health_check().await.expect("health check of a location that exists");
}

/// More objects than one page of a listing: all come, once each, in the same order every
/// time; a listing resumed after any key it gave yields exactly the keys that followed it.
///
/// The order is the store's: byte order of the keys on S3, GCS, memory and local folders;
/// SeaweedFS lists folder by folder (`b/c` before `b-x`). Resuming needs only that the order
/// is stable and that `list_after` continues it.
pub async fn list_beyond_one_page_and_resume(stores: &Stores, base: &Location) {
    let objects = open(stores, base, "many");
    let names: Vec<String> =
        (0..MANY).map(|i| format!("d{}/img-{:05}.jpg", i % 3, i * 7919 % MANY)).collect();
    stream::iter(names.iter())
        .map(|name| {
            let objects = objects.clone();
            async move { objects.put(&key(name), Bytes::from_static(b"i"), &Metadata::default()).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("put many");
    let listed = keys_of(&objects).await;
    assert_eq!(listed.len(), MANY, "every object once");
    let mut sorted = listed.clone();
    sorted.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(sorted, expected, "the objects written");
    assert_eq!(keys_of(&objects).await, listed, "the same order again");
    for after in [0, 1, 999, 1000, 1001, MANY / 2, MANY - 1] {
        let rest: Vec<String> = objects
            .list_after(&key(&listed[after]))
            .map_ok(|info| info.key.as_str().to_owned())
            .try_collect()
            .await
            .expect("list after");
        assert_eq!(rest, listed[after + 1..], "after {}", listed[after]);
    }
}

/// While one task overwrites an object, readers see the old bytes or the new, whole, never a
/// mix or a part; the last put wins.
pub async fn atomic_overwrite(stores: &Stores, base: &Location) {
    let objects = open(stores, base, "");
    let object = key("overwritten.bin");
    const SIZE: usize = 3 * 1024 * 1024 + 17;
    let version = |n: u8| Bytes::from(vec![n; SIZE]);
    objects.put(&object, version(0), &metadata(&[("version", "0")])).await.expect("first put");
    let writer = {
        let objects = objects.clone();
        let object = object.clone();
        tokio::spawn(async move {
            let mut last = String::new();
            for n in 1..=6u8 {
                last = objects
                    .put(&object, version(n), &metadata(&[("version", &n.to_string())]))
                    .await
                    .expect("put");
            }
            last
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 3 {
        let read = objects.get(&object, SIZE as u64).await.expect("get during overwrites");
        assert_eq!(read.bytes.len(), SIZE, "a whole object");
        let first = read.bytes[0];
        assert!(read.bytes.iter().all(|&b| b == first), "one version's bytes only");
        assert_eq!(read.head.metadata.get("version"), Some(first.to_string().as_str()), "its own metadata");
        reads += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last = writer.await.expect("writer");
    let head = objects.head(&object).await.expect("head");
    assert_eq!(head.etag, last, "the last put's ETag");
    assert_eq!(head.metadata.get("version"), Some("6"));
    assert_eq!(objects.get(&object, SIZE as u64).await.expect("get").bytes, version(6));
}

/// A missing object is `store-not-found` for head, get and ranged get; deleting it is fine.
pub async fn missing_object(stores: &Stores, base: &Location) {
    let objects = open(stores, base, "");
    let missing = key("no/such/object.jpg");
    for (what, error) in [
        ("head", objects.head(&missing).await.expect_err("head")),
        ("get", objects.get(&missing, 100).await.expect_err("get")),
        ("range", objects.get_range(&missing, 0..10).await.expect_err("range")),
    ] {
        assert_eq!(error.code(), StoreErrorCode::NotFound, "{what}: {error}");
    }
    objects.delete(&missing).await.expect("deleting a missing object");
    let present = key("present.jpg");
    objects.put(&present, Bytes::from_static(b"p"), &Metadata::default()).await.expect("put");
    objects.delete(&present).await.expect("delete");
    assert_eq!(objects.head(&present).await.expect_err("deleted").code(), StoreErrorCode::NotFound);
}

/// A streamed object larger than one part appears only when finished, whole; an aborted one
/// never appears.
pub async fn streaming_writer(stores: &Stores, base: &Location) {
    let objects = open(stores, base, "");
    let object = key("streamed/large.bin");
    let total = WRITER_PART_SIZE + 1_234_567;
    let content: Vec<u8> = (0..total).map(|i| (i % 253) as u8).collect();
    let mut writer = objects.writer(&object).await.expect("writer");
    for chunk in content.chunks(300_001) {
        writer.write(chunk).await.expect("write");
    }
    assert_eq!(writer.written(), total as u64);
    assert_eq!(objects.head(&object).await.expect_err("not yet").code(), StoreErrorCode::NotFound);
    assert!(keys_of(&objects).await.is_empty(), "nothing listed before the end");
    writer.finish().await.expect("finish");
    let read = objects.get(&object, total as u64).await.expect("get");
    assert!(read.bytes == content, "the streamed bytes, in order");

    let aborted = key("streamed/aborted.bin");
    let mut writer = objects.writer(&aborted).await.expect("writer");
    writer.write(&content[..WRITER_PART_SIZE + 10]).await.expect("write");
    writer.abort().await.expect("abort");
    assert_eq!(objects.head(&aborted).await.expect_err("aborted").code(), StoreErrorCode::NotFound);
    assert_eq!(keys_of(&objects).await, ["streamed/large.bin"]);
}

/// A manifest written line by line reads back line by line, and is not there before it is
/// finished.
pub async fn manifest_round_trip(stores: &Stores, base: &Location) {
    let destination = open(stores, base, "out");
    let source = base.join(&key("in"));
    let mut writer = ManifestWriter::create(&destination, "batch-1").await.expect("manifest");
    let mut expected = Vec::new();
    for i in 0..3_000 {
        let input = key(&format!("f{}/img-{i}.jpg", i % 7));
        let output = key(&format!("f{}/img-{i}.png", i % 7));
        let entry = match i % 3 {
            0 => ManifestEntry::done(&source, &input, "\"e\"", destination.location(), &output),
            1 => ManifestEntry::skipped(&source, &input, "\"e\"", destination.location(), &output),
            _ => ManifestEntry::failed(
                &source,
                &input,
                None,
                None,
                "corrupt-image",
                "corrupt JPEG image: premature end of data\n(and a newline)",
            ),
        };
        writer.append(&entry).await.expect("append");
        expected.push(entry);
    }
    assert_eq!(writer.lines(), 3_000);
    let manifest = manifest_key("batch-1").expect("key");
    assert_eq!(destination.head(&manifest).await.expect_err("not yet").code(), StoreErrorCode::NotFound);
    assert_eq!(writer.finish().await.expect("finish"), 3_000);
    let read: Vec<ManifestEntry> = read_manifest(&destination, "batch-1").try_collect().await.expect("read");
    assert_eq!(read.len(), expected.len());
    assert!(read == expected, "the manifest reads back as written");
    assert_eq!(read.iter().filter(|e| e.status == ItemStatus::Failed).count(), 1_000);
    let missing = read_manifest(&destination, "batch-2").next().await.expect("an item").expect_err("missing");
    assert_eq!(missing.code(), StoreErrorCode::NotFound);
}

/// The skip rule against a real output: current when the stamp matches, not when the source
/// or the options changed, nor when the output is missing.
pub async fn skip_rule_on_the_store(stores: &Stores, base: &Location) {
    let source = open(stores, base, "in");
    let destination = open(stores, base, "out");
    let input = key("a/b.jpg");
    let output = key("a/b.png");
    let source_etag =
        source.put(&input, Bytes::from_static(b"jpeg"), &Metadata::default()).await.expect("put source");
    let digest = options_digest([("threshold", "100")]);
    let stamp = OutputStamp::new(&source_etag, digest.clone());
    assert!(!stamp.output_is_current(&destination, &output).await.expect("missing output"));
    destination.put(&output, Bytes::from_static(b"png"), &stamp.metadata()).await.expect("put output");
    assert!(stamp.output_is_current(&destination, &output).await.expect("current"));
    let changed =
        source.put(&input, Bytes::from_static(b"jpeg, edited"), &Metadata::default()).await.expect("edit");
    assert_ne!(changed, source_etag, "a changed source has a new ETag");
    assert!(
        !OutputStamp::new(&changed, digest).output_is_current(&destination, &output).await.expect("changed")
    );
    let other_options = OutputStamp::new(&source_etag, options_digest([("threshold", "50")]));
    assert!(!other_options.output_is_current(&destination, &output).await.expect("other options"));
}

/// Keys with spaces, `%`, `+`, `#`, `=`, `&` and non-ASCII letters are names like any other:
/// listed, read and written as they are, never decoded.
pub async fn keys_with_odd_characters(stores: &Stores, base: &Location) {
    let objects = open(stores, base, "");
    let names =
        ["100% done.jpg", "a+b=c&d.jpg", "hash#1.jpg", "ünïcödé/日本.jpg", "%41%2F.jpg", "sp ace/x y.jpg"];
    for name in names {
        objects
            .put(&key(name), Bytes::from(name.as_bytes().to_vec()), &Metadata::default())
            .await
            .expect(name);
    }
    let listed: BTreeSet<String> = keys_of(&objects).await.into_iter().collect();
    assert_eq!(listed, names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>());
    for name in names {
        let read = objects.get(&key(name), 1000).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(read.bytes, name.as_bytes(), "{name}");
    }
    assert_eq!(objects.head(&key("%41%2F.jpg")).await.expect("head").size, 10);
    assert_eq!(objects.head(&key("A/.jpg")).await.expect_err("not decoded").code(), StoreErrorCode::NotFound);
}
