//! [`Store`]: blobs, tags and the lock of one state root tied together, with the
//! operations that need more than one of them (tagging, manifests, removal).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::blobs::{self, BlobStore, Expected};
use super::error::StoreError;
use super::index::TagIndex;
use super::layout;
use super::lock::{LOCK_FILE, LockWait, StoreLock};

use crate::oci::manifest::{Descriptor, descriptor, descriptor_digest, parse_manifest_any};
use crate::oci::{ImageConfig, MediaType, Reference};

/// A store at a root directory. Cheap to clone; any number of `Store`s, in any number of
/// threads and processes, may work on one root at once.
#[derive(Clone, Debug)]
pub struct Store {
    pub(super) root: PathBuf,
    pub(super) blobs: BlobStore,
    pub(super) index: TagIndex,
    pub(super) lock: StoreLock,
}

impl Store {
    /// Open the store at `root`, creating the layout on first use (directories mode 0700,
    /// `oci-layout`, an empty `index.json`, the lock file) and removing temporary files
    /// that a crashed process left more than `STALE_AFTER` ago. Takes no lock. A corrupt
    /// `index.json` does not stop the store from opening: blob operations still work, and
    /// tag operations report it.
    pub fn open(root: impl AsRef<Path>) -> Result<Store, StoreError> {
        let root = root.as_ref().to_path_buf();
        blobs::create_private_dir(&root)?;
        let blobs = BlobStore::create(&root)?;
        layout::ensure_oci_layout(&root, blobs.tmp_dir())?;
        let lock = StoreLock::new(root.join(LOCK_FILE));
        lock.create_file()?;
        let index = TagIndex::new(&root, blobs.tmp_dir(), lock.clone());
        index.create_if_missing()?;
        Ok(Store {
            root,
            blobs,
            index,
            lock,
        })
    }

