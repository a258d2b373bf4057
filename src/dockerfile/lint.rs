//! Lint rules (BuildKit's `linter` rule set, same names, messages and documentation links)
//! and the collector that applies `# check=skip=…;error=…`. Rules that need only the syntax
//! tree run here; rules that need variable scopes (UndefinedVar, UndefinedArgInFrom,
//! InvalidDefaultArgInFrom) are reported by the planner through the same [`Linter`].

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use super::directive::CheckConfig;
use super::instruction::{Instruction, Kind};
use super::parser::Dockerfile;
use crate::diag::{Diagnostic, Source, Span};

/// Every rule rbuild knows, with a one-line description (`rbuild check` prints them in JSON).
pub(crate) const RULES: &[(&str, &str)] = &[
    ("StageNameCasing", "Stage names should be lowercase"),
    (
        "FromAsCasing",
        "The 'as' keyword should match the case of the 'from' keyword",
    ),
    (
        "NoEmptyContinuation",
        "Empty continuation lines will become errors in a future release",
    ),
    (
        "ConsistentInstructionCasing",
        "All commands within the Dockerfile should use the same casing (either upper or lower)",
    ),
    ("DuplicateStageName", "Stage names should be unique"),
    (
        "ReservedStageName",
        "Reserved words should not be used as stage names",
    ),
    (
        "JSONArgsRecommended",
        "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
    ),
    (
        "MaintainerDeprecated",
        "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
    ),
    ("UndefinedArgInFrom", "FROM command must use declared ARGs"),
    (
        "WorkdirRelativePath",
        "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes",
    ),
    (
        "UndefinedVar",
        "Variables should be defined before their use",
    ),
    (
        "MultipleInstructionsDisallowed",
        "Multiple instructions of the same type should not be used in the same stage",
    ),
    (
        "LegacyKeyValueFormat",
        "Legacy key/value format with whitespace separator should not be used",
    ),
    (
        "RedundantTargetPlatform",
        "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
    ),
    (
        "SecretsUsedInArgOrEnv",
        "Sensitive data should not be used in the ARG or ENV commands",
    ),
    (
        "InvalidDefaultArgInFrom",
        "Default value for global ARG results in an empty or invalid base image name",
    ),
    (
        "FromPlatformFlagConstDisallowed",
        "FROM --platform flag should not use a constant value",
    ),
];

/// The documentation link of a rule: `StageNameCasing` → `…/rule/stage-name-casing/`.
pub(crate) fn rule_url(rule: &str) -> String {
    let mut kebab = String::new();
    let chars: Vec<char> = rule.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
        if c.is_ascii_uppercase() && i > 0 && (prev_lower || (prev_upper && next_lower)) {
            kebab.push('-');
        }
        kebab.push(c.to_ascii_lowercase());
    }
    format!("https://docs.docker.com/go/dockerfile/rule/{kebab}/")
}

/// Collects rule violations, honouring the check directive.
pub(crate) struct Linter<'a> {
    pub(crate) config: CheckConfig,
    source: &'a Source,
    pub(crate) found: Vec<Diagnostic>,
}

impl<'a> Linter<'a> {
    pub(crate) fn new(source: &'a Source, config: CheckConfig) -> Linter<'a> {
        Linter {
            config,
            source,
            found: Vec::new(),
        }
    }

    /// Report a violation of `rule` at `span`.
    pub(crate) fn report(
        &mut self,
        rule: &str,
        message: impl Into<String>,
        span: Span,
        hint: Option<String>,
    ) {
        debug_assert!(RULES.iter().any(|(r, _)| *r == rule), "unknown rule {rule}");
        if self.config.is_skipped(rule) {
            return;
        }
        let mut d = if self.config.error {
            Diagnostic::error(message)
        } else {
            Diagnostic::warning(message)
        };
        d = d
            .at(self.source, span)
            .with_rule(rule, Some(rule_url(rule)));
        if let Some(h) = hint {
            d = d.with_hint(h);
        }
        self.found.push(d);
    }
}

/// `(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)`
static SECRET_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)")
        .expect("secret regex")
});
/// Names with these words are public by intent (`PUBLIC_KEY`).
static PUBLIC_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?:_|^)(?:public)(?:_|$)").expect("public regex"));

