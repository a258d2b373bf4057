//! Deferred layers: a layer a build commits on the overlay snapshotter is its snapshot
//! plus its diff ID and size, found in one pass of tar into sha256 that writes no blob. Its
//! compressed blob is made when something needs one (a push, `save`, a file output, a cache
//! export), once per compression, and kept (docs/store.md, "Deferred layers").
//!
//! Local manifests name such a layer uncompressed (`application/vnd.oci.image.layer.v1.tar`,
//! digest = diff ID, size = the tar's). [`materialize`] turns a manifest or index into the
//! one an eager commit would have stored: each deferred layer replaced by its blob in the
//! compression its build asked for, the same bytes an eager commit writes.
//!
//! Each deferred layer has an entry `<root>/layers/<diff ID hex>.json`: the snapshots that
//! hold its files, how its tar was written (`SOURCE_DATE_EPOCH`), the compression its build
//! asked for, and the blobs made of it. Entries change under `<root>/layers/lock`, and are
//! replaced whole.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{LayerDigests, LayerError, LayerOptions, compress_tar, write_layer};
use crate::oci::digest::{Digest, DigestAndSize};
use crate::oci::manifest::{
    Descriptor, Manifest, ManifestError, descriptor, descriptor_digest, parse_manifest_any,
    to_canonical_oci,
};
use crate::oci::media_type::{Compression, MediaType};
use crate::snapshot::{Snapshots, chain_ids, diff};
use crate::store::{Store, StoreError, StoreLock};

/// The directory of the entries, under the state root.
pub const DIR: &str = "layers";

#[derive(Debug, thiserror::Error)]
pub enum DeferredError {
    #[error(
        "layer {diff_id} is no longer on this machine: its snapshot was removed and no blob of it was made; build the image again"
    )]
    Lost { diff_id: Digest },
    #[error("making the {compression} blob of layer {diff_id} from {from}")]
    Make {
        diff_id: Digest,
        compression: Compression,
        from: String,
        source: LayerError,
    },
    #[error(
        "{from} no longer gives layer {diff_id} (it gives {got}): it changed after the layer was committed"
    )]
    Changed {
        diff_id: Digest,
        got: Digest,
        from: String,
    },
    #[error("sending layer {diff_id} as it was made: {reason}")]
    Send { diff_id: Digest, reason: String },
    #[error("reading the files of {path}")]
    Walk {
        path: String,
        source: diff::DiffError,
    },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] Box<StoreError>),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

impl From<StoreError> for DeferredError {
    fn from(e: StoreError) -> DeferredError {
        DeferredError::Store(Box::new(e))
    }
}

/// A blob made of a deferred layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Made {
    compression: String,
    level: Option<i32>,
    digest: Digest,
    size: u64,
}

/// What rbuild knows of one deferred layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Snapshots (chain ID hex) holding the layer's files, oldest first.
    snapshots: Vec<String>,
    source_date_epoch: Option<i64>,
    /// The compression (and level) the committing build asked for: what an eager commit
    /// would have stored, and so what a push or save makes.
    compression: String,
    level: Option<i32>,
    made: Vec<Made>,
}

impl Entry {
    /// Snapshots (chain ID hex) that hold the layer.
    pub fn snapshots(&self) -> &[String] {
        &self.snapshots
    }

    /// Digests of the blobs made of it.
    pub fn blobs(&self) -> impl Iterator<Item = &Digest> {
        self.made.iter().map(|m| &m.digest)
    }

    fn compression(&self) -> Compression {
        Compression::from_name(&self.compression).unwrap_or(Compression::Gzip)
    }

    fn made_as(&self, compression: Compression, level: Option<i32>) -> Option<&Made> {
        self.made
            .iter()
            .find(|m| m.compression == compression.to_string() && m.level == level)
    }
}

impl Entry {
    /// The `SOURCE_DATE_EPOCH` its tar was written with: what archiving one of its
    /// snapshots again needs to give the same diff ID.
    pub fn source_date_epoch(&self) -> Option<i64> {
        self.source_date_epoch
    }
}

/// The entries of a state root.
#[derive(Clone, Debug)]
pub struct DeferredLayers {
    dir: PathBuf,
}

impl DeferredLayers {
    pub fn new(state_root: &Path) -> DeferredLayers {
        DeferredLayers {
            dir: state_root.join(DIR),
        }
    }

    fn path(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join(format!("{}.json", diff_id.hex()))
    }

