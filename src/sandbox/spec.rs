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
    /// Set by `spawn`: the parent maps subordinate id ranges into the user namespace
    /// (rootless with /etc/subuid ranges), instead of the helper mapping root alone.
    #[serde(default)]
    pub external_idmap: bool,
}

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
            tmpfs: Vec::new(),
            limits: cgroup::Limits::default(),
            privileged: false,
            external_idmap: false,
        }
    }
}
