//! Builder escapes, one class per submodule, each tried against rbuild's own mechanism with
//! the real binary: a host sentinel file is planted beside the build's state root and
//! context, and each hostile Dockerfile, repository or archive must leave it unread and
//! unchanged. The classes are those of published builder CVEs:
//! - `fds`: a descriptor of rbuild's reaching a RUN step, `WORKDIR /proc/self/fd/N` (runc
//!   CVE-2024-21626);
//! - `mounts`: cache mount ids and sources that climb out (Buildah CVE-2024-9675, BuildKit
//!   CVE-2024-23651), mount-point stubs whose cleanup reaches the host (BuildKit
//!   CVE-2024-23652), bind sources that are symlinks to `/` (Buildah CVE-2024-1753), stages
//!   racing on one cache (Buildah CVE-2024-11218);
//! - `options`: hostile `--mount` option strings (Buildah CVE-2024-9407);
//! - `sources`: Git `#ref:subdir` and repositories with symlinks out (BuildKit
//!   CVE-2026-33748, Buildah CVE-2026-44517), remote and local archives with escaping
//!   entries;
//! - `config`: every instruction's fields reach the image or the step's key (moby
//!   CVE-2024-24557, cache poisoning by an input left out of the key).
//!
//! Every test runs as whoever runs the suite: as root, and again as nobody in
//! `scripts/test.sh`'s rootless pass, where rbuild builds in a user namespace.

mod config;
mod fds;
mod mounts;
mod options;
mod sources;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{self, describe, require};

/// What the host sentinel file holds; a step that can read it prints this.
const SECRET: &str = "host-sentinel-not-for-images";

/// A busybox build context, a state root and a host sentinel beside them, for root and for
/// an unprivileged user alike (an unprivileged build is rootless); removed when dropped.
pub struct Ctx {
    pub home: PathBuf,
    pub dir: PathBuf,
    pub root: PathBuf,
}

impl Ctx {
    /// A context holding `rootfs/` (Debian's static busybox) and a Dockerfile of
    /// `common::busybox_context::BASE` then `rest`; the sentinel is `<home>/sentinel`
    /// (holding [`SECRET`]), with an empty file and an empty directory beside it (what a
    /// stub cleanup gone astray would remove). `None` after a skip when this user cannot
    /// build.
    pub fn new(name: &str, rest: &str) -> Option<Ctx> {
        if !Path::new("/bin/busybox").exists() {
            panic!("/bin/busybox (Debian's busybox-static) is needed; scripts/test.sh installs it");
        }
        if !rustix::process::geteuid().is_root() && !require::tools(&["newuidmap", "newgidmap"]) {
            return None;
        }
        let home = common::temp_home(&format!("hardening-{name}"));
        let dir = home.join("ctx");
        std::fs::create_dir_all(dir.join("rootfs/bin")).unwrap();
        std::fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
        std::fs::copy("/bin/busybox", dir.join("rootfs/bin/busybox")).unwrap();
        std::fs::write(
            dir.join("rootfs/etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.join("rootfs/etc/group"), "root:x:0:\n").unwrap();
        let ctx = Ctx {
            root: home.join("state"),
            home,
            dir,
        };
        ctx.dockerfile(rest);
        std::fs::write(ctx.home.join("sentinel"), SECRET).unwrap();
        std::fs::write(ctx.home.join("empty-sentinel"), "").unwrap();
        std::fs::create_dir(ctx.home.join("empty-dir")).unwrap();
        Some(ctx)
    }

    /// Replace the Dockerfile with the busybox base stage and `rest`.
    pub fn dockerfile(&self, rest: &str) {
        let base = common::busybox_context::BASE;
        std::fs::write(self.dir.join("Dockerfile"), format!("{base}{rest}")).unwrap();
    }

    /// `rbuild ARGS` in the context, on its state root.
    pub fn rbuild(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run rbuild")
    }

    /// The command [`Ctx::rbuild`] runs, without arguments.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(common::rbuild_bin());
        cmd.current_dir(&self.dir)
            .env("RBUILD_ROOT", &self.root)
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH");
        cmd
    }

    /// `rbuild build --progress=plain ARGS .` and its output.
    pub fn build(&self, args: &[&str]) -> (Vec<String>, Output) {
        let mut all: Vec<String> = vec!["build".into(), "--progress=plain".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        all.push(".".into());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = self.rbuild(&refs);
        (all, out)
    }

    /// A build that must succeed, its root filesystem written to `<home>/<name>`.
    pub fn files(&self, name: &str) -> PathBuf {
        let out = self.home.join(name);
        let _ = std::fs::remove_dir_all(&out);
        let dest = format!("type=local,dest={}", out.display());
        let (args, o) = self.build(&["-o", &dest]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(o.status.success(), "{}", describe(&args, &o));
        out
    }

    /// A build that must fail with `code`; returns its standard error.
    pub fn fails(&self, code: i32) -> String {
        let (args, o) = self.build(&[]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(o.status.code(), Some(code), "{}", describe(&args, &o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// The host side is as [`Ctx::new`] left it: the sentinel unchanged, the empty file and
    /// directory still there, and nothing new beside them but what the tests make
    /// (`ctx`, `state`, outputs named in `outputs`).
    pub fn assert_host_untouched(&self, outputs: &[&str]) {
        assert_eq!(
            std::fs::read_to_string(self.home.join("sentinel")).unwrap(),
            SECRET,
            "the host sentinel was changed"
        );
        assert!(
            self.home.join("empty-sentinel").is_file(),
            "the empty host file was removed"
        );
        let dir = std::fs::read_dir(self.home.join("empty-dir"));
        assert!(
            dir.is_ok_and(|mut d| d.next().is_none()),
            "the empty host directory was removed or written into"
        );
        let mut names: Vec<String> = std::fs::read_dir(&self.home)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !outputs.contains(&n.as_str()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["ctx", "empty-dir", "empty-sentinel", "sentinel", "state"],
            "something was written beside the state root"
        );
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
        if self.home.exists() {
            // A rootless build's files of subordinate ids: removed from its user namespace.
            let _ = self.rbuild(&["prune", "--build-cache", "--grace", "0s"]);
            let _ = std::fs::remove_dir_all(&self.home);
        }
    }
}

/// Whether `text` shows the host sentinel's name or content.
fn shows_sentinel(text: &str) -> bool {
    text.contains(SECRET) || text.contains("empty-sentinel")
}
