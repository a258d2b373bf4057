//! The step records: what a cached step produced (its layer, when it ran), one JSON file
//! per key under `<state root>/cache/steps/`. Must not compute keys (`key.rs` does).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::key::CacheKey;
use crate::oci::digest::Digest;

/// What a cached step produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The layer, or none when the step changed nothing.
    pub(crate) layer: Option<LayerRecord>,
    /// When the step ran (RFC 3339), for its history entry.
    #[serde(default)]
    pub(crate) created: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub(crate) media_type: String,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) diff_id: Digest,
}

impl LayerRecord {
    /// The layer's descriptor in a manifest.
    pub(crate) fn descriptor(&self) -> crate::oci::manifest::Descriptor {
        crate::oci::manifest::descriptor(
            &crate::oci::media_type::MediaType::parse(&self.media_type),
            &self.digest,
            self.size,
        )
    }

    /// The record with its layer as a blob in the compression its build asked for, made
    /// where needed (a deferred layer, `layer::deferred`); itself for any other layer.
    pub(crate) fn materialized(
        &self,
        store: &crate::store::Store,
    ) -> Result<LayerRecord, crate::layer::deferred::DeferredError> {
        let made = crate::layer::deferred::materialize_layer(store, &self.descriptor())?;
        Ok(LayerRecord {
            media_type: made.media_type().to_string(),
            digest: crate::oci::manifest::descriptor_digest(&made)?,
            size: made.size(),
            diff_id: self.diff_id.clone(),
        })
    }
}

impl Record {
    /// The record with its layer materialized ([`LayerRecord::materialized`]).
    pub(crate) fn materialized(
        &self,
        store: &crate::store::Store,
    ) -> Result<Record, crate::layer::deferred::DeferredError> {
        Ok(Record {
            layer: self
                .layer
                .as_ref()
                .map(|l| l.materialized(store))
                .transpose()?,
            created: self.created.clone(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("writing cache record {path}")]
    WriteRecord {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("removing the build cache {path}")]
    Clear {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The step records under the state root.
#[derive(Clone, Debug)]
pub struct BuildCache {
    dir: PathBuf,
}

impl BuildCache {
    pub fn new(state_root: &Path) -> BuildCache {
        BuildCache {
            dir: state_root.join("cache").join("steps"),
        }
    }

    pub(crate) fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.hex()))
    }

    /// Where the records are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every record: its key's hex, its file, and its layer's digest (none for a step that
    /// changed nothing, or a record that cannot be read).
    pub fn entries(&self) -> Vec<crate::gc::usage::RecordFile> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let path = entry.path();
            let Some(hex) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|n| !n.starts_with('.'))
                .map(str::to_string)
            else {
                continue;
            };
            let layer = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
                .and_then(|r| r.layer)
                .map(|l| l.digest);
            out.push((hex, path, layer));
        }
        out
    }

    /// The record for `key`. An unreadable or corrupt record is a miss: the step runs
    /// again and its new record replaces the bad one.
    pub(crate) fn get(&self, key: &CacheKey) -> Option<Record> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Store `record` for `key` (write to a temporary file, then rename: readers see the
    /// old record or the new one, never half of one).
    pub(crate) fn put(&self, key: &CacheKey, record: &Record) -> Result<(), CacheError> {
        let path = self.path(key);
        let err = |source| CacheError::WriteRecord {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(err)?;
        let tmp = self.dir.join(format!(
            ".{}.tmp-{}",
            key.hex(),
            crate::store::unique_suffix()
        ));
        let bytes = serde_json::to_vec(record).expect("a record serialises");
        std::fs::write(&tmp, bytes).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })
    }

    /// The layer blobs the records name (what a prune that keeps the build cache keeps).
    pub fn layer_digests(&self) -> std::collections::BTreeSet<Digest> {
        let mut out = std::collections::BTreeSet::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            if let Ok(record) = serde_json::from_slice::<Record>(&bytes)
                && let Some(layer) = record.layer
            {
                out.insert(layer.digest);
            }
        }
        out
    }

    /// How many records there are.
    pub fn records(&self) -> usize {
        std::fs::read_dir(&self.dir).map_or(0, |rd| rd.count())
    }

    /// Remove every record; returns how many there were.
    pub fn clear(&self) -> Result<usize, CacheError> {
        let n = std::fs::read_dir(&self.dir).map_or(0, |rd| rd.count());
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CacheError::Clear {
                path: self.dir.clone(),
                source: e,
            }),
            _ => Ok(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fields: &[(&str, &str)]) -> CacheKey {
        let mut k = crate::engine::cache::KeyEncoder::new("test", None);
        for (l, v) in fields {
            k.str(l, v);
        }
        k.finish()
    }

    #[test]
    fn records_round_trip_and_corrupt_ones_miss() {
        let d = tempfile::tempdir().unwrap();
        let cache = BuildCache::new(d.path());
        let k = key(&[("x", "1")]);
        assert_eq!(cache.get(&k), None);
        let rec = Record {
            layer: Some(LayerRecord {
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                digest: Digest::sha256(b"blob"),
                size: 4,
                diff_id: Digest::sha256(b"tar"),
            }),
            created: Some("2026-01-01T00:00:00Z".into()),
        };
        cache.put(&k, &rec).unwrap();
        assert_eq!(cache.get(&k), Some(rec));
        std::fs::write(cache.path(&k), b"{not json").unwrap();
        assert_eq!(cache.get(&k), None);
        assert_eq!(cache.clear().unwrap(), 1);
        assert_eq!(cache.get(&k), None);
        assert_eq!(cache.clear().unwrap(), 0);
    }
}
