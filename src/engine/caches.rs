//! The build's `--cache-from` and `--cache-to`, as progress vertices: every cache imported
//! before the first step ([`import_all`]), the records exported after the outputs
//! ([`export_all`]). An import that fails is a warning; an export that fails fails the
//! build unless it says `ignore-error=true`. Also the contents of `RUN --mount=type=cache`
//! directories (`mounts=`): restored into an empty directory before the first step that
//! mounts it ([`restore_mount`]), and exported as one layer each.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Instant;

use super::cache::export::export;
use super::cache::import::import;
use super::cache::travel::Travel;
use super::cache::{CacheKey, CacheLocation, CacheMode, CacheSpec, LayerRecord};
use super::error::BuildError;
use super::lazy::LazyBlobs;
use crate::layer::LayerOptions;
use crate::oci::manifest::descriptor;
use crate::oci::media_type::MediaType;
use crate::progress::{Event, Reporter};
use crate::snapshot::apply::Whiteouts;
use crate::store::Store;

/// Read each cache of `specs` (in order: the first to offer a key wins); returns the
/// records, and a warning for each cache that could not be used.
pub(crate) fn import_all(
    specs: &[CacheSpec],
    lazy: &LazyBlobs,
    progress: &dyn Reporter,
    id: &mut dyn FnMut() -> usize,
) -> (Travel, Vec<String>) {
    let mut records = Vec::new();
    let mut mounts = Vec::new();
    let mut warnings = Vec::new();
    for spec in specs {
        let id = id();
        progress.event(Event::Start {
            id,
            name: format!("importing cache manifest from {}", spec.shown()),
        });
        let started = Instant::now();
        match import(spec, lazy) {
            Ok(got) => {
                let mut said = format!("{} record(s)", got.records.len());
                if got.skipped > 0 {
                    let w = format!(
                        "--cache-from {}: {} record(s) skipped (malformed, or naming layers the cache does not hold)",
                        spec.shown(),
                        got.skipped
                    );
                    said.push_str(&format!(", {} skipped", got.skipped));
                    warnings.push(w);
                }
                progress.event(Event::Status { id, message: said });
                records.extend(got.records);
                mounts.extend(got.mounts);
            }
            Err(e) => {
                let why = crate::diag::chain(&e);
                let w = if e.is_missing() {
                    format!("--cache-from {}: no cache there yet ({why})", spec.shown())
                } else {
                    format!(
                        "--cache-from {}: not used: {why}; building without it",
                        spec.shown()
                    )
                };
                progress.event(Event::Status {
                    id,
                    message: format!("warning: {w}"),
                });
                warnings.push(w);
            }
        }
        progress.event(Event::Done {
            id,
            elapsed: started.elapsed(),
        });
    }
    (Travel::new(records, mounts), warnings)
}

/// Write the build's records to each cache of `specs`: every record (`mode=max`), or those
/// of the steps the final images are made of (`final_steps`), with the cache mounts each
/// asks for (written as `layer` says). Returns the warnings of exports that failed with
/// `ignore-error=true`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn export_all(
    specs: &[CacheSpec],
    travel: &Travel,
    final_steps: &HashSet<CacheKey>,
    store: &Store,
    lazy: &LazyBlobs,
    layer: &LayerOptions,
    progress: &dyn Reporter,
    id: &mut dyn FnMut() -> usize,
) -> Result<Vec<String>, BuildError> {
    let mut warnings = Vec::new();
    // Each cache mount's layer, made once for all the exports that carry it.
    let mut mount_layers: BTreeMap<String, LayerRecord> = BTreeMap::new();
    // type=inline went into the image's manifest when it was written.
    for spec in specs.iter().filter(|s| s.location != CacheLocation::Inline) {
        let id = id();
        progress.event(Event::Start {
            id,
            name: format!("exporting cache to {}", spec.shown()),
        });
        let started = Instant::now();
        let records = travel.records(match spec.mode {
            CacheMode::Max => None,
            CacheMode::Min => Some(final_steps),
        });
        let mut mounts = BTreeMap::new();
        for (identity, dir) in travel.mounts_used() {
            if !spec.mounts.includes(mount_id(&identity)) {
                continue;
            }
            let made = match mount_layers.get(&identity) {
                Some(l) => Some(l.clone()),
                None => {
                    progress.event(Event::Status {
                        id,
                        message: format!("cache mount {}", mount_id(&identity)),
                    });
                    let l = mount_layer(travel, &identity, &dir, store, layer)?;
                    if let Some(l) = &l {
                        mount_layers.insert(identity.clone(), l.clone());
                    }
                    l
                }
            };
            if let Some(l) = made {
                mounts.insert(identity, l);
            }
        }
        match export(spec, &records, &mounts, store, lazy) {
            Ok(done) => progress.event(Event::Status {
                id,
                message: format!(
                    "{} record(s), {} cache mount(s), {} layer(s): {}",
                    done.records,
                    mounts.len(),
                    done.layers,
                    done.digest
                ),
            }),
            Err(e) if spec.ignore_error => {
                let w = format!(
                    "--cache-to {}: not written (ignore-error=true): {}",
                    spec.shown(),
                    crate::diag::chain(&e)
                );
                progress.event(Event::Status {
                    id,
                    message: format!("warning: {w}"),
                });
                warnings.push(w);
            }
            Err(e) => {
                progress.event(Event::Error {
                    id,
                    message: crate::diag::chain(&e),
                });
                return Err(BuildError::CacheExport {
                    dest: spec.shown(),
                    source: Box::new(e),
                });
            }
        }
        progress.event(Event::Done {
            id,
            elapsed: started.elapsed(),
        });
    }
    Ok(warnings)
}

