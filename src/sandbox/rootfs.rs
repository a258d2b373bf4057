//! The container's view of the filesystem, built by PID 1 inside the new mount namespace:
//! the root bind-mounted onto itself, `/proc`, a tmpfs `/dev` with the usual nodes bound from
//! the host, `/dev/pts`, `/dev/shm`, a read-only `/sys`, the standard files and binds, runc's
//! masked and read-only paths, then `pivot_root`.
//!
//! Every mount target inside the root is opened with `openat2(RESOLVE_IN_ROOT)` and mounted
//! onto through its `/proc/self/fd` link, so a symlink in the image (`/etc/hosts ->
//! /etc/shadow`) can never redirect a mount onto a host path (runc's "securejoin").

use std::os::fd::{AsRawFd, OwnedFd};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use super::spec::{Proc, Spec};

/// runc's default masked paths: files get /dev/null, directories an empty read-only tmpfs.
const MASKED: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// runc's default read-only paths.
const READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
/// Device nodes bound from the host into the tmpfs `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Open `rel` inside the root, symlinks resolved as if the root were `/`.
    fn open(&self, rel: &str) -> Result<OwnedFd, String> {
        self.open_with(rel, OFlags::PATH | OFlags::CLOEXEC)
    }

    /// [`Root::open`] for a directory to create entries in.
    fn open_dir(&self, rel: &str) -> Result<OwnedFd, String> {
        self.open_with(rel, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC)
    }

    fn open_with(&self, rel: &str, flags: OFlags) -> Result<OwnedFd, String> {
        let rel = rel.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        rustix::fs::openat2(
            &self.fd,
            rel,
            flags,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| format!("opening /{rel} in the root: {e}"))
    }
}

/// A path that names exactly the opened object.
fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn mount(
    source: &str,
    target: &OwnedFd,
    fstype: &str,
    flags: MountFlags,
    data: &str,
    what: &str,
) -> Result<(), String> {
    let data = std::ffi::CString::new(data).map_err(|e| e.to_string())?;
    rustix::mount::mount(
        source,
        fd_path(target).as_str(),
        fstype,
        flags,
        Some(data.as_c_str()),
    )
    .map_err(|e| format!("mounting {what}: {e}"))
}

/// Bind `source` onto `target` in the root (recursively: in a user namespace a mount with
/// locked submounts, such as `/sys`, can only be bound whole). Read-only remounts re-open the
/// target by path, since a descriptor taken before the bind names the covered file.
/// A mount point directly under `/dev` (`/dev/pipes`): `/dev` is the sandbox's own tmpfs,
/// which hides what the image has there, so the point is made in the tmpfs.
fn dev_mount_point(root: &Root, target: &str, dir: bool) -> Result<(), String> {
    let Some(name) = target.strip_prefix("/dev/") else {
        return Ok(());
    };
    if name.is_empty() || name.contains('/') || root.open(target).is_ok() {
        return Ok(());
    }
    let devdir = root.open_dir("/dev")?;
    let made = if dir {
        rustix::fs::mkdirat(&devdir, name, rustix::fs::Mode::from_raw_mode(0o755))
    } else {
        rustix::fs::openat(
            &devdir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o644),
        )
        .map(drop)
    };
    made.map_err(|e| format!("creating {target}: {e}"))
}

fn bind(root: &Root, source: &str, target: &str, readonly: bool) -> Result<(), String> {
    let fd = root.open(target)?;
    rustix::mount::mount_bind_recursive(source, fd_path(&fd).as_str())
        .map_err(|e| format!("binding {target}: {e}"))?;
    drop(fd);
    if readonly {
        let fd = root.open(target)?;
        remount_readonly(&fd_path(&fd)).map_err(|e| format!("making {target} read-only: {e}"))?;
    }
    Ok(())
}

/// Remount a bind mount read-only, keeping the flags it has: in a user namespace the kernel
/// refuses a remount that would clear locked `nosuid`, `nodev`, `noexec` or atime flags.
fn remount_readonly(path: &str) -> rustix::io::Result<()> {
    use rustix::fs::StatVfsMountFlags as V;
    let have = rustix::fs::statvfs(path)?.f_flag;
    let mut flags = MountFlags::BIND | MountFlags::RDONLY;
    for (v, m) in [
        (V::NOSUID, MountFlags::NOSUID),
        (V::NODEV, MountFlags::NODEV),
        (V::NOEXEC, MountFlags::NOEXEC),
        (V::NOATIME, MountFlags::NOATIME),
        (V::NODIRATIME, MountFlags::NODIRATIME),
        (V::RELATIME, MountFlags::RELATIME),
    ] {
        if have.contains(v) {
            flags |= m;
        }
    }
    rustix::mount::mount_remount(path, flags, "")
}

