//! `rbuild fsck`: the state root checked against itself. Every blob is hashed again and
//! compared with its digest; every tag is followed to its manifests, configs and layers,
//! each of which must be here (a blob, or a deferred layer with a blob made of it or a
//! snapshot that holds it); every snapshot of a known layer is archived again and must give
//! that layer's diff ID — a deferred layer's directly, an unpacked one's as its blob unpacks
//! afresh; every build cache record and deferred-layer entry must parse.
//!
//! With `repair`, what is broken and only a cache goes: a corrupt blob, a corrupt snapshot
//! (unless a running build holds it), an unreadable record or entry, the leftovers of
//! killed runs. A tag whose content is lost is listed in [`Report::to_pull`]: the caller,
//! which has the registries' configuration, pulls it again by digest. What cannot be
//! repaired is said, never dropped silently.

mod snapshots;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::engine::cache::BuildCache;
use crate::layer::deferred::DeferredLayers;
use crate::oci::digest::Digest;
use crate::oci::manifest::{Descriptor, descriptor_digest};
use crate::oci::{Platform, Reference};
use crate::snapshot::chain_ids;
use crate::store::{Store, StoreError};

/// Something found broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A blob whose bytes do not hash to its name.
    CorruptBlob { digest: Digest, why: String },
    /// A tag whose manifest, index or config is missing or unreadable.
    BrokenTag { name: String, why: String },
    /// A layer of a tagged image that is nowhere here.
    MissingLayer { name: String, layer: Digest },
    /// A snapshot whose files no longer give its layer.
    CorruptSnapshot { chain: String, why: String },
    /// A build cache record that cannot be read.
    BadRecord { path: PathBuf },
    /// A deferred layer's entry that cannot be read.
    BadEntry { path: PathBuf },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::CorruptBlob { digest, why } => write!(f, "blob {digest} is corrupt: {why}"),
            Problem::BrokenTag { name, why } => write!(f, "image {name} cannot be read: {why}"),
            Problem::MissingLayer { name, layer } => {
                write!(f, "image {name}: layer {layer} is missing")
            }
            Problem::CorruptSnapshot { chain, why } => {
                write!(f, "snapshot {chain} is corrupt: {why}")
            }
            Problem::BadRecord { path } => {
                write!(f, "build cache record {} cannot be read", path.display())
            }
            Problem::BadEntry { path } => {
                write!(f, "deferred layer entry {} cannot be read", path.display())
            }
        }
    }
}

/// A tag to pull again by digest: its content is lost here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repull {
    pub name: Reference,
    /// What the tag names (the index or the manifest).
    pub digest: Digest,
    /// The platform whose image lost content (an index keeps only the platforms pulled).
    pub platform: Platform,
}

/// What a check found and did.
#[derive(Debug, Default)]
pub struct Report {
    pub blobs: usize,
    pub tags: usize,
    pub snapshots: usize,
    pub records: usize,
    pub problems: Vec<Problem>,
    /// What `repair` did, one line each.
    pub repaired: Vec<String>,
    /// Problems `repair` could not mend here, one line each.
    pub unrepaired: Vec<String>,
    /// Tags for the caller to pull again.
    pub to_pull: Vec<Repull>,
    /// Snapshots no tag or deferred layer names (a prune removes them).
    pub unreferenced_snapshots: usize,
    /// Snapshots of a layer whose blob is gone: nothing to compare them with.
    pub unchecked_snapshots: usize,
    /// Records whose layer is gone (a miss; removed with `repair`).
    pub dangling_records: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error(transparent)]
    Store(#[from] Box<StoreError>),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl From<StoreError> for FsckError {
    fn from(e: StoreError) -> FsckError {
        FsckError::Store(Box::new(e))
    }
}

