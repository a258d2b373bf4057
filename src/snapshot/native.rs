//! The native snapshotter, for hosts without overlayfs: a step runs in a full copy of the
//! image's root filesystem, and its changes are found afterwards by comparing the copy with
//! the tree it was copied from. It owns `<work dir>/rootfs`; it never writes to the lower
//! tree, and it never reads file *contents* when comparing.
//!
//! Copying preserves everything a layer can carry (type, mode, owner, xattrs, hardlinks,
//! symlink targets, device numbers, atime and mtime to the nanosecond) and clones file data
//! with `FICLONE` where the filesystem shares extents (btrfs, XFS with reflink, bcachefs),
//! otherwise copies it (`std::io::copy`, which uses `copy_file_range(2)` in the kernel).
//!
//! Comparing is by metadata only, like Docker's `archive.ChangesDirs` and containerd's
//! `fs.Changes`: type, mode, owner, size, mtime with nanoseconds, device number, link count
//! (a new hardlink changes it), symlink target and xattrs. The change time (`ctime`) cannot
//! be copied, so it is not compared; content written with size and mtime restored goes
//! unnoticed, as in Docker. A directory whose inode (or birth time) differs from the copy
//! made at `prepare` was removed and recreated by the step: it is reported `Opaque`, as
//! overlayfs does. Every ancestor of a change is reported as an `Upsert`, matching the
//! copied-up parents of [`super::diff::overlay_changes`]. A changed entry type is one
//! change at that path: `Upsert` for the new non-directory, `Opaque` for a new directory
//! (what overlayfs records), never a `Delete` and an `Upsert` of the same path: in one
//! layer those would be a whiteout and an entry of the same name, which appliers order
//! differently (OCI image-spec `layer.md`, "Whiteouts").

use super::diff::xattrs;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, Stat, StatxFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::change::{Change, ChangeKind};

#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error("copying {path}: {op}")]
    Copy {
        path: String,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("comparing {path}")]
    Compare {
        path: String,
        source: std::io::Error,
    },
}

/// A directory's identity: a directory removed and recreated gets a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    ino: u64,
    /// Birth time, where the filesystem records it (ext4, XFS, btrfs, tmpfs).
    btime: Option<(i64, u32)>,
}

/// What copying did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Regular files whose data was shared with `FICLONE`.
    pub(crate) cloned: u64,
    /// Regular files whose data was copied.
    pub(crate) copied: u64,
    /// Extra names of already-copied inodes, linked rather than copied.
    pub hardlinks: u64,
    /// Extended attributes the target filesystem or our privileges refused.
    pub(crate) skipped_xattrs: u64,
}

/// Whose files a copy holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owners {
    /// The lower tree's owners: a step's root filesystem must show the image's.
    Keep,
    /// The calling process's: files handed to a user rather than to a step (a rootless
    /// build's `type=local` output, which its user must be able to read and remove).
    Caller,
}

/// A step's root filesystem, copied from an image's.
#[derive(Debug)]
pub struct NativeSnapshot {
    lower: PathBuf,
    rootfs: PathBuf,
    dirs: HashMap<String, Identity>,
    stats: CopyStats,
}

/// Copy `lower_tree` (an image's full root filesystem) to `work_dir/rootfs`, which must not
/// exist yet.
pub fn prepare(lower_tree: &Path, work_dir: &Path) -> Result<NativeSnapshot, NativeError> {
    prepare_with(lower_tree, work_dir, Owners::Keep)
}

/// [`prepare`], choosing whose files the copy holds.
pub(crate) fn prepare_with(
    lower_tree: &Path,
    work_dir: &Path,
    owners: Owners,
) -> Result<NativeSnapshot, NativeError> {
    let rootfs = work_dir.join("rootfs");
    let err = |path: &Path, op: &'static str| {
        let path = path.display().to_string();
        move |e: std::io::Error| NativeError::Copy {
            path,
            op,
            source: e,
        }
    };
    std::fs::create_dir_all(work_dir).map_err(err(work_dir, "create work dir"))?;
    let st = rustix::fs::lstat(lower_tree).map_err(|e| err(lower_tree, "stat")(e.into()))?;
    let mut copier = Copier {
        owners,
        links: HashMap::new(),
        dirs: HashMap::new(),
        stats: CopyStats::default(),
    };
    copier.copy(lower_tree, &rootfs, "", &st)?;
    Ok(NativeSnapshot {
        lower: lower_tree.to_path_buf(),
        rootfs,
        dirs: copier.dirs,
        stats: copier.stats,
    })
}

