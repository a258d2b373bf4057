//! What a test needs from the machine it runs on, checked in one place, and the one way a
//! test is skipped. Each check returns whether the test can go on (or the path it needs);
//! when it cannot, the test says so loudly, `SKIPPED: <test>: <why>` on stdout and on
//! stderr (libtest shows it with `--nocapture` or `--show-output`, nextest with
//! `--success-output`), and returns without checking anything.
//!
//! A skip must never hide a gap: a test that cannot run its subject fails, unless
//! `RBUILD_ALLOW_SKIP` allows that kind of skip:
//! - `RBUILD_ALLOW_SKIP=user` allows what depends on who runs the tests (root or not) and
//!   the machine's size. `scripts/test.sh` sets it: it runs the suite as root and the
//!   rootless subset again as nobody, so each side covers what the other skips;
//! - `RBUILD_ALLOW_SKIP=1` also allows what is missing from the machine: tools, files from
//!   packages (busybox-static, uidmap, qemu-user-static), subordinate id ranges, images
//!   made from them, and data under `../shared` (the conformance vectors). `bash
//!   scripts/test.sh` installs all of them first, so it never needs this.
//!
//! A skipped test still ends as a pass to the test runner, so each skip is also appended to
//! the file `RBUILD_SKIP_LOG` names, and `scripts/test.sh` reports those apart from the
//! passes.
//!
//! This module only decides and reports: it installs, fetches and makes nothing.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a missing prerequisite is, which decides whether CI may skip the test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The user running the tests: root, or one without privileges. A failure unless
    /// `RBUILD_ALLOW_SKIP` is `user` or `1`.
    User,
    /// The machine's size (cores). A failure unless `RBUILD_ALLOW_SKIP` is `user` or `1`.
    Machine,
    /// Something installed on the machine, or made from what is: a failure unless
    /// `RBUILD_ALLOW_SKIP=1`.
    Install,
    /// Data under `../shared`: a failure unless `RBUILD_ALLOW_SKIP=1`.
    Shared,
}

impl Need {
    /// Whether a missing prerequisite of this kind may be skipped here.
    fn may_skip(self) -> bool {
        let allowed = std::env::var("RBUILD_ALLOW_SKIP").unwrap_or_default();
        match self {
            Need::User | Need::Machine => allowed == "1" || allowed == "user",
            Need::Install | Need::Shared => allowed == "1",
        }
    }
}

/// The name of the running test (libtest and nextest name a test's thread after it), or
/// `this test` on any other thread.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "this test".to_string(),
    }
}

/// Skip the rest of what the caller checks because `why`: report it on both streams, or
/// panic with it when the environment requires what `need` names.
pub fn skip(need: Need, why: impl Display) {
    let test = test_name();
    if !need.may_skip() {
        panic!(
            "{test}: {why} (install it: bash scripts/test.sh does; or allow skipping with RBUILD_ALLOW_SKIP=1)"
        );
    }
    println!("SKIPPED: {test}: {why}");
    eprintln!("SKIPPED: {test}: {why}");
    // For the test script's count: one line per skip, appended whole.
    if let Some(log) = std::env::var_os("RBUILD_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = f.write_all(format!("{test}: {why}\n").as_bytes());
        }
    }
}

/// Whether the tests run as root; skips (never fails) otherwise. `why` says what needs it.
pub fn root(why: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    skip(Need::User, format_args!("needs root: {why}"));
    false
}

/// Whether the tests run as a user other than root; skips (never fails) otherwise. `why`
/// says what needs it.
pub fn unprivileged(why: &str) -> bool {
    if !rustix::process::geteuid().is_root() {
        return true;
    }
    skip(
        Need::User,
        format_args!("needs a user other than root: {why}"),
    );
    false
}

/// Whether the machine has at least `n` cores; skips (never fails) otherwise.
pub fn cores(n: usize, why: &str) -> bool {
    let have = std::thread::available_parallelism().map_or(1, |n| n.get());
    if have >= n {
        return true;
    }
    skip(
        Need::Machine,
        format_args!("needs {n} cores, has {have}: {why}"),
    );
    false
}

/// Whether every tool in `names` is on `PATH`; otherwise a failure, or a skip with
/// `RBUILD_ALLOW_SKIP=1`.
pub fn tools(names: &[&str]) -> bool {
    let missing: Vec<&str> = names.iter().copied().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return true;
    }
    skip(
        Need::Install,
        format_args!("missing tools {missing:?} (install them, as .ci/run does)"),
    );
    false
}

/// Whether `name` is a command the shell finds.
fn on_path(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$1\" >/dev/null", "sh", name])
        .status()
        .is_ok_and(|s| s.success())
}

/// `../shared/<rel>` beside the checkout (or under `$RBUILD_SHARED`), if it exists; else
/// `None` after a skip (allowed by `RBUILD_ALLOW_SKIP=1`), else a failure.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let base = match std::env::var_os("RBUILD_SHARED") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    };
    let path = base.join(rel);
    if path.exists() {
        return Some(path);
    }
    skip(
        Need::Shared,
        format_args!("../shared/{rel} not found ({})", path.display()),
    );
    None
}
