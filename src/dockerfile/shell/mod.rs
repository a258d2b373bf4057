//! Shell-word lexing and parameter expansion for Dockerfile instruction arguments: quote
//! removal, escapes, `$VAR`/`${VAR...}` expansion and word splitting, reproducing BuildKit's
//! `frontend/dockerfile/shell/lex.go` byte for byte on its own test vectors. The accepted
//! language is written down in `grammar/word-expansion.ebnf`; the `(* ... *)` notes there
//! name the places where BuildKit departs from POSIX `sh`, and this file follows BuildKit.
//!
//! This module owns one step: text plus an environment in, text (or words) out. It must not
//! do I/O, run commands (there is no `$(...)` or backtick substitution), touch the process
//! environment, or know which instruction it is expanding; callers pick the escape character
//! and the mode flags. Errors carry the byte offset of the offending token so the caller can
//! put a caret under it.
//!
//! Layout: this file is the API and the scanner (quotes, escapes, names, `${...}` forms);
//! `glob` compiles the patterns of `#`, `%` and `/`; `error` is `ShellError`.

mod chars;
mod error;
mod glob;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chars::{is_go_digit, is_name_char};
pub(crate) use error::{MAX_DEPTH, ShellError};

/// Where variable values come from. Implemented for maps, for `(name, value)` lists (where
/// the last duplicate wins, like `docker run -e`), and for `EmptyEnv`.
pub trait Env {
    /// The value of `name`, or `None` when it is unset. Set-but-empty is `Some("")`, which
    /// is what makes `${V-w}` differ from `${V:-w}`.
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Env for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Env for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        // Last duplicate wins, as in BuildKit's `EnvsFromSlice`.
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

/// So that a borrowed slice can be passed as `&dyn Env`: `&[T]` itself is unsized, but
/// `&&[T]` coerces.
impl<E: Env + ?Sized> Env for &E {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}

/// An environment in which every variable is unset.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EmptyEnv;

impl Env for EmptyEnv {
    fn lookup(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// The word lexer and expander, configured the way BuildKit's `shell.Lex` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lexer {
    /// The escape character: `\` by default, `` ` `` after `# escape=``.
    pub(crate) escape: char,
    /// Keep quote characters in the output (quotes still group and protect their content).
    pub(crate) raw_quotes: bool,
    /// Keep escape characters in the output (they still protect the next character).
    pub(crate) raw_escapes: bool,
    /// Treat `'` and `"` as ordinary characters.
    pub(crate) skip_process_quotes: bool,
    /// Leave expansions of unset variables as text (`$V`, `${V}`, `${V:-w}` ...) instead of
    /// substituting. The parser uses this, with the raw flags, to find heredoc words.
    pub(crate) skip_unset_env: bool,
}

/// The result of [`Lexer::process_word_with_matches`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded word.
    pub result: String,
    /// Names looked up and found set (possibly empty).
    pub matched: BTreeSet<String>,
    /// Names looked up and found unset; the linter reports these.
    pub unmatched: BTreeSet<String>,
}

impl Lexer {
    /// A lexer with the given escape character and every mode flag off.
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expand `word` as one word: quotes removed, no splitting.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ShellError> {
        Ok(Expander::new(self, word, env).run(false)?.result)
    }

    /// Expand `word` and split it into words on unquoted, unescaped whitespace, including
    /// whitespace that comes out of unquoted expansions. Words that end up empty are dropped,
    /// even `""` (BuildKit keeps a word only when it has at least one character).
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        Ok(Expander::new(self, word, env).run(true)?.words)
    }

    /// Like [`Lexer::process_word`], also reporting which variables were looked up.
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn Env,
    ) -> Result<Expansion, ShellError> {
        let out = Expander::new(self, word, env).run(false)?;
        Ok(Expansion {
            result: out.result,
            matched: out.matched,
            unmatched: out.unmatched,
        })
    }
}

