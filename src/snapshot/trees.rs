//! Full root filesystems for the native snapshotter, one per chain ID, under
//! `<state root>/trees/<chain ID hex>/`. Where overlayfs stacks one directory per layer,
//! the native snapshotter needs each state whole: a tree is its parent's tree copied
//! ([`super::native::prepare`], reflinks where the filesystem has them) with the layer
//! applied on top (whiteouts as deletions), or a step's own root filesystem, moved here
//! when the step is committed. Trees are a cache: `rbuild prune` removes them all, and
//! they are made again from the layers when needed.

use std::path::{Path, PathBuf};

use super::apply::Whiteouts;
use super::{SnapshotError, apply_layer, layer_stack, native, publish, temp_in};
use crate::oci::digest::Digest;
use crate::oci::manifest::Descriptor;
use crate::store::{Image, Store};

#[derive(Clone, Debug)]
pub struct Trees {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Trees {
    pub fn new(state_root: &Path) -> Trees {
        Trees {
            dir: state_root.join("trees"),
        }
    }

    pub(crate) fn path(&self, chain: &Digest) -> PathBuf {
        self.dir.join(chain.hex())
    }

    /// The tree of `image` (none for an image without layers), made from its layers where
    /// missing.
    pub(crate) fn ensure(
        &self,
        store: &Store,
        image: &Image,
    ) -> Result<Option<PathBuf>, SnapshotError> {
        let mut tree = None;
        for (layer, diff_id, chain) in layer_stack(image)? {
            tree = Some(self.ensure_layer(store, tree.as_deref(), layer, diff_id, &chain)?);
        }
        Ok(tree)
    }

    /// The tree `chain`: `parent`'s tree (none: empty) with `layer` applied, made if
    /// missing. The diff ID is checked while applying.
    pub(crate) fn ensure_layer(
        &self,
        store: &Store,
        parent: Option<&Path>,
        layer: &Descriptor,
        diff_id: &Digest,
        chain: &Digest,
    ) -> Result<PathBuf, SnapshotError> {
        let dest = self.path(chain);
        if dest.is_dir() {
            return Ok(dest);
        }
        let _turn = super::unpack_turn(&self.dir, chain)?;
        if dest.is_dir() {
            return Ok(dest);
        }
        let tmp = temp_in(&self.dir, chain);
        let result = (|| {
            let rootfs = match parent {
                Some(p) => native::prepare(p, &tmp)
                    .map_err(|e| SnapshotError::Io {
                        path: p.display().to_string(),
                        source: std::io::Error::other(e),
                    })?
                    .rootfs()
                    .to_path_buf(),
                None => {
                    let r = tmp.join("rootfs");
                    std::fs::create_dir_all(&r).map_err(io(&r))?;
                    r
                }
            };
            apply_layer(store, layer, diff_id, &rootfs, Whiteouts::Apply)?;
            self.publish(&rootfs, chain)
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        result
    }

    /// Make `rootfs` (a step's committed root filesystem, on the state root's filesystem)
    /// the tree `chain`, by moving it. Another process's tree for the same chain wins.
    pub(crate) fn publish(&self, rootfs: &Path, chain: &Digest) -> Result<PathBuf, SnapshotError> {
        publish(rootfs, &self.dir, &self.path(chain))
    }

    /// Remove every tree; returns how many there were.
    pub fn clear(&self) -> Result<usize, SnapshotError> {
        let n = std::fs::read_dir(&self.dir).map_or(0, |rd| rd.count());
        // Renamed away first: a tree half removed must never be taken for a whole one.
        crate::store::remove_dir_atomically(&self.dir).map_err(io(&self.dir))?;
        Ok(n)
    }
}
