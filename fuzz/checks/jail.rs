//! A scratch directory for checks that write files from hostile input, and the proof that
//! they wrote nothing outside it.
//!
//! Layout, in a fresh temporary parent (under `/dev/shm` when it exists: no disk I/O):
//! `root/` (where the check writes), `sentinel` (a file) and `outside/sentinel`. The root
//! starts with symlinks that lead out of it — `up -> ../outside`, `abs -> <parent>/outside`,
//! `dotdot -> ..`, `file -> ../sentinel` — so that an archive writing through them, were it
//! followed, would change something [`Jail::assert_contained`] looks at: the parent's and
//! `outside`'s entries and times, and both sentinels' content, mode, owner and link count.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

const SENTINEL: &[u8] = b"nothing outside the root may change\n";

pub struct Jail {
    parent: tempfile::TempDir,
    pub root: PathBuf,
    before: Vec<(String, String)>,
}

impl Jail {
    pub fn new() -> Jail {
        let parent = scratch();
        let p = parent.path();
        let root = p.join("root");
        fs::create_dir(&root).unwrap();
        fs::create_dir(p.join("outside")).unwrap();
        fs::write(p.join("sentinel"), SENTINEL).unwrap();
        fs::write(p.join("outside/sentinel"), SENTINEL).unwrap();
        symlink("../outside", root.join("up")).unwrap();
        symlink(p.join("outside"), root.join("abs")).unwrap();
        symlink("..", root.join("dotdot")).unwrap();
        symlink("../sentinel", root.join("file")).unwrap();
        let mut jail = Jail {
            parent,
            root,
            before: Vec::new(),
        };
        jail.before = jail.outside_state();
        jail
    }

    /// What must not change: every path of the parent but the root's contents, with its
    /// metadata (and content, for files).
    fn outside_state(&self) -> Vec<(String, String)> {
        let p = self.parent.path();
        let mut out = Vec::new();
        for dir in [p.to_path_buf(), p.join("outside")] {
            let mut names: Vec<String> = fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            out.push((
                dir.display().to_string(),
                format!("{names:?} {}", describe(&dir)),
            ));
        }
        for file in ["sentinel", "outside/sentinel"] {
            let path = p.join(file);
            let content = fs::read(&path).unwrap_or_default();
            out.push((file.to_string(), format!("{} {content:?}", describe(&path))));
        }
        out
    }

    /// The parent directory (which link targets in the root may name).
    pub fn path(&self) -> &Path {
        self.parent.path()
    }

    /// Panic when anything outside the root changed.
    pub fn assert_contained(&self) {
        let after = self.outside_state();
        assert_eq!(self.before, after, "something outside the root changed");
        let root = fs::symlink_metadata(&self.root).expect("the root is gone");
        assert!(root.is_dir(), "the root is no longer a directory");
    }

    /// Everything under the root, symlinks not followed, in path order: kind, mode, owner,
    /// link count, and the content's hash or the link's target (this jail's own path in it
    /// written `<jail>`, so that two jails compare). Times are left out.
    pub fn tree(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root, "", &mut out);
        let own = self.parent.path().display().to_string();
        let mut out: Vec<String> = out.into_iter().map(|e| e.replace(&own, "<jail>")).collect();
        out.sort();
        out
    }
}

impl Drop for Jail {
    /// Make every directory writable again (an archive may leave one 0555), so that
    /// removing the parent cannot fail when not root.
    fn drop(&mut self) {
        fn open_up(dir: &Path) {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
            if let Ok(rd) = fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        open_up(&e.path());
                    }
                }
            }
        }
        open_up(&self.root);
    }
}

/// A scratch directory for a check that writes files, removed when dropped: in memory
/// (`/dev/shm`) where there is one.
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let b = {
        let mut b = tempfile::Builder::new();
        b.prefix("rbuild-fuzz-");
        b
    };
    if shm.is_dir() {
        b.tempdir_in(shm)
    } else {
        b.tempdir()
    }
    .expect("temporary directory")
}

fn describe(path: &Path) -> String {
    match fs::symlink_metadata(path) {
        Ok(m) => format!(
            "mode={:o} uid={} gid={} nlink={} size={} mtime={}.{}",
            m.mode(),
            m.uid(),
            m.gid(),
            m.nlink(),
            m.size(),
            m.mtime(),
            m.mtime_nsec()
        ),
        Err(e) => format!("missing: {}", e.kind()),
    }
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = format!("{rel}/{name}");
        let path = e.path();
        let Ok(m) = fs::symlink_metadata(&path) else {
            continue;
        };
        let what = if m.file_type().is_symlink() {
            format!("-> {:?}", fs::read_link(&path).unwrap_or_default())
        } else if m.is_file() {
            let content = fs::read(&path).unwrap_or_default();
            super::sha256_hex(&content)
        } else {
            String::new()
        };
        out.push(format!(
            "{rel} mode={:o} uid={} gid={} nlink={} rdev={} {what}",
            m.mode(),
            m.uid(),
            m.gid(),
            m.nlink(),
            m.rdev()
        ));
        if m.is_dir() {
            walk(&path, &rel, out);
        }
    }
}
