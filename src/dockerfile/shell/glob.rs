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

use super::chars::is_name_char;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// `trims! { name: op(pattern, value) => result; }` where op is one of `shortest_prefix`,
    /// `longest_prefix`, `shortest_suffix`, `longest_suffix`, and result is `Ok(..)` or
    /// `Err(reason)`.
    macro_rules! trims {
        ($($name:ident: $op:ident($pattern:expr, $value:expr) => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let (suffix, greedy) = match stringify!($op) {
                    "shortest_prefix" => (false, false),
                    "longest_prefix" => (false, true),
                    "shortest_suffix" => (true, false),
                    "longest_suffix" => (true, true),
                    other => panic!("unknown operation {other}"),
                };
                let got = if suffix {
                    trim_suffix($pattern, $value, greedy)
                } else {
                    trim_prefix($pattern, $value, greedy)
                };
                let want: Result<&str, &str> = $want;
                assert_eq!(got.as_deref(), want.map_err(|e| e.to_string()).as_deref());
            }
        )*};
    }

    /// `replaces! { name: first|all(pattern, replacement, value) => result; }`.
    macro_rules! replaces {
        ($($name:ident: $mode:ident($pattern:expr, $replacement:expr, $value:expr) => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let all = match stringify!($mode) {
                    "first" => false,
                    "all" => true,
                    other => panic!("unknown mode {other}"),
                };
                let got = replace($value, $pattern, $replacement, all);
                assert_eq!(got.as_deref(), Ok($want));
            }
        )*};
    }

    trims! {
        star_shortest_prefix: shortest_prefix("a*", "abcabc") => Ok("bcabc");
        star_longest_prefix: longest_prefix("a*", "abcabc") => Ok("");
        star_shortest_suffix: shortest_suffix("*c", "abcabc") => Ok("abcab");
        star_longest_suffix: longest_suffix("*c", "abcabc") => Ok("");
        empty_pattern_trims_nothing: longest_suffix("", "abc") => Ok("abc");
        prefix_is_anchored: shortest_prefix("b", "abc") => Ok("abc");
        suffix_is_anchored: shortest_suffix("b", "abc") => Ok("abc");
        question_is_one_character: shortest_prefix("??", "日本語") => Ok("語");
        // Reversal keeps `\*` together, so the literal star still precedes the wildcard.
        escaped_star_in_suffix: shortest_suffix(r"\**", "a***b") => Ok("a**");
        escaped_backslash: shortest_prefix(r"\\", r"\x") => Ok("x");
        escaped_brace_and_slash_are_bare: shortest_prefix(r"\}\/", "}/x") => Ok("x");
        brackets_are_literal: shortest_prefix("[a]", "[a]b") => Ok("b");
        brackets_are_no_class: shortest_prefix("[a]", "ab") => Ok("ab");
        regex_metacharacters_are_literal: shortest_prefix("a.b+(c)|^$", "a.b+(c)|^$!") => Ok("!");
        dot_is_no_wildcard: shortest_prefix("a.b", "axb") => Ok("axb");
        star_stops_at_newline: longest_prefix("*", "a\nb") => Ok("\nb");
        leading_bom_is_skipped: shortest_prefix("\u{feff}a", "ab") => Ok("b");
        invalid_escape: shortest_prefix(r"\.", ".") => Err(r"invalid escape '\.'");
        trailing_escape: shortest_prefix("a\\", "a") => Err(r"invalid escape '\' at end of pattern");
        // Reversed, a trailing backslash escapes what was the character before it.
        trailing_escape_in_suffix: shortest_suffix("x\\", "x") => Err(r"invalid escape '\x'");
    }

    replaces! {
        first_match: first("o", "0", "foo") => "f0o";
        every_match: all("o", "0", "foo") => "f00";
        longest_match: first("o*", "", "foo bar") => "f";
        no_match: all("z", "0", "foo") => "foo";
        empty_pattern_first: first("", "-", "ab") => "-ab";
        // An empty match is replaced between characters, never twice in one place.
        empty_pattern_all: all("", "-", "ab") => "-a-b-";
        empty_after_match_skipped: all("*", "x", "ab\ncd") => "x\nx";
        every_character: all("?", "<$0>", "한국") => "<한><국>";
        template_whole_match: all("o", "[$0${0}]", "fo") => "f[oo]";
        template_dollar_dollar: all("o", "$$", "fo") => "f$";
        template_other_groups_empty: all("o", "[$1$00$x$é${y}]", "fo") => "f[]";
        template_malformed_is_literal: all("o", "[${0 $]", "fo") => "f[${0 $]";
        first_is_not_a_template: first("o", "$0$$", "fo") => "f$0$$";
    }

    #[test]
    fn expand_template_reads_longest_name() {
        let mut out = String::new();
        expand_template(&mut out, "$0a|${0}a|$0", "M");
        // `$0a` names group "0a", which does not exist.
        assert_eq!(out, "|Ma|M");
    }
}
