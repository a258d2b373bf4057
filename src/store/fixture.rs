//! Test images for the store's unit tests: a tiny image (one uncompressed tar layer built
//! with the `tar` crate, a config naming it, an OCI manifest) and indexes over such images,
//! written either into a [`Store`] or into an OCI image layout directory on disk. Test-only;
//! nothing outside `#[cfg(test)]` sees this file.

use super::{Expected, Store};
use crate::oci::manifest::{
    Descriptor, descriptor, image_index, image_manifest, oci_platform, to_canonical_oci,
};
use crate::oci::{Digest, DigestAndSize, ImageConfig, MediaType, Platform};

/// Where test blobs go.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]) -> DigestAndSize;
}

impl Sink for &Store {
    fn put(&mut self, bytes: &[u8]) -> DigestAndSize {
        self.blobs().write(bytes, Expected::Unknown).unwrap()
    }
}

/// The blobs of one test image.
#[derive(Clone, Debug)]
pub(crate) struct TestImage {
    /// The manifest's descriptor, with the platform set.
    pub(crate) manifest: Descriptor,
    pub(crate) manifest_bytes: Vec<u8>,
    pub(crate) config: Descriptor,
    pub(crate) config_bytes: Vec<u8>,
    pub(crate) layer: Descriptor,
}

impl TestImage {
    pub(crate) fn digests(&self) -> [Digest; 3] {
        [&self.manifest, &self.config, &self.layer].map(|d| d.digest().to_string().parse().unwrap())
    }
}

/// A tar archive holding one file.
pub(crate) fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, name, content).unwrap();
    builder.into_inner().unwrap()
}

/// An image for `platform` whose one layer holds `/hello` with `content`.
pub(crate) fn image(sink: &mut impl Sink, platform: &str, content: &str) -> TestImage {
    let platform = Platform::parse(platform).unwrap();
    let tar = layer_tar("hello", content.as_bytes());
    let layer = sink.put(&tar);
    let layer = descriptor(&MediaType::OciLayer, &layer.digest, layer.size);

    let mut config = ImageConfig::new(&platform);
    config.rootfs.diff_ids = vec![Digest::sha256(&tar)];
    let config_bytes = config.to_canonical_json().unwrap();
    let stored = sink.put(&config_bytes);
    let config = descriptor(&MediaType::OciConfig, &stored.digest, stored.size);

    let manifest_bytes =
        to_canonical_oci(&image_manifest(config.clone(), vec![layer.clone()])).unwrap();
    let stored = sink.put(&manifest_bytes);
    let mut manifest = descriptor(&MediaType::OciManifest, &stored.digest, stored.size);
    manifest.set_platform(Some(oci_platform(&platform)));
    TestImage {
        manifest,
        manifest_bytes,
        config,
        config_bytes,
        layer,
    }
}

/// An index over `entries`, stored; returns its descriptor.
pub(crate) fn index(sink: &mut impl Sink, entries: &[&Descriptor]) -> Descriptor {
    let bytes =
        to_canonical_oci(&image_index(entries.iter().map(|d| (*d).clone()).collect())).unwrap();
    let stored = sink.put(&bytes);
    descriptor(&MediaType::OciIndex, &stored.digest, stored.size)
}
