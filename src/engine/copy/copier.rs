//! Writing selected items into the destination root, with tonistiigi/fsutil `copy.go`'s
//! rules, the engine BuildKit runs for COPY and ADD.
//!
//! Owns: where an item lands (`prepareTargetDir`: a file into an existing directory keeps its
//! name, a directory's contents merge into the destination), replacing what is there (a file
//! replaces a file or symlink, never a directory: "cannot replace to directory ... with
//! file"; a directory merges into a directory and never into anything else: "cannot copy to
//! non-directory"), each entry's owner, mode and times, hard links between copied files, and
//! handing archives to `archive.rs`. Every write goes through a directory descriptor of the
//! destination with `O_NOFOLLOW`; file data moves with `std::io::copy`, which uses
//! `copy_file_range(2)` between files.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use super::archive;
use super::error::CopyError;
use super::op::{CopyOp, CopyStats};
use super::reuse::{Reuse, Wanted};
use super::selection::{Event, Item, What, walk_item};
use super::source::{Entry, View};
use super::target::{self, DirAttrs, Target};
use crate::context::{EntryKind, Matcher};

/// Where a COPY writes: the destination as a container path, and whether it names a
/// directory to copy into.
pub(super) struct Dest {
    pub(crate) path: String,
    pub(crate) dir: bool,
}

pub(super) struct Copier<'a, 'r> {
    pub(crate) view: &'a View,
    pub(crate) target: &'a Target,
    pub(crate) op: &'a CopyOp,
    pub(crate) exclude: Option<&'a Matcher>,
    /// Real destination path of the first copy of each multiply linked source inode.
    pub(crate) links: HashMap<(u64, u64), String>,
    /// Directories created on the way, whose times are set again at the end.
    pub(crate) created: Vec<String>,
    pub(crate) stats: CopyStats,
    /// Files to take from the previous run of this COPY (`reuse.rs`), when there is one.
    pub(crate) reuse: Option<&'a mut Reuse<'r>>,
}

/// A directory being filled: its descriptor, real path, and the times it gets once done.
struct Open {
    fd: OwnedFd,
    real: String,
    times: Option<Timestamps>,
}

impl Copier<'_, '_> {
    /// Attributes of the directories COPY creates by itself: 0755 and root, or the `--chown`
    /// owner and the `--chmod` mode (BuildKit since tonistiigi/fsutil#228, still disputed in
    /// moby/buildkit#5943).
    pub(crate) fn implied_dirs(&self) -> DirAttrs {
        let (uid, gid) = self.op.owner.unwrap_or((0, 0));
        DirAttrs {
            mode: self
                .op
                .chmod
                .as_ref()
                .map_or(0o755, |c| c.apply(0o755, true)),
            uid,
            gid,
            times: self.op.timestamp.map(|t| Timestamps {
                last_access: t,
                last_modification: t,
            }),
        }
    }

