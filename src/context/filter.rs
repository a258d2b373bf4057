//! Include/exclude filtering of a directory walk, as tonistiigi/fsutil's `filterFS` applies it
//! to the build context BuildKit sends (grammar/dockerignore.md R4).
//!
//! Owns: a [`Filter`] (include patterns, such as requested paths, and exclude patterns, such as
//! `.dockerignore`), and the per-walk state machine ([`Layer`]) that decides for each entry of
//! a lexical depth-first walk whether to report it, walk it silently, or skip it, and that
//! reports a silently walked directory just before the first entry re-included below it. Must
//! not touch the filesystem: `walk.rs` reads directories and feeds entries in; a [`Layer`] only
//! sees paths and directory-ness, which keeps it testable without a disk.

use super::pattern::{Matcher, ParentMatches, PatternError};

/// Which pattern list of a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Include,
    Exclude,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Include => "include",
            Side::Exclude => "exclude",
        })
    }
}

/// A filter that cannot be built, or that fails on a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// One of the pattern lists does not compile (upstream: "invalid excludepatterns: ...").
    #[error("invalid {side} patterns {patterns:?}")]
    Compile {
        side: Side,
        patterns: Vec<String>,
        source: PatternError,
    },
    /// A pattern failed while deciding `path` (upstream: "failed to match excludepatterns").
    #[error("failed to match {side} patterns against {path:?}")]
    Match {
        side: Side,
        path: String,
        source: PatternError,
    },
}

/// Include and exclude patterns applied together, as one fsutil `FilterOpt`.
///
/// An empty list means "no such filter": no include patterns admits everything. A list that
/// is not empty but holds only blank patterns includes nothing, as upstream.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    include: Option<Matcher>,
    exclude: Option<Matcher>,
}

impl Filter {
    /// Compile include patterns (a path must match one) and exclude patterns (a path must not
    /// match), each with `.dockerignore` rules.
    pub fn new<S: AsRef<str>>(include: &[S], exclude: &[S]) -> Result<Filter, FilterError> {
        let compile = |side, patterns: &[S]| {
            if patterns.is_empty() {
                return Ok(None);
            }
            Matcher::new(patterns)
                .map(Some)
                .map_err(|source| FilterError::Compile {
                    side,
                    patterns: patterns.iter().map(|p| p.as_ref().to_string()).collect(),
                    source,
                })
        };
        Ok(Filter {
            include: compile(Side::Include, include)?,
            exclude: compile(Side::Exclude, exclude)?,
        })
    }

    /// A filter from already compiled matchers.
    pub(crate) fn from_matchers(include: Option<Matcher>, exclude: Option<Matcher>) -> Filter {
        Filter { include, exclude }
    }

    /// Whether opening `path` through this filter is allowed (fsutil `filterFS.Open`, R4.8):
    /// the include patterns match it (or a parent) and the exclude patterns do not.
    pub fn admits(&self, path: &str) -> Result<bool, FilterError> {
        let fail = |side, source| FilterError::Match {
            side,
            path: path.to_string(),
            source,
        };
        if let Some(include) = &self.include
            && !include.matches(path).map_err(|e| fail(Side::Include, e))?
        {
            return Ok(false);
        }
        if let Some(exclude) = &self.exclude
            && exclude.matches(path).map_err(|e| fail(Side::Exclude, e))?
        {
            return Ok(false);
        }
        Ok(true)
    }
}

/// An entry offered to a [`Layer`]: its slash-separated path relative to the context root and
/// whether it is a directory (symlinks to directories are not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) path: String,
    pub(crate) is_dir: bool,
}

/// What the walk should do after an entry (Go's `filepath.SkipDir` protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Go on; for a directory, read it and walk its entries.
    Continue,
    /// For a directory: do not walk it. For anything else: skip the rest of the directory that
    /// holds it (Go's `WalkDir` rule; reachable only through stacked filters).
    SkipDir,
}

/// A directory this layer has seen on the current branch of the walk.
#[derive(Debug)]
struct Visited {
    candidate: Candidate,
    /// `path/`, to recognise entries below it.
    prefix: String,
    include: ParentMatches,
    exclude: ParentMatches,
    /// Walked silently: not (yet) passed on.
    held_back: bool,
    /// Passed on already.
    reported: bool,
    /// A later filter refused it: nothing below it may be passed on.
    refused: bool,
}

/// One filter applied to one walk: the per-walk state of fsutil's `filterFS.Walk`.
#[derive(Debug)]
pub(crate) struct Layer {
    filter: Filter,
    branch: Vec<Visited>,
}

