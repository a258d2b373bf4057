//! Loading images into the store from an OCI archive or a docker-archive (old and new
//! `docker save` shapes, and `podman save`). Every regular file of the tar is streamed
//! straight into the blob store, keyed by its content hash; nothing is extracted to disk.
//! Then `index.json` (OCI; digests kept as they are) or `manifest.json` (docker-archive; an
//! OCI manifest is written for each image) says what to tag. A file under `blobs/sha256/`
//! whose content does not hash to its name fails the load.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

use super::ExportError;
use crate::oci::digest::{Digest, DigestAndSize};
use crate::oci::manifest::{Descriptor, descriptor, image_manifest, to_canonical_oci};
use crate::oci::media_type::MediaType;
use crate::oci::reference::Reference;
use crate::store::{Store, StoreError};

/// Metadata files are read into memory up to this size.
const METADATA_LIMIT: u64 = 16 << 20;

/// A file of the archive, as stored.
#[derive(Clone, Debug)]
struct Stored {
    blob: DigestAndSize,
    /// The first bytes, to tell gzip and zstd from plain tar.
    magic: [u8; 4],
}

/// Load every image of the archive; returns the names tagged.
pub fn load(store: &Store, input: impl Read) -> Result<Vec<Reference>, ExportError> {
    let mut archive = tar::Archive::new(input);
    let mut files: BTreeMap<String, Stored> = BTreeMap::new();
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let mut metadata: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let read_err = |source| ExportError::Read { source };
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let path = clean(&entry.path().map_err(read_err)?.to_string_lossy());
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                // Old docker-archives link identical layers: `b/layer.tar -> ../a/layer.tar`.
                if let Some(target) = entry.link_name().map_err(read_err)? {
                    let base = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    let resolved = resolve(base, &target.to_string_lossy());
                    links.insert(path, resolved);
                }
                continue;
            }
            _ => continue,
        }
        if matches!(
            path.as_str(),
            "manifest.json" | "index.json" | "oci-layout" | "repositories"
        ) {
            let mut buf = Vec::new();
            (&mut entry)
                .take(METADATA_LIMIT + 1)
                .read_to_end(&mut buf)
                .map_err(read_err)?;
            if buf.len() as u64 > METADATA_LIMIT {
                return Err(ExportError::Entry {
                    path,
                    reason: format!("larger than {METADATA_LIMIT} bytes"),
                });
            }
            metadata.insert(path, buf);
            continue;
        }
        // A blob named by its digest is verified while it is stored, and not written again
        // when the store has it; the first bytes tell a compressed layer from a plain tar.
        let named: Option<Digest> = path
            .strip_prefix("blobs/sha256/")
            .and_then(|hex| format!("sha256:{hex}").parse().ok());
        let mut sniff = Sniff {
            inner: &mut entry,
            magic: [0; 4],
            seen: 0,
        };
        let blob = store
            .blobs()
            .write(&mut sniff, named.as_ref())
            .map_err(|e| match e {
                StoreError::BlobMismatch { source } => ExportError::Entry {
                    path: path.clone(),
                    reason: format!(
                        "its content is not the digest its name says: {}",
                        crate::diag::chain(&source)
                    ),
                },
                other => other.into(),
            })?;
        let magic = sniff.magic;
        files.insert(path, Stored { blob, magic });
    }
    for (link, target) in links {
        if let Some(s) = files.get(&target).cloned() {
            files.insert(link, s);
        }
    }

    if let (Some(index), true) = (
        metadata.get("index.json"),
        metadata.contains_key("oci-layout"),
    ) {
        if let Some(tags) = load_oci(store, index)? {
            return Ok(tags);
        }
    }
    match metadata.get("manifest.json") {
        Some(m) => load_docker(store, m, &files),
        None => Err(ExportError::UnknownFormat),
    }
}

