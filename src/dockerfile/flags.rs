//! Instruction flags (`--from=x`, `--link`, repeated `--mount=…`): each instruction declares
//! which flags it takes and of what kind; anything else is an error with a suggestion,
//! never ignored. Semantics and messages follow BuildKit's `BFlags`.

use std::collections::BTreeMap;

use super::ast::Arg;
use crate::diag::{Span, SpannedError};

/// A flag that is unknown, repeated or badly valued.
pub(crate) type FlagError = SpannedError;
use crate::suggest::did_you_mean;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `--link`, `--link=true|false`.
    Bool,
    /// `--from=x`, at most once.
    String,
    /// `--mount=a --mount=b`: may repeat.
    Strings,
}

/// A flag's parsed value, with the span of the last occurrence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Value {
    pub(crate) values: Vec<String>,
    pub(crate) span: Span,
}

/// The flags of one instruction, validated against its declaration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    found: BTreeMap<&'static str, Value>,
}

impl Flags {
    pub(crate) fn string(&self, name: &str) -> Option<&str> {
        self.found
            .get(name)
            .and_then(|v| v.values.last())
            .map(String::as_str)
    }

    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.found
            .get(name)
            .map(|v| v.values.clone())
            .unwrap_or_default()
    }

    pub(crate) fn bool(&self, name: &str) -> bool {
        self.string(name) == Some("true")
    }

    pub(crate) fn span(&self, name: &str) -> Option<Span> {
        self.found.get(name).map(|v| v.span)
    }

    pub(crate) fn is_set(&self, name: &str) -> bool {
        self.found.contains_key(name)
    }

    /// Names of the flags used, sorted.
    pub fn used(&self) -> Vec<&'static str> {
        self.found.keys().copied().collect()
    }
}

/// Validate `given` against the declaration `allowed` (name, kind).
pub(crate) fn parse(given: &[Arg], allowed: &[(&'static str, Kind)]) -> Result<Flags, FlagError> {
    let mut flags = Flags::default();
    for arg in given {
        let err = |message: String| FlagError {
            message,
            span: arg.span,
            hint: None,
        };
        let Some(body) = arg.value.strip_prefix("--") else {
            return Err(err(format!("arg should start with -- : {}", arg.value)));
        };
        if body.is_empty() {
            break;
        }
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(&(decl, kind)) = allowed.iter().find(|(n, _)| *n == name) else {
            let mut e = err(format!("unknown flag: --{name}"));
            let names = allowed.iter().map(|(n, _)| *n);
            e.hint = match did_you_mean(name, names) {
                Some(s) => Some(format!("did you mean --{s}?")),
                None if allowed.is_empty() => Some("this instruction takes no flags".into()),
                None => Some(format!(
                    "this instruction takes {}",
                    allowed
                        .iter()
                        .map(|(n, _)| format!("--{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            return Err(e);
        };
        if kind != Kind::Strings && flags.found.contains_key(decl) {
            return Err(err(format!("duplicate flag specified: {name}")));
        }
        let parsed = match (kind, value) {
            (Kind::Bool, Some("")) => return Err(err(format!("missing a value on flag: {name}"))),
            (Kind::Bool, None) => "true".to_string(),
            (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                l @ ("true" | "false") => l.to_string(),
                _ => {
                    return Err(err(format!(
                        "expecting boolean value for flag {name}, not: {v}"
                    )));
                }
            },
            (_, None) => return Err(err(format!("missing a value on flag: {name}"))),
            (_, Some(v)) => v.to_string(),
        };
        let entry = flags.found.entry(decl).or_insert(Value {
            values: Vec::new(),
            span: arg.span,
        });
        entry.values.push(parsed);
        entry.span = arg.span;
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COPY: &[(&str, Kind)] = &[
        ("from", Kind::String),
        ("link", Kind::Bool),
        ("exclude", Kind::Strings),
    ];

    fn args(words: &[&str]) -> Vec<Arg> {
        words
            .iter()
            .map(|w| Arg {
                value: w.to_string(),
                span: Span::default(),
            })
            .collect()
    }

    fn run(words: &[&str]) -> Result<Flags, String> {
        parse(&args(words), COPY).map_err(|e| e.message)
    }

    #[test]
    fn values_of_each_kind() {
        let f = run(&["--from=a", "--link", "--exclude=x", "--exclude=y"]).unwrap();
        assert_eq!(f.string("from"), Some("a"));
        assert!(f.bool("link"));
        assert_eq!(f.strings("exclude"), vec!["x", "y"]);
        assert_eq!(f.used(), vec!["exclude", "from", "link"]);
        assert!(!run(&["--link=FALSE"]).unwrap().bool("link"));
    }

    macro_rules! rejects {
        ($($name:ident: [$($w:expr),*] => $msg:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(run(&[$($w),*]).unwrap_err(), $msg);
            }
        )*};
    }

    rejects! {
        unknown: ["--boo"] => "unknown flag: --boo";
        duplicate_string: ["--from=a", "--from=b"] => "duplicate flag specified: from";
        string_without_value: ["--from"] => "missing a value on flag: from";
        bool_with_empty_value: ["--link="] => "missing a value on flag: link";
        bool_with_bad_value: ["--link=yes"] => "expecting boolean value for flag link, not: yes";
    }

    #[test]
    fn unknown_flag_suggests() {
        let e = parse(&args(&["--fromm=x"]), COPY).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean --from?"));
    }
}
