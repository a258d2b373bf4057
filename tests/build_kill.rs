//! A build killed with SIGKILL — rbuild alone, not its process tree, as an OOM kill or a CI
//! runner that kills one PID does — leaves nothing running and nothing mounted, at once,
//! whatever other builds do on the same store; the next build cleans its work directory and
//! builds. A Ctrl-C is `build_engine`'s.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::busybox_context::BusyboxContext;

/// The processes whose command line holds `marker`, by PID.
fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

/// Mounts at or under `root` in this process's mount namespace (the host's).
fn mounts_under(root: &Path) -> Vec<String> {
    let root = root.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|p| p.starts_with(&root)))
        .map(str::to_string)
        .collect()
}

/// Poll `done` every 50 ms for up to `limit`; whether it came true.
fn within(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// A `sleep` long enough to outlive the test, whose argument no other process has.
fn marker() -> String {
    format!("{}", 700_000 + std::process::id() % 100_000)
}

#[test]
fn sigkill_mid_run_leaves_no_process_and_no_mount() {
    let m = marker();
    let Some(ctx) = BusyboxContext::new(
        "kill-alone",
        &format!("FROM base\nRUN echo started && sleep {m}\n"),
    ) else {
        return;
    };
    let (mut build, started, reader) = ctx.build_until_started(&["-t", "killed:1"]);
    assert!(
        within(Duration::from_secs(20), || !processes_with(&m).is_empty()),
        "the step's sleep never ran"
    );
    assert!(started);
    build.child().kill().unwrap();
    build.wait().unwrap();
    drop(reader);
    // At once, without another build: the step's processes die with rbuild, and its
    // overlay is nowhere mounted.
    assert!(
        within(Duration::from_secs(5), || processes_with(&m).is_empty()),
        "the step outlived the build: {:?}",
        processes_with(&m)
    );
    assert_eq!(mounts_under(&ctx.root), Vec::<String>::new());
    // The next build cleans the dead build's work directory and builds.
    ctx.write("Dockerfile", "FROM scratch\nCOPY rootfs/ /\n");
    ctx.build_ok(&["-t", "after:1"]);
    let work: Vec<_> = std::fs::read_dir(ctx.root.join("work"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(work.is_empty(), "work directories left: {work:?}");
}

#[test]
fn sigkill_among_concurrent_builds_spares_the_others() {
    let m = marker();
    let Some(ctx) = BusyboxContext::new(
        "kill-among",
        &format!("FROM base\nRUN echo started && sleep {m}\n"),
    ) else {
        return;
    };
    // Another build on the same store, running while the first is killed.
    ctx.write(
        "other.Dockerfile",
        &format!(
            "{}FROM base\nRUN echo started && sleep 6 && echo other > /other\n",
            crate::common::busybox_context::BASE
        ),
    );
    let (mut other, other_started, other_log) =
        ctx.build_until_started(&["-f", "other.Dockerfile", "-t", "other:1"]);
    let (mut build, started, reader) = ctx.build_until_started(&["-t", "killed:1"]);
    assert!(other_started && started);
    assert!(
        within(Duration::from_secs(20), || !processes_with(&m).is_empty()),
        "the step's sleep never ran"
    );
    build.child().kill().unwrap();
    build.wait().unwrap();
    drop(reader);
    assert!(
        within(Duration::from_secs(5), || processes_with(&m).is_empty()),
        "the step outlived the build"
    );
    assert_eq!(mounts_under(&ctx.root), Vec::<String>::new());
    assert!(
        other.child().try_wait().unwrap().is_none(),
        "the other build was still running"
    );
    // A third build meanwhile does not wait for the other one to finish.
    ctx.write("third.Dockerfile", "FROM scratch\nCOPY rootfs/ /\n");
    let start = Instant::now();
    ctx.build_ok(&["-f", "third.Dockerfile", "-t", "third:1"]);
    let third = start.elapsed();
    let status = other.wait().unwrap();
    let log = other_log.join().unwrap();
    assert!(status.success(), "{log}");
    assert!(
        third < Duration::from_secs(5),
        "the third build waited for the other one ({third:?})"
    );
    assert_eq!(
        ctx.build_files("files", &["-f", "other.Dockerfile"])
            .join("other")
            .metadata()
            .map(|m| m.len())
            .ok(),
        Some(6)
    );
}

/// Where `/` is no mount point (a chroot), its propagation cannot be made private: rbuild
/// goes back to the mount namespace it had and runs, rather than failing every command.
#[test]
fn a_root_rbuild_in_a_chroot_keeps_its_mount_namespace_and_runs() {
    if !crate::common::require::root("chroot and mounting /proc need root")
        || !crate::common::require::tools(&["ldd", "chroot"])
    {
        return;
    }
    let jail = crate::common::temp_home("kill-chroot");
    let bin = crate::common::rbuild_bin();
    std::fs::create_dir_all(jail.join("bin")).unwrap();
    std::fs::create_dir_all(jail.join("proc")).unwrap();
    std::fs::copy(&bin, jail.join("bin/rbuild")).unwrap();
    let ldd = std::process::Command::new("ldd")
        .arg(&bin)
        .output()
        .unwrap();
    for lib in String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
    {
        let to = jail.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(lib, &to).unwrap();
    }
    let proc_ = jail.join("proc");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(&proc_)
        .status()
        .unwrap();
    assert!(mounted.success());
    let out = std::process::Command::new("chroot")
        .arg(&jail)
        .args(["/bin/rbuild", "version"])
        .output()
        .unwrap();
    let _ = std::process::Command::new("umount").arg(&proc_).status();
    let _ = std::fs::remove_dir_all(&jail);
    assert!(
        out.status.success(),
        "{}",
        crate::common::describe(&["version"], &out)
    );
}
