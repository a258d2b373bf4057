//! Push: an image from the store to a registry repository. Blobs first (each HEADed, mounted
//! or uploaded by the client), then the manifests with their exact bytes, the tagged one
//! last, so the registry never names content it lacks. An index whose platform manifests
//! are not all in the store (a pulled single-platform image) is pushed as the platform
//! manifest alone, as `docker push` does; the event says so.

use std::io::Read;

use super::client::{Client, Origin, PushedBlob, RegistryError};
use crate::oci::digest::Digest;
use crate::oci::manifest::{
    Descriptor, Manifest, ManifestError, descriptor_digest, parse_manifest_any,
};
use crate::oci::platform::Platform;
use crate::oci::reference::Reference;
use crate::store::{Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Blob {
        digest: Digest,
        size: u64,
        how: PushedBlob,
    },
    /// The index's manifests are not all local: only this platform's manifest is pushed.
    SinglePlatform {
        platform: String,
    },
    Manifest {
        digest: Digest,
        reference: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("pushing {image}: not in the store (pull or build it first)")]
    NotFound { image: String },
    #[error("pushing {image}")]
    Store {
        image: String,
        source: Box<StoreError>,
    },
    #[error("pushing {image}")]
    Manifest {
        image: String,
        source: Box<ManifestError>,
    },
    #[error("pushing {image}")]
    Layer {
        image: String,
        source: Box<crate::layer::deferred::DeferredError>,
    },
    #[error("pushing {image} to {host}")]
    Registry {
        image: String,
        host: String,
        source: Box<RegistryError>,
    },
}

/// Where an image is pushed: a repository on a registry, and the tag (or digest) it gets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Destination<'a> {
    pub(crate) origin: &'a Origin,
    pub(crate) repository: &'a str,
    pub(crate) tag: &'a str,
}

/// A manifest or index as stored: its exact bytes and media type.
struct Document {
    bytes: Vec<u8>,
    media_type: String,
}

/// Blobs an image names that the store may lack, and where they are: a build from an
/// imported cache leaves layers in the registry until something needs them.
pub trait RemoteBlobs: Sync {
    /// A repository on `origin` that holds `digest`, to mount it from.
    fn mount_from(&self, digest: &Digest, origin: &Origin) -> Option<String>;
    /// Fetch the blob `desc` names into the store.
    fn fetch(&self, store: &Store, desc: &Descriptor) -> Result<(), String>;
}

/// Push the store's `image` to `dest`.
pub(crate) fn push(
    client: &Client,
    store: &Store,
    image: &Reference,
    dest: Destination<'_>,
    platform: &Platform,
    events: &dyn Fn(Event),
) -> Result<Digest, PushError> {
    let name = image.to_string();
    let top = store
        .resolve(image)
        .map_err(|e| PushError::Store {
            image: name.clone(),
            source: Box::new(e),
        })?
        .ok_or_else(|| PushError::NotFound {
            image: name.clone(),
        })?;
    let pushed = push_descriptor(client, store, &top, &name, dest, platform, None, events)?;
    // The push made the blobs of its layers built here: the name now names what the
    // registry serves, as after a build's own push (nothing is compressed again).
    let made = crate::layer::deferred::materialize(store, &top).map_err(|e| PushError::Layer {
        image: name.clone(),
        source: Box::new(e),
    })?;
    if made.digest() != top.digest() {
        store
            .retag_if(image, &top, made)
            .map_err(|e| PushError::Store {
                image: name.clone(),
                source: Box::new(e),
            })?;
    }
    Ok(pushed)
}