    pub(crate) fn copy_item(&mut self, item: &Item, dest: &Dest) -> Result<(), CopyError> {
        let implied = self.implied_dirs();
        // fsutil's `ensureDstPath`: the destination itself when it ends in `/`, else its parent.
        let ensure = if dest.dir {
            dest.path.as_str()
        } else {
            target::split(&dest.path).0
        };
        self.target.mkdir_all(ensure, &implied, &mut self.created)?;
        let (real, name, meta, include) = match &item.what {
            What::Inline { name, data } => return self.copy_inline(name, data, dest),
            What::Path {
                real,
                name,
                meta,
                include,
            } => (real, name, meta, include),
        };
        if self.op.unpack_archives
            && meta.is_file()
            && archive::is_archive(self.view.open_file(real)?)
        {
            let into = self.target.mkdir_all(
                &dest.path,
                &DirAttrs {
                    mode: 0o755,
                    ..implied
                },
                &mut self.created,
            )?;
            let root = self.target.sub(&into)?;
            let shown = format!("/{}", item.source.trim_start_matches('/'));
            return archive::extract(self.view.open_file(real)?, &shown, &root, &mut self.stats);
        }
        let resolved = self.target.resolve(&dest.path)?;
        let dest_is_dir = resolved
            .stat
            .as_ref()
            .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        if !meta.is_dir() {
            let at = if dest_is_dir {
                target::join(&resolved.real, name)
            } else {
                resolved.real
            };
            let (parent, base) = target::split(&at);
            let parent =
                self.target
                    .mkdir_all(&format!("/{parent}"), &implied, &mut self.created)?;
            let dir = self.target.open_dir(&parent)?;
            let kind = if meta.is_symlink() {
                EntryKind::Symlink {
                    target: self.view.read_link(real)?,
                }
            } else if meta.is_file() {
                EntryKind::File
            } else {
                EntryKind::Other
            };
            let entry = Entry {
                rel: String::new(),
                kind,
                meta: meta.clone(),
            };
            return self.write_leaf(&dir, &parent, base, real, &entry);
        }
        let into = match resolved.stat {
            None => self.target.mkdir_all(
                &format!("/{}", resolved.real),
                &implied,
                &mut self.created,
            )?,
            Some(_) if dest_is_dir => resolved.real,
            Some(_) => {
                return Err(CopyError::NotADirectory {
                    path: self.target.show(&resolved.real),
                });
            }
        };
        let mut open = vec![Open {
            fd: self.target.open_dir(&into)?,
            real: into,
            times: None,
        }];
        let view = self.view;
        let exclude = self.exclude;
        walk_item(view, real, include.as_ref(), exclude, &mut |event| {
            match event {
                Event::EnterDir(entry) => {
                    let parent = open.last().expect("the item's own directory is open");
                    let base = entry.rel.rsplit('/').next().unwrap_or_default();
                    let dir = self.enter_dir(&parent.fd, &parent.real, base, &entry.meta)?;
                    open.push(dir);
                }
                Event::LeaveDir => {
                    let done = open.pop().expect("entered before");
                    if let Some(times) = &done.times {
                        rustix::fs::futimens(&done.fd, times).map_err(|e| {
                            CopyError::WriteDestination {
                                path: self.target.show(&done.real),
                                step: "set times",
                                source: e.into(),
                            }
                        })?;
                    }
                }
                Event::Leaf(entry) => {
                    let parent = open.last().expect("the item's own directory is open");
                    let base = entry.rel.rsplit('/').next().unwrap_or_default();
                    let source = target::join(real, &entry.rel);
                    self.write_leaf(&parent.fd, &parent.real, base, &source, entry)?;
                }
            }
            Ok(())
        })
    }

