//! The build tests' fixture: a temporary home holding a build context whose `rootfs/` is
//! Debian's static busybox (with an `app` user), a Dockerfile that opens with a `base`
//! stage made from it `FROM scratch`, and a state root; and the ways those tests run
//! `rbuild` in it. No registry and no network: the base image is built by the test itself.
//! It knows nothing about what a test checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::process::Process;
use super::{describe, rbuild_bin, require, temp_home};

/// The stage every Dockerfile of these tests starts with: busybox and its applets.
pub const BASE: &str = "FROM scratch AS base\nCOPY rootfs/ /\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// A context whose `rootfs/` holds busybox, and a Dockerfile of [`BASE`] followed by the
/// test's own stages; removed when dropped.
pub struct BusyboxContext {
    pub home: PathBuf,
    pub dir: PathBuf,
    pub root: PathBuf,
}

impl BusyboxContext {
    /// `None` after a skip when not root (builds mount overlays).
    pub fn new(name: &str, rest: &str) -> Option<BusyboxContext> {
        if !require::root("builds mount overlays") {
            return None;
        }
        if !Path::new("/bin/busybox").exists() {
            panic!("/bin/busybox (Debian's busybox-static) is needed; .ci/run installs it");
        }
        let home = temp_home(name);
        let dir = home.join("ctx");
        std::fs::create_dir_all(dir.join("rootfs/bin")).unwrap();
        std::fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
        std::fs::copy("/bin/busybox", dir.join("rootfs/bin/busybox")).unwrap();
        std::fs::write(
            dir.join("rootfs/etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.join("rootfs/etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
        std::fs::write(dir.join("Dockerfile"), format!("{BASE}{rest}")).unwrap();
        Some(BusyboxContext {
            root: home.join("state"),
            home,
            dir,
        })
    }

    /// A build with `args` (before the context) that must fail as a build (exit 1);
    /// returns its standard error.
    pub fn build_fails(&self, args: &[&str]) -> String {
        let mut all = vec!["build", "--progress=plain"];
        all.extend(args);
        all.push(".");
        let out = self.rbuild(&all);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&all, &out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Build with `args` into `<home>/<name>` as files (`-o type=local`); returns that
    /// directory.
    pub fn build_files(&self, name: &str, args: &[&str]) -> PathBuf {
        let out = self.home.join(name);
        let dest = format!("type=local,dest={}", out.display());
        let mut all = args.to_vec();
        all.extend(["-o", dest.as_str()]);
        self.build_ok(&all);
        out
    }

    /// Write `text` to `rel` in the context.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// `rbuild ARGS` in the context, on its state root, without `SOURCE_DATE_EPOCH`.
    pub fn rbuild(&self, args: &[&str]) -> Output {
        self.rbuild_env(args, &[])
    }

    /// [`BusyboxContext::rbuild`] with more environment.
    pub fn rbuild_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(rbuild_bin());
        cmd.args(args)
            .current_dir(&self.dir)
            .env("RBUILD_ROOT", &self.root)
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run rbuild")
    }

    /// `rbuild build --progress=plain ARGS .`, which must succeed; returns its progress.
    pub fn build_ok(&self, args: &[&str]) -> String {
        let mut all = vec!["build", "--progress=plain"];
        all.extend_from_slice(args);
        all.push(".");
        let out = self.rbuild(&all);
        assert!(out.status.success(), "{}", describe(&all, &out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Start `rbuild build ARGS .` in the background and wait (30 s at most) until a step
    /// prints a line ending in ` started`; returns the build, whether that happened, and a
    /// thread that collects the build's whole stderr.
    pub fn build_until_started(&self, args: &[&str]) -> (Process, bool, JoinHandle<String>) {
        let mut build = Process::spawn(
            Command::new(rbuild_bin())
                .args(["build", "--progress=plain"])
                .args(args)
                .arg(".")
                .current_dir(&self.dir)
                .env("RBUILD_ROOT", &self.root)
                .env("NO_COLOR", "1")
                .stderr(Stdio::piped()),
        );
        let stderr = build.child().stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut seen = String::new();
            for line in std::io::BufReader::new(stderr).lines() {
                let line = line.unwrap();
                if line.ends_with(" started") {
                    let _ = tx.send(());
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            seen
        });
        let started = rx.recv_timeout(Duration::from_secs(30)).is_ok();
        (build, started, reader)
    }

    /// `rbuild inspect IMAGE`, parsed.
    pub fn inspect(&self, image: &str) -> serde_json::Value {
        let out = self.rbuild(&["inspect", image]);
        assert!(out.status.success(), "{}", describe(&["inspect"], &out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for BusyboxContext {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
