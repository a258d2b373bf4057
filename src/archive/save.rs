//! Saving images from the store: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`), as a directory or a tar, and `docker-archive`, which is the same OCI
//! layout plus Docker's `manifest.json` and `repositories` (the shape `docker save` writes
//! since Docker 25), so `docker load`, `podman load` and OCI tools all read it. Layers are
//! stored as they are in the store (compressed); loaders decompress them.
//!
//! An index whose platform manifests are not all in the store (a pulled single-platform
//! image) is saved as the requested platform's manifest; docker-archive always holds
//! single-platform images.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::sink::{DirSink, Sink, TarSink};
use super::{ExportError, Format};
use crate::oci::canonical::to_canonical_vec;
use crate::oci::digest::{Digest, DigestAndSize};
use crate::oci::manifest::{Descriptor, Manifest, descriptor_digest, parse_manifest_any};
use crate::oci::platform::Platform;
use crate::oci::reference::Reference;
use crate::store::Store;

/// One image as saved: the document the index names, its name, and (docker-archive) its
/// config and layers.
struct Saved {
    reference: Option<Reference>,
    descriptor: Descriptor,
    platform: Option<Platform>,
    config: Option<Digest>,
    layers: Vec<Digest>,
}

/// Where the output goes.
pub enum Output<'a> {
    Dir(&'a Path),
    Stream(Box<dyn Write + 'a>),
}

/// Save `images` in `format`. Without a `platform`, a multi-platform image whose manifests
/// are all local is saved whole (OCI formats); otherwise the manifest for `platform` (the
/// host's by default) is saved.
pub fn save(
    store: &Store,
    images: &[Reference],
    platform: Option<&Platform>,
    format: Format,
    out: Output<'_>,
) -> Result<(), ExportError> {
    let mut named = Vec::new();
    for reference in images {
        let top = store
            .resolve(reference)?
            .ok_or_else(|| ExportError::NotFound {
                image: reference.to_string(),
            })?;
        named.push((Some(reference.clone()), top));
    }
    save_descriptors(store, &named, platform, format, out)
}

/// [`save`] for images given by descriptor, each with the name to record for it, if any
/// (a build's result need not be tagged; an unnamed image gets no `RepoTags` or ref name).
pub(crate) fn save_descriptors(
    store: &Store,
    images: &[(Option<Reference>, Descriptor)],
    platform: Option<&Platform>,
    format: Format,
    out: Output<'_>,
) -> Result<(), ExportError> {
    let host = Platform::host();
    let single = platform.unwrap_or(&host);
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut saved = Vec::new();
    for (reference, top) in images {
        // Layers built here are saved as blobs, made now if they were not yet.
        let top = crate::layer::deferred::materialize(store, top).map_err(Box::new)?;
        let top_digest = descriptor_digest(&top)?;
        let top_bytes = read(store, &top_digest)?;
        let whole_index = match parse_manifest_any(&top_bytes, Some(top.media_type().as_ref()))? {
            Manifest::Image(_) => None,
            Manifest::Index(index) => {
                let local = index.manifests().iter().all(|d| {
                    descriptor_digest(d)
                        .map(|g| store.blobs().contains(&g))
                        .unwrap_or(false)
                });
                (local && platform.is_none() && format != Format::DockerArchive).then_some(index)
            }
        };
        match whole_index {
            Some(index) => {
                blobs.insert(top_digest, top.size());
                for child in index.manifests() {
                    add_image(store, child, &mut blobs)?;
                }
                saved.push(Saved {
                    reference: reference.clone(),
                    descriptor: top,
                    platform: None,
                    config: None,
                    layers: Vec::new(),
                });
            }
            None => {
                let img = store.image_at(&top, single)?;
                let (config, layers) = add_image(store, &img.descriptor, &mut blobs)?;
                saved.push(Saved {
                    reference: reference.clone(),
                    platform: Some(img.config.platform()),
                    descriptor: img.descriptor,
                    config: Some(config),
                    layers,
                });
            }
        }
    }

    let mut sink: Box<dyn Sink + '_> = match out {
        Output::Dir(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| write_err(dir.display(), e))?;
            Box::new(DirSink {
                root: dir.to_path_buf(),
            })
        }
        Output::Stream(w) => Box::new(TarSink {
            builder: tar::Builder::new(w),
        }),
    };
    fn w(path: &str) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
        move |e| write_err(path, e)
    }
    sink.dir("blobs").map_err(w("blobs"))?;
    sink.dir("blobs/sha256").map_err(w("blobs/sha256"))?;
    for (digest, size) in &blobs {
        let path = format!("blobs/sha256/{}", digest.hex());
        let mut f = store.blobs().open(digest)?;
        sink.file(&path, *size, &mut f).map_err(w(&path))?;
    }
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    sink.file("oci-layout", layout.len() as u64, &mut &layout[..])
        .map_err(w("oci-layout"))?;
    let index = index_json(&saved)?;
    sink.file("index.json", index.len() as u64, &mut &index[..])
        .map_err(w("index.json"))?;
    if format == Format::DockerArchive {
        let (manifest, repositories) = docker_json(&saved)?;
        sink.file("manifest.json", manifest.len() as u64, &mut &manifest[..])
            .map_err(w("manifest.json"))?;
        sink.file(
            "repositories",
            repositories.len() as u64,
            &mut &repositories[..],
        )
        .map_err(w("repositories"))?;
    }
    sink.finish().map_err(w("the output"))
}

