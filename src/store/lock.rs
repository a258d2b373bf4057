//! [`StoreLock`]: the cross-process lock on `<root>/lock`, an advisory `flock(2)` taken
//! shared by readers of `index.json` and exclusive by its writers (and, later, by prune).
//! Blob writes take no lock (see `blobs.rs`).
//!
//! `flock` locks belong to an open file description, so every acquisition opens the lock
//! file anew: two `Store` handles in one process exclude each other exactly as two
//! processes do, and the lock is released when the [`LockGuard`] is dropped (or the process
//! dies: the kernel drops it with the last descriptor, so a crash never leaves the store
//! locked). The same property means a thread must not take the lock while it already holds
//! it through another guard: an exclusive request waits for the shared one it holds itself.
//!
//! When the lock is busy, the wait hook is called once before blocking, so the CLI can say
//! [`LockWait`]'s message; this library never prints.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use super::error::StoreError;

/// The lock file's name under the root.
pub const LOCK_FILE: &str = "lock";

/// How the lock is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once: reading `index.json` and the manifests it names.
    Shared,
    /// One holder: read-modify-write of `index.json`, prune.
    Exclusive,
}

/// What the wait hook is told: the lock is busy and this process is about to wait for it.
/// `Display` gives the message to show the user.
#[derive(Clone, Copy, Debug)]
pub struct LockWait<'a> {
    pub(crate) path: &'a Path,
    pub mode: LockMode,
}

impl fmt::Display for LockWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waiting for the store lock held by another rbuild process… ({})",
            self.path.display()
        )
    }
}

/// Called once per acquisition that has to wait.
pub type LockWaitHook = Arc<dyn Fn(&LockWait<'_>) + Send + Sync>;

/// The store lock: a path and what to do while waiting. Cheap to clone.
#[derive(Clone)]
pub struct StoreLock {
    path: PathBuf,
    on_wait: Option<LockWaitHook>,
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    mode: LockMode,
}

impl StoreLock {
    /// The lock at `path`, silent while waiting.
    pub(crate) fn new(path: impl Into<PathBuf>) -> StoreLock {
        StoreLock {
            path: path.into(),
            on_wait: None,
        }
    }

    /// The same lock, calling `hook` when an acquisition has to wait.
    pub fn with_wait_hook(self, hook: LockWaitHook) -> StoreLock {
        StoreLock {
            on_wait: Some(hook),
            ..self
        }
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Take the lock shared, waiting as long as a writer holds it.
    pub(crate) fn shared(&self) -> Result<LockGuard, StoreError> {
        self.acquire(LockMode::Shared)
    }

    /// Take the lock exclusive, waiting as long as anyone else holds it.
    pub fn exclusive(&self) -> Result<LockGuard, StoreError> {
        self.acquire(LockMode::Exclusive)
    }

    /// Take the lock without waiting; `Ok(None)` when it is busy.
    pub(crate) fn try_acquire(&self, mode: LockMode) -> Result<Option<LockGuard>, StoreError> {
        let file = self.open()?;
        match flock(&file, mode, false) {
            Ok(()) => Ok(Some(LockGuard { file, mode })),
            Err(e) if e == Errno::WOULDBLOCK => Ok(None),
            Err(e) => Err(self.lock_error(e)),
        }
    }

    /// Take the lock in `mode`, calling the wait hook once if it is busy.
    pub(crate) fn acquire(&self, mode: LockMode) -> Result<LockGuard, StoreError> {
        if let Some(guard) = self.try_acquire(mode)? {
            return Ok(guard);
        }
        if let Some(hook) = &self.on_wait {
            hook(&LockWait {
                path: &self.path,
                mode,
            });
        }
        let file = self.open()?;
        flock(&file, mode, true).map_err(|e| self.lock_error(e))?;
        Ok(LockGuard { file, mode })
    }

    /// Create the lock file if it is missing (part of laying out a new store).
    pub(crate) fn create_file(&self) -> Result<(), StoreError> {
        self.open().map(drop)
    }

    fn open(&self) -> Result<File, StoreError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)
            .map_err(|source| StoreError::OpenLock {
                path: self.path.clone(),
                source,
            })
    }

    fn lock_error(&self, e: Errno) -> StoreError {
        StoreError::Lock {
            path: self.path.clone(),
            source: e.into(),
        }
    }
}

