//! Processes a test starts, and their end: every `Command` a test spawns (servers, agents,
//! background builds, lock holders, helpers it waits for) becomes a [`Process`], which runs
//! in a process group of its own. Dropping it — at the end of the test, or while a panic
//! unwinds — stops that whole group: SIGTERM, up to [`GRACE`] for the child to exit, then
//! SIGKILL for whatever is left, and the child is reaped. Nothing a test starts outlives it.
//!
//! The group, not just the child: `git daemon` is `git` running `git-daemon` as a child of
//! its own (git.c starts dashed external commands with `run_command`), so a SIGKILL to `git`
//! alone left `git-daemon` listening after the test run had ended; servers also fork per
//! connection, and a child that is gone has orphans no parent link leads to. SIGTERM first:
//! `rbuild build` then stops its step and unmounts (docs/build.md), which SIGKILL skips.
//! A member that makes a session of its own (podman's conmon) is out of reach: podman's
//! containers have their own guard, `podman::PodmanCleanup`.
//!
//! A group of its own is also out of reach of whoever signals the test's group (nextest on
//! Ctrl-C or a timeout, a terminal on Ctrl-C): so the first spawn installs a handler for
//! SIGINT, SIGTERM and SIGHUP that kills every group still running and ends the test
//! process. SIGKILL cannot be handled; nextest sends it only after a grace period.
//!
//! This module only spawns, waits and stops; what a process is for is the caller's.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

/// How long a child has to exit after SIGTERM before its group is killed.
pub const GRACE: Duration = Duration::from_secs(5);

/// The groups of every [`Process`] not stopped yet, for the signal handler.
static RUNNING: Mutex<Vec<Pid>> = Mutex::new(Vec::new());

/// A child process whose whole process group is stopped when it is dropped.
#[derive(Debug)]
pub struct Process {
    /// `None` once [`Process::wait_with_output`] has taken it.
    child: Option<Child>,
    /// The child's PID, which is its process group's ID; `None` once the group was stopped.
    group: Option<Pid>,
}

impl Process {
    /// Spawn `cmd` as the leader of a new process group; panics naming the command when it
    /// cannot be started.
    pub fn spawn(cmd: &mut Command) -> Process {
        static HANDLER: Once = Once::new();
        HANDLER.call_once(|| {
            ctrlc::set_handler(kill_all_and_exit).expect("install the test's signal handler");
        });
        let child = cmd
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let group = Pid::from_raw(child.id() as i32);
        if let Some(g) = group {
            running().push(g);
        }
        Process {
            child: Some(child),
            group,
        }
    }

    /// The child, for its pipes, its PID and `try_wait`.
    pub fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child was already waited for")
    }

    /// Wait for the child to exit (the rest of its group is stopped on drop).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child().wait()
    }

    /// Wait for the child to exit, collecting whatever of stdout and stderr is piped.
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        let out = self
            .child
            .take()
            .expect("the child was already waited for")
            .wait_with_output();
        self.stop();
        out
    }

    /// Stop the group and reap the child now; dropping does the same.
    pub fn stop(&mut self) {
        let Some(group) = self.group.take() else {
            return;
        };
        if let Some(child) = &mut self.child
            && matches!(child.try_wait(), Ok(None))
        {
            let _ = kill_process_group(group, Signal::TERM);
            let start = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && start.elapsed() < GRACE {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Whatever is left of the group (ESRCH when nothing is). Its ID stays allocated
        // while any member lives, and this runs once, right after the leader is reaped at the
        // latest, so it reaches only what the test started.
        let _ = kill_process_group(group, Signal::KILL);
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        running().retain(|g| *g != group);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The list of running groups, also after a test panicked while holding it.
fn running() -> std::sync::MutexGuard<'static, Vec<Pid>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// On SIGINT, SIGTERM or SIGHUP to the test process: kill every group a test started, then
/// exit as a shell reports Ctrl-C (ctrlc does not say which signal came).
fn kill_all_and_exit() {
    for group in running().iter() {
        let _ = kill_process_group(*group, Signal::KILL);
    }
    std::process::exit(130);
}
