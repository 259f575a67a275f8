//! Runs the contract suite (`dsobel_objects::contract`) on the stores that need no server:
//! `memory://` (the embedded mode) and `file://` (a temporary folder). `tests/seaweedfs.rs`
//! runs the same suite on S3.
//!
//! Every check gets its own fresh location (a random memory store name, a new temporary
//! folder), so checks run in parallel without seeing each other.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use dsobel_objects::{AllowList, CloudConfig, Location, Stores};

fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", RandomState::new().hash_one((n, std::process::id())))
}

/// Stores that allow exactly `root`, and `root` itself.
fn stores_for(root: &str) -> (Stores, Location) {
    let allow = AllowList::parse(root).expect("allow-list");
    let base = Location::parse(root).expect("root");
    (Stores::new(allow, CloudConfig::default()), base)
}

macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        $(
            mod $check {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn memory() {
                    let (stores, base) = stores_for(&format!("memory://contract-{}/base", random_hex()));
                    dsobel_objects::contract::$check(&stores, &base).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn local_files() {
                    let folder = tempfile::tempdir().expect("temporary folder");
                    let root = format!("file://{}/base", folder.path().display());
                    let (stores, base) = stores_for(&root);
                    dsobel_objects::contract::$check(&stores, &base).await;
                    let leftovers: Vec<_> = walk(folder.path()).into_iter().filter(|p| in_progress(p)).collect();
                    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
                }
            }
        )*
    };
}

/// True for a temporary file of a write (`name#digits`).
fn in_progress(path: &str) -> bool {
    path.rsplit_once('#')
        .is_some_and(|(_, digits)| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Every file under `folder`, as paths.
fn walk(folder: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path.display().to_string());
        }
    }
    files
}

contract!(
    put_get_head_with_metadata,
    ranged_get,
    get_with_a_limit,
    list_under_a_prefix,
    list_beyond_one_page_and_resume,
    atomic_overwrite,
    missing_object,
    streaming_writer,
    manifest_round_trip,
    skip_rule_on_the_store,
    keys_with_odd_characters,
);

/// Local folders only: a symbolic link below the allowed root is never followed, whether it
/// leads out of the root or not, for reading, writing or listing; the listing leaves it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_files_follow_no_symbolic_link() {
    use bytes::Bytes;
    use dsobel_objects::{Key, Metadata, StoreErrorCode};
    use futures_util::TryStreamExt;

    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("secret.jpg"), b"secret").expect("secret");
    let folder = tempfile::tempdir().expect("root");
    let root = folder.path().join("root");
    std::fs::create_dir_all(root.join("real")).expect("folders");
    std::fs::write(root.join("real/a.jpg"), b"a").expect("a");
    std::os::unix::fs::symlink(outside.path(), root.join("escape")).expect("link out");
    std::os::unix::fs::symlink(outside.path().join("secret.jpg"), root.join("real/linked.jpg"))
        .expect("file link");
    std::os::unix::fs::symlink(root.join("real"), root.join("inside")).expect("link in");
    let (stores, _) = stores_for(&format!("file://{}", root.display()));
    let objects = stores.open(&format!("file://{}", root.display())).expect("open");

    let listed: Vec<String> =
        objects.list().map_ok(|info| info.key.as_str().to_owned()).try_collect().await.expect("list");
    assert_eq!(listed, ["real/a.jpg"], "links are not listed");
    for name in ["escape/secret.jpg", "real/linked.jpg", "inside/a.jpg"] {
        let key = Key::parse(name).unwrap();
        let errors = [
            objects.head(&key).await.expect_err("head"),
            objects.get(&key, 100).await.expect_err("get"),
            objects.get_range(&key, 0..1).await.expect_err("range"),
            objects.put(&key, Bytes::from_static(b"x"), &Metadata::default()).await.expect_err("put"),
            objects.delete(&key).await.expect_err("delete"),
            objects.writer(&key).await.expect_err("writer"),
        ];
        for error in errors {
            assert_eq!(error.code(), StoreErrorCode::NotAllowed, "{name}: {error}");
        }
    }
    let through = stores.open(&format!("file://{}/escape", root.display())).expect("open a linked folder");
    let error = through.list().try_collect::<Vec<_>>().await.expect_err("list through a link");
    assert_eq!(error.code(), StoreErrorCode::NotAllowed, "{error}");
    assert_eq!(std::fs::read(outside.path().join("secret.jpg")).expect("untouched"), b"secret");
    assert_eq!(std::fs::read_dir(outside.path()).expect("outside").count(), 1, "nothing written outside");
}
