//! Why writing a layer failed: one variant per failing step, each naming the path it was
//! working on (the tree's path for reads, the change's path for bad input).

use std::io;
use std::path::PathBuf;

use crate::oci::media_type::Compression;

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer change {path:?}: {reason}")]
    BadChange { path: String, reason: &'static str },
    #[error("layer change {path:?} is listed twice")]
    DuplicateChange { path: String },
    #[error("stat {path}")]
    Stat { path: PathBuf, source: io::Error },
    #[error("{path}: an opaque change must name a directory")]
    OpaqueNotDirectory { path: PathBuf },
    #[error("reading the symlink {path}")]
    ReadLink { path: PathBuf, source: io::Error },
    #[error("reading the extended attributes of {path}")]
    ReadXattrs { path: PathBuf, source: io::Error },
    #[error("opening {path}")]
    OpenFile { path: PathBuf, source: io::Error },
    #[error("reading {path}")]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("{path} changed while it was archived: {what}")]
    FileChanged { path: PathBuf, what: String },
    #[error("writing the layer archive at {path}")]
    WriteArchive { path: String, source: io::Error },
    #[error("starting the {compression} compressor")]
    StartCompressor {
        compression: Compression,
        source: io::Error,
    },
    #[error("finishing the {compression} stream")]
    FinishCompressor {
        compression: Compression,
        source: io::Error,
    },
}
