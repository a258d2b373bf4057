//! Splitting one logical line into keyword, flags and arguments, per instruction, exactly
//! as BuildKit's line parsers do (grammar/dockerfile.ebnf, "instruction" and "arguments").
//! Positions are byte offsets into the logical line so the parser can map every word back
//! to the source.

use std::ops::Range;

/// A word with its byte range in the logical line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub value: String,
    pub(crate) range: Range<usize>,
}

impl Word {
    fn new(value: impl Into<String>, range: Range<usize>) -> Word {
        Word {
            value: value.into(),
            range,
        }
    }
}

/// The result of splitting a line: keyword, flags, and the arguments text.
#[derive(Debug)]
pub(crate) struct Command<'a> {
    pub(crate) keyword: Word,
    pub(crate) flags: Vec<Word>,
    pub(crate) args: &'a str,
    /// Offset of `args` in the line.
    pub(crate) args_at: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("{0} must have two arguments")]
    MissingValue(String),
    #[error("Syntax error - can't find = in {0}. Must be of the form: name=value")]
    MissingEquals(String, Range<usize>),
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
}

/// `[\t\v\f\r ]`: BuildKit's `reWhitespace` class.
fn is_blank(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Split off the keyword and the leading `--flags`.
pub(crate) fn split_command(line: &str) -> Command<'_> {
    let lead = line.len() - line.trim_start().len();
    let trimmed = line.trim();
    let end_kw = trimmed.find(is_blank).unwrap_or(trimmed.len());
    let keyword = Word::new(&trimmed[..end_kw], lead..lead + end_kw);
    let after_kw = &trimmed[end_kw..];
    let rest_start = after_kw.len() - after_kw.trim_start_matches(is_blank).len();
    let rest_at = lead + end_kw + rest_start;
    let rest = &line[rest_at..lead + trimmed.len()];
    let (flags, args_rel) = extract_flags(rest);
    let mut flags = flags;
    for f in &mut flags {
        f.range = f.range.start + rest_at..f.range.end + rest_at;
    }
    let args_raw = &rest[args_rel..];
    let args_lead = args_raw.len() - args_raw.trim_start().len();
    let args = args_raw.trim();
    Command {
        keyword,
        flags,
        args,
        args_at: rest_at + args_rel + args_lead,
    }
}

/// Leading `--name[=value]` words (quotes removed, `\` escapes the next byte), stopping at
/// the first word that does not start with `--`; a bare `--` ends the flags and is dropped.
/// Returns the flags and the offset where the arguments start.
fn extract_flags(line: &str) -> (Vec<Word>, usize) {
    let b = line.as_bytes();
    let mut words = Vec::new();
    let mut pos = 0;
    loop {
        while pos < b.len() && b[pos].is_ascii_whitespace() || pos < b.len() && b[pos] == 0x0b {
            pos += 1;
        }
        if pos == b.len() {
            return (words, pos);
        }
        if !(b[pos] == b'-' && b.get(pos + 1) == Some(&b'-')) {
            return (words, pos);
        }
        let start = pos;
        let mut word: Vec<u8> = Vec::new();
        let mut quote: Option<u8> = None;
        let mut blank_ok = false;
        while pos < b.len() {
            let ch = b[pos];
            if let Some(q) = quote {
                if ch == q {
                    quote = None;
                } else if ch == b'\\' {
                    if pos + 1 < b.len() {
                        pos += 1;
                        word.push(b[pos]);
                    } else {
                        quote = None;
                    }
                } else {
                    word.push(ch);
                }
                pos += 1;
                continue;
            }
            if ch.is_ascii_whitespace() || ch == 0x0b {
                break;
            }
            if ch == b'\'' || ch == b'"' {
                quote = Some(ch);
                blank_ok = true;
            } else if ch == b'\\' {
                if pos + 1 < b.len() {
                    pos += 1;
                    word.push(b[pos]);
                }
            } else {
                word.push(ch);
            }
            pos += 1;
        }
        if word == b"--" {
            return (words, pos);
        }
        if blank_ok || !word.is_empty() {
            words.push(Word::new(String::from_utf8_lossy(&word), start..pos));
        }
    }
}