/// A cache mount's id as `mounts=` names it: the mount's `id=` (or target), without the
/// owner, mode and seed its identity adds.
fn mount_id(identity: &str) -> &str {
    identity.split('\0').next().unwrap_or(identity)
}

/// The layer of cache mount `identity`'s directory `dir`: the one it was restored from if
/// it is unchanged since, or (no step ran with it here) the imported one; else written now
/// (every entry as it is, times included, so that tools which age their caches by mtime
/// keep working). None for a directory that is empty or missing, with nothing imported.
fn mount_layer(
    travel: &Travel,
    identity: &str,
    dir: &Path,
    store: &Store,
    layer: &LayerOptions,
) -> Result<Option<LayerRecord>, BuildError> {
    let files = |source| BuildError::Files {
        what: format!(
            "reading cache mount {} at {}",
            mount_id(identity),
            dir.display()
        ),
        source,
    };
    let empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(files(e)),
    };
    let imported = travel.imported_mount(identity);
    if empty {
        return Ok(imported.cloned());
    }
    if let (Some(before), Some(imported)) = (travel.restored_as(identity), imported)
        && fingerprint(dir).map_err(files)? == before
    {
        return Ok(Some(imported.clone()));
    }
    let changes = crate::snapshot::diff::overlay_changes(dir).map_err(|e| BuildError::Files {
        what: format!(
            "reading cache mount {} at {}",
            mount_id(identity),
            dir.display()
        ),
        source: std::io::Error::other(crate::diag::chain(&e)),
    })?;
    let options = LayerOptions {
        source_date_epoch: None,
        ..layer.clone()
    };
    let mut writer = store.blobs().writer()?;
    let digests = crate::layer::write_layer(dir, &changes, &options, &mut writer)?;
    writer.commit(&digests.digest)?;
    Ok(Some(LayerRecord {
        media_type: MediaType::oci_layer(options.compression).to_string(),
        digest: digests.digest,
        size: digests.size,
        diff_id: digests.diff_id,
    }))
}

/// Fill the empty cache mount directory `dir` of `identity` from an imported cache's layer
/// of it, once per build (`seed_lock` keeps two steps from doing it at once). A directory
/// that holds anything is this machine's own cache, and is left as it is.
pub(crate) fn restore_mount(
    travel: &Travel,
    lazy: &LazyBlobs,
    store: &Store,
    identity: &str,
    dir: &Path,
    seed_lock: impl FnOnce() -> Result<std::fs::File, BuildError>,
) -> Result<(), BuildError> {
    let Some(layer) = travel.imported_mount(identity) else {
        return Ok(());
    };
    if travel.restored_as(identity).is_some() {
        return Ok(());
    }
    let _lock = seed_lock()?;
    let files = |source| BuildError::Files {
        what: format!(
            "restoring cache mount {} into {}",
            mount_id(identity),
            dir.display()
        ),
        source,
    };
    if std::fs::read_dir(dir).map_err(files)?.next().is_some() {
        return Ok(());
    }
    let desc = descriptor(
        &MediaType::parse(&layer.media_type),
        &layer.digest,
        layer.size,
    );
    lazy.ensure(store, &desc)?;
    crate::snapshot::apply_layer(store, &desc, &layer.diff_id, dir, Whiteouts::Apply)?;
    travel.restored(identity, fingerprint(dir).map_err(files)?);
    Ok(())
}

/// What a directory holds, as a hash of every entry's path, type, mode, owner, size, mtime
/// and link target (contents are not read: a cache tool that rewrites a file changes its
/// size or mtime).
fn fingerprint(dir: &Path) -> std::io::Result<[u8; 32]> {
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &Path, rel: &str, h: &mut blake3::Hasher) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = format!("{rel}/{}", e.file_name().to_string_lossy());
            let m = e.path().symlink_metadata()?;
            for n in [
                name.len() as u64,
                u64::from(m.mode()),
                u64::from(m.uid()),
                u64::from(m.gid()),
                m.size(),
                m.mtime() as u64,
                m.mtime_nsec() as u64,
            ] {
                h.update(&n.to_le_bytes());
            }
            h.update(name.as_bytes());
            if m.file_type().is_symlink() {
                h.update(std::fs::read_link(e.path())?.as_os_str().as_encoded_bytes());
            } else if m.is_dir() {
                walk(&e.path(), &name, h)?;
            }
        }
        Ok(())
    }
    let mut h = blake3::Hasher::new();
    walk(dir, "", &mut h)?;
    Ok(*h.finalize().as_bytes())
}
