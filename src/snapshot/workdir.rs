//! Per-run work directories under `<root>/work/`, each holding an exclusive `flock` for as
//! long as its run lives. Overlays and other mounts of a run live in its directory. A run
//! killed outright (SIGKILL, power loss) leaves its directory behind — its mounts went with
//! its mount namespace (`crate::sandbox::unshare::own_mount_namespace`), except where rbuild
//! could not have one; [`cleanup_stale`] — called when rbuild starts work — unmounts what is
//! left and removes every work directory whose lock is free, and never touches one a live
//! process holds.

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use rustix::mount::UnmountFlags;

#[derive(Debug, thiserror::Error)]
#[error("work directory {path}")]
pub struct WorkDirError {
    pub(crate) path: String,
    pub(crate) source: std::io::Error,
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> WorkDirError + '_ {
    move |source| WorkDirError {
        path: path.display().to_string(),
        source,
    }
}

/// A run's work directory; unmounts what is left under it and removes it when dropped.
#[derive(Debug)]
pub(crate) struct WorkDir {
    path: PathBuf,
    _lock: File,
}

impl WorkDir {
    pub(crate) fn create(state_root: &Path) -> Result<WorkDir, WorkDirError> {
        let base = state_root.join("work");
        std::fs::create_dir_all(&base).map_err(err(&base))?;
        let path = tempdir_in(&base).map_err(err(&base))?;
        let lock = File::create(path.join("lock")).map_err(err(&path))?;
        rustix::fs::flock(&lock, FlockOperation::LockExclusive)
            .map_err(|e| err(&path)(e.into()))?;
        Ok(WorkDir { path, _lock: lock })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        unmount_under(&self.path);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn tempdir_in(base: &Path) -> std::io::Result<PathBuf> {
    for n in 0..1000u32 {
        let p = base.join(format!("{}-{n}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free work directory name"))
}

/// Mount points at or below `dir`, deepest first (from `/proc/self/mountinfo`).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        // mountinfo escapes space, tab, newline and backslash as octal.
        .map(|p| {
            PathBuf::from(
                p.replace("\\040", " ")
                    .replace("\\011", "\t")
                    .replace("\\012", "\n")
                    .replace("\\134", "\\"),
            )
        })
        .filter(|p| p.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

fn unmount_under(dir: &Path) -> usize {
    let mounts = mounts_under(dir);
    for m in &mounts {
        let _ = rustix::mount::unmount(m, UnmountFlags::DETACH);
    }
    mounts.len()
}

/// Unmount and remove the work directories of runs that are gone; returns how many.
pub(crate) fn cleanup_stale(state_root: &Path) -> Result<usize, WorkDirError> {
    let base = state_root.join("work");
    let Ok(entries) = std::fs::read_dir(&base) else {
        return Ok(0);
    };
    let mut cleaned = 0;
    for entry in entries.flatten() {
        let dir = entry.path();
        let lock = match File::options().write(true).open(dir.join("lock")) {
            Ok(f) => f,
            // No lock file: a directory being created right now, or junk; leave it.
            Err(_) => continue,
        };
        match rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                unmount_under(&dir);
                std::fs::remove_dir_all(&dir).map_err(err(&dir))?;
                cleaned += 1;
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {} // a live run
            Err(e) => return Err(err(&dir)(e.into())),
        }
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rbuild-workdir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn live_directories_survive_cleanup_and_drop_removes_them() {
        let r = root("live");
        let w = WorkDir::create(&r).unwrap();
        std::fs::write(w.path().join("x"), "y").unwrap();
        assert_eq!(
            cleanup_stale(&r).unwrap(),
            0,
            "a held lock means a live run"
        );
        assert!(w.path().join("x").exists());
        let p = w.path().to_path_buf();
        drop(w);
        assert!(!p.exists());
    }

    #[test]
    fn stale_directories_are_unmounted_and_removed() {
        let r = root("stale");
        // A run that died: its directory and lock file exist, nobody holds the lock, and it
        // left a mount behind.
        let dir = r.join("work").join("4242-0");
        std::fs::create_dir_all(dir.join("m")).unwrap();
        std::fs::write(dir.join("lock"), "").unwrap();
        let mounted = rustix::process::geteuid().is_root()
            && rustix::mount::mount(
                "tmpfs",
                dir.join("m").as_path(),
                "tmpfs",
                rustix::mount::MountFlags::empty(),
                None,
            )
            .is_ok();
        assert_eq!(cleanup_stale(&r).unwrap(), 1);
        assert!(!dir.exists());
        if mounted {
            assert!(mounts_under(&r).is_empty(), "the leftover mount is gone");
        } else {
            eprintln!("SKIPPED (needs root): the leftover-mount half of this test");
        }
    }
}
