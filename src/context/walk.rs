//! The filtered walk of a build-context directory: the entries BuildKit would send, in the
//! order fsutil sends them (grammar/dockerignore.md R4).
//!
//! Owns: reading directories (lexical byte order, depth first, never following symlinks), the
//! per-entry `lstat`/`readlink`, read-error policy, and stacking [`Filter`]s so each one sees
//! only what the previous one let through. Must not decide matching itself (`filter.rs` and
//! `pattern.rs` do), hash or read file contents, or buffer the tree: memory is one sorted
//! listing per directory on the current branch plus the few entries a filter releases at once.
//!
//! Deliberate differences from fsutil, both turning silent surprises into named errors: an
//! unreadable context root is an error (fsutil reports an empty context), and so is a file name
//! that is not UTF-8 (patterns match text).

use std::collections::VecDeque;
use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};

use super::filter::{Candidate, Filter, FilterError, Flow, Layer};

/// What a reported entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    /// A symbolic link, never followed; `target` is its text as stored.
    Symlink {
        target: PathBuf,
    },
    /// A FIFO, socket or device node.
    Other,
}

/// One entry of the filtered context.
#[derive(Clone, Debug)]
pub struct WalkEntry {
    /// Relative to the context root, `/`-separated, no leading `./` or `/`.
    pub path: String,
    pub kind: EntryKind,
    /// `lstat` of the entry.
    pub(crate) metadata: Metadata,
}

/// Why a walk failed. Every variant names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("open build context {path}")]
    OpenRoot { path: PathBuf, source: io::Error },
    #[error("build context {path} is not a directory")]
    RootNotDir { path: PathBuf },
    #[error("read directory {path}")]
    ReadDir { path: PathBuf, source: io::Error },
    #[error("stat {path}")]
    Stat { path: PathBuf, source: io::Error },
    #[error("read symlink {path}")]
    ReadLink { path: PathBuf, source: io::Error },
    #[error("file name is not valid UTF-8: {path}")]
    NonUtf8Name { path: PathBuf },
    #[error(transparent)]
    Filter(#[from] FilterError),
}

