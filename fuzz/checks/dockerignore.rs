//! `.dockerignore` reading, pattern compilation and matching (`context`) on any text.
//!
//! Input: the `.dockerignore` text, a NUL, then paths to match, one a line.
//!
//! Invariants:
//! - reading and matching are deterministic;
//! - a [`Filter`] with the patterns as its exclude list admits exactly what the [`Matcher`]
//!   does not exclude; errors arise in one API when and only when they arise in the other
//!   (compiling is dear under instrumentation, so each list is compiled only these two
//!   times);
//! - without `!` exceptions, a literal pattern excludes the path it spells, and a directory's exclusion covers everything below it
//!   (a pattern matching a parent matches, grammar/dockerignore.md R3.3).

use rbuild::context::{Filter, Matcher, read_ignore_file};

pub fn check(data: &[u8]) {
    let parts = super::parts(data, 2);
    let text = String::from_utf8_lossy(parts[0]).into_owned();
    let paths_text = parts
        .get(1)
        .map(|p| String::from_utf8_lossy(p).into_owned());

    let patterns = read_ignore_file(&text);
    assert_eq!(
        patterns,
        read_ignore_file(&text),
        "reading is not deterministic"
    );
    for p in &patterns {
        assert!(!p.is_empty(), "empty pattern read from {text:?}");
    }

    let mut paths: Vec<String> = ["a", "a/b", "a/b/c", ".", "x.txt", "dir/sub/file.go"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(t) = &paths_text {
        paths.extend(t.split('\n').map(str::to_string));
    }
    // The patterns themselves, as paths.
    paths.extend(
        patterns
            .iter()
            .map(|p| p.trim_start_matches('!').to_string()),
    );

    let matcher = Matcher::new(&patterns);
    let exclude = Filter::new(&[] as &[String], &patterns);
    let matcher = match matcher {
        Ok(m) => {
            assert!(
                exclude.is_ok(),
                "a filter refused patterns the matcher took"
            );
            m
        }
        Err(_) => {
            assert!(
                exclude.is_err(),
                "a filter took patterns the matcher refused"
            );
            return;
        }
    };
    let exclude = exclude.unwrap();
    // Compiling trims each pattern again (as patternmatcher does), so `\r!a` is an exception.
    let has_exceptions = patterns.iter().any(|p| p.trim().starts_with('!'));

    for path in paths.iter().take(64) {
        let m = matcher.matches(path);
        assert_eq!(
            m,
            matcher.matches(path),
            "matching {path:?} is not deterministic"
        );
        matcher.matches_legacy(path).ok();
        match (&m, exclude.admits(path)) {
            (Ok(m), Ok(admitted)) => assert_eq!(
                admitted, !m,
                "exclude filter and matcher disagree on {path:?} with {patterns:?}"
            ),
            (Err(_), Err(_)) => {}
            (m, admitted) => panic!(
                "filter and matcher disagree on {path:?} with {patterns:?}: {m:?} / {admitted:?}"
            ),
        }
        // A literal pattern (no glob or escape character) excludes the path it spells,
        // unless an earlier pattern fails to evaluate first. (Not with blanks around it:
        // `/ a` reads as ` a`, which compiling trims again, as patternmatcher does.)
        let literal =
            |p: &String| p == path && p.trim() == p && !p.contains(['*', '?', '[', ']', '\\', '^']);
        if !has_exceptions && is_clean(path) && m.is_ok() && patterns.iter().any(literal) {
            assert_eq!(
                m,
                Ok(true),
                "literal pattern {path:?} does not exclude itself"
            );
        }
        if !has_exceptions && m == Ok(true) && is_clean(path) {
            let child = format!("{path}/child");
            assert_eq!(
                matcher.matches(&child),
                Ok(true),
                "{path:?} is excluded but {child:?} is not, with {patterns:?}"
            );
        }
    }
}

/// A relative path as a walk produces it: no empty, `.` or `..` segment.
fn is_clean(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}
