//! Images out of and into the store as files: an OCI image layout directory (`oci-dir`), the
//! same as a tar (`oci-archive`), and `docker-archive` (what `docker save`/`docker load` and
//! `podman load` read). Content is streamed between the store and the files; nothing holds a
//! layer in memory.

pub mod load;
pub mod save;
mod sink;

use crate::oci::manifest::ManifestError;
use crate::store::StoreError;

/// The file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    DockerArchive,
    OciArchive,
    OciDir,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{image}: not in the store")]
    NotFound { image: String },
    #[error(transparent)]
    Store(#[from] Box<StoreError>),
    #[error(transparent)]
    Manifest(#[from] Box<ManifestError>),
    #[error("writing {path}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("reading the archive")]
    Read { source: std::io::Error },
    #[error("archive entry {path}: {reason}")]
    Entry { path: String, reason: String },
    #[error(
        "the archive holds neither manifest.json (docker-archive) nor index.json and oci-layout (OCI)"
    )]
    UnknownFormat,
    #[error("{what} in the archive is not valid: {reason}")]
    Invalid { what: String, reason: String },
    #[error("making the blob of a layer built here")]
    Layer(#[from] Box<crate::layer::deferred::DeferredError>),
}

impl From<StoreError> for ExportError {
    fn from(e: StoreError) -> ExportError {
        ExportError::Store(Box::new(e))
    }
}

impl From<ManifestError> for ExportError {
    fn from(e: ManifestError) -> ExportError {
        ExportError::Manifest(Box::new(e))
    }
}