impl WalkError {
    /// The underlying I/O error kind, when there is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            WalkError::OpenRoot { source, .. }
            | WalkError::ReadDir { source, .. }
            | WalkError::Stat { source, .. }
            | WalkError::ReadLink { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// The filtered walk; an iterator of entries that stops after the first error.
pub struct Walk {
    root: PathBuf,
    /// Unvisited entries of each directory on the current branch, in reverse lexical order.
    stack: Vec<Vec<Candidate>>,
    layers: Vec<Layer>,
    ready: VecDeque<WalkEntry>,
    error: Option<WalkError>,
    finished: bool,
}

impl Walk {
    /// Start walking `root` (symlinks in `root` itself are resolved, as fsutil does) through
    /// `filters`, the first applied to the raw tree and each next one to what the previous
    /// let through (R4.7). No filters reports everything.
    pub fn new(root: impl AsRef<Path>, filters: Vec<Filter>) -> Result<Walk, WalkError> {
        let given = root.as_ref();
        let root = std::fs::canonicalize(given).map_err(|source| WalkError::OpenRoot {
            path: given.to_path_buf(),
            source,
        })?;
        if !root.is_dir() {
            return Err(WalkError::RootNotDir { path: root });
        }
        let top = read_sorted(&root, "").map_err(|source| WalkError::OpenRoot {
            path: root.clone(),
            source,
        })??;
        Ok(Walk {
            root,
            stack: vec![top],
            layers: filters.into_iter().map(Layer::new).collect(),
            ready: VecDeque::new(),
            error: None,
            finished: false,
        })
    }

    /// Offer one entry to the layers; entries that come out are queued in `ready`.
    fn visit(&mut self, candidate: &Candidate) -> Result<Flow, WalkError> {
        let Walk {
            root,
            layers,
            ready,
            ..
        } = self;
        let mut output = |c: &Candidate| -> Result<Flow, WalkError> {
            match describe(root, c) {
                Ok(entry) => {
                    ready.push_back(entry);
                    Ok(Flow::Continue)
                }
                // Gone since it was listed: fsutil turns not-exist into SkipDir.
                Err(e) if e.io_kind() == Some(io::ErrorKind::NotFound) => Ok(Flow::SkipDir),
                Err(e) => Err(e),
            }
        };
        feed(layers, candidate, &mut output)
    }

    /// After an entry was let through: read it if it is a directory (R4.6 for errors).
    fn descend(&mut self, dir: &Candidate) -> Result<(), WalkError> {
        if !dir.is_dir {
            return Ok(());
        }
        let path = self.root.join(&dir.path);
        let failure = match read_sorted(&path, &dir.path) {
            Ok(listing) => {
                self.stack.push(listing?);
                return Ok(());
            }
            Err(e) => e,
        };
        // Gone or replaced by a non-directory since it was listed: fsutil skips it.
        if matches!(
            failure.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
        ) {
            return Ok(());
        }
        // Only the first (innermost) filter sees read errors, as in fsutil.
        let denied = failure.kind() == io::ErrorKind::PermissionDenied;
        if let Some(first) = self.layers.first()
            && first.tolerates_unreadable(&dir.path, denied)
        {
            return Ok(());
        }
        Err(WalkError::ReadDir {
            path,
            source: failure,
        })
    }

    fn step(&mut self) -> Result<(), WalkError> {
        let Some(listing) = self.stack.last_mut() else {
            self.finished = true;
            return Ok(());
        };
        let Some(candidate) = listing.pop() else {
            self.stack.pop();
            return Ok(());
        };
        match self.visit(&candidate)? {
            Flow::Continue => self.descend(&candidate),
            Flow::SkipDir if candidate.is_dir => Ok(()),
            // Go's WalkDir: SkipDir on a non-directory skips the rest of its directory.
            Flow::SkipDir => {
                self.stack.pop();
                Ok(())
            }
        }
    }
}

impl Iterator for Walk {
    type Item = Result<WalkEntry, WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(entry) = self.ready.pop_front() {
                return Some(Ok(entry));
            }
            if let Some(error) = self.error.take() {
                self.finished = true;
                return Some(Err(error));
            }
            if self.finished {
                return None;
            }
            if let Err(error) = self.step() {
                self.stack.clear();
                self.error = Some(error);
            }
        }
    }
}

/// Pass `candidate` through `layers` in order, then to `output`.
fn feed(
    layers: &mut [Layer],
    candidate: &Candidate,
    output: &mut dyn FnMut(&Candidate) -> Result<Flow, WalkError>,
) -> Result<Flow, WalkError> {
    match layers.split_first_mut() {
        None => output(candidate),
        Some((layer, rest)) => layer.visit(candidate, &mut |c| feed(rest, c, output)),
    }
}

/// List directory `dir` (relative path `rel`) as candidates in reverse lexical byte order, so
/// that popping yields them in order (R4.1). The outer error is the directory's own; the inner
/// one is about an entry.
fn read_sorted(dir: &Path, rel: &str) -> io::Result<Result<Vec<Candidate>, WalkError>> {
    let mut listing = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = match entry.file_name().into_string() {
            Ok(name) => name,
            Err(_) => return Ok(Err(WalkError::NonUtf8Name { path: entry.path() })),
        };
        let file_type = match entry.file_type() {
            Ok(t) => t,
            // Gone since readdir: nothing to report.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Ok(Err(WalkError::Stat {
                    path: entry.path(),
                    source,
                }));
            }
        };
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        listing.push(Candidate {
            path,
            is_dir: file_type.is_dir(),
        });
    }
    // Byte order of the names, as Go's os.ReadDir; sibling paths share their prefix.
    listing.sort_unstable_by(|a, b| b.path.cmp(&a.path));
    Ok(Ok(listing))
}

