//! rbuild inside an unprivileged CI container, as GitLab's and Kubernetes' runners start
//! one: podman (with runc), its default seccomp profile, no added capability, a user that
//! is not root. The container's root filesystem is made here: the rbuild binary with the
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
use crate::common::{rbuild_bin, require, temp_home};

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
    let run = |script: &str| {
        let out = podman_cmd(&home)
            .args([
                "run",
                "--rm",
                "--user",
                "1000:1000",
                "-e",
                "HOME=/tmp",
                "--rootfs",
            ])
            .arg(&rootfs)
            .args(["/bin/sh", "-c", script])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = run("cd /ctx && rbuild build --progress=plain -t app:1 .");
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    // `rbuild run` in the same container: the steps ran as root of the build (id 0), and
    // read the context.
    let (code, out, err) = run("rbuild run app:1");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "built by 0\nfrom the context\n", "{err}");
    // Said once, with what was lost and how to keep it.
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: isolation:"))
        .collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(
        notes[0].contains("a /proc of their own") && notes[0].contains("systempaths=unconfined"),
        "{}",
        notes[0]
    );

    // Full isolation asked for: refused, saying why and what to do.
    let (code, _, stderr) = run("cd /ctx && rbuild build --isolation=oci --no-cache .");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--isolation=oci: this container refuses RUN steps a /proc of their own"),
        "{stderr}"
    );
    // chroot says it in advance: no warning, the same image.
    let (code, _, stderr) = run("cd /ctx && rbuild build --isolation=chroot --progress=plain .");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("warning: isolation"), "{stderr}");
}