impl Layer {
    pub(crate) fn new(filter: Filter) -> Layer {
        Layer {
            filter,
            branch: Vec::new(),
        }
    }

    /// Decide `entry`, which the walk offers in lexical depth-first order. Entries this layer
    /// lets through go to `next` (a later layer, or the output), preceded by any directories it
    /// walked silently above them (R4.2–R4.5).
    pub(crate) fn visit<E: From<FilterError>>(
        &mut self,
        entry: &Candidate,
        next: &mut dyn FnMut(&Candidate) -> Result<Flow, E>,
    ) -> Result<Flow, E> {
        while let Some(top) = self.branch.last() {
            if entry.path.starts_with(&top.prefix) {
                break;
            }
            self.branch.pop();
        }
        let root = ParentMatches::default();
        let parent = self.branch.last();
        let mut held_back = false;
        let mut include_results = ParentMatches::default();
        let mut exclude_results = ParentMatches::default();

        if let Some(include) = &self.filter.include {
            let carried = parent.map_or(&root, |p| &p.include);
            let (included, results) = include
                .matches_with_parents(&entry.path, carried)
                .map_err(|source| match_error(Side::Include, entry, source))?;
            include_results = results;
            if !included {
                if entry.is_dir && !include.inclusions_may_match_under(&entry.path) {
                    return Ok(Flow::SkipDir);
                }
                held_back = true;
            }
        }
        if let Some(exclude) = &self.filter.exclude {
            let carried = parent.map_or(&root, |p| &p.exclude);
            let (excluded, results) = exclude
                .matches_with_parents(&entry.path, carried)
                .map_err(|source| match_error(Side::Exclude, entry, source))?;
            exclude_results = results;
            if excluded {
                if entry.is_dir && !exclude.exclusions_may_reinclude_under(&entry.path) {
                    return Ok(Flow::SkipDir);
                }
                held_back = true;
            }
        }

        let mut visited = entry.is_dir.then(|| Visited {
            candidate: entry.clone(),
            prefix: format!("{}/", entry.path),
            include: include_results,
            exclude: exclude_results,
            held_back,
            reported: false,
            refused: false,
        });
        let flow = if held_back {
            Ok(Flow::Continue)
        } else {
            self.pass_on(entry, next)
        };
        if let Some(v) = visited.as_mut() {
            v.reported = !held_back;
        }
        // Upstream records the directory whatever happened (a deferred append).
        self.branch.extend(visited);
        flow
    }

    /// Pass `entry` on, after the silently walked directories above it (R4.5).
    fn pass_on<E>(
        &mut self,
        entry: &Candidate,
        next: &mut dyn FnMut(&Candidate) -> Result<Flow, E>,
    ) -> Result<Flow, E> {
        for ancestor in &mut self.branch {
            if ancestor.refused {
                return Ok(Flow::SkipDir);
            }
            if ancestor.reported {
                continue;
            }
            ancestor.reported = true;
            if next(&ancestor.candidate)? == Flow::SkipDir {
                ancestor.refused = true;
                return Ok(Flow::SkipDir);
            }
        }
        next(entry)
    }

    /// Whether a failure to read directory `dir` is tolerated (R4.6): only permission errors,
    /// and only on a directory this layer walks silently. Called right after [`Layer::visit`]
    /// returned [`Flow::Continue`] for `dir`.
    pub(crate) fn tolerates_unreadable(&self, dir: &str, permission_denied: bool) -> bool {
        permission_denied
            && self
                .branch
                .last()
                .is_some_and(|top| top.candidate.path == dir && top.held_back)
    }
}

