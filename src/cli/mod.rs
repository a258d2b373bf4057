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
mod render;
mod run;

use std::ffi::OsString;
use std::process::ExitCode;

pub(crate) use args::{Cli, Command};
pub(crate) use render::{exit_code_for, render_error};

/// Run a parsed command line.
pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
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
        Command::Run(args) => run::run_cmd(&root()?, args),
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
pub(crate) fn with_default_subcommand(args: Vec<OsString>) -> Vec<OsString> {
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
