//! Incremental COPY: a COPY that runs again because some of its files changed takes the
//! files that did not change from the snapshot its previous run made, as hard links,
//! instead of reading and writing them again. Its layer still holds every file.
//!
//! A file is taken only when all of these hold: the source is not multiply linked; its
//! content hash (from the build's hash cache, which this build's key just checked) is the
//! one the previous run recorded for the same destination; and the previous file is a
//! regular file with exactly the mode, owner, modification time and size the copy would
//! give it, no extended attributes, and is not taken twice. Anything else is copied.
//!
//! A step's overlay cannot link across the mount (`EXDEV`), so a taken file is only noted
//! while the copy runs; its directory is made to exist in the upper directory (a copy-up),
//! and once the overlay is unmounted the links go straight into the upper directory
//! ([`Reused::link_into`]), their directories' times put back as the copy left them.
//!
//! The previous run of "the same COPY" is found by the operation as written (its
//! sources, destination, options, `--chown`) and the platform: `<state root>/cache/copies/<id>`
//! holds the snapshot it made and the content hash of each file it wrote, by destination.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec};
use rustix::io::Errno;

use super::error::CopyError;
use super::hash::HashCache;

const MAGIC: &[u8] = b"rbuild copy result v1\n";

/// What the previous run of a COPY wrote: its snapshot, and each file's content hash by
/// its path in the root filesystem.
#[derive(Debug, Default)]
pub(crate) struct Previous {
    /// The snapshot (an overlay upper directory): the previous files are below it.
    root: PathBuf,
    files: HashMap<String, [u8; 32]>,
}

impl Previous {
    /// The record at `path` if it names a snapshot that `snapshot` (chain ID hex → its
    /// directory) finds; None when there is none or it cannot be read.
    pub(crate) fn load(
        path: &Path,
        snapshot: impl Fn(&str) -> Option<PathBuf>,
    ) -> Option<Previous> {
        let mut input = BufReader::new(std::fs::File::open(path).ok()?);
        let mut magic = vec![0; MAGIC.len()];
        input.read_exact(&mut magic).ok()?;
        if magic != MAGIC {
            return None;
        }
        let mut chain = [0; 64];
        input.read_exact(&mut chain).ok()?;
        let root = snapshot(std::str::from_utf8(&chain).ok()?)?;
        let mut files = HashMap::new();
        loop {
            let mut len = [0; 4];
            match input.read_exact(&mut len) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(_) => return None,
            }
            let mut name = vec![0; u32::from_le_bytes(len) as usize];
            input.read_exact(&mut name).ok()?;
            let mut hash = [0; 32];
            input.read_exact(&mut hash).ok()?;
            files.insert(String::from_utf8(name).ok()?, hash);
        }
        Some(Previous { root, files })
    }
}

/// Write the record of a COPY that made the snapshot `chain` (hex) with `files`.
pub(crate) fn save(path: &Path, chain: &str, files: &[(String, [u8; 32])]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}", crate::store::unique_suffix()));
    let write = || -> std::io::Result<()> {
        let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
        out.write_all(MAGIC)?;
        out.write_all(chain.as_bytes())?;
        for (name, hash) in files {
            out.write_all(&(name.len() as u32).to_le_bytes())?;
            out.write_all(name.as_bytes())?;
            out.write_all(hash)?;
        }
        out.into_inner().map_err(|e| e.into_error())?;
        std::fs::rename(&tmp, path)
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// What a copy with [`Reuse`] took and wrote.
#[derive(Debug, Default)]
pub(crate) struct Reused {
    /// The previous run's snapshot, and the files to link from it once the overlay is
    /// unmounted (by path in the root).
    old_root: PathBuf,
    pending: BTreeSet<String>,
    /// Directories already made to exist in the upper directory.
    copied_up: HashSet<String>,
    /// Previous inodes already taken (each at most once, or the layer would link them).
    used: HashSet<(u64, u64)>,
    /// Every regular file written and its content hash: the next run's [`Previous`].
    pub(crate) files: Vec<(String, [u8; 32])>,
    /// Bytes not read or written thanks to links.
    pub(crate) linked_bytes: u64,
    /// What was copied after all: (files, bytes).
    pub(crate) copied: (u64, u64),
}

/// A copy's access to its previous run, and what it took from it.
pub(crate) struct Reuse<'a> {
    pub(crate) previous: Option<&'a Previous>,
    pub(crate) hashes: &'a HashCache,
    pub(crate) out: Reused,
}

/// What a taken file must look like: what the copy would have made.
pub(super) struct Wanted {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: Timespec,
    pub(super) size: u64,
}

