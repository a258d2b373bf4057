//! Running a command in a prepared root filesystem, isolated: mount, pid, uts and ipc
//! namespaces always, a user namespace when not root, a network namespace with only `lo`
//! for `--network=none`. It knows nothing about images: callers hand it a directory.
//!
//! How: rbuild re-executes itself as a single-threaded helper (no Rust code runs after a
//! fork of the multi-threaded parent). The helper unshares the namespaces and spawns PID 1
//! of the new pid namespace, which builds the container's view of the filesystem
//! ([`rootfs`]), switches to the step's user and execs the command — as PID 1, as Docker's
//! RUN does. Both helper processes die with their parent (`PR_SET_PDEATHSIG`), so killing
//! the helper kills the whole pid namespace.

pub mod cache;
pub mod cgroup;
pub mod idmap;
mod init;
mod rootfs;
pub mod ssh;
pub mod user;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use serde::{Deserialize, Serialize};

pub use init::entry;

/// The hidden argument that makes `rbuild` run as the sandbox helper.
pub const HELPER_ARG: &str = "__rbuild-sandbox-helper";
/// The hidden argument that makes `rbuild` run as the sandbox's PID 1.
pub const INIT_ARG: &str = "__rbuild-sandbox-init";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// The host's network (BuildKit's default without CNI).
    Host,
    /// A fresh network namespace with only `lo`, up.
    None,
}

/// A file or directory from outside made visible inside.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: String,
    pub readonly: bool,
}

/// Everything the sandbox needs to run one command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// The root filesystem (an overlay `merged` dir or a plain tree).
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    /// `KEY=value` entries; the command's environment is exactly this.
    pub env: Vec<String>,
    /// Absolute working directory inside the container (must exist).
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub hostname: String,
    pub network: Network,
    /// `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`, secrets, bind mounts.
    pub binds: Vec<Bind>,
    /// tmpfs mounts: (target, size in bytes).
    pub tmpfs: Vec<(String, Option<u64>)>,
    /// Resource limits (cgroups); none by default.
    #[serde(default)]
    pub limits: cgroup::Limits,
    /// Set by `spawn`: the parent maps subordinate id ranges into the user namespace
    /// (rootless with /etc/subuid ranges), instead of the helper mapping root alone.
    #[serde(default)]
    pub external_idmap: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("starting the sandbox helper ({exe}): {source}")]
    SpawnHelper { exe: String, source: std::io::Error },
    #[error("sending the sandbox spec to the helper: {source}")]
    SendSpec { source: std::io::Error },
    #[error("waiting for the sandbox: {source}")]
    Wait { source: std::io::Error },
    #[error("preparing mount point {path}: {source}")]
    MountPoint {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Limits(#[from] cgroup::CgroupError),
}

/// A running sandbox.
pub struct Running {
    child: Child,
    created: Vec<PathBuf>,
    /// Dropped after the run, removing its cgroup(s).
    cgroup: Option<cgroup::Cgroup>,
}

impl Running {
    /// Kill the sandbox: its helper, and with it (death signal) every process inside.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Wait for the command; removes the mount points the sandbox had to create, and its
    /// cgroup.
    pub fn wait(mut self) -> Result<ExitStatus, SandboxError> {
        let status = self
            .child
            .wait()
            .map_err(|source| SandboxError::Wait { source });
        cleanup(&self.created);
        drop(self.cgroup.take());
        status
    }

    /// The run's cgroup directories (empty without limits).
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        self.cgroup
            .as_ref()
            .map(|c| c.dirs().to_vec())
            .unwrap_or_default()
    }

    pub fn stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    pub fn stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }
}

/// Start `spec` with the running rbuild as the helper; the command's output goes to
/// `stdout`/`stderr` (its stdin is /dev/null).
pub fn spawn(spec: &Spec, stdout: Stdio, stderr: Stdio) -> Result<Running, SandboxError> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    spawn_with(&exe, spec, stdout, stderr)
}

