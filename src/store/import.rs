//! [`Store::import_oci_layout`]: copy one image out of an OCI image layout directory (what
//! `skopeo copy … oci:DIR:TAG`, `umoci` and `rbuild save` write; image-spec
//! `image-layout.md`) into the store and tag it.
//!
//! Blobs are streamed from the layout and verified against their descriptors as they are
//! written (the layout is untrusted input: a wrong byte fails the import and stores
//! nothing for that blob). Children are stored before their parents and the tag is moved
//! last, so a tag never names a manifest whose config or layers are missing. Entries of an
//! index whose manifests the layout does not hold (a partial copy of a multi-platform
//! image) are skipped, as are non-distributable layers absent from the layout; the index is
//! still stored whole, since its digest names all of it.
//!
//! This file only reads the layout; it never writes to it.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::blobs::read_verified;
use super::error::StoreError;
use super::index::REF_NAME;
use super::layout::{OCI_LAYOUT_FILE, check_oci_layout};
use super::local::Store;
use crate::oci::manifest::{
    Descriptor, Manifest, ManifestError, descriptor_digest, media_type_from_oci, parse_manifest_any,
};
use crate::oci::media_type::OCI_INDEX;
use crate::oci::{Digest, DigestAndSize, Reference};

/// The largest `index.json` read from a layout.
const MAX_LAYOUT_INDEX: u64 = 16 * 1024 * 1024;

impl Store {
    /// Import the image named `ref_name` in the layout at `dir` (its
    /// `org.opencontainers.image.ref.name`, e.g. `latest` or a full reference; `None` when
    /// the layout holds exactly one image) and tag it `tag_as`. Returns the tagged
    /// descriptor: the layout's entry with its media type, digest, size and platform, but
    /// not its annotations.
    pub fn import_oci_layout(
        &self,
        dir: &Path,
        ref_name: Option<&str>,
        tag_as: &Reference,
    ) -> Result<Descriptor, StoreError> {
        check_oci_layout(&dir.join(OCI_LAYOUT_FILE))?;
        let index_path = dir.join("index.json");
        let index_bytes = read_limited(&index_path)?;
        let layout_index_err = |source| StoreError::LayoutIndex {
            path: dir.to_path_buf(),
            source,
        };
        let index = match parse_manifest_any(&index_bytes, Some(OCI_INDEX)) {
            Ok(Manifest::Index(index)) => index,
            // parse_manifest_any refuses a manifest served as an index; kept total anyway.
            Ok(Manifest::Image(_)) => {
                return Err(layout_index_err(ManifestError::KindMismatch {
                    header: OCI_INDEX.to_string(),
                    body: "an image manifest".to_string(),
                }));
            }
            Err(source) => return Err(layout_index_err(source)),
        };
        let entry = choose(dir, index.manifests(), ref_name)?;
        let layout = Layout { dir };
        self.copy_tree(&layout, entry, &mut BTreeSet::new())?;

        let mut tagged = Descriptor::new(
            entry.media_type().clone(),
            entry.size(),
            entry.digest().clone(),
        );
        tagged.set_platform(entry.platform().clone());
        tagged.set_artifact_type(entry.artifact_type().clone());
        self.tag(tag_as, tagged.clone())?;
        Ok(tagged)
    }

    /// Store `descriptor`'s blob and, for manifests and indexes, everything they name,
    /// children first.
    fn copy_tree(
        &self,
        layout: &Layout<'_>,
        descriptor: &Descriptor,
        seen: &mut BTreeSet<Digest>,
    ) -> Result<(), StoreError> {
        let expected = DigestAndSize {
            digest: descriptor_digest(descriptor).map_err(StoreError::DescriptorDigest)?,
            size: descriptor.size(),
        };
        if !seen.insert(expected.digest.clone()) {
            return Ok(());
        }
        let source = layout.blob(&expected.digest);
        let media_type = media_type_from_oci(descriptor.media_type());
        if !(media_type.is_manifest() || media_type.is_index()) {
            let file = match layout.open(&source) {
                Err(StoreError::ReadLayout { source: e, .. })
                    if e.kind() == io::ErrorKind::NotFound && media_type.is_non_distributable() =>
                {
                    return Ok(());
                }
                other => other?,
            };
            self.blobs().write(file, &expected)?;
            return Ok(());
        }

        let bytes = read_verified(layout.open(&source)?, &source, &expected)?;
        let manifest = parse_manifest_any(&bytes, Some(descriptor.media_type().as_ref())).map_err(
            |source| StoreError::ParseManifest {
                digest: expected.digest.clone(),
                source,
            },
        )?;
        match &manifest {
            Manifest::Image(m) => {
                self.copy_tree(layout, m.config(), seen)?;
                for layer in m.layers() {
                    self.copy_tree(layout, layer, seen)?;
                }
            }
            Manifest::Index(index) => {
                for child in index.manifests() {
                    let present = descriptor_digest(child).is_ok_and(|d| layout.blob(&d).is_file());
                    if present {
                        self.copy_tree(layout, child, seen)?;
                    }
                }
            }
        }
        self.blobs().write(&bytes[..], &expected)?;
        Ok(())
    }
}

