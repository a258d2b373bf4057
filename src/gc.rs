//! Garbage collection of the state root: blobs that no tag reaches and snapshots of layers
//! no tagged image has. Blobs written within a grace period are kept, since a pull or build
//! writes its blobs before it tags them (the tag moves last); everything is decided under
//! the store's exclusive lock, so no tag changes while prune looks.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::oci::digest::{Digest, DigestAndSize};
use crate::oci::manifest::{Manifest, descriptor_digest, parse_manifest_any};
use crate::snapshot::chain_ids;
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
    #[error("{path}: {source}")]
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

/// Remove what nothing references; blobs younger than `grace` stay.
pub fn prune(store: &Store, grace: Duration) -> Result<Pruned, PruneError> {
    let now = SystemTime::now();
    // Under the exclusive lock (no tag moves meanwhile): unreferenced blobs, and the chain IDs
    // of every image still tagged. The tags themselves are not changed, so nothing is saved.
    let (blobs, kept_recent, chains) = store.index().update(|tags| {
        let referenced = store.referenced_by(tags)?;
        let mut deleted = Vec::new();
        let mut kept = 0;
        for digest in store.blobs().list()? {
            if referenced.contains(&digest) {
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
        Ok((deleted, kept, chains_of(store, &referenced)))
    })?;
    let mut out = Pruned {
        blobs,
        snapshots: Vec::new(),
        kept_recent,
    };
    let dir = store.root().join("snapshots");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if chains.contains(&name) {
                continue;
            }
            let path = entry.path();
            let size = disk_usage(&path);
            std::fs::remove_dir_all(&path).map_err(|source| PruneError::Io {
                path: path.display().to_string(),
                source,
            })?;
            out.snapshots.push((name, size));
        }
    }
    Ok(out)
}

/// Chain IDs (hex) of every image manifest among `referenced`.
fn chains_of(store: &Store, referenced: &BTreeSet<Digest>) -> BTreeSet<String> {
    let mut chains = BTreeSet::new();
    for digest in referenced {
        let Ok(size) = store.blobs().size(digest) else {
            continue;
        };
        if size > crate::store::MAX_SMALL_BLOB {
            continue; // a layer, not a manifest
        }
        let small =
            |digest: Digest, size| store.blobs().read_small(&DigestAndSize { digest, size });
        let Ok(bytes) = small(digest.clone(), size) else {
            continue;
        };
        let Ok(Manifest::Image(m)) = parse_manifest_any(&bytes, None) else {
            continue;
        };
        let Ok(cfg_digest) = descriptor_digest(m.config()) else {
            continue;
        };
        let Ok(cfg) = small(cfg_digest, m.config().size()) else {
            continue;
        };
        let Ok(config) = crate::oci::config::ImageConfig::from_json(&cfg) else {
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

/// Bytes of regular files under `path`, symlinks not followed.
fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| disk_usage(&e.path())).sum())
            .unwrap_or(0)
    } else if meta.is_file() {
        meta.len()
    } else {
        0
    }
}
