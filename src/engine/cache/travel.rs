//! A build's records beyond the local cache ([`Travel`]): what the `--cache-from` caches
//! offered (read before the first step, then only looked up), and every record the build
//! used or made, which `--cache-to` exports. Shared by the builds of a multi-platform build.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use super::key::CacheKey;
use super::record::Record;

#[derive(Debug, Default)]
pub(crate) struct Travel {
    imported: HashMap<CacheKey, Record>,
    used: Mutex<BTreeMap<CacheKey, Record>>,
}

impl Travel {
    /// With the records of the imported caches (the first cache to offer a key wins, as
    /// `--cache-from`s are tried in order).
    pub(crate) fn new(imported: impl IntoIterator<Item = (CacheKey, Record)>) -> Travel {
        let mut map = HashMap::new();
        for (k, r) in imported {
            map.entry(k).or_insert(r);
        }
        Travel {
            imported: map,
            used: Mutex::default(),
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
}
