//! Running a command in a prepared root filesystem, isolated: mount, pid, uts and ipc
//! namespaces always, a user namespace when not root, a network namespace with only `lo`
//! for `--network=none`. It knows nothing about images: callers hand it a directory.
//!
//! "Not root" means not root where the caller stands: a rootless build runs as root of its
//! own user namespace ([`unshare`]), so its sandboxes create no second user namespace and
//! map no ids — they inherit the build's mapping — while everything that only root of the
//! initial namespace may do is left out the same way as for a rootless sandbox (a sysfs of
//! our own needs a network namespace we own, device nodes are bound, not made).
//!
//! How: rbuild re-executes itself as a single-threaded helper (no Rust code runs after a
//! fork of the multi-threaded parent). The helper unshares the namespaces and spawns PID 1
//! of the new pid namespace, which builds the container's view of the filesystem
//! (`rootfs`), switches to the step's user and execs the command — as PID 1, as Docker's
//! RUN does. Both helper processes die with their parent (`PR_SET_PDEATHSIG`), so killing
//! the helper kills the whole pid namespace.

pub mod cache_mount;
pub mod cgroup;
pub mod idmap;
mod init;
mod rootfs;
pub mod seccomp;
mod spec;
pub mod ssh;
pub mod unshare;
pub(crate) mod user;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

pub use init::entry;
pub use spec::{Bind, HELPER_ARG, INIT_ARG, Network, Proc, Spec, Ulimit};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("starting the sandbox helper ({exe})")]
    SpawnHelper { exe: String, source: std::io::Error },
    #[error("sending the sandbox spec to the helper")]
    SendSpec { source: std::io::Error },
    #[error("waiting for the sandbox")]
    Wait { source: std::io::Error },
    #[error("preparing mount point {path}")]
    MountPoint {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Limits(#[from] cgroup::CgroupError),
}

/// A running sandbox.
pub struct Running {
    child: Child,
    created: Vec<MountPoint>,
    /// Dropped after the run, removing its cgroup(s).
    cgroup: Option<cgroup::Cgroup>,
}

impl Running {
    /// Kill the sandbox: its helper, and with it (death signal) every process inside.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Wait for the command; removes the mount points the sandbox had to create, and its
    /// cgroup.
    pub fn wait(mut self) -> Result<ExitStatus, SandboxError> {
        let status = self
            .child
            .wait()
            .map_err(|source| SandboxError::Wait { source });
        cleanup(&self.created);
        drop(self.cgroup.take());
        status
    }

    /// The helper's process id (killing it kills the whole sandbox).
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// The run's cgroup directories (empty without limits).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.cgroup
            .as_ref()
            .map(|c| c.dirs().to_vec())
            .unwrap_or_default()
    }

    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    pub fn stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }
}

/// What a sandbox here may have that some containers refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowed {
    /// A `/proc` of its own ([`Proc::Fresh`]): a container that masks parts of its own
    /// `/proc` makes the kernel refuse it.
    pub fresh_proc: bool,
    /// Its own hostname: a seccomp profile may refuse `sethostname` to a process without
    /// CAP_SYS_ADMIN.
    pub hostname: bool,
}

/// Find out [`Allowed`]: a sandbox over the empty directory `scratch` (made, then removed)
/// tries each, and stops. A probe that fails otherwise says everything is allowed: the
/// step that runs next meets the real failure and says it.
pub(crate) fn probe(scratch: &Path) -> Result<Allowed, SandboxError> {
    let err = |source| SandboxError::MountPoint {
        path: scratch.join("proc").display().to_string(),
        source,
    };
    std::fs::create_dir_all(scratch.join("proc")).map_err(err)?;
    let spec = Spec {
        probe: true,
        network: Network::Host,
        ..Spec::new(scratch, vec!["/probe".into()])
    };
    let status = spawn(&spec, Stdio::null(), Stdio::null()).and_then(|r| r.wait());
    let _ = std::fs::remove_dir_all(scratch);
    let refused = match status?.code() {
        Some(c) if (i32::from(spec::PROBED)..i32::from(spec::PROBED) + 4).contains(&c) => {
            c as u8 - spec::PROBED
        }
        _ => 0,
    };
    Ok(Allowed {
        fresh_proc: refused & spec::REFUSED_PROC == 0,
        hostname: refused & spec::REFUSED_HOSTNAME == 0,
    })
}

/// Start `spec` with the running rbuild as the helper; the command's output goes to
/// `stdout`/`stderr` (its stdin is /dev/null).
pub(crate) fn spawn(spec: &Spec, stdout: Stdio, stderr: Stdio) -> Result<Running, SandboxError> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    spawn_with(&exe, spec, stdout, stderr)
}

