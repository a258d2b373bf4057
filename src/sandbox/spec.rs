//! What a sandboxed process is to run with ([`Spec`]): its root, command, environment,
//! user, network, mounts and limits; and the hidden arguments by which `rbuild` re-runs
//! itself as the sandbox's helper and PID 1.

use std::path::PathBuf;

use super::cgroup;

use serde::{Deserialize, Serialize};

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

/// One `--ulimit NAME=SOFT[:HARD]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// Docker's name: `nofile`, `nproc`, `core`, `stack`, ...
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

impl Ulimit {
    /// Parse `NAME=SOFT[:HARD]` (`-1` is unlimited), with the names Docker takes.
    pub fn parse(spec: &str) -> Result<Ulimit, String> {
        let (name, values) = spec
            .split_once('=')
            .ok_or_else(|| format!("invalid --ulimit {spec:?}: expected NAME=SOFT[:HARD]"))?;
        if resource(name).is_none() {
            return Err(format!(
                "invalid --ulimit {spec:?}: unknown limit {name:?} (core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack)"
            ));
        }
        let number = |v: &str| -> Result<u64, String> {
            if v == "-1" {
                return Ok(u64::MAX);
            }
            v.parse()
                .map_err(|_| format!("invalid --ulimit {spec:?}: {v:?} is not a number"))
        };
        let (soft, hard) = match values.split_once(':') {
            Some((s, h)) => (number(s)?, number(h)?),
            None => (number(values)?, number(values)?),
        };
        if soft > hard {
            return Err(format!(
                "invalid --ulimit {spec:?}: the soft limit is above the hard limit"
            ));
        }
        Ok(Ulimit {
            name: name.to_string(),
            soft,
            hard,
        })
    }
}

/// The `setrlimit(2)` resource Docker's `--ulimit` name means.
pub(crate) fn resource(name: &str) -> Option<rustix::process::Resource> {
    use rustix::process::Resource as R;
    Some(match name {
        "core" => R::Core,
        "cpu" => R::Cpu,
        "data" => R::Data,
        "fsize" => R::Fsize,
        "locks" => R::Locks,
        "memlock" => R::Memlock,
        "msgqueue" => R::Msgqueue,
        "nice" => R::Nice,
        "nofile" => R::Nofile,
        "nproc" => R::Nproc,
        "rss" => R::Rss,
        "rtprio" => R::Rtprio,
        "rttime" => R::Rttime,
        "sigpending" => R::Sigpending,
        "stack" => R::Stack,
        _ => return None,
    })
}

/// Where a sandbox's `/proc` comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proc {
    /// A procfs of the sandbox's own pid namespace: only its processes show.
    #[default]
    Fresh,
    /// The `/proc` rbuild itself sees, bound with every mount on it: inside a container
    /// that masks parts of its own `/proc` (podman, Docker, Kubernetes by default) the
    /// kernel refuses a fresh one, as it does to Buildah's and BuildKit's rootless mode. The
    /// step then sees the container's processes (Buildah's `--isolation=chroot` does the
    /// same); the masks stay.
    Host,
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
    /// Docker's privileged mode (`RUN --security=insecure`): every capability kept, no
    /// masked or read-only paths.
    #[serde(default)]
    pub privileged: bool,
    /// Size of `/dev/shm` in bytes (`--shm-size`); Docker's 64 MiB when unset.
    #[serde(default)]
    pub shm_size: Option<u64>,
    /// Resource limits set before the command runs (`--ulimit`), as `setrlimit(2)` takes
    /// them.
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    /// A descriptor of the calling rbuild's, inherited (not close-on-exec) through the
    /// helper and PID 1, that becomes the command's standard input (`rbuild run -i`);
    /// `/dev/null` otherwise.
    #[serde(default)]
    pub stdin_fd: Option<i32>,
    /// Set by `spawn`: the parent maps subordinate id ranges into the user namespace
    /// (rootless with /etc/subuid ranges), instead of the helper mapping root alone.
    #[serde(default)]
    pub external_idmap: bool,
    #[serde(default)]
    pub proc: Proc,
    /// Leave the hostname as it is (the machine refuses `sethostname`).
    #[serde(default)]
    pub keep_hostname: bool,
    /// Only find out what the machine allows, and exit with [`PROBED`] and the bits of
    /// what it refused ([`super::probe`]).
    #[serde(default)]
    pub probe: bool,
}

/// A probe's exit status: this, with a bit for each thing refused.
pub(crate) const PROBED: u8 = 64;
/// A `/proc` of the sandbox's own.
pub(crate) const REFUSED_PROC: u8 = 1;
/// `sethostname` in the sandbox's UTS namespace.
pub(crate) const REFUSED_HOSTNAME: u8 = 2;

impl Spec {
    /// `args` run in `rootfs` as root (0:0, groups `0`) in `/`, with `PATH=/bin`, hostname
    /// `rbuild`, no network, no mounts and no limits; callers change what they need with
    /// struct update syntax (`Spec { network, ..Spec::new(root, args) }`).
    pub fn new(rootfs: impl Into<PathBuf>, args: Vec<String>) -> Spec {
        Spec {
            rootfs: rootfs.into(),
            args,
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            groups: vec![0],
            hostname: "rbuild".into(),
            network: Network::None,
            binds: Vec::new(),
            shm_size: None,
            ulimits: Vec::new(),
            stdin_fd: None,
            tmpfs: Vec::new(),
            limits: cgroup::Limits::default(),
            privileged: false,
            external_idmap: false,
            proc: Proc::Fresh,
            keep_hostname: false,
            probe: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Ulimit;

    #[test]
    fn ulimits_parse_as_docker_writes_them() {
        let u = Ulimit::parse("nofile=1024:2048").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        let u = Ulimit::parse("core=-1").unwrap();
        assert_eq!((u.soft, u.hard), (u64::MAX, u64::MAX));
        assert!(
            Ulimit::parse("nofile=10:5")
                .unwrap_err()
                .contains("above the hard")
        );
        assert!(Ulimit::parse("nofile").is_err());
        assert!(
            Ulimit::parse("open=1")
                .unwrap_err()
                .contains("unknown limit")
        );
    }
}
