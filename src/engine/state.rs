//! A stage's state as its steps run ([`State`]), and a reference to another state's root
//! filesystem that a step reads ([`StateRef`], mounted by `Session::open`).

use std::path::PathBuf;

use super::cache::CacheKey;
use super::stage_image::StageImage;
use crate::oci::digest::Digest;
use crate::oci::manifest::Descriptor;
use crate::oci::platform::Platform;

/// One stage's state as its steps run.
#[derive(Clone)]
pub(crate) struct State {
    pub(crate) image: StageImage,
    pub(crate) layers: Vec<Descriptor>,
    /// Overlay: the snapshots, lowest first; native: the one tree.
    pub(crate) lowers: Vec<PathBuf>,
    pub(crate) chain: Option<Digest>,
    pub(crate) key: CacheKey,
    pub(crate) platform: Platform,
    /// The `created` time of the stage's latest history entry: when its last layer step
    /// ran (a cached step keeps the time it first ran), so that a rebuild from the cache
    /// gives the same image config, and the same image ID, as Docker's does.
    pub(crate) clock: Option<String>,
}

/// Another state's root filesystem, by its snapshots and its cache key (which names what
/// it holds), mounted only when a step that reads it runs.
pub(crate) struct StateRef {
    pub(crate) lowers: Vec<PathBuf>,
    pub(crate) key: CacheKey,
}
