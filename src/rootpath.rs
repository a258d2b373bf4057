//! Resolving a path inside a root filesystem one name at a time, the way the kernel does
//! with the root as `/` (`openat2(RESOLVE_IN_ROOT)` semantics): `.` and empty names are
//! skipped, `..` stops at the root, a symlink's target replaces it (from the root when
//! absolute), and 40 links at most are followed (`MAXSYMLINKS`; fsutil, which BuildKit's
//! COPY follows, allows 255: [`Walk::with_max_links`]). [`Walk`] is only the
//! bookkeeping; its callers do the looking (an `lstat` through a directory descriptor,
//! an ignore-aware view of the build context) and decide what a missing name means
//! (create it, stop, or carry on lexically). [`resolve_in_dir`] is the one caller that
//! needs nothing more than `lstat` on a directory of this machine.

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

/// Resolve `path` inside the directory `root` of this machine as [`Walk`] does, each name
/// looked up with `lstat`: the real path, relative to `root` (`""` for `root` itself), goes
/// through no symlink, so joined to `root` it names what a process chrooted there would
/// open. A symlink to `/` or `../..` names `root`, never the host's root (Buildah's
/// CVE-2024-1753, BuildKit's CVE-2026-33748). Only for trees nothing changes while they are
/// used (a stage's snapshot, a checkout just made): a name swapped for a symlink after its
/// look-up is not seen. A missing name is `NotFound`, a name under a file `NotADirectory`,
/// more than [`MAX_LINKS`] links `ELOOP`.
pub(crate) fn resolve_in_dir(root: &std::path::Path, path: &str) -> std::io::Result<String> {
    let mut walk = Walk::new(path);
    while let Some(name) = walk.next_name() {
        let here = walk.child(&name);
        let meta = std::fs::symlink_metadata(root.join(&here))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(root.join(&here))?;
            let target = target.to_str().ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("/{here}: the symlink's target is not UTF-8"),
                )
            })?;
            walk.follow(target)
                .map_err(|_| std::io::Error::from_raw_os_error(libc::ELOOP))?;
        } else if !walk.is_last() && !meta.is_dir() {
            return Err(std::io::Error::from(std::io::ErrorKind::NotADirectory));
        } else {
            walk.push(name);
        }
    }
    Ok(walk.real())
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
    fn resolves_in_a_directory_of_this_machine() {
        let root = std::env::temp_dir().join(format!("rbuild-rootpath-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc/app")).unwrap();
        std::fs::write(root.join("etc/file"), "x").unwrap();
        for (link, target) in [("top", "/"), ("up", "../../.."), ("conf", "/etc/app")] {
            std::os::unix::fs::symlink(target, root.join(link)).unwrap();
        }
        std::os::unix::fs::symlink("../../up/etc", root.join("etc/app/back")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let r = |p: &str| resolve_in_dir(&root, p).map_err(|e| e.kind());
        assert_eq!(r("top").unwrap(), "", "a link to / is the root");
        assert_eq!(r("up").unwrap(), "");
        assert_eq!(r("/../../etc").unwrap(), "etc");
        assert_eq!(r("conf").unwrap(), "etc/app");
        assert_eq!(r("conf/back/app").unwrap(), "etc/app");
        assert_eq!(r("top/tmp"), Err(std::io::ErrorKind::NotFound));
        assert_eq!(r("etc/file/x"), Err(std::io::ErrorKind::NotADirectory));
        assert!(resolve_in_dir(&root, "loop").is_err());
        std::fs::remove_dir_all(&root).unwrap();
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
