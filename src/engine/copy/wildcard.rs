//! Wildcards in COPY and ADD sources, with the meaning BuildKit gives them: Go's
//! `path/filepath.Match`, one path component at a time (tonistiigi/fsutil `copy.go`
//! `ResolveWildcards`, which walks the tree and calls `filepath.Match` on each relative path).
//!
//! Owns: deciding whether a source has a wildcard (`*`, `?` or `[` not escaped by `\`),
//! splitting it into a literal directory and a pattern, and matching one name against one
//! pattern component. Must not touch the filesystem (`selection.rs` lists directories) and
//! must not use `.dockerignore` rules: there `**` crosses directories and `!` negates; here
//! `**` is just two stars and a malformed pattern simply matches nothing (upstream ignores
//! `filepath.ErrBadPattern`).

/// Whether `path` holds an unescaped `*`, `?` or `[` (fsutil `containsWildcards`).
pub(super) fn contains_wildcards(path: &str) -> bool {
    let mut bytes = path.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => {
                bytes.next();
            }
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
    }
    false
}

/// Split a cleaned relative path at its first component with a wildcard: the literal
/// components before it, and the pattern components from it on (fsutil `splitWildcards`).
pub(super) fn split(path: &str) -> (Vec<&str>, Vec<&str>) {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let first = parts
        .iter()
        .position(|p| contains_wildcards(p))
        .unwrap_or(parts.len());
    (parts[..first].to_vec(), parts[first..].to_vec())
}

/// One token of a compiled pattern component.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    Any,
    /// `[...]`, possibly negated with `^`: inclusive ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Literal(char),
}

/// Compile one pattern component with `filepath.Match` syntax; `None` when Go would report
/// `ErrBadPattern` (an unclosed or empty class, a range end that is an unescaped `-` or `]`,
/// a trailing `\`).
fn compile(pattern: &str) -> Option<Vec<Token>> {
    let mut chars = pattern.chars().peekable();
    let mut tokens = Vec::new();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' => Token::Star,
            '?' => Token::Any,
            '\\' => Token::Literal(chars.next()?),
            '[' => {
                let negated = chars.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                loop {
                    if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                        break;
                    }
                    // Go's getEsc: an endpoint may not be an unescaped `-` or `]`.
                    let endpoint =
                        |chars: &mut std::iter::Peekable<std::str::Chars>| match chars.next()? {
                            '-' | ']' => None,
                            '\\' => chars.next(),
                            c => Some(c),
                        };
                    let lo = endpoint(&mut chars)?;
                    let hi = if chars.next_if_eq(&'-').is_some() {
                        endpoint(&mut chars)?
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                Token::Class { negated, ranges }
            }
            c => Token::Literal(c),
        });
    }
    Some(tokens)
}

/// Does `name` (one path component) match `pattern` (one component)? Go's
/// `filepath.Match(pattern, name)`, with a malformed pattern matching nothing.
pub(super) fn matches(pattern: &str, name: &str) -> bool {
    let Some(tokens) = compile(pattern) else {
        return false;
    };
    let name: Vec<char> = name.chars().collect();
    let one = |t: &Token, c: char| match t {
        Token::Any => true,
        Token::Literal(l) => *l == c,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
        Token::Star => unreachable!("stars are handled by the caller"),
    };
    // Classic glob matching with one backtrack point: the last star seen.
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(Token::Star) => {
                star = Some((t, n));
                t += 1;
            }
            Some(token) if one(token, name[n]) => {
                t += 1;
                n += 1;
            }
            _ => match star {
                Some((st, sn)) => {
                    star = Some((st, sn + 1));
                    t = st + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|t| *t == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::{contains_wildcards, matches, split};

    /// `glob!(pattern => matched names; not: unmatched names)`.
    macro_rules! glob {
        ($($pattern:expr => [$($yes:expr),*] not [$($no:expr),*];)*) => {$(
            $( assert!(matches($pattern, $yes), "{:?} should match {:?}", $pattern, $yes); )*
            $( assert!(!matches($pattern, $no), "{:?} should not match {:?}", $pattern, $no); )*
        )*};
    }

    #[test]
    fn filepath_match_table() {
        glob! {
            "abc" => ["abc"] not ["ab", "abcd"];
            "*" => ["", "abc"] not [];
            "*c" => ["abc", "c"] not ["abd"];
            "a*" => ["a", "abc"] not ["ba"];
            "a*b*c*d*e*" => ["axbxcxdxe", "abcde"] not ["axbxcxdx"];
            "ab[c]" => ["abc"] not ["abd"];
            "ab[b-d]" => ["abc"] not ["abe"];
            "ab[^c]" => ["abd"] not ["abc"];
            "ab[^b-d]" => ["abe"] not ["abc"];
            "a\\*b" => ["a*b"] not ["ab", "axb"];
            "a?b" => ["a☺b"] not ["ab"];
            "[a-ζ]*" => ["α"] not ["ω"];
            "**" => ["abc"] not [];
            "[\\]a]" => ["]"] not ["b"];
            "[\\-]" => ["-"] not ["a"];
            "[x\\-]" => ["x", "-"] not ["z"];
        }
    }

    #[test]
    fn malformed_patterns_match_nothing() {
        glob! {
            "[" => [] not ["[", "a"];
            "[^" => [] not ["a"];
            "[]a]" => [] not ["]", "a"];
            "[-]" => [] not ["-"];
            "[x-]" => [] not ["x", "-"];
            "[-x]" => [] not ["x"];
            "a\\" => [] not ["a", "a\\"];
            "[a-b-c]" => [] not ["a"];
        }
    }

    #[test]
    fn wildcard_detection_and_split() {
        assert!(contains_wildcards("a/*.txt"));
        assert!(contains_wildcards("[ab]"));
        assert!(!contains_wildcards("a\\*b"));
        assert!(!contains_wildcards("plain/path"));
        assert_eq!(split("a/b*/c"), (vec!["a"], vec!["b*", "c"]));
        assert_eq!(split("*.go"), (vec![], vec!["*.go"]));
        assert_eq!(split("a/b"), (vec!["a", "b"], vec![]));
    }
}
