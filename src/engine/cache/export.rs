//! `--cache-to`: write records as a cache (docs/cache.md) to a registry or a local OCI
//! layout. Blobs go first — layers (each HEADed, mounted from the repository an imported
//! cache named, or uploaded), then the records blob — then the manifest by digest, and the
//! index last, by tag: a reader sees the previous cache or this one, never a part of one,
//! and of two writers at once the last one wins.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::Descriptor;

use super::format::{self, Documents, INDEX_TYPE};
use super::import::registry_of;
use super::key::CacheKey;
use super::record::{LayerRecord, Record};
use super::spec::{CacheSpec, Location};
use crate::engine::layout::blob_path;
use crate::engine::lazy::LazyBlobs;
use crate::oci::digest::Digest;
use crate::oci::manifest::{
    Manifest, descriptor_digest, image_index, parse_manifest_any, to_canonical_oci,
};
use crate::oci::media_type::OCI_MANIFEST;
use crate::oci::reference::Reference;
use crate::registry::client::RegistryError;
use crate::store::{REF_NAME, Store, StoreLock};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExportError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Registry(Box<RegistryError>),
    #[error("writing {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the cache's documents")]
    Manifest(#[from] crate::oci::manifest::ManifestError),
    #[error("locking the cache directory")]
    Lock(#[from] crate::store::StoreError),
    #[error("{0}")]
    Fetch(String),
    #[error("making the blob of a layer built here")]
    Layer(#[from] crate::layer::deferred::DeferredError),
}

impl From<RegistryError> for ExportError {
    fn from(e: RegistryError) -> ExportError {
        ExportError::Registry(Box::new(e))
    }
}

/// What an export wrote.
#[derive(Debug)]
pub(crate) struct Exported {
    pub(crate) records: usize,
    pub(crate) layers: usize,
    /// The cache manifest's digest.
    pub(crate) digest: Digest,
}

/// Write `records` and the cache mounts' contents `mounts` where `spec` says. A layer the store lacks is taken from where the
/// build found it (`lazy`).
pub(crate) fn export(
    spec: &CacheSpec,
    records: &BTreeMap<CacheKey, Record>,
    mounts: &BTreeMap<String, LayerRecord>,
    store: &Store,
    lazy: &LazyBlobs,
) -> Result<Exported, ExportError> {
    // Layers built here leave as blobs, in the compression their build asked for.
    let records = records
        .iter()
        .map(|(k, r)| Ok((*k, r.materialized(store)?)))
        .collect::<Result<BTreeMap<_, _>, ExportError>>()?;
    let docs = format::documents(&records, mounts)?;
    match &spec.location {
        Location::Registry(reference) => to_registry(reference, &docs, store, lazy)?,
        Location::Local(dir) => to_layout(dir, &spec.tag, &docs, store, lazy)?,
        Location::Inline => unreachable!("inline caches are written into the image"),
    }
    Ok(Exported {
        records: records.len(),
        layers: docs.layers.len(),
        digest: descriptor_digest(&docs.manifest_desc)?,
    })
}

/// Open a layer of the store, fetching it first if only its source has it.
fn open_layer(
    store: &Store,
    lazy: &LazyBlobs,
    layer: &Descriptor,
    digest: &Digest,
) -> std::io::Result<std::fs::File> {
    lazy.ensure(store, layer)
        .map_err(|e| std::io::Error::other(crate::diag::chain(&e)))?;
    store
        .blobs()
        .open(digest)
        .map_err(|e| std::io::Error::other(crate::diag::chain(&e)))
}

fn to_registry(
    reference: &Reference,
    docs: &Documents,
    store: &Store,
    lazy: &LazyBlobs,
) -> Result<(), ExportError> {
    let (dest, client) = registry_of(reference).map_err(ExportError::Config)?;
    let (origin, repo) = (&dest.origin, dest.repository.as_str());
    for layer in &docs.layers {
        let digest = descriptor_digest(layer)?;
        let mount = lazy.mount_from(&digest, origin);
        let mut open = || -> std::io::Result<Box<dyn Read>> {
            Ok(Box::new(open_layer(store, lazy, layer, &digest)?))
        };
        client.push_blob(
            origin,
            repo,
            &digest,
            layer.size(),
            mount.as_deref(),
            &mut open,
        )?;
    }
    let config_digest = descriptor_digest(&docs.config_desc)?;
    let mut open_config =
        || -> std::io::Result<Box<dyn Read>> { Ok(Box::new(Cursor::new(docs.config.clone()))) };
    client.push_blob(
        origin,
        repo,
        &config_digest,
        docs.config.len() as u64,
        None,
        &mut open_config,
    )?;
    let manifest_digest = descriptor_digest(&docs.manifest_desc)?;
    client.put_manifest(
        origin,
        repo,
        manifest_digest.as_str(),
        OCI_MANIFEST,
        &docs.manifest,
    )?;
    client.put_manifest(
        origin,
        repo,
        reference.manifest_reference(),
        INDEX_TYPE,
        &docs.index,
    )?;
    Ok(())
}

fn to_layout(
    dir: &Path,
    tag: &str,
    docs: &Documents,
    store: &Store,
    lazy: &LazyBlobs,
) -> Result<(), ExportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
    // Writers of one directory take turns on index.json; readers need no lock (it is
    // replaced whole).
    let _lock = StoreLock::new(dir.join(".rbuild-cache.lock")).exclusive()?;
    let layout = dir.join(crate::store::OCI_LAYOUT_FILE);
    if !layout.exists() {
        let text = format!(
            "{{\"imageLayoutVersion\":\"{}\"}}",
            crate::oci::manifest::OCI_LAYOUT_VERSION
        );
        write_atomic(&layout, &mut Cursor::new(text)).map_err(io(&layout))?;
    }
    for layer in &docs.layers {
        let digest = descriptor_digest(layer)?;
        let path = blob_path(dir, &digest);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == layer.size()) {
            continue;
        }
        let mut file = open_layer(store, lazy, layer, &digest)
            .map_err(|e| ExportError::Fetch(format!("layer {digest}: {e}")))?;
        write_atomic(&path, &mut file).map_err(io(&path))?;
    }
    for (desc, bytes) in [
        (&docs.config_desc, &docs.config),
        (&docs.manifest_desc, &docs.manifest),
    ] {
        let path = blob_path(dir, &descriptor_digest(desc)?);
        write_atomic(&path, &mut Cursor::new(bytes)).map_err(io(&path))?;
    }
    let index_digest = Digest::sha256(&docs.index);
    let path = blob_path(dir, &index_digest);
    write_atomic(&path, &mut Cursor::new(&docs.index)).map_err(io(&path))?;

    // index.json: this tag's entry replaced, every other entry kept.
    let index_json = dir.join("index.json");
    let mut entries: Vec<Descriptor> = match std::fs::read(&index_json) {
        Ok(bytes) => match parse_manifest_any(&bytes, None) {
            Ok(Manifest::Index(index)) => index.manifests().clone(),
            _ => Vec::new(),
        },
        Err(_) => Vec::new(),
    };
    entries.retain(|d| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .is_none_or(|n| n != tag)
    });
    let mut entry = crate::oci::manifest::descriptor(
        &crate::oci::media_type::MediaType::OciIndex,
        &index_digest,
        docs.index.len() as u64,
    );
    entry.set_annotations(Some([(REF_NAME.to_string(), tag.to_string())].into()));
    entries.push(entry);
    let bytes = to_canonical_oci(&image_index(entries))?;
    write_atomic(&index_json, &mut Cursor::new(bytes)).map_err(io(&index_json))
}

/// Write `content` to `path` through a temporary file beside it and a rename.
fn write_atomic(path: &Path, content: &mut dyn Read) -> std::io::Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        crate::store::unique_suffix()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        std::io::copy(content, &mut file)?;
        file.flush()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