/// `a/./b` and `./a` → `a/b`.
fn clean(p: &str) -> String {
    p.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// A link target relative to the link's directory, `..` resolved inside the archive.
fn resolve(base: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        base.split('/').filter(|s| !s.is_empty()).collect()
    };
    for seg in target.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

fn invalid(what: &str, reason: impl Into<String>) -> ExportError {
    ExportError::Invalid {
        what: what.into(),
        reason: reason.into(),
    }
}

/// Tag the entries of an OCI `index.json` that carry a name. `Ok(None)` when none does (a
/// docker-archive's manifest.json then names them).
fn load_oci(store: &Store, index: &[u8]) -> Result<Option<Vec<Reference>>, ExportError> {
    let v: Value =
        serde_json::from_slice(index).map_err(|e| invalid("index.json", e.to_string()))?;
    let mut tagged = Vec::new();
    for entry in v["manifests"].as_array().into_iter().flatten() {
        let annotations = &entry["annotations"];
        let name = annotations["io.containerd.image.name"]
            .as_str()
            .or_else(|| annotations["org.opencontainers.image.ref.name"].as_str());
        let Some(name) = name else { continue };
        let Ok(reference) = Reference::parse(name) else {
            // A bare tag (`latest`) names no repository: left to manifest.json, if any.
            continue;
        };
        let desc: Descriptor = serde_json::from_value(entry.clone())
            .map_err(|e| invalid("index.json", e.to_string()))?;
        let reference = reference.with_default_tag();
        store.tag(&reference, desc)?;
        tagged.push(reference);
    }
    Ok((!tagged.is_empty()).then_some(tagged))
}

/// docker-archive: write an OCI manifest for each `manifest.json` item and tag it.
fn load_docker(
    store: &Store,
    manifest: &[u8],
    files: &BTreeMap<String, Stored>,
) -> Result<Vec<Reference>, ExportError> {
    let items: Value =
        serde_json::from_slice(manifest).map_err(|e| invalid("manifest.json", e.to_string()))?;
    let file = |p: &str| {
        files.get(&clean(p)).ok_or_else(|| {
            invalid(
                "manifest.json",
                format!("it names {p}, which the archive lacks"),
            )
        })
    };
    let mut tagged = Vec::new();
    for item in items.as_array().into_iter().flatten() {
        let config_path = item["Config"]
            .as_str()
            .ok_or_else(|| invalid("manifest.json", "an item has no Config"))?;
        let config = file(config_path)?;
        let config_bytes = store.blobs().read_small(&config.blob)?;
        let config_json: Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(config_path, e.to_string()))?;
        let diff_ids: Vec<&str> = config_json["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut layers = Vec::new();
        for (i, l) in item["Layers"].as_array().into_iter().flatten().enumerate() {
            let path = l
                .as_str()
                .ok_or_else(|| invalid("manifest.json", "a layer is not a path"))?;
            let s = file(path)?;
            let media = match s.magic {
                [0x1f, 0x8b, _, _] => MediaType::OciLayerGzip,
                [0x28, 0xb5, 0x2f, 0xfd] => MediaType::OciLayerZstd,
                _ => {
                    // An uncompressed layer's digest is its diff ID: check it.
                    if diff_ids
                        .get(i)
                        .is_some_and(|d| *d != s.blob.digest.as_str())
                    {
                        return Err(invalid(
                            path,
                            format!(
                                "its digest {} is not the config's diff ID {}",
                                s.blob.digest, diff_ids[i]
                            ),
                        ));
                    }
                    MediaType::OciLayer
                }
            };
            layers.push(descriptor(&media, &s.blob.digest, s.blob.size));
        }
        if layers.len() != diff_ids.len() {
            return Err(invalid(
                config_path,
                format!("{} layers but {} diff IDs", layers.len(), diff_ids.len()),
            ));
        }
        let m = image_manifest(
            descriptor(&MediaType::OciConfig, &config.blob.digest, config.blob.size),
            layers,
        );
        let bytes = to_canonical_oci(&m)?;
        let desc = store.put_manifest(&bytes, &MediaType::OciManifest)?;
        for tag in item["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let reference = Reference::parse(tag)
                .map_err(|e| invalid("manifest.json", e.to_string()))?
                .with_default_tag();
            store.tag(&reference, desc.clone())?;
            tagged.push(reference);
        }
    }
    Ok(tagged)
}

/// A reader that keeps the first four bytes that pass through it.
struct Sniff<R> {
    inner: R,
    magic: [u8; 4],
    seen: usize,
}

impl<R: Read> Read for Sniff<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let take = n.min(4 - self.seen);
        self.magic[self.seen..self.seen + take].copy_from_slice(&buf[..take]);
        self.seen += take;
        Ok(n)
    }
}
