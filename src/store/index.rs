//! Tags: `<root>/index.json`, an OCI image index (image-spec `image-layout.md` "index.json")
//! with one descriptor per tagged image, named by its `org.opencontainers.image.ref.name`
//! annotation holding the full normalised reference (`docker.io/library/busybox:latest`).
//!
//! [`Tags`] is the document and its pure operations (one entry per name: a tag moves by
//! replacing its entry). [`TagIndex`] is the file: reads under the shared store lock,
//! read-modify-write under the exclusive lock, and replacement by temporary file + `fsync` +
//! `rename`, so readers never see a torn file and two processes never lose each other's
//! tags. The file is canonical JSON with entries sorted by name, so saving what was loaded
//! gives the same bytes.
//!
//! Entries this module did not write are kept as they are: an entry without a ref name, or
//! whose ref name is not a full normalised reference (`latest`, as `skopeo copy oci:` writes),
//! is never listed, resolved or dropped. A file that does not parse is an error naming it,
//! and is left untouched: we never replace what we could not read (see `docs/store.md`).
//!
//! This file does not read blobs and does not check that a tagged blob exists.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::StoreError;
use super::lock::StoreLock;
use super::temp;
use crate::oci::Reference;
use crate::oci::manifest::{
    Descriptor, ImageIndex, Manifest, ManifestError, descriptor_digest, image_index,
    parse_manifest_any, to_canonical_oci,
};
use crate::oci::media_type::{OCI_INDEX, OCI_MANIFEST};

/// The index file's name under the root.
pub const INDEX_FILE: &str = "index.json";
/// The annotation that names an index entry (image-spec `annotations.md`).
pub const REF_NAME: &str = oci_spec::image::ANNOTATION_REF_NAME;
/// Mode of `index.json`.
const INDEX_MODE: u32 = 0o644;

/// The tags of a store: the parsed `index.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tags {
    index: ImageIndex,
}

/// The name an entry is stored under: the full reference, `:latest` added when it has
/// neither tag nor digest.
fn key(reference: &Reference) -> String {
    reference.clone().with_default_tag().to_string()
}

/// An entry's ref name, when there is one.
fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    descriptor
        .annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

/// An entry's reference, when its ref name is a full normalised one that this module wrote.
fn entry_reference(descriptor: &Descriptor) -> Option<Reference> {
    let name = ref_name(descriptor)?;
    Reference::parse(name)
        .ok()
        .filter(|r| r.to_string() == name)
}

/// The descriptor without our ref-name annotation: what was handed to [`Tags::tag`].
fn without_ref_name(mut descriptor: Descriptor) -> Descriptor {
    if let Some(mut annotations) = descriptor.annotations().clone() {
        annotations.remove(REF_NAME);
        descriptor.set_annotations((!annotations.is_empty()).then_some(annotations));
    }
    descriptor
}

fn with_ref_name(descriptor: Descriptor, name: String) -> Descriptor {
    let mut descriptor = without_ref_name(descriptor);
    let mut annotations = descriptor.annotations().clone().unwrap_or_default();
    annotations.insert(REF_NAME.to_string(), name);
    descriptor.set_annotations(Some(annotations));
    descriptor
}

impl Default for Tags {
    fn default() -> Tags {
        Tags::new()
    }
}

impl Tags {
    /// No tags.
    pub(crate) fn new() -> Tags {
        Tags {
            index: image_index(Vec::new()),
        }
    }

    /// Parse `index.json`'s bytes; `path` is only for the error.
    pub(crate) fn from_json(bytes: &[u8], path: &Path) -> Result<Tags, StoreError> {
        let corrupt = |source| StoreError::CorruptIndex {
            path: path.to_path_buf(),
            source,
        };
        let index = match parse_manifest_any(bytes, Some(OCI_INDEX)).map_err(corrupt)? {
            Manifest::Index(index) => index,
            // parse_manifest_any refuses a manifest served as an index; kept total anyway.
            Manifest::Image(_) => {
                return Err(corrupt(ManifestError::KindMismatch {
                    header: OCI_INDEX.to_string(),
                    body: OCI_MANIFEST.to_string(),
                }));
            }
        };
        // Every entry must name a digest we can look up, or prune could not account for it.
        for entry in index.manifests() {
            descriptor_digest(entry).map_err(corrupt)?;
        }
        Ok(Tags { index })
    }

