//! # dsobel-objects: object storage for batches
//!
//! A batch turns every image under one location of object storage into an edge map under
//! another, with workers reading and writing the objects themselves. This crate is the part
//! that touches the stores, and the rules a batch follows:
//!
//! - **Locations by URL** ([`Location`]): `s3://bucket/prefix`, `gs://bucket/prefix`,
//!   `file:///path` and `memory://name/prefix` (a store inside the process: the embedded mode
//!   and tests). Parsed strictly: no `..`, no percent-encoding, no credentials in a URL.
//! - **Allowed locations only** ([`AllowList`], from `DSOBEL_BATCH_STORES`): a location is
//!   used only under an allowed root; anything else, and every `http(s)://` URL, is refused
//!   `store-not-allowed`.
//! - **Operations** ([`Stores`] opens a location, [`Objects`] acts under it): list as a
//!   stream in key order, resumable after a key; head (size, ETag, metadata); get with a size
//!   limit; ranged get; atomic put with metadata; a streaming writer (multipart) for large
//!   objects; delete. S3 and GCS go through the `object_store` crate, with credentials from
//!   the standard environment ([`CloudConfig`]); local folders through this crate's own code,
//!   which keeps metadata in extended attributes and lists in key order.
//! - **Errors** ([`StoreError`]) with stable codes: `store-not-allowed`, `store-not-found`,
//!   `store-unauthorized`, `store-unavailable` (transient), `store-failed`, plus
//!   `payload-too-large` (an object over the caller's limit) and `store-config-invalid` (at
//!   start-up). No credential ever appears in a message or a `Debug` print.
//! - **Batch rules** ([`batch`]): the output key of a source key, which keys are items, the
//!   options digest, the stamp an output carries and the skip rule, the refusal of
//!   overlapping source and destination; and the **manifest** ([`manifest`]), written as a
//!   stream.
//!
//! ```no_run
//! # async fn example() -> Result<(), dsobel_objects::StoreError> {
//! use dsobel_objects::{Key, Stores, batch, manifest::ManifestWriter};
//! use futures_util::StreamExt;
//!
//! let stores = Stores::from_env()?; // DSOBEL_BATCH_STORES, AWS_*, GOOGLE_*
//! let source = stores.open("s3://photos/2024")?; // store-not-allowed unless allowed
//! let destination = stores.open("s3://edges/2024")?;
//! batch::check_batch_locations(source.location(), destination.location())?;
//! let digest = batch::options_digest([("threshold", "100"), ("magnitude", "l2")]);
//! let mut manifest = ManifestWriter::create(&destination, "b-42").await?;
//! let mut listing = source.list();
//! while let Some(object) = listing.next().await {
//!     let object = object?;
//!     let batch::ItemPlan::Process { output } = batch::plan_item(&object.key, &batch::OutputExtension::png())? else {
//!         continue;
//!     };
//!     let stamp = batch::OutputStamp::new(&object.etag, digest.clone());
//!     if stamp.output_is_current(&destination, &output).await? {
//!         continue; // skipped
//!     }
//!     let input = source.get(&object.key, 64 << 20).await?;
//!     let png = input.bytes; // ... decode, filter, encode ...
//!     destination.put(&output, png, &batch::OutputStamp::new(&input.head.etag, digest.clone()).metadata()).await?;
//! }
//! manifest.finish().await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod allow;
pub mod batch;
mod config;
mod error;
mod local;
mod location;
pub mod manifest;
mod store;

#[cfg(feature = "contract")]
pub mod contract;

pub use allow::{AllowList, BATCH_STORES_VAR};
pub use config::CloudConfig;
pub use error::{Result, StoreError, StoreErrorCode};
pub use location::{Key, Location, MAX_KEY_LEN, MAX_LOCATION_LEN, Scheme};
pub use store::{
    Metadata, Object, ObjectHead, ObjectInfo, ObjectStream, ObjectWriter, Objects, Stores, WRITER_PART_SIZE,
};
