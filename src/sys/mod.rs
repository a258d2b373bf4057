//! The one place `unsafe` is allowed: system calls whose safe wrappers rustix withholds.
//! Each function states why its use is sound.
#![allow(unsafe_code)]

pub(crate) mod signals;
pub(crate) mod userns;

use rustix::thread::UnshareFlags;

/// `unshare(2)` for namespaces only.
///
/// rustix marks `unshare` unsafe because `CLONE_FILES`, `CLONE_FS` and `CLONE_SYSVSEM`
/// change state the rest of the process (other threads, std's assumptions) relies on. This
/// wrapper only passes namespace flags, which change what the calling process sees of the
/// system, not its memory or file table; and rbuild calls it only in single-threaded
/// processes right after they were exec'd: the sandbox helper, and the rootless build's
/// process entering its user namespace (`CLONE_NEWUSER` fails with `EINVAL` in a
/// multi-threaded process anyway, unshare(2)).
pub(crate) fn unshare_namespaces(flags: UnshareFlags) -> std::io::Result<()> {
    let namespaces = UnshareFlags::NEWNS
        | UnshareFlags::NEWPID
        | UnshareFlags::NEWUTS
        | UnshareFlags::NEWIPC
        | UnshareFlags::NEWNET
        | UnshareFlags::NEWUSER
        | UnshareFlags::NEWCGROUP;
    assert!(
        namespaces.contains(flags),
        "unshare_namespaces takes namespace flags only"
    );
    // SAFETY: namespace flags only (checked above), called from a single-threaded process.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(Into::into)
}

/// Take ownership of descriptor `fd`, inherited from the parent process, which named it on
/// our command line; it is made close-on-exec so that nothing rbuild starts inherits it.
///
/// `OwnedFd::from_raw_fd` is unsafe because two owners of one descriptor would close it
/// twice. Here the number came from the process that created the descriptor for us, the
/// standard streams are refused, and the descriptor is checked to be open; rbuild calls this
/// once, first thing in `main`, before anything else could have opened (and so own) it.
pub(crate) fn take_inherited_fd(fd: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{BorrowedFd, FromRawFd};
    if fd <= 2 {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    // SAFETY: borrowed only for the fcntl that checks it is open (EBADF otherwise).
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(borrowed)?;
    // SAFETY: open (checked), not a standard stream, and owned by nothing else (see above).
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
    Ok(owned)
}

/// Make every descriptor from `first` up close-on-exec, so that nothing the calling process
/// inherited (from whoever started rbuild) or opened reaches the program it execs: a leaked
/// descriptor of a host directory is how runc's CVE-2024-21626 let a step out.
///
/// The descriptors are listed from `/proc/self/fd`; the caller must be single-threaded
/// (no descriptor opens or closes meanwhile).
pub(crate) fn close_on_exec_from(first: i32) -> std::io::Result<()> {
    use std::os::fd::BorrowedFd;
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first)
        .collect();
    for fd in fds {
        // SAFETY: borrowed only for these two fcntl calls, in a single-threaded process; the
        // listing's own descriptor is closed by now and gives EBADF, which is skipped.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        if let Ok(flags) = rustix::io::fcntl_getfd(borrowed) {
            rustix::io::fcntl_setfd(borrowed, flags | rustix::io::FdFlags::CLOEXEC)?;
        }
    }
    Ok(())
}