/// Push the image or index `top` of the store (called `name` in errors) to `dest`. Blobs
/// the store lacks are mounted or fetched through `remote`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn push_descriptor(
    client: &Client,
    store: &Store,
    top: &Descriptor,
    name: &str,
    dest: Destination<'_>,
    platform: &Platform,
    remote: Option<&dyn RemoteBlobs>,
    events: &dyn Fn(Event),
) -> Result<Digest, PushError> {
    let Destination {
        origin,
        repository,
        tag,
    } = dest;
    let name = name.to_string();
    let top = top.clone();
    let st = |e| PushError::Store {
        image: name.clone(),
        source: Box::new(e),
    };
    let man = |e| PushError::Manifest {
        image: name.clone(),
        source: Box::new(e),
    };
    let reg = |e| PushError::Registry {
        image: name.clone(),
        host: origin.host.clone(),
        source: Box::new(e),
    };
    // Layers built here whose blobs are not made yet are compressed straight into their
    // upload (and kept); then the image is the one an eager commit would have stored.
    let layer_err = |e| PushError::Layer {
        image: name.clone(),
        source: Box::new(e),
    };
    let streamed =
        stream_deferred(client, store, &top, origin, repository, events).map_err(layer_err)?;
    let top = crate::layer::deferred::materialize(store, &top).map_err(layer_err)?;
    let top_digest = descriptor_digest(&top).map_err(man)?;
    let top_bytes = read_all(store, &top_digest).map_err(st)?;
    let media_type = top.media_type().to_string();

    // What to push: (platform manifests by digest, the document to tag).
    let whole = || Document {
        bytes: top_bytes.clone(),
        media_type: media_type.clone(),
    };
    let (children, tagged): (Vec<(Digest, Document)>, Document) =
        match parse_manifest_any(&top_bytes, Some(&media_type)).map_err(man)? {
            Manifest::Image(_) => (Vec::new(), whole()),
            Manifest::Index(index) => {
                let local = |d: &Descriptor| {
                    descriptor_digest(d)
                        .map(|g| store.blobs().contains(&g))
                        .unwrap_or(false)
                };
                if index.manifests().iter().all(local) {
                    let mut children = Vec::new();
                    for d in index.manifests() {
                        let g = descriptor_digest(d).map_err(man)?;
                        let bytes = read_all(store, &g).map_err(st)?;
                        children.push((
                            g,
                            Document {
                                bytes,
                                media_type: d.media_type().to_string(),
                            },
                        ));
                    }
                    (children, whole())
                } else {
                    let img = store.image_at(&top, platform).map_err(st)?;
                    events(Event::SinglePlatform {
                        platform: platform.to_string(),
                    });
                    let doc = Document {
                        bytes: img.manifest_bytes,
                        media_type: img.descriptor.media_type().to_string(),
                    };
                    (Vec::new(), doc)
                }
            }
        };

    // Blobs of every image manifest pushed.
    for doc in children
        .iter()
        .map(|(_, d)| d)
        .chain(std::iter::once(&tagged))
    {
        let Manifest::Image(m) =
            parse_manifest_any(&doc.bytes, Some(&doc.media_type)).map_err(man)?
        else {
            continue;
        };
        for desc in std::iter::once(m.config()).chain(m.layers().iter()) {
            if descriptor_digest(desc).is_ok_and(|d| streamed.contains(&d)) {
                continue;
            }
            push_blob(client, store, origin, repository, desc, remote, events).map_err(
                |e| match e {
                    BlobFailure::Store(e) => st(e),
                    BlobFailure::Manifest(e) => man(e),
                    BlobFailure::Registry(e) => reg(e),
                },
            )?;
        }
    }
    // Platform manifests by digest, then the tagged document by tag.
    for (digest, doc) in &children {
        client
            .put_manifest(
                origin,
                repository,
                digest.as_str(),
                &doc.media_type,
                &doc.bytes,
            )
            .map_err(reg)?;
        events(Event::Manifest {
            digest: digest.clone(),
            reference: digest.to_string(),
        });
    }
    let pushed = client
        .put_manifest(origin, repository, tag, &tagged.media_type, &tagged.bytes)
        .map_err(reg)?;
    events(Event::Manifest {
        digest: pushed.clone(),
        reference: tag.to_string(),
    });
    Ok(pushed)
}

/// Upload each deferred layer of the local images under `top` whose blob is not made yet
/// as it is made (`layer::deferred`); returns the digests of the blobs so sent.
fn stream_deferred(
    client: &Client,
    store: &Store,
    top: &Descriptor,
    origin: &Origin,
    repository: &str,
    events: &dyn Fn(Event),
) -> Result<std::collections::HashSet<Digest>, crate::layer::deferred::DeferredError> {
    let deferred = crate::layer::deferred::DeferredLayers::new(store.root());
    let mut sent = std::collections::HashSet::new();
    let read = |desc: &Descriptor| -> Option<Manifest> {
        let digest = descriptor_digest(desc).ok()?;
        let bytes = read_all(store, &digest).ok()?;
        parse_manifest_any(&bytes, Some(desc.media_type().as_ref())).ok()
    };
    let manifests = match read(top) {
        Some(Manifest::Index(index)) => index.manifests().iter().filter_map(read).collect(),
        Some(image) => vec![image],
        None => Vec::new(),
    };
    for manifest in manifests {
        let Manifest::Image(m) = manifest else {
            continue;
        };
        for layer in m.layers() {
            let made = deferred.make_while_sending(store, layer, |content| {
                let blob = client
                    .push_blob_stream(origin, repository, content)
                    .map_err(|e| crate::diag::chain(&e))?;
                Ok((blob.clone(), blob))
            })?;
            if let Some(blob) = made {
                events(Event::Blob {
                    digest: blob.digest.clone(),
                    size: blob.size,
                    how: PushedBlob::Uploaded,
                });
                sent.insert(blob.digest);
            }
        }
    }
    Ok(sent)
}

enum BlobFailure {
    Store(StoreError),
    Manifest(ManifestError),
    Registry(RegistryError),
}

fn push_blob(
    client: &Client,
    store: &Store,
    origin: &Origin,
    repository: &str,
    desc: &Descriptor,
    remote: Option<&dyn RemoteBlobs>,
    events: &dyn Fn(Event),
) -> Result<(), BlobFailure> {
    let digest = descriptor_digest(desc).map_err(BlobFailure::Manifest)?;
    let local = store.blobs().contains(&digest);
    // Fails with the store's "blob not found" naming the digest when it is missing and
    // nobody else has it.
    if !local && remote.is_none() {
        store.blobs().open(&digest).map_err(BlobFailure::Store)?;
    }
    // Not here: mounted from where it is on this registry, or fetched only if the
    // registry lacks it.
    let mount = remote
        .filter(|_| !local)
        .and_then(|r| r.mount_from(&digest, origin));
    let path = store.blobs().path(&digest);
    let mut open = || -> std::io::Result<Box<dyn Read>> {
        if let Some(r) = remote.filter(|_| !local) {
            r.fetch(store, desc).map_err(std::io::Error::other)?;
        }
        Ok(Box::new(std::fs::File::open(&path)?))
    };
    let how = client
        .push_blob(
            origin,
            repository,
            &digest,
            desc.size(),
            mount.as_deref(),
            &mut open,
        )
        .map_err(BlobFailure::Registry)?;
    events(Event::Blob {
        digest,
        size: desc.size(),
        how,
    });
    Ok(())
}

fn read_all(store: &Store, digest: &Digest) -> Result<Vec<u8>, StoreError> {
    let size = store.blobs().size(digest)?;
    store
        .blobs()
        .read_small(&crate::oci::digest::DigestAndSize {
            digest: digest.clone(),
            size,
        })
}