/// `spawn` with an explicit `rbuild` executable as the helper (for callers that are not
/// rbuild itself, such as tests).
pub fn spawn_with(
    exe: &Path,
    spec: &Spec,
    stdout: Stdio,
    stderr: Stdio,
) -> Result<Running, SandboxError> {
    let name = format!(
        "rbuild-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let limited = cgroup::Cgroup::create(&spec.limits, &name)?;
    let created = prepare_mount_points(spec)?;
    let mut helper = Command::new(exe);
    helper
        .arg(HELPER_ARG)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr);
    // Only the standard streams (and `rbuild run -i`'s input) reach the helper, PID 1 and
    // the step: PID 1 changes into the working directory while it still holds what it
    // inherited, and `/proc/self/fd/N` there is a way out (runc's CVE-2024-21626).
    crate::sys::inherit_only(&mut helper, spec.stdin_fd);
    let mut child = helper.spawn().map_err(|source| {
        cleanup(&created);
        SandboxError::SpawnHelper {
            exe: exe.display().to_string(),
            source,
        }
    })?;
    // Into the cgroup before the helper has read its spec, so before it starts anything.
    if let Some(cg) = &limited
        && let Err(e) = cg.add(child.id())
    {
        let _ = child.kill();
        let _ = child.wait();
        cleanup(&created);
        return Err(e.into());
    }
    // The spec is one line; a second line ("go") follows once ids are mapped.
    let mapping = (!rustix::process::geteuid().is_root())
        .then(idmap::external_mapping)
        .flatten();
    let mut spec = spec.clone();
    spec.external_idmap = mapping.is_some();
    let mut line = serde_json::to_vec(&spec).expect("a spec serialises");
    line.push(b'\n');
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut sent = stdin.write_all(&line).and_then(|_| stdin.flush());
    if sent.is_ok()
        && let Some(m) = &mapping
        && let Err(e) = idmap::apply(child.id(), m)
    {
        sent = Err(std::io::Error::other(format!(
            "mapping subordinate ids: {e}"
        )));
    }
    let sent = sent
        .and_then(|_| stdin.write_all(b"go\n"))
        .and_then(|_| stdin.flush());
    drop(stdin);
    if let Err(source) = sent {
        let _ = child.kill();
        let _ = child.wait();
        cleanup(&created);
        return Err(SandboxError::SendSpec { source });
    }
    Ok(Running {
        child,
        created,
        cgroup: limited,
    })
}

/// Numbers the runs of this process, for cgroup names.
static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Give a file or directory rbuild prepared for a mount (cache, secret, ssh socket) the
/// mount's mode and owner. As root — of the host, or of a rootless build's user namespace
/// ([`unshare`]) — any owner mapped where we are. A non-root caller's files already
/// belong to it, and it is root (0:0) in its sandbox; another owner cannot be set from
/// outside the user namespace, and asking for one is an error rather than a silent
/// root-owned file.
pub fn give(path: &Path, mode: u32, uid: u32, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| {
            if e.raw_os_error() == Some(libc::EINVAL) && crate::sys::userns::in_user_namespace() {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "owner {uid}:{gid} for {}: the id is not mapped in this rootless build's user namespace (ids beyond root come from the user's ranges in /etc/subuid and /etc/subgid)",
                        path.display()
                    ),
                )
            } else {
                e
            }
        })?;
    } else if (uid, gid) != (0, 0) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "owner {uid}:{gid} for {}: a rootless sandbox can only give mounts to root (0:0)",
                path.display()
            ),
        ));
    }
    // After chown, which clears set-id bits.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// A mount point rbuild created: the directory it is in, and its name there.
#[derive(Debug)]
struct MountPoint {
    parent: OwnedFd,
    name: String,
}