impl fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreLock")
            .field("path", &self.path)
            .field("on_wait", &self.on_wait.is_some())
            .finish()
    }
}

impl LockGuard {
    pub fn mode(&self) -> LockMode {
        self.mode
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock too; unlocking first makes the release
        // independent of a copy of the descriptor that a forked child may still hold.
        let _ = rustix::fs::flock(&self.file, FlockOperation::Unlock);
    }
}

/// `flock` in `mode`, blocking or not, retried when a signal interrupts the wait.
fn flock(file: &File, mode: LockMode, wait: bool) -> Result<(), Errno> {
    let op = match (mode, wait) {
        (LockMode::Shared, true) => FlockOperation::LockShared,
        (LockMode::Exclusive, true) => FlockOperation::LockExclusive,
        (LockMode::Shared, false) => FlockOperation::NonBlockingLockShared,
        (LockMode::Exclusive, false) => FlockOperation::NonBlockingLockExclusive,
    };
    loop {
        match rustix::fs::flock(file, op) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn lock() -> (tempfile::TempDir, StoreLock) {
        let dir = tempfile::tempdir().unwrap();
        let lock = StoreLock::new(dir.path().join(LOCK_FILE));
        (dir, lock)
    }

    /// `held, requested => granted without waiting?`
    macro_rules! compatible {
        ($($name:ident: $held:ident, $wanted:ident => $granted:expr;)*) => {$(
            #[test]
            fn $name() {
                let (_dir, lock) = lock();
                let _held = lock.acquire(LockMode::$held).unwrap();
                let got = lock.try_acquire(LockMode::$wanted).unwrap();
                assert_eq!(got.is_some(), $granted);
            }
        )*};
    }

    compatible! {
        shared_with_shared: Shared, Shared => true;
        shared_then_exclusive: Shared, Exclusive => false;
        exclusive_then_shared: Exclusive, Shared => false;
        exclusive_then_exclusive: Exclusive, Exclusive => false;
    }

    #[test]
    fn dropping_the_guard_releases() {
        let (_dir, lock) = lock();
        let held = lock.exclusive().unwrap();
        assert_eq!(held.mode(), LockMode::Exclusive);
        drop(held);
        assert!(lock.try_acquire(LockMode::Exclusive).unwrap().is_some());
    }

    #[test]
    fn waiter_is_told_once_and_gets_the_lock() {
        let (_dir, lock) = lock();
        let told = Arc::new(AtomicUsize::new(0));
        let messages = Arc::new(Mutex::new(Vec::new()));
        let waiting = {
            let (told, messages) = (told.clone(), messages.clone());
            lock.clone()
                .with_wait_hook(Arc::new(move |w: &LockWait<'_>| {
                    told.fetch_add(1, Ordering::SeqCst);
                    messages.lock().unwrap().push(w.to_string());
                }))
        };
        let held = lock.exclusive().unwrap();
        let waiter = std::thread::spawn(move || waiting.shared().map(|g| g.mode()));
        while told.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(held);
        assert_eq!(waiter.join().unwrap().unwrap(), LockMode::Shared);
        assert_eq!(told.load(Ordering::SeqCst), 1);
        let message = &messages.lock().unwrap()[0];
        assert!(
            message.starts_with("waiting for the store lock held by another rbuild process"),
            "{message}"
        );
        assert!(
            message.contains(&lock.path().display().to_string()),
            "{message}"
        );
    }

    #[test]
    fn uncontended_acquisition_is_silent() {
        let (_dir, lock) = lock();
        let lock = lock.with_wait_hook(Arc::new(|w: &LockWait<'_>| panic!("told: {w}")));
        drop(lock.exclusive().unwrap());
        drop(lock.shared().unwrap());
    }

    #[test]
    fn unopenable_lock_names_its_path() {
        let lock = StoreLock::new("/nonexistent-rbuild-dir/lock");
        let err = lock.shared().unwrap_err();
        assert!(matches!(err, StoreError::OpenLock { .. }), "{err:?}");
        assert!(
            err.to_string().contains("/nonexistent-rbuild-dir/lock"),
            "{err}"
        );
    }
}
