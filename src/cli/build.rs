//! `rbuild build`: today the front end only — the Dockerfile is read, parsed, typed,
//! planned and linted exactly as a build would, then rbuild says plainly that executing
//! builds is not available yet. Nothing is written to the state directory.

use std::process::ExitCode;

use anyhow::{Context, bail};

use super::args::BuildArgs;
use super::{color_stderr, frontend};

pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    if !args.context.is_dir() {
        bail!(
            "build context {} is not a directory",
            args.context.display()
        );
    }
    // Bad tags fail before any work, as docker build's do.
    for tag in &args.tags {
        super::image::local_name(tag).with_context(|| format!("-t {tag}"))?;
    }
    let (source, opts) = frontend::load(&args.frontend, &args.context)?;
    let plan = rbuild::plan::plan(&source, &opts)?;
    for d in &plan.lints {
        eprintln!("{}", d.render(color_stderr()));
    }
    if let Some(w) = frontend::unused_build_args_warning(&plan) {
        eprintln!("{w}");
    }
    let stages = plan.needed_stages().len();
    bail!(
        "{}: valid ({stages} stage(s) to build), but executing builds is not implemented in this version of rbuild yet; `rbuild check` validates Dockerfiles",
        source.name
    )
}