    /// The same store, calling `hook` once each time the lock is busy and this process is
    /// about to wait (the CLI prints [`LockWait`]'s message).
    pub fn with_lock_wait_hook(
        self,
        hook: impl Fn(&LockWait<'_>) + Send + Sync + 'static,
    ) -> Store {
        let lock = self.lock.with_wait_hook(Arc::new(hook));
        let index = TagIndex::new(&self.root, self.blobs.tmp_dir(), lock.clone());
        Store {
            lock,
            index,
            ..self
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub(crate) fn index(&self) -> &TagIndex {
        &self.index
    }

    #[cfg(test)]
    pub(crate) fn lock(&self) -> &StoreLock {
        &self.lock
    }

    /// Store a manifest, index or config as its exact bytes (the digest names these bytes;
    /// they are never re-serialised) and return its descriptor. Manifests and indexes must
    /// parse as their media type says and configs as a config; other types (artifacts, the
    /// empty descriptor) are stored unchecked.
    pub(crate) fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &MediaType,
    ) -> Result<Descriptor, StoreError> {
        if media_type.is_manifest() || media_type.is_index() {
            parse_manifest_any(bytes, Some(media_type.as_str())).map_err(|source| {
                StoreError::InvalidDocument {
                    media_type: media_type.to_string(),
                    source,
                }
            })?;
        } else if media_type.is_config() {
            ImageConfig::from_json(bytes).map_err(|source| StoreError::InvalidConfig { source })?;
        }
        let stored = self.blobs.write(bytes, Expected::Unknown)?;
        Ok(descriptor(media_type, &stored.digest, stored.size))
    }

    /// Tag `descriptor` as `reference` (see `Tags::tag`); its blob must be in the store.
    /// Returns the descriptor the tag named before, if any.
    pub fn tag(
        &self,
        reference: &Reference,
        descriptor: Descriptor,
    ) -> Result<Option<Descriptor>, StoreError> {
        let digest = descriptor_digest(&descriptor).map_err(StoreError::DescriptorDigest)?;
        if !self.blobs.contains(&digest) {
            return Err(StoreError::TagMissingBlob {
                reference: Box::new(reference.clone()),
                digest,
            });
        }
        self.index.tag(reference, descriptor)
    }

    /// Move the tag `reference` to `to` if it still names `from` (under the lock, so a tag
    /// moved meanwhile stays where it was moved); whether it moved.
    pub fn retag_if(
        &self,
        reference: &Reference,
        from: &Descriptor,
        to: Descriptor,
    ) -> Result<bool, StoreError> {
        let digest = descriptor_digest(&to).map_err(StoreError::DescriptorDigest)?;
        if !self.blobs.contains(&digest) {
            return Err(StoreError::TagMissingBlob {
                reference: Box::new(reference.clone()),
                digest,
            });
        }
        self.index.update(|tags| {
            if tags.resolve(reference).map(|d| d.digest().clone()) != Some(from.digest().clone()) {
                return Ok(false);
            }
            tags.tag(reference, to)?;
            Ok(true)
        })
    }

    /// Remove a tag (see `Tags::untag`); its blobs stay until a prune.
    pub fn untag(&self, reference: &Reference) -> Result<Option<Descriptor>, StoreError> {
        self.index.untag(reference)
    }

    /// The descriptor tagged `reference` (see `Tags::resolve`).
    pub fn resolve(&self, reference: &Reference) -> Result<Option<Descriptor>, StoreError> {
        self.index.resolve(reference)
    }

    /// Every tag, sorted by reference.
    pub fn list(&self) -> Result<Vec<(Reference, Descriptor)>, StoreError> {
        self.index.list()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::oci::media_type::OCI_MANIFEST;
    use crate::oci::{Digest, Platform};

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("root")).unwrap();
        (dir, store)
    }

    #[test]
    fn open_creates_the_layout() {
        let (dir, store) = open();
        let root = dir.path().join("root");
        assert_eq!(store.root(), root);
        for (path, is_dir) in [
            ("oci-layout", false),
            ("index.json", false),
            ("lock", false),
            ("blobs/sha256", true),
            ("tmp", true),
        ] {
            let meta = fs::metadata(root.join(path)).unwrap();
            assert_eq!(meta.is_dir(), is_dir, "{path}");
        }
        for dir in [&root, &root.join("blobs"), &root.join("tmp")] {
            let mode = fs::metadata(dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
        // Opening again changes nothing.
        let index = fs::read(root.join("index.json")).unwrap();
        Store::open(&root).unwrap();
        assert_eq!(fs::read(root.join("index.json")).unwrap(), index);
    }

    #[test]
    fn existing_root_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        Store::open(dir.path()).unwrap();
        let mode = fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755);
    }

    #[test]
    fn corrupt_index_does_not_stop_open() {
        let (dir, store) = open();
        fs::write(dir.path().join("root/index.json"), "{").unwrap();
        let store2 = Store::open(store.root()).unwrap();
        assert!(store2.blobs().write(&b"x"[..], Expected::Unknown).is_ok());
        assert!(matches!(
            store2.list(),
            Err(StoreError::CorruptIndex { .. })
        ));
    }

    /// `media type, bytes => stored?`
    macro_rules! puts {
        ($($name:ident: $media:expr, $bytes:expr => $ok:expr;)*) => {$(
            #[test]
            fn $name() {
                let (_dir, store) = open();
                let bytes: Vec<u8> = $bytes.to_vec();
                let bytes = &bytes[..];
                let got = store.put_manifest(bytes, &MediaType::parse($media));
                assert_eq!(got.is_ok(), $ok, "{got:?}");
                if let Ok(d) = got {
                    let digest = descriptor_digest(&d).unwrap();
                    assert_eq!(digest, Digest::sha256(bytes));
                    assert_eq!(d.size(), bytes.len() as u64);
                    assert_eq!(d.media_type().to_string(), $media);
                    assert_eq!(fs::read(store.blobs().path(&digest)).unwrap(), bytes, "exact bytes");
                }
            }
        )*};
    }

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    puts! {
        manifest_with_odd_spacing: OCI_MANIFEST,
            format!(r#"{{ "schemaVersion": 2, "config": {{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "{EMPTY}", "size": 0}}, "layers": [] }}"#).as_bytes() => true;
        manifest_that_is_not_json: OCI_MANIFEST, b"not json" => false;
        index_that_is_a_manifest: crate::oci::media_type::OCI_INDEX,
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"a/b","digest":"{EMPTY}","size":0}},"layers":[]}}"#).as_bytes() => false;
        config: crate::oci::media_type::OCI_CONFIG, br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"# => true;
        config_that_is_a_list: crate::oci::media_type::OCI_CONFIG, b"[]" => false;
        artifact: "application/vnd.example+json", b"anything" => true;
    }

    #[test]
    fn tag_needs_the_blob() {
        let (_dir, store) = open();
        let r = Reference::parse("app").unwrap();
        let missing = descriptor(&MediaType::OciManifest, &Digest::sha256(b"nope"), 4);
        let err = store.tag(&r, missing).unwrap_err();
        assert!(matches!(err, StoreError::TagMissingBlob { .. }), "{err:?}");
        let config = ImageConfig::new(&Platform::parse("linux/amd64").unwrap());
        let d = store
            .put_manifest(&config.to_canonical_json().unwrap(), &MediaType::OciConfig)
            .unwrap();
        assert_eq!(store.tag(&r, d.clone()).unwrap(), None);
        assert_eq!(store.resolve(&r).unwrap(), Some(d.clone()));
        assert_eq!(
            store.list().unwrap(),
            [(r.clone().with_default_tag(), d.clone())]
        );
        assert_eq!(store.untag(&r).unwrap(), Some(d));
    }

    #[test]
    fn lock_wait_hook_reaches_the_index() {
        let (_dir, store) = open();
        let told = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let store = {
            let told = told.clone();
            store
                .with_lock_wait_hook(move |_| told.store(true, std::sync::atomic::Ordering::SeqCst))
        };
        let held = store.lock().exclusive().unwrap();
        let reader = {
            let store = store.clone();
            std::thread::spawn(move || store.list().map(|l| l.len()))
        };
        while !told.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(held);
        assert_eq!(reader.join().unwrap().unwrap(), 0);
    }
}
