//! Parser directives: `# syntax=…`, `# escape=…`, `# check=…` (grammar/dockerfile.ebnf,
//! "directives"). They are only recognised in the leading block of the file: the first line
//! that is not a directive — a comment, a blank line or an instruction — ends the block, and
//! later directive-looking lines are ordinary comments. Each may appear once.

use std::sync::LazyLock;

use regex::Regex;

use crate::diag::Span;

/// `# name = value`, as BuildKit: name is `[a-zA-Z][a-zA-Z0-9]*`, value trimmed.
/// Go's RE2 `\s` is `[\t\n\f\r ]`, spelled out here because Rust's `\s` is Unicode-wide.
static DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*$")
        .expect("directive regex")
});

const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// One directive as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Directive {
    pub(crate) name: String,
    pub(crate) value: String,
    /// 1-based line.
    pub(crate) line: usize,
    pub(crate) span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DirectiveError {
    #[error("only one {0} parser directive can be used")]
    Duplicate(String),
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
}

/// Reads the leading directive block line by line.
#[derive(Debug, Default)]
pub(crate) struct DirectiveParser {
    done: bool,
    pub(crate) found: Vec<Directive>,
}

impl DirectiveParser {
    /// Offer one line (newline trimmed; leading whitespace trimmed for first lines).
    /// Returns the directive if the line is one.
    pub(crate) fn offer(
        &mut self,
        line: &str,
        line_no: usize,
        span: Span,
    ) -> Result<Option<&Directive>, DirectiveError> {
        if self.done {
            return Ok(None);
        }
        let Some(caps) = DIRECTIVE.captures(line) else {
            self.done = true;
            return Ok(None);
        };
        let name = caps[1].to_ascii_lowercase();
        if !KNOWN.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        if self.found.iter().any(|d| d.name == name) {
            return Err(DirectiveError::Duplicate(name));
        }
        let value = caps[2].to_string();
        if name == "escape" && value != "`" && value != "\\" {
            return Err(DirectiveError::InvalidEscape(value));
        }
        self.found.push(Directive {
            name,
            value,
            line: line_no,
            span,
        });
        Ok(self.found.last())
    }
}

/// The `# check=skip=A,B;error=true` directive: which lint rules to skip and whether rule
/// violations fail the check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CheckConfig {
    /// Rule names to skip; `all` skips every rule.
    pub(crate) skip: Vec<String>,
    pub(crate) skip_all: bool,
    pub(crate) error: bool,
    /// Experimental rules enabled by name (`experimental=Rule` or `all`).
    pub(crate) experimental: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CheckConfigError {
    #[error("invalid check directive: `{0}` is not a key=value pair")]
    NotKeyValue(String),
    #[error("invalid check directive: unknown key `{0}`")]
    UnknownKey(String),
    #[error("invalid check directive: `error={0}` is not a boolean")]
    BadBool(String),
}

impl CheckConfig {
    /// Parse the value of a `check` directive (BuildKit `linter.ParseLintOptions`).
    pub(crate) fn parse(value: &str) -> Result<CheckConfig, CheckConfigError> {
        let mut cfg = CheckConfig::default();
        for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(CheckConfigError::NotKeyValue(part.to_string()));
            };
            let list = || {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "skip" => {
                    for rule in list() {
                        if rule.eq_ignore_ascii_case("all") {
                            cfg.skip_all = true;
                        } else {
                            cfg.skip.push(rule);
                        }
                    }
                }
                "error" => {
                    cfg.error = parse_go_bool(v.trim())
                        .ok_or_else(|| CheckConfigError::BadBool(v.trim().to_string()))?;
                }
                "experimental" => cfg.experimental.extend(list()),
                other => return Err(CheckConfigError::UnknownKey(other.to_string())),
            }
        }
        Ok(cfg)
    }

    pub(crate) fn is_skipped(&self, rule: &str) -> bool {
        self.skip_all || self.skip.iter().any(|s| s.eq_ignore_ascii_case(rule))
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer_all(lines: &[&str]) -> Result<Vec<(String, String)>, DirectiveError> {
        let mut p = DirectiveParser::default();
        for (i, l) in lines.iter().enumerate() {
            p.offer(l, i + 1, Span::default())?;
        }
        Ok(p.found.into_iter().map(|d| (d.name, d.value)).collect())
    }

    macro_rules! directives {
        ($($name:ident: [$($l:expr),*] => [$(($k:expr, $v:expr)),*];)*) => {$(
            #[test]
            fn $name() {
                let want: Vec<(String, String)> = vec![$(($k.to_string(), $v.to_string())),*];
                assert_eq!(offer_all(&[$($l),*]).unwrap(), want);
            }
        )*};
    }

    directives! {
        escape_backtick: ["# escape=`"] => [("escape", "`")];
        spaces_everywhere: ["#   escape  =  \\  "] => [("escape", "\\")];
        case_insensitive_name: ["# ESCAPE=\\"] => [("escape", "\\")];
        syntax_then_escape: ["# syntax=docker/dockerfile:1", "# escape=`"] => [("syntax", "docker/dockerfile:1"), ("escape", "`")];
        comment_ends_block: ["# hello", "# escape=`"] => [];
        unknown_key_ends_block: ["# foo=bar", "# escape=`"] => [];
        blank_line_ends_block: ["", "# escape=`"] => [];
        instruction_ends_block: ["FROM x", "# escape=`"] => [];
        check_directive: ["# check=skip=JSONArgsRecommended;error=true"] => [("check", "skip=JSONArgsRecommended;error=true")];
    }

    #[test]
    fn duplicate_is_an_error() {
        assert_eq!(
            offer_all(&["# escape=`", "# escape=\\"]),
            Err(DirectiveError::Duplicate("escape".into()))
        );
    }

    #[test]
    fn bad_escape_is_an_error() {
        assert_eq!(
            offer_all(&["# escape=x"]),
            Err(DirectiveError::InvalidEscape("x".into()))
        );
    }

    #[test]
    fn check_config_parses() {
        let c = CheckConfig::parse("skip=StageNameCasing, FromAsCasing;error=true").unwrap();
        assert_eq!(c.skip, vec!["StageNameCasing", "FromAsCasing"]);
        assert!(c.error);
        assert!(c.is_skipped("fromascasing"));
        assert!(!c.is_skipped("UndefinedVar"));
        assert!(
            CheckConfig::parse("skip=all")
                .unwrap()
                .is_skipped("UndefinedVar")
        );
        assert!(CheckConfig::parse("error=maybe").is_err());
        assert!(CheckConfig::parse("bogus=1").is_err());
    }
}
