//! The side COPY reads from: the build context as `.dockerignore` leaves it, or a plain tree
//! (another stage's or an image's root filesystem).
//!
//! Owns: the question "does this path exist in the source, and what is it", listings, the
//! filtered walk of a source directory and opening files for reading. For the context every
//! answer comes from [`crate::context::Walk`] with the `.dockerignore` matcher, restricted by
//! an include pattern naming the one path asked about, which is how BuildKit's context
//! transfer (tonistiigi/fsutil) sees the directory: an ignored file does not exist for COPY.
//! Must not follow symlinks (callers resolve them, inside the root, in `selection.rs`) and
//! must not write anything.

use std::fs::{File, Metadata};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::error::CopyError;
use super::op::SourceRoot;
use crate::context::{EntryKind, Filter, Matcher, Walk};

/// One entry below a source item: its path relative to the item (`a/b`), what it is, and its
/// `lstat`.
pub(super) struct Entry {
    pub(crate) rel: String,
    pub(crate) kind: EntryKind,
    pub(crate) meta: Metadata,
}

/// A source root opened for reading.
pub(super) struct View {
    /// The root, symlinks in its own path resolved.
    dir: PathBuf,
    /// `O_PATH` descriptor of `dir`: files are opened beneath it with no symlink followed.
    fd: OwnedFd,
    /// `Some` for the build context (with or without ignore patterns).
    context: Option<Option<Matcher>>,
}

impl View {
    pub(crate) fn open(root: &SourceRoot) -> Result<View, CopyError> {
        let (given, context) = match root {
            SourceRoot::Context { dir, ignore } => (*dir, Some(ignore.cloned())),
            SourceRoot::Tree(dir) => (*dir, None),
        };
        let failed = |source| CopyError::OpenSource {
            path: given.to_path_buf(),
            source,
        };
        let dir = std::fs::canonicalize(given).map_err(failed)?;
        let fd = rustix::fs::open(
            &dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| failed(e.into()))?;
        Ok(View { dir, fd, context })
    }

    /// Whether this is the build context (whose owners are never copied).
    pub(crate) fn is_context(&self) -> bool {
        self.context.is_some()
    }

    /// The host path of `rel`, for messages and cache keys.
    pub(crate) fn host_path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.dir.clone()
        } else {
            self.dir.join(rel)
        }
    }

    /// `lstat` of `rel` on disk, ignore patterns not applied; `None` when it does not exist.
    /// `rel` must not pass through a symlink.
    pub(crate) fn lstat_raw(&self, rel: &str) -> Result<Option<Metadata>, CopyError> {
        let path = self.host_path(rel);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) => Ok(Some(meta)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(source) => Err(CopyError::ReadSource { path, source }),
        }
    }

    /// `lstat` of `rel` as COPY sees it: `None` when it does not exist or `.dockerignore`
    /// hides it. `rel` must not pass through a symlink.
    pub(crate) fn lstat(&self, rel: &str) -> Result<Option<Metadata>, CopyError> {
        let Some(ignore) = &self.context else {
            return self.lstat_raw(rel);
        };
        if rel.is_empty() {
            return self.lstat_raw(rel);
        }
        // The walk reports the ancestors of `rel` first, then `rel` itself as soon as it is
        // visible (for a directory held back by an exception: once something below it is).
        let include = Matcher::new(&[literal(rel)]).map_err(|source| CopyError::Pattern {
            patterns: vec![rel.to_string()],
            source,
        })?;
        let walk = Walk::new(
            &self.dir,
            vec![Filter::from_matchers(Some(include), ignore.clone())],
        )?;
        for entry in walk {
            let entry = entry?;
            if entry.path == rel {
                return Ok(Some(entry.metadata));
            }
        }
        Ok(None)
    }

    /// The target of symlink `rel`.
    pub(crate) fn read_link(&self, rel: &str) -> Result<PathBuf, CopyError> {
        let path = self.host_path(rel);
        std::fs::read_link(&path).map_err(|source| CopyError::ReadSource { path, source })
    }

    /// Names in directory `rel` on disk, in byte order; ignore patterns not applied (callers
    /// ask [`View::lstat`] about the names they keep). Names that are not UTF-8 cannot be
    /// matched by a pattern and are left out.
    pub(crate) fn list(&self, rel: &str) -> Result<Vec<String>, CopyError> {
        let path = self.host_path(rel);
        let failed = |source| CopyError::ReadSource {
            path: path.clone(),
            source,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&path).map_err(failed)? {
            if let Ok(name) = entry.map_err(failed)?.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort_unstable();
        Ok(names)
    }

    /// Everything below directory `rel` as COPY sees it, in lexical depth-first order, paths
    /// relative to `rel`; `rel` itself is not included.
    pub(crate) fn entries<'a>(
        &'a self,
        rel: &str,
    ) -> Result<Box<dyn Iterator<Item = Result<Entry, CopyError>> + 'a>, CopyError> {
        let to_entry = |path: String, e: crate::context::WalkEntry| Entry {
            rel: path,
            kind: e.kind,
            meta: e.metadata,
        };
        let Some(ignore) = &self.context else {
            let walk = Walk::new(self.host_path(rel), Vec::new())?;
            return Ok(Box::new(walk.map(move |e| {
                let e = e?;
                Ok(to_entry(e.path.clone(), e))
            })));
        };
        let include = if rel.is_empty() {
            None
        } else {
            Some(
                Matcher::new(&[literal(rel)]).map_err(|source| CopyError::Pattern {
                    patterns: vec![rel.to_string()],
                    source,
                })?,
            )
        };
        let walk = Walk::new(
            &self.dir,
            vec![Filter::from_matchers(include, ignore.clone())],
        )?;
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        Ok(Box::new(walk.filter_map(move |e| {
            match e {
                // Ancestors of `rel`, and `rel` itself, come first and are not part of it.
                Ok(e) => e
                    .path
                    .strip_prefix(prefix.as_str())
                    .map(str::to_string)
                    .map(|path| Ok(to_entry(path, e))),
                Err(e) => Some(Err(e.into())),
            }
        })))
    }

    /// Open regular file `rel` for reading; no symlink is followed on the way.
    pub(crate) fn open_file(&self, rel: &str) -> Result<File, CopyError> {
        rustix::fs::openat2(
            &self.fd,
            rel,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        )
        .map(File::from)
        .map_err(|e| CopyError::ReadSource {
            path: self.host_path(rel),
            source: e.into(),
        })
    }
}