const RESERVED_STAGE_NAMES: [&str; 2] = ["context", "scratch"];

/// The rules that need only the syntax tree and the typed instructions.
pub(crate) fn check_syntax(df: &Dockerfile, instrs: &[Instruction], lint: &mut Linter) {
    for w in &df.warnings {
        lint.report(
            "NoEmptyContinuation",
            "Empty continuation line",
            w.span,
            Some("remove the empty line or end the instruction before it".into()),
        );
    }
    instruction_casing(instrs, lint);

    let mut stage_names: BTreeMap<String, Span> = BTreeMap::new();
    let mut counts: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    let mut has_abs_workdir = false;
    let flush = |counts: &mut BTreeMap<&str, Vec<Span>>, lint: &mut Linter| {
        for (kw, spans) in std::mem::take(counts) {
            for span in &spans[..spans.len().saturating_sub(1)] {
                lint.report(
                    "MultipleInstructionsDisallowed",
                    format!("Multiple {kw} instructions should not be used in the same stage because only the last one will be used"),
                    *span,
                    Some(format!("keep only the last {kw}")),
                );
            }
        }
    };
    for i in instrs {
        let n = &i.node;
        match &i.kind {
            Kind::From(f) => {
                flush(&mut counts, lint);
                has_abs_workdir = false;
                if let (Some(name), Some(arg)) = (&f.name, &f.name_arg) {
                    if arg.value != arg.value.to_lowercase() {
                        lint.report(
                            "StageNameCasing",
                            format!("Stage name '{}' should be lowercase", arg.value),
                            arg.span,
                            Some(format!("use `{}`", arg.value.to_lowercase())),
                        );
                    }
                    if let Some(first) = stage_names.get(name) {
                        let (line, _) = lint.source.line_col(first.start);
                        lint.report(
                            "DuplicateStageName",
                            format!(
                                "Duplicate stage name \"{name}\", stage names should be unique"
                            ),
                            arg.span,
                            Some(format!("the name was first used on line {line}")),
                        );
                    } else {
                        stage_names.insert(name.clone(), arg.span);
                    }
                    if RESERVED_STAGE_NAMES.contains(&name.as_str()) {
                        lint.report("ReservedStageName", format!("Stage name should not use the same name as reserved stage \"{name}\""), arg.span, None);
                    }
                }
                if let Some(as_arg) = &f.as_arg {
                    let kw_upper = n.keyword == n.keyword.to_uppercase();
                    let kw_lower = n.keyword == n.keyword.to_lowercase();
                    let as_upper = as_arg.value == as_arg.value.to_uppercase();
                    let as_lower = as_arg.value == as_arg.value.to_lowercase();
                    if (kw_upper && !as_upper) || (kw_lower && !as_lower) {
                        lint.report(
                            "FromAsCasing",
                            format!(
                                "'{}' and '{}' keywords' casing do not match",
                                n.keyword, as_arg.value
                            ),
                            as_arg.span,
                            Some(format!("write `{}`", if kw_upper { "AS" } else { "as" })),
                        );
                    }
                }
                if let Some(p) = &f.platform {
                    let span = i.flags.span("platform").unwrap_or(n.keyword_span);
                    if p == "$TARGETPLATFORM" || p == "${TARGETPLATFORM}" {
                        lint.report("RedundantTargetPlatform", format!("Setting platform to predefined {p} in FROM is redundant as this is the default behavior"), span, Some("remove --platform".into()));
                    } else if !p.contains('$') {
                        lint.report("FromPlatformFlagConstDisallowed", format!("FROM --platform flag should not use constant value \"{p}\""), span, Some("use a build argument such as $BUILDPLATFORM, or pass --platform on the command line".into()));
                    }
                }
            }
            Kind::Cmd(s) | Kind::Entrypoint(s) => {
                let kw = n.keyword.to_uppercase();
                counts
                    .entry(if kw == "CMD" { "CMD" } else { "ENTRYPOINT" })
                    .or_default()
                    .push(n.span);
                if s.prepend_shell && !s.args.is_empty() {
                    lint.report("JSONArgsRecommended", format!("JSON arguments recommended for {kw} to prevent unintended behavior related to OS signals"), n.args_span, Some(format!("write {kw} [\"executable\", \"arg\", ...]")));
                }
            }
            Kind::Healthcheck(_) => counts.entry("HEALTHCHECK").or_default().push(n.span),
            Kind::Maintainer(_) => {
                lint.report(
                    "MaintainerDeprecated",
                    "Maintainer instruction is deprecated in favor of using label",
                    n.span,
                    Some("use LABEL org.opencontainers.image.authors=\"…\"".into()),
                );
            }
            Kind::Env(kvs) | Kind::Label(kvs) => {
                let kw = n.keyword.to_uppercase();
                if kvs.iter().any(|kv| kv.legacy) {
                    lint.report("LegacyKeyValueFormat", format!("\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"), n.span, Some(format!("write `{kw} {}={}`", kvs[0].key.value, quote_if_spaced(&kvs[0].value.value))));
                }
                if kw == "ENV" {
                    for kv in kvs {
                        secret_name(lint, "ENV", &kv.key.value, kv.key.span);
                    }
                }
            }
            Kind::Arg(decls) => {
                for d in decls {
                    secret_name(lint, "ARG", &d.key, d.span);
                }
            }
            Kind::Workdir(a) => {
                let path = a.value.trim_matches(['"', '\'']);
                if path.starts_with('/') || path.starts_with('$') {
                    has_abs_workdir = true;
                } else if !has_abs_workdir {
                    lint.report("WorkdirRelativePath", format!("Relative workdir \"{}\" can have unexpected results if the base image changes", a.value), a.span, Some(format!("use an absolute path, such as /{}", a.value)));
                }
            }
            _ => {}
        }
    }
    flush(&mut counts, lint);
}

