//! The `.dockerignore` pattern list: Docker's rules for which paths a list of patterns
//! excludes (moby/patternmatcher `PatternMatcher`; grammar/dockerignore.md R2 and R3).
//!
//! Owns: compiling a list of patterns (trim, clean, `!` exceptions, syntax errors), the
//! "last matching pattern wins, and a pattern matching a parent directory matches" rule in its
//! three upstream shapes (per path, legacy, and walk-oriented with carried parent results), and
//! the questions a walker asks before skipping a directory. Must not read files or walk
//! directories (`walk.rs` does), and must not use gitignore semantics: Docker's differ (no
//! implicit `**/` for slash-less patterns, `[!a]` is not a negation, `a**b` crosses `/`).

use super::clean::{clean, dir};
use super::glob::Glob;

/// A pattern list that cannot be compiled, or a pattern that fails when evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A pattern that is only `!` after cleaning (R2.3); the message is upstream's, verbatim.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// Go's `filepath.Match` syntax check rejects the pattern when it is compiled (R2.4).
    #[error("syntax error in pattern {pattern:?}: {reason}")]
    Syntax { pattern: String, reason: String },
    /// The pattern passed the syntax check but its regular expression is invalid, which
    /// upstream only notices when the pattern is evaluated (R2.7).
    #[error("syntax error in pattern {pattern:?}: {reason}")]
    Unmatchable { pattern: String, reason: String },
    /// [`ParentMatches`] from a matcher with a different number of patterns (upstream: "wrong
    /// number of values in parentMatched").
    #[error("parent results hold {got} values but the matcher has {expected} patterns")]
    ForeignParent { expected: usize, got: usize },
}

/// One compiled pattern of the list.
#[derive(Clone, Debug)]
struct Pattern {
    /// The pattern as given, for error messages.
    source: String,
    /// `!pattern`: re-includes what it matches.
    exception: bool,
    glob: Glob,
    /// fsutil's `patternWithoutTrailingGlob` plus `/`, used by the "may match below" tests.
    reach: String,
    /// Whether `reach` holds a glob character, so that a literal prefix test is not enough.
    reach_is_glob: bool,
}

impl Pattern {
    fn eval(&self, path: &str) -> Result<bool, PatternError> {
        self.glob
            .is_match(path)
            .map_err(|reason| PatternError::Unmatchable {
                pattern: self.source.clone(),
                reason,
            })
    }

    /// Does the pattern match any proper ancestor in `ancestors` (R3.3)? Errors are ignored
    /// here, as upstream ignores them (`match, _ = pattern.match(...)`).
    fn matches_an_ancestor(&self, ancestors: &[String]) -> bool {
        ancestors.iter().any(|a| self.glob.is_match(a) == Ok(true))
    }
}

/// Per-pattern results for a directory, carried to its entries during a walk (patternmatcher's
/// `MatchInfo`). The default value means "no information", which is right for entries at the
/// top of the context.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParentMatches(Vec<bool>);

/// A compiled `.dockerignore` pattern list.
#[derive(Clone, Debug)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

