//! What a build produced: each target platform's image in the store, with its root
//! filesystem for the outputs that write files, and for several platforms the image index
//! that lists them.

use std::path::PathBuf;

use crate::oci::digest::Digest;
use crate::oci::manifest::{Descriptor, ImageIndex, descriptor_digest, image_index, oci_platform};
use crate::oci::platform::Platform;

/// One platform's image, stored (untagged) in the store.
#[derive(Debug)]
pub(crate) struct Built {
    /// The image manifest.
    pub(crate) manifest: Descriptor,
    pub(crate) config_digest: Digest,
    /// Its layers.
    pub(crate) layers: Vec<Descriptor>,
    /// The platform it was built for.
    pub(crate) platform: Platform,
    /// The target stage's snapshots, lowest first (overlay), or its one tree (native): its
    /// root filesystem, for local outputs.
    pub(crate) lowers: Vec<PathBuf>,
    pub(crate) snapshotter: crate::snapshot::snapshotter::Kind,
}

/// Everything a build produced: one image, or several and the index that lists them.
#[derive(Debug)]
pub(crate) struct Images {
    pub(crate) images: Vec<Built>,
    /// The image index, stored, when there are several platforms.
    index: Option<Descriptor>,
}

impl Images {
    /// The build's images, in the order the platforms were asked for, and for several
    /// the stored index that lists them ([`Images::index_document`]).
    pub(crate) fn new(images: Vec<Built>, index: Option<Descriptor>) -> Images {
        Images { images, index }
    }

    /// The OCI image index of `images`: each manifest with its platform, in that order.
    pub(crate) fn index_document(images: &[Built]) -> ImageIndex {
        image_index(images.iter().map(Built::index_entry).collect())
    }

    /// What a tag, an OCI output and a push name: the index, or the one image's manifest.
    pub(crate) fn descriptor(&self) -> &Descriptor {
        self.index.as_ref().unwrap_or(&self.images[0].manifest)
    }

    /// The ID `docker build` prints: the config's digest, or the index's.
    pub(crate) fn image_id(&self) -> Digest {
        match &self.index {
            Some(index) => descriptor_digest(index).expect("a descriptor rbuild wrote"),
            None => self.images[0].config_digest.clone(),
        }
    }

    /// Each platform's manifest as the index lists it; empty for a single image.
    pub(crate) fn platform_manifests(&self) -> Vec<Descriptor> {
        if self.index.is_none() {
            return Vec::new();
        }
        self.images.iter().map(Built::index_entry).collect()
    }

    /// Whether there are several platforms (files are then written per platform).
    pub(crate) fn is_multi_platform(&self) -> bool {
        self.index.is_some()
    }
}

impl Built {
    /// The manifest's descriptor with its platform, as an index lists it.
    fn index_entry(&self) -> Descriptor {
        let mut d = self.manifest.clone();
        d.set_platform(Some(oci_platform(&self.platform)));
        d
    }

    /// The directory a multi-platform `type=local` or `type=tar` output puts this
    /// platform's files in, as buildx names it: `linux_arm64`, `linux_arm_v7`.
    pub(crate) fn platform_dir(&self) -> String {
        let p = &self.platform;
        match &p.variant {
            Some(v) => format!("{}_{}_{v}", p.os, p.architecture),
            None => format!("{}_{}", p.os, p.architecture),
        }
    }
}