fn write_err(path: impl std::fmt::Display, source: std::io::Error) -> ExportError {
    ExportError::Write {
        path: path.to_string(),
        source,
    }
}

fn read(store: &Store, digest: &Digest) -> Result<Vec<u8>, ExportError> {
    let size = store.blobs().size(digest)?;
    Ok(store.blobs().read_small(&DigestAndSize {
        digest: digest.clone(),
        size,
    })?)
}

/// Add an image manifest, its config and its layers to `blobs`; returns config and layers.
fn add_image(
    store: &Store,
    desc: &Descriptor,
    blobs: &mut BTreeMap<Digest, u64>,
) -> Result<(Digest, Vec<Digest>), ExportError> {
    let digest = descriptor_digest(desc)?;
    let bytes = read(store, &digest)?;
    blobs.insert(digest, desc.size());
    let Manifest::Image(m) = parse_manifest_any(&bytes, Some(desc.media_type().as_ref()))? else {
        return Err(ExportError::Invalid {
            what: "a platform manifest".into(),
            reason: "it is an index inside an index".into(),
        });
    };
    let config = descriptor_digest(m.config())?;
    blobs.insert(config.clone(), m.config().size());
    let mut layers = Vec::new();
    for l in m.layers() {
        let d = descriptor_digest(l)?;
        if !store.blobs().contains(&d) {
            // Non-distributable layers that were never fetched cannot be saved.
            return Err(store.blobs().open(&d).map(|_| ()).unwrap_err().into());
        }
        blobs.insert(d.clone(), l.size());
        layers.push(d);
    }
    Ok((config, layers))
}

/// `index.json`: one descriptor per saved image, named the way containerd (full name) and
/// the OCI layout convention (`org.opencontainers.image.ref.name`, the tag) name them.
fn index_json(saved: &[Saved]) -> Result<Vec<u8>, ExportError> {
    let manifests: Vec<Value> = saved
        .iter()
        .map(|s| {
            let mut d = json!({
                "mediaType": s.descriptor.media_type().to_string(),
                "digest": s.descriptor.digest().to_string(),
                "size": s.descriptor.size(),
            });
            if let Some(r) = &s.reference {
                d["annotations"] = json!({
                    "io.containerd.image.name": r.to_string(),
                    "org.opencontainers.image.ref.name": r.tag_or_latest(),
                });
            }
            if let Some(p) = &s.platform {
                d["platform"] = serde_json::to_value(p).unwrap_or(Value::Null);
            }
            d
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    to_canonical_vec(&index).map_err(|e| ExportError::Invalid {
        what: "index.json".into(),
        reason: crate::diag::chain(&e),
    })
}

/// Docker's `manifest.json` and the legacy `repositories` (name → tag → config hex).
fn docker_json(saved: &[Saved]) -> Result<(Vec<u8>, Vec<u8>), ExportError> {
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for s in saved {
        let config = s
            .config
            .as_ref()
            .expect("docker-archive images are single-platform");
        let tags: Vec<String> = s.reference.iter().map(Reference::familiar).collect();
        manifest.push(json!({
            "Config": format!("blobs/sha256/{}", config.hex()),
            "RepoTags": tags,
            "Layers": s.layers.iter().map(|l| format!("blobs/sha256/{}", l.hex())).collect::<Vec<_>>(),
        }));
        if let Some(r) = &s.reference
            && seen.insert(r.to_string())
        {
            repositories
                .entry(r.familiar_name())
                .or_default()
                .insert(r.tag_or_latest().to_string(), config.hex().to_string());
        }
    }
    let enc = |v: &Value| {
        to_canonical_vec(v).map_err(|e| ExportError::Invalid {
            what: "manifest.json".into(),
            reason: crate::diag::chain(&e),
        })
    };
    Ok((
        enc(&Value::Array(manifest))?,
        enc(&serde_json::to_value(repositories).unwrap_or_default())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixture::{self, TestImage};

    fn saved_blobs(store: &Store, platform: Option<&Platform>) -> Vec<String> {
        let out = tempfile::tempdir().unwrap();
        let multi = Reference::parse("multi").unwrap();
        save(
            store,
            &[multi],
            platform,
            Format::OciDir,
            Output::Dir(out.path()),
        )
        .unwrap();
        let mut names: Vec<String> = std::fs::read_dir(out.path().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn hexes(images: &[&TestImage]) -> Vec<String> {
        let mut v: Vec<String> = images
            .iter()
            .flat_map(|i| i.digests())
            .map(|d| d.hex().to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn platform_narrows_a_multi_platform_save() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut sink = &store;
        let amd64 = fixture::image(&mut sink, "linux/amd64", "amd64");
        let arm64 = fixture::image(&mut sink, "linux/arm64/v8", "arm64");
        let index = fixture::index(&mut sink, &[&amd64.manifest, &arm64.manifest]);
        let index_hex = descriptor_digest(&index).unwrap().hex().to_string();
        store
            .tag(&Reference::parse("multi").unwrap(), index)
            .unwrap();

        let mut whole = hexes(&[&amd64, &arm64]);
        whole.push(index_hex);
        whole.sort();
        assert_eq!(
            saved_blobs(&store, None),
            whole,
            "no --platform: the whole index"
        );
        let arm = Platform::parse("linux/arm64").unwrap();
        assert_eq!(
            saved_blobs(&store, Some(&arm)),
            hexes(&[&arm64]),
            "--platform linux/arm64: that manifest only"
        );
    }
}
