//! Temporary files under `<root>/tmp/` and the atomic publication built on them: a file is
//! written under a unique temporary name, `fsync`ed, then renamed (or hard-linked) into
//! place, and its directory `fsync`ed, so that a crash leaves either the old file, the new
//! one, or a stray temporary — never a torn file under a real name. `tmp/` lives on the same
//! filesystem as `blobs/` and `index.json` (both are under the root), which is what makes
//! `rename(2)` atomic here.
//!
//! [`TempPath`] removes its file when dropped unless it was published, so every error path
//! and every abandoned writer cleans up after itself. [`sweep_stale`] removes what a crashed
//! process left behind. This file knows nothing about digests or indexes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rustix::fs::{Mode, OFlags};

use super::error::StoreError;

/// Temporary files whose last write is older than this are taken to be a crashed process's
/// and removed by [`sweep_stale`]. An hour is far longer than any write stalls for: a live
/// writer touches its file at every buffer it flushes.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// Mode of a temporary file while it is written (only its owner may touch it).
const TEMP_MODE: u32 = 0o600;

/// `<pid>-<n>`: a name part no other process, and no other thread of this one, uses at the
/// same time (for temporary names outside `tmp/`: snapshots being unpacked, cache records,
/// the context hash cache). A prune reads the pid from it.
pub fn unique_suffix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A temporary file's path, removed on drop unless [`TempPath::publish`]ed.
#[derive(Debug)]
pub(crate) struct TempPath {
    path: PathBuf,
    published: bool,
}

