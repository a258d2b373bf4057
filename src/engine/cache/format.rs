//! The format of a build cache that travels (docs/cache.md): an OCI image index naming one
//! image manifest of artifact type [`ARTIFACT_TYPE`], whose config blob ([`CONFIG_TYPE`])
//! holds the step records and whose layers are the records' layer blobs, as ordinary
//! layers. Any OCI registry stores it, and its layers are the very blobs of the images built
//! with it, so the registry dedupes them. Writing the documents ([`documents`]) and
//! checking what an import reads ([`cache_manifest`], [`read_config`]) live here; moving
//! them is `export.rs`'s and `import.rs`'s.

use std::collections::BTreeMap;

use oci_spec::image::{Descriptor, ImageManifest};
use serde::{Deserialize, Serialize};

use super::key::{CacheKey, KEY_FORMAT};
use super::record::{LayerRecord, Record};
use crate::oci::digest::Digest;
use crate::oci::manifest::{
    Manifest, ManifestError, descriptor, descriptor_digest, image_index, image_manifest,
    parse_manifest_any, to_canonical_oci,
};
use crate::oci::media_type::{MediaType, OCI_INDEX, OCI_MANIFEST};

/// The artifact type of a cache manifest (on the manifest and on its index entry).
pub(crate) const ARTIFACT_TYPE: &str = "application/vnd.rbuild.cache.v1";
/// The media type of the records blob.
pub(crate) const CONFIG_TYPE: &str = "application/vnd.rbuild.cache.config.v1+json";
/// The version of the records blob's layout.
pub(crate) const FORMAT: u32 = 1;
/// The largest records blob an import reads (about 200,000 records).
pub(crate) const CONFIG_LIMIT: u64 = 64 << 20;

