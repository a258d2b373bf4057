//! Reading images back out of the store: [`Store::image`] resolves a tag, follows an index
//! to the manifest for a platform, and returns the manifest and config with the exact bytes
//! they were stored as; [`Store::referenced_blobs`] walks every tag down to its layers, for
//! a later prune.
//!
//! Every manifest, index and config is read whole (they are small; see
//! [`MAX_SMALL_BLOB`](super::MAX_SMALL_BLOB)) and checked against its descriptor's digest and
//! size before it is parsed. Layers are never opened here.

use std::collections::BTreeSet;

use super::Store;
use super::error::StoreError;
use super::index::Tags;
use crate::oci::manifest::{
    Descriptor, ImageManifest, Manifest, descriptor_digest, media_type_from_oci,
    parse_manifest_any, select_manifest,
};
use crate::oci::{Digest, DigestAndSize, ImageConfig, Platform, Reference};

/// One platform's image, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// The image manifest's descriptor: the tagged one, or the index entry chosen for the
    /// platform (with its `platform`).
    pub descriptor: Descriptor,
    pub manifest: ImageManifest,
    /// The manifest exactly as stored (what its digest names).
    pub manifest_bytes: Vec<u8>,
    pub config: ImageConfig,
    /// The config exactly as stored.
    pub config_bytes: Vec<u8>,
}

impl Store {
    /// The image tagged `reference`, for `platform` when the tag names an index.
    pub fn image(&self, reference: &Reference, platform: &Platform) -> Result<Image, StoreError> {
        let descriptor = self
            .resolve(reference)?
            .ok_or_else(|| StoreError::ImageNotFound {
                reference: Box::new(reference.clone()),
                root: self.root().to_path_buf(),
            })?;
        self.image_named(&descriptor, platform, &reference.to_string())
    }

    /// The image `descriptor` points at, for `platform` when it is an index.
    pub fn image_at(
        &self,
        descriptor: &Descriptor,
        platform: &Platform,
    ) -> Result<Image, StoreError> {
        self.image_named(descriptor, platform, descriptor.digest().as_ref())
    }

    fn image_named(
        &self,
        descriptor: &Descriptor,
        platform: &Platform,
        name: &str,
    ) -> Result<Image, StoreError> {
        let (descriptor, manifest, manifest_bytes) = match self.read_document(descriptor)? {
            (Manifest::Image(m), bytes) => (descriptor.clone(), m, bytes),
            (Manifest::Index(index), _) => {
                let chosen = select_manifest(&index, platform).ok_or_else(|| {
                    StoreError::NoMatchingPlatform {
                        name: name.to_string(),
                        wanted: Box::new(platform.clone()),
                        available: platforms_of(index.manifests()),
                    }
                })?;
                match self.read_document(chosen)? {
                    (Manifest::Image(m), bytes) => (chosen.clone(), m, bytes),
                    (Manifest::Index(_), _) => {
                        // select_manifest only returns manifest media types; a document that
                        // says otherwise lied about its type.
                        return Err(StoreError::NotAnImage {
                            digest: digest_of(chosen)?,
                            media_type: "image index".to_string(),
                        });
                    }
                }
            }
        };
        let config_digest = digest_of(manifest.config())?;
        let config_bytes = self.blobs().read_small(&DigestAndSize {
            digest: config_digest.clone(),
            size: manifest.config().size(),
        })?;
        let config =
            ImageConfig::from_json(&config_bytes).map_err(|source| StoreError::ParseConfig {
                digest: config_digest,
                source,
            })?;
        Ok(Image {
            descriptor,
            manifest,
            manifest_bytes,
            config,
            config_bytes,
        })
    }

    /// Every blob that a tag keeps alive: each entry of `index.json` (named or not), and
    /// through manifests and indexes every child manifest, config and layer. Digests of
    /// children that were never fetched (the other platforms of a pulled index) are
    /// included but not followed.
    pub fn referenced_blobs(&self) -> Result<BTreeSet<Digest>, StoreError> {
        let tags = self.index().load()?;
        self.referenced_by(&tags)
    }

    /// [`Store::referenced_blobs`] for tags the caller already holds (a prune holding the
    /// exclusive lock must not take the lock again).
    pub fn referenced_by(&self, tags: &Tags) -> Result<BTreeSet<Digest>, StoreError> {
        let mut seen = BTreeSet::new();
        for entry in tags.entries() {
            self.walk(entry, &mut seen)?;
        }
        Ok(seen)
    }

    fn walk(&self, descriptor: &Descriptor, seen: &mut BTreeSet<Digest>) -> Result<(), StoreError> {
        let digest = digest_of(descriptor)?;
        if !seen.insert(digest.clone()) {
            return Ok(());
        }
        let media_type = media_type_from_oci(descriptor.media_type());
        if !(media_type.is_manifest() || media_type.is_index()) || !self.blobs().contains(&digest) {
            return Ok(());
        }
        match self.read_document(descriptor)?.0 {
            Manifest::Image(m) => {
                self.walk(m.config(), seen)?;
                for layer in m.layers() {
                    self.walk(layer, seen)?;
                }
            }
            Manifest::Index(index) => {
                for child in index.manifests() {
                    self.walk(child, seen)?;
                }
            }
        }
        Ok(())
    }

    /// Read and parse the manifest or index `descriptor` names, verified.
    fn read_document(&self, descriptor: &Descriptor) -> Result<(Manifest, Vec<u8>), StoreError> {
        let digest = digest_of(descriptor)?;
        let bytes = self.blobs().read_small(&DigestAndSize {
            digest: digest.clone(),
            size: descriptor.size(),
        })?;
        let manifest = parse_manifest_any(&bytes, Some(descriptor.media_type().as_ref()))
            .map_err(|source| StoreError::ParseManifest { digest, source })?;
        Ok((manifest, bytes))
    }
}

fn digest_of(descriptor: &Descriptor) -> Result<Digest, StoreError> {
    descriptor_digest(descriptor).map_err(StoreError::DescriptorDigest)
}

/// `linux/amd64, linux/arm64/v8` for an error message.
fn platforms_of(entries: &[Descriptor]) -> String {
    let platforms: Vec<String> = entries
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| Platform::from(p).to_string())
        .collect();
    if platforms.is_empty() {
        "no platform-specific manifests".to_string()
    } else {
        platforms.join(", ")
    }
}
