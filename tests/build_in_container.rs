//! rbuild inside an unprivileged CI container, as GitLab's and Kubernetes' runners start
//! one: podman (with runc), its default seccomp profile, no added capability, as a user
//! that is not root and as the container's root (without CAP_SYS_ADMIN); then the same in
//! a rootless podman container (podman run by nobody), where rbuild's user namespace nests
//! in podman's. The container's root filesystem is made here: the rbuild binary with the
//! libraries it links, Debian's static busybox, a passwd with the user, and a build context
//! whose Dockerfile makes a busybox image `FROM scratch` and runs steps on it.
//!
//! Such a container lets rbuild make its user namespace and mount overlays or copies, but
//! refuses a fresh `/proc` (it masks parts of its own) and, by seccomp, `sethostname`: the
//! build falls back to the container's `/proc` and hostname and says so once; with
//! `--isolation=oci` it fails saying what the container refuses and how to allow it.

use std::path::Path;
use std::process::Command;

use crate::common::podman::{PodmanCleanup, podman_cmd};
use crate::common::require::{self, Need};
use crate::common::{rbuild_bin, temp_home};

const DOCKERFILE: &str = "FROM scratch AS base\nCOPY rootfs/ /\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\nFROM base\nRUN echo built by $(id -u) > /built.txt && ls /proc/1 >/dev/null && mkdir -p /data\nCOPY app.txt /data/\nRUN cat /data/app.txt >> /built.txt\nCMD [\"cat\", \"/built.txt\"]\n";

