//! Rootless builds, the way `buildah unshare` and rootless podman work: an unprivileged
//! `rbuild build` (or `prune`) runs itself again inside a new user namespace and mount
//! namespace, where it is root. There overlayfs mounts (with `userxattr`), `chown` works for
//! every id mapped in, and the whole build runs unchanged as "root in a user namespace".
//! Files it writes belong to the user on the host (uid 0 inside is the user) or to the
//! user's subordinate ids.
//!
//! Two processes:
//! - the outer one, the user's, spawns `/proc/self/exe __rbuild-userns <fd> <args…>`, maps
//!   ids into the child's new user namespace from outside — root to the user, 1… to the
//!   user's `/etc/subuid` and `/etc/subgid` ranges, through the setuid `newuidmap` and
//!   `newgidmap` ([`super::idmap`], as the sandbox does) — and writes one byte on the pipe
//!   `<fd>`; then it relays SIGINT/SIGTERM/SIGHUP/SIGQUIT and exits with the child's code;
//! - the inner one unshares the namespaces first thing in `main` ([`enter`]; `CLONE_NEWUSER`
//!   needs a single-threaded process, unshare(2)), waits for the byte, maps root alone
//!   itself when the user has no ranges, makes every mount private, and carries on as the
//!   ordinary command.
//!
//! This module never runs a build; it only decides where the build runs.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode};

use rustix::mount::MountPropagationFlags;
use rustix::process::{Pid, Signal};
use rustix::thread::UnshareFlags;

use super::idmap;
use crate::sys::signals::Relay;

/// The hidden first argument of the process inside the user namespace; the next one is the
/// number of the pipe descriptor it waits on.
pub(crate) const USERNS_ARG: &str = "__rbuild-userns";

/// Set by [`enter`]: this process is a rootless build's inner process.
static ENTERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process is the inner process of a rootless build: root of its own user
/// namespace on behalf of the user who started rbuild (not, say, root of a container).
pub(crate) fn is_rootless_build() -> bool {
    ENTERED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The byte the outer process sends once it has mapped the user's ranges.
const MAPPED: u8 = b'm';
/// The byte it sends when the user has no ranges: the inner process maps root alone.
const MAP_SELF: u8 = b's';

#[derive(Debug, thiserror::Error)]
pub enum UnshareError {
    #[error("creating the pipe to the rootless build process")]
    Pipe { source: std::io::Error },
    #[error("blocking signals before starting the rootless build process")]
    BlockSignals { source: std::io::Error },
    #[error("starting /proc/self/exe in a user namespace")]
    Spawn { source: std::io::Error },
    #[error(
        "mapping ids into the rootless build's user namespace: {message} (newuidmap and newgidmap must be setuid root, and the ranges in /etc/subuid and /etc/subgid must be the user's)"
    )]
    MapIds { message: String },
    #[error("waiting for the rootless build process")]
    Wait { source: std::io::Error },
    #[error("{USERNS_ARG} needs the number of an inherited pipe, got {arg:?}")]
    BadPipe { arg: String },
    #[error(
        "creating a user namespace for a rootless build: unshare(CLONE_NEWUSER|CLONE_NEWNS){}",
        unshare_hint(.source)
    )]
    Unshare { source: std::io::Error },
    #[error("unblocking signals in the rootless build process")]
    Signals { source: std::io::Error },
    #[error("waiting for the id mapping of the rootless build")]
    Handshake { source: std::io::Error },
    #[error("the outer rbuild process did not map ids into the user namespace")]
    NotMapped,
    #[error("writing /proc/self/{file}")]
    MapSelf {
        file: &'static str,
        source: std::io::Error,
    },
    #[error("PR_SET_PDEATHSIG")]
    DeathSignal { source: std::io::Error },
    #[error("making every mount private in the build's mount namespace")]
    Private { source: std::io::Error },
}

/// EPERM and ENOSPC are how a host says no to unprivileged user namespaces
/// (user_namespaces(7), unshare(2)).
fn unshare_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::ENOSPC) | Some(libc::EACCES) => {
            " (unprivileged user namespaces are disabled here: see the sysctls user.max_user_namespaces, kernel.unprivileged_userns_clone and kernel.apparmor_restrict_unprivileged_userns; or build as root)"
        }
        _ => "",
    }
}

