//! What a build produced: the target stage's image in the store, and its root filesystem
//! for the outputs that write files.

use std::path::PathBuf;

use crate::oci::digest::Digest;
use crate::oci::manifest::Descriptor;

/// What a build produced: the target stage's image, stored (untagged) in the store.
#[derive(Debug)]
pub(crate) struct Built {
    /// The image manifest.
    pub(crate) manifest: Descriptor,
    pub(crate) config_digest: Digest,
    /// The target stage's snapshots, lowest first (overlay), or its one tree (native): its
    /// root filesystem, for local outputs.
    pub(crate) lowers: Vec<PathBuf>,
    pub(crate) snapshotter: crate::snapshot::snapshotter::Kind,
}
