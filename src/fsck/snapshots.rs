//! Snapshots against their layers. A deferred layer's snapshot is archived again as its
//! build archived it (same `SOURCE_DATE_EPOCH`) and must give its diff ID. A snapshot
//! unpacked from a blob is compared with the blob unpacked afresh beside it: both archived
//! the same way must give one digest (archiving an unpacked tree does not give the blob's
//! own tar back, whose order and headers were another tool's).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::layer::deferred::Entry;
use crate::layer::{LayerOptions, write_layer};
use crate::oci::digest::Digest;
use crate::oci::manifest::Descriptor;
use crate::oci::media_type::Compression;
use crate::snapshot::apply::Whiteouts;
use crate::snapshot::{Snapshots, diff};
use crate::store::Store;

/// What a snapshot holds.
pub(super) enum Known {
    /// A deferred layer's files: archived with this epoch, they give the diff ID.
    Deferred {
        diff_id: Digest,
        source_date_epoch: Option<i64>,
    },
    /// Unpacked from this stored layer.
    Unpacked {
        layer: Box<Descriptor>,
        diff_id: Digest,
    },
}

/// What checking the snapshots found and did.
#[derive(Default)]
pub(super) struct Checked {
    pub(super) checked: usize,
    /// Snapshots nothing explains (prune's business).
    pub(super) unreferenced: usize,
    /// Snapshots unpacked from a blob that is gone, not checked.
    pub(super) without_blob: usize,
    /// Corrupt snapshots (chain ID hex) and why.
    pub(super) corrupt: Vec<(String, String)>,
    pub(super) repaired: Vec<String>,
    pub(super) unrepaired: Vec<String>,
}

/// The layer of each snapshot (chain ID hex) that a deferred layer or a tagged image's
/// layer stack (`(chain ID, layer, diff ID)`) names.
pub(super) fn known_layers<'a>(
    stacks: impl Iterator<Item = (Digest, &'a Descriptor, &'a Digest)>,
    entries: &BTreeMap<Digest, Entry>,
) -> BTreeMap<String, Known> {
    let mut out = BTreeMap::new();
    for (chain, layer, diff_id) in stacks {
        out.entry(chain.hex().to_string())
            .or_insert_with(|| Known::Unpacked {
                layer: Box::new(layer.clone()),
                diff_id: diff_id.clone(),
            });
    }
    // A deferred layer has no blob to unpack: its own entry says how to check it.
    for (diff_id, entry) in entries {
        for chain in entry.snapshots() {
            out.insert(
                chain.clone(),
                Known::Deferred {
                    diff_id: diff_id.clone(),
                    source_date_epoch: entry.source_date_epoch(),
                },
            );
        }
    }
    out
}

/// Check every snapshot; the corrupt ones are removed with `repair` unless a running
/// build holds them. `bad_blobs`: blobs found corrupt, as good as gone.
pub(super) fn check(
    store: &Store,
    known: &BTreeMap<String, Known>,
    bad_blobs: &BTreeSet<Digest>,
    repair: bool,
) -> Checked {
    let snapshots = Snapshots::new(store.root());
    let dir = store.root().join("snapshots");
    let mut report = Checked::default();
    let Ok(listing) = std::fs::read_dir(&dir) else {
        return report;
    };
    for entry in listing.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with("tmp-") {
            // An unpack in progress, or what a killed one left (its process gone).
            if repair && dead_leftover(&name) && crate::store::remove_dir_atomically(&path).is_ok()
            {
                report
                    .repaired
                    .push(format!("removed {name}, left by a killed run"));
            }
            continue;
        }
        let Some(what) = known.get(&name) else {
            report.unreferenced += 1;
            continue;
        };
        report.checked += 1;
        let verdict = match what {
            Known::Deferred {
                diff_id,
                source_date_epoch,
            } => archive_digest(&path, *source_date_epoch).map(|got| (got, diff_id.clone())),
            // Its blob gone (reported with the name that lost it): nothing to compare with,
            // and the snapshot may be the last copy of the files.
            Known::Unpacked { layer, .. }
                if crate::oci::manifest::descriptor_digest(layer)
                    .is_ok_and(|d| bad_blobs.contains(&d) || !store.blobs().contains(&d)) =>
            {
                report.checked -= 1;
                report.without_blob += 1;
                continue;
            }
            Known::Unpacked { layer, diff_id } => {
                let fresh = snapshots.temp_dir(&Digest::sha256(name.as_bytes()));
                let got = unpack_and_archive(store, layer, diff_id, &fresh)
                    .and_then(|want| archive_digest(&path, None).map(|got| (got, want)));
                let _ = crate::store::remove_dir_atomically(&fresh);
                got
            }
        };
        let why = match verdict {
            Ok((got, want)) if got == want => continue,
            Ok((got, want)) => format!("its files give {got}, not {want}"),
            Err(e) => e,
        };
        report.corrupt.push((name.clone(), why));
        if repair {
            match crate::gc::lease::try_exclusive(&path) {
                Ok(Some(_held)) => {
                    if crate::store::remove_dir_atomically(&path).is_ok() {
                        report.repaired.push(format!("removed corrupt snapshot {name}"));
                    }
                }
                _ => report.unrepaired.push(format!(
                    "snapshot {name} is corrupt but a running build uses it: run fsck --repair again when it is done"
                )),
            }
        }
    }
    report
}

/// Whether `tmp-<pid>-…` names a process that is gone.
fn dead_leftover(name: &str) -> bool {
    name.strip_prefix("tmp-")
        .and_then(|rest| rest.split('-').next())
        .is_some_and(|pid| !Path::new("/proc").join(pid).exists())
}

/// The diff ID of `dir` (a layer in overlay form) archived as rbuild archives layers.
fn archive_digest(dir: &Path, source_date_epoch: Option<i64>) -> Result<Digest, String> {
    let changes = diff::overlay_changes(dir).map_err(|e| crate::diag::chain(&e))?;
    let opts = LayerOptions {
        compression: Compression::None,
        level: None,
        threads: 1,
        source_date_epoch,
    };
    write_layer(dir, &changes, &opts, std::io::sink())
        .map(|d| d.diff_id)
        .map_err(|e| crate::diag::chain(&e))
}

/// Unpack the stored `layer` into `fresh` as its snapshot was, and archive that.
fn unpack_and_archive(
    store: &Store,
    layer: &Descriptor,
    diff_id: &Digest,
    fresh: &Path,
) -> Result<Digest, String> {
    std::fs::create_dir_all(fresh).map_err(|e| format!("{}: {e}", fresh.display()))?;
    let whiteouts = Whiteouts::Overlay {
        userxattr: crate::snapshot::overlay::userxattr(),
    };
    crate::snapshot::apply_layer(store, layer, diff_id, fresh, whiteouts).map_err(|e| {
        format!(
            "its layer cannot be unpacked to compare: {}",
            crate::diag::chain(&e)
        )
    })?;
    archive_digest(fresh, None)
}