    /// The canonical bytes of `index.json`: entries sorted by ref name (unnamed entries
    /// last, in their original order); `path` is only for the error.
    pub(crate) fn to_json(&self, path: &Path) -> Result<Vec<u8>, StoreError> {
        let mut index = self.index.clone();
        let mut manifests = index.manifests().clone();
        manifests.sort_by(|a, b| match (ref_name(a), ref_name(b)) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        index.set_manifests(manifests);
        to_canonical_oci(&index).map_err(|source| StoreError::EncodeIndex {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The image tagged `reference`: the entry of that exact name; failing that, for a
    /// reference with a digest, an entry of the same repository with that digest (so
    /// `busybox@sha256:…` finds the image tagged `busybox:latest`).
    pub(crate) fn resolve(&self, reference: &Reference) -> Option<Descriptor> {
        let name = key(reference);
        let exact = self
            .index
            .manifests()
            .iter()
            .find(|d| ref_name(d) == Some(name.as_str()));
        let by_digest = || {
            let digest = reference.digest()?;
            self.index.manifests().iter().find(|d| {
                entry_reference(d).is_some_and(|r| r.name() == reference.name())
                    && descriptor_digest(d).is_ok_and(|got| &got == digest)
            })
        };
        exact.or_else(by_digest).cloned().map(without_ref_name)
    }

    /// Tag `descriptor` as `reference`, replacing the entry of that name if there is one
    /// (returned). A reference with a digest must name the descriptor's digest.
    pub(crate) fn tag(
        &mut self,
        reference: &Reference,
        descriptor: Descriptor,
    ) -> Result<Option<Descriptor>, StoreError> {
        if let Some(expected) = reference.digest() {
            let actual = descriptor_digest(&descriptor).map_err(StoreError::DescriptorDigest)?;
            if &actual != expected {
                return Err(StoreError::TagDigestMismatch {
                    reference: Box::new(reference.clone()),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let name = key(reference);
        let previous = self.untag(reference);
        let mut manifests = self.index.manifests().clone();
        manifests.push(with_ref_name(descriptor, name));
        self.index.set_manifests(manifests);
        Ok(previous)
    }

    /// Remove the tag `reference`; the descriptor it named, if any.
    pub(crate) fn untag(&mut self, reference: &Reference) -> Option<Descriptor> {
        let name = key(reference);
        let (removed, kept): (Vec<Descriptor>, Vec<Descriptor>) = self
            .index
            .manifests()
            .iter()
            .cloned()
            .partition(|d| ref_name(d) == Some(name.as_str()));
        self.index.set_manifests(kept);
        removed.into_iter().next().map(without_ref_name)
    }

    /// Every tag, sorted by reference.
    pub(crate) fn list(&self) -> Vec<(Reference, Descriptor)> {
        let mut tags: Vec<(Reference, Descriptor)> = self
            .index
            .manifests()
            .iter()
            .filter_map(|d| Some((entry_reference(d)?, without_ref_name(d.clone()))))
            .collect();
        tags.sort_by_key(|(r, _)| r.to_string());
        tags
    }

    /// Every entry, named or not, as stored: what keeps blobs alive.
    pub(crate) fn entries(&self) -> &[Descriptor] {
        self.index.manifests()
    }

    /// Every digest an entry names (unsupported algorithms skipped).
    #[cfg(test)]
    pub(crate) fn digests(&self) -> impl Iterator<Item = crate::oci::Digest> + '_ {
        self.entries()
            .iter()
            .filter_map(|d| descriptor_digest(d).ok())
    }
}

/// `<root>/index.json` and the lock that guards it.
#[derive(Clone, Debug)]
pub struct TagIndex {
    path: PathBuf,
    tmp: PathBuf,
    lock: StoreLock,
}

impl TagIndex {
    /// The index of the store at `root`, written through temporary files in `tmp`.
    pub(crate) fn new(root: &Path, tmp: &Path, lock: StoreLock) -> TagIndex {
        TagIndex {
            path: root.join(INDEX_FILE),
            tmp: tmp.to_path_buf(),
            lock,
        }
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Write an empty index unless one exists (atomic, no lock needed: see `temp.rs`).
    pub(crate) fn create_if_missing(&self) -> Result<(), StoreError> {
        let bytes = Tags::new().to_json(&self.path)?;
        temp::create_file(&self.tmp, &self.path, &bytes, INDEX_MODE).map(drop)
    }

    /// Read the tags under the shared lock. A missing file reads as no tags.
    pub(crate) fn load(&self) -> Result<Tags, StoreError> {
        let _guard = self.lock.shared()?;
        self.read()
    }

    /// Read-modify-write under the exclusive lock: `change` sees the current tags, and what
    /// it leaves is saved if it returns `Ok` and changed anything.
    pub(crate) fn update<T>(
        &self,
        change: impl FnOnce(&mut Tags) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _guard = self.lock.exclusive()?;
        let before = self.read()?;
        let mut tags = before.clone();
        let out = change(&mut tags)?;
        if tags != before {
            let bytes = tags.to_json(&self.path)?;
            temp::replace_file(&self.tmp, &self.path, &bytes, INDEX_MODE)?;
        }
        Ok(out)
    }

    /// See [`Tags::tag`].
    pub(crate) fn tag(
        &self,
        reference: &Reference,
        descriptor: Descriptor,
    ) -> Result<Option<Descriptor>, StoreError> {
        self.update(|tags| tags.tag(reference, descriptor))
    }

    /// See [`Tags::untag`].
    pub(crate) fn untag(&self, reference: &Reference) -> Result<Option<Descriptor>, StoreError> {
        self.update(|tags| Ok(tags.untag(reference)))
    }

    /// See [`Tags::resolve`].
    pub(crate) fn resolve(&self, reference: &Reference) -> Result<Option<Descriptor>, StoreError> {
        Ok(self.load()?.resolve(reference))
    }

    /// See [`Tags::list`].
    pub(crate) fn list(&self) -> Result<Vec<(Reference, Descriptor)>, StoreError> {
        Ok(self.load()?.list())
    }

    fn read(&self) -> Result<Tags, StoreError> {
        match fs::read(&self.path) {
            Ok(bytes) => Tags::from_json(&bytes, &self.path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Tags::new()),
            Err(source) => Err(StoreError::ReadIndex {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Digest;
    use crate::oci::manifest::{descriptor, oci_platform};
    use crate::oci::{MediaType, Platform};

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    fn d(content: &str) -> Descriptor {
        descriptor(
            &MediaType::OciManifest,
            &Digest::sha256(content.as_bytes()),
            content.len() as u64,
        )
    }

    fn index() -> (tempfile::TempDir, TagIndex) {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let index = TagIndex::new(dir.path(), &tmp, StoreLock::new(dir.path().join("lock")));
        index.create_if_missing().unwrap();
        (dir, index)
    }

    /// `tags applied in order (reference => content), reference looked up => content found`.
    macro_rules! resolves {
        ($($name:ident: [$($tag:expr => $content:expr),*], $lookup:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let mut tags = Tags::new();
                $(tags.tag(&r($tag), d($content)).unwrap();)*
                let want: Option<&str> = $want;
                assert_eq!(tags.resolve(&r($lookup)), want.map(d));
            }
        )*};
    }

    resolves! {
        short_and_full_names_meet: ["busybox" => "a"], "docker.io/library/busybox:latest" => Some("a");
        no_tag_means_latest: ["busybox:latest" => "a"], "busybox" => Some("a");
        other_tag_is_not_found: ["busybox:1" => "a"], "busybox" => None;
        tag_moves: ["app:1" => "a", "app:1" => "b"], "app:1" => Some("b");
        tags_are_per_name: ["app:1" => "a", "app:2" => "b"], "app:1" => Some("a");
        registries_differ: ["ghcr.io/o/app:1" => "a"], "o/app:1" => None;
        digest_finds_a_tag_of_that_repository: ["app:1" => "a"],
            &format!("app@{}", Digest::sha256(b"a")) => Some("a");
        digest_of_another_repository_is_not_found: ["app:1" => "a"],
            &format!("other@{}", Digest::sha256(b"a")) => None;
        tag_and_digest_must_both_match: ["app:1" => "a"],
            &format!("app:2@{}", Digest::sha256(b"a")) => Some("a");
    }

    #[test]
    fn tag_returns_the_previous_and_keeps_one_entry() {
        let mut tags = Tags::new();
        assert_eq!(tags.tag(&r("app"), d("a")).unwrap(), None);
        assert_eq!(tags.tag(&r("app:latest"), d("b")).unwrap(), Some(d("a")));
        assert_eq!(tags.entries().len(), 1);
        assert_eq!(tags.list(), [(r("docker.io/library/app:latest"), d("b"))]);
    }

    #[test]
    fn tag_by_digest_must_match() {
        let mut tags = Tags::new();
        let good = r(&format!("app@{}", Digest::sha256(b"a")));
        tags.tag(&good, d("a")).unwrap();
        assert_eq!(tags.resolve(&good), Some(d("a")));
        let err = tags.tag(&good, d("b")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&Digest::sha256(b"a").to_string()), "{text}");
        assert!(text.contains(&Digest::sha256(b"b").to_string()), "{text}");
    }

    #[test]
    fn annotations_of_the_caller_are_kept() {
        let mut tags = Tags::new();
        let mut desc = d("a");
        desc.set_annotations(Some(std::collections::HashMap::from([(
            "org.example".to_string(),
            "x".to_string(),
        )])));
        desc.set_platform(Some(oci_platform(&Platform::parse("linux/arm64").unwrap())));
        tags.tag(&r("app"), desc.clone()).unwrap();
        assert_eq!(tags.resolve(&r("app")), Some(desc.clone()));
        assert_eq!(tags.untag(&r("app")), Some(desc));
        assert!(tags.entries().is_empty());
    }

    #[test]
    fn tag_move_untag_round_trip_on_disk() {
        let (_dir, index) = index();
        index.tag(&r("busybox"), d("a")).unwrap();
        index.tag(&r("alpine:3"), d("b")).unwrap();
        assert_eq!(index.tag(&r("busybox"), d("c")).unwrap(), Some(d("a")));
        assert_eq!(
            index.list().unwrap(),
            [
                (r("docker.io/library/alpine:3"), d("b")),
                (r("docker.io/library/busybox:latest"), d("c")),
            ]
        );
        assert_eq!(index.untag(&r("busybox")).unwrap(), Some(d("c")));
        assert_eq!(index.untag(&r("busybox")).unwrap(), None);
        assert_eq!(index.resolve(&r("alpine:3")).unwrap(), Some(d("b")));
        let text = fs::read_to_string(index.path()).unwrap();
        assert!(
            text.contains(r#""org.opencontainers.image.ref.name":"docker.io/library/alpine:3""#),
            "{text}"
        );
    }

    #[test]
    fn saved_index_is_canonical_and_stable() {
        let (_dir, index) = index();
        let mut desc = d("a");
        desc.set_platform(Some(oci_platform(&Platform {
            os_version: Some("10.0.17763.1".into()),
            ..Platform::parse("windows/amd64").unwrap()
        })));
        index.tag(&r("b"), d("b")).unwrap();
        index.tag(&r("a"), desc).unwrap();
        let saved = fs::read(index.path()).unwrap();
        let text = String::from_utf8(saved.clone()).unwrap();
        assert!(text.contains(r#""os.version":"10.0.17763.1""#), "{text}");
        assert!(
            text.find("library/a:latest") < text.find("library/b:latest"),
            "sorted: {text}"
        );
        assert!(
            text.starts_with(r#"{"manifests":[{"annotations":"#),
            "{text}"
        );
        let reloaded = Tags::from_json(&saved, index.path()).unwrap();
        assert_eq!(
            reloaded.to_json(index.path()).unwrap(),
            saved,
            "load + save is byte-identical"
        );
        // A no-op update does not rewrite the file.
        let before = fs::metadata(index.path()).unwrap().modified().unwrap();
        index.update(|_| Ok(())).unwrap();
        assert_eq!(
            fs::metadata(index.path()).unwrap().modified().unwrap(),
            before
        );
    }

    #[test]
    fn empty_index_bytes() {
        let bytes = Tags::new().to_json(Path::new("index.json")).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#
        );
    }

    #[test]
    fn foreign_entries_are_kept() {
        let (_dir, index) = index();
        let foreign = format!(
            r#"{{"schemaVersion":2,"manifests":[
                {{"mediaType":"{m}","digest":"{x}","size":1,"annotations":{{"{REF_NAME}":"latest"}}}},
                {{"mediaType":"{m}","digest":"{y}","size":2}}]}}"#,
            m = crate::oci::media_type::OCI_MANIFEST,
            x = Digest::sha256(b"x"),
            y = Digest::sha256(b"y"),
        );
        fs::write(index.path(), foreign).unwrap();
        assert!(
            index.list().unwrap().is_empty(),
            "neither entry is one of our tags"
        );
        assert_eq!(
            index.resolve(&r("latest")).unwrap(),
            None,
            "`latest` is not docker.io/library/latest"
        );
        index.tag(&r("app"), d("a")).unwrap();
        let tags = index.load().unwrap();
        assert_eq!(tags.entries().len(), 3);
        assert_eq!(
            tags.digests()
                .filter(|g| g == &Digest::sha256(b"y"))
                .count(),
            1
        );
        assert_eq!(
            ref_name(&tags.entries()[0]),
            Some("docker.io/library/app:latest"),
            "named first"
        );
    }

    /// `index.json content => error`: the file is kept byte for byte, no copy is made, and
    /// neither reads nor writes go through.
    macro_rules! corrupt {
        ($($name:ident: $content:expr;)*) => {$(
            #[test]
            fn $name() {
                let (dir, index) = index();
                let content: &[u8] = $content;
                fs::write(index.path(), content).unwrap();
                for err in [
                    index.list().unwrap_err(),
                    index.resolve(&r("app")).unwrap_err(),
                    index.tag(&r("app"), d("a")).unwrap_err(),
                    index.untag(&r("app")).unwrap_err(),
                ] {
                    assert!(matches!(err, StoreError::CorruptIndex { .. }), "{err:?}");
                    let text = err.to_string();
                    assert!(text.contains(&index.path().display().to_string()), "{text}");
                    assert!(text.contains("left untouched"), "{text}");
                }
                assert_eq!(fs::read(index.path()).unwrap(), content);
                let files = fs::read_dir(dir.path()).unwrap().count();
                assert_eq!(files, 3, "index.json, lock, tmp: no copies");
            }
        )*};
    }

    corrupt! {
        truncated_json: br#"{"schemaVersion":2,"manifests":[{"#;
        empty_file: b"";
        an_image_manifest: br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a/b","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;
        bad_digest_in_entry: br#"{"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"sha256:abc","size":1}]}"#;
        wrong_schema_version: br#"{"schemaVersion":3,"manifests":[]}"#;
    }

    #[test]
    fn missing_index_reads_as_empty() {
        let (_dir, index) = index();
        fs::remove_file(index.path()).unwrap();
        assert!(index.list().unwrap().is_empty());
        index.tag(&r("app"), d("a")).unwrap();
        assert_eq!(index.list().unwrap().len(), 1);
    }

    #[test]
    fn concurrent_taggers_lose_nothing() {
        let (dir, index) = index();
        std::thread::scope(|s| {
            for t in 0..4 {
                let index = TagIndex::new(
                    dir.path(),
                    &dir.path().join("tmp"),
                    StoreLock::new(dir.path().join("lock")),
                );
                s.spawn(move || {
                    for i in 0..10 {
                        index
                            .tag(&r(&format!("app:t{t}-{i}")), d(&format!("{t}-{i}")))
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(index.list().unwrap().len(), 40);
    }
}