pub(crate) fn setup(spec: &Spec) -> Result<(), String> {
    // Nothing mounted here propagates back to the host.
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| format!("making mounts private: {e}"))?;
    let rootfs = spec.rootfs.to_str().ok_or("the rootfs path is not UTF-8")?;
    rustix::mount::mount_bind_recursive(rootfs, rootfs)
        .map_err(|e| format!("binding the rootfs {rootfs}: {e}"))?;
    let root = Root {
        fd: rustix::fs::open(
            rootfs,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("opening {rootfs}: {e}"))?,
    };
    let nosuid_nodev_noexec = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;

    match spec.proc {
        Proc::Fresh => mount(
            "proc",
            &root.open("/proc")?,
            "proc",
            nosuid_nodev_noexec,
            "",
            "/proc",
        )?,
        Proc::Host => bind(&root, "/proc", "/proc", false)?,
    }
    if spec.probe {
        return Ok(());
    }

    let dev = root.open("/dev")?;
    mount(
        "tmpfs",
        &dev,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::STRICTATIME,
        "mode=755,size=65536k",
        "/dev",
    )?;
    // Re-open by path: a descriptor taken before the mount still names the covered directory.
    drop(dev);
    let devdir = root.open_dir("/dev")?;
    for d in DEVICES {
        rustix::fs::openat(
            &devdir,
            d,
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .map_err(|e| format!("creating /dev/{d}: {e}"))?;
        bind(&root, &format!("/dev/{d}"), &format!("/dev/{d}"), false)?;
    }
    for (dir, mode) in [("pts", 0o755), ("shm", 0o1777)] {
        rustix::fs::mkdirat(&devdir, dir, Mode::from_raw_mode(mode))
            .map_err(|e| format!("creating /dev/{dir}: {e}"))?;
    }
    mount(
        "devpts",
        &root.open("/dev/pts")?,
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
        "/dev/pts",
    )?;
    mount(
        "shm",
        &root.open("/dev/shm")?,
        "tmpfs",
        nosuid_nodev_noexec,
        &format!("mode=1777,size={}", spec.shm_size.unwrap_or(64 << 20)),
        "/dev/shm",
    )?;
    for (name, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        rustix::fs::symlinkat(target, &devdir, name)
            .map_err(|e| format!("creating /dev/{name}: {e}"))?;
    }

    // A fresh read-only sysfs when we may mount one (we own the network namespace, or are
    // root of the initial user namespace); otherwise the host's, bound read-only: rootless,
    // and in a rootless build's user namespace with host networking.
    let sys = root.open("/sys")?;
    if mount(
        "sysfs",
        &sys,
        "sysfs",
        nosuid_nodev_noexec | MountFlags::RDONLY,
        "",
        "/sys",
    )
    .is_err()
    {
        drop(sys);
        bind(&root, "/sys", "/sys", true)?;
    }

    for b in &spec.binds {
        let source = b.source.to_str().ok_or("a bind source is not UTF-8")?;
        dev_mount_point(&root, &b.target, b.source.is_dir())?;
        bind(&root, source, &b.target, b.readonly)?;
    }
    for (target, size) in &spec.tmpfs {
        let data = size.map(|s| format!("size={s}")).unwrap_or_default();
        mount(
            "tmpfs",
            &root.open(target)?,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            &data,
            target,
        )?;
    }

    // A privileged step sees the kernel's files as they are.
    let (masked, readonly): (&[&str], &[&str]) = if spec.privileged {
        (&[], &[])
    } else {
        (&MASKED, &READONLY)
    };
    for path in masked {
        let Ok(fd) = root.open(path) else { continue };
        let is_dir = rustix::fs::fstat(&fd)
            .map(|s| {
                rustix::fs::FileType::from_raw_mode(s.st_mode) == rustix::fs::FileType::Directory
            })
            .unwrap_or(false);
        if is_dir {
            mount("tmpfs", &fd, "tmpfs", MountFlags::RDONLY, "", path)?;
        } else {
            drop(fd);
            bind(&root, "/dev/null", path, true)?;
        }
    }
    for path in readonly {
        let Ok(fd) = root.open(path) else { continue };
        let source = fd_path(&fd);
        bind(&root, &source, path, true)?;
    }

    // pivot_root(".", "."): the old root is stacked under the new one and detached, so no
    // directory for it has to exist in the image.
    rustix::process::chdir(rootfs).map_err(|e| format!("chdir {rootfs}: {e}"))?;
    rustix::process::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| format!("detaching the old root: {e}"))?;
    rustix::process::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(())
}