/// Whether this process has to run itself again in a user namespace to build: it is not
/// root where it stands. Inside rbuild's own namespace (or a container's) it is root, so
/// this never nests.
pub fn needed() -> bool {
    // Root of an unprivileged container (no CAP_SYS_ADMIN) may mount nothing either; in a
    // user namespace of its own it may.
    !rustix::process::geteuid().is_root()
        || rustix::thread::capabilities(None).is_ok_and(|c| {
            !c.effective
                .contains(rustix::thread::CapabilitySet::SYS_ADMIN)
        })
}

/// The outer half: run this command line again in a new user namespace, relay signals,
/// and return the inner process's exit code. Call it before any thread starts (signals are
/// blocked in the calling thread only). Unless `quiet`, a user without subordinate ranges
/// is told that only root is mapped.
pub fn run_in_user_namespace(quiet: bool) -> Result<ExitCode, UnshareError> {
    let mapping = idmap::mapping_for_user();
    if let Err(why) = &mapping
        && !quiet
    {
        let fix = match why {
            idmap::NoRanges::NoRange { user, .. } => format!(
                "give {user} a range: `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`"
            ),
            idmap::NoRanges::NoTool { .. } => {
                "install it: `sudo apt-get install uidmap`".to_string()
            }
        };
        eprintln!(
            "note: rootless build with only root mapped ({why}): files can only be owned by root (0:0), so chown, COPY --chown and USER with other ids fail (\"Invalid argument\"), and base-image files of other owners become root's. To fix it, {fix}; `rbuild --help` says more"
        );
    }
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| UnshareError::Pipe { source: e.into() })?;
    // The child inherits the read end under the same number; the write end stays ours.
    rustix::io::fcntl_setfd(&read, rustix::io::FdFlags::empty())
        .map_err(|e| UnshareError::Pipe { source: e.into() })?;
    let relay = Relay::block().map_err(|source| UnshareError::BlockSignals { source })?;
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| OsString::from("rbuild"));
    let spawned = Command::new("/proc/self/exe")
        .arg0(argv0)
        .arg(USERNS_ARG)
        .arg(read.as_raw_fd().to_string())
        .args(args)
        .spawn();
    drop(read);
    let mut child = spawned.map_err(|source| UnshareError::Spawn { source })?;
    let word = match &mapping {
        Ok(m) => match idmap::apply(child.id(), m) {
            Ok(()) => MAPPED,
            Err(message) => {
                // The child may have failed to create its namespace, and said why itself.
                let _ = child.kill();
                let status = child
                    .wait()
                    .map_err(|source| UnshareError::Wait { source })?;
                return match status.code() {
                    Some(code) => Ok(ExitCode::from(code as u8)),
                    None => Err(UnshareError::MapIds { message }),
                };
            }
        },
        Err(_) => MAP_SELF,
    };
    // A child that has died already cannot read it; its status says why.
    let mut write = std::fs::File::from(write);
    let _ = write.write_all(&[word]);
    drop(write);
    let pid = Pid::from_child(&child);
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|source| UnshareError::Wait { source })?
        {
            return Ok(exit_code(status));
        }
        let got = relay
            .next()
            .map_err(|source| UnshareError::Wait { source })?;
        if got.signal != Signal::CHILD && got.from_process {
            let _ = rustix::process::kill_process(pid, got.signal);
        }
    }
}

/// The child's code, or 128 + the signal that ended it, as shells report it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
        _ => ExitCode::FAILURE,
    }
}

