//! What a build runs with, besides the plan: the [`Settings`] a [`super::Request`] comes
//! down to once its outputs are known (how layers are written, which platform).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::ssh::SshAgents;
use crate::layer::LayerOptions;
use crate::sandbox::Network;
use crate::sandbox::cgroup::Limits;
use crate::snapshot::snapshotter::Kind as Snapshotter;

/// Where a `--secret` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    /// The value of this environment variable of the rbuild process.
    Env(String),
}

/// Everything the steps of a build need besides the plan.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The state root: store, snapshots, cache, logs.
    pub(crate) state_root: PathBuf,
    /// The context directory.
    pub(crate) context: PathBuf,
    /// The Dockerfile's path, for `<Dockerfile>.dockerignore`.
    pub(crate) dockerfile: Option<PathBuf>,
    pub(crate) no_cache: bool,
    /// Pull base images even when the store has them.
    pub(crate) pull: bool,
    /// RUN's network unless the step says otherwise.
    pub(crate) network: Network,
    pub(crate) secrets: BTreeMap<String, SecretSource>,
    pub(crate) ssh: SshAgents,
    pub(crate) limits: Limits,
    /// `--add-host NAME:IP`: extra `/etc/hosts` lines in RUN.
    pub(crate) extra_hosts: Vec<(String, String)>,
    /// `--shm-size`: the size of RUN's `/dev/shm`.
    pub(crate) shm_size: Option<u64>,
    /// `--ulimit`: RUN's resource limits.
    pub(crate) ulimits: Vec<crate::sandbox::Ulimit>,
    /// Compression and threads of the layers this build writes.
    pub(crate) layer: LayerOptions,
    /// `SOURCE_DATE_EPOCH`: image `created` times and layer mtimes clamped to it.
    pub(crate) source_date_epoch: Option<i64>,
    /// `--snapshotter`: overlay or native; none chooses (overlay where it works).
    pub(crate) snapshotter: Option<Snapshotter>,
    /// `--allow security.insecure`.
    pub(crate) allow_insecure: bool,
    /// `--isolation`.
    pub(crate) isolation: super::isolation::Isolation,
}