fn quote_if_spaced(v: &str) -> String {
    if v.contains(char::is_whitespace) && !v.starts_with('"') {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

fn secret_name(lint: &mut Linter, kw: &str, name: &str, span: Span) {
    if SECRET_NAME.is_match(name) && !PUBLIC_NAME.is_match(name) {
        lint.report(
            "SecretsUsedInArgOrEnv",
            format!("Do not use ARG or ENV instructions for sensitive data ({kw} \"{name}\")"),
            span,
            Some("pass secrets with RUN --mount=type=secret instead".into()),
        );
    }
}

/// ConsistentInstructionCasing: keywords should all be upper or all lower case; the
/// majority decides which, and mixed-case keywords always differ.
fn instruction_casing(instrs: &[Instruction], lint: &mut Linter) {
    let mut nodes = Vec::new();
    for i in instrs {
        nodes.push(&i.node);
        if let Some(child) = &i.node.child {
            nodes.push(child);
        }
    }
    let upper = nodes
        .iter()
        .filter(|n| n.keyword == n.keyword.to_uppercase())
        .count();
    let lower = nodes
        .iter()
        .filter(|n| n.keyword == n.keyword.to_lowercase())
        .count();
    let majority_upper = upper >= lower;
    for n in nodes {
        let ok = if majority_upper {
            n.keyword == n.keyword.to_uppercase()
        } else {
            n.keyword == n.keyword.to_lowercase()
        };
        if !ok {
            let (case, fixed) = if majority_upper {
                ("uppercase", n.keyword.to_uppercase())
            } else {
                ("lowercase", n.keyword.to_lowercase())
            };
            lint.report(
                "ConsistentInstructionCasing",
                format!(
                    "Command '{}' should match the case of the command majority ({case})",
                    n.keyword
                ),
                n.keyword_span,
                Some(format!("write `{fixed}`")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_kebab_case() {
        assert_eq!(
            rule_url("StageNameCasing"),
            "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/"
        );
        assert_eq!(
            rule_url("JSONArgsRecommended"),
            "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
        );
        assert_eq!(
            rule_url("FromAsCasing"),
            "https://docs.docker.com/go/dockerfile/rule/from-as-casing/"
        );
    }

    #[test]
    fn secret_names() {
        for n in ["API_TOKEN", "password", "AWS_SECRET_ACCESS_KEY", "auth"] {
            assert!(SECRET_NAME.is_match(n) && !PUBLIC_NAME.is_match(n), "{n}");
        }
        for n in ["TOKENIZER", "PUBLIC_KEY", "KEYBOARD", "MONKEY"] {
            assert!(!SECRET_NAME.is_match(n) || PUBLIC_NAME.is_match(n), "{n}");
        }
    }
}