/// The records blob.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheConfig {
    format: u32,
    /// The key encoding the records' keys were made with (`key.rs`'s `KEY_FORMAT`).
    key_format: u32,
    records: Vec<WireRecord>,
    /// The contents of `RUN --mount=type=cache` directories (`mounts=`), one layer each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mounts: Vec<WireMount>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMount {
    /// The cache directory's identity: its id (or target), and the owner, mode and seed
    /// that make another directory of the same id.
    id: String,
    layer: WireLayer,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRecord {
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layer: Option<WireLayer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLayer {
    media_type: String,
    digest: Digest,
    size: u64,
    diff_id: Digest,
}

/// The documents of one export, each as the exact bytes to store.
#[derive(Debug)]
pub(crate) struct Documents {
    pub(crate) config: Vec<u8>,
    pub(crate) config_desc: Descriptor,
    pub(crate) manifest: Vec<u8>,
    pub(crate) manifest_desc: Descriptor,
    pub(crate) index: Vec<u8>,
    /// The layer blobs the manifest names, each once, in the order records first name them.
    pub(crate) layers: Vec<Descriptor>,
}

/// The records blob of `records` and `mounts`, and the layers they name (each once, in the
/// order first named).
fn records_blob(
    records: &BTreeMap<CacheKey, Record>,
    mounts: &BTreeMap<String, LayerRecord>,
) -> Result<(Vec<u8>, Vec<Descriptor>), ManifestError> {
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut name = |l: &LayerRecord| {
        let desc = descriptor(&MediaType::parse(&l.media_type), &l.digest, l.size);
        if !layers.contains(&desc) {
            layers.push(desc);
        }
        WireLayer {
            media_type: l.media_type.clone(),
            digest: l.digest.clone(),
            size: l.size,
            diff_id: l.diff_id.clone(),
        }
    };
    let mut wire = Vec::with_capacity(records.len());
    for (key, record) in records {
        wire.push(WireRecord {
            key: key.hex(),
            layer: record.layer.as_ref().map(&mut name),
            created: record.created.clone(),
        });
    }
    let mounts = mounts
        .iter()
        .map(|(id, l)| WireMount {
            id: id.clone(),
            layer: name(l),
        })
        .collect();
    let config = to_canonical_oci(&CacheConfig {
        format: FORMAT,
        key_format: KEY_FORMAT,
        records: wire,
        mounts,
    })?;
    Ok((config, layers))
}

/// The annotation of an image manifest that carries its own steps' records (`--cache-to
/// type=inline`): the records blob, as its JSON text.
pub(crate) const INLINE_ANNOTATION: &str = "dev.rbuild.cache.v1";

/// The value of [`INLINE_ANNOTATION`] for `records` (whose layers must be the image's).
pub(crate) fn inline_value(records: &BTreeMap<CacheKey, Record>) -> Result<String, ManifestError> {
    let (bytes, _) = records_blob(records, &BTreeMap::new())?;
    Ok(String::from_utf8(bytes).expect("canonical JSON is UTF-8"))
}

/// The records an image manifest carries inline, if it does.
pub(crate) fn inline_records(manifest: &ImageManifest) -> Option<Result<Records, FormatError>> {
    let value = manifest.annotations().as_ref()?.get(INLINE_ANNOTATION)?;
    Some(read_config(value.as_bytes(), manifest))
}

/// The documents of a cache holding `records`, and the cache mounts' contents `mounts`
/// (by identity). The same records and mounts make the same bytes.
pub(crate) fn documents(
    records: &BTreeMap<CacheKey, Record>,
    mounts: &BTreeMap<String, LayerRecord>,
) -> Result<Documents, ManifestError> {
    let (config, layers) = records_blob(records, mounts)?;
    let config_desc = descriptor(
        &MediaType::parse(CONFIG_TYPE),
        &Digest::sha256(&config),
        config.len() as u64,
    );
    let mut manifest = image_manifest(config_desc.clone(), layers.clone());
    manifest.set_artifact_type(Some(ARTIFACT_TYPE.into()));
    let manifest_bytes = to_canonical_oci(&manifest)?;
    let mut manifest_desc = descriptor(
        &MediaType::parse(OCI_MANIFEST),
        &Digest::sha256(&manifest_bytes),
        manifest_bytes.len() as u64,
    );
    manifest_desc.set_artifact_type(Some(ARTIFACT_TYPE.into()));
    let index = to_canonical_oci(&image_index(vec![manifest_desc.clone()]))?;
    Ok(Documents {
        config,
        config_desc,
        manifest: manifest_bytes,
        manifest_desc,
        index,
        layers,
    })
}

/// Why what an import read is not a cache it can use. Each is a warning, never a failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FormatError {
    #[error("it is not an rbuild cache ({0})")]
    Foreign(String),
    #[error("its records are in format {0}, which this rbuild does not read")]
    Format(u32),
    #[error(
        "its keys are of format {0}, and this rbuild makes format {KEY_FORMAT}: none can match"
    )]
    KeyFormat(u32),
    #[error("it is malformed: {0}")]
    Malformed(String),
}

/// The cache manifest's descriptor in what a cache ref names: the index entry of the cache's
/// artifact type (a manifest named directly is read as one).
pub(crate) fn cache_manifest(bytes: &[u8], media_type: &str) -> Result<Descriptor, FormatError> {
    let parsed = parse_manifest_any(bytes, Some(media_type).filter(|m| !m.is_empty()))
        .map_err(|e| FormatError::Malformed(crate::diag::chain(&e)))?;
    match parsed {
        Manifest::Index(index) => index
            .manifests()
            .iter()
            .find(|d| {
                d.artifact_type().as_ref().map(|t| t.to_string()).as_deref() == Some(ARTIFACT_TYPE)
            })
            .cloned()
            .ok_or_else(|| {
                FormatError::Foreign(format!(
                    "an index of {} manifest(s), none of artifact type {ARTIFACT_TYPE}",
                    index.manifests().len()
                ))
            }),
        Manifest::Image(_) => Ok(descriptor(
            &MediaType::parse(if media_type.is_empty() {
                OCI_MANIFEST
            } else {
                media_type
            }),
            &Digest::sha256(bytes),
            bytes.len() as u64,
        )),
    }
}

