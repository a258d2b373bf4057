//! Layer snapshots: layers applied to directories. [`apply`] applies one layer safely;
//! chain IDs name the result of a stack of layers (OCI image-spec `config.md`).
//! [`Snapshots`] keeps each layer of an image unpacked once, in overlay form, under
//! `<state root>/snapshots/<chain ID hex>/`, ready to be an overlayfs lower directory.

pub mod apply;
pub mod change;
pub mod diff;
pub(crate) mod journal;
pub mod native;
pub mod overlay;
pub mod snapshotter;
pub mod trees;
pub(crate) mod workdir;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use apply::{ApplyError, Whiteouts};

use crate::oci::digest::Digest;
use crate::oci::manifest::{Descriptor, descriptor_digest};
use crate::oci::media_type::MediaType;
use crate::store::{Image, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Apply(#[from] Box<ApplyError>),
    #[error(transparent)]
    Store(#[from] Box<StoreError>),
    #[error("{path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("image config lists {diff_ids} diff IDs for {layers} layers")]
    LayerCount { diff_ids: usize, layers: usize },
    #[error("layer {digest} has media type {media_type}, which is not a layer rbuild can unpack")]
    NotALayer { digest: String, media_type: String },
}

/// Unpacked layers under the state root.
#[derive(Clone, Debug)]
pub struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    pub fn new(state_root: &Path) -> Snapshots {
        Snapshots {
            dir: state_root.join("snapshots"),
        }
    }

    /// The directory of the snapshot for `chain_id`.
    pub fn path(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join(chain_id.hex())
    }

    /// Remove the snapshots whose chain ID (hex) is not in `keep`; returns what went, with
    /// its size. Snapshots are a cache of their layers, so no grace period applies; only an
    /// unpack in progress (`tmp-<pid>-…` of a live process) is spared.
    pub(crate) fn prune(
        &self,
        keep: &BTreeSet<String>,
    ) -> Result<Vec<(String, u64)>, SnapshotError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| SnapshotError::Io { path, source }
        };
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut removed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep.contains(&name) {
                continue;
            }
            if let Some(pid) = name
                .strip_prefix("tmp-")
                .and_then(|rest| rest.split('-').next())
                && Path::new("/proc").join(pid).exists()
            {
                continue;
            }
            let path = entry.path();
            let size = disk_usage(&path);
            crate::store::remove_dir_atomically(&path).map_err(io(&path))?;
            removed.push((name, size));
        }
        Ok(removed)
    }

    /// Unpack every layer of `image` not unpacked yet; returns the layer directories,
    /// lowest first. Each diff ID is checked while unpacking. `userxattr` chooses the
    /// overlay xattr namespace (`user.` for rootless overlay mounts).
    pub fn ensure(
        &self,
        store: &Store,
        image: &Image,
        userxattr: bool,
    ) -> Result<Vec<PathBuf>, SnapshotError> {
        layer_stack(image)?
            .into_iter()
            .map(|(layer, diff_id, chain)| {
                self.ensure_layer(store, layer, diff_id, &chain, userxattr)
            })
            .collect()
    }

    /// Unpack one layer as the snapshot `chain` (its chain ID in its stack) unless it is
    /// there already; returns the snapshot's directory. The diff ID is checked while
    /// unpacking.
    pub(crate) fn ensure_layer(
        &self,
        store: &Store,
        layer: &Descriptor,
        diff_id: &Digest,
        chain: &Digest,
        userxattr: bool,
    ) -> Result<PathBuf, SnapshotError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| SnapshotError::Io { path, source }
        };
        let dest = self.path(chain);
        if dest.is_dir() {
            return Ok(dest);
        }
        // Once per layer: whoever comes second (another stage, another process) waits for
        // the first unpack and takes its snapshot.
        let _turn = unpack_turn(&self.dir, chain)?;
        if dest.is_dir() {
            return Ok(dest);
        }
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let tmp = self.temp_dir(chain);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let result = apply_layer(
            store,
            layer,
            diff_id,
            &tmp,
            Whiteouts::Overlay { userxattr },
        );
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        self.publish(&tmp, chain)
    }

    /// A fresh directory to build snapshot `chain` in, before [`Snapshots::publish`]
    /// (named so that a prune spares it while this process lives).
    pub(crate) fn temp_dir(&self, chain: &Digest) -> PathBuf {
        temp_in(&self.dir, chain)
    }

    /// Make `dir` (a layer in overlay form: whiteouts as 0:0 character devices, opaque
    /// directories marked by xattr, as an overlay upper dir is) the snapshot `chain`. It
    /// is moved, never copied, so it must be on the state root's filesystem. When another
    /// process published the same chain first, theirs stays and `dir` is removed.
    pub(crate) fn publish(&self, dir: &Path, chain: &Digest) -> Result<PathBuf, SnapshotError> {
        publish(dir, &self.dir, &self.path(chain))
    }
}

/// Apply the stored `layer` (checked against `diff_id`) onto `dest`.
pub(crate) fn apply_layer(
    store: &Store,
    layer: &Descriptor,
    diff_id: &Digest,
    dest: &Path,
    whiteouts: Whiteouts,
) -> Result<(), SnapshotError> {
    let media = MediaType::parse(layer.media_type().as_ref());
    let digest = descriptor_digest(layer).map_err(|e| SnapshotError::NotALayer {
        digest: crate::diag::chain(&e),
        media_type: media.to_string(),
    })?;
    let compression = media
        .layer_compression()
        .ok_or_else(|| SnapshotError::NotALayer {
            digest: digest.to_string(),
            media_type: media.to_string(),
        })?;
    let blob = store
        .blobs()
        .open(&digest)
        .map_err(|e| SnapshotError::Store(Box::new(e)))?;
    apply::apply(
        dest,
        std::io::BufReader::new(blob),
        compression,
        digest.as_str(),
        whiteouts,
        Some(diff_id),
    )
    .map(|_| ())
    .map_err(|e| SnapshotError::Apply(Box::new(e)))
}

