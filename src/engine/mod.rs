//! The build engine: runs a [`Plan`](crate::plan::Plan) and produces images. Each stage the
//! target needs is built in dependency order from its base (scratch, an image from the
//! store or a registry, or an earlier stage); each RUN, COPY, ADD and WORKDIR step mounts
//! an overlay over the stage's snapshots, does its work in it (RUN in the sandbox), and
//! turns the overlay's upper directory into a layer in one streaming pass. That same upper
//! directory then becomes the step's snapshot, so a layer is never unpacked again on the
//! machine that built it. Metadata steps change only the image config ([`config`]).
//!
//! Every layer step has a [`cache`] key; a hit reuses the recorded layer without running
//! anything. The engine never prints: it reports [`progress::Event`]s.

mod base;
pub mod cache;
pub mod copy;
mod engine;
mod fs;
pub mod interrupt;
pub mod output;
pub mod remote;
mod run;
pub mod stage_image;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use base::{Bases, resolve_bases};
pub use engine::{BuildError, Built, build};

use crate::layer::LayerOptions;
use crate::oci::platform::Platform;
use crate::sandbox::Network;
use crate::sandbox::cgroup::Limits;
use crate::sandbox::ssh::SshAgents;

/// The lock that running builds hold shared and `rbuild prune` takes exclusive: a build
/// uses snapshots, trees and blobs that no tag keeps alive yet (its base images' unpacked
/// layers, its cache hits), which a prune would otherwise delete under it. It is not the
/// store's lock, which a build takes exclusive for moments (tagging) while it runs.
pub fn builds_lock(state_root: &std::path::Path) -> crate::store::StoreLock {
    crate::store::StoreLock::new(state_root.join("builds.lock"))
}

/// Where a `--secret` comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    /// The value of this environment variable of the rbuild process.
    Env(String),
}

/// Everything a build needs besides the plan.
pub struct Options {
    /// The state root: store, snapshots, cache, logs.
    pub state_root: PathBuf,
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile's path, for `<Dockerfile>.dockerignore`.
    pub dockerfile: Option<PathBuf>,
    pub no_cache: bool,
    /// Pull base images even when the store has them.
    pub pull: bool,
    /// RUN's network unless the step says otherwise.
    pub network: Network,
    pub secrets: BTreeMap<String, SecretSource>,
    pub ssh: SshAgents,
    pub limits: Limits,
    /// Compression and threads of the layers this build writes.
    pub layer: LayerOptions,
    /// `SOURCE_DATE_EPOCH`: image `created` times and layer mtimes clamped to it.
    pub source_date_epoch: Option<i64>,
    /// Platform of stages whose FROM does not say.
    pub platform: Platform,
    /// `--snapshotter`: overlay or native; none chooses (overlay where it works).
    pub snapshotter: Option<crate::snapshot::snapshotter::Kind>,
}