/// Check a cache manifest's bytes: an image manifest whose config is a records blob.
pub(crate) fn check_manifest(bytes: &[u8], media_type: &str) -> Result<ImageManifest, FormatError> {
    let parsed = parse_manifest_any(bytes, Some(media_type).filter(|m| !m.is_empty()))
        .map_err(|e| FormatError::Malformed(crate::diag::chain(&e)))?;
    let Manifest::Image(m) = parsed else {
        return Err(FormatError::Malformed(format!(
            "its manifest is an index, not a {OCI_MANIFEST}"
        )));
    };
    let config_type = m.config().media_type().to_string();
    if config_type != CONFIG_TYPE {
        return Err(FormatError::Foreign(format!(
            "an image whose config is {config_type}"
        )));
    }
    if m.config().size() > CONFIG_LIMIT {
        return Err(FormatError::Malformed(format!(
            "its records are {} bytes, more than the {CONFIG_LIMIT} an import reads",
            m.config().size()
        )));
    }
    Ok(m)
}

/// What an import takes from a records blob.
#[derive(Debug, Default)]
pub(crate) struct Records {
    pub(crate) records: Vec<(CacheKey, Record)>,
    /// Cache mounts' contents, by identity.
    pub(crate) mounts: Vec<(String, LayerRecord)>,
    /// Records left out: a key that is not one, or a layer the manifest does not name.
    pub(crate) skipped: usize,
}

/// Read the records blob of `manifest`. A record whose layer the manifest does not name
/// (with the same digest, size and media type) is skipped: the manifest is what the
/// registry keeps the blobs for.
pub(crate) fn read_config(bytes: &[u8], manifest: &ImageManifest) -> Result<Records, FormatError> {
    let config: CacheConfig = serde_json::from_slice(bytes)
        .map_err(|e| FormatError::Malformed(format!("its records: {e}")))?;
    if config.format != FORMAT {
        return Err(FormatError::Format(config.format));
    }
    if config.key_format != KEY_FORMAT {
        return Err(FormatError::KeyFormat(config.key_format));
    }
    let named = |l: &WireLayer| {
        manifest.layers().iter().any(|d| {
            descriptor_digest(d).is_ok_and(|g| g == l.digest)
                && d.size() == l.size
                && d.media_type().to_string() == l.media_type
        })
    };
    let layer_record = |l: WireLayer| LayerRecord {
        media_type: l.media_type,
        digest: l.digest,
        size: l.size,
        diff_id: l.diff_id,
    };
    let usable = |l: &WireLayer| {
        named(l)
            && MediaType::parse(&l.media_type)
                .layer_compression()
                .is_some()
    };
    let mut out = Records::default();
    for m in config.mounts {
        if usable(&m.layer) {
            out.mounts.push((m.id, layer_record(m.layer)));
        } else {
            out.skipped += 1;
        }
    }
    for r in config.records {
        let Some(key) = CacheKey::from_hex(&r.key) else {
            out.skipped += 1;
            continue;
        };
        if let Some(l) = &r.layer
            && !usable(l)
        {
            out.skipped += 1;
            continue;
        }
        out.records.push((
            key,
            Record {
                layer: r.layer.map(layer_record),
                created: r.created,
            },
        ));
    }
    Ok(out)
}

