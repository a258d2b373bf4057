//! The side COPY writes to: the step's root filesystem (the overlay's merged directory), a
//! tree whose symlinks come from the image and must never lead a write outside it.
//!
//! Owns: resolving a destination path with the root as `/` (continuity `fs.RootPath`, the
//! resolver BuildKit uses: symlinks followed, absolute ones from the root, `..` stopping at
//! the root, a missing tail kept as written), creating missing directories on the way
//! (tonistiigi/fsutil `MkdirAll`), and the descriptor-relative primitives the copier and the
//! archive extractor share. Every look-up goes one name at a time from a directory
//! descriptor with `O_NOFOLLOW`, and every later open of a resolved path uses
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`: a path that changed into a symlink
//! fails instead of being followed. Must not read sources.

use crate::rootpath;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Timestamps, Uid};
use rustix::io::Errno;

use super::error::CopyError;

/// Owner, permission bits and optional timestamps for directories COPY creates on its own.
#[derive(Clone, Debug)]
pub(super) struct DirAttrs {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) times: Option<Timestamps>,
}

/// An opened destination root.
pub(super) struct Target {
    fd: OwnedFd,
    /// The host path, for messages.
    host: PathBuf,
    /// How paths below this root are shown: `""` for the container root, or the extraction
    /// directory for an archive.
    shown: String,
}

/// A resolved destination path.
pub(super) struct Resolved {
    /// Relative to the root, every existing component a real directory (no symlink); a tail
    /// that does not exist is kept as written.
    pub(crate) real: String,
    /// `lstat` of `real`, `None` when it does not exist.
    pub(crate) stat: Option<Stat>,
}

impl Target {
    pub(crate) fn open(host: &Path) -> Result<Target, CopyError> {
        let fd = rustix::fs::open(
            host,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| CopyError::OpenDestination {
            path: host.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Target {
            fd,
            host: host.to_path_buf(),
            shown: String::new(),
        })
    }

    /// A root at directory `real` below this one (an archive's extraction directory).
    pub(crate) fn sub(&self, real: &str) -> Result<Target, CopyError> {
        let fd = self.open_at(real, OFlags::PATH | OFlags::DIRECTORY)?;
        Ok(Target {
            fd,
            host: self.host.join(real),
            shown: self.show(real),
        })
    }

    /// `real` as the container sees it: `/etc/passwd`.
    pub(crate) fn show(&self, real: &str) -> String {
        match (self.shown.as_str(), real) {
            ("", "") => "/".to_string(),
            (base, "") => base.to_string(),
            (base, rel) => format!("{base}/{rel}"),
        }
    }

    /// Open directory `real` (already resolved) for creating entries in.
    pub(crate) fn open_dir(&self, real: &str) -> Result<OwnedFd, CopyError> {
        self.open_at(real, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    fn open_at(&self, real: &str, flags: OFlags) -> Result<OwnedFd, CopyError> {
        let path = if real.is_empty() { "." } else { real };
        rustix::fs::openat2(
            &self.fd,
            path,
            flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        )
        .map_err(|e| CopyError::OpenDestination {
            path: PathBuf::from(self.show(real)),
            source: e.into(),
        })
    }

    /// Resolve `path` (absolute in the container, or relative to this root) without creating
    /// anything.
    pub(crate) fn resolve(&self, path: &str) -> Result<Resolved, CopyError> {
        self.walk(path, None, &mut Vec::new())
    }

    /// Resolve `path`, creating every missing directory with `attrs` (fsutil `MkdirAll`);
    /// returns the real path and appends what it created to `created`.
    pub(crate) fn mkdir_all(
        &self,
        path: &str,
        attrs: &DirAttrs,
        created: &mut Vec<String>,
    ) -> Result<String, CopyError> {
        let resolved = self.walk(path, Some(attrs), created)?;
        match resolved.stat {
            Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Ok(resolved.real)
            }
            _ => Err(CopyError::NotADirectory {
                path: self.show(&resolved.real),
            }),
        }
    }

    fn walk(
        &self,
        path: &str,
        create: Option<&DirAttrs>,
        created: &mut Vec<String>,
    ) -> Result<Resolved, CopyError> {
        let mut walk = rootpath::Walk::new(path).with_max_links(rootpath::FSUTIL_MAX_LINKS);
        while let Some(name) = walk.next_name() {
            let here = walk.real();
            let dir = self.open_dir(&here)?;
            let shown = self.show(&walk.child(&name));
            let more = !walk.is_last();
            match rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                    let target =
                        rustix::fs::readlinkat(&dir, name.as_str(), Vec::new()).map_err(|e| {
                            CopyError::StatDestination {
                                path: shown.clone(),
                                source: e.into(),
                            }
                        })?;
                    let target = target.to_str().map_err(|_| CopyError::NonUtf8Link {
                        path: PathBuf::from(&shown),
                    })?;
                    walk.follow(target)
                        .map_err(|_| CopyError::TooManySymlinks { path: shown })?;
                }
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                    walk.push(name);
                }
                Ok(_) if more => return Err(CopyError::NotADirectory { path: shown }),
                Ok(_) => walk.push(name),
                Err(Errno::NOENT) => match create {
                    Some(attrs) => {
                        make_dir(&dir, &name, attrs, &shown)?;
                        walk.push(name);
                        created.push(walk.real());
                    }
                    None => {
                        walk.push(name);
                        let real = walk.finish_lexically();
                        // A `..` in the tail can lead back to something that exists.
                        let stat = self.stat(&real)?;
                        return Ok(Resolved { real, stat });
                    }
                },
                Err(e) => {
                    return Err(CopyError::StatDestination {
                        path: shown,
                        source: e.into(),
                    });
                }
            }
        }
        let real = walk.real();
        let stat = self.stat(&real)?;
        Ok(Resolved { real, stat })
    }

    /// `lstat` of `real` (whose directories are real), `None` when missing.
    fn stat(&self, real: &str) -> Result<Option<Stat>, CopyError> {
        let (dir, name) = match real.rsplit_once('/') {
            Some((dir, name)) => (dir, name),
            None if real.is_empty() => {
                return rustix::fs::fstat(&self.fd).map(Some).map_err(|e| {
                    CopyError::StatDestination {
                        path: self.show(""),
                        source: e.into(),
                    }
                });
            }
            None => ("", real),
        };
        let fd = match self.open_dir(dir) {
            Ok(fd) => fd,
            Err(CopyError::OpenDestination { source, .. })
                if source.raw_os_error() == Some(Errno::NOENT.raw_os_error()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        match rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(CopyError::StatDestination {
                path: self.show(real),
                source: e.into(),
            }),
        }
    }
}

/// `mkdir` `name` in `dir` with `attrs`: the mode is set explicitly, so the process umask
/// plays no part (tonistiigi/fsutil#248).
pub(super) fn make_dir(
    dir: &OwnedFd,
    name: &str,
    attrs: &DirAttrs,
    shown: &str,
) -> Result<(), CopyError> {
    let failed = |step, e: Errno| CopyError::WriteDestination {
        path: shown.to_string(),
        step,
        source: e.into(),
    };
    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)).map_err(|e| failed("mkdir", e))?;
    set_owner(dir, name, attrs.uid, attrs.gid, shown)?;
    rustix::fs::chmodat(dir, name, Mode::from_raw_mode(attrs.mode), AtFlags::empty())
        .map_err(|e| failed("chmod", e))?;
    if let Some(times) = &attrs.times {
        set_times(dir, name, times, shown)?;
    }
    Ok(())
}

/// `lchown` `name` in `dir`; before any `chmod`, since `chown` clears set-id bits.
pub(super) fn set_owner(
    dir: impl AsFd,
    name: &str,
    uid: u32,
    gid: u32,
    shown: &str,
) -> Result<(), CopyError> {
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| CopyError::WriteDestination {
        path: shown.to_string(),
        step: "chown",
        source: e.into(),
    })
}

/// Set access and modification times of `name` in `dir`, not following a symlink.
pub(super) fn set_times(
    dir: impl AsFd,
    name: &str,
    times: &Timestamps,
    shown: &str,
) -> Result<(), CopyError> {
    rustix::fs::utimensat(dir, name, times, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| {
        CopyError::WriteDestination {
            path: shown.to_string(),
            step: "set times",
            source: e.into(),
        }
    })
}

/// Remove `name` from `dir` whatever it is, a directory with everything in it included.
pub(super) fn remove_all(dir: &OwnedFd, name: &str, shown: &str) -> Result<(), CopyError> {
    let failed = |e: Errno| CopyError::WriteDestination {
        path: shown.to_string(),
        step: "remove",
        source: e.into(),
    };
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(failed(e)),
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(failed)?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&sub).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        let child = entry.file_name().to_bytes();
        if child != b"." && child != b".." {
            names.push(String::from_utf8_lossy(child).into_owned());
        }
    }
    for child in names {
        remove_all(&sub, &child, &format!("{shown}/{child}"))?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(failed)
}

pub(super) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The parent of a real path (`""` for a name at the root) and the name.
pub(super) fn split(real: &str) -> (&str, &str) {
    real.rsplit_once('/').unwrap_or(("", real))
}

#[cfg(test)]
mod tests {
    use super::{DirAttrs, Target};

    fn attrs() -> DirAttrs {
        DirAttrs {
            mode: 0o755,
            uid: 0,
            gid: 0,
            times: None,
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir(r.join("usr")).unwrap();
        std::os::unix::fs::symlink("/usr", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", r.join("climb")).unwrap();
        std::os::unix::fs::symlink(outside.path(), r.join("escape")).unwrap();
        let t = Target::open(r).unwrap();
        // name => real path
        for (path, want) in [
            ("/abs/lib", "usr/lib"),
            ("/climb/usr", "usr"),
            ("/climb/../x", "x"),
            ("/usr/../../etc", "etc"),
            (
                "/escape/x",
                &outside.path().join("x").to_str().unwrap()[1..],
            ),
        ] {
            assert_eq!(t.resolve(path).unwrap().real, want, "{path}");
        }
        let mut created = Vec::new();
        let real = t.mkdir_all("/escape/made", &attrs(), &mut created).unwrap();
        assert!(r.join(&real).is_dir(), "{real}");
        assert!(!outside.path().join("made").exists());
        assert_eq!(created.last(), Some(&real));
        assert_eq!(created.len(), real.split('/').count());
    }

    #[test]
    fn mkdir_all_refuses_files_on_the_way() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("file"), b"").unwrap();
        let t = Target::open(root.path()).unwrap();
        let err = t
            .mkdir_all("/file/sub", &attrs(), &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.to_string(), "cannot copy to non-directory: /file");
    }
}
