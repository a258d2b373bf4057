//! One compiled `.dockerignore` glob, built the way moby/patternmatcher builds a `Pattern`
//! (grammar/dockerignore.md R2.4–R2.7, R3.7).
//!
//! Owns: checking a glob's syntax, choosing its match form (exact, prefix, suffix or regular
//! expression) and answering "does this glob match this exact string". Must not know about
//! `!`, pattern order, parent directories or path cleaning: those are rules of the pattern
//! list (`pattern.rs`), and the text given here is already cleaned and has no `!`.
//!
//! Fidelity notes, each matching upstream:
//! * The glob becomes a Go regexp by substitution, not by parsing: `*` → `[^/]*`, `?` →
//!   `[^/]`, `**` → `(.*/)?` (or `.*` at the end), `.+()|{}$` escaped, and everything else,
//!   including `[`, `]`, `^` and `\x`, pasted as is. Go's regexp syntax then decides the
//!   meaning, so `[!a]` is a class of `!` and `a`, `a^b*` can never match (`^` is an
//!   anchor), and `\d` means a digit. `goregex.rs` carries that meaning over to the `regex` crate.
//! * Text with no wildcard is compared exactly; `lit**` is a byte-prefix test and `**lit` a
//!   byte-suffix test (which is why `**file` matches `dir/xfile`, and `a/**` does not match
//!   `a`).
//! * A regexp that Go refuses (`[Local-Only]`: the range `l-O` is reversed) passes the
//!   compile-time syntax check; it fails each time it is evaluated.

use regex::Regex;

use super::{goregex, syntax};

/// How a glob is tested against a path (patternmatcher's `matchType`).
#[derive(Clone, Debug)]
enum Form {
    /// No wildcard at all: the path must equal the text.
    Exact,
    /// `lit**`: the path must start with `lit`.
    Prefix,
    /// `**lit`: the path must end with `lit`, or equal it without its leading `/`.
    Suffix,
    /// Everything else; `Err` holds why Go's regexp compiler refuses the expression.
    Regex(Result<Regex, String>),
}

/// A glob whose syntax passed Go's `filepath.Match` check.
#[derive(Clone, Debug)]
pub(crate) struct Glob {
    text: String,
    form: Form,
}

impl Glob {
    /// Compile `text` (cleaned, without `!`). Fails only on `filepath.Match` syntax errors;
    /// regexp errors are kept for [`Glob::is_match`] to report (R2.7).
    pub(crate) fn new(text: &str) -> Result<Glob, &'static str> {
        syntax::check(text)?;
        let (form, go_regex) = plan(text);
        let form = match form {
            Planned::Exact => Form::Exact,
            Planned::Prefix => Form::Prefix,
            Planned::Suffix => Form::Suffix,
            Planned::Regex => Form::Regex(goregex::translate(&go_regex).and_then(|rust| {
                Regex::new(&rust).map_err(|e| format!("regexp {go_regex:?}: {e}"))
            })),
        };
        Ok(Glob {
            text: text.to_string(),
            form,
        })
    }

    /// Number of `/`-separated segments in the text (used by legacy matching, R3.5).
    pub(crate) fn segments(&self) -> usize {
        self.text.split('/').count()
    }

    /// Does the glob match `path` exactly (no parent rule here)? `Err` carries the reason Go's
    /// regexp compiler gives for a pattern it cannot compile.
    pub(crate) fn is_match(&self, path: &str) -> Result<bool, String> {
        let (text, path) = (self.text.as_bytes(), path.as_bytes());
        Ok(match &self.form {
            Form::Exact => path == text,
            // Byte slices, as in Go: `text[..len-2]` drops the trailing `**`.
            Form::Prefix => path.starts_with(&text[..text.len() - 2]),
            Form::Suffix => {
                let suffix = &text[2..];
                path.ends_with(suffix) || (suffix.first() == Some(&b'/') && path == &suffix[1..])
            }
            Form::Regex(Ok(re)) => re.is_match(std::str::from_utf8(path).expect("path is a str")),
            Form::Regex(Err(reason)) => return Err(reason.clone()),
        })
    }
}

