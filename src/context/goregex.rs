//! Translation of a regular expression in Go's RE2 syntax (`regexp.Compile`, Perl flags) into
//! the `regex` crate's syntax, so that a pattern compiled the way moby/patternmatcher compiles
//! it matches exactly the same strings (grammar/dockerignore.md R2.6–R2.7).
//!
//! Owns: reading Go regexp syntax and writing an equivalent `regex` expression, or the reason Go
//! would refuse it. It exists because patternmatcher pastes pattern text into a regexp almost
//! verbatim (`[`, `]`, `^`, `\x` pass through), so Go's own regexp rules decide what many
//! patterns mean, and the two syntaxes disagree on exactly those characters: inside a class Go
//! reads `[` literally while `regex` nests classes and treats `&&`, `--`, `~~` as set
//! operators; Go's `\d`, `\s`, `\w`, `\b` are ASCII-only; Go rejects reversed ranges such as
//! `l-O` (`.dockerignore` `[Local-Only]`). Must not know about globs: its input is the regexp
//! string built in `glob.rs`.
//!
//! Not covered, because a pattern can never produce them (patternmatcher escapes `.+()|{}$` and
//! rewrites `*` and `?`): flag groups `(?i)`, counted repetition `{n,m}`. They are reported as
//! unsupported instead of being guessed at.

use std::fmt::Write as _;

/// Translate `go` (a Go regexp) into `regex` crate syntax, or say why Go's `regexp.Compile`
/// rejects it.
pub(crate) fn translate(go: &str) -> Result<String, String> {
    let mut t = Translator {
        chars: go.chars().collect(),
        pos: 0,
        out: String::with_capacity(go.len() * 2),
    };
    t.expression()?;
    Ok(t.out)
}

struct Translator {
    chars: Vec<char>,
    pos: usize,
    out: String,
}

/// What the last emitted item was, for Go's repetition rules.
#[derive(Clone, Copy, PartialEq)]
enum Last {
    /// Start of the expression or of a group, or after `|`: nothing to repeat.
    Nothing,
    /// Something a repetition operator may follow.
    Operand,
    /// A repetition operator: Perl syntax forbids stacking another (`a**`).
    Repetition,
}

/// A Perl class (`\d`, `\s`, `\w`) in Go's ASCII-only meaning, as a `regex` class.
fn perl_class(letter: char) -> Option<&'static str> {
    Some(match letter {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        's' => r"[\t\n\x0C\r ]",
        'S' => r"[^\t\n\x0C\r ]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        _ => return None,
    })
}

/// Go's POSIX class names (`regexp/syntax` `posixGroup`); `regex` knows the same fourteen.
const POSIX_NAMES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Go's Unicode general categories (`unicode.Categories`); scripts are left to `regex`.
const CATEGORIES: [&str; 37] = [
    "Any", "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn",
    "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm",
    "So", "Z", "Zl", "Zp", "Zs",
];

fn literal(out: &mut String, c: char) {
    // `\x{..}` is unambiguous both inside and outside classes.
    let _ = write!(out, r"\x{{{:X}}}", c as u32);
}

impl Translator {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn expression(&mut self) -> Result<(), String> {
        let mut depth = 0usize;
        let mut last = Last::Nothing;
        while let Some(c) = self.next() {
            last = match c {
                '*' | '+' | '?' => {
                    match last {
                        Last::Nothing => {
                            return Err(format!("missing argument to repetition operator: `{c}`"));
                        }
                        Last::Repetition => {
                            return Err(format!("invalid nested repetition operator: `{c}`"));
                        }
                        Last::Operand => {}
                    }
                    self.out.push(c);
                    if self.peek() == Some('?') {
                        self.pos += 1;
                        self.out.push('?');
                    }
                    Last::Repetition
                }
                '(' => {
                    if self.peek() == Some('?') {
                        return Err("unsupported group syntax `(?`".to_string());
                    }
                    depth += 1;
                    self.out.push_str("(?:");
                    Last::Nothing
                }
                ')' => {
                    if depth == 0 {
                        return Err("unexpected )".to_string());
                    }
                    depth -= 1;
                    self.out.push(')');
                    Last::Operand
                }
                '|' => {
                    self.out.push('|');
                    Last::Nothing
                }
                '{' => return Err("unsupported counted repetition `{`".to_string()),
                // Go compiles with OneLine (part of its Perl flags): `^`/`$` are text anchors,
                // and `.` excludes only `\n`; the `regex` defaults are the same.
                '^' | '$' | '.' => {
                    self.out.push(c);
                    Last::Operand
                }
                '[' => {
                    self.class()?;
                    Last::Operand
                }
                '\\' => {
                    if self.escape_outside_class()? {
                        Last::Operand
                    } else {
                        last
                    }
                }
                other => {
                    literal(&mut self.out, other);
                    Last::Operand
                }
            };
        }
        if depth > 0 {
            return Err("missing closing )".to_string());
        }
        Ok(())
    }

