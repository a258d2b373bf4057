//! Heredoc detection (grammar/dockerfile.ebnf, "heredocs"): which words of a RUN/COPY/ADD
//! line open a heredoc, the delimiter's name, whether the body is expanded, `<<-` tab
//! stripping and `3<<EOF` file descriptors — all as BuildKit decides them, by running the
//! shell-word lexer over the line in raw modes.

use std::sync::LazyLock;

use regex::Regex;

use super::ast::Heredoc;
use super::shell::{EmptyEnv, Lexer, ShellError};

/// `^(\d*)<<(-?)\s*([^<]*)$` with Go's RE2 classes (`\d` ASCII, `\s` = `[\t\n\f\r ]`):
/// blanks may separate `<<` from the delimiter.
static HEREDOC_WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)$").expect("heredoc regex"));

/// A word that is only `<<` (or `3<<`): BuildKit's lexer keeps the blanks after `<<` in the
/// same word, so `<<  EOF` is one heredoc; `<<-` does not take blanks.
static BARE_OPENER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[0-9]*<<$").expect("bare heredoc opener regex"));

static LEADING_TABS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^\t+").expect("leading tabs regex"));

/// Parse one word as a heredoc opener: `<<EOF`, `<<-'EOF'`, `3<<"EOF"`, `<<EO"F"`.
/// `Ok(None)` when the word is not a heredoc; an error when its delimiter does not lex
/// (an unbalanced quote).
pub fn parse_word(word: &str) -> Result<Option<Heredoc>, ShellError> {
    let Some(caps) = HEREDOC_WORD.captures(word) else {
        return Ok(None);
    };
    let fd = caps[1].parse::<u32>().unwrap_or(0);
    let chomp = &caps[2] == "-";
    let rest = &caps[3];
    if rest.is_empty() {
        return Ok(None);
    }
    // Lex the delimiter with and without quote removal: if the quote counts differ, some
    // part of it was quoted and the body must be taken literally.
    let mut lex = Lexer::new('\\');
    lex.skip_unset_env = true;
    let words = lex.process_words(rest, &EmptyEnv)?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex.process_words(rest, &EmptyEnv)?;
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    let expand = raw.len() == 1 && quotes(&words[0]) == quotes(&raw[0]);
    Ok(Some(Heredoc {
        name: words[0].clone(),
        fd,
        expand,
        chomp,
        content: String::new(),
    }))
}

/// The heredocs a logical line opens, in order. Words are found with quotes and escapes
/// kept, so `"<<NOHEREDOC"` is not one; a line that does not lex opens none.
pub fn from_line(line: &str) -> Result<Vec<Heredoc>, ShellError> {
    let mut lex = Lexer::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    let Ok(words) = lex.process_words(line, &EmptyEnv) else {
        return Ok(Vec::new());
    };
    let mut docs = Vec::new();
    let mut words = words.into_iter();
    while let Some(mut w) = words.next() {
        if BARE_OPENER.is_match(&w) {
            match words.next() {
                Some(next) => {
                    w.push(' ');
                    w.push_str(&next);
                }
                None => continue,
            }
        }
        if let Some(h) = parse_word(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

/// `<<-`: remove leading tabs from every line of a body.
pub fn chomp(content: &str) -> String {
    LEADING_TABS.replace_all(content, "").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! words {
        ($($name:ident: $word:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let got = parse_word($word).unwrap().map(|h| (h.name, h.expand, h.chomp, h.fd));
                let want: Option<(&str, bool, bool, u32)> = $want;
                assert_eq!(got, want.map(|(n, e, c, f)| (n.to_string(), e, c, f)));
            }
        )*};
    }

    words! {
        plain: "<<EOF" => Some(("EOF", true, false, 0));
        single_quoted: "<<'EOF'" => Some(("EOF", false, false, 0));
        double_quoted: "<<\"EOF\"" => Some(("EOF", false, false, 0));
        chomped: "<<-EOF" => Some(("EOF", true, true, 0));
        partly_quoted: "<<EO\"F\"" => Some(("EOF", false, false, 0));
        fd: "3<<EOF" => Some(("EOF", true, false, 3));
        not_heredoc: "EOF" => None;
        empty_name: "<<" => None;
        here_string: "<<<EOF" => None;
    }

    #[test]
    fn unbalanced_quote_is_an_error() {
        assert!(parse_word("<<'EOF").is_err());
    }

    #[test]
    fn line_finds_all_heredocs_and_skips_quoted() {
        let names: Vec<String> = from_line("COPY <<F1 <<-F2 \"<<NOT\" /dest")
            .unwrap()
            .into_iter()
            .map(|h| h.name)
            .collect();
        assert_eq!(names, vec!["F1", "F2"]);
    }

    #[test]
    fn chomp_strips_leading_tabs_only() {
        assert_eq!(chomp("\t\ta\n b\n\tc\t\n"), "a\n b\nc\t\n");
    }
}