/// The form patternmatcher's `compile` settles on, before any regexp is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Planned {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// Walk the glob once, as patternmatcher's `compile` does, producing the form and the Go
/// regexp text (grammar R2.5–R2.6). The form starts as exact; a `*`, `?`, `[`, `]` or `\x`
/// makes it a regexp; a final `**` turns a still-exact glob into a prefix; a leading `**`
/// makes it a suffix unless a later wildcard makes it a regexp again.
fn plan(text: &str) -> (Planned, String) {
    let mut form = Planned::Exact;
    let mut re = String::from("^");
    let mut chars = text.chars().peekable();
    // Go's text/scanner drops a byte order mark at the start of its input (R2.6).
    if chars.peek() == Some(&'\u{feff}') {
        chars.next();
    }
    let mut index = 0;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` counts as `**`.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if form == Planned::Exact {
                        form = Planned::Prefix;
                    } else {
                        re.push_str(".*");
                        form = Planned::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    form = Planned::Regex;
                }
                if index == 0 {
                    form = Planned::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                form = Planned::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                form = Planned::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(c);
            }
            '\\' => match chars.next() {
                Some(next) => {
                    re.push('\\');
                    re.push(next);
                    form = Planned::Regex;
                }
                // Unreachable after the syntax check, kept to mirror upstream.
                None => re.push('\\'),
            },
            '[' | ']' => {
                re.push(c);
                form = Planned::Regex;
            }
            other => re.push(other),
        }
        index += 1;
    }
    re.push('$');
    (form, re)
}

#[cfg(test)]
mod tests {
    use super::{Glob, Planned, plan};

    /// `planned!(glob => form, "go regexp")`: the form and Go regexp patternmatcher builds.
    macro_rules! planned {
        ($($glob:expr => $form:ident, $re:expr);* $(;)?) => {
            $( assert_eq!(plan($glob), (Planned::$form, $re.to_string()), "plan({:?})", $glob); )*
        };
    }
    /// `matches!(glob: [paths that match] ; [paths that do not])`, no parent rule involved.
    macro_rules! glob_matches {
        ($glob:expr => [$($yes:expr),*] ; [$($no:expr),*]) => {{
            let g = Glob::new($glob).unwrap();
            $( assert_eq!(g.is_match($yes), Ok(true), "{:?} should match {:?}", $glob, $yes); )*
            $( assert_eq!(g.is_match($no), Ok(false), "{:?} should not match {:?}", $glob, $no); )*
        }};
    }

    #[test]
    fn forms() {
        planned! {
            "foo" => Exact, "^foo$";
            "a.b" => Exact, r"^a\.b$";
            "foo**" => Prefix, "^foo$";
            "dir/**" => Prefix, "^dir/$";
            "**" => Suffix, "^$";
            "**/foo" => Suffix, "^(.*/)?foo$";
            "**file" => Suffix, "^(.*/)?file$";
            "**/*.go" => Regex, r"^(.*/)?[^/]*\.go$";
            "a**b" => Regex, "^a(.*/)?b$";
            "**/a/**" => Regex, "^(.*/)?a/.*$";
            "a/*.txt**" => Regex, r"^a/[^/]*\.txt.*$";
            "a\\*b" => Regex, r"^a\*b$";
            "[!a]" => Regex, "^[!a]$";
            "a?c" => Regex, "^a[^/]c$";
            "\u{feff}a*" => Regex, "^a[^/]*$";
        }
    }

    #[test]
    fn matching() {
        glob_matches!("**" => ["", "a", "a/b/", "/"] ; []);
        glob_matches!("**/foo" => ["foo", "a/foo", "/foo"] ; ["afoo/x"]);
        glob_matches!("**file" => ["file", "dir/xfile"] ; ["file2"]);
        glob_matches!("dir/**" => ["dir/", "dir/a/b"] ; ["dir", "dirx/a"]);
        glob_matches!("foo**" => ["foo", "foobar/baz"] ; ["fo"]);
        glob_matches!("a**b" => ["ab", "a/b", "ax/y/b"] ; ["axb"]);
        glob_matches!("[!a]" => ["!", "a"] ; ["b"]);
        // Without a wildcard the text is compared as is; with one, `^` is a regexp anchor.
        glob_matches!("a^b" => ["a^b"] ; ["ab"]);
        glob_matches!("a^b*" => [] ; ["a^b", "a^bc", "b"]);
        glob_matches!("[*]" => ["]", "[/^]"] ; ["*", "a"]);
        glob_matches!("a\\d" => ["a7"] ; ["ad"]);
        glob_matches!("[[:alpha:]]" => ["q"] ; ["1", "]"]);
    }

    #[test]
    fn regexp_errors_wait_for_matching() {
        let g = Glob::new("[Local-Only]").expect("passes the filepath.Match check");
        assert!(g.is_match("x").unwrap_err().contains("l-O"));
        assert!(Glob::new("[a-b-c]").is_err());
        assert!(Glob::new("a\\").is_err());
    }
}