/// Check `store`; with `repair`, mend what can be mended here.
pub fn check(store: &Store, repair: bool) -> Result<Report, FsckError> {
    let mut report = Report::default();
    let root = store.root().to_path_buf();
    if repair {
        let cleaned =
            crate::snapshot::workdir::cleanup_stale(&root).map_err(|e| FsckError::Io {
                what: "removing work directories of dead runs under",
                path: root.join("work"),
                source: e.source,
            })?;
        if cleaned > 0 {
            report.repaired.push(format!(
                "removed {cleaned} work directory(ies) of killed runs"
            ));
        }
    }
    let bad_blobs = check_blobs(store, repair, &mut report)?;
    let deferred = DeferredLayers::new(&root);
    let mut entries = BTreeMap::new();
    for entry in deferred.all() {
        match entry {
            Ok((diff_id, e)) => {
                entries.insert(diff_id, e);
            }
            Err(path) => {
                report
                    .problems
                    .push(Problem::BadEntry { path: path.clone() });
                if repair && deferred.remove_entry_file(&path).is_ok() {
                    report.repaired.push(format!("removed {}", path.display()));
                }
            }
        }
    }
    let images = tagged_images(store, &mut report)?;
    let known = snapshots::known_layers(images.iter().flat_map(TaggedImage::stack), &entries);
    let checked = snapshots::check(store, &known, &bad_blobs, repair);
    report.snapshots = checked.checked;
    report.unreferenced_snapshots = checked.unreferenced;
    report.unchecked_snapshots = checked.without_blob;
    report.repaired.extend(checked.repaired);
    report.unrepaired.extend(checked.unrepaired);
    let mut bad_snapshots = BTreeSet::new();
    for (chain, why) in checked.corrupt {
        bad_snapshots.insert(chain.clone());
        report
            .problems
            .push(Problem::CorruptSnapshot { chain, why });
    }
    let have = Availability {
        store,
        bad_blobs: &bad_blobs,
        bad_snapshots: &bad_snapshots,
        entries: &entries,
        repair,
    };
    for image in &images {
        for layer in image.layers.iter() {
            if have.layer(layer) {
                continue;
            }
            // A verified manifest may still name a layer by a digest rbuild cannot read.
            let digest = match descriptor_digest(layer) {
                Ok(d) => d,
                Err(e) => {
                    report.problems.push(Problem::BrokenTag {
                        name: image.name.to_string(),
                        why: crate::diag::chain(&e),
                    });
                    continue;
                }
            };
            report.problems.push(Problem::MissingLayer {
                name: image.name.to_string(),
                layer: digest.clone(),
            });
            // A blob made of a deferred layer whose files are still here is made again.
            if repair && deferred.remake(store, &digest).unwrap_or(false) {
                report
                    .repaired
                    .push(format!("made layer {digest} again from its snapshot"));
                continue;
            }
            let repull = Repull {
                name: image.name.clone(),
                digest: image.tagged.clone(),
                platform: image.platform.clone(),
            };
            if repair && !report.to_pull.contains(&repull) {
                report.to_pull.push(repull);
            }
        }
    }
    check_records(store, &have, &mut report);
    Ok(report)
}

/// Pull `r` again by digest, so that its tag, unchanged, names whole content; the name by
/// digest that the pull tags goes again unless it was there before. Then every layer of
/// the tag must be here.
pub fn repull(
    store: &Store,
    conf: &crate::registry::registries_conf::RegistriesConf,
    client: &crate::registry::client::Client,
    r: &Repull,
) -> Result<(), String> {
    let by_digest = r.name.without_tag_or_digest().with_digest(r.digest.clone());
    // By exact name: a reference by digest also resolves to the tag of that digest.
    let existed = store
        .list()
        .map_err(|e| crate::diag::chain(&e))?
        .iter()
        .any(|(name, _)| *name == by_digest);
    let pulled = crate::registry::pull::pull_name(
        conf,
        client,
        store,
        &by_digest.to_string(),
        &r.platform,
        &|_, _| {},
    );
    if !existed {
        let _ = store.untag(&by_digest);
    }
    pulled.map_err(|e| crate::diag::chain(&e))?;
    let mut report = Report::default();
    let images = tagged_images(store, &mut report).map_err(|e| crate::diag::chain(&e))?;
    let deferred = DeferredLayers::new(store.root());
    let entries: BTreeMap<_, _> = deferred.all().into_iter().flatten().collect();
    let have = Availability {
        store,
        bad_blobs: &BTreeSet::new(),
        bad_snapshots: &BTreeSet::new(),
        entries: &entries,
        repair: true,
    };
    let lost: Vec<String> = images
        .iter()
        .filter(|i| i.name == r.name)
        .flat_map(|i| i.layers.iter())
        .filter(|l| !have.layer(l))
        .map(|l| l.digest().to_string())
        .collect();
    if lost.is_empty() {
        Ok(())
    } else {
        Err(format!("still missing after the pull: {}", lost.join(", ")))
    }
}

