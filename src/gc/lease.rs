//! What running builds use, and when each item of the state root was last used: what a
//! collection under a size cap (`usage.rs`) must spare, and what it removes first.
//!
//! In use: a build holds a shared `flock` on every item it uses — a step record's file, a
//! snapshot or tree directory, a cache mount's directory — from first use to its end
//! ([`Leases::hold`]). The kernel drops the locks with the process, so a killed build holds
//! nothing. A collection takes an exclusive lock on an item, without waiting, before it
//! removes it ([`try_exclusive`]), and skips the item when that fails. A build checks,
//! after taking its lock, that the item is still there — a collection may have removed it
//! just before — and makes it again if not.
//!
//! Last used: `<root>/gc/used`, one line per item a build used (`<unix seconds> <kind>
//! <name>`), all of a build's lines appended with one `write(2)` when its holds are
//! dropped, to a file opened `O_APPEND`, so concurrent builds never interleave a line (a
//! killed build's uses are lost: they only order the next collection). A collection reads it for each item's last use (an item
//! not in it: its modification time), and rewrites it with the items that remain.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::FlockOperation;

/// What kind of item a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A step record (name: the key's hex).
    Record,
    /// An overlay snapshot (name: the chain ID's hex).
    Snapshot,
    /// A native snapshotter tree (name: the chain ID's hex).
    Tree,
    /// A cache mount directory (name: its directory's name).
    Mount,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Record => "record",
            Kind::Snapshot => "snapshot",
            Kind::Tree => "tree",
            Kind::Mount => "mount",
        }
    }

    fn parse(word: &str) -> Option<Kind> {
        [Kind::Record, Kind::Snapshot, Kind::Tree, Kind::Mount]
            .into_iter()
            .find(|k| k.word() == word)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// The use log's path under `root`.
pub(crate) fn log_path(root: &Path) -> PathBuf {
    root.join("gc").join("used")
}

/// One build's holds on what it uses.
#[derive(Debug)]
pub struct Leases {
    log: PathBuf,
    held: Mutex<HashMap<PathBuf, File>>,
    /// The log lines of this build's uses, written when dropped.
    used: Mutex<String>,
}

impl Leases {
    pub fn new(root: &Path) -> Leases {
        Leases {
            log: log_path(root),
            held: Mutex::default(),
            used: Mutex::default(),
        }
    }

    /// Hold item `name` of `kind` at `path` for the rest of this build, and note its use.
    /// Returns whether it is still there once held (false: it was removed meanwhile, and
    /// the caller makes it again and holds it anew).
    pub fn hold(&self, kind: Kind, name: &str, path: &Path) -> std::io::Result<bool> {
        let mut held = self.held.lock().expect("leases");
        if held.contains_key(path) {
            return Ok(true);
        }
        let file = match open_raising_limit(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        rustix::fs::flock(&file, FlockOperation::LockShared)?;
        // Removed between the open and the lock: what is held is gone.
        if !path.exists() {
            return Ok(false);
        }
        held.insert(path.to_path_buf(), file);
        drop(held);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.used
            .lock()
            .expect("uses")
            .push_str(&format!("{now} {} {name}\n", kind.word()));
        Ok(true)
    }

    fn write_uses(&self) -> std::io::Result<()> {
        let used = std::mem::take(&mut *self.used.lock().expect("uses"));
        if used.is_empty() {
            return Ok(());
        }
        if let Some(dir) = self.log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?
            .write_all(used.as_bytes())
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        // The log is a hint for the order of removal: a failure to write it costs nothing.
        let _ = self.write_uses();
    }
}

/// Open `path`; out of file descriptors (a build holds one per item it uses), raise the
/// soft limit to the hard one and try again.
fn open_raising_limit(path: &Path) -> std::io::Result<File> {
    match File::open(path) {
        Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
            use rustix::process::{Resource, getrlimit, setrlimit};
            let mut limit = getrlimit(Resource::Nofile);
            if limit.current == limit.maximum {
                return Err(e);
            }
            limit.current = limit.maximum;
            setrlimit(Resource::Nofile, limit)?;
            File::open(path)
        }
        other => other,
    }
}

/// An exclusive lock on `path` if nobody holds it (None: a build uses it, or it is gone).
pub(crate) fn try_exclusive(path: &Path) -> std::io::Result<Option<File>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Each item's last use (unix seconds) in the log under `root`.
pub(crate) fn last_uses(root: &Path) -> HashMap<(Kind, String), u64> {
    let mut out: HashMap<(Kind, String), u64> = HashMap::new();
    let Ok(text) = std::fs::read_to_string(log_path(root)) else {
        return out;
    };
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(t), Some(k), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(t), Some(k)) = (t.parse::<u64>(), Kind::parse(k)) else {
            continue;
        };
        let e = out.entry((k, name.to_string())).or_insert(t);
        *e = (*e).max(t);
    }
    out
}

/// Rewrite the log under `root` with the last use of each item of `keep` (what a
/// collection left), through a temporary file and a rename. Lines appended meanwhile by a
/// build are lost: they only order the next collection, and the items are held.
pub(crate) fn compact(
    root: &Path,
    uses: &HashMap<(Kind, String), u64>,
    keep: &HashSet<(Kind, String)>,
) -> std::io::Result<()> {
    let path = log_path(root);
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    std::fs::create_dir_all(dir)?;
    let mut lines: Vec<String> = uses
        .iter()
        .filter(|(item, _)| keep.contains(*item))
        .map(|((k, name), t)| format!("{t} {} {name}\n", k.word()))
        .collect();
    lines.sort();
    let tmp = dir.join(format!(".used.tmp-{}", crate::store::unique_suffix()));
    std::fs::write(&tmp, lines.concat())?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_item_is_not_taken_and_uses_are_logged() {
        let root = tempfile::tempdir().unwrap();
        let item = root.path().join("snap");
        std::fs::create_dir(&item).unwrap();
        let leases = Leases::new(root.path());
        assert!(leases.hold(Kind::Snapshot, "abc", &item).unwrap());
        assert!(try_exclusive(&item).unwrap().is_none(), "held: not taken");
        assert!(
            !leases
                .hold(Kind::Snapshot, "gone", &root.path().join("gone"))
                .unwrap()
        );
        assert!(
            last_uses(root.path()).is_empty(),
            "written when the build ends"
        );
        drop(leases);
        let uses = last_uses(root.path());
        assert!(uses.contains_key(&(Kind::Snapshot, "abc".to_string())));
        assert!(!uses.contains_key(&(Kind::Snapshot, "gone".to_string())));
        let taken = try_exclusive(&item).unwrap();
        assert!(taken.is_some(), "released with the build");
        // While taken, a build waits for it and then finds it gone if it was removed.
        let leases = Leases::new(root.path());
        std::fs::remove_dir(&item).unwrap();
        drop(taken);
        assert!(!leases.hold(Kind::Snapshot, "abc", &item).unwrap());

        let keep: HashSet<_> = [(Kind::Snapshot, "abc".to_string())].into();
        let mut uses = last_uses(root.path());
        uses.insert((Kind::Record, "old".into()), 1);
        compact(root.path(), &uses, &keep).unwrap();
        let after = last_uses(root.path());
        assert_eq!(after.len(), 1);
        assert!(after.contains_key(&(Kind::Snapshot, "abc".to_string())));
    }
}
