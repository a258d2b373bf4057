//! Command-line interface: clap definitions and their translation into plain option
//! structs. clap types never leave this module.
//!
//! The docker habit works: `rbuild -t name:tag .` with no subcommand means
//! `rbuild build -t name:tag .` (see [`with_default_subcommand`]).

mod archive;
mod args;
mod build;
mod check;
mod docker_flags;
mod frontend;
mod fsck;
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
        Command::Df => image::df_cmd(&root()?),
        Command::Fsck(args) => fsck::fsck_cmd(&root()?, args),
        Command::Version => {
            println!(
                "rbuild {} (commit {})",
                env!("CARGO_PKG_VERSION"),
                env!("RBUILD_GIT_COMMIT")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Report a command line clap refused and return its exit code (2, or 0 for `--help`):
/// a docker build flag rbuild lacks gets what to do instead, any other unknown flag the
/// command's help to look at, never clap's tip to pass the flag after `--`.
pub(crate) fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        let _ = e.print();
        return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
    }
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let flag = arg.split_once('=').map_or(arg.as_str(), |(f, _)| f);
    match docker_flags::advice(flag) {
        Some(advice) => eprintln!("error: rbuild does not support {flag} yet: {advice}"),
        None => {
            let similar = match e.get(ContextKind::SuggestedArg) {
                Some(ContextValue::String(s)) => format!(" (did you mean {s}?)"),
                _ => String::new(),
            };
            eprintln!(
                "error: unknown flag {flag}{similar}\n\nSee `rbuild help` and `rbuild <COMMAND> --help` for the flags there are."
            );
        }
    }
    ExitCode::from(2)
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
    let names = subcommand_names();
    if names.contains(&first) || is_meta {
        return args;
    }
    // Docker's two-word commands: `image ls`, `builder prune`, `buildx build`, ...
    let second = args.get(i + 1).map(|a| a.to_string_lossy().into_owned());
    if let Some(alias) = docker_alias(&first, second.as_deref()) {
        let mut out = args;
        out.splice(i..i + 2, alias.iter().map(OsString::from));
        return out;
    }
    // A word that is no path here but is close to a command is a typo of the command
    // (`rbuild imgaes`): clap then says which command it may be, instead of the build
    // complaining about a context directory.
    if !first.starts_with('-')
        && !std::path::Path::new(&first).exists()
        && rbuild::suggest::did_you_mean(&first, names.iter().map(String::as_str)).is_some()
    {
        return args;
    }
    let mut out = args;
    out.insert(i, OsString::from("build"));
    out
}

/// The rbuild command for docker's `GROUP VERB` (`image ls` is `images`); `None` for
/// anything else.
fn docker_alias(group: &str, verb: Option<&str>) -> Option<&'static [&'static str]> {
    Some(match (group, verb?) {
        ("image", "ls" | "list") => &["images"],
        ("image", "rm" | "remove") => &["rmi"],
        ("image", "inspect") => &["inspect"],
        ("image", "prune") => &["prune"],
        ("builder" | "buildx", "prune") | ("system", "prune") => &["prune", "--build-cache"],
        ("image", "push") => &["push"],
        ("image", "pull") => &["pull"],
        ("image", "tag") => &["tag"],
        ("image", "save") => &["save"],
        ("image", "load") => &["load"],
        ("image" | "builder" | "buildx", "build") => &["build"],
        ("container", "run") => &["run"],
        ("system", "df") => &["df"],
        _ => return None,
    })
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
        image_ls: ["rbuild", "image", "ls"] => ["rbuild", "images"];
        image_rm: ["rbuild", "--root", "/s", "image", "rm", "a:1"] => ["rbuild", "--root", "/s", "rmi", "a:1"];
        builder_prune: ["rbuild", "builder", "prune", "--grace", "0s"] => ["rbuild", "prune", "--build-cache", "--grace", "0s"];
        image_prune: ["rbuild", "image", "prune"] => ["rbuild", "prune"];
        buildx_build: ["rbuild", "buildx", "build", "-t", "a", "."] => ["rbuild", "build", "-t", "a", "."];
        typo_is_left_to_clap: ["rbuild", "imgaes"] => ["rbuild", "imgaes"];
        a_missing_context_is_still_a_build: ["rbuild", "no-such-dir"] => ["rbuild", "build", "no-such-dir"];
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
