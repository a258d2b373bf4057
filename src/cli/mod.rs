//! Command-line interface: clap definitions and their translation into plain option
//! structs. clap types never leave this module.
//!
//! The docker habit works: `rbuild -t name:tag .` with no subcommand means
//! `rbuild build -t name:tag .` (see [`with_default_subcommand`]).

mod archive;
mod args;
mod build;
mod check;
mod frontend;
mod image;
mod login;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;

pub use args::{Cli, Command};

use rbuild::diag::Diagnostic;

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Only commands that use the store need a state root (check needs no state at all).
    let given = cli.root;
    let root = || -> anyhow::Result<std::path::PathBuf> {
        match &given {
            Some(r) => Ok(r.clone()),
            None => rbuild::store::default_root().ok_or_else(|| {
                anyhow::anyhow!("cannot choose a state directory: HOME is not set; pass --root DIR")
            }),
        }
    };
    match cli.command {
        Command::Build(args) => build::run(*args, &root()?),
        Command::Check(args) => check::run(args),
        Command::Login(args) => login::login_cmd(args),
        Command::Logout(args) => login::logout_cmd(args),
        Command::Pull(args) => image::pull_cmd(&root()?, args),
        Command::Images(args) => image::images_cmd(&root()?, args),
        Command::Push(args) => image::push_cmd(&root()?, args),
        Command::Tag(args) => image::tag_cmd(&root()?, args),
        Command::Rmi(args) => image::rmi_cmd(&root()?, args),
        Command::Inspect(args) => image::inspect_cmd(&root()?, args),
        Command::Save(args) => archive::save_cmd(&root()?, args),
        Command::Load(args) => archive::load_cmd(&root()?, args),
        Command::Prune(args) => image::prune_cmd(&root()?, args),
    }
}

/// Whether stderr gets ANSI colours (a terminal, and `NO_COLOR` unset).
pub fn color_stderr() -> bool {
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
/// failed at a Dockerfile location ([`build::BuildFailed`]).
enum Located<'a> {
    Syntax(&'a Diagnostic),
    Build(&'a Diagnostic),
}

fn located(err: &anyhow::Error) -> Option<Located<'_>> {
    err.chain().find_map(|e| {
        if let Some(d) = e.downcast_ref::<Diagnostic>() {
            Some(Located::Syntax(d))
        } else {
            e.downcast_ref::<build::BuildFailed>()
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

/// Exit code: 2 for Dockerfile syntax errors (diagnostics), 1 for every other failure.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    match located(err) {
        Some(Located::Syntax(_)) => ExitCode::from(2),
        Some(Located::Build(_)) | None => ExitCode::from(1),
    }
}

/// Global options that take a value as the next argument.
const GLOBAL_WITH_VALUE: &[&str] = &["--root"];

/// The subcommand names clap knows (and `help`), for the default-subcommand rewrite.
fn subcommand_names() -> Vec<String> {
    use clap::CommandFactory;
    let mut names: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    names.push("help".into());
    names
}

/// Insert `build` where the subcommand belongs when the first non-global argument is not a
/// subcommand (nor `--help`/`--version`), so that `rbuild -t x .` means `rbuild build -t x .`.
pub fn with_default_subcommand(args: Vec<OsString>) -> Vec<OsString> {
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if GLOBAL_WITH_VALUE.contains(&a.as_ref()) {
            i += 2;
            continue;
        }
        if GLOBAL_WITH_VALUE
            .iter()
            .any(|g| a.starts_with(&format!("{g}=")))
        {
            i += 1;
            continue;
        }
        break;
    }
    let Some(first) = args.get(i).map(|a| a.to_string_lossy().into_owned()) else {
        return args;
    };
    let is_meta = matches!(first.as_str(), "-h" | "--help" | "-V" | "--version");
    if subcommand_names().contains(&first) || is_meta {
        return args;
    }
    let mut out = args;
    out.insert(i, OsString::from("build"));
    out
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
        a_failed_step_renders_as_its_diagnostic: anyhow::Error::new(build::BuildFailed(diagnostic()))
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
        assert_eq!(
            code(build::BuildFailed(diagnostic()).into()),
            ExitCode::from(1)
        );
        assert_eq!(code(step("a", "b")), ExitCode::from(1));
    }

    fn rewrite(args: &[&str]) -> Vec<String> {
        with_default_subcommand(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    macro_rules! rewrites {
        ($($name:ident: [$($in:expr),*] => [$($out:expr),*];)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(rewrite(&[$($in),*]), vec![$($out.to_string()),*] as Vec<String>);
            }
        )*};
    }

    rewrites! {
        docker_habit: ["rbuild", "-t", "a:1", "."] => ["rbuild", "build", "-t", "a:1", "."];
        bare_path: ["rbuild", "."] => ["rbuild", "build", "."];
        explicit_build_untouched: ["rbuild", "build", "."] => ["rbuild", "build", "."];
        check_untouched: ["rbuild", "check", "-f", "x"] => ["rbuild", "check", "-f", "x"];
        after_global_root: ["rbuild", "--root", "/s", "-t", "a", "."] => ["rbuild", "--root", "/s", "build", "-t", "a", "."];
        after_global_root_eq: ["rbuild", "--root=/s", "."] => ["rbuild", "--root=/s", "build", "."];
        help_untouched: ["rbuild", "--help"] => ["rbuild", "--help"];
        version_untouched: ["rbuild", "-V"] => ["rbuild", "-V"];
        nothing: ["rbuild"] => ["rbuild"];
        every_subcommand_untouched: ["rbuild", "prune", "--grace", "0s"] => ["rbuild", "prune", "--grace", "0s"];
    }

    #[test]
    fn clap_accepts_the_rewritten_docker_habit() {
        use clap::Parser;
        let cli = Cli::try_parse_from(rewrite(&["rbuild", "-t", "a:1", "-f", "D", "ctx"])).unwrap();
        match cli.command {
            Command::Build(b) => {
                assert_eq!(b.tags, vec!["a:1"]);
                assert_eq!(b.frontend.file.as_deref(), Some(std::path::Path::new("D")));
                assert_eq!(b.context, std::path::PathBuf::from("ctx"));
            }
            other => panic!("expected build, got {other:?}"),
        }
    }
}