    /// The entry of `diff_id`, if it is a deferred layer.
    pub fn get(&self, diff_id: &Digest) -> Option<Entry> {
        let bytes = std::fs::read(self.path(diff_id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Forget the deferred layers not in `keep` whose entry is older than `grace` (a build
    /// notes its layers before it records or tags them); returns how many went.
    pub fn retain(
        &self,
        keep: &std::collections::BTreeSet<Digest>,
        grace: std::time::Duration,
    ) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let Ok(_turn) = StoreLock::new(self.dir.join("lock")).exclusive() else {
            return 0;
        };
        let mut gone = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // A crashed update's temporary file goes once it is old.
            let keeps = match name.strip_suffix(".json") {
                Some(hex) => {
                    Digest::parse(&format!("sha256:{hex}")).is_ok_and(|d| keep.contains(&d))
                }
                None => !name.starts_with("tmp-"),
            };
            let young = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age < grace);
            if !keeps && !young && std::fs::remove_file(entry.path()).is_ok() {
                gone += 1;
            }
        }
        gone
    }

    /// Every entry, by diff ID; `Err` with its path for one that cannot be read.
    pub fn all(&self) -> Vec<Result<(Digest, Entry), PathBuf>> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let path = e.path();
                let hex = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".json")?
                    .to_string();
                let parsed = Digest::parse(&format!("sha256:{hex}"))
                    .ok()
                    .and_then(|d| Some((d, self.get_at(&path)?)));
                Some(parsed.ok_or(path))
            })
            .collect()
    }

    fn get_at(&self, path: &Path) -> Option<Entry> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Remove the entry file `path` (one that cannot be read).
    pub fn remove_entry_file(&self, path: &Path) -> std::io::Result<()> {
        let _turn = StoreLock::new(self.dir.join("lock"))
            .exclusive()
            .map_err(std::io::Error::other)?;
        std::fs::remove_file(path)
    }

    /// Make again the blob `digest`, recorded as made of a deferred layer whose files are
    /// still here (a made blob that was lost or corrupt). True when the blob is back, with
    /// that digest; false when no entry made it or it came out different.
    pub fn remake(&self, store: &Store, digest: &Digest) -> Result<bool, DeferredError> {
        for (diff_id, entry) in self.all().into_iter().flatten() {
            let Some(made) = entry.made.iter().find(|m| m.digest == *digest) else {
                continue;
            };
            let Some(compression) = Compression::from_name(&made.compression) else {
                return Ok(false);
            };
            let want = Some((compression, made.level));
            return Ok(self
                .blob(store, &diff_id, None, want)?
                .is_some_and(|(_, got)| got.digest == *digest));
        }
        Ok(false)
    }

    /// Whether `layer` (a descriptor of a local manifest) names a deferred layer.
    pub fn is_deferred(&self, layer: &Descriptor) -> bool {
        MediaType::parse(layer.media_type().as_ref()) == MediaType::OciLayer
            && descriptor_digest(layer).is_ok_and(|d| self.path(&d).is_file())
    }

    /// Whether the deferred layer `layer` can still be made: a blob of it or one of its
    /// snapshots is here. False for a layer that is not deferred.
    pub fn available(&self, store: &Store, layer: &Descriptor) -> bool {
        let Ok(diff_id) = descriptor_digest(layer) else {
            return false;
        };
        let Some(entry) = self.get(&diff_id) else {
            return false;
        };
        let snapshots = Snapshots::new(store.root());
        store.blobs().contains(&diff_id)
            || entry.blobs().any(|d| store.blobs().contains(d))
            || entry.snapshots.iter().any(|c| {
                Digest::parse(&format!("sha256:{c}")).is_ok_and(|c| snapshots.path(&c).is_dir())
            })
    }

    /// Note a layer just committed: its files are the snapshot `chain` (none: its
    /// uncompressed blob is in the store), its tar was written with `opts` (whose
    /// compression is the one to make).
    pub fn committed(
        &self,
        diff_id: &Digest,
        chain: Option<&Digest>,
        opts: &LayerOptions,
    ) -> Result<(), DeferredError> {
        self.update(diff_id, |e| {
            if let Some(chain) = chain {
                let chain = chain.hex().to_string();
                e.snapshots.retain(|c| *c != chain);
                e.snapshots.push(chain);
            }
            e.source_date_epoch = opts.source_date_epoch;
            e.compression = opts.compression.to_string();
            e.level = opts.level;
        })
    }

    fn made(&self, diff_id: &Digest, made: Made) -> Result<(), DeferredError> {
        self.update(diff_id, |e| {
            e.made
                .retain(|m| (&m.compression, m.level) != (&made.compression, made.level));
            e.made.push(made);
        })
    }

    fn update(
        &self,
        diff_id: &Digest,
        change: impl FnOnce(&mut Entry),
    ) -> Result<(), DeferredError> {
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| DeferredError::Io { what, path, source }
        };
        crate::store::create_private_dir(&self.dir)?;
        let _turn = StoreLock::new(self.dir.join("lock")).exclusive()?;
        let mut entry = self.get(diff_id).unwrap_or_default();
        change(&mut entry);
        let path = self.path(diff_id);
        let tmp = self.dir.join(format!(
            "tmp-{}{}",
            diff_id.hex(),
            crate::store::unique_suffix()
        ));
        let bytes = serde_json::to_vec(&entry).expect("an entry serializes");
        std::fs::write(&tmp, bytes).map_err(io("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("replacing", &path))
    }

    /// The blob of the deferred layer `diff_id` in its build's compression (`want`: this
    /// one), made if no blob of it is here yet. `chain`: a snapshot known to hold it
    /// besides those of its entry. None when `diff_id` is not a deferred layer.
    fn blob(
        &self,
        store: &Store,
        diff_id: &Digest,
        chain: Option<&Digest>,
        want: Option<(Compression, Option<i32>)>,
    ) -> Result<Option<(Compression, DigestAndSize)>, DeferredError> {
        let Some(entry) = self.get(diff_id) else {
            return Ok(None);
        };
        let (compression, level) = want.unwrap_or((entry.compression(), entry.level));
        if compression == Compression::None {
            if !store.blobs().contains(diff_id) {
                let opts = self.options(&entry, compression, level);
                self.make(store, &entry, diff_id, chain, &opts)?;
            }
            let size = store.blobs().size(diff_id)?;
            let digest = diff_id.clone();
            return Ok(Some((compression, DigestAndSize { digest, size })));
        }
        if let Some(m) = entry.made_as(compression, level)
            && store.blobs().contains(&m.digest)
        {
            let made = DigestAndSize {
                digest: m.digest.clone(),
                size: m.size,
            };
            return Ok(Some((compression, made)));
        }
        let opts = self.options(&entry, compression, level);
        let made = self.make(store, &entry, diff_id, chain, &opts)?;
        self.made(
            diff_id,
            Made {
                compression: compression.to_string(),
                level,
                digest: made.digest.clone(),
                size: made.size,
            },
        )?;
        Ok(Some((compression, made)))
    }

    fn options(&self, entry: &Entry, compression: Compression, level: Option<i32>) -> LayerOptions {
        LayerOptions {
            compression,
            level,
            source_date_epoch: entry.source_date_epoch,
            ..LayerOptions::default()
        }
    }

    /// Make the blob: from the uncompressed blob when the store has it, else from a
    /// snapshot, re-archived and checked against the diff ID.
    fn make(
        &self,
        store: &Store,
        entry: &Entry,
        diff_id: &Digest,
        chain: Option<&Digest>,
        opts: &LayerOptions,
    ) -> Result<DigestAndSize, DeferredError> {
        let mut writer = store.blobs().writer()?;
        let (got, from) = produce(store, entry, diff_id, chain, opts, &mut writer)?;
        publish(writer, got, diff_id, &from)
    }

    /// Make the blob of the deferred layer `layer`, in the compression its build asked for,
    /// while `send` reads it (a push of a layer whose blob is not made yet: compressed
    /// once, straight into the upload, and kept). Returns what `send` returned for it, or
    /// None when there is nothing to make: not a deferred layer, made already, or
    /// uncompressed (its tar is sent as a blob like any other).
    pub fn make_while_sending<T>(
        &self,
        store: &Store,
        layer: &Descriptor,
        send: impl FnOnce(&mut dyn std::io::Read) -> Result<(T, DigestAndSize), String>,
    ) -> Result<Option<T>, DeferredError> {
        let diff_id = descriptor_digest(layer)?;
        if MediaType::parse(layer.media_type().as_ref()) != MediaType::OciLayer {
            return Ok(None);
        }
        let Some(entry) = self.get(&diff_id) else {
            return Ok(None);
        };
        let (compression, level) = (entry.compression(), entry.level);
        if compression == Compression::None
            || entry
                .made_as(compression, level)
                .is_some_and(|m| store.blobs().contains(&m.digest))
        {
            return Ok(None);
        }
        let opts = self.options(&entry, compression, level);
        let (mut pipe_out, mut pipe_in) = std::io::pipe().map_err(|source| DeferredError::Io {
            what: "making a pipe for",
            path: self.path(&diff_id),
            source,
        })?;
        let mut writer = store.blobs().writer()?;
        let (made, sent) = std::thread::scope(|s| {
            let producer = s.spawn(|| {
                let mut both = Tee {
                    file: &mut writer,
                    pipe: &mut pipe_in,
                };
                let made = produce(store, &entry, &diff_id, None, &opts, &mut both);
                drop(pipe_in);
                made
            });
            let sent = send(&mut pipe_out);
            // A failed send stops the producer at its next write.
            drop(pipe_out);
            (
                producer.join().expect("the layer's producer panicked"),
                sent,
            )
        });
        let sent = sent.map_err(|reason| DeferredError::Send {
            diff_id: diff_id.clone(),
            reason,
        })?;
        let (got, from) = made?;
        let (value, received) = sent;
        if (&received.digest, received.size) != (&got.digest, got.size) {
            return Err(DeferredError::Send {
                diff_id,
                reason: format!(
                    "{} bytes of {} were sent where {} bytes of {} were made",
                    received.size, received.digest, got.size, got.digest
                ),
            });
        }
        let made = publish(writer, got, &diff_id, &from)?;
        self.made(
            &diff_id,
            Made {
                compression: compression.to_string(),
                level,
                digest: made.digest,
                size: made.size,
            },
        )?;
        Ok(Some(value))
    }
}