/// The index's media type, for writers.
pub(crate) const INDEX_TYPE: &str = OCI_INDEX;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cache::KeyEncoder;

    fn key(n: u64) -> CacheKey {
        KeyEncoder::new("test", None).u64("n", n).finish()
    }

    fn layer(n: u8) -> LayerRecord {
        LayerRecord {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: Digest::sha256(&[n]),
            size: 10 + u64::from(n),
            diff_id: Digest::sha256(&[n, n]),
        }
    }

    fn sample() -> BTreeMap<CacheKey, Record> {
        let mut records = BTreeMap::new();
        records.insert(
            key(1),
            Record {
                layer: Some(layer(1)),
                created: Some("2026-01-01T00:00:00Z".into()),
            },
        );
        // An empty step, and a second record of the same layer.
        records.insert(
            key(2),
            Record {
                layer: None,
                created: None,
            },
        );
        records.insert(
            key(3),
            Record {
                layer: Some(layer(1)),
                created: None,
            },
        );
        records
    }

    #[test]
    fn documents_round_trip_and_are_deterministic() {
        let records = sample();
        let docs = documents(&records, &BTreeMap::new()).unwrap();
        assert_eq!(docs.layers.len(), 1, "a layer is named once");
        assert_eq!(
            documents(&records, &BTreeMap::new()).unwrap().index,
            docs.index
        );
        let entry = cache_manifest(&docs.index, INDEX_TYPE).unwrap();
        assert_eq!(entry, docs.manifest_desc);
        let manifest = check_manifest(&docs.manifest, OCI_MANIFEST).unwrap();
        assert_eq!(
            manifest.artifact_type().as_ref().unwrap().to_string(),
            ARTIFACT_TYPE
        );
        let read = read_config(&docs.config, &manifest).unwrap();
        assert_eq!(read.skipped, 0);
        let back: BTreeMap<CacheKey, Record> = read.records.into_iter().collect();
        assert_eq!(back, records);
        assert!(read.mounts.is_empty());
        assert!(
            !String::from_utf8_lossy(&docs.config).contains("mounts"),
            "no mounts, no field"
        );

        // With a cache mount's contents: one more layer, read back by identity.
        let mounts: BTreeMap<String, LayerRecord> =
            [("pip\0uid=1000,gid=-,mode=-".to_string(), layer(7))].into();
        let docs = documents(&records, &mounts).unwrap();
        assert_eq!(docs.layers.len(), 2);
        let manifest = check_manifest(&docs.manifest, OCI_MANIFEST).unwrap();
        let read = read_config(&docs.config, &manifest).unwrap();
        assert_eq!(read.mounts.into_iter().collect::<BTreeMap<_, _>>(), mounts);
    }

    #[test]
    fn foreign_and_unknown_formats_are_told_apart() {
        // An ordinary image's manifest.
        let image = image_manifest(
            descriptor(&MediaType::OciConfig, &Digest::sha256(b"c"), 1),
            Vec::new(),
        );
        let bytes = to_canonical_oci(&image).unwrap();
        assert!(matches!(
            check_manifest(&bytes, OCI_MANIFEST),
            Err(FormatError::Foreign(_))
        ));
        // An index without a cache entry.
        let index = to_canonical_oci(&image_index(vec![descriptor(
            &MediaType::OciManifest,
            &Digest::sha256(&bytes),
            bytes.len() as u64,
        )]))
        .unwrap();
        assert!(matches!(
            cache_manifest(&index, INDEX_TYPE),
            Err(FormatError::Foreign(_))
        ));
        assert!(matches!(
            cache_manifest(b"{not json", INDEX_TYPE),
            Err(FormatError::Malformed(_))
        ));

        let docs = documents(&sample(), &BTreeMap::new()).unwrap();
        let manifest = check_manifest(&docs.manifest, OCI_MANIFEST).unwrap();
        let with = |format: u32, key_format: u32| {
            let mut v: serde_json::Value = serde_json::from_slice(&docs.config).unwrap();
            v["format"] = format.into();
            v["keyFormat"] = key_format.into();
            serde_json::to_vec(&v).unwrap()
        };
        assert!(matches!(
            read_config(&with(FORMAT, KEY_FORMAT + 1), &manifest),
            Err(FormatError::KeyFormat(_))
        ));
        assert!(matches!(
            read_config(&with(FORMAT + 1, KEY_FORMAT), &manifest),
            Err(FormatError::Format(_))
        ));
        assert!(matches!(
            read_config(&docs.config[..docs.config.len() / 2], &manifest),
            Err(FormatError::Malformed(_))
        ));
    }

    #[test]
    fn records_naming_layers_the_manifest_lacks_are_skipped() {
        let docs = documents(&sample(), &BTreeMap::new()).unwrap();
        let mut manifest = check_manifest(&docs.manifest, OCI_MANIFEST).unwrap();
        manifest.set_layers(Vec::new());
        let read = read_config(&docs.config, &manifest).unwrap();
        assert_eq!(read.skipped, 2, "both records of the unnamed layer");
        assert_eq!(read.records.len(), 1);
        assert_eq!(read.records[0].1.layer, None);

        let mut v: serde_json::Value = serde_json::from_slice(&docs.config).unwrap();
        v["records"][0]["key"] = "nothex".into();
        let manifest = check_manifest(&docs.manifest, OCI_MANIFEST).unwrap();
        let read = read_config(&serde_json::to_vec(&v).unwrap(), &manifest).unwrap();
        assert_eq!((read.records.len(), read.skipped), (2, 1));
    }
}
