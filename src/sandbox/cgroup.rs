//! Resource limits (`--memory`, `--cpus`, `--pids-limit`) through cgroups, v2 (unified) or
//! v1 (one hierarchy per controller, as on hybrid hosts). A run gets its own cgroup under the
//! one rbuild itself is in; the helper is moved in before it starts anything, so every
//! process of the run is limited. A limit that cannot be applied is an error, never skipped.

use std::path::{Path, PathBuf};

/// Requested limits; all `None` means no cgroup at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Bytes of memory (`memory.max` / `memory.limit_in_bytes`).
    pub memory: Option<u64>,
    /// CPUs, fractional (`cpu.max` / CFS quota over a 100 ms period).
    pub cpus: Option<f64>,
    /// Processes (`pids.max`).
    pub pids: Option<u64>,
}

impl Limits {
    pub(crate) fn is_empty(&self) -> bool {
        self.memory.is_none() && self.cpus.is_none() && self.pids.is_none()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot apply {what}: creating cgroup {path}{}", hint(.source))]
    Create {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("cannot apply {what}: writing {path}{}", hint(.source))]
    Write {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "cannot apply {what}: the {controller} cgroup controller is not available on this host"
    )]
    NoController {
        what: &'static str,
        controller: &'static str,
    },
}

fn hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            " (resource limits need root, or a cgroup delegated to this user; a rootless build cannot apply them otherwise)"
        }
        _ => "",
    }
}

/// The cgroup directories of one run; removed when dropped (after its processes exit).
#[derive(Debug)]
pub(crate) struct Cgroup {
    dirs: Vec<PathBuf>,
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const PERIOD_US: u64 = 100_000;

/// The path of rbuild's own cgroup for `controller` (v1), or for v2 with `controller` "".
fn own_path(controller: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        matches.then(|| path.to_string())
    })
}

fn write(path: &Path, value: &str, what: &'static str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write {
        what,
        path: path.display().to_string(),
        source,
    })
}

impl Cgroup {
    /// Create the cgroup(s) for `limits`, named `name`; `None` when there are no limits.
    pub(crate) fn create(limits: &Limits, name: &str) -> Result<Option<Cgroup>, CgroupError> {
        if limits.is_empty() {
            return Ok(None);
        }
        let unified = Path::new(CGROUP_ROOT).join("cgroup.controllers").exists();
        let mut cg = Cgroup { dirs: Vec::new() };
        let quota = limits
            .cpus
            .map(|c| ((c * PERIOD_US as f64).round() as u64).max(1000));
        if unified {
            let own = own_path("").unwrap_or_else(|| "/".into());
            let parent = Path::new(CGROUP_ROOT).join(own.trim_start_matches('/'));
            let dir = cg.mkdir(&parent.join(name), "resource limits")?;
            if let Some(m) = limits.memory {
                write(&dir.join("memory.max"), &m.to_string(), "--memory")?;
            }
            if let Some(q) = quota {
                write(&dir.join("cpu.max"), &format!("{q} {PERIOD_US}"), "--cpus")?;
            }
            if let Some(p) = limits.pids {
                write(&dir.join("pids.max"), &p.to_string(), "--pids-limit")?;
            }
        } else {
            let mut v1 = |controller: &'static str,
                          what: &'static str,
                          files: Vec<(&str, String)>|
             -> Result<(), CgroupError> {
                let base = Path::new(CGROUP_ROOT).join(controller);
                if !base.exists() {
                    return Err(CgroupError::NoController { what, controller });
                }
                let own = own_path(controller).unwrap_or_else(|| "/".into());
                let dir = cg.mkdir(&base.join(own.trim_start_matches('/')).join(name), what)?;
                for (file, value) in files {
                    write(&dir.join(file), &value, what)?;
                }
                Ok(())
            };
            if let Some(m) = limits.memory {
                v1(
                    "memory",
                    "--memory",
                    vec![("memory.limit_in_bytes", m.to_string())],
                )?;
            }
            if let Some(q) = quota {
                v1(
                    "cpu",
                    "--cpus",
                    vec![
                        ("cpu.cfs_period_us", PERIOD_US.to_string()),
                        ("cpu.cfs_quota_us", q.to_string()),
                    ],
                )?;
            }
            if let Some(p) = limits.pids {
                v1("pids", "--pids-limit", vec![("pids.max", p.to_string())])?;
            }
        }
        Ok(Some(cg))
    }

    fn mkdir(&mut self, dir: &Path, what: &'static str) -> Result<PathBuf, CgroupError> {
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CgroupError::Create {
                    what,
                    path: dir.display().to_string(),
                    source,
                });
            }
        }
        self.dirs.push(dir.to_path_buf());
        Ok(dir.to_path_buf())
    }

    /// Move process `pid` (and so everything it starts) into the cgroup(s).
    pub(crate) fn add(&self, pid: u32) -> Result<(), CgroupError> {
        for d in &self.dirs {
            write(&d.join("cgroup.procs"), &pid.to_string(), "resource limits")?;
        }
        Ok(())
    }

    pub(crate) fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            // Empty once the run's processes have exited; retried briefly while they reap.
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}