/// `rel` as a `.dockerignore` pattern that matches exactly that path: the glob characters,
/// `\`, the regexp anchor `^` (which the pattern compiler pastes as is) and a leading `!` are
/// escaped. Names with leading or trailing white space cannot be expressed, since patterns
/// are trimmed (moby/patternmatcher).
fn literal(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len() + 4);
    for (i, c) in rel.chars().enumerate() {
        if matches!(c, '\\' | '*' | '?' | '[' | ']' | '^') || (i == 0 && c == '!') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::{View, literal};
    use crate::context::{Matcher, read_ignore_file};
    use crate::engine::copy::SourceRoot;

    /// Make `tree` under `dir`: `name/` is a directory, `a -> b` a symlink, else a file.
    pub(crate) fn make(dir: &std::path::Path, tree: &[&str]) {
        for item in tree {
            if let Some((link, target)) = item.split_once(" -> ") {
                std::os::unix::fs::symlink(target, dir.join(link)).unwrap();
            } else if let Some(d) = item.strip_suffix('/') {
                std::fs::create_dir_all(dir.join(d)).unwrap();
            } else {
                std::fs::write(dir.join(item), item.as_bytes()).unwrap();
            }
        }
    }

    #[test]
    fn literal_patterns_match_only_their_path() {
        for name in [
            "a*b",
            "x[1]",
            "q?",
            "!bang",
            "back\\slash",
            "car^et",
            "d$.txt",
        ] {
            let m = Matcher::new(&[literal(name)]).unwrap();
            assert_eq!(m.matches(name), Ok(true), "{name}");
            assert_eq!(m.matches("other"), Ok(false), "{name}");
        }
    }

    /// `sees!(tree, .dockerignore text; visible paths; hidden paths)`.
    macro_rules! sees {
        ($tree:expr, $ignore:expr; [$($yes:expr),*]; [$($no:expr),*]) => {{
            let tmp = tempfile::tempdir().unwrap();
            make(tmp.path(), &$tree);
            let ignore = Matcher::new(&read_ignore_file($ignore)).unwrap();
            let root = SourceRoot::Context { dir: tmp.path(), ignore: Some(&ignore) };
            let view = View::open(&root).unwrap();
            $( assert!(view.lstat($yes).unwrap().is_some(), "{} should be visible", $yes); )*
            $( assert!(view.lstat($no).unwrap().is_none(), "{} should be hidden", $no); )*
        }};
    }

    #[test]
    fn dockerignore_decides_what_exists() {
        let tree = [
            "a/",
            "a/keep",
            "a/drop",
            "b/",
            "b/x",
            "secret",
            "link -> secret",
        ];
        sees!(tree, "secret\nb\n"; ["a", "a/keep", "link"]; ["secret", "b", "b/x", "nope"]);
        sees!(tree, "a\n!a/keep\n"; ["a", "a/keep"]; ["a/drop"]);
        sees!(tree, "a/*\n"; ["a"]; ["a/keep"]);
    }
}