    /// After a `\` outside a class. Returns whether something repeatable was emitted (`\Q\E`
    /// emits nothing).
    fn escape_outside_class(&mut self) -> Result<bool, String> {
        let Some(c) = self.peek() else {
            return Err(r"trailing backslash at end of expression".to_string());
        };
        match c {
            'A' | 'z' => {
                self.pos += 1;
                let _ = write!(self.out, r"\{c}");
            }
            // Go's word boundary is ASCII-only.
            'b' | 'B' => {
                self.pos += 1;
                let _ = write!(self.out, r"(?-u:\{c})");
            }
            'Q' => {
                self.pos += 1;
                let start = self.pos;
                let mut end = self.chars.len();
                let mut resume = end;
                while self.pos + 1 < self.chars.len() {
                    if self.chars[self.pos] == '\\' && self.chars[self.pos + 1] == 'E' {
                        end = self.pos;
                        resume = self.pos + 2;
                        break;
                    }
                    self.pos += 1;
                }
                let quoted: Vec<char> = self.chars[start..end].to_vec();
                self.pos = resume;
                for q in &quoted {
                    literal(&mut self.out, *q);
                }
                return Ok(!quoted.is_empty());
            }
            _ => {
                if let Some(class) = self.named_escape()? {
                    self.out.push_str(&class);
                } else {
                    let r = self.single_escape()?;
                    literal(&mut self.out, r);
                }
            }
        }
        Ok(true)
    }

    /// `\d`-style or `\p{..}`-style classes after a `\` (at `self.pos`, the letter).
    fn named_escape(&mut self) -> Result<Option<String>, String> {
        let letter = self.peek().unwrap_or('\0');
        if let Some(class) = perl_class(letter) {
            self.pos += 1;
            return Ok(Some(class.to_string()));
        }
        if letter != 'p' && letter != 'P' {
            return Ok(None);
        }
        self.pos += 1;
        let mut negated = letter == 'P';
        let name: String = match self.next() {
            None => return Err(r"invalid character class range: `\p`".to_string()),
            Some('{') => {
                let mut name = String::new();
                loop {
                    match self.next() {
                        None => return Err("invalid character class range: missing }".to_string()),
                        Some('}') => break,
                        Some(c) => name.push(c),
                    }
                }
                name
            }
            Some(c) => c.to_string(),
        };
        let name = match name.strip_prefix('^') {
            Some(rest) => {
                negated = !negated;
                rest.to_string()
            }
            None => name,
        };
        // Go knows categories and scripts by their exact names; scripts (`Greek`, `Old_Italic`)
        // are capitalised words, which `regex` then checks.
        let plausible = CATEGORIES.contains(&name.as_str())
            || (name.starts_with(|c: char| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_alphabetic() || c == '_'));
        if !plausible {
            return Err(format!("invalid character class range: `\\p{{{name}}}`"));
        }
        Ok(Some(format!(
            r"\{}{{{name}}}",
            if negated { 'P' } else { 'p' }
        )))
    }

