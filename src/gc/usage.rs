//! What the state root holds, by kind ([`usage`], `rbuild df`), and a collection that keeps
//! the build cache, the cache mounts and the snapshots together under a size, removing the
//! least recently used first and never what a running build holds ([`keep_storage`]).
//!
//! Every file under the root is counted once, in one row, by where it is:
//! - images: blobs a tag reaches, and the snapshots that are its deferred layers (their
//!   only copy, `layer::deferred`);
//! - build cache: step records, and the layer blobs only records name;
//! - cache mounts: `cache/mounts/`;
//! - snapshots: overlay snapshots (`snapshots/`) and native trees (`trees/`), caches of
//!   layers whose blobs are here;
//! - other: blobs nothing names, build logs, the context hash cache, temporary files, the
//!   store's own files (`index.json`, locks).
//!
//! Sizes are apparent sizes of regular files, a file with several links counted once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::lease::{self, Kind};
use super::{PruneError, chains_of};
use crate::oci::digest::Digest;
use crate::snapshot::disk_usage_once as du;
use crate::store::{Store, StoreLock};

/// A step record of the build cache, as the engine lists them (`BuildCache::entries`): the
/// key's hex, its file, and the layer it names.
pub type RecordFile = (String, PathBuf, Option<Digest>);

/// One row of `rbuild df`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub count: usize,
    pub size: u64,
    /// What `rbuild prune` frees (images, snapshots of untagged images, unnamed blobs) or
    /// `rbuild prune --build-cache` (the build cache, cache mounts, native trees).
    pub reclaimable: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub images: Row,
    pub build_cache: Row,
    pub cache_mounts: Row,
    pub snapshots: Row,
    pub other: Row,
}

impl Usage {
    pub fn total(&self) -> u64 {
        [
            self.images,
            self.build_cache,
            self.cache_mounts,
            self.snapshots,
            self.other,
        ]
        .iter()
        .map(|r| r.size)
        .sum()
    }
}

/// The entries of a directory, none when it is missing.
fn children(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What the state root of `store` holds; `records` are the build cache's.
pub fn usage(store: &Store, records: &[RecordFile]) -> Result<Usage, PruneError> {
    let root = store.root();
    let tags = store.index().load()?;
    let (referenced, configs) = store.referenced_and_configs(&tags)?;
    let chains = chains_of(store, &configs);
    let record_blobs: BTreeSet<Digest> = records.iter().filter_map(|r| r.2.clone()).collect();
    let mut seen = HashSet::new();
    let mut u = Usage::default();
    u.images.count = tags.list().len();

    // Blobs, by who names them.
    for digest in store.blobs().list()? {
        let size = du(&store.blobs().path(&digest), &mut seen);
        if referenced.contains(&digest) {
            u.images.size += size;
        } else if record_blobs.contains(&digest) {
            u.build_cache.size += size;
            u.build_cache.reclaimable += size;
        } else {
            u.other.size += size;
            u.other.reclaimable += size;
        }
    }
    for (_, path, _) in records {
        let size = du(path, &mut seen);
        u.build_cache.count += 1;
        u.build_cache.size += size;
        u.build_cache.reclaimable += size;
    }
    for dir in children(&root.join("cache").join("mounts")) {
        if dir.is_dir() {
            u.cache_mounts.count += 1;
        }
        let size = du(&dir, &mut seen);
        u.cache_mounts.size += size;
        u.cache_mounts.reclaimable += size;
    }
    // A tagged image's deferred layers are their snapshots: image data, not a cache.
    let (_, images_own) = super::deferred_closure(store, referenced.iter());
    for (dir, trees) in [("snapshots", false), ("trees", true)] {
        for snap in children(&root.join(dir)) {
            let size = du(&snap, &mut seen);
            let name = name_of(&snap);
            if !trees && images_own.contains(&name) {
                u.images.size += size;
                continue;
            }
            if snap.is_dir() && !name.starts_with("tmp-") {
                u.snapshots.count += 1;
            }
            u.snapshots.size += size;
            if trees || !chains.contains(&name) {
                u.snapshots.reclaimable += size;
            }
        }
    }
    // Everything else: counted after the rows above, so nothing is counted twice.
    let rest = du(root, &mut seen);
    u.other.size += rest;
    Ok(u)
}

/// What [`keep_storage`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    /// (kind, name, bytes freed), in the order removed.
    pub items: Vec<(Kind, String, u64)>,
    /// Items over the limit that running builds hold.
    pub held: usize,
    /// The build cache, cache mounts and snapshots together, before and after.
    pub before: u64,
    pub after: u64,
}

/// One item a collection may remove.
struct Item {
    kind: Kind,
    name: String,
    path: PathBuf,
    size: u64,
    /// For a record: its layer, freed with the last record that names it.
    layer: Option<Digest>,
    last_used: u64,
}