/// Everything one expansion produces.
struct Outcome {
    result: String,
    words: Vec<String>,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// Word splitting as BuildKit does it: a word is emitted when whitespace follows a non-empty
/// buffer, so quoted-empty words vanish. Only the top level splits; nested words do not.
///
/// One deliberate difference: BuildKit's current lex.go keeps this buffer in the shared
/// `shellWord` and resets it at the start of every nested word, so in `pre${U:-x}` the
/// `pre` is lost from the split words (never from the single-word result). No vector
/// depends on that; each nesting level here has its own buffer, which is what the code
/// evidently means.
struct Words {
    collect: bool,
    done: Vec<String>,
    current: String,
}

impl Words {
    fn new(collect: bool) -> Words {
        Words {
            collect,
            done: Vec::new(),
            current: String::new(),
        }
    }

    /// An unquoted, unescaped character: whitespace separates words.
    fn splitting_char(&mut self, c: char) {
        if !self.collect {
            return;
        }
        // `char::is_whitespace` is Unicode White_Space, exactly the set Go's
        // `unicode.IsSpace` accepts (U+0085 and U+00A0 included).
        if c.is_whitespace() {
            self.flush();
        } else {
            self.current.push(c);
        }
    }

    /// Text from an unquoted expansion: split like literal text.
    fn splitting_str(&mut self, s: &str) {
        if self.collect {
            s.chars().for_each(|c| self.splitting_char(c));
        }
    }

    /// Escaped or quoted text: never splits.
    fn raw_char(&mut self, c: char) {
        if self.collect {
            self.current.push(c);
        }
    }

    fn raw_str(&mut self, s: &str) {
        if self.collect {
            self.current.push_str(s);
        }
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.flush();
        self.done
    }
}

/// One expansion in progress: a cursor over the input plus what has been looked up.
struct Expander<'a> {
    lexer: &'a Lexer,
    env: &'a dyn Env,
    src: &'a str,
    pos: usize,
    /// Whether escape characters are kept right now. Starts as `lexer.raw_escapes` but is
    /// forced per nested word: on for patterns and replacements, off for `-`/`+`/`?` words.
    raw_escapes: bool,
    depth: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

impl<'a> Expander<'a> {
    fn new(lexer: &'a Lexer, src: &'a str, env: &'a dyn Env) -> Expander<'a> {
        // Go's text/scanner silently drops a byte-order mark at the very start of its input,
        // and BuildKit scans each word with it, so a leading U+FEFF never reaches the output.
        let pos = if src.starts_with('\u{feff}') { 3 } else { 0 };
        Expander {
            lexer,
            env,
            src,
            pos,
            raw_escapes: lexer.raw_escapes,
            depth: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        }
    }

    fn run(mut self, split: bool) -> Result<Outcome, ShellError> {
        let (result, words) = self.until(None, self.lexer.raw_escapes, split)?;
        Ok(Outcome {
            result,
            words,
            matched: self.matched,
            unmatched: self.unmatched,
        })
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn word(&self) -> String {
        self.src.to_owned()
    }

    /// Look `name` up, remembering whether it was set.
    fn lookup(&mut self, name: &str) -> Option<&'a str> {
        let env: &'a dyn Env = self.env;
        let value = env.lookup(name);
        let seen = if value.is_some() {
            &mut self.matched
        } else {
            &mut self.unmatched
        };
        if !seen.contains(name) {
            seen.insert(name.to_owned());
        }
        value
    }

    /// Process text up to `stop` (consumed) or, with `stop == None`, to the end of input,
    /// keeping escape characters iff `raw`. Returns the text and, if `split`, its words.
    fn until(
        &mut self,
        stop: Option<char>,
        raw: bool,
        split: bool,
    ) -> Result<(String, Vec<String>), ShellError> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw);
        let result = self.until_inner(stop, split);
        self.raw_escapes = saved;
        result
    }