/// The layout directory being imported.
struct Layout<'a> {
    dir: &'a Path,
}

impl Layout<'_> {
    fn blob(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    fn open(&self, path: &Path) -> Result<File, StoreError> {
        File::open(path).map_err(|source| StoreError::ReadLayout {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The entry to import: the one named `ref_name`, or the only one.
fn choose<'a>(
    dir: &Path,
    entries: &'a [Descriptor],
    ref_name: Option<&str>,
) -> Result<&'a Descriptor, StoreError> {
    let name_of = |d: &Descriptor| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .cloned()
    };
    let available = || {
        let names: Vec<String> = entries
            .iter()
            .map(|d| name_of(d).unwrap_or_else(|| d.digest().to_string()))
            .collect();
        names.join(", ")
    };
    match ref_name {
        Some(wanted) => entries
            .iter()
            .find(|d| name_of(d).as_deref() == Some(wanted))
            .ok_or_else(|| StoreError::LayoutRefNotFound {
                path: dir.to_path_buf(),
                ref_name: wanted.to_string(),
                available: available(),
            }),
        None => match entries {
            [] => Err(StoreError::LayoutEmpty {
                path: dir.to_path_buf(),
            }),
            [only] => Ok(only),
            _ => Err(StoreError::LayoutAmbiguous {
                path: dir.to_path_buf(),
                count: entries.len(),
                available: available(),
            }),
        },
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>, StoreError> {
    use std::io::Read;
    let file = File::open(path).map_err(|source| StoreError::ReadLayout {
        path: path.to_path_buf(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_LAYOUT_INDEX)
        .read_to_end(&mut bytes)
        .map_err(|source| StoreError::ReadLayout {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::oci::Platform;
    use crate::store::fixture::{self, LayoutDir, TestImage};

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    /// A store and, beside it, an empty OCI layout directory.
    fn setup() -> (tempfile::TempDir, Store, LayoutDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let layout = LayoutDir::new(&dir.path().join("layout"));
        (dir, store, layout)
    }

    /// A layout holding one image, named `latest`.
    fn one_image() -> (tempfile::TempDir, Store, LayoutDir, TestImage) {
        let (dir, store, mut layout) = setup();
        let image = fixture::image(&mut layout, "linux/amd64", "hello");
        layout.write_index(&[(Some("latest"), &image.manifest)]);
        (dir, store, layout, image)
    }

    #[test]
    fn imports_one_image() {
        let (_dir, store, layout, image) = one_image();
        let tagged = store
            .import_oci_layout(&layout.dir, Some("latest"), &r("hello:1"))
            .unwrap();
        assert_eq!(
            tagged, image.manifest,
            "the layout's entry, without its ref name"
        );
        assert_eq!(store.resolve(&r("hello:1")).unwrap(), Some(tagged));
        let got = store.image(&r("hello:1"), &p("linux/amd64")).unwrap();
        assert_eq!(got.manifest_bytes, image.manifest_bytes);
        assert_eq!(got.config_bytes, image.config_bytes);
        for d in image.digests() {
            assert_eq!(store.blobs().verify(&d).unwrap().digest, d);
        }
        assert_eq!(store.blobs().list().unwrap().count(), 3);
    }

    #[test]
    fn the_only_image_needs_no_name_and_import_is_idempotent() {
        let (_dir, store, layout, image) = one_image();
        let first = store.import_oci_layout(&layout.dir, None, &r("a")).unwrap();
        let again = store.import_oci_layout(&layout.dir, None, &r("b")).unwrap();
        assert_eq!(first, again);
        assert_eq!(store.list().unwrap().len(), 2);
        assert_eq!(
            store.referenced_blobs().unwrap(),
            image.digests().into_iter().collect()
        );
    }

    #[test]
    fn imports_an_index_with_two_platforms() {
        let (_dir, store, mut layout) = setup();
        let amd64 = fixture::image(&mut layout, "linux/amd64", "amd64");
        let arm64 = fixture::image(&mut layout, "linux/arm64/v8", "arm64");
        let index = fixture::index(&mut layout, &[&amd64.manifest, &arm64.manifest]);
        layout.write_index(&[(Some("docker.io/library/multi:1"), &index)]);

        store
            .import_oci_layout(
                &layout.dir,
                Some("docker.io/library/multi:1"),
                &r("multi:1"),
            )
            .unwrap();
        for (platform, want) in [("linux/amd64", &amd64), ("linux/arm64", &arm64)] {
            let got = store.image(&r("multi:1"), &p(platform)).unwrap();
            assert_eq!(got.descriptor, want.manifest, "{platform}");
            assert_eq!(got.config_bytes, want.config_bytes, "{platform}");
        }
        assert_eq!(
            store.referenced_blobs().unwrap().len(),
            7,
            "index + 2 × (manifest, config, layer)"
        );
    }

    #[test]
    fn a_partial_index_imports_what_is_there() {
        let (_dir, store, mut layout) = setup();
        let amd64 = fixture::image(&mut layout, "linux/amd64", "amd64");
        let arm64 = fixture::image(&mut layout, "linux/arm64", "arm64");
        let index = fixture::index(&mut layout, &[&amd64.manifest, &arm64.manifest]);
        layout.write_index(&[(Some("latest"), &index)]);
        for d in arm64.digests() {
            fs::remove_file(layout.blob_path(&d)).unwrap();
        }
        store
            .import_oci_layout(&layout.dir, None, &r("partial"))
            .unwrap();
        assert!(store.image(&r("partial"), &p("linux/amd64")).is_ok());
        let err = store.image(&r("partial"), &p("linux/arm64")).unwrap_err();
        assert!(matches!(err, StoreError::BlobNotFound { .. }), "{err:?}");
    }

    #[test]
    fn a_corrupt_layer_stores_nothing_of_it_and_tags_nothing() {
        let (_dir, store, layout, image) = one_image();
        let [_, _, layer] = image.digests();
        fs::write(layout.blob_path(&layer), b"not the layer").unwrap();
        let err = store
            .import_oci_layout(&layout.dir, None, &r("bad"))
            .unwrap_err();
        assert!(matches!(err, StoreError::BlobMismatch { .. }), "{err:?}");
        assert!(!store.blobs().contains(&layer));
        assert!(
            !store.blobs().contains(&image.digests()[0]),
            "the manifest comes last"
        );
        assert!(store.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(store.blobs().tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_layer_names_its_path() {
        let (_dir, store, layout, image) = one_image();
        let path = layout.blob_path(&image.digests()[2]);
        fs::remove_file(&path).unwrap();
        let err = store
            .import_oci_layout(&layout.dir, None, &r("bad"))
            .unwrap_err();
        assert!(matches!(err, StoreError::ReadLayout { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    /// `entries of the layout's index.json (name or none), ref name asked for => error`.
    macro_rules! refuses {
        ($($name:ident: [$($entry:expr),*], $wanted:expr => $variant:ident, $says:expr;)*) => {$(
            #[test]
            fn $name() {
                let (_dir, store, mut layout) = setup();
                let image = fixture::image(&mut layout, "linux/amd64", "x");
                let names: &[Option<&str>] = &[$($entry),*];
                let entries: Vec<(Option<&str>, &Descriptor)> =
                    names.iter().map(|n| (*n, &image.manifest)).collect();
                layout.write_index(&entries);
                let err = store.import_oci_layout(&layout.dir, $wanted, &r("x")).unwrap_err();
                assert!(matches!(err, StoreError::$variant { .. }), "{err:?}");
                assert!(err.to_string().contains($says), "{err}");
                assert!(err.to_string().contains(&layout.dir.display().to_string()), "{err}");
            }
        )*};
    }

    refuses! {
        unknown_ref_name: [Some("1.0"), Some("2.0")], Some("3.0") => LayoutRefNotFound, "(it has: 1.0, 2.0)";
        two_images_and_no_name: [Some("1.0"), None], None => LayoutAmbiguous, "holds 2 images";
        empty_layout: [], None => LayoutEmpty, "holds no image";
    }

    #[test]
    fn a_layout_of_another_version_is_refused() {
        let (_dir, store, layout, _) = one_image();
        fs::write(
            layout.dir.join("oci-layout"),
            r#"{"imageLayoutVersion":"2.0.0"}"#,
        )
        .unwrap();
        let err = store
            .import_oci_layout(&layout.dir, None, &r("x"))
            .unwrap_err();
        assert!(matches!(err, StoreError::LayoutVersion { .. }), "{err:?}");
    }

    #[test]
    fn a_directory_that_is_not_a_layout_is_refused() {
        let (dir, store, _) = setup();
        let err = store
            .import_oci_layout(dir.path(), None, &r("x"))
            .unwrap_err();
        assert!(matches!(err, StoreError::ReadLayoutFile { .. }), "{err:?}");
    }
}
