//! `--cache-from`: read a cache (docs/cache.md) from a registry or a local OCI layout. Only
//! the documents are read — the index, the manifest, the records blob — and each layer is
//! offered to the build's [`LazyBlobs`] with where it is: a step matched from the cache
//! downloads nothing. Any failure is the caller's warning, never a failed build.

use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageManifest};

use super::format::{self, FormatError, Records};
use super::spec::{CacheSpec, Location};
use crate::engine::layout::blob_path;
use crate::engine::lazy::{BlobSource, LazyBlobs};
use crate::oci::digest::Digest;
use crate::oci::manifest::{Manifest, descriptor_digest, parse_manifest_any};
use crate::oci::reference::Reference;
use crate::registry::client::{Client, MANIFEST_LIMIT, Origin, RegistryError};
use crate::registry::credentials::CredentialStore;
use crate::registry::pull::Source;
use crate::registry::registries_conf::RegistriesConf;
use crate::store::REF_NAME;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Registry(Box<RegistryError>),
    #[error("{0}")]
    Config(String),
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} has no cache tagged {tag:?}", dir.display())]
    NoTag { dir: PathBuf, tag: String },
}

impl From<RegistryError> for ImportError {
    fn from(e: RegistryError) -> ImportError {
        ImportError::Registry(Box::new(e))
    }
}