impl NativeSnapshot {
    /// Where the step runs.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    pub fn stats(&self) -> CopyStats {
        self.stats
    }

    /// What the step changed, sorted by path: metadata compared with the lower tree.
    pub fn changes(&self) -> Result<Vec<Change>, NativeError> {
        let mut out = BTreeMap::new();
        self.compare(&self.lower, &self.rootfs, "", &mut out)?;
        let paths: Vec<String> = out.keys().cloned().collect();
        for p in paths {
            let mut parent = p.as_str();
            while let Some((up, _)) = parent.rsplit_once('/') {
                out.entry(up.to_string()).or_insert(ChangeKind::Upsert);
                parent = up;
            }
        }
        let mut changes: Vec<Change> = out
            .into_iter()
            .map(|(path, kind)| Change { path, kind })
            .collect();
        changes.sort();
        Ok(changes)
    }

    fn compare(
        &self,
        old: &Path,
        new: &Path,
        rel: &str,
        out: &mut BTreeMap<String, ChangeKind>,
    ) -> Result<(), NativeError> {
        let old_names = names(old)?;
        let new_names = names(new)?;
        for name in old_names.difference(&new_names) {
            out.insert(join(rel, name), ChangeKind::Delete);
        }
        for name in &new_names {
            let path = join(rel, name);
            let (o, n) = (old.join(name), new.join(name));
            let st_new = lstat(&n)?;
            let new_is_dir = kind(&st_new) == FileType::Directory;
            if !old_names.contains(name) {
                all(&n, &path, &st_new, ChangeKind::Upsert, out)?;
                continue;
            }
            let st_old = lstat(&o)?;
            if kind(&st_old) != kind(&st_new) {
                let k = if new_is_dir {
                    ChangeKind::Opaque
                } else {
                    ChangeKind::Upsert
                };
                all(&n, &path, &st_new, k, out)?;
            } else if new_is_dir {
                if self.dirs.get(&path) != Some(&identity(&n)?) {
                    all(&n, &path, &st_new, ChangeKind::Opaque, out)?;
                    continue;
                }
                if !same(&o, &n, &st_old, &st_new)? {
                    out.insert(path.clone(), ChangeKind::Upsert);
                }
                self.compare(&o, &n, &path, out)?;
            } else if !same(&o, &n, &st_old, &st_new)? {
                out.insert(path, ChangeKind::Upsert);
            }
        }
        Ok(())
    }
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

fn lstat(p: &Path) -> Result<Stat, NativeError> {
    rustix::fs::lstat(p).map_err(|e| compare_err(p, e.into()))
}

fn compare_err(p: &Path, source: std::io::Error) -> NativeError {
    NativeError::Compare {
        path: p.display().to_string(),
        source,
    }
}

fn names(dir: &Path) -> Result<BTreeSet<String>, NativeError> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(dir).map_err(|e| compare_err(dir, e))? {
        let e = e.map_err(|e| compare_err(dir, e))?;
        out.insert(e.file_name().to_string_lossy().into_owned());
    }
    Ok(out)
}

/// `path` as `kind`, and for a directory everything below it as `Upsert`.
fn all(
    p: &Path,
    path: &str,
    st: &Stat,
    kind_: ChangeKind,
    out: &mut BTreeMap<String, ChangeKind>,
) -> Result<(), NativeError> {
    out.insert(path.to_string(), kind_);
    if kind(st) == FileType::Directory {
        for name in names(p)? {
            let child = p.join(&name);
            let st = lstat(&child)?;
            all(&child, &join(path, &name), &st, ChangeKind::Upsert, out)?;
        }
    }
    Ok(())
}

fn identity(p: &Path) -> Result<Identity, NativeError> {
    let sx = rustix::fs::statx(
        CWD,
        p,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::INO | StatxFlags::BTIME,
    )
    .map_err(|e| compare_err(p, e.into()))?;
    let btime = StatxFlags::from_bits_retain(sx.stx_mask)
        .contains(StatxFlags::BTIME)
        .then_some((sx.stx_btime.tv_sec, sx.stx_btime.tv_nsec));
    Ok(Identity {
        ino: sx.stx_ino,
        btime,
    })
}

/// Whether two entries of the same type have the same metadata. Never reads contents.
fn same(o: &Path, n: &Path, a: &Stat, b: &Stat) -> Result<bool, NativeError> {
    let dir = kind(a) == FileType::Directory;
    let basic = a.st_mode == b.st_mode
        && a.st_uid == b.st_uid
        && a.st_gid == b.st_gid
        && a.st_mtime == b.st_mtime
        && a.st_mtime_nsec == b.st_mtime_nsec
        && a.st_rdev == b.st_rdev
        // A directory's size and link count follow its entries, which are compared one by
        // one; a file's link count changes when the step adds or removes a hardlink.
        && (dir || (a.st_size == b.st_size && a.st_nlink == b.st_nlink));
    if !basic {
        return Ok(false);
    }
    if kind(a) == FileType::Symlink {
        let ta = std::fs::read_link(o).map_err(|e| compare_err(o, e))?;
        let tb = std::fs::read_link(n).map_err(|e| compare_err(n, e))?;
        if ta != tb {
            return Ok(false);
        }
    }
    let xa = xattrs(o).map_err(|e| compare_err(o, e))?;
    let xb = xattrs(n).map_err(|e| compare_err(n, e))?;
    Ok(xa == xb)
}

