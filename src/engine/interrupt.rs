//! Ctrl-C during a build: [`interrupt`] (called from the CLI's signal handler thread) marks
//! the build interrupted and kills every running sandbox, so the RUN in progress ends at
//! once; the engine then stops with [`super::BuildError::Interrupted`], and the normal
//! unwinding unmounts the step's overlay and removes its work directory. A build killed
//! outright (SIGKILL) takes its mounts with its mount namespace and leaves its work
//! directory to the next run's cleanup
//! (`crate::snapshot::workdir::cleanup_stale`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Stop the build: mark it interrupted and kill the sandboxes that are running.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    for pid in RUNNING.lock().expect("running sandboxes").iter() {
        if let Some(pid) = rustix::process::Pid::from_raw(*pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Whether [`interrupt`] was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// A running sandbox, registered for [`interrupt`] until dropped.
pub(super) struct Registered(u32);

impl Registered {
    pub(super) fn new(pid: u32) -> Registered {
        RUNNING.lock().expect("running sandboxes").push(pid);
        // A Ctrl-C that came just before the registration still stops this run.
        if interrupted() {
            interrupt();
        }
        Registered(pid)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        RUNNING
            .lock()
            .expect("running sandboxes")
            .retain(|p| *p != self.0);
    }
}
