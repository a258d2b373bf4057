//! What a user asks of a build, as plain values ([`Request`]): the Dockerfile, the context,
//! the planner's options, how steps run, and where the result goes. The CLI turns flags
//! into one; a library user fills one in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::cache::CacheSpec;
use super::output::Output;
use super::settings::SecretSource;
use super::ssh::SshAgents;
use crate::diag::Source;
use crate::oci::platform::Platform;
use crate::oci::reference::Reference;
use crate::sandbox::Network;
use crate::sandbox::cgroup::Limits;
use crate::snapshot::snapshotter::Kind as Snapshotter;

#[derive(Debug)]
pub struct Request {
    /// The state root: store, snapshots, cache, logs.
    pub state_root: PathBuf,
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile's text, named for diagnostics.
    pub dockerfile: Source,
    /// Where the Dockerfile was read from, for `<Dockerfile>.dockerignore`; none for
    /// standard input.
    pub dockerfile_path: Option<PathBuf>,
    /// Build args, target stage and platform.
    pub plan: crate::plan::Options,
    /// The target platforms (`--platform a,b`): each is built with its own plan, and with
    /// several the result is an image index. Empty builds `plan.target_platform` alone.
    pub platforms: Vec<Platform>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: pull base images even when the store has them.
    pub pull: bool,
    /// RUN's network unless a step says otherwise.
    pub network: Network,
    pub secrets: BTreeMap<String, SecretSource>,
    pub ssh: SshAgents,
    pub limits: Limits,
    /// `--add-host NAME:IP`: extra `/etc/hosts` lines in RUN (part of RUN's cache key).
    pub extra_hosts: Vec<(String, String)>,
    /// `--shm-size`: the size of RUN's `/dev/shm` in bytes (part of RUN's cache key).
    pub shm_size: Option<u64>,
    /// `--ulimit`: resource limits of RUN steps (part of RUN's cache key).
    pub ulimits: Vec<crate::sandbox::Ulimit>,
    /// `--label KEY=VALUE`: labels of the built image, over the Dockerfile's.
    pub labels: BTreeMap<String, String>,
    /// `SOURCE_DATE_EPOCH`: image `created` times and layer mtimes clamped to it.
    pub source_date_epoch: Option<i64>,
    /// `--snapshotter`; none chooses (overlay where it works).
    pub snapshotter: Option<Snapshotter>,
    /// `--allow security.insecure`: `RUN --security=insecure` may run privileged.
    pub allow_insecure: bool,
    /// `-t`: names the result is tagged with in the store.
    pub tags: Vec<Reference>,
    /// `-o`; `--push` is an image output that pushes.
    pub outputs: Vec<Output>,
    /// `--cache-from`: caches whose records the build may use, in order.
    pub cache_from: Vec<CacheSpec>,
    /// `--cache-to`: where the build's records are written after it.
    pub cache_to: Vec<CacheSpec>,
    /// `--isolation`.
    pub isolation: super::isolation::Isolation,
}

impl Request {
    /// A build of `dockerfile` in `context`, for this machine's platform, with every other
    /// option at its default: the host's network, no outputs beyond the store.
    pub fn new(state_root: PathBuf, context: PathBuf, dockerfile: Source) -> Request {
        Request {
            state_root,
            context,
            dockerfile,
            dockerfile_path: None,
            plan: crate::plan::Options::default(),
            platforms: Vec::new(),
            no_cache: false,
            pull: false,
            network: Network::Host,
            secrets: BTreeMap::new(),
            ssh: SshAgents::default(),
            limits: Limits::default(),
            extra_hosts: Vec::new(),
            shm_size: None,
            ulimits: Vec::new(),
            labels: BTreeMap::new(),
            source_date_epoch: None,
            snapshotter: None,
            allow_insecure: false,
            tags: Vec::new(),
            outputs: Vec::new(),
            cache_from: Vec::new(),
            cache_to: Vec::new(),
            isolation: Default::default(),
        }
    }
}
