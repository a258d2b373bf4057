//! The build cache: what a step produced, found again by a key that names everything the
//! result depends on. A key is a blake3 hash chained from the stage's base (an image's
//! manifest digest, `scratch` and the platform, or another stage's last key) through each
//! step: the step's canonical form after expansion, the image config it runs under (ENV,
//! USER, WORKDIR, SHELL), the build args it sees, and for COPY/ADD a content hash of its
//! inputs. Never a mtime, never a secret's value. Records live under
//! `<state root>/cache/steps/<key hex>.json`; `rbuild prune` removes them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::oci::digest::Digest;

/// A step's cache key. Only [`KeyHasher`] makes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

/// Builds a [`CacheKey`] from labelled fields. Each field is written as its label, its
/// length and its bytes, so no two different field lists hash alike (`"ab","c"` vs
/// `"a","bc"`).
pub struct KeyHasher(blake3::Hasher);

impl KeyHasher {
    /// A key derived from `parent` (none for a stage's base).
    pub fn new(domain: &str, parent: Option<&CacheKey>) -> KeyHasher {
        let mut h = blake3::Hasher::new();
        h.update(b"rbuild-cache-v1\0");
        let mut k = KeyHasher(h);
        k.field("domain", domain.as_bytes());
        if let Some(p) = parent {
            k.field("parent", &p.0);
        }
        k
    }

    pub fn field(&mut self, label: &str, value: &[u8]) -> &mut KeyHasher {
        for part in [label.as_bytes(), value] {
            self.0.update(&(part.len() as u64).to_le_bytes());
            self.0.update(part);
        }
        self
    }

    pub fn str(&mut self, label: &str, value: &str) -> &mut KeyHasher {
        self.field(label, value.as_bytes())
    }

    pub fn finish(&self) -> CacheKey {
        CacheKey(*self.0.finalize().as_bytes())
    }
}

/// What a cached step produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The layer, or none when the step changed nothing.
    pub layer: Option<LayerRecord>,
    /// When the step ran (RFC 3339), for its history entry.
    #[serde(default)]
    pub created: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("writing cache record {path}: {source}")]
    WriteRecord {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("removing the build cache {path}: {source}")]
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

    fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.hex()))
    }

    /// The record for `key`. An unreadable or corrupt record is a miss: the step runs
    /// again and its new record replaces the bad one.
    pub fn get(&self, key: &CacheKey) -> Option<Record> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Store `record` for `key` (write to a temporary file, then rename: readers see the
    /// old record or the new one, never half of one).
    pub fn put(&self, key: &CacheKey, record: &Record) -> Result<(), CacheError> {
        let path = self.path(key);
        let err = |source| CacheError::WriteRecord {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(err)?;
        let tmp = self
            .dir
            .join(format!(".{}.tmp-{}", key.hex(), std::process::id()));
        let bytes = serde_json::to_vec(record).expect("a record serialises");
        std::fs::write(&tmp, bytes).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })
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
        let mut h = KeyHasher::new("test", None);
        for (l, v) in fields {
            h.str(l, v);
        }
        h.finish()
    }

    #[test]
    fn fields_are_framed() {
        assert_ne!(key(&[("a", "bc")]), key(&[("ab", "c")]));
        assert_ne!(
            key(&[("x", "ab"), ("y", "c")]),
            key(&[("x", "a"), ("y", "bc")])
        );
        assert_eq!(key(&[("x", "1")]), key(&[("x", "1")]));
    }

    #[test]
    fn parent_changes_the_key() {
        let p = key(&[("x", "1")]);
        let a = KeyHasher::new("step", Some(&p)).finish();
        let b = KeyHasher::new("step", None).finish();
        assert_ne!(a, b);
        assert_eq!(a.hex().len(), 64);
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