impl TempPath {
    /// Create a new, empty file `<dir>/<prefix>-<pid>-<n>` (never an existing one:
    /// `O_EXCL`, retried with the next `n` if a dead process left that name behind).
    pub(crate) fn create(dir: &Path, prefix: &str) -> Result<(File, TempPath), StoreError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("{prefix}-{pid}-{n}"));
            match OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .mode(TEMP_MODE)
                .open(&path)
            {
                Ok(file) => {
                    return Ok((
                        file,
                        TempPath {
                            path,
                            published: false,
                        },
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(StoreError::CreateTemp {
                        dir: dir.to_path_buf(),
                        source,
                    });
                }
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Rename the file to `to`, replacing whatever is there, then `fsync` `to`'s directory
    /// so that the rename survives a crash. The file itself must already be `fsync`ed.
    pub(crate) fn publish(mut self, to: &Path) -> Result<(), StoreError> {
        fs::rename(&self.path, to).map_err(|source| StoreError::Rename {
            from: self.path.clone(),
            to: to.to_path_buf(),
            source,
        })?;
        self.published = true;
        sync_parent(to)
    }

    /// Hard-link the file to `to` unless `to` exists; `Ok(false)` when it did. Unlike a
    /// rename this never replaces a file another process created first, which makes
    /// "create if missing" atomic without a lock. The temporary itself is removed on drop.
    pub(crate) fn publish_new(self, to: &Path) -> Result<bool, StoreError> {
        match fs::hard_link(&self.path, to) {
            Ok(()) => sync_parent(to).map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(source) => Err(StoreError::Link {
                from: self.path.clone(),
                to: to.to_path_buf(),
                source,
            }),
        }
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.published {
            // Best effort: the sweep removes it later if this fails.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Write `bytes` to a temporary file in `tmp`, `fsync` it and give it `mode`: the first
/// half of every small atomic write.
pub(crate) fn write_temp(
    tmp: &Path,
    prefix: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<TempPath, StoreError> {
    let (mut file, temp) = TempPath::create(tmp, prefix)?;
    let write_err = |source| StoreError::WriteFile {
        path: temp.path().to_path_buf(),
        source,
    };
    file.write_all(bytes).map_err(write_err)?;
    set_mode(&file, temp.path(), mode)?;
    file.sync_all().map_err(|source| StoreError::SyncFile {
        path: temp.path().to_path_buf(),
        source,
    })?;
    Ok(temp)
}

/// Atomically replace `dest` with `bytes` (temporary file in `tmp`, `fsync`, rename).
pub(crate) fn replace_file(
    tmp: &Path,
    dest: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), StoreError> {
    write_temp(tmp, &temp_prefix(dest), bytes, mode)?.publish(dest)
}

/// Atomically create `dest` with `bytes` unless it exists; `Ok(false)` when it did.
pub(crate) fn create_file(
    tmp: &Path,
    dest: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<bool, StoreError> {
    write_temp(tmp, &temp_prefix(dest), bytes, mode)?.publish_new(dest)
}

fn temp_prefix(dest: &Path) -> String {
    dest.file_name()
        .map_or_else(|| "file".to_string(), |n| n.to_string_lossy().into_owned())
}

/// `fchmod` an open file (the mode given at creation is filtered by the umask).
pub(crate) fn set_mode(file: &File, path: &Path, mode: u32) -> Result<(), StoreError> {
    rustix::fs::fchmod(file, Mode::from_raw_mode(mode)).map_err(|e| StoreError::SetMode {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// `fsync` a directory, making the renames and links in it durable (rename(2): "the
/// directory entry is not necessarily on disk until the directory is fsync'd").
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let fail = |e: rustix::io::Errno| StoreError::SyncDir {
        path: dir.to_path_buf(),
        source: e.into(),
    };
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail)?;
    rustix::fs::fsync(&fd).map_err(fail)
}

fn sync_parent(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}

/// Remove the files in `dir` last modified more than `older_than` before `now`; returns how
/// many were removed. Files that vanish meanwhile (another process swept them, or its writer
/// finished) are not errors; sub-directories are left alone.
pub(crate) fn sweep_stale(
    dir: &Path,
    older_than: Duration,
    now: SystemTime,
) -> Result<usize, StoreError> {
    let list_err = |source| StoreError::ListDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            continue;
        }
        let stale = meta
            .modified()
            .ok()
            .and_then(|mtime| now.duration_since(mtime).ok())
            .is_some_and(|age| age > older_than);
        if stale && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Remove the published directory `path` (a snapshot, a tree, a cache directory) so that no
/// crash leaves it half there: it is renamed first, to `tmp-<pid>-<n>-gone` beside it —
/// readers see all of it or nothing, and code that walks such directories takes `tmp-`
/// names for unfinished work — and removed after. What a crash leaves under such a name
/// (its process gone) is removed by the next call in the same directory. Returns whether
/// `path` was there (a missing one is no error).
pub fn remove_dir_atomically(path: &Path) -> io::Result<bool> {
    let Some(parent) = path.parent() else {
        return fs::remove_dir_all(path).map(|()| true);
    };
    let gone = parent.join(format!("tmp-{}-gone", unique_suffix()));
    match fs::rename(path, &gone) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    fs::remove_dir_all(&gone)?;
    remove_dead_leftovers(parent);
    Ok(true)
}

/// Remove `tmp-<pid>-<n>-gone` directories in `dir` whose process is gone.
fn remove_dead_leftovers(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("tmp-")
            .filter(|rest| rest.ends_with("-gone"))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_directory_goes_whole_and_a_dead_removals_leftover_goes_with_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let published = dir.path().join("snapshot");
        fs::create_dir_all(published.join("a/b")).unwrap();
        fs::write(published.join("a/b/f"), "x").unwrap();
        // What a removal killed half-way left: renamed away, partly removed.
        let dead = std::process::Command::new("true").spawn().unwrap();
        let pid = dead.id();
        let mut dead = dead;
        dead.wait().unwrap();
        let leftover = dir.path().join(format!("tmp-{pid}-0-gone"));
        fs::create_dir_all(leftover.join("half")).unwrap();
        // A live process's unpack in progress stays.
        let live = dir
            .path()
            .join(format!("tmp-{}-99-gone", std::process::id()));
        fs::create_dir_all(&live).unwrap();
        assert!(remove_dir_atomically(&published).unwrap());
        assert!(!remove_dir_atomically(&published).unwrap(), "already gone");
        assert_eq!(
            names(dir.path()),
            vec![format!("tmp-{}-99-gone", std::process::id())]
        );
    }

    #[test]
    fn dropped_temp_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut file, temp) = TempPath::create(dir.path(), "blob").unwrap();
        file.write_all(b"partial").unwrap();
        assert_eq!(names(dir.path()).len(), 1);
        drop(temp);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn temp_names_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let (_, a) = TempPath::create(dir.path(), "x").unwrap();
        let (_, b) = TempPath::create(dir.path(), "x").unwrap();
        assert_ne!(a.path(), b.path());
        assert!(
            a.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("x-{}-", std::process::id()))
        );
    }

    #[test]
    fn replace_and_create() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let dest = dir.path().join("index.json");

        assert!(create_file(&tmp, &dest, b"first", 0o644).unwrap());
        assert!(
            !create_file(&tmp, &dest, b"second", 0o644).unwrap(),
            "exists"
        );
        assert_eq!(fs::read(&dest).unwrap(), b"first");

        replace_file(&tmp, &dest, b"third", 0o644).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"third");
        assert!(
            names(&tmp).is_empty(),
            "no temporaries left: {:?}",
            names(&tmp)
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }

    /// `file age in seconds => removed?`, for a sweep of files older than an hour.
    macro_rules! sweeps {
        ($($name:ident: $age:expr => $removed:expr;)*) => {$(
            #[test]
            fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("blob-1-0");
                let file = File::create(&path).unwrap();
                let mtime = SystemTime::now();
                file.set_modified(mtime).unwrap();
                let now = mtime + Duration::from_secs($age);
                let removed = sweep_stale(dir.path(), STALE_AFTER, now).unwrap();
                assert_eq!((removed == 1, !path.exists()), ($removed, $removed));
            }
        )*};
    }

    sweeps! {
        fresh_file_is_kept: 0 => false;
        file_of_59_minutes_is_kept: 59 * 60 => false;
        file_of_an_hour_and_a_second_is_removed: 3601 => true;
        file_of_a_day_is_removed: 86_400 => true;
    }

    #[test]
    fn sweep_leaves_directories_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let later = SystemTime::now() + Duration::from_secs(86_400);
        assert_eq!(sweep_stale(dir.path(), STALE_AFTER, later).unwrap(), 0);
        assert_eq!(names(dir.path()), ["sub"]);
    }
}
