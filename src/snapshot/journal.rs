//! Snapshots and native trees are written without `fsync` (unpacked layers, and overlays
//! mounted `volatile`, so that unmounting a step's overlay does not flush every dirty page of
//! the filesystem): they are caches, made again from verified blobs whenever they are
//! missing. What must not happen is a machine losing power before the kernel wrote one back,
//! and a later build trusting the half-written directory.
//!
//! So each published directory is noted in `<state root>/unsynced` with the boot it was
//! written in. [`recover`] (run before a build) removes every directory noted in another
//! boot — the machine went down while it may still have been in memory only — and forgets
//! the entries of this boot older than [`WRITEBACK`], by when the kernel has written them
//! (`vm.dirty_expire_centisecs` is 30 s by default). A crash of rbuild alone loses nothing:
//! the page cache survives it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::FlockOperation;

/// How long after writing a directory its data is surely on disk.
pub(crate) const WRITEBACK: Duration = Duration::from_secs(300);

const FILE: &str = "unsynced";

/// This boot's id (`/proc/sys/kernel/random/boot_id`), if the kernel tells.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn open_locked(state_root: &Path) -> std::io::Result<File> {
    let f = File::options()
        .read(true)
        .append(true)
        .create(true)
        .open(state_root.join(FILE))?;
    rustix::fs::flock(&f, FlockOperation::LockExclusive)?;
    Ok(f)
}

/// Note that `dir` (below `state_root`) is about to be published and may not be on disk yet.
/// The note itself is synced, so it is on disk before the directory's name is.
/// Best effort: without a boot id, or when the note cannot be written, nothing is noted.
pub(crate) fn record(state_root: &Path, dir: &Path) {
    if let Some(boot) = boot_id() {
        record_in(state_root, dir, &boot, now());
    }
}

fn record_in(state_root: &Path, dir: &Path, boot: &str, at: u64) {
    let Ok(rel) = dir.strip_prefix(state_root) else {
        return;
    };
    if let Ok(mut f) = open_locked(state_root) {
        let _ = writeln!(f, "{boot} {at} {}", rel.display()).and_then(|_| f.sync_data());
    }
}

/// Remove the directories noted in another boot; forget this boot's entries older than
/// [`WRITEBACK`]. Returns how many directories were removed.
pub(crate) fn recover(state_root: &Path) -> std::io::Result<usize> {
    match boot_id() {
        Some(boot) => recover_in(state_root, &boot, now()),
        None => Ok(0),
    }
}

fn recover_in(state_root: &Path, boot: &str, at: u64) -> std::io::Result<usize> {
    let mut removed = 0;
    filter(state_root, |b, t, rel| {
        if b != boot {
            if crate::store::remove_dir_atomically(&state_root.join(rel))? {
                removed += 1;
            }
            return Ok(false);
        }
        Ok(t.is_none_or(|t| at.saturating_sub(t) < WRITEBACK.as_secs()))
    })?;
    Ok(removed)
}

/// Write back everything on the state root's filesystem (`syncfs(2)`), then forget this
/// boot's notes made before that began: those directories are on disk. A build syncs so
/// before it tags an image whose layers' only copy is their snapshots (deferred layers).
pub(crate) fn sync(state_root: &Path) -> std::io::Result<()> {
    let start = now();
    let root = File::open(state_root)?;
    rustix::fs::syncfs(&root)?;
    match boot_id() {
        Some(boot) => forget_before(state_root, &boot, start),
        None => Ok(()),
    }
}

fn forget_before(state_root: &Path, boot: &str, before: u64) -> std::io::Result<()> {
    // Seconds are coarse: a note of the very second the sync began stays.
    filter(state_root, |b, t, _| {
        Ok(b != boot || t.is_none_or(|t| t >= before))
    })
}

/// Keep the notes `keep` says (by boot, time and directory), rewriting the file if any goes.
fn filter(
    state_root: &Path,
    mut keep: impl FnMut(&str, Option<u64>, &Path) -> std::io::Result<bool>,
) -> std::io::Result<()> {
    if !state_root.join(FILE).exists() {
        return Ok(());
    }
    let mut f = open_locked(state_root)?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    let mut kept = String::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(b), Some(t), Some(rel)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        // Only directories this journal can name: no absolute paths, no `..`.
        let rel_path = Path::new(rel);
        if rel_path.is_absolute() || rel_path.components().any(|c| c.as_os_str() == "..") {
            continue;
        }
        if keep(b, t.parse::<u64>().ok(), rel_path)? {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if kept != text {
        f.set_len(0)?;
        f.rewind()?;
        f.write_all(kept.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_boot_loses_its_unsynced_directories() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for name in ["snapshots/a", "snapshots/b", "trees/c", "snapshots/d"] {
            std::fs::create_dir_all(root.join(name)).unwrap();
            std::fs::write(root.join(name).join("f"), "x").unwrap();
        }
        record_in(root, &root.join("snapshots/a"), "old-boot", 1000);
        record_in(root, &root.join("trees/c"), "old-boot", 1000);
        record_in(root, &root.join("snapshots/b"), "this-boot", 5000);
        record_in(root, &root.join("snapshots/d"), "this-boot", 1000);
        // A path outside the root is never noted.
        record_in(root, Path::new("/etc"), "old-boot", 1000);
        assert_eq!(recover_in(root, "this-boot", 5100).unwrap(), 2);
        assert!(!root.join("snapshots/a").exists() && !root.join("trees/c").exists());
        assert!(root.join("snapshots/b").exists() && root.join("snapshots/d").exists());
        // b is recent and stays noted; d is older than the writeback time and is forgotten.
        let left = std::fs::read_to_string(root.join(FILE)).unwrap();
        assert_eq!(left, "this-boot 5000 snapshots/b\n");
        // Nothing to do in a later boot for what was forgotten.
        assert_eq!(recover_in(root, "next-boot", 9000).unwrap(), 1);
        assert!(root.join("snapshots/d").exists() && !root.join("snapshots/b").exists());
    }

    #[test]
    fn hostile_entries_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(
            root.join(FILE),
            format!("b 1 ../outside\nb 1 {}\ngarbage\n", outside.display()),
        )
        .unwrap();
        assert_eq!(recover_in(&root, "other", 10).unwrap(), 0);
        assert!(outside.exists());
    }

    #[test]
    fn a_sync_forgets_what_was_noted_before_it_in_this_boot() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        record_in(root, &root.join("snapshots/a"), "this-boot", 1000);
        record_in(root, &root.join("snapshots/b"), "this-boot", 2000);
        record_in(root, &root.join("snapshots/c"), "old-boot", 1000);
        forget_before(root, "this-boot", 2000).unwrap();
        let left = std::fs::read_to_string(root.join(FILE)).unwrap();
        assert_eq!(
            left,
            "this-boot 2000 snapshots/b\nold-boot 1000 snapshots/c\n"
        );
    }
}
