//! [`BlobStore`]: the content-addressed blobs of the store, `blobs/<algorithm>/<hex>` in OCI
//! image-layout form (image-spec `image-layout.md` "Blobs"), written through temporary files
//! in `tmp/` and renamed into place once verified.
//!
//! Writes stream through a fixed buffer and a [`DigestingWriter`]: a blob is never held in
//! memory, whatever its size. Writes take no lock: a blob's name is its content, and
//! `rename(2)` is atomic, so two writers of the same blob both succeed and readers see
//! either no file or the whole file. Published blobs are made read-only (0444), as
//! containerd's local content store does (`plugins/content/local/writer.go` `Commit`), to
//! catch accidental writes through a path.
//!
//! This file owns bytes only: it does not parse manifests, know about tags, or decide what
//! may be deleted (that is the index's and a future prune's business).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::error::StoreError;
use super::temp::{self, STALE_AFTER, TempPath};
use crate::oci::{Algorithm, Digest, DigestAndSize, Digester, DigestingWriter};

/// The directory under the root that holds blobs.
pub const BLOBS_DIR: &str = "blobs";
/// The directory under the root that holds in-flight writes.
pub const TMP_DIR: &str = "tmp";
/// Mode of a published blob.
const BLOB_MODE: u32 = 0o444;
/// The copy buffer: the most of a blob that is ever in memory at once.
const COPY_BUFFER: usize = 128 * 1024;
/// The largest manifest, index or config `BlobStore::read_small` reads into memory.
/// Registries refuse manifests over 4 MiB (distribution `maxManifestBodySize`); configs with
/// long histories are bigger than manifests but nowhere near this.
pub const MAX_SMALL_BLOB: u64 = 16 * 1024 * 1024;
/// The algorithms whose directories [`BlobStore::list`] reads.
const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

/// What a blob being written is expected to be. Converts from `&Digest`, `&DigestAndSize`
/// and `Option`s of them, so callers write `blobs.write(r, &digest)` or
/// `blobs.write(r, Expected::Unknown)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected<'a> {
    /// Content we produced ourselves: store it under whatever it hashes to.
    Unknown,
    Digest(&'a Digest),
    DigestAndSize(&'a DigestAndSize),
}

impl<'a> Expected<'a> {
    pub(crate) fn digest(self) -> Option<&'a Digest> {
        match self {
            Expected::Unknown => None,
            Expected::Digest(d) => Some(d),
            Expected::DigestAndSize(ds) => Some(&ds.digest),
        }
    }

    pub(crate) fn size(self) -> Option<u64> {
        match self {
            Expected::DigestAndSize(ds) => Some(ds.size),
            _ => None,
        }
    }

    /// The algorithm to hash with: the expected digest's, else sha256.
    pub(crate) fn algorithm(self) -> Algorithm {
        self.digest().map_or(Algorithm::Sha256, Digest::algorithm)
    }

    /// `Ok` when `got` is what was expected; size is checked first (the cheaper tell of a
    /// truncated stream).
    fn check(self, got: &DigestAndSize) -> Result<(), StoreError> {
        let result = match self {
            Expected::Unknown => Ok(()),
            Expected::Digest(d) => d.verify(&got.digest),
            Expected::DigestAndSize(ds) => got.verify(&ds.digest, ds.size),
        };
        result.map_err(|source| StoreError::BlobMismatch { source })
    }

    fn describe(self) -> String {
        self.digest()
            .map_or_else(|| "(digest not yet known)".to_string(), Digest::to_string)
    }
}

impl<'a> From<&'a Digest> for Expected<'a> {
    fn from(d: &'a Digest) -> Expected<'a> {
        Expected::Digest(d)
    }
}

impl<'a> From<&'a DigestAndSize> for Expected<'a> {
    fn from(ds: &'a DigestAndSize) -> Expected<'a> {
        Expected::DigestAndSize(ds)
    }
}

impl<'a> From<Option<&'a Digest>> for Expected<'a> {
    fn from(d: Option<&'a Digest>) -> Expected<'a> {
        d.map_or(Expected::Unknown, Expected::Digest)
    }
}