/// Remove the least recently used items of the build cache, the cache mounts and the
/// snapshots (together; `records` are the build cache's) until they take at most `limit` bytes, sparing what running builds
/// hold and blobs a tag reaches. Collections take turns (`<root>/gc.lock`); builds go on.
pub fn keep_storage(
    store: &Store,
    limit: u64,
    records: Vec<RecordFile>,
) -> Result<Evicted, PruneError> {
    let root = store.root().to_path_buf();
    let _turn = StoreLock::new(root.join("gc.lock")).exclusive()?;
    let uses = lease::last_uses(&root);
    let referenced = store.referenced_blobs()?;
    let mut seen = HashSet::new();
    let mtime = |p: &Path| {
        std::fs::symlink_metadata(p)
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
    };
    let mut items = Vec::new();
    let mut push = |kind: Kind, name: String, path: PathBuf, size: u64, layer: Option<Digest>| {
        let last_used = uses
            .get(&(kind, name.clone()))
            .copied()
            .unwrap_or_else(|| mtime(&path));
        items.push(Item {
            kind,
            name,
            path,
            size,
            layer,
            last_used,
        });
    };
    // Records, and how many name each layer blob that no tag reaches.
    let mut layer_refs: HashMap<Digest, usize> = HashMap::new();
    let mut total = 0;
    for (hex, path, layer) in records {
        let layer = layer.filter(|d| !referenced.contains(d) && store.blobs().contains(d));
        if let Some(d) = &layer {
            let n = layer_refs.entry(d.clone()).or_default();
            if *n == 0 {
                total += du(&store.blobs().path(d), &mut seen);
            }
            *n += 1;
        }
        let size = du(&path, &mut seen);
        push(Kind::Record, hex, path, size, layer);
    }
    // The snapshots that are a tagged image's deferred layers: their only copy, not a cache.
    let (_, images_own) = super::deferred_closure(store, referenced.iter());
    for (dir, kind) in [("snapshots", Kind::Snapshot), ("trees", Kind::Tree)] {
        for path in children(&root.join(dir)) {
            let name = name_of(&path);
            if kind == Kind::Snapshot && images_own.contains(&name) {
                continue;
            }
            if path.is_dir() && !name.starts_with("tmp-") {
                let size = du(&path, &mut seen);
                push(kind, name, path, size, None);
            }
        }
    }
    for path in children(&root.join("cache").join("mounts")) {
        if path.is_dir() {
            let size = du(&path, &mut seen);
            push(Kind::Mount, name_of(&path), path, size, None);
        }
    }
    total += items.iter().map(|i| i.size).sum::<u64>();
    let mut out = Evicted {
        before: total,
        ..Evicted::default()
    };
    items.sort_by(|a, b| (a.last_used, &a.name).cmp(&(b.last_used, &b.name)));
    let mut kept: HashSet<(Kind, String)> = HashSet::new();
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| PruneError::Io { path, source }
    };
    for item in items {
        // Under the limit: the rest stays. A limit of 0 removes everything not held,
        // empty snapshots included.
        if total <= limit && limit > 0 {
            kept.insert((item.kind, item.name));
            continue;
        }
        let Some(_taken) = lease::try_exclusive(&item.path).map_err(io(&item.path))? else {
            out.held += 1;
            kept.insert((item.kind, item.name));
            continue;
        };
        let mut freed = item.size;
        if item.path.is_dir() {
            crate::store::remove_dir_atomically(&item.path).map_err(io(&item.path))?;
        } else {
            std::fs::remove_file(&item.path).map_err(io(&item.path))?;
        }
        if let Some(d) = &item.layer
            && let Some(n) = layer_refs.get_mut(d)
        {
            *n -= 1;
            if *n == 0 {
                let size = std::fs::metadata(store.blobs().path(d)).map_or(0, |m| m.len());
                if store.blobs().delete(d)? {
                    freed += size;
                }
            }
        }
        total = total.saturating_sub(freed);
        out.items.push((item.kind, item.name, freed));
    }
    out.after = total;
    // The order of the next collection; losing it costs nothing but that order.
    let _ = lease::compact(&root, &uses, &kept);
    Ok(out)
}

/// The `keep-storage` of `<root>/config.toml` (`[gc] keep-storage = "10GB"`), if set.
pub fn configured_limit(root: &Path) -> Result<Option<u64>, String> {
    let path = root.join("config.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        #[serde(default)]
        gc: Gc,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    struct Gc {
        keep_storage: Option<String>,
    }
    let config: Config = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    config
        .gc
        .keep_storage
        .map(|s| {
            crate::dockerfile::units::parse_ram_size(&s)
                .map_err(|e| format!("{}: gc.keep-storage {s:?}: {e}", path.display()))
        })
        .transpose()
}