impl Matcher {
    /// Compile `patterns` in order (R2.1–R2.4): each is trimmed, empty ones are dropped, the
    /// whole text (with its `!`) is path-cleaned, a leading `!` makes an exception.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, PatternError> {
        let mut compiled = Vec::with_capacity(patterns.len());
        for source in patterns {
            let source = source.as_ref();
            let trimmed = source.trim();
            if trimmed.is_empty() {
                continue;
            }
            // R2.2: cleaning sees the `!`, so `!./a` keeps its `./` (the segment is `!.`).
            let cleaned = clean(trimmed);
            let (exception, text) = match cleaned.strip_prefix('!') {
                Some("") => return Err(PatternError::IllegalExclusion),
                Some(rest) => (true, rest),
                None => (false, cleaned.as_str()),
            };
            let glob = Glob::new(text).map_err(|reason| PatternError::Syntax {
                pattern: source.to_string(),
                reason: reason.to_string(),
            })?;
            let reach = reach_of(text);
            compiled.push(Pattern {
                source: source.to_string(),
                exception,
                reach_is_glob: reach.contains(['*', '[', ']', '?', '^', '\\']),
                reach: format!("{reach}/"),
                glob,
            });
        }
        Ok(Matcher { patterns: compiled })
    }

    /// Is `path` excluded? patternmatcher's `MatchesOrParentMatches` (R3.1–R3.4): the path is
    /// used as given, not cleaned; the last pattern that matches the path or one of its parent
    /// directories decides.
    pub fn matches(&self, path: &str) -> Result<bool, PatternError> {
        let ancestors = ancestors_of(path);
        self.decide(path, |p| p.matches_an_ancestor(&ancestors))
    }

    /// patternmatcher's deprecated package-level `Matches` (R3.5): the path is cleaned first,
    /// `.` is never excluded, and of its ancestors only the one with as many segments as the
    /// pattern is tried.
    pub fn matches_legacy(&self, path: &str) -> Result<bool, PatternError> {
        let path = clean(path);
        if path == "." {
            return Ok(false);
        }
        let parent = dir(&path);
        let parent_segments: Vec<&str> = parent.split('/').collect();
        self.decide(&path, |p| {
            let depth = p.glob.segments();
            parent != "."
                && depth <= parent_segments.len()
                && p.glob.is_match(&parent_segments[..depth].join("/")) == Ok(true)
        })
    }

    /// The loop shared by [`Matcher::matches`] and [`Matcher::matches_legacy`]: a pattern is
    /// evaluated only when it could flip the answer (R3.2), so a broken pattern that can never
    /// flip it never reports its error, exactly as upstream.
    fn decide(
        &self,
        path: &str,
        parent_rule: impl Fn(&Pattern) -> bool,
    ) -> Result<bool, PatternError> {
        let mut excluded = false;
        for p in &self.patterns {
            if p.exception != excluded {
                continue;
            }
            if p.eval(path)? || parent_rule(p) {
                excluded = !p.exception;
            }
        }
        Ok(excluded)
    }

    /// Walk-oriented matching (patternmatcher's `MatchesUsingParentResults`, R3.6): decide
    /// `path` from the results of its parent directory in O(patterns), and return the results
    /// to pass to the directory's own entries. Pass `ParentMatches::default()` for entries at
    /// the top of the context.
    ///
    /// Faithful to upstream, a pattern skipped because it could not flip the answer records
    /// "no match" for the children. So `["a/b", "!a"]` excludes `a/b` here although
    /// [`Matcher::matches`] says `!a` re-includes it: this is what BuildKit's context walk
    /// (fsutil) does, and the walker must agree with BuildKit.
    pub(crate) fn matches_with_parents(
        &self,
        path: &str,
        parent: &ParentMatches,
    ) -> Result<(bool, ParentMatches), PatternError> {
        let carried = &parent.0;
        if !carried.is_empty() && carried.len() != self.patterns.len() {
            return Err(PatternError::ForeignParent {
                expected: self.patterns.len(),
                got: carried.len(),
            });
        }
        let mut ancestors = None;
        let mut excluded = false;
        let mut results = vec![false; self.patterns.len()];
        for (i, p) in self.patterns.iter().enumerate() {
            let mut hit = carried.get(i).copied().unwrap_or(false);
            if !hit {
                if p.exception != excluded {
                    continue;
                }
                hit = p.eval(path)?;
                if !hit && carried.is_empty() {
                    let ancestors = ancestors.get_or_insert_with(|| ancestors_of(path));
                    hit = p.matches_an_ancestor(ancestors);
                }
            }
            results[i] = hit;
            if hit {
                excluded = !p.exception;
            }
        }
        Ok((excluded, ParentMatches(results)))
    }

    /// Could a `!` exception re-include something inside the directory `dir`? This is fsutil's
    /// test for walking an excluded directory instead of skipping it (R4.4): true when an
    /// exception, minus a trailing `/**` or `/*`, still holds a glob character, or when its
    /// literal text is `dir` itself or lies below it.
    pub(crate) fn exclusions_may_reinclude_under(&self, dir: &str) -> bool {
        self.may_match_under(dir, true)
    }

    /// Could an include pattern (not `!`) match something inside `dir`? fsutil's test for
    /// walking a directory that the include patterns do not match (R4.3), with the same rule as
    /// [`Matcher::exclusions_may_reinclude_under`].
    pub(crate) fn inclusions_may_match_under(&self, dir: &str) -> bool {
        self.may_match_under(dir, false)
    }

    fn may_match_under(&self, dir: &str, exceptions: bool) -> bool {
        let mut relevant = self.patterns.iter().filter(|p| p.exception == exceptions);
        relevant.any(|p| {
            p.reach_is_glob
                || (p.reach.len() > dir.len()
                    && p.reach.starts_with(dir)
                    && p.reach.as_bytes()[dir.len()] == b'/')
        })
    }
}

