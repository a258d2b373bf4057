//! Blobs a build knows where to find but has not fetched ([`LazyBlobs`]): the layers of an
//! imported build cache (docs/cache.md), and of base images pulled without their layers. A step taken from such a cache records its layer
//! without downloading it; the blob is fetched only when something needs its bytes — a step
//! that runs on top of it (its snapshot is unpacked), a file output, a tag in the store — and
//! a push to the registry it came from mounts it instead ([`LazyBlobs::mount_from`]).
//!
//! Shared by the builds of a multi-platform build. A blob is fetched once: a second thread
//! that wants it while it downloads waits for the first.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use super::error::BuildError;
use crate::oci::digest::Digest;
use crate::oci::manifest::{Descriptor, descriptor_digest};
use crate::oci::reference::Reference;
use crate::registry::client::{Client, Origin};
use crate::registry::credentials::CredentialStore;
use crate::registry::pull::Source;
use crate::registry::push::RemoteBlobs;
use crate::store::Store;

/// Where a blob can be fetched from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BlobSource {
    /// A repository on a registry.
    Registry(Source),
    /// An OCI image layout directory (`blobs/<algorithm>/<hex>`).
    Layout(PathBuf),
}

#[derive(Default)]
pub(crate) struct LazyBlobs {
    sources: Mutex<HashMap<Digest, BlobSource>>,
    /// Blobs being fetched now, and the signal that one finished.
    fetching: Mutex<HashSet<Digest>>,
    fetched_one: Condvar,
    /// How many blobs were fetched (for the build's summary and tests).
    fetched: AtomicUsize,
    client: OnceLock<Client>,
    /// Base images pulled without their layers: each name, what it names, and its layers,
    /// to tag once the store has them all ([`LazyBlobs::tag_whole`]).
    pulled: Mutex<Vec<(Reference, Descriptor, Vec<Digest>)>>,
}

impl std::fmt::Debug for LazyBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyBlobs")
            .field("sources", &self.sources.lock().map(|s| s.len()).ok())
            .finish_non_exhaustive()
    }
}

impl LazyBlobs {
    /// Note that `digest` can be fetched from `source` (the first source offered is kept).
    pub(crate) fn offer(&self, digest: &Digest, source: BlobSource) {
        self.sources
            .lock()
            .expect("blob sources")
            .entry(digest.clone())
            .or_insert(source);
    }

    /// Whether the build knows where to fetch `digest`.
    pub(crate) fn knows(&self, digest: &Digest) -> bool {
        self.sources
            .lock()
            .expect("blob sources")
            .contains_key(digest)
    }

    /// The repository on `origin` that holds `digest`, if it came from a registry there: a
    /// push to `origin` mounts the blob from it instead of uploading it.
    pub(crate) fn mount_from(&self, digest: &Digest, origin: &Origin) -> Option<String> {
        match self.sources.lock().expect("blob sources").get(digest)? {
            BlobSource::Registry(s) if &s.origin == origin => Some(s.repository.clone()),
            _ => None,
        }
    }

    /// Note an image pulled without its layers, from `source`: its layers are offered, and
    /// `name` is tagged when they are all in the store.
    pub(crate) fn pulled(
        &self,
        name: &Reference,
        top: &Descriptor,
        layers: &[Descriptor],
        source: &Source,
    ) {
        let mut digests = Vec::new();
        for layer in layers {
            if let Ok(d) = descriptor_digest(layer) {
                self.offer(&d, BlobSource::Registry(source.clone()));
                digests.push(d);
            }
        }
        self.pulled
            .lock()
            .expect("pulled images")
            .push((name.clone(), top.clone(), digests));
    }

    /// Tag each image pulled without its layers whose layers the store now has (a step
    /// that ran on it fetched them), as a pull would have.
    pub(crate) fn tag_whole(&self, store: &Store) -> Result<(), BuildError> {
        for (name, top, layers) in self.pulled.lock().expect("pulled images").iter() {
            if layers.iter().all(|d| store.blobs().contains(d)) {
                store.tag(name, top.clone())?;
            }
        }
        Ok(())
    }

    /// How many blobs this build fetched.
    pub(crate) fn fetched(&self) -> usize {
        self.fetched.load(Ordering::Relaxed)
    }

    /// Make sure the store holds the blob `desc` names: fetch it from its source when it
    /// does not. A blob the store lacks and no source offers is the store's "blob not
    /// found".
    pub(crate) fn ensure(&self, store: &Store, desc: &Descriptor) -> Result<(), BuildError> {
        let digest = descriptor_digest(desc)?;
        if store.blobs().contains(&digest) {
            return Ok(());
        }
        let Some(source) = self
            .sources
            .lock()
            .expect("blob sources")
            .get(&digest)
            .cloned()
        else {
            // A layer built here whose bytes are wanted: its tar, from its snapshot.
            if crate::layer::deferred::ensure_tar(store, desc)? {
                return Ok(());
            }
            // Fails naming the digest.
            store.blobs().open(&digest)?;
            return Ok(());
        };
        {
            let mut fetching = self.fetching.lock().expect("blobs being fetched");
            while fetching.contains(&digest) {
                fetching = self
                    .fetched_one
                    .wait(fetching)
                    .expect("blobs being fetched");
            }
            if store.blobs().contains(&digest) {
                return Ok(());
            }
            fetching.insert(digest.clone());
        }
        let result = self.fetch(store, &source, desc, &digest);
        self.fetching
            .lock()
            .expect("blobs being fetched")
            .remove(&digest);
        self.fetched_one.notify_all();
        if result.is_ok() {
            self.fetched.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn fetch(
        &self,
        store: &Store,
        source: &BlobSource,
        desc: &Descriptor,
        digest: &Digest,
    ) -> Result<(), BuildError> {
        match source {
            BlobSource::Registry(source) => {
                let client = self
                    .client
                    .get_or_init(|| Client::new(Box::new(CredentialStore::from_env())));
                let name = format!("{}/{}@{digest}", source.origin.host, source.repository);
                crate::registry::pull::fetch_blob(client, store, source, desc, &name, &|_| {})
                    .map_err(|e| BuildError::Fetch {
                        digest: digest.clone(),
                        source: Box::new(e),
                    })
            }
            BlobSource::Layout(dir) => {
                super::layout::copy_blob(store, dir, desc).map_err(|e| BuildError::Fetch {
                    digest: digest.clone(),
                    source: e.into(),
                })
            }
        }
    }
}

impl RemoteBlobs for LazyBlobs {
    fn mount_from(&self, digest: &Digest, origin: &Origin) -> Option<String> {
        LazyBlobs::mount_from(self, digest, origin)
    }

    fn fetch(&self, store: &Store, desc: &Descriptor) -> Result<(), String> {
        self.ensure(store, desc).map_err(|e| crate::diag::chain(&e))
    }
}