/// Move the finished directory `dir` to `dest` (in `parent`, on the same filesystem).
/// When another process published the same chain first, theirs stays (the same chain ID
/// is the same content) and `dir` is removed.
pub(crate) fn publish(dir: &Path, parent: &Path, dest: &Path) -> Result<PathBuf, SnapshotError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| SnapshotError::Io { path, source }
    };
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    // Noted (and the note on disk) before the name appears: a power cut can then never
    // leave a published directory that the journal does not know about.
    if let Some(state_root) = parent.parent() {
        journal::record(state_root, dest);
    }
    match std::fs::rename(dir, dest) {
        Ok(()) => Ok(dest.to_path_buf()),
        Err(_) if dest.is_dir() => {
            let _ = std::fs::remove_dir_all(dir);
            Ok(dest.to_path_buf())
        }
        Err(e) => Err(io(dest)(e)),
    }
}

/// Chain IDs of a layer stack: `ChainID(L0) = DiffID(L0)`,
/// `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = next_chain_id(out.last(), d);
        out.push(next);
    }
    out
}

/// The chain ID of a layer `diff_id` stacked on the chain `prev` (none: the first layer).
pub(crate) fn next_chain_id(prev: Option<&Digest>, diff_id: &Digest) -> Digest {
    match prev {
        None => diff_id.clone(),
        Some(prev) => Digest::sha256(format!("{prev} {diff_id}").as_bytes()),
    }
}

/// An image's layers with their diff IDs and chain IDs, lowest first; the config must list
/// one diff ID per layer.
fn layer_stack(image: &Image) -> Result<Vec<(&Descriptor, &Digest, Digest)>, SnapshotError> {
    let diff_ids = &image.config.rootfs.diff_ids;
    let layers = image.manifest.layers();
    if diff_ids.len() != layers.len() {
        return Err(SnapshotError::LayerCount {
            diff_ids: diff_ids.len(),
            layers: layers.len(),
        });
    }
    Ok(layers
        .iter()
        .zip(diff_ids)
        .zip(chain_ids(diff_ids))
        .map(|((l, d), c)| (l, d, c))
        .collect())
}

/// The exclusive turn to unpack `chain` into `dir` (`<root>/snapshots` or `<root>/trees`),
/// held until the returned file is dropped: an `flock` on `<root>/locks/<snapshots or
/// trees>/<chain>`, which conflicts between threads (each opens its own description) and
/// processes alike, and goes with a killed process. The lock files stay (empty, outside
/// what prune walks): removing one while another process waits on it would let two unpack.
pub(crate) fn unpack_turn(dir: &Path, chain: &Digest) -> Result<std::fs::File, SnapshotError> {
    let kind = dir.file_name().unwrap_or_default();
    let locks = dir.with_file_name("locks").join(kind);
    let path = locks.join(chain.hex());
    let io = |source| SnapshotError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&locks).map_err(io)?;
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| io(e.into()))?;
    Ok(file)
}

/// A fresh directory in `dir` to build the snapshot or tree `chain` in, named so that a
/// prune spares it while this process lives (`tmp-<pid>-…`).
fn temp_in(dir: &Path, chain: &Digest) -> PathBuf {
    // Unique per thread too: two builds of one process may unpack the same layer at once
    // (the platforms of a multi-platform build); `publish` keeps the first.
    let tmp = dir.join(format!(
        "tmp-{}-{}",
        crate::store::unique_suffix(),
        chain.hex()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    tmp
}

/// Bytes of regular files under `path`, symlinks not followed.
fn disk_usage(path: &Path) -> u64 {
    disk_usage_once(path, &mut std::collections::HashSet::new())
}

/// Apparent size of the regular files under `path` (or of `path`), each inode once: one
/// whose (device, inode) is in `seen` already counts nothing, so callers that share `seen`
/// count a file with several links (or under several of their paths) once.
pub(crate) fn disk_usage_once(
    path: &Path,
    seen: &mut std::collections::HashSet<(u64, u64)>,
) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| disk_usage_once(&e.path(), seen)).sum())
            .unwrap_or(0)
    } else if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
        meta.len()
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::sha256(b"a");
        let b = Digest::sha256(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::sha256(format!("{a} {b}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn prune_spares_kept_and_in_progress_snapshots() {
        let root = tempfile::tempdir().unwrap();
        let snaps = Snapshots::new(root.path());
        let dir = root.path().join("snapshots");
        let live = format!("tmp-{}-abc", std::process::id());
        // pid_max is at most 2^22: this process cannot exist.
        let dead = "tmp-99999999-abc".to_string();
        for name in ["kept", "old", live.as_str(), dead.as_str()] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            std::fs::write(dir.join(name).join("f"), "1234").unwrap();
        }
        let keep: BTreeSet<String> = ["kept".to_string()].into();
        let mut gone = snaps.prune(&keep).unwrap();
        gone.sort();
        assert_eq!(gone, vec![("old".to_string(), 4), (dead, 4)]);
        assert!(dir.join("kept").is_dir() && dir.join(&live).is_dir());
        assert!(
            Snapshots::new(&root.path().join("none"))
                .prune(&keep)
                .unwrap()
                .is_empty()
        );
    }
}
