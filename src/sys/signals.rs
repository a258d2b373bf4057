//! Relaying signals to a child that does the real work: the rootless build's outer process
//! waits for the one inside the user namespace ([`crate::sandbox::unshare`]). The signals
//! are blocked and taken synchronously with `sigwaitinfo(2)`, so no handler runs at an
//! arbitrary point of the program, and the child's exit (`SIGCHLD`) is one of them, so a
//! single wait sees both.

use std::io;
use std::mem::MaybeUninit;

use rustix::process::Signal;

/// The signals a relay blocks: the ones a user or a service manager sends to stop a
/// command, and `SIGCHLD`.
const RELAYED: [libc::c_int; 5] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGCHLD,
];

/// One signal taken by [`Relay::next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Received {
    pub(crate) signal: Signal,
    /// Sent by a process (`kill(1)`, a service manager): `si_code <= 0` (`SI_USER`,
    /// `SI_QUEUE`, `SI_TKILL`, siginfo.h). A terminal's Ctrl-C comes from the kernel
    /// (`SI_KERNEL`) and already reached every process of the foreground process group.
    pub(crate) from_process: bool,
}

/// [`RELAYED`] blocked in the calling thread; the previous mask comes back on drop.
pub(crate) struct Relay {
    set: libc::sigset_t,
    old: libc::sigset_t,
}

impl Relay {
    /// Block the relayed signals. Call it before spawning the child, so that no signal
    /// sent meanwhile kills this process with the child left behind, and while the process
    /// is single-threaded: another thread would take the signals with their default action.
    /// Children inherit the mask (std's `Command` keeps it): the child calls
    /// [`unblock_relayed`] first thing.
    pub(crate) fn block() -> io::Result<Relay> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises `set`; sigaddset takes valid signal numbers;
        // pthread_sigmask fills `old` on success (checked) and only changes this thread's
        // mask, which std does not rely on.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            for s in RELAYED {
                libc::sigaddset(set.as_mut_ptr(), s);
            }
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), old.as_mut_ptr());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(Relay {
                set: set.assume_init(),
                old: old.assume_init(),
            })
        }
    }

    /// Wait for the next relayed signal.
    pub(crate) fn next(&self) -> io::Result<Received> {
        loop {
            let mut info = MaybeUninit::<libc::siginfo_t>::uninit();
            // SAFETY: `self.set` is an initialised set; the kernel fills `info` when the
            // call returns a signal number.
            let n = unsafe { libc::sigwaitinfo(&self.set, info.as_mut_ptr()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            // SAFETY: filled by a successful sigwaitinfo.
            let code = unsafe { info.assume_init() }.si_code;
            let signal = match n {
                libc::SIGINT => Signal::INT,
                libc::SIGTERM => Signal::TERM,
                libc::SIGHUP => Signal::HUP,
                libc::SIGQUIT => Signal::QUIT,
                _ => Signal::CHILD,
            };
            return Ok(Received {
                signal,
                from_process: code <= 0,
            });
        }
    }
}

/// Unblock the signals a [`Relay`] blocks, in a child started under one; any of them
/// already sent to it is delivered now.
pub(crate) fn unblock_relayed() -> io::Result<()> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: as in `Relay::block`; SIG_UNBLOCK only removes signals from this thread's mask.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for s in RELAYED {
            libc::sigaddset(set.as_mut_ptr(), s);
        }
        let rc = libc::pthread_sigmask(libc::SIG_UNBLOCK, set.as_ptr(), std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

impl Drop for Relay {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `block`, in the same thread's terms.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_signal_sent_by_a_process_is_taken_and_attributed() {
        // Test threads run in parallel: the signal goes to this thread only (tgkill), and
        // it is blocked here, so nothing else sees it.
        let relay = Relay::block().unwrap();
        // SAFETY: signals this very thread, which has SIGHUP blocked.
        assert_eq!(
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGHUP) },
            0
        );
        let got = relay.next().unwrap();
        assert_eq!(
            got,
            Received {
                signal: Signal::HUP,
                from_process: true
            }
        );
    }
}