impl Reuse<'_> {
    /// Note the regular file `real` about to be written from the source at `host` whose
    /// `lstat` is `meta`; true when it is taken from the previous run (nothing is to be
    /// written now). `dir` is its directory in the step's root, `dir_real` that directory's
    /// path.
    pub(super) fn take(
        &mut self,
        dir: &std::os::fd::OwnedFd,
        dir_real: &str,
        real: &str,
        host: &Path,
        meta: &std::fs::Metadata,
        wanted: &Wanted,
    ) -> Result<bool, CopyError> {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() != 1 {
            return Ok(false);
        }
        let Some(hash) = self.hashes.known(host, meta) else {
            return Ok(false);
        };
        self.out.files.push((real.to_string(), hash));
        let Some(previous) = self.previous else {
            return Ok(false);
        };
        if previous.files.get(real) != Some(&hash) {
            return Ok(false);
        }
        let old = previous.root.join(real);
        let Ok(st) = rustix::fs::lstat(&old) else {
            return Ok(false);
        };
        let same = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
            && st.st_mode & 0o7777 == wanted.mode
            && (st.st_uid, st.st_gid) == (wanted.uid, wanted.gid)
            && (st.st_mtime, st.st_mtime_nsec as i64)
                == (wanted.mtime.tv_sec, wanted.mtime.tv_nsec)
            && st.st_size as u64 == wanted.size
            && rustix::fs::llistxattr(&old, &mut [0u8; 0]).is_ok_and(|n| n == 0);
        if !same || !self.out.used.insert((st.st_dev, st.st_ino)) {
            return Ok(false);
        }
        // The directory must be in the upper directory for the link to land there: an
        // entry made and removed through the overlay copies it up, as writing the file
        // would have.
        if self.out.copied_up.insert(dir_real.to_string()) {
            let probe = format!(".rbuild-copy-up-{}", std::process::id());
            let failed = |step, e: Errno| CopyError::WriteDestination {
                path: format!("/{dir_real}"),
                step,
                source: e.into(),
            };
            rustix::fs::openat(
                dir,
                probe.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| failed("create", e))?;
            rustix::fs::unlinkat(dir, probe.as_str(), AtFlags::empty())
                .map_err(|e| failed("remove", e))?;
        }
        self.out.linked_bytes += wanted.size;
        self.out.old_root.clone_from(&previous.root);
        self.out.pending.insert(real.to_string());
        Ok(true)
    }
}

impl Reuse<'_> {
    /// Something else is written at `real` (a later source of the same COPY): the file
    /// taken there, if any, is not linked after all.
    pub(super) fn forget(&mut self, real: &str) {
        self.out.pending.remove(real);
    }

    /// Whether a file was taken at `real` (so it is there, for what the copy does next).
    pub(super) fn taken_at(&self, real: &str) -> bool {
        self.out.pending.contains(real)
    }
}

impl Reused {
    /// Files taken from the previous run.
    pub(crate) fn taken(&self) -> usize {
        self.pending.len()
    }

    /// Link the taken files into `upper` (the step's unmounted upper directory), replacing
    /// the whiteout the copy left where it removed a lower file, and give their directories
    /// back the times they had. Each directory is opened once, on both sides.
    pub(crate) fn link_into(&self, upper: &Path) -> Result<(), CopyError> {
        let failed = |path: &Path, step| {
            let path = path.display().to_string();
            move |e: Errno| CopyError::WriteDestination {
                path,
                step,
                source: e.into(),
            }
        };
        let open_dir = |path: &Path| {
            crate::snapshot::native::open_dir(path).map_err(|e| CopyError::WriteDestination {
                path: path.display().to_string(),
                step: "open",
                source: e,
            })
        };
        let mut by_dir: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for real in &self.pending {
            let (dir, name) = real.rsplit_once('/').unwrap_or(("", real));
            by_dir.entry(dir).or_default().push(name);
        }
        for (dir, names) in by_dir {
            let (new_path, old_path) = (upper.join(dir), self.old_root.join(dir));
            let new_dir = open_dir(&new_path)?;
            let old_dir = open_dir(&old_path)?;
            let st = rustix::fs::fstat(&new_dir).map_err(failed(&new_path, "stat"))?;
            let times = crate::snapshot::native::times(&st);
            for name in names {
                let dest = || new_path.join(name);
                match rustix::fs::linkat(&old_dir, name, &new_dir, name, AtFlags::empty()) {
                    Ok(()) => {}
                    // A whiteout: the copy removed a lower file here.
                    Err(Errno::EXIST)
                        if rustix::fs::statat(&new_dir, name, AtFlags::SYMLINK_NOFOLLOW)
                            .is_ok_and(|st| {
                                FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
                                    && st.st_rdev == 0
                            }) =>
                    {
                        let tmp = format!(".rbuild-link-{}", crate::store::unique_suffix());
                        rustix::fs::linkat(
                            &old_dir,
                            name,
                            &new_dir,
                            tmp.as_str(),
                            AtFlags::empty(),
                        )
                        .map_err(failed(&dest(), "link"))?;
                        rustix::fs::renameat(&new_dir, tmp.as_str(), &new_dir, name)
                            .map_err(failed(&dest(), "rename"))?;
                    }
                    Err(e) => return Err(failed(&dest(), "link")(e)),
                }
            }
            rustix::fs::futimens(&new_dir, &times).map_err(failed(&new_path, "set times"))?;
        }
        Ok(())
    }
}