/// Words separated by unquoted whitespace; quotes and escapes are kept in the words
/// (BuildKit `parseWords`, used by ARG, ENV and LABEL).
pub fn parse_words(rest: &str, escape: char) -> Vec<Word> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut start = 0;
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut it = rest.char_indices().peekable();
    while let Some((i, ch)) = it.next() {
        if !in_word {
            if ch.is_whitespace() {
                continue;
            }
            in_word = true;
            start = i;
        }
        if let Some(q) = quote {
            if ch == q {
                quote = None;
            }
            if ch == escape && q != '\'' {
                match it.next() {
                    None => {
                        quote = None;
                        continue;
                    }
                    Some((_, next)) => {
                        word.push(ch);
                        word.push(next);
                        continue;
                    }
                }
            }
            word.push(ch);
            continue;
        }
        if ch.is_whitespace() {
            if blank_ok || !word.is_empty() {
                words.push(Word::new(std::mem::take(&mut word), start..i));
            }
            word.clear();
            blank_ok = false;
            in_word = false;
            continue;
        }
        if ch == '\'' || ch == '"' {
            quote = Some(ch);
            blank_ok = true;
        }
        if ch == escape {
            match it.next() {
                // An escape token at the very end of the line is dropped.
                None => continue,
                Some((_, next)) => {
                    word.push(ch);
                    word.push(next);
                    continue;
                }
            }
        }
        word.push(ch);
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(Word::new(word, start..rest.len()));
    }
    words
}

