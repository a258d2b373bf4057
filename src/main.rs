//! The `rbuild` command: parse the command line, run, render any error once, pick the exit
//! code (0 ok, 1 failed, 2 usage or Dockerfile syntax error).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The sandbox re-executes rbuild as its helper and as PID 1; that must be decided before
    // anything else runs (single-threaded, no argument parsing).
    if let Some(code) = rbuild::sandbox::entry() {
        return code;
    }
    // A rootless build's inner process enters its user namespace before any thread exists
    // (rbuild::sandbox::unshare); every other command line passes through unchanged.
    let args = match rbuild::sandbox::unshare::enter(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(err) => {
            eprint!("{}", cli::render_error(&err.into()));
            return ExitCode::FAILURE;
        }
    };
    // Root's overlays go with the process however it ends (SIGKILL included).
    if let Err(err) = rbuild::sandbox::unshare::own_mount_namespace() {
        eprint!("{}", cli::render_error(&err.into()));
        return ExitCode::FAILURE;
    }
    let args = cli::with_default_subcommand(args);
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return cli::clap_error(e),
    };
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprint!("{}", cli::render_error(&err));
            cli::exit_code_for(&err)
        }
    }
}
