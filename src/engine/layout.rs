//! `--build-context NAME=oci-layout://PATH[:TAG|@DIGEST]`: an image from an OCI image
//! layout directory (as `-o type=oci,tar=false`, skopeo or umoci write one), taken into the
//! store blob by blob (each verified against its digest) without a tag, so that `FROM NAME`
//! and `--from=NAME` use it as they would a pulled image.

use std::path::{Path, PathBuf};

use super::error::BuildError;
use crate::oci::DigestAndSize;
use crate::oci::digest::Digest;
use crate::oci::manifest::{
    Descriptor, Manifest, descriptor_digest, parse_manifest_any, select_manifest,
};
use crate::oci::platform::Platform;
use crate::store::{Image, Store};

/// The prefix that marks such a context where an image name would be.
pub(crate) const SCHEME: &str = "oci-layout://";

/// The image `spec` (`PATH[:TAG|@DIGEST]`, after the scheme) names, for `platform` when it
/// is an index, copied into `store`.
pub(crate) fn import(store: &Store, spec: &str, platform: &Platform) -> Result<Image, BuildError> {
    let fail = |why: String| BuildError::Request(format!("--build-context {SCHEME}{spec}: {why}"));
    let (path, pick) = split(spec);
    let dir = Path::new(path);
    let index: serde_json::Value = std::fs::read(dir.join("index.json"))
        .map_err(|e| fail(format!("reading {}/index.json: {e}", dir.display())))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| fail(format!("index.json: {e}"))))?;
    let entries: Vec<&serde_json::Value> = index["manifests"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let chosen = match pick {
        Pick::Digest(d) => entries.iter().find(|e| e["digest"] == d),
        Pick::Tag(t) => entries
            .iter()
            .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == t),
        Pick::Only if entries.len() == 1 => entries.first(),
        Pick::Only => {
            return Err(fail(format!(
                "the layout holds {} images: name one with :TAG or @DIGEST",
                entries.len()
            )));
        }
    }
    .ok_or_else(|| fail("the layout has no such image".into()))?;
    let top: Descriptor =
        serde_json::from_value((*chosen).clone()).map_err(|e| fail(format!("index.json: {e}")))?;
    let copy = |d: &Descriptor| copy_blob(store, dir, d).map_err(fail);
    copy(&top)?;
    let read = |d: &Descriptor| -> Result<Manifest, BuildError> {
        let digest = descriptor_digest(d).map_err(|e| fail(crate::diag::chain(&e)))?;
        let bytes = store.blobs().read_small(&DigestAndSize {
            digest,
            size: d.size(),
        })?;
        parse_manifest_any(&bytes, Some(d.media_type().as_ref()))
            .map_err(|e| fail(crate::diag::chain(&e)))
    };
    let manifest_desc = match read(&top)? {
        Manifest::Image(_) => top.clone(),
        Manifest::Index(index) => {
            let m = select_manifest(&index, platform)
                .ok_or_else(|| fail(format!("the index has no image for {platform}")))?
                .clone();
            copy(&m)?;
            m
        }
    };
    let Manifest::Image(manifest) = read(&manifest_desc)? else {
        return Err(fail("an index inside an index".into()));
    };
    copy(manifest.config())?;
    for layer in manifest.layers() {
        copy(layer)?;
    }
    Ok(store.image_at(&manifest_desc, platform)?)
}

/// Where an OCI image layout `dir` keeps the blob `digest`.
pub(crate) fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm().name())
        .join(digest.encoded())
}

/// Copy the blob `desc` names from the layout `dir` into the store, verified as it
/// streams; the error says which file and why.
pub(crate) fn copy_blob(store: &Store, dir: &Path, desc: &Descriptor) -> Result<(), String> {
    let digest = descriptor_digest(desc).map_err(|e| crate::diag::chain(&e))?;
    let file = blob_path(dir, &digest);
    let f = std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    store
        .blobs()
        .write(
            std::io::BufReader::new(f),
            &DigestAndSize {
                digest,
                size: desc.size(),
            },
        )
        .map_err(|e| format!("{}: {}", file.display(), crate::diag::chain(&e)))?;
    Ok(())
}

/// `PATH[:TAG|@DIGEST]` split: `@sha256:...` picks by digest, `:TAG` (after the last `/`)
/// by `ref.name`, nothing picks the layout's only image.
fn split(spec: &str) -> (&str, Pick<'_>) {
    match spec.rsplit_once('@') {
        Some((p, d)) => (p, Pick::Digest(d)),
        None => match spec.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((p, t)) => (p, Pick::Tag(t)),
            None => (spec, Pick::Only),
        },
    }
}

/// The layout directory of `PATH[:TAG|@DIGEST]` (what follows `oci-layout://`).
pub fn layout_dir(spec: &str) -> &str {
    split(spec).0
}

enum Pick<'a> {
    Digest(&'a str),
    Tag(&'a str),
    Only,
}
