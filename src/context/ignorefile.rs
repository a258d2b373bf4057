//! Reading a `.dockerignore` file into its pattern list, as moby/patternmatcher's
//! `ignorefile.ReadAll` does (grammar/dockerignore.md R1).
//!
//! Owns: turning file text into the ordered list of pattern strings (comments, blank lines,
//! byte order mark, CRLF, `!` spacing, path cleaning, the leading `/`). Must not compile or
//! validate patterns (a lone `!` survives here and is rejected by `Matcher::new`), and must not
//! choose which file to read (`<Dockerfile>.dockerignore` before `.dockerignore` is the
//! caller's business).

use super::clean::clean;

/// Parse `.dockerignore` text into patterns (R1.1–R1.9). A missing file is simply no
/// patterns, which is what `read_ignore_file("")` returns.
pub fn read_ignore_file(text: &str) -> Vec<String> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    // R1.3: like Go's `bufio.ScanLines`, a final newline does not start another line.
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let mut patterns = Vec::new();
    for (number, line) in lines.into_iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        // R1.2: only the first line can carry the byte order mark.
        let line = match number {
            0 => line.strip_prefix('\u{feff}').unwrap_or(line),
            _ => line,
        };
        // R1.4: a comment needs `#` in column 1, before any trimming.
        if line.starts_with('#') {
            continue;
        }
        // R1.5: Rust's `trim` and Go's `strings.TrimSpace` agree on what white space is.
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        // R1.6–R1.9.
        let (exception, rest) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let mut pattern = if rest.is_empty() {
            String::new()
        } else {
            let cleaned = clean(rest);
            match cleaned.strip_prefix('/') {
                Some(relative) if !relative.is_empty() => relative.to_string(),
                _ => cleaned,
            }
        };
        if exception {
            pattern.insert(0, '!');
        }
        patterns.push(pattern);
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::read_ignore_file;

    /// `reads!(text => [patterns])`.
    macro_rules! reads {
        ($($text:expr => [$($p:expr),* $(,)?]);* $(;)?) => {
            $( assert_eq!(read_ignore_file($text), Vec::<String>::from([$($p.to_string()),*]), "{:?}", $text); )*
        };
    }

    #[test]
    fn lines_and_comments() {
        reads! {
            "" => [];
            "foo" => ["foo"];
            "a\n\n\nb" => ["a", "b"];
            "foo\r\nbar\r\n" => ["foo", "bar"];
            "#\n" => [];
            "# c\nfoo\n#bar\n" => ["foo"];
            "  # not a comment\n" => ["# not a comment"];
            "foo # not a comment\n" => ["foo # not a comment"];
            "\\#foo\n" => ["\\#foo"];
            "\tfoo\t\n" => ["foo"];
            "a\rb\n" => ["a\rb"];
        }
    }

    #[test]
    fn byte_order_mark() {
        reads! {
            "\u{feff}./Dockerfile\n" => ["Dockerfile"];
            "\u{feff}foo\n\u{feff}bar\n" => ["foo", "\u{feff}bar"];
            "\u{feff}#comment\nx" => ["x"];
        }
    }

    #[test]
    fn exceptions_and_cleaning() {
        reads! {
            "!\n! \n" => ["!", "!"];
            "!  foo\n" => ["!foo"];
            "! /inverted/abs/path" => ["!inverted/abs/path"];
            "!/foo/\n" => ["!foo"];
            "/\n" => ["/"];
            "!/\n" => ["!/"];
            "//foo\n" => ["foo"];
            "foo/./bar//baz/\n" => ["foo/bar/baz"];
            "../foo\n" => ["../foo"];
            ".\n" => ["."];
            "./dir1/../foo2\n" => ["foo2"];
            "**/\n" => ["**"];
            "/..\n" => ["/"];
        }
    }
}
