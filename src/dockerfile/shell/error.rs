//! The expander's error type. Messages reproduce BuildKit's (`failed to process "<word>":
//! <what failed>`), so they can be compared with `docker build` output; each variant also
//! carries the byte offset of the token it is about, for a caret. No I/O, no rendering.

use crate::dockerfile::ast::go_quote;

/// How many `${` may nest. Real Dockerfiles use two or three; the bound keeps recursion
/// within a small thread stack (about 6 KiB per level in debug builds, 1.2 KiB in release).
pub(crate) const MAX_DEPTH: usize = 64;

/// Why a word could not be expanded. Each variant carries the whole input `word` (the
/// message quotes it, as BuildKit's does) and the byte `offset` in it of the problem.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ShellError {
    /// A quote was never closed; `offset` is the opening quote.
    #[error(
        "failed to process {}: unexpected end of statement while looking for matching {}",
        go_quote(.word),
        quote_name(.quote)
    )]
    UnterminatedQuote {
        word: String,
        offset: usize,
        quote: char,
    },
    /// `${` without its `}`; `offset` is the `$`.
    #[error("failed to process {}: syntax error: missing '}}'", go_quote(.word))]
    MissingBrace { word: String, offset: usize },
    /// `${V/pattern` without the `/` that ends the pattern; `offset` is the `$`.
    #[error("failed to process {}: syntax error: missing '/' in ${{}}", go_quote(.word))]
    MissingSlash { word: String, offset: usize },
    /// `${}`, `${{...`, `${:...`; `offset` is the `$`.
    #[error("failed to process {}: syntax error: bad substitution", go_quote(.word))]
    BadSubstitution { word: String, offset: usize },
    /// `${V=w}`, `${V:=w}`, `${V:#p}`, `${.}` and the like; `offset` is the first character
    /// of `modifier`.
    #[error(
        "failed to process {}: unsupported modifier ({modifier}) in substitution",
        go_quote(.word)
    )]
    UnsupportedModifier {
        word: String,
        offset: usize,
        modifier: String,
    },
    /// `${V?m}` with V unset, or `${V:?m}` with V unset or empty; `message` is the expanded
    /// `m`, or BuildKit's default text when `m` is empty. `offset` is the `$`.
    #[error("failed to process {}: {name}: {message}", go_quote(.word))]
    MissingRequired {
        word: String,
        offset: usize,
        name: String,
        message: String,
    },
    /// A `#`, `%` or `/` pattern that is not a valid glob (only `\*`, `\?`, `\\`, `\}` and
    /// `\/` are valid escapes); `offset` is the `$`.
    #[error(
        "failed to process {}: invalid pattern ({pattern}) in substitution: {reason}",
        go_quote(.word)
    )]
    InvalidPattern {
        word: String,
        offset: usize,
        pattern: String,
        reason: String,
    },
    /// More than [`MAX_DEPTH`] nested `${`; a guard against stack exhaustion that BuildKit
    /// (with Go's growable stacks) does not need. `offset` is the `$` that went too deep.
    #[error(
        "failed to process {}: substitutions nested more than {MAX_DEPTH} deep",
        go_quote(.word)
    )]
    TooDeep { word: String, offset: usize },
}

impl ShellError {
    /// Byte offset in the input word of the token the error is about.
    pub(crate) fn offset(&self) -> usize {
        match self {
            ShellError::UnterminatedQuote { offset, .. }
            | ShellError::MissingBrace { offset, .. }
            | ShellError::MissingSlash { offset, .. }
            | ShellError::BadSubstitution { offset, .. }
            | ShellError::UnsupportedModifier { offset, .. }
            | ShellError::MissingRequired { offset, .. }
            | ShellError::InvalidPattern { offset, .. }
            | ShellError::TooDeep { offset, .. } => *offset,
        }
    }
}

fn quote_name(quote: &char) -> &'static str {
    if *quote == '\'' {
        "single-quote"
    } else {
        "double-quote"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_escapes_like_percent_q() {
        assert_eq!(
            go_quote("a\"b\\c\n\t\u{1}\u{7f}\u{85}\u{a0}é 한\u{feff}"),
            r#""a\"b\\c\n\t\x01\x7f\u0085\u00a0é 한\ufeff""#
        );
    }

    /// `renders! { name: error => message; }` checks the Display text and `offset()`.
    macro_rules! renders {
        ($($name:ident: $err:expr => $offset:expr, $msg:expr;)*) => {$(
            #[test]
            fn $name() {
                let err: ShellError = $err;
                assert_eq!(err.to_string(), $msg);
                assert_eq!(err.offset(), $offset);
            }
        )*};
    }

    fn w() -> String {
        "w".to_owned()
    }

    renders! {
        unterminated_single: ShellError::UnterminatedQuote { word: w(), offset: 1, quote: '\'' } => 1,
            r#"failed to process "w": unexpected end of statement while looking for matching single-quote"#;
        unterminated_double: ShellError::UnterminatedQuote { word: w(), offset: 2, quote: '"' } => 2,
            r#"failed to process "w": unexpected end of statement while looking for matching double-quote"#;
        missing_brace: ShellError::MissingBrace { word: w(), offset: 3 } => 3,
            r#"failed to process "w": syntax error: missing '}'"#;
        missing_slash: ShellError::MissingSlash { word: w(), offset: 4 } => 4,
            r#"failed to process "w": syntax error: missing '/' in ${}"#;
        bad_substitution: ShellError::BadSubstitution { word: w(), offset: 5 } => 5,
            r#"failed to process "w": syntax error: bad substitution"#;
        unsupported: ShellError::UnsupportedModifier { word: w(), offset: 6, modifier: ":=".into() } => 6,
            r#"failed to process "w": unsupported modifier (:=) in substitution"#;
        required: ShellError::MissingRequired {
            word: w(), offset: 7, name: "V".into(), message: "is not allowed to be unset".into(),
        } => 7, r#"failed to process "w": V: is not allowed to be unset"#;
        pattern: ShellError::InvalidPattern {
            word: w(), offset: 8, pattern: r"\.".into(), reason: r"invalid escape '\.'".into(),
        } => 8, r#"failed to process "w": invalid pattern (\.) in substitution: invalid escape '\.'"#;
        too_deep: ShellError::TooDeep { word: w(), offset: 9 } => 9,
            r#"failed to process "w": substitutions nested more than 64 deep"#;
    }
}