    /// A single-character escape after `\` (at `self.pos`): Go's `parseEscape`.
    fn single_escape(&mut self) -> Result<char, String> {
        let Some(c) = self.next() else {
            return Err("trailing backslash at end of expression".to_string());
        };
        let invalid = |c: char| Err(format!("invalid escape sequence: `\\{c}`"));
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            return Ok(c);
        }
        let octal = |d: Option<char>| d.filter(|d| ('0'..='7').contains(d));
        match c {
            // A lone `\1`..`\7` would be a backreference, which RE2 does not have.
            '1'..='7' if octal(self.peek()).is_none() => invalid(c),
            '0'..='7' => {
                let mut value = c as u32 - '0' as u32;
                for _ in 0..2 {
                    let Some(d) = octal(self.peek()) else { break };
                    self.pos += 1;
                    value = value * 8 + (d as u32 - '0' as u32);
                }
                Ok(char::from_u32(value).expect("octal escapes stay below 0o777"))
            }
            'x' => self.hex_escape(),
            'a' => Ok('\x07'),
            'f' => Ok('\x0C'),
            'n' => Ok('\n'),
            'r' => Ok('\r'),
            't' => Ok('\t'),
            'v' => Ok('\x0B'),
            _ => invalid(c),
        }
    }

    /// After `\x`: two hex digits or `{hex+}`.
    fn hex_escape(&mut self) -> Result<char, String> {
        let bad = || Err("invalid escape sequence: `\\x`".to_string());
        match self.next() {
            Some('{') => {
                let mut value: u32 = 0;
                let mut digits = 0;
                loop {
                    match self.next() {
                        Some('}') if digits > 0 => break,
                        Some(d) if d.is_ascii_hexdigit() => {
                            value = value * 16 + d.to_digit(16).expect("hex digit");
                            digits += 1;
                            if value > 0x10FFFF {
                                return bad();
                            }
                        }
                        _ => return bad(),
                    }
                }
                char::from_u32(value).map_or_else(bad, Ok)
            }
            Some(hi) => match (hi.to_digit(16), self.next().and_then(|lo| lo.to_digit(16))) {
                (Some(hi), Some(lo)) => Ok(char::from_u32(hi * 16 + lo).expect("byte value")),
                _ => bad(),
            },
            None => bad(),
        }
    }

    /// A class, after its `[`: Go's `parseClass`.
    fn class(&mut self) -> Result<(), String> {
        let start = self.pos - 1;
        self.out.push('[');
        if self.peek() == Some('^') {
            self.pos += 1;
            self.out.push('^');
        }
        let mut first = true;
        loop {
            match self.peek() {
                None => {
                    let text: String = self.chars[start..].iter().collect();
                    return Err(format!("missing closing ]: `{text}`"));
                }
                Some(']') if !first => {
                    self.pos += 1;
                    self.out.push(']');
                    return Ok(());
                }
                _ => {}
            }
            first = false;
            // `[:name:]`: a POSIX class when `:]` follows somewhere; otherwise `[` is literal.
            if self.peek() == Some('[') && self.peek_at(1) == Some(':') {
                let rest: String = self.chars[self.pos + 2..].iter().collect();
                if let Some(end) = rest.find(":]") {
                    let name = &rest[..end];
                    let bare = name.strip_prefix('^').unwrap_or(name);
                    if !POSIX_NAMES.contains(&bare) {
                        return Err(format!("invalid character class range: `[:{name}:]`"));
                    }
                    let _ = write!(self.out, "[:{name}:]");
                    self.pos += 2 + name.chars().count() + 2;
                    continue;
                }
            }
            if self.peek() == Some('\\') {
                let save = self.pos;
                self.pos += 1;
                if let Some(class) = self.named_escape()? {
                    // `regex` accepts a nested class (or `\p{..}`) as a union member.
                    self.out.push_str(&class);
                    continue;
                }
                self.pos = save;
            }
            let range_start = self.pos;
            let lo = self.class_char()?;
            let mut hi = lo;
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.pos += 1;
                hi = self.class_char()?;
                if hi < lo {
                    let text: String = self.chars[range_start..self.pos].iter().collect();
                    return Err(format!("invalid character class range: `{text}`"));
                }
            }
            literal(&mut self.out, lo);
            if hi != lo {
                self.out.push('-');
                literal(&mut self.out, hi);
            }
        }
    }

    fn class_char(&mut self) -> Result<char, String> {
        match self.next() {
            None => Err("missing closing ]".to_string()),
            Some('\\') => self.single_escape(),
            Some(c) => Ok(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::translate;
    use regex::Regex;

    /// `go_matches!(go_regexp: [matching...] ; [not matching...])`: what Go's `regexp` would
    /// say, checked through the translation.
    macro_rules! go_matches {
        ($re:expr => [$($yes:expr),*] ; [$($no:expr),*]) => {{
            let rust = translate($re).unwrap_or_else(|e| panic!("{:?}: {e}", $re));
            let re = Regex::new(&rust).unwrap_or_else(|e| panic!("{:?} -> {rust:?}: {e}", $re));
            $( assert!(re.is_match($yes), "{:?} ({rust}) should match {:?}", $re, $yes); )*
            $( assert!(!re.is_match($no), "{:?} ({rust}) should not match {:?}", $re, $no); )*
        }};
    }
    /// `go_rejects!(regexps...)`: Go's `regexp.Compile` fails.
    macro_rules! go_rejects {
        ($($re:expr),* $(,)?) => { $( assert!(translate($re).is_err(), "{:?} should be rejected", $re); )* };
    }

    #[test]
    fn shapes_patternmatcher_builds() {
        go_matches!(r"^[^/]*\.go$" => ["a.go", ".go"] ; ["a/b.go", "a.goo"]);
        go_matches!(r"^(.*/)?foo$" => ["foo", "a/b/foo"] ; ["afoo"]);
        go_matches!(r"^a(.*/)?b$" => ["ab", "a/b", "ax/y/b"] ; ["axb"]);
        go_matches!(r"^abc[^/]def$" => ["abcZdef"] ; ["abc/def", "abcdef"]);
        go_matches!(r"^a\.\|\)\$\(\}\+\{bc$" => ["a.|)$(}+{bc"] ; ["a"]);
    }

    /// Inside a class Go reads `[` literally; `regex` would open a nested class.
    #[test]
    fn class_brackets_are_literal() {
        // Pattern `[*]` becomes `^[[^/]*]$`: the class {[ ^ /} repeated, then a literal `]`.
        go_matches!(r"^[[^/]*]$" => ["]", "[^/]", "^]"] ; ["a]", "*"]);
        go_matches!(r"^[!a]$" => ["!", "a"] ; ["b"]);
        go_matches!(r"^[a&&b]$" => ["&", "a"] ; ["c"]);
        go_matches!(r"^[a-]$" => ["a", "-"] ; ["b"]);
        go_matches!(r"^[-a~~]$" => ["a", "-", "~"] ; ["b"]);
        go_matches!(r"^[]a]$" => ["]", "a"] ; ["b"]);
        go_matches!(r"^[[:alpha:]]$" => ["a", "Z"] ; ["1", "é"]);
        go_matches!(r"^[[:^digit:]x]$" => ["a", "x"] ; ["1"]);
        go_matches!(r"^[^a]$" => ["\n", "b"] ; ["a"]);
    }

    #[test]
    fn escapes_follow_go() {
        go_matches!(r"^\d$" => ["7"] ; ["٣", "d"]);
        go_matches!(r"^\a$" => ["\x07"] ; ["a"]);
        go_matches!(r"^\x41\x{263a}$" => ["A☺"] ; ["x41"]);
        go_matches!(r"^\101$" => ["A"] ; []);
        go_matches!(r"^\Qa.b\E.$" => ["a.bc"] ; ["axbc"]);
        go_matches!(r"^\Q*" => ["*", "*/x"] ; ["x"]);
        go_matches!(r"^[\]a]$" => ["]", "a"] ; ["\\"]);
        go_matches!(r"^[\d_]$" => ["5", "_"] ; ["d"]);
        go_matches!(r"^\pL\p{Greek}$" => ["aα"] ; ["1α"]);
        go_matches!(r"^a\b" => ["a", "a-", "aé"] ; ["ab", "a_"]);
        go_matches!(r"^\Aa\z" => ["a"] ; ["a\n"]);
    }

    #[test]
    fn go_rejections() {
        go_rejects!(
            "^[Local-Only]$",
            "^[z-a]$",
            "^[a--]$",
            "^[a$",
            r"^\q$",
            r"^\1$",
            r"^\8$",
            r"^a\",
            r"^\é$",
            "^[[:bogus:]]$",
            r"^\xZ$",
            r"^\x{}$",
            r"^\x{110000}$",
            "*a",
            "a**",
            "(a",
            "a)",
            r"^\p{bogus}$",
        );
    }
}
