//! Shared helpers for integration tests: locating `../shared` and running the real binary.
#![allow(dead_code)]

pub mod registry;

use std::path::PathBuf;
use std::process::{Command, Output};

/// `../shared` beside the checkout (or `$RBUILD_SHARED`), if it exists.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("RBUILD_SHARED") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    };
    dir.is_dir().then_some(dir)
}

/// `../shared/conformance/<sub>`, or `None` after saying loudly that the test is skipped.
/// With `RBUILD_REQUIRE_CONFORMANCE=1` (CI sets it) a missing directory fails the test.
pub fn conformance(sub: &str) -> Option<PathBuf> {
    if let Some(dir) = shared_dir().map(|d| d.join("conformance").join(sub))
        && dir.exists()
    {
        return Some(dir);
    }
    if std::env::var_os("RBUILD_REQUIRE_CONFORMANCE").is_some_and(|v| v == "1") {
        panic!("../shared/conformance/{sub} not found, and RBUILD_REQUIRE_CONFORMANCE=1");
    }
    eprintln!("SKIPPED: ../shared/conformance not found ({sub})");
    println!("SKIPPED: ../shared/conformance not found ({sub})");
    None
}

/// Path of the built `rbuild` binary.
pub fn rbuild_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rbuild"))
}

/// Run `rbuild` with `args` in `cwd` and an isolated state root; returns the output.
pub fn rbuild(cwd: &std::path::Path, root: &std::path::Path, args: &[&str]) -> Output {
    Command::new(rbuild_bin())
        .args(args)
        .current_dir(cwd)
        .env("RBUILD_ROOT", root)
        .env("NO_COLOR", "1")
        .output()
        .expect("run rbuild")
}

/// Describe a finished command for assertion messages: args, status and both streams.
pub fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "rbuild {}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
