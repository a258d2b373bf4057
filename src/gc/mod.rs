//! Garbage collection of the state root: blobs that no tag reaches and snapshots of layers
//! no tagged image has. Blobs written within a grace period are kept, since a pull or build
//! writes its blobs before it tags them (the tag moves last); everything is decided under
//! the store's exclusive lock, so no tag changes while prune looks.

pub mod lease;
pub mod usage;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use oci_spec::image::Descriptor;

use crate::layer::deferred::DeferredLayers;
use crate::oci::digest::{Digest, DigestAndSize};
use crate::oci::manifest::descriptor_digest;
use crate::snapshot::{SnapshotError, Snapshots, chain_ids};
use crate::store::{Store, StoreError};

/// What prune removed and kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub blobs: Vec<(Digest, u64)>,
    pub snapshots: Vec<(String, u64)>,
    /// Unreferenced blobs younger than the grace period.
    pub kept_recent: usize,
}

impl Pruned {
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.1).sum::<u64>()
            + self.snapshots.iter().map(|s| s.1).sum::<u64>()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Store(#[from] Box<StoreError>),
    #[error(transparent)]
    Snapshots(Box<SnapshotError>),
    #[error("removing {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl From<StoreError> for PruneError {
    fn from(e: StoreError) -> PruneError {
        PruneError::Store(Box::new(e))
    }
}

/// Remove what nothing references (no tag, and not in `keep`: the build cache's layers when
/// it is kept); blobs younger than `grace` stay.
pub fn prune(
    store: &Store,
    grace: Duration,
    keep: &BTreeSet<Digest>,
) -> Result<Pruned, PruneError> {
    let now = SystemTime::now();
    // Under the exclusive lock (no tag moves meanwhile): unreferenced blobs, and the chain IDs
    // of every image still tagged. The tags themselves are not changed, so nothing is saved.
    let (blobs, kept_recent, chains) = store.index().update(|tags| {
        let (mut referenced, configs) = store.referenced_and_configs(tags)?;
        // A deferred layer kept (by a tag or the kept build cache) keeps its snapshots,
        // its only copy, and the blobs made of it.
        let (made, snapshots) = deferred_closure(store, referenced.iter().chain(keep));
        referenced.extend(made);
        let mut deleted = Vec::new();
        let mut kept = 0;
        for digest in store.blobs().list()? {
            if referenced.contains(&digest) || keep.contains(&digest) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(store.blobs().path(&digest)) else {
                continue;
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if age < grace {
                kept += 1;
            } else if store.blobs().delete(&digest)? {
                deleted.push((digest, meta.len()));
            }
        }
        let mut chains = chains_of(store, &configs);
        chains.extend(snapshots);
        let kept_layers = referenced.iter().chain(keep).cloned().collect();
        DeferredLayers::new(store.root()).retain(&kept_layers, grace);
        Ok((deleted, kept, chains))
    })?;
    let mut out = Pruned {
        blobs,
        snapshots: Vec::new(),
        kept_recent,
    };
    out.snapshots = Snapshots::new(store.root())
        .prune(&chains)
        .map_err(|e| PruneError::Snapshots(Box::new(e)))?;
    Ok(out)
}

/// Of `digests`, the deferred layers' (`layer::deferred`): the blobs made of them, and the
/// snapshots (chain ID hex) that hold them.
pub(crate) fn deferred_closure<'a>(
    store: &Store,
    digests: impl Iterator<Item = &'a Digest>,
) -> (BTreeSet<Digest>, BTreeSet<String>) {
    let layers = DeferredLayers::new(store.root());
    let (mut blobs, mut snapshots) = (BTreeSet::new(), BTreeSet::new());
    for entry in digests.filter_map(|d| layers.get(d)) {
        blobs.extend(entry.blobs().cloned());
        snapshots.extend(entry.snapshots().iter().cloned());
    }
    (blobs, snapshots)
}

/// Chain IDs (hex) of the images whose configs these are; a config that cannot be read
/// keeps nothing (its image cannot be run anyway).
fn chains_of(store: &Store, configs: &[Descriptor]) -> BTreeSet<String> {
    let mut chains = BTreeSet::new();
    for desc in configs {
        let Ok(digest) = descriptor_digest(desc) else {
            continue;
        };
        let Ok(bytes) = store.blobs().read_small(&DigestAndSize {
            digest,
            size: desc.size(),
        }) else {
            continue;
        };
        let Ok(config) = crate::oci::config::ImageConfig::from_json(&bytes) else {
            continue;
        };
        chains.extend(
            chain_ids(&config.rootfs.diff_ids)
                .iter()
                .map(|c| c.hex().to_string()),
        );
    }
    chains
}
