//! A build's records beyond the local cache ([`Travel`]): what the `--cache-from` caches
//! offered (read before the first step, then only looked up), every record the build used
//! or made, which `--cache-to` exports, and the `RUN --mount=type=cache` directories it
//! used, restored from an imported cache when they were empty. Shared by the builds of a
//! multi-platform build.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::key::CacheKey;
use super::record::{LayerRecord, Record};

#[derive(Debug, Default)]
pub(crate) struct Travel {
    imported: HashMap<CacheKey, Record>,
    used: Mutex<BTreeMap<CacheKey, Record>>,
    /// Imported cache mounts' contents, by identity.
    imported_mounts: HashMap<String, LayerRecord>,
    /// Cache mounts used: identity → directory.
    mounts: Mutex<BTreeMap<String, PathBuf>>,
    /// Cache mounts restored from an imported layer, with the fingerprint of what was
    /// restored: one unchanged when the build ends is exported as that same layer.
    restored: Mutex<HashMap<String, [u8; 32]>>,
}

impl Travel {
    /// With the records and cache mounts of the imported caches (the first cache to offer
    /// a key or a mount wins, as `--cache-from`s are tried in order).
    pub(crate) fn new(
        imported: impl IntoIterator<Item = (CacheKey, Record)>,
        mounts: impl IntoIterator<Item = (String, LayerRecord)>,
    ) -> Travel {
        let mut map = HashMap::new();
        for (k, r) in imported {
            map.entry(k).or_insert(r);
        }
        let mut imported_mounts = HashMap::new();
        for (id, l) in mounts {
            imported_mounts.entry(id).or_insert(l);
        }
        Travel {
            imported: map,
            imported_mounts,
            ..Travel::default()
        }
    }

    /// An imported cache's record for `key`.
    pub(crate) fn imported(&self, key: &CacheKey) -> Option<&Record> {
        self.imported.get(key)
    }

    /// Note that the build's step `key` has `record` (taken from a cache, or made).
    pub(crate) fn used(&self, key: &CacheKey, record: &Record) {
        self.used
            .lock()
            .expect("used records")
            .insert(*key, record.clone());
    }

    /// The records used, all of them or (`only`) those of these keys.
    pub(crate) fn records(&self, only: Option<&HashSet<CacheKey>>) -> BTreeMap<CacheKey, Record> {
        let used = self.used.lock().expect("used records");
        used.iter()
            .filter(|(k, _)| only.is_none_or(|o| o.contains(k)))
            .map(|(k, r)| (*k, r.clone()))
            .collect()
    }

    /// Note that a step used the cache mount `identity`, in `dir`.
    pub(crate) fn mount_used(&self, identity: &str, dir: &Path) {
        self.mounts
            .lock()
            .expect("cache mounts")
            .insert(identity.to_string(), dir.to_path_buf());
    }

    /// The cache mounts used, by identity.
    pub(crate) fn mounts_used(&self) -> BTreeMap<String, PathBuf> {
        self.mounts.lock().expect("cache mounts").clone()
    }

    /// The imported contents of cache mount `identity`.
    pub(crate) fn imported_mount(&self, identity: &str) -> Option<&LayerRecord> {
        self.imported_mounts.get(identity)
    }

    /// Note that cache mount `identity` was restored, and what it then held.
    pub(crate) fn restored(&self, identity: &str, fingerprint: [u8; 32]) {
        self.restored
            .lock()
            .expect("restored mounts")
            .insert(identity.to_string(), fingerprint);
    }

    /// What cache mount `identity` held when it was restored, if it was.
    pub(crate) fn restored_as(&self, identity: &str) -> Option<[u8; 32]> {
        self.restored
            .lock()
            .expect("restored mounts")
            .get(identity)
            .copied()
    }
}
