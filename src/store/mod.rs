//! The local content store under the state root: content-addressed blobs
//! ([`BlobStore`]), tags ([`TagIndex`] over `index.json`), the cross-process lock
//! ([`StoreLock`]), and [`Store`], which ties them together and reads images back out
//! ([`Store::image`], `image.rs`). The root is itself
//! an OCI image layout; `docs/store.md` describes it and the decisions behind it.
//!
//! The store holds bytes and names. It must not pull, push, unpack layers or build: those
//! live above it and call in. It never prints; the lock's wait message goes through a hook.

mod blobs;
mod error;
#[cfg(test)]
pub(crate) mod fixture;
mod image;
mod index;
mod layout;
mod local;
mod lock;
mod temp;
pub use temp::{remove_dir_atomically, unique_suffix};

pub(crate) use blobs::create_private_dir;
pub use blobs::{BLOBS_DIR, BlobStore, BlobWriter, Expected, MAX_SMALL_BLOB, TMP_DIR};
pub use error::StoreError;
pub use image::Image;
pub use index::{INDEX_FILE, REF_NAME, TagIndex, Tags};
pub use layout::{OCI_LAYOUT_FILE, SYSTEM_ROOT, default_root, default_root_for};
pub use local::Store;
pub use lock::{LOCK_FILE, LockGuard, LockMode, LockWait, LockWaitHook, StoreLock};