impl<'a> From<Option<&'a DigestAndSize>> for Expected<'a> {
    fn from(ds: Option<&'a DigestAndSize>) -> Expected<'a> {
        ds.map_or(Expected::Unknown, Expected::DigestAndSize)
    }
}

/// The blobs under a store root. Cheap to clone (two paths); every method is safe to call
/// from several threads and processes at once.
#[derive(Clone, Debug)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    /// The blob area of `root`: creates `blobs/sha256/` and `tmp/` (mode 0700) if missing and
    /// removes temporary files a crashed process left in `tmp/` more than an hour ago.
    pub(crate) fn create(root: &Path) -> Result<BlobStore, StoreError> {
        let store = BlobStore {
            blobs: root.join(BLOBS_DIR),
            tmp: root.join(TMP_DIR),
        };
        create_private_dir(&store.blobs.join(Algorithm::Sha256.name()))?;
        create_private_dir(&store.tmp)?;
        temp::sweep_stale(&store.tmp, STALE_AFTER, SystemTime::now())?;
        Ok(store)
    }

    /// The directory of in-flight writes (shared with the index's atomic writes).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Where the blob `digest` is, or would be: `blobs/<algorithm>/<hex>`.
    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    /// Whether the blob is present (an unreadable directory reads as absent: the caller then
    /// fetches it again, which is safe).
    pub(crate) fn contains(&self, digest: &Digest) -> bool {
        fs::symlink_metadata(self.path(digest)).is_ok_and(|m| m.is_file())
    }

    /// Store everything `reader` yields, verified against `expected`, and return its digest
    /// and size. A mismatch stores nothing and leaves no temporary file. When the expected
    /// blob is already present the stream is still read and verified, but not written.
    pub fn write<'a>(
        &self,
        reader: impl Read,
        expected: impl Into<Expected<'a>>,
    ) -> Result<DigestAndSize, StoreError> {
        let expected = expected.into();
        if let Some(digest) = expected.digest()
            && self.contains(digest)
        {
            let mut sink = Digester::new(expected.algorithm());
            pump(reader, &mut sink, expected, Path::new("(hash only)"))?;
            let got = sink.peek();
            expected.check(&got)?;
            return Ok(got);
        }
        let mut writer = self.writer_with(expected.algorithm())?;
        let temp_path = writer.temp.path().to_path_buf();
        pump(reader, &mut writer.out, expected, &temp_path)?;
        writer.commit(expected)
    }

    /// A writer for content the caller produces (a layer's tar → compress pipeline), hashed
    /// with sha256. Nothing is stored until [`BlobWriter::commit`]; dropping the writer
    /// removes its temporary file.
    pub(crate) fn writer(&self) -> Result<BlobWriter, StoreError> {
        self.writer_with(Algorithm::Sha256)
    }

    /// [`BlobStore::writer`] hashing with `algorithm`.
    pub(crate) fn writer_with(&self, algorithm: Algorithm) -> Result<BlobWriter, StoreError> {
        let (file, temp) = TempPath::create(&self.tmp, "blob")?;
        Ok(BlobWriter {
            store: self.clone(),
            out: DigestingWriter::with_algorithm(
                BufWriter::with_capacity(COPY_BUFFER, file),
                algorithm,
            ),
            temp,
        })
    }

    /// Open a blob for reading.
    pub(crate) fn open(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.path(digest);
        File::open(&path).map_err(|source| {
            not_found_or(digest, path, source, |path, source| StoreError::OpenBlob {
                path,
                source,
            })
        })
    }

    /// The size of a stored blob in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64, StoreError> {
        let path = self.path(digest);
        match fs::metadata(&path) {
            Ok(meta) => Ok(meta.len()),
            Err(source) => Err(not_found_or(digest, path, source, |path, source| {
                StoreError::StatBlob { path, source }
            })),
        }
    }

    /// Delete a blob; `Ok(false)` when it was not there. Whether it may be deleted is the
    /// caller's decision (see `referenced_blobs`).
    pub(crate) fn delete(&self, digest: &Digest) -> Result<bool, StoreError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::DeleteBlob { path, source }),
        }
    }

    /// Every stored blob, sorted. Names that are not a digest of their directory's algorithm
    /// (stray files, editor backups, sub-directories) are skipped.
    pub fn list(&self) -> Result<std::vec::IntoIter<Digest>, StoreError> {
        let mut found = Vec::new();
        for algorithm in ALGORITHMS {
            let dir = self.blobs.join(algorithm.name());
            let list_err = |source| StoreError::ListDir {
                path: dir.clone(),
                source,
            };
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(list_err(e)),
            };
            for entry in entries {
                let entry = entry.map_err(list_err)?;
                if !entry.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if let Ok(digest) = Digest::parse(&format!("{algorithm}:{name}")) {
                    found.push(digest);
                }
            }
        }
        found.sort();
        Ok(found.into_iter())
    }

    /// Re-hash a stored blob and check that it still is what its name says (`rbuild`'s
    /// integrity check; bit rot and hand edits show up here).
    pub fn verify(&self, digest: &Digest) -> Result<DigestAndSize, StoreError> {
        let path = self.path(digest);
        let file = self.open(digest)?;
        let mut hasher = Digester::new(digest.algorithm());
        let mut reader = io::BufReader::with_capacity(COPY_BUFFER, file);
        io::copy(&mut reader, &mut hasher).map_err(|source| StoreError::ReadBlob {
            path: path.clone(),
            source,
        })?;
        let got = hasher.peek();
        digest
            .verify(&got.digest)
            .map_err(|source| StoreError::CorruptBlob { path, source })?;
        Ok(got)
    }

    /// Read a small blob (a manifest, index or config) whole, checking that it has the
    /// expected size and digest. Refuses sizes over [`MAX_SMALL_BLOB`].
    pub(crate) fn read_small(&self, expected: &DigestAndSize) -> Result<Vec<u8>, StoreError> {
        let file = self.open(&expected.digest)?;
        read_verified(file, &self.path(&expected.digest), expected)
    }
}

