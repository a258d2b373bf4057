//! A stage's state as its steps run ([`State`]), and a reference to another state's root
//! filesystem that a step reads ([`StateRef`], mounted by `Session::open`). Neither holds
//! the snapshots themselves: a state is its layers, and `Session::lowers` unpacks (and, for
//! an imported cache's layers, fetches) them only when a step that runs needs them.

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
    pub(crate) chain: Option<Digest>,
    pub(crate) key: CacheKey,
    /// The keys of the layer steps this state is made of, its base stages' included (what
    /// a `mode=min` cache export holds).
    pub(crate) steps: Vec<CacheKey>,
    pub(crate) platform: Platform,
    /// The `created` time of the stage's latest history entry: when its last layer step
    /// ran (a cached step keeps the time it first ran), so that a rebuild from the cache
    /// gives the same image config, and the same image ID, as Docker's does.
    pub(crate) clock: Option<String>,
}

impl State {
    /// The diff IDs of [`State::layers`], in the same order.
    pub(crate) fn diff_ids(&self) -> &[Digest] {
        &self.image.config.rootfs.diff_ids
    }

    /// What a step that reads this state's root filesystem needs of it.
    pub(crate) fn to_ref(&self) -> StateRef {
        StateRef {
            layers: self.layers.clone(),
            diff_ids: self.diff_ids().to_vec(),
            key: self.key,
        }
    }
}

/// Another state's root filesystem, by its layers and its cache key (which names what it
/// holds), unpacked and mounted only when a step that reads it runs.
pub(crate) struct StateRef {
    pub(crate) layers: Vec<Descriptor>,
    pub(crate) diff_ids: Vec<Digest>,
    pub(crate) key: CacheKey,
}