struct Copier {
    owners: Owners,
    /// First copy of each multiply-linked inode of the lower tree, by (device, inode).
    links: HashMap<(u64, u64), PathBuf>,
    dirs: HashMap<String, Identity>,
    stats: CopyStats,
}

impl Copier {
    fn copy(&mut self, src: &Path, dst: &Path, rel: &str, st: &Stat) -> Result<(), NativeError> {
        let err = |op: &'static str| {
            let path = src.display().to_string();
            move |e: std::io::Error| NativeError::Copy {
                path,
                op,
                source: e,
            }
        };
        // Errors writing the copy name the copy.
        let derr = |op: &'static str| {
            let path = dst.display().to_string();
            move |e: std::io::Error| NativeError::Copy {
                path,
                op,
                source: e,
            }
        };
        let ft = kind(st);
        if ft != FileType::Directory && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                std::fs::hard_link(first, dst).map_err(derr("hardlink"))?;
                self.stats.hardlinks += 1;
                return Ok(());
            }
            self.links.insert(key, dst.to_path_buf());
        }
        match ft {
            FileType::Directory => {
                rustix::fs::mkdir(dst, Mode::from_raw_mode(0o700))
                    .map_err(|e| derr("mkdir")(e.into()))?;
                for e in std::fs::read_dir(src).map_err(err("read dir"))? {
                    let e = e.map_err(err("read dir"))?;
                    let name = e.file_name();
                    let child = e.path();
                    let cst = rustix::fs::lstat(&child).map_err(|e| NativeError::Copy {
                        path: child.display().to_string(),
                        op: "stat",
                        source: e.into(),
                    })?;
                    let crel = join(rel, &name.to_string_lossy());
                    self.copy(&child, &dst.join(&name), &crel, &cst)?;
                }
                let fd = open_dir(dst).map_err(derr("open copy"))?;
                self.finish(src, &fd, st).map_err(derr("set metadata"))?;
                let id = identity(dst).map_err(|e| match e {
                    NativeError::Compare { source, .. } => err("stat copy")(source),
                    other => other,
                })?;
                self.dirs.insert(rel.to_string(), id);
            }
            FileType::RegularFile => {
                let from = std::fs::File::open(src).map_err(err("open"))?;
                let mut to = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(dst)
                    .map_err(derr("create copy"))?;
                match rustix::fs::ioctl_ficlone(&to, &from) {
                    Ok(()) => self.stats.cloned += 1,
                    Err(_) => {
                        let mut from = &from;
                        std::io::copy(&mut from, &mut to).map_err(err("copy data"))?;
                        self.stats.copied += 1;
                    }
                }
                self.finish(src, &OwnedFd::from(to), st)
                    .map_err(derr("set metadata"))?;
            }
            FileType::Symlink => {
                let target = std::fs::read_link(src).map_err(err("readlink"))?;
                std::os::unix::fs::symlink(&target, dst).map_err(derr("symlink"))?;
                self.finish_path(src, dst, st)
                    .map_err(derr("set metadata"))?;
            }
            _ => {
                // Devices, FIFOs and sockets: a node with the same type and number.
                rustix::fs::mknodat(CWD, dst, ft, Mode::from_raw_mode(0o600), st.st_rdev)
                    .map_err(|e| derr("mknod")(e.into()))?;
                self.finish_path(src, dst, st)
                    .map_err(derr("set metadata"))?;
            }
        }
        Ok(())
    }

    /// Owner, mode, xattrs and times of an opened copy (file or directory).
    fn finish(&mut self, src: &Path, fd: &OwnedFd, st: &Stat) -> std::io::Result<()> {
        if self.owners == Owners::Keep {
            rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(st.st_uid)),
                Some(rustix::fs::Gid::from_raw(st.st_gid)),
            )?;
        }
        // After chown, which clears set-id bits.
        rustix::fs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))?;
        for (name, value) in xattrs(src)? {
            let name = std::ffi::OsStr::from_bytes(&name);
            match rustix::fs::fsetxattr(fd, name, &value, rustix::fs::XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::PERM | Errno::NOTSUP | Errno::ACCESS) => self.stats.skipped_xattrs += 1,
                Err(e) => return Err(e.into()),
            }
        }
        rustix::fs::futimens(fd.as_fd(), &times(st))?;
        Ok(())
    }

    /// The same for entries that cannot be opened (symlinks, devices, FIFOs, sockets).
    fn finish_path(&mut self, src: &Path, dst: &Path, st: &Stat) -> std::io::Result<()> {
        if self.owners == Owners::Keep {
            rustix::fs::chownat(
                CWD,
                dst,
                Some(rustix::fs::Uid::from_raw(st.st_uid)),
                Some(rustix::fs::Gid::from_raw(st.st_gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        if kind(st) != FileType::Symlink {
            rustix::fs::chmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
        }
        for (name, value) in xattrs(src)? {
            let name = std::ffi::OsStr::from_bytes(&name);
            match rustix::fs::lsetxattr(dst, name, &value, rustix::fs::XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::PERM | Errno::NOTSUP | Errno::ACCESS) => self.stats.skipped_xattrs += 1,
                Err(e) => return Err(e.into()),
            }
        }
        rustix::fs::utimensat(CWD, dst, &times(st), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }
}

/// A directory, opened to work at (never through a final symlink).
pub(crate) fn open_dir(p: &Path) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The access and modification times of `st`, to set them again.
pub(crate) fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(root: &Path) {
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), "data").unwrap();
        std::os::unix::fs::symlink("f", root.join("d/l")).unwrap();
    }

    /// A change made to the copy, and what `changes()` must report (`!` marks a change of
    /// content alone, which a metadata diff does not see by design).
    macro_rules! sees {
        ($name:ident, |$r:ident| $op:block, [$(($p:expr, $k:ident)),* $(,)?]) => {
            #[test]
            fn $name() {
                let d = tempfile::tempdir().unwrap();
                let lower = d.path().join("lower");
                base(&lower);
                let snap = prepare(&lower, &d.path().join("step")).unwrap();
                let $r = snap.rootfs();
                $op
                let want: Vec<Change> = vec![$(Change {
                    path: $p.to_string(),
                    kind: ChangeKind::$k,
                }),*];
                assert_eq!(snap.changes().unwrap(), want);
            }
        };
    }

    sees!(nothing, |_r| {}, []);
    sees!(
        mtime_only,
        |r| {
            let f = std::fs::File::options()
                .write(true)
                .open(r.join("d/f"))
                .unwrap();
            f.set_modified(std::time::UNIX_EPOCH).unwrap();
        },
        [("d", Upsert), ("d/f", Upsert)]
    );
    sees!(
        xattr_added,
        |r| {
            if rustix::fs::setxattr(
                r.join("d/f"),
                "user.k",
                b"v",
                rustix::fs::XattrFlags::empty(),
            )
            .is_err()
            {
                eprintln!("SKIPPED (user xattrs not supported here)");
                return;
            }
        },
        [("d", Upsert), ("d/f", Upsert)]
    );
    sees!(
        symlink_retargeted_same_length,
        |r| {
            let l = r.join("d/l");
            let st = rustix::fs::lstat(&l).unwrap();
            std::fs::remove_file(&l).unwrap();
            std::os::unix::fs::symlink("g", &l).unwrap();
            rustix::fs::utimensat(CWD, &l, &times(&st), AtFlags::SYMLINK_NOFOLLOW).unwrap();
            let dir = rustix::fs::lstat(r.join("d")).unwrap();
            rustix::fs::utimensat(CWD, r.join("d"), &times(&dir), AtFlags::empty()).unwrap();
        },
        [("d", Upsert), ("d/l", Upsert)]
    );
    sees!(
        new_subtree_listed_whole,
        |r| {
            std::fs::create_dir_all(r.join("n/m")).unwrap();
            std::fs::write(r.join("n/m/x"), "x").unwrap();
        },
        [("n", Upsert), ("n/m", Upsert), ("n/m/x", Upsert)]
    );
    sees!(
        deleted_subtree_only_top,
        |r| { std::fs::remove_dir_all(r.join("d")).unwrap() },
        [("d", Delete)]
    );
    // `!` Same size, mtime restored: content alone changed. Docker's and containerd's
    // metadata diffs miss this too; steps cannot restore mtimes by accident.
    sees!(
        content_alone_is_not_seen,
        |r| {
            let st = rustix::fs::lstat(r.join("d/f")).unwrap();
            std::fs::write(r.join("d/f"), "DATA").unwrap();
            rustix::fs::utimensat(CWD, r.join("d/f"), &times(&st), AtFlags::empty()).unwrap();
        },
        []
    );

    #[test]
    fn existing_rootfs_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let lower = d.path().join("lower");
        base(&lower);
        std::fs::create_dir_all(d.path().join("step/rootfs")).unwrap();
        let e = prepare(&lower, &d.path().join("step")).unwrap_err();
        assert!(e.to_string().contains("mkdir"), "{e}");
        assert!(e.to_string().contains("step/rootfs"), "{e}");
    }
}
