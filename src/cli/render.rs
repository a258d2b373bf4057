//! How the command line shows what went wrong: Dockerfile diagnostics in rustc style,
//! other errors with their causes as cargo shows them, and the exit code that goes with
//! each (0 ok, 1 failed, 2 usage or Dockerfile syntax).

use std::io::IsTerminal;
use std::process::ExitCode;

use rbuild::diag::Diagnostic;

/// A build that failed at a Dockerfile location (a RUN's exit code, a COPY source that is
/// not there): shown like a syntax error, but the exit code says the build failed (1).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.message)]
pub(crate) struct BuildFailed(pub Diagnostic);

/// Whether stderr gets ANSI colours (a terminal, and `NO_COLOR` unset).
pub(crate) fn color_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Render an error for stderr: a Dockerfile diagnostic anywhere in the chain in rustc style,
/// anything else as `error: …` and its causes (see [`render_chain`]).
pub fn render_error(err: &anyhow::Error) -> String {
    match located(err) {
        Some(Located::Syntax(d) | Located::Build(d)) => d.render(color_stderr()),
        None => render_chain(err.chain()),
    }
}

/// A diagnostic found in an error chain: a Dockerfile syntax error, or a build step that
/// failed at a Dockerfile location ([`BuildFailed`]).
enum Located<'a> {
    Syntax(&'a Diagnostic),
    Build(&'a Diagnostic),
}

fn located(err: &anyhow::Error) -> Option<Located<'_>> {
    err.chain().find_map(|e| {
        if let Some(d) = e.downcast_ref::<Diagnostic>() {
            Some(Located::Syntax(d))
        } else {
            e.downcast_ref::<BuildFailed>()
                .map(|b| Located::Build(&b.0))
        }
    })
}

/// An error and its causes the way cargo prints them: `error: message`, then for each cause
/// a blank line, `Caused by:` and the cause indented by two spaces (every line of it). Error
/// messages never print their own source, so each cause is said once, in order.
fn render_chain<'a>(
    mut chain: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut out = String::from("error: ");
    if let Some(top) = chain.next() {
        out.push_str(&top.to_string());
    }
    out.push('\n');
    for cause in chain {
        out.push_str("\nCaused by:\n");
        for line in cause.to_string().lines() {
            if !line.is_empty() {
                out.push_str("  ");
                out.push_str(line);
            }
            out.push('\n');
        }
    }
    out
}

/// A command line rbuild cannot take (a flag's value, as clap's own errors): exit 2.
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) anyhow::Error);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Usage {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Mark `err` as a usage error.
pub(crate) fn usage(err: anyhow::Error) -> anyhow::Error {
    Usage(err).into()
}

/// Exit code, one policy for every command: 0 ok; 2 for what is wrong with the command
/// line or the Dockerfile's syntax (as clap's own errors); 1 for every other failure (a
/// build or step that failed, a registry, a file).
pub(crate) fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    if err.downcast_ref::<Usage>().is_some() {
        return ExitCode::from(2);
    }
    match located(err) {
        Some(Located::Syntax(_)) => ExitCode::from(2),
        Some(Located::Build(_)) | None => ExitCode::from(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Step {
        message: &'static str,
        #[source]
        source: Option<std::io::Error>,
    }

    fn io(message: &str) -> std::io::Error {
        std::io::Error::other(message.to_string())
    }

    fn step(message: &'static str, cause: &str) -> anyhow::Error {
        Step {
            message,
            source: Some(io(cause)),
        }
        .into()
    }

    fn diagnostic() -> Diagnostic {
        Diagnostic::error("unknown instruction: RUNN")
    }

    macro_rules! renders {
        ($($name:ident: $err:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(render_error(&$err), $want);
            }
        )*};
    }

    renders! {
        no_cause_is_one_line: anyhow::anyhow!("no such image: a") => "error: no such image: a\n";
        one_cause_under_caused_by: step("writing cache record /x/y.json", "No such file or directory (os error 2)")
            => "error: writing cache record /x/y.json\n\nCaused by:\n  No such file or directory (os error 2)\n";
        each_cause_under_its_own_caused_by: step("GET /v2/", "connection refused").context("pulling a")
            => "error: pulling a\n\nCaused by:\n  GET /v2/\n\nCaused by:\n  connection refused\n";
        causes_are_not_deduplicated: anyhow::Error::new(io("disk full")).context("disk full")
            => "error: disk full\n\nCaused by:\n  disk full\n";
        every_line_of_a_cause_is_indented: anyhow::Error::new(io("line one\n\nline two")).context("top")
            => "error: top\n\nCaused by:\n  line one\n\n  line two\n";
        a_diagnostic_renders_as_itself: anyhow::Error::new(diagnostic()).context("-f Dockerfile")
            => diagnostic().render(false);
        a_failed_step_renders_as_its_diagnostic: anyhow::Error::new(BuildFailed(diagnostic()))
            => diagnostic().render(false);
    }

    #[test]
    fn exit_codes_tell_syntax_from_failure() {
        let code = |e: anyhow::Error| exit_code_for(&e);
        assert_eq!(code(diagnostic().into()), ExitCode::from(2));
        assert_eq!(
            code(anyhow::Error::new(diagnostic()).context("x")),
            ExitCode::from(2)
        );
        assert_eq!(code(BuildFailed(diagnostic()).into()), ExitCode::from(1));
        assert_eq!(
            code(usage(anyhow::anyhow!("invalid --progress"))),
            ExitCode::from(2)
        );
        assert_eq!(code(step("a", "b")), ExitCode::from(1));
    }
}