impl ImportError {
    /// Whether the cache is simply not there yet (the first build that exports it).
    pub(crate) fn is_missing(&self) -> bool {
        match self {
            ImportError::Registry(e) => e.status() == Some(404),
            ImportError::NoTag { .. } => true,
            ImportError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// Read the cache `spec` names. Its layers are offered to `lazy`.
pub(crate) fn import(spec: &CacheSpec, lazy: &LazyBlobs) -> Result<Records, ImportError> {
    match &spec.location {
        Location::Registry(reference) => from_registry(reference, lazy),
        Location::Local(dir) => from_layout(dir, &spec.tag, lazy),
        Location::Inline => unreachable!("type=inline is refused for --cache-from"),
    }
}

/// Where a cache ref lives: the registry it names (mirrors are for pulling images, not
/// caches), the repository, and a client with the user's credentials.
pub(crate) fn registry_of(reference: &Reference) -> Result<(Source, Client), String> {
    let conf = RegistriesConf::load_default().map_err(|e| crate::diag::chain(&e))?;
    let endpoint = conf
        .push_endpoint(reference)
        .map_err(|e| crate::diag::chain(&e))?;
    let source = Source {
        origin: Origin::new(endpoint.api_host(), endpoint.insecure()),
        repository: endpoint.repository().to_string(),
    };
    Ok((source, Client::new(Box::new(CredentialStore::from_env()))))
}

fn from_registry(reference: &Reference, lazy: &LazyBlobs) -> Result<Records, ImportError> {
    let (source, client) = registry_of(reference).map_err(ImportError::Config)?;
    let (origin, repo) = (&source.origin, source.repository.as_str());
    let top = client.get_manifest(origin, repo, reference.manifest_reference())?;
    // Not a cache artifact: an image (or index of images) may carry its records inline.
    let foreign = |what: String| {
        inline(&client, &source, &top.bytes, &top.media_type, lazy)
            .unwrap_or(Err(FormatError::Foreign(what).into()))
    };
    let entry = match format::cache_manifest(&top.bytes, &top.media_type) {
        Err(FormatError::Foreign(what)) => return foreign(what),
        other => other?,
    };
    let digest = descriptor_digest(&entry).map_err(malformed)?;
    let (bytes, media_type) = if digest == top.digest {
        (top.bytes.clone(), top.media_type.clone())
    } else {
        let m = client.get_manifest(origin, repo, digest.as_str())?;
        (m.bytes, entry.media_type().to_string())
    };
    let manifest = match format::check_manifest(&bytes, &media_type) {
        Err(FormatError::Foreign(what)) => return foreign(what),
        other => other?,
    };
    let config_digest = descriptor_digest(manifest.config()).map_err(malformed)?;
    let mut config = Vec::new();
    client.get_blob(
        origin,
        repo,
        &config_digest,
        Some(manifest.config().size()),
        &mut config,
    )?;
    let records = format::read_config(&config, &manifest)?;
    for layer in manifest.layers() {
        lazy.offer(
            &descriptor_digest(layer).map_err(malformed)?,
            BlobSource::Registry(source.clone()),
        );
    }
    Ok(records)
}

/// The records an image (or each image of an index) carries inline
/// (`--cache-to type=inline`); none when it carries none.
fn inline(
    client: &Client,
    source: &Source,
    bytes: &[u8],
    media_type: &str,
    lazy: &LazyBlobs,
) -> Option<Result<Records, ImportError>> {
    let manifests: Vec<ImageManifest> =
        match parse_manifest_any(bytes, Some(media_type).filter(|m| !m.is_empty())).ok()? {
            Manifest::Image(m) => vec![m],
            Manifest::Index(index) => index
                .manifests()
                .iter()
                .filter_map(|d| {
                    let digest = descriptor_digest(d).ok()?;
                    let m = client
                        .get_manifest(&source.origin, &source.repository, digest.as_str())
                        .ok()?;
                    match parse_manifest_any(&m.bytes, Some(d.media_type().as_ref())).ok()? {
                        Manifest::Image(m) => Some(m),
                        Manifest::Index(_) => None,
                    }
                })
                .collect(),
        };
    let mut out = Records::default();
    let mut found = false;
    for m in &manifests {
        let Some(read) = format::inline_records(m) else {
            continue;
        };
        found = true;
        match read {
            Ok(r) => {
                out.records.extend(r.records);
                out.skipped += r.skipped;
            }
            Err(e) => return Some(Err(e.into())),
        }
        for layer in m.layers() {
            if let Ok(d) = descriptor_digest(layer) {
                lazy.offer(&d, BlobSource::Registry(source.clone()));
            }
        }
    }
    found.then_some(Ok(out))
}

fn from_layout(dir: &Path, tag: &str, lazy: &LazyBlobs) -> Result<Records, ImportError> {
    let index_path = dir.join("index.json");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ImportError::Io { path, source }
    };
    let bytes = read_limited(&index_path, MANIFEST_LIMIT).map_err(io(&index_path))?;
    let Manifest::Index(index) = parse_manifest_any(&bytes, None).map_err(malformed)? else {
        return Err(FormatError::Malformed("index.json is not an image index".into()).into());
    };
    let top = index
        .manifests()
        .iter()
        .find(|d| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .is_some_and(|n| n == tag)
        })
        .ok_or_else(|| ImportError::NoTag {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
        })?;
    let top_bytes = layout_blob(dir, top, MANIFEST_LIMIT)?;
    let entry = format::cache_manifest(&top_bytes, top.media_type().as_ref())?;
    let manifest_bytes = if descriptor_digest(&entry).map_err(malformed)?
        == descriptor_digest(top).map_err(malformed)?
    {
        top_bytes
    } else {
        layout_blob(dir, &entry, MANIFEST_LIMIT)?
    };
    let manifest = format::check_manifest(&manifest_bytes, entry.media_type().as_ref())?;
    let config = layout_blob(dir, manifest.config(), format::CONFIG_LIMIT)?;
    let mut records = format::read_config(&config, &manifest)?;
    // A layer the directory lacks (a cache copied in part) takes its records out: they
    // could not be unpacked when a later step needs them.
    let mut present = Vec::new();
    for layer in manifest.layers() {
        let digest = descriptor_digest(layer).map_err(malformed)?;
        let path = blob_path(dir, &digest);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == layer.size()) {
            lazy.offer(&digest, BlobSource::Layout(dir.to_path_buf()));
            present.push(digest);
        }
    }
    let before = records.records.len() + records.mounts.len();
    records
        .records
        .retain(|(_, r)| r.layer.as_ref().is_none_or(|l| present.contains(&l.digest)));
    records.mounts.retain(|(_, l)| present.contains(&l.digest));
    records.skipped += before - records.records.len() - records.mounts.len();
    Ok(records)
}

/// A small blob of the layout `dir`, checked against its descriptor.
fn layout_blob(dir: &Path, desc: &Descriptor, limit: u64) -> Result<Vec<u8>, ImportError> {
    let digest = descriptor_digest(desc).map_err(malformed)?;
    let path = blob_path(dir, &digest);
    if desc.size() > limit {
        return Err(FormatError::Malformed(format!(
            "{} is {} bytes, more than the {limit} read",
            path.display(),
            desc.size()
        ))
        .into());
    }
    let bytes = read_limited(&path, limit).map_err(|source| ImportError::Io {
        path: path.clone(),
        source,
    })?;
    let actual = Digest::sha256(&bytes);
    if actual != digest || bytes.len() as u64 != desc.size() {
        return Err(FormatError::Malformed(format!(
            "{} does not hold what its descriptor says (digest {actual}, {} bytes)",
            path.display(),
            bytes.len()
        ))
        .into());
    }
    Ok(bytes)
}

fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(std::io::Error::other(format!("more than {limit} bytes")));
    }
    Ok(out)
}

fn malformed(e: crate::oci::manifest::ManifestError) -> ImportError {
    FormatError::Malformed(crate::diag::chain(&e)).into()
}
