//! The one place `unsafe` is allowed: system calls whose safe wrappers rustix withholds.
//! Each function states why its use is sound.
#![allow(unsafe_code)]

use rustix::thread::UnshareFlags;

/// `unshare(2)` for namespaces only.
///
/// rustix marks `unshare` unsafe because `CLONE_FILES`, `CLONE_FS` and `CLONE_SYSVSEM`
/// change state the rest of the process (other threads, std's assumptions) relies on. This
/// wrapper only passes namespace flags, which change what the calling process sees of the
/// system, not its memory or file table; and rbuild calls it only in the single-threaded
/// sandbox helper, right after it was exec'd.
pub fn unshare_namespaces(flags: UnshareFlags) -> std::io::Result<()> {
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
