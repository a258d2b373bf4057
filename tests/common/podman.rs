//! podman as an independent consumer of the images rbuild saves, configured for tests without
//! touching the machine's /etc/containers: its containers.conf and storage.conf live in the
//! test's own directory and are passed through `CONTAINERS_CONF` and
//! `CONTAINERS_STORAGE_CONF`.
//!
//! The settings, and why: runc, since crun 1.8 refuses kernels with hybrid cgroups ("cgroups
//! in hybrid mode not supported, drop all controllers from cgroupv2"); rlimits no higher than
//! ours, since a root without CAP_SYS_RESOURCE cannot raise them and podman's defaults then
//! fail with "error setting rlimit type 7: operation not permitted"; cgroupfs and a file
//! event log, since there may be no systemd; vfs storage, so nothing stays mounted if a test
//! dies; no network unless a test asks for one (`--network slirp4netns` to publish a port).
//!
//! A container outlives the `podman` command that started it (conmon makes a session of its
//! own), so a test that runs one holds a [`PodmanCleanup`], which removes them all.

use std::path::Path;
use std::process::{Command, Output};

use super::registry::run;

/// A `podman` command using the configuration in `home` (written on first use).
pub fn podman_cmd(home: &Path) -> Command {
    let conf = home.join("containers.conf");
    if !conf.exists() {
        let hard = |flag: &str| {
            let out = run(Command::new("bash").args(["-c", &format!("ulimit -H{flag}")]));
            out.trim().parse::<u64>().unwrap_or(1 << 20)
        };
        let nofile = hard("n");
        // podman lowers its own nproc limit to 32768 before starting the runtime.
        let nproc = hard("u").min(32768);
        std::fs::write(
            &conf,
            format!("[containers]\nnetns = \"none\"\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"),
        )
        .unwrap();
        std::fs::write(
            home.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                home.join("podman-run").display(),
                home.join("podman-graph").display()
            ),
        )
        .unwrap();
    }
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", &conf)
        .env("CONTAINERS_STORAGE_CONF", home.join("storage.conf"));
    cmd
}

/// Run `podman args` with the configuration in `home`.
pub fn podman(home: &Path, args: &[&str]) -> Output {
    podman_cmd(home).args(args).output().unwrap()
}

/// Removes every container (with its conmon and slirp4netns) and image from the podman
/// storage in its directory when dropped, also when the test panics. Drop it before the
/// directory is removed: podman reads its configuration from there.
pub struct PodmanCleanup<'a>(pub &'a Path);

impl Drop for PodmanCleanup<'_> {
    fn drop(&mut self) {
        if !self.0.join("containers.conf").exists() {
            return;
        }
        let _ = podman(self.0, &["rm", "--all", "--force", "--time", "0"]);
        let _ = podman(self.0, &["rmi", "--all", "--force"]);
    }
}
