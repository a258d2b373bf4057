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
/// processes right after they were exec'd: the sandbox helper, the rootless build's
/// process entering its user namespace (`CLONE_NEWUSER` fails with `EINVAL` in a
/// multi-threaded process anyway, unshare(2)), and a root rbuild taking a mount namespace
/// of its own first thing in `main`.
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

/// Make `cmd`'s child mark every descriptor from 3 up close-on-exec just before it execs,
/// except `keep` (a descriptor handed down on purpose): the program then starts with the
/// standard streams and `keep` only, whatever the calling process holds open — inherited
/// from whoever started rbuild, or opened without `O_CLOEXEC`. The sandbox's helper is
/// started this way: a host directory's descriptor that reached the sandbox's PID 1 was
/// still open when it changed into the step's working directory, so `WORKDIR
/// /proc/self/fd/N` put the step in the host's filesystem (runc's CVE-2024-21626).
///
/// `pre_exec` is unsafe because the closure runs in the forked child of a possibly
/// multi-threaded process, where only async-signal-safe calls are sound: it makes only
/// `close_range(2)`, `getrlimit(2)` and `fcntl(2)` system calls, allocates nothing and
/// takes no lock.
pub(crate) fn inherit_only(cmd: &mut std::process::Command, keep: Option<i32>) {
    use std::os::unix::process::CommandExt;
    // Ranges of descriptors to mark, worked out before the fork.
    let ranges = match keep {
        Some(k) if k >= 3 => [(3, k as u32 - 1), (k as u32 + 1, u32::MAX)],
        _ => [(3, u32::MAX), (1, 0)],
    };
    // SAFETY: the closure only makes async-signal-safe system calls (see above).
    unsafe {
        cmd.pre_exec(move || {
            for (first, last) in ranges {
                if first <= last {
                    cloexec_range(first, last)?;
                }
            }
            Ok(())
        });
    }
}

/// Mark descriptors `first..=last` close-on-exec: `close_range(2)` with
/// `CLOSE_RANGE_CLOEXEC` (Linux 5.11), else each descriptor below the open-files limit with
/// `fcntl(2)`. Async-signal-safe (called between fork and exec).
fn cloexec_range(first: u32, last: u32) -> std::io::Result<()> {
    // SAFETY: close_range takes plain integers and only changes descriptor flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            last,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let end = u64::from(last).min(limit.rlim_cur.saturating_sub(1));
    for fd in u64::from(first)..=end {
        let fd = fd as libc::c_int;
        // SAFETY: fcntl on a descriptor number only reads or sets its flags (EBADF when the
        // number is not open, which is skipped).
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags >= 0 && unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
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

/// Install the seccomp filter `program` on the calling thread (`seccomp(2)`,
/// `SECCOMP_SET_MODE_FILTER`); the programs it execs keep it. Needs `no_new_privs` (or
/// CAP_SYS_ADMIN).
///
/// The system call is unsafe to make because the kernel reads the program through a raw
/// pointer: here `fprog` points at `program`'s buffer with its exact length, and both live
/// until the call returns (the kernel copies the program).
pub(crate) fn seccomp_filter(program: &[libc::sock_filter]) -> std::io::Result<()> {
    let len = u16::try_from(program.len())
        .map_err(|_| std::io::Error::other("a seccomp program has at most 65535 instructions"))?;
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` and the program it points to are valid for the call (see above); the
    // flags are 0 and the kernel does not keep the pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