    /// A heredoc: a 0644 file (before `--chmod`), owned by root or the `--chown` owner.
    fn copy_inline(&mut self, name: &str, data: &str, dest: &Dest) -> Result<(), CopyError> {
        let implied = self.implied_dirs();
        let resolved = self.target.resolve(&dest.path)?;
        let at = match &resolved.stat {
            Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                target::join(&resolved.real, name)
            }
            _ => resolved.real,
        };
        let (parent, base) = target::split(&at);
        let parent = self
            .target
            .mkdir_all(&format!("/{parent}"), &implied, &mut self.created)?;
        let dir = self.target.open_dir(&parent)?;
        let shown = self.target.show(&at);
        if let Some(reuse) = self.reuse.as_deref_mut() {
            reuse.forget(&at);
        }
        self.clear_for_leaf(&dir, base, &shown)?;
        let mut out = self.create_file(&dir, base, &shown)?;
        std::io::Write::write_all(&mut out, data.as_bytes()).map_err(|source| {
            CopyError::WriteDestination {
                path: shown.clone(),
                step: "write",
                source,
            }
        })?;
        let mode = self
            .op
            .chmod
            .as_ref()
            .map_or(0o644, |c| c.apply(0o644, false));
        let (uid, gid) = self.op.owner.unwrap_or((0, 0));
        self.finish_file(&out, uid, gid, mode, self.implied_dirs().times, &shown)?;
        self.stats.files += 1;
        self.stats.bytes += data.len() as u64;
        Ok(())
    }

    fn owner_of(&self, meta: &Metadata) -> (u32, u32) {
        match self.op.owner {
            Some(owner) => owner,
            // Files from the context belong to root (BuildKit's client resets them).
            None if self.view.is_context() => (0, 0),
            None => (meta.uid(), meta.gid()),
        }
    }

    fn mode_of(&self, meta: &Metadata) -> u32 {
        match &self.op.chmod {
            Some(chmod) => chmod.apply(meta.mode(), meta.is_dir()),
            None => meta.mode() & 0o7777,
        }
    }

    fn times_of(&self, meta: &Metadata) -> Timestamps {
        match self.op.timestamp {
            Some(t) => Timestamps {
                last_access: t,
                last_modification: t,
            },
            None => Timestamps {
                last_access: Timespec {
                    tv_sec: meta.atime(),
                    tv_nsec: meta.atime_nsec(),
                },
                last_modification: Timespec {
                    tv_sec: meta.mtime(),
                    tv_nsec: meta.mtime_nsec(),
                },
            },
        }
    }

    /// Create or merge directory `name` in `parent`; an existing one takes the source's
    /// owner and mode too (fsutil overwrites metadata below the top).
    fn enter_dir(
        &mut self,
        parent: &OwnedFd,
        parent_real: &str,
        name: &str,
        meta: &Metadata,
    ) -> Result<Open, CopyError> {
        let real = target::join(parent_real, name);
        let shown = self.target.show(&real);
        let failed = |step, e: Errno| CopyError::WriteDestination {
            path: shown.clone(),
            step,
            source: e.into(),
        };
        // A file taken from the previous run is there, as far as the copy goes.
        if self.reuse.as_deref().is_some_and(|r| r.taken_at(&real)) {
            return Err(CopyError::NotADirectory { path: shown });
        }
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
            Ok(_) => return Err(CopyError::NotADirectory { path: shown }),
            Err(Errno::NOENT) => {
                rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                    .map_err(|e| failed("mkdir", e))?;
            }
            Err(e) => return Err(failed("stat", e)),
        }
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| failed("open", e))?;
        let (uid, gid) = self.owner_of(meta);
        rustix::fs::fchown(&fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|e| failed("chown", e))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(self.mode_of(meta)))
            .map_err(|e| failed("chmod", e))?;
        self.stats.dirs += 1;
        Ok(Open {
            fd,
            real,
            times: Some(self.times_of(meta)),
        })
    }

    /// fsutil's `ensureEmptyFileTarget`: a directory in the way is an error, anything else
    /// is removed.
    fn clear_for_leaf(&self, dir: &OwnedFd, name: &str, shown: &str) -> Result<(), CopyError> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Err(CopyError::ReplaceDirectory {
                    path: shown.to_string(),
                })
            }
            Ok(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(|e| {
                CopyError::WriteDestination {
                    path: shown.to_string(),
                    step: "remove",
                    source: e.into(),
                }
            }),
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(CopyError::StatDestination {
                path: shown.to_string(),
                source: e.into(),
            }),
        }
    }

    fn create_file(&self, dir: &OwnedFd, name: &str, shown: &str) -> Result<File, CopyError> {
        rustix::fs::openat(
            dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map(File::from)
        .map_err(|e| CopyError::WriteDestination {
            path: shown.to_string(),
            step: "create",
            source: e.into(),
        })
    }

    /// Owner, then mode (chown clears set-id bits), then times, on an open file.
    fn finish_file(
        &self,
        file: &File,
        uid: u32,
        gid: u32,
        mode: u32,
        times: Option<Timestamps>,
        shown: &str,
    ) -> Result<(), CopyError> {
        let failed = |step, e: Errno| CopyError::WriteDestination {
            path: shown.to_string(),
            step,
            source: e.into(),
        };
        rustix::fs::fchown(file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|e| failed("chown", e))?;
        rustix::fs::fchmod(file, Mode::from_raw_mode(mode)).map_err(|e| failed("chmod", e))?;
        if let Some(times) = times {
            rustix::fs::futimens(file, &times).map_err(|e| failed("set times", e))?;
        }
        Ok(())
    }

    /// Write a non-directory `entry` (read from `source` in the source root) as `name` in
    /// `dir`.
    fn write_leaf(
        &mut self,
        dir: &OwnedFd,
        dir_real: &str,
        name: &str,
        source: &str,
        entry: &Entry,
    ) -> Result<(), CopyError> {
        let real = target::join(dir_real, name);
        let shown = self.target.show(&real);
        let failed = |step, e: Errno| CopyError::WriteDestination {
            path: shown.clone(),
            step,
            source: e.into(),
        };
        if let Some(reuse) = self.reuse.as_deref_mut() {
            reuse.forget(&real);
        }
        self.clear_for_leaf(dir, name, &shown)?;
        let meta = &entry.meta;
        let (uid, gid) = self.owner_of(meta);
        let times = self.times_of(meta);
        match &entry.kind {
            EntryKind::File => {
                if meta.nlink() > 1 {
                    let key = (meta.dev(), meta.ino());
                    if let Some(first) = self.links.get(&key) {
                        let (first_dir, first_name) = target::split(first);
                        let first_dir = self.target.open_dir(first_dir)?;
                        rustix::fs::linkat(&first_dir, first_name, dir, name, AtFlags::empty())
                            .map_err(|e| failed("link", e))?;
                        self.stats.hardlinks += 1;
                        return Ok(());
                    }
                    self.links.insert(key, real.clone());
                }
                let wanted = Wanted {
                    mode: self.mode_of(meta),
                    uid,
                    gid,
                    mtime: times.last_modification,
                    size: meta.size(),
                };
                if let Some(reuse) = self.reuse.as_deref_mut() {
                    let host = self.view.host_path(source);
                    if reuse.take(dir, dir_real, &real, &host, meta, &wanted)? {
                        return Ok(());
                    }
                }
                let mut input = self.view.open_file(source)?;
                let mut out = self.create_file(dir, name, &shown)?;
                self.stats.bytes += std::io::copy(&mut input, &mut out).map_err(|source| {
                    CopyError::WriteDestination {
                        path: shown.clone(),
                        step: "write",
                        source,
                    }
                })?;
                self.finish_file(&out, uid, gid, self.mode_of(meta), Some(times), &shown)?;
                self.stats.files += 1;
            }
            EntryKind::Symlink { target: link } => {
                rustix::fs::symlinkat(link.as_path(), dir, name)
                    .map_err(|e| failed("symlink", e))?;
                target::set_owner(dir, name, uid, gid, &shown)?;
                target::set_times(dir, name, &times, &shown)?;
                self.stats.symlinks += 1;
            }
            EntryKind::Other => {
                let kind = FileType::from_raw_mode(meta.mode());
                rustix::fs::mknodat(dir, name, kind, Mode::from_raw_mode(0o600), meta.rdev())
                    .map_err(|e| failed("mknod", e))?;
                target::set_owner(dir, name, uid, gid, &shown)?;
                rustix::fs::chmodat(
                    dir,
                    name,
                    Mode::from_raw_mode(self.mode_of(meta)),
                    AtFlags::empty(),
                )
                .map_err(|e| failed("chmod", e))?;
                target::set_times(dir, name, &times, &shown)?;
                self.stats.specials += 1;
            }
            EntryKind::Dir => unreachable!("directories are entered, not written"),
        }
        Ok(())
    }

    /// With a fixed timestamp, directories created on the way get it again now that their
    /// contents are written (tonistiigi/fsutil#214).
    pub(crate) fn finish(&mut self) -> Result<(), CopyError> {
        let Some(times) = self.implied_dirs().times else {
            return Ok(());
        };
        for real in self.created.iter().rev() {
            let (parent, base) = target::split(real);
            let dir = self.target.open_dir(parent)?;
            target::set_times(&dir, base, &times, &self.target.show(real))?;
        }
        Ok(())
    }
}
