//! Lexical path cleaning with the exact results of Go's `path/filepath.Clean` and
//! `filepath.Dir` on Unix, which `.dockerignore` reading, pattern compiling and legacy
//! matching all go through (grammar/dockerignore.md R5).
//!
//! Owns: turning a slash-separated string into its shortest lexical equivalent. Must not touch
//! the filesystem (no symlink resolution, no `canonicalize`), and must not know about patterns:
//! `!`, `*` and friends are ordinary bytes here, exactly as they are for Go.

/// Go's `filepath.Clean` for `/`-separated paths (grammar R5.1–R5.5).
///
/// Repeated slashes collapse, `.` segments go, `x/..` pairs cancel, a trailing slash is dropped,
/// `..` at the root of an absolute path is dropped, leading `..` of a relative path is kept,
/// and the empty result is `.` (or `/` when rooted).
pub(crate) fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => match kept.last() {
                Some(&last) if last != ".." => {
                    kept.pop();
                }
                // R5.3: `/..` is `/`; a relative path keeps its leading `..`.
                _ if rooted => {}
                _ => kept.push(".."),
            },
            other => kept.push(other),
        }
    }
    let joined = kept.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Dir`: everything before the last `/`, cleaned; `.` when there is no `/`
/// (grammar R5.6). `Dir("a/b/")` is `a/b`, which is why the path `file/` is tested against the
/// parent `file` in R3.3.
pub(crate) fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean(&path[..=i]),
        None => ".".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{clean, dir};

    /// `cleans!(input => output)`: Go's `filepath.Clean(input) == output`.
    macro_rules! cleans {
        ($($input:expr => $want:expr),* $(,)?) => {
            $( assert_eq!(clean($input), $want, "clean({:?})", $input); )*
        };
    }

    /// Cases from Go's own `path/filepath` Clean table (the Unix ones), restated.
    #[test]
    fn go_clean_table() {
        cleans! {
            "" => ".",
            "abc" => "abc",
            "abc/def" => "abc/def",
            "a/b/c" => "a/b/c",
            "." => ".",
            ".." => "..",
            "../.." => "../..",
            "../../abc" => "../../abc",
            "/abc" => "/abc",
            "/" => "/",
            "abc/" => "abc",
            "abc/def/" => "abc/def",
            "./" => ".",
            "../" => "..",
            "/abc/" => "/abc",
            "abc//def//ghi" => "abc/def/ghi",
            "//abc" => "/abc",
            "///abc" => "/abc",
            "//abc//" => "/abc",
            "abc/./def" => "abc/def",
            "/./abc/def" => "/abc/def",
            "abc/." => "abc",
            "abc/def/ghi/../jkl" => "abc/def/jkl",
            "abc/def/../ghi/../jkl" => "abc/jkl",
            "abc/def/.." => "abc",
            "abc/def/../.." => ".",
            "/abc/def/../.." => "/",
            "abc/def/../../.." => "..",
            "/abc/def/../../.." => "/",
            "abc/def/../../../ghi/jkl/../../../mno" => "../../mno",
            "/../abc" => "/abc",
            "abc/./../def" => "def",
            "abc//./../def" => "def",
            "abc/../../././../def" => "../../def",
        }
    }

    /// Pattern-shaped inputs: cleaning never interprets glob characters or `!`.
    #[test]
    fn pattern_shapes() {
        cleans! {
            "!" => "!",
            "!/" => "!",
            "!./a" => "!./a",
            "**/" => "**",
            "dir/**/" => "dir/**",
            "[Local-Only]/" => "[Local-Only]",
            "a/*/../b" => "a/b",
        }
    }

    #[test]
    fn dir_table() {
        for (input, want) in [
            ("", "."),
            ("a", "."),
            ("a/b", "a"),
            ("a/b/", "a/b"),
            ("file/", "file"),
            ("/", "/"),
            ("/a", "/"),
            ("a//b", "a"),
            ("dir/file/", "dir/file"),
        ] {
            assert_eq!(dir(input), want, "dir({input:?})");
        }
    }
}