/// Write the deferred layer `diff_id` to `out` with `opts`: its uncompressed blob
/// compressed when the store has it, else a snapshot that holds it (`chain` first, then
/// those of its entry) archived again. Returns the digests and where it came from.
fn produce(
    store: &Store,
    entry: &Entry,
    diff_id: &Digest,
    chain: Option<&Digest>,
    opts: &LayerOptions,
    out: &mut dyn std::io::Write,
) -> Result<(LayerDigests, PathBuf), DeferredError> {
    let fail = |from: &Path| {
        let from = from.display().to_string();
        move |source| DeferredError::Make {
            diff_id: diff_id.clone(),
            compression: opts.compression,
            from,
            source,
        }
    };
    if store.blobs().contains(diff_id) {
        let path = store.blobs().path(diff_id);
        let tar = store.blobs().open(diff_id)?;
        let got = compress_tar(std::io::BufReader::new(tar), opts, out).map_err(fail(&path))?;
        return Ok((got, path));
    }
    let snapshots = Snapshots::new(store.root());
    let listed = entry
        .snapshots
        .iter()
        .rev()
        .filter_map(|c| Digest::parse(&format!("sha256:{c}")).ok());
    for chain in chain.cloned().into_iter().chain(listed) {
        let dir = snapshots.path(&chain);
        if !dir.is_dir() {
            continue;
        }
        let changes = diff::overlay_changes(&dir).map_err(|source| DeferredError::Walk {
            path: dir.display().to_string(),
            source,
        })?;
        let got = write_layer(&dir, &changes, opts, out).map_err(fail(&dir))?;
        return Ok((got, dir));
    }
    // Its files gone: a blob made of it in another compression, decompressed.
    for made in entry
        .made
        .iter()
        .filter(|m| store.blobs().contains(&m.digest))
    {
        let path = store.blobs().path(&made.digest);
        let blob = std::io::BufReader::new(store.blobs().open(&made.digest)?);
        let tar: Box<dyn std::io::Read> = match Compression::from_name(&made.compression) {
            Some(Compression::Gzip) => Box::new(flate2::read::GzDecoder::new(blob)),
            Some(Compression::Zstd) => Box::new(
                zstd::stream::read::Decoder::with_buffer(blob).map_err(|source| {
                    DeferredError::Io {
                        what: "reading",
                        path: path.clone(),
                        source,
                    }
                })?,
            ),
            _ => continue,
        };
        let got = compress_tar(tar, opts, out).map_err(fail(&path))?;
        return Ok((got, path));
    }
    Err(DeferredError::Lost {
        diff_id: diff_id.clone(),
    })
}

