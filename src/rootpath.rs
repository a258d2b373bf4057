//! Resolving a path inside a root filesystem one name at a time, the way the kernel does
//! with the root as `/` (`openat2(RESOLVE_IN_ROOT)` semantics): `.` and empty names are
//! skipped, `..` stops at the root, a symlink's target replaces it (from the root when
//! absolute), and 40 links at most are followed (`MAXSYMLINKS`; fsutil, which BuildKit's
//! COPY follows, allows 255: [`Walk::with_max_links`]). [`Walk`] is only the
//! bookkeeping; its callers do the looking (an `lstat` through a directory descriptor,
//! an ignore-aware view of the build context) and decide what a missing name means
//! (create it, stop, or carry on lexically).

use std::collections::VecDeque;

/// Linux's `MAXSYMLINKS`: how many symlinks one resolution may follow.
pub(crate) const MAX_LINKS: u32 = 40;

/// The limit of fsutil and continuity, which BuildKit's COPY (source and destination side)
/// and archive extraction follow.
pub(crate) const FSUTIL_MAX_LINKS: u32 = 255;

/// Where a resolution is: the names still to resolve, and the real path so far (each
/// component an existing non-symlink, relative to the root).
#[derive(Clone, Debug)]
pub struct Walk {
    todo: VecDeque<String>,
    real: Vec<String>,
    links: u32,
    max_links: u32,
}

/// More symlinks than the walk may follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooManyLinks;

impl Walk {
    pub(crate) fn new(path: &str) -> Walk {
        Walk {
            todo: path.split('/').map(str::to_string).collect(),
            real: Vec::new(),
            links: 0,
            max_links: MAX_LINKS,
        }
    }

    /// Follow at most `n` symlinks instead of [`MAX_LINKS`].
    pub(crate) fn with_max_links(mut self, n: u32) -> Walk {
        self.max_links = n;
        self
    }

    /// The next name to look up, after `.`/empty names are skipped and `..` applied.
    pub(crate) fn next_name(&mut self) -> Option<String> {
        while let Some(name) = self.todo.pop_front() {
            match name.as_str() {
                "" | "." => continue,
                ".." => {
                    self.real.pop();
                }
                _ => return Some(name),
            }
        }
        None
    }

    /// Whether the name just taken is the last one (only `.` or empty names follow).
    pub(crate) fn is_last(&self) -> bool {
        self.todo.iter().all(|c| c.is_empty() || c == ".")
    }

    /// The name just taken is a symlink to `target`: resolve the target in its place.
    pub(crate) fn follow(&mut self, target: &str) -> Result<(), TooManyLinks> {
        self.links += 1;
        if self.links > self.max_links {
            return Err(TooManyLinks);
        }
        if target.starts_with('/') {
            self.real.clear();
        }
        for part in target.split('/').rev() {
            self.todo.push_front(part.to_string());
        }
        Ok(())
    }

    /// The name just taken exists and is not a symlink (or is kept as one): step into it.
    pub(crate) fn push(&mut self, name: String) {
        self.real.push(name);
    }

    /// The real path so far, relative to the root (`""` for the root).
    pub(crate) fn real(&self) -> String {
        self.real.join("/")
    }

    /// `name` below the real path so far.
    pub(crate) fn child(&self, name: &str) -> String {
        if self.real.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.real())
        }
    }

    /// Take the rest of the names lexically (no look-ups: what is left does not exist),
    /// applying `..`; returns the real path.
    pub(crate) fn finish_lexically(mut self) -> String {
        while let Some(name) = self.next_name() {
            self.real.push(name);
        }
        self.real()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolve against a table of symlinks (path → target); everything else exists.
    fn resolve(path: &str, links: &[(&str, &str)]) -> Result<String, TooManyLinks> {
        let mut w = Walk::new(path);
        while let Some(name) = w.next_name() {
            let here = w.child(&name);
            match links.iter().find(|(p, _)| *p == here) {
                Some((_, target)) => w.follow(target)?,
                None => w.push(name),
            }
        }
        Ok(w.real())
    }

    #[test]
    fn resolves_like_the_kernel_in_a_root() {
        assert_eq!(resolve("/a/./b//c", &[]).unwrap(), "a/b/c");
        assert_eq!(
            resolve("/../../a", &[]).unwrap(),
            "a",
            ".. stops at the root"
        );
        assert_eq!(resolve("/a/b/../c", &[]).unwrap(), "a/c");
        assert_eq!(
            resolve("/run/x", &[("run", "/outside")]).unwrap(),
            "outside/x"
        );
        assert_eq!(resolve("/a/l/f", &[("a/l", "../../../b")]).unwrap(), "b/f");
        assert_eq!(
            resolve("/a/l", &[("a/l", "m"), ("a/m", "n")]).unwrap(),
            "a/n"
        );
        assert_eq!(resolve("/", &[]).unwrap(), "");
        assert_eq!(resolve("/l", &[("l", "l")]), Err(TooManyLinks));
    }

    #[test]
    fn last_names_and_lexical_tails() {
        let mut w = Walk::new("a/b/./");
        assert_eq!(w.next_name().as_deref(), Some("a"));
        assert!(!w.is_last());
        w.push("a".into());
        assert_eq!(w.next_name().as_deref(), Some("b"));
        assert!(w.is_last());
        let mut w = Walk::new("x/y/../z");
        assert_eq!(w.next_name().as_deref(), Some("x"));
        w.push("x".into());
        assert_eq!(w.finish_lexically(), "x/z");
    }
}