/// fsutil's `patternWithoutTrailingGlob`: drop one trailing `/**`, then one trailing `/*`.
fn reach_of(text: &str) -> &str {
    let text = text.strip_suffix("/**").unwrap_or(text);
    text.strip_suffix("/*").unwrap_or(text)
}

/// The proper ancestors upstream tries for `path` (R3.3): `Dir(path)` split at `/`, each
/// prefix from the shortest; none when `Dir(path)` is `.`.
fn ancestors_of(path: &str) -> Vec<String> {
    let parent = dir(path);
    if parent == "." {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut end = 0;
    for segment in parent.split('/') {
        end += segment.len();
        out.push(parent[..end].to_string());
        end += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Matcher, ParentMatches, PatternError, ancestors_of};

    /// `excluded!(patterns: path, path...)`: [`Matcher::matches`] says excluded.
    macro_rules! excluded {
        ($pats:expr; $($path:expr),* $(,)?) => {{
            let m = Matcher::new(&$pats).unwrap();
            $( assert_eq!(m.matches($path), Ok(true), "{:?} should exclude {:?}", $pats, $path); )*
        }};
    }
    /// `kept!(patterns: path, path...)`: [`Matcher::matches`] says not excluded.
    macro_rules! kept {
        ($pats:expr; $($path:expr),* $(,)?) => {{
            let m = Matcher::new(&$pats).unwrap();
            $( assert_eq!(m.matches($path), Ok(false), "{:?} should keep {:?}", $pats, $path); )*
        }};
    }

    /// Walk `path` segment by segment with [`Matcher::matches_with_parents`].
    fn walk_decides(m: &Matcher, path: &str) -> Result<bool, PatternError> {
        let mut parent = ParentMatches::default();
        let mut answer = false;
        let mut end = 0;
        for segment in path.split('/') {
            end += segment.len();
            let (excluded, results) = m.matches_with_parents(&path[..end], &parent)?;
            answer = excluded;
            parent = results;
            end += 1;
        }
        Ok(answer)
    }

    #[test]
    fn parents_and_order() {
        excluded!(["dir"]; "dir", "dir/a/b", "dir/");
        kept!(["dir"]; "dirx", "a/dir");
        excluded!(["dir", "!dir/e*"]; "dir/x", "dir/fe");
        kept!(["dir", "!dir/e*"]; "dir/e-dir/foo", "dir/eek");
        excluded!(["!foo/bar", "foo"]; "foo/bar");
        excluded!(["foo", "!foo", "foo"]; "foo");
        excluded!(["a/b", "!a", "a/b"]; "a/b/c");
        kept!(["a/b", "!a"]; "a/b", "a/b/c");
    }

    #[test]
    fn docker_is_not_gitignore() {
        kept!(["*.go"]; "a/b.go");
        kept!(["node_modules"]; "a/node_modules");
        kept!(["[!a]"]; "b");
        excluded!(["[!a]"]; "!", "a");
        kept!(["/foo"]; "foo");
        excluded!(["a**b"]; "a/x/b", "ab");
        kept!(["a**b"]; "axb");
        kept!(["FOO"]; "foo");
        excluded!(["foo bar"]; "foo bar");
        excluded!(["\\!foo"]; "!foo");
        excluded!(["#foo"]; "#foo");
        kept!(["dir/**"]; "dir");
    }

    #[test]
    fn compile_errors() {
        for pats in [vec!["!"], vec!["a", " ! "], vec!["!/"]] {
            assert_eq!(
                Matcher::new(&pats).unwrap_err(),
                PatternError::IllegalExclusion
            );
        }
        for bad in ["[", "[a-b-c]", "a\\", "[]a]", "[x-]"] {
            let err = Matcher::new(&[bad]).unwrap_err();
            assert!(matches!(err, PatternError::Syntax { .. }), "{bad}: {err:?}");
            assert!(err.to_string().contains(bad), "{err} names the pattern");
        }
        // Cleaning sees the `!`: `!./a` is an exception for the literal text `./a`.
        kept!(["a", "!./a"]; "zzz");
        excluded!(["a", "!./a"]; "a");
    }

    /// A regexp Go refuses errors only when evaluated, and only when it could flip the answer.
    #[test]
    fn match_time_errors() {
        let m = Matcher::new(&["[Local-Only]/"]).unwrap();
        let err = m.matches("x").unwrap_err();
        assert!(
            matches!(&err, PatternError::Unmatchable { pattern, .. } if pattern == "[Local-Only]/")
        );
        assert!(m.matches_legacy("x").is_err());
        assert!(walk_decides(&m, "x").is_err());
        // An exception is not evaluated while nothing is excluded.
        let m = Matcher::new(&["foo", "!{[z-a]}"]).unwrap();
        assert_eq!(m.matches("bar"), Ok(false));
        assert!(matches!(
            m.matches("foo"),
            Err(PatternError::Unmatchable { .. })
        ));
    }

    #[test]
    fn legacy_matching() {
        let m = Matcher::new(&["*.go"]).unwrap();
        assert_eq!(m.matches_legacy("."), Ok(false));
        assert_eq!(m.matches_legacy("./a.go/"), Ok(true));
        // Only the ancestor at the pattern's own depth is tried.
        let m = Matcher::new(&["docs"]).unwrap();
        assert_eq!(m.matches_legacy("docs/a/b"), Ok(true));
        let m = Matcher::new(&["*/b"]).unwrap();
        assert_eq!(m.matches_legacy("a/b/c/d"), Ok(true));
    }

    #[test]
    fn walk_results_agree_and_differ_where_upstream_does() {
        for (pats, path) in [
            (vec!["foo", "!foo/bar"], "foo/bar/baz"),
            (
                vec!["**", "!util/docker/web", "util/docker/web/foo"],
                "util/docker/web/foo",
            ),
            (vec!["dir", "!dir/e*", "dir/e*/x"], "dir/ee/x/y"),
        ] {
            let m = Matcher::new(&pats).unwrap();
            assert_eq!(walk_decides(&m, path), m.matches(path), "{pats:?} {path}");
        }
        // The upstream quirk documented on `matches_with_parents`.
        let m = Matcher::new(&["a/b", "!a"]).unwrap();
        assert_eq!(m.matches("a/b"), Ok(false));
        assert_eq!(walk_decides(&m, "a/b"), Ok(true));
        let other = Matcher::new(&["x"]).unwrap();
        let (_, foreign) = other
            .matches_with_parents("x", &ParentMatches::default())
            .unwrap();
        assert!(matches!(
            m.matches_with_parents("a/b", &foreign),
            Err(PatternError::ForeignParent {
                expected: 2,
                got: 1
            })
        ));
    }

    #[test]
    fn may_match_under() {
        let m = Matcher::new(&["foo*", "!foo/bar2"]).unwrap();
        assert!(m.exclusions_may_reinclude_under("foo"));
        assert!(!m.exclusions_may_reinclude_under("fo"));
        // A literal exception names the directory itself: fsutil walks it too.
        assert!(m.exclusions_may_reinclude_under("foo/bar2"));
        assert!(m.inclusions_may_match_under("foo"));
        let m = Matcher::new(&["**/bar", "!foo/bar/baz"]).unwrap();
        assert!(m.exclusions_may_reinclude_under("foo/bar"));
        let m = Matcher::new(&["x", "!a/*/c"]).unwrap();
        assert!(m.exclusions_may_reinclude_under("anything"));
        let m = Matcher::new(&["x", "!keep/**"]).unwrap();
        assert!(m.exclusions_may_reinclude_under("keep"));
        assert!(!m.exclusions_may_reinclude_under("kee"));
        let m = Matcher::new(&["x"]).unwrap();
        assert!(!m.exclusions_may_reinclude_under("x"));
        let m = Matcher::new(&["bar/foo", "src/*"]).unwrap();
        assert!(m.inclusions_may_match_under("bar"));
        assert!(m.inclusions_may_match_under("src"));
        assert!(!m.inclusions_may_match_under("ba"));
    }

    mod properties {
        use super::super::Matcher;
        use super::walk_decides;
        use proptest::prelude::*;

        /// Globs over a tiny alphabet, so that they often match the paths below.
        fn glob() -> impl Strategy<Value = String> {
            prop::collection::vec("(a|b|\\*|\\?|\\[ab\\]|\\*\\*){1,3}", 1..4)
                .prop_map(|segments| segments.join("/"))
        }

        fn path() -> impl Strategy<Value = String> {
            prop::collection::vec("[ab]{1,3}", 1..5).prop_map(|segments| segments.join("/"))
        }

        fn excludes(patterns: &[String], path: &str) -> bool {
            Matcher::new(patterns).unwrap().matches(path).unwrap()
        }

        proptest! {
            /// A literal pattern excludes itself and everything below it, in every API.
            #[test]
            fn literal_matches_itself_and_children(
                p in prop::collection::vec("[a-z0-9_]{1,6}", 1..4).prop_map(|s| s.join("/")),
                child in "[a-z0-9_]{1,6}",
            ) {
                let m = Matcher::new(std::slice::from_ref(&p)).unwrap();
                let below = format!("{p}/{child}");
                prop_assert!(m.matches(&p).unwrap());
                prop_assert!(m.matches(&below).unwrap());
                prop_assert!(m.matches_legacy(&below).unwrap());
                prop_assert!(walk_decides(&m, &below).unwrap());
            }

            /// `!p` after `q` re-includes exactly what `p` matches.
            #[test]
            fn exception_removes_exactly_its_matches(q in glob(), p in glob(), x in path()) {
                let both = excludes(&[q.clone(), format!("!{p}")], &x);
                prop_assert_eq!(both, excludes(&[q], &x) && !excludes(&[p], &x));
            }

            /// `p` then `!p` excludes nothing.
            #[test]
            fn pattern_then_its_exception_is_neutral(p in glob(), x in path()) {
                let exception = format!("!{p}");
                prop_assert!(!excludes(&[p, exception], &x));
            }

            /// Without exceptions, carrying parent results decides like the direct rule.
            #[test]
            fn walk_matching_agrees_without_exceptions(
                patterns in prop::collection::vec(glob(), 1..4),
                x in path(),
            ) {
                let m = Matcher::new(&patterns).unwrap();
                prop_assert_eq!(walk_decides(&m, &x).unwrap(), m.matches(&x).unwrap());
            }
        }
    }

    #[test]
    fn ancestors() {
        assert_eq!(ancestors_of("a"), Vec::<String>::new());
        assert_eq!(ancestors_of("a/b/c"), ["a", "a/b"]);
        assert_eq!(ancestors_of("file/"), ["file"]);
        assert_eq!(ancestors_of("/a"), ["", "/"]);
    }
}