/// Writes everything to a file and a pipe.
struct Tee<'a> {
    file: &'a mut dyn std::io::Write,
    pipe: &'a mut dyn std::io::Write,
}

impl std::io::Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write_all(buf)?;
        self.pipe.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        self.pipe.flush()
    }
}

/// Make the uncompressed blob of the deferred layer `layer` (its tar, digest = diff ID) if
/// the store lacks it: for what reads a layer's bytes rather than its files (the native
/// snapshotter's trees, an overlay snapshot to unpack for another chain). False when
/// `layer` is not a deferred layer.
pub fn ensure_tar(store: &Store, layer: &Descriptor) -> Result<bool, DeferredError> {
    let diff_id = descriptor_digest(layer)?;
    if MediaType::parse(layer.media_type().as_ref()) != MediaType::OciLayer {
        return Ok(false);
    }
    let layers = DeferredLayers::new(store.root());
    let none = Some((Compression::None, None));
    Ok(layers.blob(store, &diff_id, None, none)?.is_some())
}

/// Keep a made blob, once its tar proved to be the layer's.
fn publish(
    writer: crate::store::BlobWriter,
    got: LayerDigests,
    diff_id: &Digest,
    from: &Path,
) -> Result<DigestAndSize, DeferredError> {
    if got.diff_id != *diff_id {
        return Err(DeferredError::Changed {
            diff_id: diff_id.clone(),
            got: got.diff_id,
            from: from.display().to_string(),
        });
    }
    Ok(writer.commit(&got.digest)?)
}

