//! Why a build failed: one variant per failing step of the engine. A message never prints
//! its source; the CLI renders the chain (`Caused by:`), and [`crate::diag::chain`] folds
//! it where one string is needed.

use std::path::PathBuf;

use crate::diag::Diagnostic;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile cannot be built as written (syntax, planning, lint errors with
    /// `# check=error=true`): rendered with the source line, exit code 2.
    #[error("{}", .0.message)]
    Dockerfile(Box<Diagnostic>),
    /// A step failed where the Dockerfile says it (rendered with the source line).
    #[error("{}", .0.message)]
    Step(Box<Diagnostic>),
    /// The request itself is wrong (a context that is not a directory, outputs that
    /// disagree).
    #[error("{0}")]
    Request(String),
    #[error("lint errors (# check=error=true): the build did not start")]
    LintFailed,
    #[error("opening the store at {}", root.display())]
    OpenStore {
        root: PathBuf,
        source: Box<StoreError>,
    },
    #[error("resolving base image {name}")]
    ResolveBase {
        name: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The engine's own file work (reading the ignore file, the image's passwd, making a
    /// directory for a mount).
    #[error("{what}")]
    Files {
        what: String,
        source: std::io::Error,
    },
    #[error("reading {}", path.display())]
    Ignore {
        path: PathBuf,
        source: crate::context::PatternError,
    },
    /// Writing the image's config and manifest.
    #[error("committing the image")]
    Commit(#[from] crate::oci::manifest::ManifestError),
    #[error("committing the image config")]
    CommitConfig(#[from] crate::oci::config::ConfigError),
    #[error(transparent)]
    Store(#[from] Box<StoreError>),
    #[error("writing a layer")]
    Layer(#[from] crate::layer::LayerError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    /// A deferred layer's entry, or a blob made of it.
    #[error(transparent)]
    Deferred(Box<crate::layer::deferred::DeferredError>),
    /// A step's filesystem, or a tree a step reads.
    #[error(transparent)]
    Fs(#[from] super::fs::FsError),
    #[error(transparent)]
    WorkDir(#[from] crate::snapshot::workdir::WorkDirError),
    #[error(transparent)]
    Cache(#[from] super::cache::CacheError),
    /// Writing a `-o` output.
    #[error(transparent)]
    Output(Box<super::output::write::OutputError>),
    /// `--push`.
    #[error(transparent)]
    Push(Box<crate::registry::publish::PublishError>),
    /// A blob of an imported build cache could not be fetched from where it was offered.
    #[error("fetching {digest}")]
    Fetch {
        digest: crate::oci::digest::Digest,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `--cache-to` (without `ignore-error=true`).
    #[error("exporting the build cache to {dest} (add ignore-error=true to build without it)")]
    CacheExport {
        dest: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("interrupted: the build was stopped (Ctrl-C); nothing was tagged")]
    Interrupted,
    #[error(
        "--snapshotter overlay: overlayfs cannot be mounted over {root} here{}; leave the flag out, or pass --snapshotter native, to build with full copies of each state (see docs/build.md)",
        if *.userns { ": a rootless build mounts it with `userxattr`, which needs a filesystem with user extended attributes (ext4, xfs, btrfs, tmpfs since Linux 6.6)" } else { "" }
    )]
    NoOverlay { root: String, userns: bool },
}

impl From<StoreError> for BuildError {
    fn from(e: StoreError) -> BuildError {
        BuildError::Store(Box::new(e))
    }
}

impl From<super::output::write::OutputError> for BuildError {
    fn from(e: super::output::write::OutputError) -> BuildError {
        BuildError::Output(Box::new(e))
    }
}

impl From<crate::registry::publish::PublishError> for BuildError {
    fn from(e: crate::registry::publish::PublishError) -> BuildError {
        BuildError::Push(Box::new(e))
    }
}

impl From<crate::layer::deferred::DeferredError> for BuildError {
    fn from(e: crate::layer::deferred::DeferredError) -> BuildError {
        BuildError::Deferred(Box::new(e))
    }
}