/// [`spawn`] with an explicit `rbuild` executable as the helper (for callers that are not
/// rbuild itself, such as tests).
pub fn spawn_with(
    exe: &Path,
    spec: &Spec,
    stdout: Stdio,
    stderr: Stdio,
) -> Result<Running, SandboxError> {
    let name = format!(
        "rbuild-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let limited = cgroup::Cgroup::create(&spec.limits, &name)?;
    let created = prepare_mount_points(spec)?;
    let mut child = Command::new(exe)
        .arg(HELPER_ARG)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|source| {
            cleanup(&created);
            SandboxError::SpawnHelper {
                exe: exe.display().to_string(),
                source,
            }
        })?;
    // Into the cgroup before the helper has read its spec, so before it starts anything.
    if let Some(cg) = &limited
        && let Err(e) = cg.add(child.id())
    {
        let _ = child.kill();
        let _ = child.wait();
        cleanup(&created);
        return Err(e.into());
    }
    // The spec is one line; a second line ("go") follows once ids are mapped.
    let mapping = (!rustix::process::geteuid().is_root())
        .then(idmap::external_mapping)
        .flatten();
    let mut spec = spec.clone();
    spec.external_idmap = mapping.is_some();
    let mut line = serde_json::to_vec(&spec).expect("a spec serialises");
    line.push(b'\n');
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut sent = stdin.write_all(&line).and_then(|_| stdin.flush());
    if sent.is_ok()
        && let Some(m) = &mapping
        && let Err(e) = idmap::apply(child.id(), m)
    {
        sent = Err(std::io::Error::other(format!(
            "mapping subordinate ids: {e}"
        )));
    }
    let sent = sent
        .and_then(|_| stdin.write_all(b"go\n"))
        .and_then(|_| stdin.flush());
    drop(stdin);
    if let Err(source) = sent {
        let _ = child.kill();
        let _ = child.wait();
        cleanup(&created);
        return Err(SandboxError::SendSpec { source });
    }
    Ok(Running {
        child,
        created,
        cgroup: limited,
    })
}

/// Numbers the runs of this process, for cgroup names.
static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Run to completion with inherited output.
pub fn run(spec: &Spec) -> Result<ExitStatus, SandboxError> {
    spawn(spec, Stdio::inherit(), Stdio::inherit())?.wait()
}

/// Mount points the rootfs lacks are created before the run and removed after, so they
/// never end up in the step's layer: `/proc`, `/dev`, `/sys`, bind and tmpfs targets.
fn prepare_mount_points(spec: &Spec) -> Result<Vec<PathBuf>, SandboxError> {
    let mut created = Vec::new();
    let mut want = |rel: &str, dir: bool| -> Result<(), SandboxError> {
        let path = spec.rootfs.join(rel.trim_start_matches('/'));
        if std::fs::symlink_metadata(&path).is_ok() {
            return Ok(());
        }
        let err = |source| SandboxError::MountPoint {
            path: path.display().to_string(),
            source,
        };
        // Parents first, each remembered so cleanup can remove what it made.
        let mut missing = Vec::new();
        let mut p = path.parent();
        while let Some(dir) = p {
            if dir.starts_with(&spec.rootfs)
                && dir != spec.rootfs
                && std::fs::symlink_metadata(dir).is_err()
            {
                missing.push(dir.to_path_buf());
                p = dir.parent();
            } else {
                break;
            }
        }
        for d in missing.iter().rev() {
            std::fs::create_dir(d).map_err(err)?;
            created.push(d.clone());
        }
        if dir {
            std::fs::create_dir(&path).map_err(err)?;
        } else {
            std::fs::File::create(&path).map_err(err)?;
        }
        created.push(path);
        Ok(())
    };
    for d in ["proc", "dev", "sys"] {
        want(d, true)?;
    }
    for b in &spec.binds {
        want(&b.target, b.source.is_dir())?;
    }
    for (t, _) in &spec.tmpfs {
        want(t, true)?;
    }
    Ok(created)
}

/// Remove created mount points, deepest first, only while they are still empty.
fn cleanup(created: &[PathBuf]) {
    for p in created.iter().rev() {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir(p);
            }
            Ok(m) if m.len() == 0 => {
                let _ = std::fs::remove_file(p);
            }
            _ => {}
        }
    }
}

/// The sandbox's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, written under
/// `dir` (outside the rootfs: they never enter a layer) and returned as binds.
pub fn standard_files(dir: &Path, hostname: &str, network: Network) -> std::io::Result<Vec<Bind>> {
    std::fs::create_dir_all(dir)?;
    let hosts = dir.join("hosts");
    std::fs::write(
        &hosts,
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        ),
    )?;
    let name = dir.join("hostname");
    std::fs::write(&name, format!("{hostname}\n"))?;
    let resolv = dir.join("resolv.conf");
    match network {
        // The host's resolvers, as BuildKit does for host networking.
        Network::Host => {
            let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            std::fs::write(&resolv, text)?;
        }
        Network::None => std::fs::write(&resolv, "")?,
    }
    let bind = |source: PathBuf, target: &str| Bind {
        source,
        target: target.to_string(),
        readonly: false,
    };
    Ok(vec![
        bind(hosts, "/etc/hosts"),
        bind(name, "/etc/hostname"),
        bind(resolv, "/etc/resolv.conf"),
    ])
}
