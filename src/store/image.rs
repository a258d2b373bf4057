//! Reading images back out of the store: [`Store::image`] resolves a tag, follows an index
//! to the manifest for a platform, and returns the manifest and config with the exact bytes
//! they were stored as; [`Store::referenced_blobs`] walks every tag down to its layers, for
//! a later prune.
//!
//! Every manifest, index and config is read whole (they are small; see
//! [`MAX_SMALL_BLOB`](super::MAX_SMALL_BLOB)) and checked against its descriptor's digest and
//! size before it is parsed. Layers are never opened here.

use std::collections::BTreeSet;

use super::error::StoreError;
use super::index::Tags;
use super::local::Store;
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

    /// Every image `descriptor` holds here: the image it names, or each platform of the
    /// index it names whose manifest is in the store, in the index's order.
    pub fn images_at_all(&self, descriptor: &Descriptor) -> Result<Vec<Image>, StoreError> {
        match self.read_document(descriptor)?.0 {
            Manifest::Image(_) => Ok(vec![self.image_named(
                descriptor,
                &Platform::host(),
                descriptor.digest().as_ref(),
            )?]),
            Manifest::Index(index) => {
                let mut out = Vec::new();
                for child in index.manifests() {
                    let local = descriptor_digest(child)
                        .map(|d| self.blobs().contains(&d))
                        .unwrap_or(false);
                    let media_type = media_type_from_oci(child.media_type());
                    if local && media_type.is_manifest() {
                        out.push(self.image_named(
                            child,
                            &Platform::host(),
                            child.digest().as_ref(),
                        )?);
                    }
                }
                Ok(out)
            }
        }
    }

    /// [`Store::image`], or `None` when the store cannot give it without a pull: no such
    /// tag, no such platform in the tagged index, or that platform's manifest never fetched
    /// (a pulled index keeps only the platforms pulled).
    pub fn local_image(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Option<Image>, StoreError> {
        match self.image(reference, platform) {
            Ok(image) => Ok(Some(image)),
            Err(
                StoreError::ImageNotFound { .. }
                | StoreError::NoMatchingPlatform { .. }
                | StoreError::BlobNotFound { .. },
            ) => Ok(None),
            Err(e) => Err(e),
        }
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
    pub(crate) fn referenced_by(&self, tags: &Tags) -> Result<BTreeSet<Digest>, StoreError> {
        Ok(self.referenced_and_configs(tags)?.0)
    }

    /// [`Store::referenced_by`], and the config descriptors of the image manifests found
    /// on the way (what a prune needs to keep their snapshots, without reading any layer).
    pub(crate) fn referenced_and_configs(
        &self,
        tags: &Tags,
    ) -> Result<(BTreeSet<Digest>, Vec<Descriptor>), StoreError> {
        let mut seen = BTreeSet::new();
        let mut configs = Vec::new();
        for entry in tags.entries() {
            self.walk(entry, &mut seen, &mut configs)?;
        }
        Ok((seen, configs))
    }

    fn walk(
        &self,
        descriptor: &Descriptor,
        seen: &mut BTreeSet<Digest>,
        configs: &mut Vec<Descriptor>,
    ) -> Result<(), StoreError> {
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
                configs.push(m.config().clone());
                self.walk(m.config(), seen, configs)?;
                for layer in m.layers() {
                    self.walk(layer, seen, configs)?;
                }
            }
            Manifest::Index(index) => {
                for child in index.manifests() {
                    self.walk(child, seen, configs)?;
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::store::fixture::{self, TestImage};

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn assert_is(got: &Image, want: &TestImage) {
        assert_eq!(got.descriptor, want.manifest);
        assert_eq!(got.manifest_bytes, want.manifest_bytes);
        assert_eq!(got.config_bytes, want.config_bytes);
        assert_eq!(got.manifest.layers(), std::slice::from_ref(&want.layer));
        assert_eq!(
            got.config,
            ImageConfig::from_json(&want.config_bytes).unwrap()
        );
    }

    /// A store with `multi` tagged to an index of linux/amd64 and linux/arm64/v8 images.
    fn multi() -> (tempfile::TempDir, Store, [TestImage; 2]) {
        let (dir, store) = open();
        let mut sink = &store;
        let amd64 = fixture::image(&mut sink, "linux/amd64", "amd64");
        let arm64 = fixture::image(&mut sink, "linux/arm64/v8", "arm64");
        let index = fixture::index(&mut sink, &[&amd64.manifest, &arm64.manifest]);
        store.tag(&r("multi"), index).unwrap();
        (dir, store, [amd64, arm64])
    }

    /// `wanted platform => which image of [amd64, arm64], or None`.
    macro_rules! selects {
        ($($name:ident: $wanted:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let (_dir, store, images) = multi();
                let got = store.image(&r("multi"), &p($wanted));
                let want: Option<usize> = $want;
                match (got, want) {
                    (Ok(got), Some(i)) => assert_is(&got, &images[i]),
                    (Err(StoreError::NoMatchingPlatform { name, available, .. }), None) => {
                        assert_eq!(name, "docker.io/library/multi");
                        assert_eq!(available, "linux/amd64, linux/arm64");
                    }
                    (got, want) => panic!("wanted image {want:?}, got {got:?}"),
                }
            }
        )*};
    }

    selects! {
        index_amd64: "linux/amd64" => Some(0);
        index_arm64: "linux/arm64" => Some(1);
        index_arm64_v8: "linux/arm64/v8" => Some(1);
        index_windows: "windows/amd64" => None;
        index_s390x: "linux/s390x" => None;
    }

    #[test]
    fn single_manifest_ignores_the_platform() {
        let (_dir, store) = open();
        let image = fixture::image(&mut &store, "linux/amd64", "x");
        store.tag(&r("one:1"), image.manifest.clone()).unwrap();
        // No index to choose from: the one manifest is the image, whatever was asked for.
        let got = store.image(&r("one:1"), &p("linux/arm64")).unwrap();
        assert_is(&got, &image);
        assert_eq!(
            store.image_at(&image.manifest, &p("linux/amd64")).unwrap(),
            got
        );
    }

    #[test]
    fn not_found_names_the_reference_and_root() {
        let (dir, store) = open();
        let err = store.image(&r("nope"), &p("linux/amd64")).unwrap_err();
        assert!(matches!(err, StoreError::ImageNotFound { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("docker.io/library/nope"), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
    }

    #[test]
    fn a_corrupt_config_is_caught() {
        let (_dir, store) = open();
        let image = fixture::image(&mut &store, "linux/amd64", "x");
        store.tag(&r("app"), image.manifest.clone()).unwrap();
        let config = store.blobs().path(&image.digests()[1]);
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
        let mut bytes = fs::read(&config).unwrap();
        bytes[0] = b' ';
        fs::write(&config, bytes).unwrap();
        let err = store.image(&r("app"), &p("linux/amd64")).unwrap_err();
        assert!(matches!(err, StoreError::CorruptBlob { .. }), "{err:?}");
    }

    #[test]
    fn a_missing_platform_manifest_is_blob_not_found() {
        let (_dir, store, [_, arm64]) = multi();
        store.blobs().delete(&arm64.digests()[0]).unwrap();
        let err = store.image(&r("multi"), &p("linux/arm64")).unwrap_err();
        assert!(matches!(err, StoreError::BlobNotFound { .. }), "{err:?}");
        assert!(store.image(&r("multi"), &p("linux/amd64")).is_ok());
    }

    #[test]
    fn referenced_blobs_walk_every_tag() {
        let (_dir, store, [amd64, arm64]) = multi();
        let mut sink = &store;
        let single = fixture::image(&mut sink, "linux/amd64", "single");
        store.tag(&r("single"), single.manifest.clone()).unwrap();
        let stray = fixture::image(&mut sink, "linux/amd64", "untagged");
        // A pulled index whose arm64 manifest was never fetched: its digest counts, and
        // nothing below it can be known.
        store.blobs().delete(&arm64.digests()[0]).unwrap();
        for d in &arm64.digests()[1..] {
            store.blobs().delete(d).unwrap();
        }

        let got = store.referenced_blobs().unwrap();
        let index = descriptor_digest(&store.resolve(&r("multi")).unwrap().unwrap()).unwrap();
        let mut want: BTreeSet<Digest> = amd64
            .digests()
            .into_iter()
            .chain(single.digests())
            .collect();
        want.insert(index);
        want.insert(arm64.digests()[0].clone());
        assert_eq!(got, want);
        for d in stray.digests() {
            assert!(!got.contains(&d), "untagged {d} is not referenced");
        }
        // Untagging drops the image's blobs from the set, but shared ones stay.
        store.untag(&r("multi")).unwrap();
        assert_eq!(
            store.referenced_blobs().unwrap(),
            single.digests().into_iter().collect()
        );
    }

    #[test]
    fn referenced_blobs_of_an_empty_store() {
        let (_dir, store) = open();
        assert!(store.referenced_blobs().unwrap().is_empty());
    }
}
