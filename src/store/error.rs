//! [`StoreError`]: every way a store operation fails, one variant per failing step. Every
//! I/O variant names its path; every mismatch names both sides (through [`DigestError`],
//! whose messages say `expected …, got …`).
//!
//! This file only defines the error; it does no I/O.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::oci::{ConfigError, Digest, DigestError, ManifestError, Platform, Reference};

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot create the store directory {}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot read {}", path.display())]
    ReadLayoutFile { path: PathBuf, source: io::Error },
    #[error("{} is not a valid oci-layout file", path.display())]
    ParseLayoutFile {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "unsupported OCI image layout in {}: expected imageLayoutVersion {expected}, got {got}",
        path.display()
    )]
    LayoutVersion {
        path: PathBuf,
        expected: &'static str,
        got: String,
    },

    #[error("cannot create a temporary file in {}", dir.display())]
    CreateTemp { dir: PathBuf, source: io::Error },
    #[error("cannot read the content of blob {blob}")]
    ReadSource { blob: String, source: io::Error },
    #[error("cannot write {}", path.display())]
    WriteFile { path: PathBuf, source: io::Error },
    #[error("cannot fsync {}", path.display())]
    SyncFile { path: PathBuf, source: io::Error },
    #[error("cannot fsync the directory {}", path.display())]
    SyncDir { path: PathBuf, source: io::Error },
    #[error("cannot set the mode of {}", path.display())]
    SetMode { path: PathBuf, source: io::Error },
    #[error("cannot rename {} to {}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error("cannot link {} to {}", from.display(), to.display())]
    Link {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error("cannot list {}", path.display())]
    ListDir { path: PathBuf, source: io::Error },

    #[error("refusing to store the blob; nothing was stored")]
    BlobMismatch { source: DigestError },
    #[error(
        "refusing to store blob {digest}: it is larger than the expected {expected} bytes (stopped reading); nothing was stored"
    )]
    BlobTooLarge { digest: Digest, expected: u64 },
    #[error("blob {digest} is not in the store (no {})", path.display())]
    BlobNotFound { digest: Digest, path: PathBuf },
    #[error("cannot open {}", path.display())]
    OpenBlob { path: PathBuf, source: io::Error },
    #[error("cannot read {}", path.display())]
    ReadBlob { path: PathBuf, source: io::Error },
    #[error("cannot stat {}", path.display())]
    StatBlob { path: PathBuf, source: io::Error },
    #[error("cannot delete {}", path.display())]
    DeleteBlob { path: PathBuf, source: io::Error },
    #[error("{} is corrupt", path.display())]
    CorruptBlob { path: PathBuf, source: DigestError },
    #[error(
        "blob {digest} is {size} bytes, more than the {limit} bytes a manifest, index or config may have"
    )]
    BlobTooLargeToRead {
        digest: Digest,
        size: u64,
        limit: u64,
    },

    #[error("cannot open the store lock {}", path.display())]
    OpenLock { path: PathBuf, source: io::Error },
    #[error("cannot take the store lock {}", path.display())]
    Lock { path: PathBuf, source: io::Error },

    #[error("cannot read the image index {}", path.display())]
    ReadIndex { path: PathBuf, source: io::Error },
    #[error(
        "the image index {} is not a valid OCI index; it was left untouched. Repair it, or \
         move it aside to start with no tags: the blobs are kept and images can be tagged \
         again by digest.",
        path.display()
    )]
    CorruptIndex {
        path: PathBuf,
        source: ManifestError,
    },
    #[error("cannot encode the image index {}", path.display())]
    EncodeIndex {
        path: PathBuf,
        source: ManifestError,
    },
    #[error("cannot tag {reference}: it names digest {expected}, the descriptor has {actual}")]
    TagDigestMismatch {
        reference: Box<Reference>,
        expected: Digest,
        actual: Digest,
    },
    #[error("cannot tag {reference}: blob {digest} is not in the store")]
    TagMissingBlob {
        reference: Box<Reference>,
        digest: Digest,
    },
    #[error(transparent)]
    DescriptorDigest(ManifestError),

    #[error("image {reference} is not in the store at {}", root.display())]
    ImageNotFound {
        reference: Box<Reference>,
        root: PathBuf,
    },
    #[error("cannot read manifest {digest}")]
    ParseManifest {
        digest: Digest,
        source: ManifestError,
    },
    #[error("cannot read image config {digest}")]
    ParseConfig { digest: Digest, source: ConfigError },
    #[error("cannot store {media_type} document")]
    InvalidDocument {
        media_type: String,
        source: ManifestError,
    },
    #[error("cannot store image config")]
    InvalidConfig { source: ConfigError },
    #[error("{digest} is a {media_type}, not an image manifest")]
    NotAnImage { digest: Digest, media_type: String },
    #[error("image {name} has no manifest for platform {wanted} (it has: {available})")]
    NoMatchingPlatform {
        name: String,
        wanted: Box<Platform>,
        available: String,
    },

    #[error("cannot read {}", path.display())]
    ReadLayout { path: PathBuf, source: io::Error },
    #[error("invalid index.json in the OCI layout {}", path.display())]
    LayoutIndex {
        path: PathBuf,
        source: ManifestError,
    },
    #[error("the OCI layout {} has no image named {ref_name:?} (it has: {available})", path.display())]
    LayoutRefNotFound {
        path: PathBuf,
        ref_name: String,
        available: String,
    },
    #[error(
        "the OCI layout {} holds {count} images ({available}): say which one to import",
        path.display()
    )]
    LayoutAmbiguous {
        path: PathBuf,
        count: usize,
        available: String,
    },
    #[error("the OCI layout {} holds no image", path.display())]
    LayoutEmpty { path: PathBuf },
}