/// The inner half, called first thing in `main` with the process's arguments: when they
/// start with `USERNS_ARG`, enter the user and mount namespaces and return the command
/// line without the marker; any other command line comes back unchanged.
pub fn enter(args: Vec<OsString>) -> Result<Vec<OsString>, UnshareError> {
    if args.get(1).is_none_or(|a| a != USERNS_ARG) {
        return Ok(args);
    }
    let arg = args
        .get(2)
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fd = arg
        .parse::<i32>()
        .map_err(|_| UnshareError::BadPipe { arg: arg.clone() })?;
    let pipe = crate::sys::take_inherited_fd(fd).map_err(|_| UnshareError::BadPipe { arg })?;
    // The outer process blocked the signals it relays, and we inherited its mask; a
    // termination request sent meanwhile takes effect here.
    crate::sys::signals::unblock_relayed().map_err(|source| UnshareError::Signals { source })?;
    let (uid, gid) = (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    let parent = rustix::process::getppid();
    crate::sys::unshare_namespaces(UnshareFlags::NEWUSER | UnshareFlags::NEWNS)
        .map_err(|source| UnshareError::Unshare { source })?;
    let mut word = [0u8; 1];
    let n = std::fs::File::from(pipe)
        .read(&mut word)
        .map_err(|source| UnshareError::Handshake { source })?;
    match (n, word[0]) {
        (1, MAPPED) => {}
        (1, MAP_SELF) => map_root_alone(uid, gid)?,
        _ => return Err(UnshareError::NotMapped),
    }
    // Die with the outer process (whose SIGKILL cannot be relayed); if it is gone already,
    // stop here rather than build for nobody.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| UnshareError::DeathSignal { source: e.into() })?;
    if rustix::process::getppid() != parent {
        return Err(UnshareError::NotMapped);
    }
    // The new mount namespace is a copy of the host's; with shared propagation the build's
    // overlays would appear on the host (mount_namespaces(7)).
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| UnshareError::Private { source: e.into() })?;
    ENTERED.store(true, std::sync::atomic::Ordering::Relaxed);
    crate::sys::userns::entered();
    let mut rest = args;
    rest.drain(1..3);
    Ok(rest)
}

/// Give a root rbuild a mount namespace of its own, first thing in `main` (`CLONE_NEWNS`
/// needs a process whose filesystem state no other thread shares), with every mount
/// private. Its overlays then live and die with it: a build killed with SIGKILL (an OOM
/// kill, a CI runner killing one PID) leaves nothing mounted anywhere, at once, and no
/// later build has to find and unmount what it left. A rootless build has its own
/// namespace already ([`enter`]).
///
/// Where root may not unshare (a container without CAP_SYS_ADMIN, which cannot mount
/// overlays either), or where `/` is no mount point whose propagation can be changed (a
/// chroot), rbuild carries on in the namespace it had, and a killed run's mounts are left
/// to the next run's cleanup (`crate::snapshot::workdir::cleanup_stale`).
pub fn own_mount_namespace() -> Result<(), UnshareError> {
    use rustix::fs::{Mode, OFlags};
    use rustix::thread::LinkNameSpaceType;
    if is_rootless_build() || !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let Ok(before) = rustix::fs::open(
        "/proc/self/ns/mnt",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return Ok(());
    };
    if crate::sys::unshare_namespaces(UnshareFlags::NEWNS).is_err() {
        return Ok(());
    }
    // A copy of the host's namespace keeps its shared propagation: without this, the
    // build's mounts would appear on the host after all (mount_namespaces(7)).
    let private = rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    );
    if private.is_err() {
        // Back to the namespace it had: a copy that shares mounts with the host is worse.
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&before),
            Some(LinkNameSpaceType::Mount),
        )
        .map_err(|e| UnshareError::Private { source: e.into() })?;
    }
    Ok(())
}

/// A single mapping written by the process itself: root inside is the user.
fn map_root_alone(uid: u32, gid: u32) -> Result<(), UnshareError> {
    super::idmap::map_self_alone(uid, gid)
        .map_err(|(file, source)| UnshareError::MapSelf { file, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn other_command_lines_pass_through() {
        for args in [
            vec!["rbuild", "build", "."],
            vec!["rbuild"],
            vec!["rbuild", "__rbuild-sandbox-helper"],
        ] {
            assert_eq!(enter(os(&args)).unwrap(), os(&args));
        }
    }

    #[test]
    fn a_bad_pipe_is_refused_before_anything_is_unshared() {
        for bad in ["x", "1", "-3", "999999"] {
            let e = enter(os(&["rbuild", USERNS_ARG, bad, "build"])).unwrap_err();
            assert!(matches!(e, UnshareError::BadPipe { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn disabled_user_namespaces_get_a_hint() {
        let e = UnshareError::Unshare {
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert!(e.to_string().contains("user.max_user_namespaces"), "{e}");
        let e = UnshareError::Unshare {
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert!(!e.to_string().contains("sysctl"), "{e}");
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        use std::process::ExitStatus;
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), ExitCode::from(3));
        assert_eq!(exit_code(ExitStatus::from_raw(9)), ExitCode::from(137));
    }
}