/// Mount points the rootfs lacks are created before the run and removed after, so they
/// never end up in the step's layer: `/proc`, `/dev`, `/sys`, bind and tmpfs targets.
///
/// Every path is resolved inside the rootfs (`openat2(RESOLVE_IN_ROOT)`), as PID 1 resolves
/// the mount targets: an image's `/run -> /outside` can never make rbuild, which runs with
/// the host's privileges here, create `/outside/...` on the host.
fn prepare_mount_points(spec: &Spec) -> Result<Vec<MountPoint>, SandboxError> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
    let err = |path: &str, source: std::io::Error| SandboxError::MountPoint {
        path: format!("{}/{path}", spec.rootfs.display()),
        source,
    };
    let root = rustix::fs::open(
        &spec.rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err("", e.into()))?;
    // Walk the target one name at a time, as the kernel resolves it in the root (symlinks
    // followed with the root as `/`, `..` stopping at the root), creating what is missing.
    let want =
        |created: &mut Vec<MountPoint>, target: &str, dir: bool| -> Result<(), SandboxError> {
            let mut walk = crate::rootpath::Walk::new(target);
            while let Some(name) = walk.next_name() {
                let at = walk.real();
                let parent = rustix::fs::openat2(
                    &root,
                    if at.is_empty() { "." } else { at.as_str() },
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                )
                .map_err(|e| err(&at, e.into()))?;
                let path = walk.child(&name);
                match rustix::fs::statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                        let link = rustix::fs::readlinkat(&parent, name.as_str(), Vec::new())
                            .map_err(|e| err(&path, e.into()))?;
                        walk.follow(&link.to_string_lossy())
                            .map_err(|_| err(&path, rustix::io::Errno::LOOP.into()))?;
                    }
                    Ok(_) => walk.push(name),
                    Err(rustix::io::Errno::NOENT) => {
                        if walk.is_last() && !dir {
                            rustix::fs::openat(
                                &parent,
                                name.as_str(),
                                OFlags::WRONLY
                                    | OFlags::CREATE
                                    | OFlags::EXCL
                                    | OFlags::NOFOLLOW
                                    | OFlags::CLOEXEC,
                                Mode::from_raw_mode(0o644),
                            )
                            .map_err(|e| err(&path, e.into()))?;
                        } else {
                            rustix::fs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o755))
                                .map_err(|e| err(&path, e.into()))?;
                        }
                        created.push(MountPoint {
                            parent,
                            name: name.clone(),
                        });
                        walk.push(name);
                    }
                    Err(e) => return Err(err(&path, e.into())),
                }
            }
            Ok(())
        };
    // runc creates `/proc`, `/dev` and `/sys` when the root lacks them and leaves them there
    // (empty, 0755): a RUN in a scratch stage has them in its layer under Docker, so they
    // are kept. Every other mount point made here is removed after the run.
    let mut standard = Vec::new();
    for d in ["proc", "dev", "sys"] {
        want(&mut standard, d, true)?;
    }
    let mut created = Vec::new();
    for b in &spec.binds {
        want(&mut created, &b.target, b.source.is_dir())?;
    }
    for (t, _) in &spec.tmpfs {
        want(&mut created, t, true)?;
    }
    Ok(created)
}

/// Remove created mount points, deepest first, only while they are still empty.
fn cleanup(created: &[MountPoint]) {
    use rustix::fs::{AtFlags, FileType};
    for m in created.iter().rev() {
        let Ok(st) = rustix::fs::statat(&m.parent, m.name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
        else {
            continue;
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let _ = rustix::fs::unlinkat(&m.parent, m.name.as_str(), AtFlags::REMOVEDIR);
            }
            FileType::RegularFile if st.st_size == 0 => {
                let _ = rustix::fs::unlinkat(&m.parent, m.name.as_str(), AtFlags::empty());
            }
            _ => {}
        }
    }
}

/// The sandbox's `/etc/hosts` and `/etc/resolv.conf`, written under `dir` (outside the
/// rootfs: they never enter a layer) and returned as read-only binds, as BuildKit mounts
/// them (a RUN that appends to `/etc/hosts` fails under `docker build` too). There is no
/// `/etc/hostname`: BuildKit gives none, so a RUN that writes one leaves it in the layer.
///
/// `extra_hosts` (`--add-host NAME:IP`) are added to `/etc/hosts`, one line each.
pub fn standard_files(
    dir: &Path,
    hostname: &str,
    network: Network,
    extra_hosts: &[(String, String)],
) -> std::io::Result<Vec<Bind>> {
    std::fs::create_dir_all(dir)?;
    let hosts = dir.join("hosts");
    let mut text = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    );
    for (name, ip) in extra_hosts {
        text.push_str(&format!("{ip}\t{name}\n"));
    }
    std::fs::write(&hosts, text)?;
    let resolv = dir.join("resolv.conf");
    match network {
        // The host's resolvers, as BuildKit does for host networking.
        Network::Host => {
            let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            std::fs::write(&resolv, text)?;
        }
        Network::None => std::fs::write(&resolv, "")?,
    }
    let bind = |source: PathBuf, target: &str| Bind {
        source,
        target: target.to_string(),
        readonly: true,
    };
    Ok(vec![
        bind(hosts, "/etc/hosts"),
        bind(resolv, "/etc/resolv.conf"),
    ])
}