fn match_error(side: Side, entry: &Candidate, source: PatternError) -> FilterError {
    FilterError::Match {
        side,
        path: entry.path.clone(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::{Candidate, Filter, FilterError, Flow, Layer};

    /// Run `tree` (paths, `/` suffix for directories, in lexical depth-first order) through a
    /// stack of layers the way `walk.rs` does, without a disk; returns what comes out.
    fn run(layers: &mut [Layer], tree: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        let mut skipped: Option<String> = None;
        for item in tree {
            let candidate = Candidate {
                path: item.trim_end_matches('/').to_string(),
                is_dir: item.ends_with('/'),
            };
            if let Some(prefix) = &skipped {
                if candidate.path.starts_with(prefix.as_str()) {
                    continue;
                }
                skipped = None;
            }
            let flow = feed(layers, &candidate, &mut out).unwrap();
            if flow == Flow::SkipDir && candidate.is_dir {
                skipped = Some(format!("{}/", candidate.path));
            }
        }
        out
    }

    fn feed(
        layers: &mut [Layer],
        c: &Candidate,
        out: &mut Vec<String>,
    ) -> Result<Flow, FilterError> {
        match layers.split_first_mut() {
            None => {
                out.push(format!("{}{}", c.path, if c.is_dir { "/" } else { "" }));
                Ok(Flow::Continue)
            }
            Some((layer, rest)) => layer.visit(c, &mut |c| feed(rest, c, out)),
        }
    }

    fn layer(include: &[&str], exclude: &[&str]) -> Layer {
        Layer::new(Filter::new(include, exclude).unwrap())
    }

    /// `walks!(layers, tree => expected)`.
    macro_rules! walks {
        ([$($layer:expr),*], $tree:expr => $want:expr) => {{
            let mut layers = vec![$($layer),*];
            assert_eq!(run(&mut layers, &$tree), $want);
        }};
    }

    #[test]
    fn held_back_directories_appear_before_what_they_lead_to() {
        let tree = ["bar", "foo/", "foo/bar2", "foo/other", "foo2"];
        walks!([layer(&[], &["foo*", "!foo/bar2"])], tree => ["bar", "foo/", "foo/bar2"]);
        walks!([layer(&["foo/bar2"], &[])], tree => ["foo/", "foo/bar2"]);
        let deep = ["a/", "a/b/", "a/b/c/", "a/b/c/keep", "a/b/c/lose", "a/z"];
        walks!([layer(&[], &["a", "!a/b/c/keep"])], deep => ["a/", "a/b/", "a/b/c/", "a/b/c/keep"]);
    }

    #[test]
    fn skipping() {
        let tree = ["x/", "x/y", "z"];
        // Excluded without an exception below: skipped (the walker would not even read it).
        walks!([layer(&[], &["x"])], tree => ["z"]);
        // Include patterns that cannot reach below a directory skip it as well.
        walks!([layer(&["z"], &[])], tree => ["z"]);
        // An empty-but-present include list includes nothing.
        walks!([layer(&[" "], &[])], tree => Vec::<String>::new());
        // `!` in include patterns removes entries.
        walks!([layer(&["x", "!x/y"], &[])], tree => ["x/"]);
    }

    #[test]
    fn stacked_filters_do_not_undo_each_other() {
        let tree = ["foo/", "foo/bar"];
        walks!([layer(&[], &["foo", "!foo/bar"])], tree => ["foo/", "foo/bar"]);
        walks!([layer(&[], &["!foo/bar"]), layer(&[], &["foo"])], tree => Vec::<String>::new());
        walks!([layer(&[], &["foo"]), layer(&[], &["!foo/bar"])], tree => Vec::<String>::new());
        // A held-back directory refused by the next layer takes its subtree with it.
        let tree = ["a/", "a/b/", "a/b/keep", "a/c"];
        walks!([layer(&[], &["a", "!a/b/keep", "!a/c"]), layer(&[], &["a/b"])], tree => ["a/", "a/c"]);
    }

    #[test]
    fn unreadable_directories() {
        let mut l = layer(&[], &["**/bar", "!foo/bar/baz"]);
        let mut sink = |_: &Candidate| Ok::<_, FilterError>(Flow::Continue);
        let bar = Candidate {
            path: "foo/bar".into(),
            is_dir: true,
        };
        let foo = Candidate {
            path: "foo".into(),
            is_dir: true,
        };
        assert_eq!(l.visit(&foo, &mut sink), Ok(Flow::Continue));
        assert!(!l.tolerates_unreadable("foo", true));
        assert_eq!(l.visit(&bar, &mut sink), Ok(Flow::Continue));
        assert!(l.tolerates_unreadable("foo/bar", true));
        assert!(!l.tolerates_unreadable("foo/bar", false));
    }

    #[test]
    fn admits_is_fsutil_open() {
        let f = Filter::new(&["bar*"], &[]).unwrap();
        assert_eq!(f.admits("bar/foo"), Ok(true));
        assert_eq!(f.admits("baz"), Ok(false));
        let f = Filter::new(&[], &["foo", "!foo/bar", "foo/bar/baz", "!foo/bar/baz/x"]).unwrap();
        assert_eq!(f.admits("foo/bar/baz/x"), Ok(true));
        assert_eq!(f.admits("foo/bar/baz/y"), Ok(false));
        assert!(matches!(
            Filter::new(&[], &["!"]),
            Err(FilterError::Compile { .. })
        ));
    }
}