    fn until_inner(
        &mut self,
        stop: Option<char>,
        split: bool,
    ) -> Result<(String, Vec<String>), ShellError> {
        let mut out = String::new();
        let mut words = Words::new(split);
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += c.len_utf8();
                return Ok((out, words.finish()));
            }
            match c {
                '$' => {
                    let value = self.dollar()?;
                    words.splitting_str(&value);
                    out.push_str(&value);
                }
                '\'' if quotes => {
                    let value = self.single_quoted()?;
                    words.raw_str(&value);
                    out.push_str(&value);
                }
                '"' if quotes => {
                    let value = self.double_quoted()?;
                    words.raw_str(&value);
                    out.push_str(&value);
                }
                _ => {
                    self.pos += c.len_utf8();
                    if c != self.lexer.escape {
                        words.splitting_char(c);
                        out.push(c);
                        continue;
                    }
                    if self.raw_escapes {
                        words.raw_char(c);
                        out.push(c);
                    }
                    // An escape at the very end is dropped, not an error.
                    let Some(escaped) = self.next() else { break };
                    words.raw_char(escaped);
                    out.push(escaped);
                }
            }
        }
        match stop {
            // Every caller of a nested word turns this into `MissingBrace`/`MissingSlash`
            // pointing at its own `$`, as BuildKit replaces any error raised at end of input.
            Some(_) => Err(ShellError::MissingBrace {
                word: self.word(),
                offset: self.src.len(),
            }),
            None => Ok((out, words.finish())),
        }
    }

    /// `'...'`: everything literal up to the next `'`; there is no way to escape it.
    fn single_quoted(&mut self) -> Result<String, ShellError> {
        let start = self.pos;
        let mut out = String::new();
        self.pos += 1;
        if self.lexer.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(ShellError::UnterminatedQuote {
                        word: self.word(),
                        offset: start,
                        quote: '\'',
                    });
                }
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// `"..."`: `$` expands; the escape character escapes only `"`, `$` and itself (not the
    /// backtick, unlike `sh`) and is otherwise literal.
    fn double_quoted(&mut self) -> Result<String, ShellError> {
        let start = self.pos;
        let mut out = String::new();
        self.pos += 1;
        if self.lexer.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(ShellError::UnterminatedQuote {
                        word: self.word(),
                        offset: start,
                        quote: '"',
                    });
                }
                Some('"') => {
                    self.pos += 1;
                    if self.lexer.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.pos += c.len_utf8();
                    let mut ch = c;
                    if c == self.lexer.escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            // A trailing escape is dropped; the loop then reports the
                            // unterminated quote.
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.lexer.escape => {
                                self.pos += n.len_utf8();
                                ch = n;
                            }
                            // Not escapable: the escape stays, and in raw mode it is
                            // therefore written twice (BuildKit does the same).
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    /// A name after `$` or `${`: a run of digits (positional), one special-parameter
    /// character, or letters, digits and `_` in Go's Unicode sense. May be empty.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_go_digit(c) {
                while let Some(d) = self.peek().filter(|&d| is_go_digit(d)) {
                    self.pos += d.len_utf8();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                // Special parameters, POSIX XCU 2.5.2; never set by Docker, but looked up
                // like any other name.
                self.pos += 1;
                return c.to_string();
            }
            if !is_name_char(c) {
                break;
            }
            self.pos += c.len_utf8();
            name.push(c);
        }
        name
    }

    /// `$NAME`, `${...}` or a lone `$`, starting at the `$`.
    fn dollar(&mut self) -> Result<String, ShellError> {
        let start = self.pos;
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value.to_owned(),
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        match self.peek() {
            None => {
                return Err(ShellError::MissingBrace {
                    word: self.word(),
                    offset: start,
                });
            }
            Some('{' | '}' | ':') => {
                return Err(ShellError::BadSubstitution {
                    word: self.word(),
                    offset: start,
                });
            }
            Some(_) => {}
        }
        if self.depth >= MAX_DEPTH {
            return Err(ShellError::TooDeep {
                word: self.word(),
                offset: start,
            });
        }
        self.depth += 1;
        let result = self.braced(start);
        self.depth -= 1;
        result
    }

    /// The part of `${...}` after the `{`.
    fn braced(&mut self, start: usize) -> Result<String, ShellError> {
        let name = self.name();
        let op_at = self.pos;
        match self.next() {
            // BuildKit reports `${NAME` at end of input as "unsupported modifier (\u{fffd})",
            // an artifact of Go's EOF rune; missing '}' is what it means.
            None => Err(ShellError::MissingBrace {
                word: self.word(),
                offset: start,
            }),
            Some('}') => Ok(match self.lookup(&name) {
                Some(value) => value.to_owned(),
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':') => match self.next() {
                None => Err(ShellError::MissingBrace {
                    word: self.word(),
                    offset: start,
                }),
                // `${V:#p}` and `${V:%p}` are not shell syntax; refused before the word.
                Some(op @ ('#' | '%')) => Err(self.unsupported(op_at, format!(":{op}"))),
                Some(op) => self.modified(start, op_at, &name, true, op),
            },
            Some(op @ ('+' | '-' | '?' | '#' | '%')) => {
                self.modified(start, op_at, &name, false, op)
            }
            Some('/') => self.replaced(start, &name),
            Some(op) => Err(self.unsupported(op_at, op.to_string())),
        }
    }

    fn unsupported(&self, offset: usize, modifier: String) -> ShellError {
        ShellError::UnsupportedModifier {
            word: self.word(),
            offset,
            modifier,
        }
    }

    /// A nested word up to `stop`; any failure that leaves us at end of input becomes
    /// `at_eof` (BuildKit reports the outer missing delimiter, whatever failed inside).
    fn nested(
        &mut self,
        stop: char,
        raw: bool,
        at_eof: impl FnOnce(String) -> ShellError,
    ) -> Result<String, ShellError> {
        match self.until(Some(stop), raw, false) {
            Ok((text, _)) => Ok(text),
            Err(_) if self.peek().is_none() => Err(at_eof(self.word())),
            Err(e) => Err(e),
        }
    }

    /// `${NAME op word}` and `${NAME:op word}` for op in `- + ? # %` (and, with `:`, any
    /// other op, which is refused after its word has been read, as BuildKit does).
    fn modified(
        &mut self,
        start: usize,
        op_at: usize,
        name: &str,
        colon: bool,
        op: char,
    ) -> Result<String, ShellError> {
        // Patterns keep their escapes so that `\*` can reach the glob compiler.
        let raw = op == '#' || op == '%';
        let word = self.nested('}', raw, |word| ShellError::MissingBrace {
            word,
            offset: start,
        })?;
        let colon = if colon { ":" } else { "" };
        let value = self.lookup(name);
        if value.is_none() && self.lexer.skip_unset_env {
            return Ok(format!("${{{name}{colon}{op}{word}}}"));
        }
        // With `:`, set-but-empty counts as unset.
        let set = value.filter(|v| colon.is_empty() || !v.is_empty());
        match op {
            '-' => Ok(set.map_or(word, str::to_owned)),
            '+' => Ok(set.map_or_else(String::new, |_| word)),
            '?' => match set {
                Some(value) => Ok(value.to_owned()),
                None => {
                    let message = if !word.is_empty() {
                        word
                    } else if value.is_none() {
                        "is not allowed to be unset".to_owned()
                    } else {
                        "is not allowed to be empty".to_owned()
                    };
                    Err(ShellError::MissingRequired {
                        word: self.word(),
                        offset: start,
                        name: name.to_owned(),
                        message,
                    })
                }
            },
            '#' | '%' => {
                // A doubled operator asks for the longest match. This is checked on the
                // expanded word, so `${V#$P}` with P="#x" is `${V##x}` (as in BuildKit).
                let (greedy, pattern) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                let value = value.unwrap_or("");
                let trimmed = if op == '#' {
                    glob::trim_prefix(pattern, value, greedy)
                } else {
                    glob::trim_suffix(pattern, value, greedy)
                };
                trimmed.map_err(|reason| ShellError::InvalidPattern {
                    word: self.word(),
                    offset: start,
                    pattern: pattern.to_owned(),
                    reason,
                })
            }
            _ => Err(self.unsupported(op_at, format!("{colon}{op}"))),
        }
    }

    /// `${NAME/pattern/replacement}` and `${NAME//pattern/replacement}`, after the first `/`.
    fn replaced(&mut self, start: usize, name: &str) -> Result<String, ShellError> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let pattern = self.nested('/', true, |word| ShellError::MissingSlash {
            word,
            offset: start,
        })?;
        let replacement = self.nested('}', true, |word| ShellError::MissingBrace {
            word,
            offset: start,
        })?;
        let value = self.lookup(name);
        if value.is_none() && self.lexer.skip_unset_env {
            // BuildKit writes one `/` back even for `//`; kept for fidelity.
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        glob::replace(value.unwrap_or(""), &pattern, &replacement, all).map_err(|reason| {
            ShellError::InvalidPattern {
                word: self.word(),
                offset: start,
                pattern,
                reason,
            }
        })
    }
}

#[cfg(test)]
mod tests;
