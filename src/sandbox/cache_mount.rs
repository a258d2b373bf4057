//! Persistent cache directories for `RUN --mount=type=cache`, kept under the state root
//! (`<root>/cache/mounts/<id digest>/`) across builds, and handed out by sharing mode as
//! BuildKit does: `shared` — everyone uses the same directory at once; `locked` — one user
//! at a time (an exclusive `flock`, waited for); `private` — a user that finds the
//! directory busy gets a fresh one of its own (`<id digest>-<n>/`), kept for next time.

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::oci::digest::Digest;

/// How users of one cache directory share it at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Everyone uses the same directory at once.
    Shared,
    /// A user that finds the directory busy gets a fresh one of its own.
    Private,
    /// One user at a time; others wait.
    Locked,
}

/// A cache directory in use; the lock (if any) is released on drop.
#[derive(Debug)]
pub struct Lease {
    pub path: PathBuf,
    _lock: Option<File>,
}

#[derive(Debug, thiserror::Error)]
#[error("cache mount {id:?} at {path}")]
pub struct CacheError {
    pub(crate) id: String,
    pub(crate) path: String,
    pub(crate) source: std::io::Error,
}

#[derive(Clone, Debug)]
pub struct CacheMounts {
    dir: PathBuf,
}

impl CacheMounts {
    pub fn new(state_root: &Path) -> CacheMounts {
        CacheMounts {
            dir: state_root.join("cache").join("mounts"),
        }
    }

    /// Where cache `id`'s directories live; ids may hold any characters, so they are hashed.
    /// (The first of them, which `shared` and `locked` use; `private` adds `-<n>` ones.)
    pub(crate) fn base(&self, id: &str) -> PathBuf {
        self.dir.join(&Digest::sha256(id.as_bytes()).hex()[..32])
    }

    /// Hold the exclusive lock under which cache `id` is seeded (filled from a stage or
    /// image while it is still empty), so two steps never seed it at once.
    pub(crate) fn seed_lock(&self, id: &str) -> Result<File, CacheError> {
        let lock = self.base(id).with_extension("seed.lock");
        let err = |source: std::io::Error| CacheError {
            id: id.to_string(),
            path: lock.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(err)?;
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(err)?;
        rustix::fs::flock(&f, FlockOperation::LockExclusive).map_err(|e| err(e.into()))?;
        Ok(f)
    }

    /// Take cache `id` for one run. `mode`, `uid` and `gid` apply when the directory is
    /// created (BuildKit: the cache root's owner and mode).
    pub fn acquire(
        &self,
        id: &str,
        sharing: Sharing,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<Lease, CacheError> {
        let err = |path: &Path| {
            let path = path.display().to_string();
            let id = id.to_string();
            move |source| CacheError { id, path, source }
        };
        let base = self.base(id);
        std::fs::create_dir_all(&self.dir).map_err(err(&self.dir))?;
        let create = |path: &Path| -> Result<(), CacheError> {
            if !path.exists() {
                std::fs::create_dir_all(path).map_err(err(path))?;
                super::give(path, mode, uid, gid).map_err(err(path))?;
            }
            Ok(())
        };
        let lock_file = |path: &Path| -> Result<File, CacheError> {
            let lock = path.with_extension("lock");
            File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock)
                .map_err(err(&lock))
        };
        match sharing {
            Sharing::Shared => {
                create(&base)?;
                Ok(Lease {
                    path: base,
                    _lock: None,
                })
            }
            Sharing::Locked => {
                let f = lock_file(&base)?;
                rustix::fs::flock(&f, FlockOperation::LockExclusive)
                    .map_err(|e| err(&base)(e.into()))?;
                create(&base)?;
                Ok(Lease {
                    path: base,
                    _lock: Some(f),
                })
            }
            Sharing::Private => {
                for n in 0u32.. {
                    let path = if n == 0 {
                        base.clone()
                    } else {
                        base.with_file_name(format!(
                            "{}-{n}",
                            base.file_name().and_then(|s| s.to_str()).unwrap_or("cache")
                        ))
                    };
                    let f = lock_file(&path)?;
                    match rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive) {
                        Ok(()) => {
                            create(&path)?;
                            return Ok(Lease {
                                path,
                                _lock: Some(f),
                            });
                        }
                        Err(rustix::io::Errno::WOULDBLOCK) => continue,
                        Err(e) => return Err(err(&path)(e.into())),
                    }
                }
                unreachable!("u32 ran out of private cache directories")
            }
        }
    }

    /// Remove every cache directory.
    pub fn clear(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// A secret for one run: written to a private file outside the root filesystem (never in
/// a layer, the history or a cache key) and bound read-only at its target, with the
/// mount's mode and owner (see [`super::give`]).
pub fn write_secret(
    run_dir: &Path,
    name: &str,
    data: &[u8],
    mode: u32,
    (uid, gid): (u32, u32),
) -> std::io::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = run_dir.join("secrets");
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let path = dir.join(&Digest::sha256(name.as_bytes()).hex()[..16]);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(data)?;
    super::give(&path, mode, uid, gid)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rbuild-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn shared_is_the_same_directory_and_persists() {
        let root = temp("shared");
        let c = CacheMounts::new(&root);
        let a = c.acquire("pip", Sharing::Shared, 0o755, 0, 0).unwrap();
        std::fs::write(a.path.join("wheel"), "x").unwrap();
        let b = c.acquire("pip", Sharing::Shared, 0o755, 0, 0).unwrap();
        assert_eq!(a.path, b.path);
        drop((a, b));
        let again = c.acquire("pip", Sharing::Shared, 0o755, 0, 0).unwrap();
        assert!(again.path.join("wheel").exists(), "persists across runs");
        let other = c
            .acquire("/root/.cache/go", Sharing::Shared, 0o755, 0, 0)
            .unwrap();
        assert_ne!(other.path, again.path);
    }

    #[test]
    fn private_gives_a_busy_cache_a_second_directory() {
        let root = temp("private");
        let c = CacheMounts::new(&root);
        let a = c.acquire("id", Sharing::Private, 0o755, 0, 0).unwrap();
        let b = c.acquire("id", Sharing::Private, 0o755, 0, 0).unwrap();
        assert_ne!(a.path, b.path);
        let first = a.path.clone();
        drop(a);
        let again = c.acquire("id", Sharing::Private, 0o755, 0, 0).unwrap();
        assert!(
            !again.path.to_string_lossy().ends_with("-1"),
            "the first is free again"
        );
        assert_eq!(again.path, first, "and is the one handed out");
    }

    #[test]
    fn locked_waits_for_the_holder() {
        let root = temp("locked");
        let c = CacheMounts::new(&root);
        let held = c.acquire("id", Sharing::Locked, 0o755, 0, 0).unwrap();
        let c2 = c.clone();
        let start = std::time::Instant::now();
        let waiter = std::thread::spawn(move || {
            let _lease = c2.acquire("id", Sharing::Locked, 0o755, 0, 0).unwrap();
            std::time::Instant::now()
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        let released = std::time::Instant::now();
        drop(held);
        let got = waiter.join().unwrap();
        assert!(got >= released, "the second user waited for the first");
        assert!(got.duration_since(start) >= std::time::Duration::from_millis(300));
    }

    #[test]
    fn secrets_are_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp("secret");
        let p = write_secret(&dir, "token", b"s3cret", 0o400, (0, 0)).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"s3cret");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o400
        );
        assert_eq!(
            std::fs::metadata(p.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }
}