/// Build the reported entry: `lstat`, and `readlink` for symlinks.
fn describe(root: &Path, candidate: &Candidate) -> Result<WalkEntry, WalkError> {
    let full = root.join(&candidate.path);
    let metadata = std::fs::symlink_metadata(&full).map_err(|source| WalkError::Stat {
        path: full.clone(),
        source,
    })?;
    let file_type = metadata.file_type();
    let kind = if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_symlink() {
        let target = std::fs::read_link(&full).map_err(|source| WalkError::ReadLink {
            path: full.clone(),
            source,
        })?;
        EntryKind::Symlink { target }
    } else if file_type.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    };
    Ok(WalkEntry {
        path: candidate.path.clone(),
        kind,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::{EntryKind, Walk, WalkError};
    use crate::context::Filter;
    use std::path::Path;

    /// Make `tree` under `dir`: `name/` is a directory, `name -> target` a symlink, else a file.
    fn make(dir: &Path, tree: &[&str]) {
        for item in tree {
            if let Some((link, target)) = item.split_once(" -> ") {
                std::os::unix::fs::symlink(target, dir.join(link)).unwrap();
            } else if let Some(d) = item.strip_suffix('/') {
                std::fs::create_dir_all(dir.join(d)).unwrap();
            } else {
                std::fs::write(dir.join(item), b"x").unwrap();
            }
        }
    }

    fn listing(dir: &Path, filters: Vec<Filter>) -> Result<Vec<String>, WalkError> {
        Walk::new(dir, filters)?
            .map(|e| {
                e.map(|e| match e.kind {
                    EntryKind::Dir => format!("{}/", e.path),
                    EntryKind::Symlink { target } => format!("{} -> {}", e.path, target.display()),
                    _ => e.path,
                })
            })
            .collect()
    }

    /// `walks!(tree, filters => expected)` on a fresh temporary directory.
    macro_rules! walks {
        ($tree:expr, [$($filter:expr),*] => $want:expr) => {{
            let tmp = tempfile::tempdir().unwrap();
            make(tmp.path(), &$tree);
            let got = listing(tmp.path(), vec![$($filter),*]).unwrap();
            assert_eq!(got, $want);
        }};
    }

    #[test]
    fn order_is_lexical_depth_first_bytes() {
        let tree = ["b/", "b/z", "b/a", "a-", "a/", "a/x", "B", "é"];
        walks!(tree, [] => ["B", "a/", "a/x", "a-", "b/", "b/a", "b/z", "é"]);
    }

    #[test]
    fn symlinks_are_reported_not_followed() {
        let tree = ["real/", "real/f", "link -> real", "dangling -> nowhere"];
        walks!(tree, [] => ["dangling -> nowhere", "link -> real", "real/", "real/f"]);
        let only_links = Filter::new(&[], &["real"]).unwrap();
        walks!(tree, [only_links] => ["dangling -> nowhere", "link -> real"]);
    }

    #[test]
    fn dockerignore_shapes() {
        let tree = [
            "Dockerfile",
            "dir/",
            "dir/a",
            "dir/e-dir/",
            "dir/e-dir/foo",
            "x.md",
        ];
        let f = || Filter::new(&[], &["dir", "!dir/e*", "*.md"]).unwrap();
        walks!(tree, [f()] => ["Dockerfile", "dir/", "dir/e-dir/", "dir/e-dir/foo"]);
        let f = Filter::new(&[], &["dir/**"]).unwrap();
        walks!(tree, [f] => ["Dockerfile", "dir/", "x.md"]);
    }

    #[test]
    fn root_errors_name_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing");
        let err = Walk::new(&missing, vec![]).err().unwrap();
        assert!(err.to_string().contains("missing"), "{err}");
        std::fs::write(tmp.path().join("file"), b"").unwrap();
        let err = Walk::new(tmp.path().join("file"), vec![]).err().unwrap();
        assert!(matches!(err, WalkError::RootNotDir { .. }), "{err}");
    }

    #[test]
    fn metadata_is_lstat() {
        let tmp = tempfile::tempdir().unwrap();
        make(tmp.path(), &["f", "l -> f"]);
        let entries: Vec<_> = Walk::new(tmp.path(), vec![])
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(entries[0].metadata.is_file());
        assert!(entries[1].metadata.file_type().is_symlink());
    }
}
