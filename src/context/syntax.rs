//! The syntax check that moby/patternmatcher runs on every pattern when it is compiled: it calls
//! Go's `filepath.Match(pattern, ".")` and keeps only the error (grammar/dockerignore.md R2.4).
//!
//! Owns: deciding whether Go's `filepath.Match` grammar accepts a glob, and why not. Go's
//! matcher keeps parsing a chunk after a mismatch and checks every remaining chunk before it
//! answers "no match", so its error depends only on the pattern; this file therefore checks the
//! grammar directly instead of matching anything. Must not decide what a pattern *matches*: that
//! is the regular expression built in `glob.rs`, whose class syntax differs (there `[!a]` is a
//! class holding `!` and `a`, and `[[:alpha:]]` is a POSIX class).
//!
//! Grammar (Unix, bytes): a pattern is chunks separated by runs of unbracketed `*`; inside a
//! chunk, `\x` escapes one byte and a trailing `\` is an error; `?` is one character; a class is
//! `[` `^`? item+ `]` where an item is `lo` or `lo-hi`, and `lo`/`hi` is any character except a
//! leading `-` or `]`, optionally `\`-escaped, that must be followed by more pattern text.

/// Why Go's `filepath.Match` rejects a pattern (its only error is `ErrBadPattern`; the reasons
/// are ours, to make the message useful).
pub(crate) fn check(pattern: &str) -> Result<(), &'static str> {
    let mut rest = pattern.as_bytes();
    while !rest.is_empty() {
        // A chunk starts after any run of stars...
        while let [b'*', tail @ ..] = rest {
            rest = tail;
        }
        // ...and ends at the next star outside brackets. Like Go's `scanChunk`, bracket
        // tracking here is naive (`]` always closes), and `\` hides the next byte.
        let mut end = 0;
        let mut in_class = false;
        while end < rest.len() {
            match rest[end] {
                b'\\' if end + 1 < rest.len() => end += 1,
                b'[' => in_class = true,
                b']' => in_class = false,
                b'*' if !in_class => break,
                _ => {}
            }
            end += 1;
        }
        check_chunk(&rest[..end])?;
        rest = &rest[end..];
    }
    Ok(())
}

/// One star-free chunk, as Go's `matchChunk` parses it.
fn check_chunk(mut chunk: &[u8]) -> Result<(), &'static str> {
    while let Some((&first, tail)) = chunk.split_first() {
        chunk = match first {
            b'[' => check_class(tail)?,
            b'\\' => match tail {
                [] => return Err("trailing backslash"),
                [_, after @ ..] => after,
            },
            _ => tail,
        };
    }
    Ok(())
}

/// A class body (after `[`); returns the text after its closing `]`.
fn check_class(mut chunk: &[u8]) -> Result<&[u8], &'static str> {
    if let [b'^', tail @ ..] = chunk {
        chunk = tail;
    }
    let mut items = 0;
    loop {
        if let [b']', tail @ ..] = chunk
            && items > 0
        {
            return Ok(tail);
        }
        chunk = class_char(chunk)?;
        if let [b'-', tail @ ..] = chunk {
            chunk = class_char(tail)?;
        }
        items += 1;
    }
}

/// One class character (Go's `getEsc`); returns the text after it, which must not be empty.
fn class_char(chunk: &[u8]) -> Result<&[u8], &'static str> {
    let chunk = match chunk {
        [] => return Err("unterminated character class"),
        [b'-', ..] => return Err("'-' at the start of a character class item"),
        [b']', ..] => return Err("empty character class or ']' at the start of an item"),
        [b'\\'] => return Err("trailing backslash"),
        [b'\\', tail @ ..] => tail,
        _ => chunk,
    };
    let width = utf8_width(chunk[0]);
    match chunk.get(width..) {
        Some(rest) if !rest.is_empty() => Ok(rest),
        _ => Err("unterminated character class"),
    }
}

/// Length of the UTF-8 sequence a leading byte announces (input comes from `&str`, so it is
/// well formed).
fn utf8_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    /// `valid!(patterns...)`: Go's `filepath.Match(p, ".")` returns no error.
    macro_rules! valid {
        ($($p:expr),* $(,)?) => { $( assert_eq!(check($p), Ok(()), "{:?} should be valid", $p); )* };
    }
    /// `invalid!(patterns...)`: Go's `filepath.Match(p, ".")` returns `ErrBadPattern`.
    macro_rules! invalid {
        ($($p:expr),* $(,)?) => { $( assert!(check($p).is_err(), "{:?} should be invalid", $p); )* };
    }

    /// The error rows of Go's `filepath.Match` test table (Unix) and of cases.tsv.
    #[test]
    fn go_match_errors() {
        invalid!(
            "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "*[", "a*[",
            "[a-", "[\\", "[a\\", "*x\\", "[]", "[^]", "[x", "[*",
        );
    }

    #[test]
    fn go_match_accepts() {
        valid!(
            "",
            "*",
            "abc",
            "a*/b",
            "ab[c]",
            "ab[b-d]",
            "ab[^c]",
            "a\\*b",
            "[\\]a]",
            "[\\-]",
            "[x\\-]",
            "[\\-x]",
            "[a-ζ]*",
            "*[a-ζ]",
            "[Local-Only]",
            "[!a]",
            "[[]",
            "a]",
            "]",
            "[*]",
            "[**]",
            "a[^a][^a][^a]b",
            "**/file\\?B",
            "[[:alpha:]]",
            "\\[",
            "a\\\\",
        );
    }

    /// Syntax errors after a chunk that cannot match "." are still found (Go checks the rest).
    #[test]
    fn errors_after_a_mismatch() {
        invalid!("x[", "x*y[", "abc/[a-", "x\\");
        valid!("x/y", "x*y/z");
    }
}