/// Hash every blob again; returns the corrupt ones (removed with `repair`).
fn check_blobs(
    store: &Store,
    repair: bool,
    report: &mut Report,
) -> Result<BTreeSet<Digest>, FsckError> {
    let mut bad = BTreeSet::new();
    for digest in store.blobs().list()? {
        match store.blobs().verify(&digest) {
            Ok(_) => report.blobs += 1,
            // Removed meanwhile (a prune): nothing to check.
            Err(StoreError::BlobNotFound { .. }) => {}
            Err(e) => {
                report.blobs += 1;
                // The digest error itself, without the path the store adds.
                let why = std::error::Error::source(&e)
                    .map_or_else(|| crate::diag::chain(&e), |s| s.to_string());
                report.problems.push(Problem::CorruptBlob {
                    digest: digest.clone(),
                    why,
                });
                if repair && store.blobs().delete(&digest).is_ok() {
                    report
                        .repaired
                        .push(format!("removed corrupt blob {digest}"));
                }
                bad.insert(digest);
            }
        }
    }
    Ok(bad)
}

/// One platform's image of a tag, as far as fsck needs it.
pub(crate) struct TaggedImage {
    pub(crate) name: Reference,
    /// What the tag names.
    pub(crate) tagged: Digest,
    pub(crate) platform: Platform,
    pub(crate) layers: Vec<Descriptor>,
    pub(crate) diff_ids: Vec<Digest>,
}

impl TaggedImage {
    /// `(chain ID, layer, diff ID)` of each layer, lowest first.
    pub(crate) fn stack(&self) -> Vec<(Digest, &Descriptor, &Digest)> {
        chain_ids(&self.diff_ids)
            .into_iter()
            .zip(self.layers.iter().zip(&self.diff_ids))
            .map(|(c, (l, d))| (c, l, d))
            .collect()
    }
}

/// Every tag's images; a tag that cannot be read is a problem.
fn tagged_images(store: &Store, report: &mut Report) -> Result<Vec<TaggedImage>, FsckError> {
    let mut out = Vec::new();
    for (name, descriptor) in store.list()? {
        report.tags += 1;
        let images = descriptor_digest(&descriptor)
            .map_err(|e| crate::diag::chain(&e))
            .and_then(|tagged| {
                store
                    .images_at_all(&descriptor)
                    .map(|images| (tagged, images))
                    .map_err(|e| crate::diag::chain(&e))
            });
        match images {
            Ok((tagged, images)) => {
                for image in images {
                    let platform = image.config.platform();
                    out.push(TaggedImage {
                        name: name.clone(),
                        tagged: tagged.clone(),
                        platform,
                        layers: image.manifest.layers().to_vec(),
                        diff_ids: image.config.rootfs.diff_ids.clone(),
                    });
                }
            }
            Err(why) => report.problems.push(Problem::BrokenTag {
                name: name.to_string(),
                why,
            }),
        }
    }
    Ok(out)
}

/// Whether a layer is here, with what fsck found broken left out.
struct Availability<'a> {
    store: &'a Store,
    bad_blobs: &'a BTreeSet<Digest>,
    bad_snapshots: &'a BTreeSet<String>,
    entries: &'a BTreeMap<Digest, crate::layer::deferred::Entry>,
    repair: bool,
}

impl Availability<'_> {
    fn blob(&self, digest: &Digest) -> bool {
        // Repairing, a corrupt blob was removed, and one here now was made again.
        (self.repair || !self.bad_blobs.contains(digest)) && self.store.blobs().contains(digest)
    }

    fn layer(&self, layer: &Descriptor) -> bool {
        let Ok(digest) = descriptor_digest(layer) else {
            return false;
        };
        if self.blob(&digest) {
            return true;
        }
        let Some(entry) = self.entries.get(&digest) else {
            return false;
        };
        let snapshots = crate::snapshot::Snapshots::new(self.store.root());
        entry.blobs().any(|d| self.blob(d))
            || entry.snapshots().iter().any(|c| {
                !self.bad_snapshots.contains(c)
                    && Digest::parse(&format!("sha256:{c}"))
                        .is_ok_and(|c| snapshots.path(&c).is_dir())
            })
    }
}

/// Every record must parse; one whose layer is gone is counted (a miss), and removed with
/// `repair`.
fn check_records(store: &Store, have: &Availability<'_>, report: &mut Report) {
    let cache = BuildCache::new(store.root());
    for (_, path, _) in cache.entries() {
        report.records += 1;
        let record = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<crate::engine::cache::Record>(&b).ok());
        let remove = match record {
            None => {
                report
                    .problems
                    .push(Problem::BadRecord { path: path.clone() });
                true
            }
            Some(r) => match r.layer.as_ref().map(|l| l.descriptor()) {
                Some(layer) if !have.layer(&layer) => {
                    report.dangling_records += 1;
                    true
                }
                _ => false,
            },
        };
        if remove && have.repair && std::fs::remove_file(&path).is_ok() {
            report
                .repaired
                .push(format!("removed build cache record {}", path.display()));
        }
    }
}

#[cfg(test)]
mod tests;
