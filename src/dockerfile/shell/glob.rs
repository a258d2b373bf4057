//! Shell glob patterns for `${V#p}`, `${V%p}` and `${V/p/r}`, compiled to `regex` the way
//! BuildKit compiles them to Go regular expressions (`convertShellPatternToRegex`), plus
//! the prefix/suffix trimming and Go-compatible replacement built on them. Pure functions;
//! errors are plain reasons that the caller wraps with the word and offset.
//!
//! Both engines are leftmost-first, both have lazy `*?`, and in both `.` matches any
//! character except `\n`, so `*` and `?` never match a newline, as in BuildKit. There are no
//! bracket expressions: `[` and `]` are literal (BuildKit's converter says so: "without the
//! bracket expressions"). The pattern language is in `grammar/word-expansion.ebnf`.

use regex::Regex;

use super::is_name_char;

/// Compile a shell pattern. `*` is `.*` (or `.*?` unless `greedy`), `?` is `.`; `\*`, `\?`
/// and `\\` are literal; `\}` and `\/` are the bare character (the escape was only needed
/// to get past the `${...}` delimiters); any other escape is an error. The escape is always
/// a backslash here, whatever the Dockerfile escape character is.
fn compile(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, String> {
    // The same Go scanner quirk as for words: a leading byte-order mark is skipped.
    let pattern = pattern.strip_prefix('\u{feff}').unwrap_or(pattern);
    let mut re = String::with_capacity(pattern.len() + 8);
    if anchored {
        re.push('^');
    }
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str(if greedy { ".*" } else { ".*?" }),
            '?' => re.push('.'),
            '\\' if matches!(chars.peek(), Some('}' | '/')) => {}
            '\\' => match chars.next() {
                Some(e @ ('*' | '?' | '\\')) => {
                    re.push_str(&regex::escape(e.encode_utf8(&mut [0; 4])))
                }
                Some(e) => return Err(format!("invalid escape '\\{e}'")),
                None => return Err("invalid escape '\\' at end of pattern".to_owned()),
            },
            c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    Regex::new(&re).map_err(|e| e.to_string())
}

/// `${V#p}` / `${V##p}`: drop the shortest (longest) prefix of `value` matching `pattern`.
pub(super) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let re = compile(pattern, greedy, true)?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_owned(),
        None => value.to_owned(),
    })
}

/// `${V%p}` / `${V%%p}`: drop the shortest (longest) suffix matching `pattern`. A leftmost
/// regex search cannot find the shortest rightmost match, so, like BuildKit, reverse both
/// the value (by characters) and the pattern (keeping `\x` pairs in order) and trim a prefix.
pub(super) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let mut units: Vec<&str> = Vec::new();
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        let mut len = c.len_utf8();
        if c == '\\' {
            len += rest[1..].chars().next().map_or(0, char::len_utf8);
        }
        units.push(&rest[..len]);
        rest = &rest[len..];
    }
    let reversed_pattern: String = units.into_iter().rev().collect();
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reversed_pattern, &reversed_value, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// `${V/p/r}` replaces the first (`all`: every) longest match of `pattern`. The single
/// replacement is literal. For `all`, BuildKit uses Go's `ReplaceAllString`, whose
/// replacement is a template: `$0`/`${0}` is the match, `$$` is `$`, any other `$name` is
/// empty, and an empty match right after a match is skipped. That is reproduced here.
pub(super) fn replace(
    value: &str,
    pattern: &str,
    replacement: &str,
    all: bool,
) -> Result<String, String> {
    let re = compile(pattern, true, false)?;
    if !all {
        return Ok(match re.find(value) {
            Some(m) => format!("{}{replacement}{}", &value[..m.start()], &value[m.end()..]),
            None => value.to_owned(),
        });
    }
    let mut out = String::with_capacity(value.len());
    let (mut last_end, mut search) = (0, 0);
    while search <= value.len() {
        let Some(m) = re.find_at(value, search) else {
            break;
        };
        out.push_str(&value[last_end..m.start()]);
        if m.end() > last_end || m.start() == 0 {
            expand_template(&mut out, replacement, m.as_str());
        }
        last_end = m.end();
        // Always advance by at least one character.
        let width = value[search..].chars().next().map_or(0, char::len_utf8);
        search = if search + width > m.end() {
            search + width
        } else if search + 1 > m.end() {
            search + 1
        } else {
            m.end()
        };
    }
    out.push_str(&value[last_end..]);
    Ok(out)
}

/// Go's `Regexp.Expand` for a regex without groups: only group 0 exists.
fn expand_template(out: &mut String, template: &str, matched: &str) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let (body, braced) = match rest.strip_prefix('{') {
            Some(body) => (body, true),
            None => (rest, false),
        };
        let len = body
            .char_indices()
            .find(|&(_, c)| !is_name_char(c))
            .map_or(body.len(), |(i, _)| i);
        let after = &body[len..];
        let after = if braced {
            after.strip_prefix('}')
        } else {
            Some(after)
        };
        match after {
            Some(after) if len > 0 => {
                // Group numbers may not have leading zeros, so only "0" names the match.
                if &body[..len] == "0" {
                    out.push_str(matched);
                }
                rest = after;
            }
            // Malformed: the `$` is literal.
            _ => out.push('$'),
        }
    }
    out.push_str(rest);
}