/// A root filesystem for the container: rbuild (with the shared libraries `ldd` names),
/// busybox with its applets, `/etc/passwd` with user 1000, and `/ctx`, a build context.
fn container_rootfs(dir: &Path) {
    for d in [
        "bin",
        "etc",
        "tmp",
        "proc",
        "sys",
        "dev",
        "var/lib",
        "ctx/rootfs/bin",
        "ctx/rootfs/etc",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::os::unix::fs::symlink("bin", dir.join("sbin")).unwrap();
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    };
    copy(&rbuild_bin(), &dir.join("bin/rbuild"));
    let ldd = Command::new("ldd").arg(rbuild_bin()).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux… (0x…)`.
        let path = line
            .split("=>")
            .last()
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap_or("");
        if path.starts_with('/') {
            let real = std::fs::canonicalize(path).unwrap();
            copy(&real, &dir.join(path.trim_start_matches('/')));
        }
    }
    copy(Path::new("/bin/busybox"), &dir.join("bin/busybox"));
    for applet in ["sh", "cat", "id", "ls", "mkdir", "echo"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nci:x:1000:1000:ci:/tmp:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nci:x:1000:\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    // The build context, owned by the container's user.
    copy(
        Path::new("/bin/busybox"),
        &dir.join("ctx/rootfs/bin/busybox"),
    );
    std::fs::write(
        dir.join("ctx/rootfs/etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(dir.join("ctx/Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(dir.join("ctx/app.txt"), "from the context\n").unwrap();
    let chown = Command::new("chown")
        .args(["-R", "1000:1000"])
        .arg(dir.join("ctx"))
        .status()
        .unwrap();
    assert!(chown.success());
}

#[test]
fn a_build_in_an_unprivileged_podman_container_falls_back_and_says_so() {
    if !require::root("podman runs the container as root of this machine")
        || !require::tools(&["podman", "runc", "ldd"])
    {
        return;
    }
    let home = temp_home("in-container");
    let _cleanup = PodmanCleanup(&home);
    let rootfs = home.join("rootfs");
    container_rootfs(&rootfs);
    // As user 1000 (rbuild makes a user namespace, only root mapped), and as the
    // container's root without CAP_SYS_ADMIN (rbuild makes one mapping every id to itself).
    for user in ["1000:1000", "0:0"] {
        check_user(&|| podman_cmd(&home), &rootfs, user);
    }
    // The same in a rootless podman container (podman run by nobody, with its subordinate
    // range): rbuild's user namespace nests in podman's.
    if !rootless_podman_ready() {
        return;
    }
    let nobody_home = home.join("nobody");
    std::fs::create_dir_all(nobody_home.join("run")).unwrap();
    std::fs::write(
        nobody_home.join("containers.conf"),
        std::fs::read_to_string(home.join("containers.conf")).unwrap(),
    )
    .unwrap();
    std::fs::write(
        nobody_home.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/run/storage\"\ngraphroot = \"{0}/graph\"\n",
            nobody_home.display()
        ),
    )
    .unwrap();
    // Its root is nobody here: it needs to write /var/lib, and the first user's state goes.
    let status = Command::new("chown")
        .args(["-R", "nobody"])
        .arg(&nobody_home)
        .arg(rootfs.join("var/lib"))
        .status()
        .unwrap();
    assert!(status.success());
    // podman wants its runtime directory private.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        nobody_home.join("run"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(rootfs.join("tmp/.local"));
    let podman_as_nobody = || {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"])
            .arg(format!("HOME={}", nobody_home.display()))
            .arg(format!(
                "XDG_RUNTIME_DIR={}",
                nobody_home.join("run").display()
            ))
            .arg(format!(
                "CONTAINERS_CONF={}",
                nobody_home.join("containers.conf").display()
            ))
            .arg(format!(
                "CONTAINERS_STORAGE_CONF={}",
                nobody_home.join("storage.conf").display()
            ))
            .arg("podman");
        cmd
    };
    let cleanup = || {
        let _ = podman_as_nobody()
            .args(["rm", "--all", "--force", "--time", "0"])
            .output();
    };
    for user in ["1000:1000", "0:0"] {
        check_user(&podman_as_nobody, &rootfs, user);
    }
    cleanup();
}

/// Whether podman can be run by nobody: setpriv, and a subordinate range for nobody (the
/// test script gives it one); a skip (with what is missing) otherwise.
fn rootless_podman_ready() -> bool {
    let range = ["/etc/subuid", "/etc/subgid"].iter().all(|f| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("nobody:"))
    });
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if range && setpriv {
        return true;
    }
    require::skip(
        Need::Install,
        "rootless podman needs setpriv and a range for nobody in /etc/subuid and /etc/subgid (scripts/test.sh adds it)",
    );
    false
}

fn check_user(podman: &dyn Fn() -> Command, rootfs: &Path, user: &str) {
    // One container for every command (a rootless podman takes seconds to start one): each
    // command's output (both streams) after a line `==NAME`, its status on a line `==rc N`.
    let script = "cd /ctx
echo ==build; rbuild build --no-cache --progress=plain -t app:1 . 2>&1; echo \"==rc $?\"
echo ==run; rbuild run app:1 2>&1; echo \"==rc $?\"
echo ==oci; rbuild build --isolation=oci --no-cache . 2>&1; echo \"==rc $?\"
echo ==chroot; rbuild build --isolation=chroot --progress=plain . 2>&1; echo \"==rc $?\"";
    let out = podman()
        .args(["run", "--rm", "--user", user, "-e", "HOME=/tmp", "--rootfs"])
        .arg(rootfs)
        .args(["/bin/sh", "-c", script])
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{user}: {all}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let part = |name: &str| -> (i32, String) {
        let text = all
            .split(&format!("=={name}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("{user}: no {name} in {all}"));
        let (body, rest) = text.split_once("==rc ").unwrap();
        let code = rest.lines().next().unwrap().trim().parse().unwrap();
        (code, body.to_string())
    };
    let (code, build) = part("build");
    assert_eq!(code, 0, "{user}: {build}");
    // `rbuild run` in the same container: the steps ran as root of the build (id 0), and
    // read the context.
    let (code, run) = part("run");
    assert_eq!(code, 0, "{user}: {run}");
    let printed: Vec<&str> = run.lines().filter(|l| !l.starts_with("warning:")).collect();
    assert_eq!(printed, ["built by 0", "from the context"], "{user}: {run}");
    // Said once, with what was lost and how to keep it.
    let notes: Vec<&str> = build
        .lines()
        .filter(|l| l.starts_with("warning: isolation:"))
        .collect();
    assert_eq!(notes.len(), 1, "{user}: {build}");
    assert!(
        notes[0].contains("a /proc of their own") && notes[0].contains("systempaths=unconfined"),
        "{}",
        notes[0]
    );
    // Full isolation asked for: refused, saying why and what to do.
    let (code, oci) = part("oci");
    assert_eq!(code, 1, "{user}: {oci}");
    assert!(
        oci.contains("--isolation=oci: this container refuses RUN steps a /proc of their own"),
        "{user}: {oci}"
    );
    // chroot says it in advance: no warning.
    let (code, chroot) = part("chroot");
    assert_eq!(code, 0, "{user}: {chroot}");
    assert!(!chroot.contains("warning: isolation"), "{user}: {chroot}");
}