/// Read at most `expected.size` (+1, to notice a longer file) bytes of `file` and verify
/// them; used for the store's own blobs and for the files of an imported OCI layout.
pub(crate) fn read_verified(
    file: File,
    path: &Path,
    expected: &DigestAndSize,
) -> Result<Vec<u8>, StoreError> {
    if expected.size > MAX_SMALL_BLOB {
        return Err(StoreError::BlobTooLargeToRead {
            digest: expected.digest.clone(),
            size: expected.size,
            limit: MAX_SMALL_BLOB,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(expected.size).unwrap_or(0));
    file.take(expected.size + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| StoreError::ReadBlob {
            path: path.to_path_buf(),
            source,
        })?;
    let mut hasher = Digester::new(expected.digest.algorithm());
    hasher.update(&bytes);
    hasher
        .peek()
        .verify(&expected.digest, expected.size)
        .map_err(|source| StoreError::CorruptBlob {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(bytes)
}

/// A blob being written by its producer. Implements `io::Write`; `BlobWriter::commit`
/// publishes it, dropping it discards it (the temporary file is removed).
#[derive(Debug)]
pub struct BlobWriter {
    store: BlobStore,
    out: DigestingWriter<BufWriter<File>>,
    temp: TempPath,
}

impl BlobWriter {
    /// Bytes written so far.
    #[cfg(test)]
    pub(crate) fn size(&self) -> u64 {
        self.out.size()
    }

    /// Verify what was written against `expected` and publish it under its digest. A
    /// mismatch publishes nothing and removes the temporary file; a blob that is already
    /// present is left as it is (the new copy is discarded).
    pub(crate) fn commit<'a>(
        self,
        expected: impl Into<Expected<'a>>,
    ) -> Result<DigestAndSize, StoreError> {
        let expected = expected.into();
        let BlobWriter { store, out, temp } = self;
        let (buffered, got) = out.finish();
        let write_err = |source| StoreError::WriteFile {
            path: temp.path().to_path_buf(),
            source,
        };
        let file = buffered
            .into_inner()
            .map_err(|e| write_err(e.into_error()))?;
        expected.check(&got)?;
        let dest = store.path(&got.digest);
        if store.contains(&got.digest) {
            return Ok(got);
        }
        file.sync_all().map_err(|source| StoreError::SyncFile {
            path: temp.path().to_path_buf(),
            source,
        })?;
        temp::set_mode(&file, temp.path(), BLOB_MODE)?;
        if let Some(dir) = dest.parent() {
            // `blobs/sha256` exists since `create`; `blobs/sha512` appears with its first blob.
            create_private_dir(dir)?;
        }
        temp.publish(&dest)?;
        Ok(got)
    }

    /// Discard what was written (the same as dropping the writer, said out loud).
    #[cfg(test)]
    pub(crate) fn abort(self) {}
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Copy `reader` into `sink` through one fixed buffer, stopping as soon as more than the
/// expected size has arrived (a hostile or broken server cannot fill the disk).
fn pump(
    mut reader: impl Read,
    sink: &mut impl Write,
    expected: Expected<'_>,
    sink_path: &Path,
) -> Result<u64, StoreError> {
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(StoreError::ReadSource {
                    blob: expected.describe(),
                    source,
                });
            }
        };
        total += n as u64;
        if let (Some(digest), Some(size)) = (expected.digest(), expected.size())
            && total > size
        {
            return Err(StoreError::BlobTooLarge {
                digest: digest.clone(),
                expected: size,
            });
        }
        sink.write_all(&buf[..n])
            .map_err(|source| StoreError::WriteFile {
                path: sink_path.to_path_buf(),
                source,
            })?;
    }
}

fn not_found_or(
    digest: &Digest,
    path: PathBuf,
    source: io::Error,
    other: impl FnOnce(PathBuf, io::Error) -> StoreError,
) -> StoreError {
    if source.kind() == io::ErrorKind::NotFound {
        StoreError::BlobNotFound {
            digest: digest.clone(),
            path,
        }
    } else {
        other(path, source)
    }
}

/// Create `dir` and its missing parents with mode 0700 (see `docs/store.md` "Permissions").
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::create(dir.path()).unwrap();
        (dir, blobs)
    }

    fn tmp_is_empty(blobs: &BlobStore) -> bool {
        fs::read_dir(blobs.tmp_dir()).unwrap().next().is_none()
    }

    fn exact(data: &[u8]) -> DigestAndSize {
        DigestAndSize {
            digest: Digest::sha256(data),
            size: data.len() as u64,
        }
    }

    /// `content, what the caller expects => Ok | the error variant,`. Every case must leave
    /// `tmp/` empty, and a failure must leave no blob.
    macro_rules! writes {
        ($($name:ident: $data:expr, $expected:expr => $outcome:pat,)*) => {$(
            #[test]
            fn $name() {
                let (_dir, blobs) = store();
                let data: &[u8] = $data;
                let expected: DigestAndSize = $expected;
                let got = blobs.write(data, &expected);
                assert!(matches!(got, $outcome), "{got:?}");
                assert!(tmp_is_empty(&blobs), "temporary file left behind");
                let stored: Vec<Digest> = blobs.list().unwrap().collect();
                match got {
                    Ok(got) => {
                        assert_eq!(got, expected);
                        assert_eq!(stored, std::slice::from_ref(&expected.digest));
                        assert_eq!(fs::read(blobs.path(&expected.digest)).unwrap(), data);
                    }
                    Err(_) => assert!(stored.is_empty(), "{stored:?}"),
                }
            }
        )*};
    }

    writes! {
        write_exact: b"hello", exact(b"hello") => Ok(DigestAndSize { .. }),
        write_empty: b"", exact(b"") => Ok(DigestAndSize { .. }),
        write_wrong_digest: b"hello", DigestAndSize { size: 5, ..exact(b"jello") }
            => Err(StoreError::BlobMismatch { .. }),
        write_short: b"hell", exact(b"hello") => Err(StoreError::BlobMismatch { .. }),
        write_long: b"hello!", exact(b"hello") => Err(StoreError::BlobTooLarge { .. }),
    }

    #[test]
    fn mismatch_names_both_digests() {
        let (_dir, blobs) = store();
        let want = Digest::sha256(b"jello");
        let err = blobs.write(&b"hello"[..], &want).unwrap_err();
        let text = crate::diag::chain(&err);
        assert!(text.contains(&format!("expected {want}")), "{text}");
        assert!(
            text.contains(&format!("got {}", Digest::sha256(b"hello"))),
            "{text}"
        );
        let err = blobs.write(&b"hell"[..], &exact(b"hello")).unwrap_err();
        let text = crate::diag::chain(&err);
        assert!(text.contains("expected 5 bytes, got 4"), "{text}");
    }

    #[test]
    fn unknown_digest_is_computed() {
        let (_dir, blobs) = store();
        let got = blobs.write(&b"abc"[..], Expected::Unknown).unwrap();
        assert_eq!(got, exact(b"abc"));
        assert!(blobs.contains(&got.digest));
        let mode = fs::metadata(blobs.path(&got.digest))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444, "published blobs are read-only");
    }

    #[test]
    fn write_is_idempotent_and_still_verifies() {
        let (_dir, blobs) = store();
        let want = exact(b"same");
        blobs.write(&b"same"[..], &want).unwrap();
        let first = fs::metadata(blobs.path(&want.digest)).unwrap();
        assert_eq!(blobs.write(&b"same"[..], &want).unwrap(), want);
        assert_eq!(blobs.write(&b"same"[..], Expected::Unknown).unwrap(), want);
        let again = fs::metadata(blobs.path(&want.digest)).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(first.ino(), again.ino(), "not rewritten");
        // Present, but the caller's stream is wrong: still an error.
        let err = blobs.write(&b"sane"[..], &want.digest).unwrap_err();
        assert!(matches!(err, StoreError::BlobMismatch { .. }), "{err:?}");
        assert!(tmp_is_empty(&blobs));
    }

    #[test]
    fn writer_commit_and_drop() {
        let (_dir, blobs) = store();
        let mut w = blobs.writer().unwrap();
        w.write_all(b"layer ").unwrap();
        w.write_all(b"bytes").unwrap();
        assert_eq!(w.size(), 11);
        let got = w.commit(Expected::Unknown).unwrap();
        assert_eq!(got, exact(b"layer bytes"));

        let mut dropped = blobs.writer().unwrap();
        dropped.write_all(b"never committed").unwrap();
        drop(dropped);
        let mut aborted = blobs.writer().unwrap();
        aborted.write_all(b"aborted").unwrap();
        aborted.abort();
        let mut wrong = blobs.writer().unwrap();
        wrong.write_all(b"wrong").unwrap();
        assert!(wrong.commit(&Digest::sha256(b"right")).is_err());

        assert!(tmp_is_empty(&blobs));
        assert_eq!(blobs.list().unwrap().collect::<Vec<_>>(), [got.digest]);
    }

    #[test]
    fn sha512_blobs_get_their_own_directory() {
        let (_dir, blobs) = store();
        let mut hasher = Digester::new(Algorithm::Sha512);
        hasher.update(b"abc");
        let digest = hasher.finish();
        let got = blobs.write(&b"abc"[..], &digest).unwrap();
        assert_eq!(got.digest, digest);
        assert!(
            blobs
                .path(&digest)
                .to_string_lossy()
                .contains("/blobs/sha512/")
        );
        assert_eq!(blobs.verify(&digest).unwrap().size, 3);
        assert_eq!(blobs.list().unwrap().collect::<Vec<_>>(), [digest]);
    }

    #[test]
    fn open_size_delete_and_not_found() {
        let (_dir, blobs) = store();
        let d = blobs.write(&b"data"[..], Expected::Unknown).unwrap().digest;
        let mut text = String::new();
        blobs.open(&d).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "data");
        assert_eq!(blobs.size(&d).unwrap(), 4);
        assert!(blobs.delete(&d).unwrap());
        assert!(!blobs.delete(&d).unwrap());
        assert!(!blobs.contains(&d));
        for err in [blobs.open(&d).unwrap_err(), blobs.size(&d).unwrap_err()] {
            assert!(matches!(err, StoreError::BlobNotFound { .. }), "{err:?}");
            assert!(err.to_string().contains(d.as_str()), "{err}");
        }
    }

    #[test]
    fn list_ignores_junk() {
        let (dir, blobs) = store();
        let d = blobs.write(&b"x"[..], Expected::Unknown).unwrap().digest;
        let sha256 = dir.path().join("blobs/sha256");
        for junk in [
            "README",
            "ABCDEF",
            &d.hex()[..10],
            &format!("{}.tmp", d.hex()),
        ] {
            fs::write(sha256.join(junk), b"junk").unwrap();
        }
        fs::create_dir(sha256.join("e".repeat(64))).unwrap();
        fs::create_dir_all(dir.path().join("blobs/md5")).unwrap();
        fs::write(
            dir.path()
                .join("blobs/md5/d41d8cd98f00b204e9800998ecf8427e"),
            b"",
        )
        .unwrap();
        fs::write(dir.path().join("blobs/stray"), b"").unwrap();
        assert_eq!(blobs.list().unwrap().collect::<Vec<_>>(), [d]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever names lie in `blobs/sha256/`, `list` yields exactly the stored digests.
        #[test]
        fn list_never_trips_on_junk_names(names in proptest::collection::vec("[0-9a-fA-F._~-]{1,70}", 0..8)) {
            let (dir, blobs) = store();
            let d = blobs.write(&b"x"[..], Expected::Unknown).unwrap().digest;
            for name in names.iter().filter(|n| *n != "." && *n != ".." && *n != d.hex()) {
                let looks_valid = Digest::parse(&format!("sha256:{name}")).is_ok();
                if !looks_valid {
                    fs::write(dir.path().join("blobs/sha256").join(name), b"junk").unwrap();
                }
            }
            proptest::prop_assert_eq!(blobs.list().unwrap().collect::<Vec<_>>(), vec![d]);
        }
    }

    #[test]
    fn verify_finds_corruption() {
        let (_dir, blobs) = store();
        let d = blobs.write(&b"good"[..], Expected::Unknown).unwrap().digest;
        assert_eq!(blobs.verify(&d).unwrap().size, 4);
        let path = blobs.path(&d);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, b"evil").unwrap();
        let err = blobs.verify(&d).unwrap_err();
        assert!(matches!(err, StoreError::CorruptBlob { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        let cause = std::error::Error::source(&err).expect("the mismatch is the cause");
        assert!(
            cause
                .to_string()
                .contains(&format!("got {}", Digest::sha256(b"evil"))),
            "{cause}"
        );
    }

    #[test]
    fn read_small_checks_size_and_digest() {
        let (_dir, blobs) = store();
        let want = blobs.write(&b"{}"[..], Expected::Unknown).unwrap();
        assert_eq!(blobs.read_small(&want).unwrap(), b"{}");
        let wrong_size = DigestAndSize {
            size: 1,
            ..want.clone()
        };
        assert!(matches!(
            blobs.read_small(&wrong_size),
            Err(StoreError::CorruptBlob { .. })
        ));
        let huge = DigestAndSize {
            size: MAX_SMALL_BLOB + 1,
            ..want
        };
        assert!(matches!(
            blobs.read_small(&huge),
            Err(StoreError::BlobTooLargeToRead { .. })
        ));
    }

    #[test]
    fn create_sweeps_stale_temporaries_only() {
        let (dir, blobs) = store();
        let old = blobs.tmp_dir().join("blob-1-0");
        let fresh = blobs.tmp_dir().join("blob-1-1");
        File::create(&old)
            .unwrap()
            .set_modified(SystemTime::now() - STALE_AFTER - std::time::Duration::from_secs(60))
            .unwrap();
        File::create(&fresh).unwrap();
        BlobStore::create(dir.path()).unwrap();
        assert!(!old.exists(), "an hour-old temporary is a crashed writer's");
        assert!(fresh.exists(), "a fresh one may belong to a live writer");
    }

    #[test]
    fn two_threads_write_the_same_blob() {
        let (dir, _) = store();
        let data: Vec<u8> = (0..3 * COPY_BUFFER).map(|i| (i % 253) as u8).collect();
        let want = exact(&data);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let (data, want) = (&data, &want);
                    let root = dir.path();
                    s.spawn(move || BlobStore::create(root).unwrap().write(&data[..], want))
                })
                .collect();
            for h in handles {
                assert_eq!(h.join().unwrap().unwrap(), want);
            }
        });
        let blobs = BlobStore::create(dir.path()).unwrap();
        assert_eq!(blobs.verify(&want.digest).unwrap(), want);
        assert!(tmp_is_empty(&blobs));
    }
}