/// ENV and LABEL: `k=v k2="v 2"` gives triples (key, value, "="); the legacy `KEY value…`
/// form gives (key, rest of the line verbatim, "").
pub(crate) fn parse_name_val(
    rest: &str,
    keyword: &str,
    escape: char,
) -> Result<Vec<Word>, LineError> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.value.contains('=') {
        let Some(sep) = rest.find(is_blank) else {
            return Err(LineError::MissingValue(keyword.to_string()));
        };
        let after = &rest[sep..];
        let value_at = sep + (after.len() - after.trim_start_matches(is_blank).len());
        return Ok(vec![
            Word::new(&rest[..sep], 0..sep),
            Word::new(&rest[value_at..], value_at..rest.len()),
            Word::new("", rest.len()..rest.len()),
        ]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for w in words {
        let Some((k, v)) = w.value.split_once('=') else {
            return Err(LineError::MissingEquals(
                crate::dockerfile::ast::go_quote(&w.value),
                w.range,
            ));
        };
        let eq = w.range.start + k.len();
        out.push(Word::new(k, w.range.start..eq));
        out.push(Word::new(v, eq + 1..w.range.end));
        out.push(Word::new("=", eq..eq + 1));
    }
    Ok(out)
}

/// FROM and EXPOSE (and the shell form of ADD/COPY/VOLUME): split on runs of blanks,
/// quotes not interpreted.
pub(crate) fn split_blanks(rest: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in rest.char_indices() {
        match (is_blank(c), start) {
            (true, Some(s)) => {
                out.push(Word::new(&rest[s..i], s..i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Word::new(&rest[s..], s..rest.len()));
    }
    out
}

/// A JSON array of strings (exec form). `Ok(None)` when the text is not a well-formed JSON
/// array, so the caller falls back to the shell form; an array holding anything but strings
/// is an error. Like Go's `json.Decoder`, text after the array is ignored.
pub fn parse_json(rest: &str) -> Result<Option<Vec<String>>, LineError> {
    let trimmed = rest.trim_start();
    if !trimmed.starts_with('[') {
        return Ok(None);
    }
    let mut stream = serde_json::Deserializer::from_str(trimmed).into_iter::<serde_json::Value>();
    let Some(Ok(serde_json::Value::Array(items))) = stream.next() else {
        return Ok(None);
    };
    items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(LineError::NotStringArray),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// RUN, CMD, ENTRYPOINT, SHELL: JSON array, else the whole text as one word.
pub(crate) fn parse_maybe_json(rest: &str) -> Result<(Vec<Word>, bool), LineError> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest)? {
        Some(items) => Ok((json_words(items, rest.len()), true)),
        None => Ok((vec![Word::new(rest, 0..rest.len())], false)),
    }
}

/// ADD, COPY, VOLUME: JSON array, else blank-separated words.
pub(crate) fn parse_maybe_json_to_list(rest: &str) -> Result<(Vec<Word>, bool), LineError> {
    match parse_json(rest)? {
        Some(items) => Ok((json_words(items, rest.len()), true)),
        None => Ok((split_blanks(rest), false)),
    }
}

/// JSON elements have no exact positions; each spans the whole array text.
fn json_words(items: Vec<String>, len: usize) -> Vec<Word> {
    items.into_iter().map(|s| Word::new(s, 0..len)).collect()
}

/// HEALTHCHECK: the type word (`CMD`, `NONE`, …), then the rest as for CMD.
pub(crate) fn parse_health(rest: &str) -> Result<(Vec<Word>, bool), LineError> {
    let sep = rest
        .find(|c: char| c.is_ascii_whitespace() || c == '\x0b')
        .unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let after = &rest[sep..];
    let next = sep + (after.len() - after.trim_start().len());
    let (cmd, json) = parse_maybe_json(&rest[next..])?;
    let mut words = vec![Word::new(&rest[..sep], 0..sep)];
    words.extend(
        cmd.into_iter()
            .map(|w| Word::new(w.value, w.range.start + next..w.range.end + next)),
    );
    Ok((words, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(ws: &[Word]) -> Vec<&str> {
        ws.iter().map(|w| w.value.as_str()).collect()
    }

    macro_rules! splits {
        ($($name:ident: $line:expr => $kw:expr, [$($f:expr),*], $args:expr;)*) => {$(
            #[test]
            fn $name() {
                let c = split_command($line);
                assert_eq!(c.keyword.value, $kw);
                assert_eq!(values(&c.flags), vec![$($f),*] as Vec<&str>);
                assert_eq!(c.args, $args);
                assert_eq!(&$line[c.args_at..c.args_at + c.args.len()], $args);
            }
        )*};
    }

    splits! {
        simple: "RUN echo hi" => "RUN", [], "echo hi";
        flags: "COPY --from=a --chown=1:1 x y" => "COPY", ["--from=a", "--chown=1:1"], "x y";
        quoted_flag: "COPY --from=\"my stage\" x y" => "COPY", ["--from=my stage"], "x y";
        double_dash_ends_flags: "COPY -- --foo bar" => "COPY", [], "--foo bar";
        flags_then_dash: "COPY --doit=true -- foo /tmp/" => "COPY", ["--doit=true"], "foo /tmp/";
        only_flags: "CMD --doit" => "CMD", ["--doit"], "";
        no_args: "  HEALTHCHECK  " => "HEALTHCHECK", [], "";
        tabs: "CMD\t[\t\"a\"\t]\t" => "CMD", [], "[\t\"a\"\t]";
        single_dash_is_arg: "RUN -x" => "RUN", [], "-x";
    }

    #[test]
    fn flag_ranges_point_at_flags() {
        let line = "COPY --from=a x y";
        let c = split_command(line);
        assert_eq!(&line[c.flags[0].range.clone()], "--from=a");
        assert_eq!(&line[c.keyword.range.clone()], "COPY");
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(values(&parse_words("foo\\ bar", '\\')), vec!["foo\\ bar"]);
        assert_eq!(
            values(&parse_words("foo bar \"abc xyz\"", '\\')),
            vec!["foo", "bar", "\"abc xyz\""]
        );
        assert_eq!(values(&parse_words("a=\"\" b", '\\')), vec!["a=\"\"", "b"]);
        assert_eq!(values(&parse_words("x\\", '\\')), vec!["x"]);
        assert_eq!(values(&parse_words("föo bàr", '\\')), vec!["föo", "bàr"]);
    }

    #[test]
    fn name_val_forms() {
        let w = parse_name_val("a=b c=\"d e\"", "ENV", '\\').unwrap();
        assert_eq!(values(&w), vec!["a", "b", "=", "c", "\"d e\"", "="]);
        let w = parse_name_val("SCUBA 1 DUBA 3", "ENV", '\\').unwrap();
        assert_eq!(values(&w), vec!["SCUBA", "1 DUBA 3", ""]);
        assert_eq!(
            parse_name_val("PATH", "ENV", '\\'),
            Err(LineError::MissingValue("ENV".into()))
        );
        assert!(matches!(
            parse_name_val("a=b c", "ENV", '\\'),
            Err(LineError::MissingEquals(..))
        ));
    }

    #[test]
    fn json_or_fallback() {
        assert_eq!(
            parse_json("[\"a\", \"b\"]").unwrap(),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(parse_json("[]").unwrap(), Some(vec![]));
        assert_eq!(parse_json("['a']").unwrap(), None);
        assert_eq!(parse_json("[\"a\"").unwrap(), None);
        assert_eq!(parse_json("echo").unwrap(), None);
        assert_eq!(
            parse_json("[\"a\", [\"b\"]]"),
            Err(LineError::NotStringArray)
        );
        assert_eq!(parse_json("[1]"), Err(LineError::NotStringArray));
        // Go's json.Decoder reads one value and ignores what follows.
        assert_eq!(
            parse_json("[\"a\"] trailing").unwrap(),
            Some(vec!["a".into()])
        );
    }

    #[test]
    fn health_splits_type() {
        let (w, json) = parse_health("CMD   a b").unwrap();
        assert_eq!(values(&w), vec!["CMD", "a b"]);
        assert!(!json);
        let (w, json) = parse_health("CMD [\"foo\"]").unwrap();
        assert_eq!(values(&w), vec!["CMD", "foo"]);
        assert!(json);
        assert_eq!(values(&parse_health("CMD").unwrap().0), vec!["CMD"]);
    }
}
