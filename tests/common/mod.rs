//! What the integration tests share: running the real `rbuild` binary with an isolated
//! state root and describing what it did, per-test temporary homes and registries.conf
//! files; and, in submodules, the one way to skip ([`require`]), the one way to start a
//! process that must not outlive its test ([`process`]), and the real peers: a registry,
//! podman, the Python base image, a busybox build context.

pub mod busybox_context;
pub mod busybox_image;
pub mod podman;
pub mod process;
pub mod python;
pub mod registry;
pub mod require;
pub mod servers;

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of the built `rbuild` binary; `RBUILD_TEST_BINARY` names another one (an older
/// build, to show that a test fails there).
pub fn rbuild_bin() -> PathBuf {
    std::env::var_os("RBUILD_TEST_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rbuild")))
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

/// Run `rbuild` as a user whose home is `home`: its own state root, registries.conf `conf`,
/// and no credentials from the machine.
pub fn rbuild_in(home: &std::path::Path, conf: &std::path::Path, args: &[&str]) -> Output {
    rbuild_cmd(home, conf)
        .args(args)
        .output()
        .expect("run rbuild")
}

/// The command [`rbuild_in`] runs, without arguments, for callers that also set a working
/// directory or stream its output.
pub fn rbuild_cmd(home: &std::path::Path, conf: &std::path::Path) -> Command {
    let mut cmd = Command::new(rbuild_bin());
    cmd.env("RBUILD_ROOT", home.join("root"))
        .env("HOME", home)
        .env("CONTAINERS_REGISTRIES_CONF", conf)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env("NO_COLOR", "1");
    cmd
}

/// A registries.conf making `mirror` an insecure mirror of docker.io (the lab's shape), and
/// every registry in `insecure` reachable over plain HTTP. Written into `home`.
pub fn mirror_conf(home: &std::path::Path, mirror: &str, insecure: &[&str]) -> PathBuf {
    let mut text = format!(
        "unqualified-search-registries = [\"docker.io\"]\n\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"{mirror}\"\ninsecure = true\n"
    );
    for r in insecure {
        text.push_str(&format!(
            "\n[[registry]]\nprefix = \"{r}\"\nlocation = \"{r}\"\ninsecure = true\n"
        ));
    }
    let path = home.join("registries.conf");
    std::fs::write(&path, text).unwrap();
    path
}

/// A fresh temporary directory for one test.
pub fn temp_home(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rbuild-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
