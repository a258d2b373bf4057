//! `rbuild check`: parse, type, plan and lint a Dockerfile without building, like
//! `docker build --check`. Exit 0 when valid (warnings printed), 1 when a rule configured
//! as an error fires (`# check=error=true`), 2 on a syntax error.

use std::io::Write;
use std::process::ExitCode;

use rbuild::diag::Diagnostic;
use serde_json::json;

use super::args::{CheckArgs, Format};
use super::frontend;
use super::render::color_stderr;

pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let (source, opts, _) = frontend::load(&args.frontend, &args.context)?;
    let result = rbuild::plan::plan(&source, &opts);
    let unused = result
        .as_ref()
        .ok()
        .and_then(frontend::unused_build_args_warning);
    let (warnings, error, failed): (Vec<Diagnostic>, Option<Diagnostic>, bool) = match result {
        Ok(plan) => {
            let failed = plan.lint_failed();
            (plan.lints, None, failed)
        }
        Err(d) => (Vec::new(), Some(d), false),
    };
    let code = match (&error, failed) {
        (Some(_), _) => 2,
        (None, true) => 1,
        (None, false) => 0,
    };
    match args.format {
        Format::Json => {
            let out = json!({
                "file": source.name,
                "ok": code == 0,
                "warnings": warnings,
                "error": error,
            });
            let text = serde_json::to_string_pretty(&out)?;
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a panic.
            if let Err(e) = writeln!(stdout, "{text}")
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(e.into());
            }
        }
        Format::Text => {
            let color = color_stderr();
            for d in warnings.iter().chain(error.iter()) {
                eprintln!("{}", d.render(color));
            }
            if let Some(w) = &unused {
                eprintln!("{w}");
            }
            match (&error, warnings.len()) {
                (Some(_), _) => {}
                (None, 0) => eprintln!("Check complete, no warnings found."),
                (None, 1) => eprintln!("Check complete, 1 warning has been found!"),
                (None, n) => eprintln!("Check complete, {n} warnings have been found!"),
            }
        }
    }
    Ok(ExitCode::from(code))
}