/// `top` (a manifest or index of the store) as an eager commit would have stored it: each
/// deferred layer of each local image replaced by its blob, in the compression its build
/// asked for, made where needed. `top` itself when it names no deferred layer.
pub fn materialize(store: &Store, top: &Descriptor) -> Result<Descriptor, DeferredError> {
    let layers = DeferredLayers::new(store.root());
    if !layers.dir.is_dir() {
        return Ok(top.clone());
    }
    let digest = descriptor_digest(top)?;
    if !store.blobs().contains(&digest) {
        return Ok(top.clone());
    }
    let bytes = read(store, &digest, top.size())?;
    let changed = match parse_manifest_any(&bytes, Some(top.media_type().as_ref()))? {
        Manifest::Index(mut index) => {
            let mut children = index.manifests().clone();
            let mut changed = false;
            for child in &mut children {
                let made = materialize(store, child)?;
                changed |= made.digest() != child.digest();
                *child = made;
            }
            if !changed {
                return Ok(top.clone());
            }
            index.set_manifests(children);
            to_canonical_oci(&index)?
        }
        Manifest::Image(mut manifest) => {
            let config = read(
                store,
                &descriptor_digest(manifest.config())?,
                manifest.config().size(),
            )?;
            let config = crate::oci::config::ImageConfig::from_json(&config).map_err(|e| {
                DeferredError::Io {
                    what: "reading the config of",
                    path: store.blobs().path(&digest),
                    source: std::io::Error::other(e),
                }
            })?;
            let chains = chain_ids(&config.rootfs.diff_ids);
            let mut layers_out = manifest.layers().clone();
            let mut changed = false;
            for (i, layer) in layers_out.iter_mut().enumerate() {
                if MediaType::parse(layer.media_type().as_ref()) != MediaType::OciLayer {
                    continue;
                }
                let diff_id = descriptor_digest(layer)?;
                let Some((compression, blob)) =
                    layers.blob(store, &diff_id, chains.get(i), None)?
                else {
                    continue;
                };
                if compression == Compression::None {
                    continue;
                }
                *layer = descriptor(&MediaType::oci_layer(compression), &blob.digest, blob.size);
                changed = true;
            }
            if !changed {
                return Ok(top.clone());
            }
            manifest.set_layers(layers_out);
            to_canonical_oci(&manifest)?
        }
    };
    let stored = store.put_manifest(&changed, &MediaType::parse(top.media_type().as_ref()))?;
    let mut out = top.clone();
    out.set_digest(stored.digest().clone());
    out.set_size(stored.size());
    Ok(out)
}

/// The deferred layer `layer` (a descriptor of a local manifest, or of a build cache
/// record) as its blob in the compression its build asked for, made where needed; `layer`
/// itself when it is not deferred.
pub fn materialize_layer(store: &Store, layer: &Descriptor) -> Result<Descriptor, DeferredError> {
    if MediaType::parse(layer.media_type().as_ref()) != MediaType::OciLayer {
        return Ok(layer.clone());
    }
    let diff_id = descriptor_digest(layer)?;
    let layers = DeferredLayers::new(store.root());
    Ok(match layers.blob(store, &diff_id, None, None)? {
        Some((compression, blob)) if compression != Compression::None => {
            descriptor(&MediaType::oci_layer(compression), &blob.digest, blob.size)
        }
        _ => layer.clone(),
    })
}

fn read(store: &Store, digest: &Digest, size: u64) -> Result<Vec<u8>, DeferredError> {
    Ok(store.blobs().read_small(&DigestAndSize {
        digest: digest.clone(),
        size,
    })?)
}

#[cfg(test)]
mod tests;
