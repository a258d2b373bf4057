//! The filesystems a step works in and reads from: [`StepFs`], a step's root filesystem
//! (an overlay over the stage's snapshots, or a copy of its tree), and [`Tree`], a state
//! another step reads (COPY --from, bind mounts, outputs) or ADD's downloads.

use std::path::{Path, PathBuf};

use crate::snapshot::snapshotter::Kind as Snapshotter;
use crate::snapshot::workdir::WorkDir;
use crate::snapshot::{diff, native, overlay};

/// Why a step's filesystem, or a tree to read, could not be made or finished.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error(transparent)]
    Overlay(#[from] overlay::OverlayError),
    #[error(transparent)]
    Diff(#[from] diff::DiffError),
    #[error(transparent)]
    WorkDir(#[from] crate::snapshot::workdir::WorkDirError),
    /// The native snapshotter copying or comparing a root filesystem.
    #[error("{what}")]
    Native {
        what: String,
        source: native::NativeError,
    },
    #[error("{what}")]
    Files {
        what: String,
        source: std::io::Error,
    },
}

/// A step's root filesystem while it works: an overlay over the stage's snapshots, or a
/// copy of the stage's tree.
pub(crate) enum StepFs {
    Overlay(overlay::Mounted),
    Native(native::NativeSnapshot),
}

impl StepFs {
    pub(crate) fn prepare(
        kind: Snapshotter,
        lowers: &[PathBuf],
        work: &Path,
    ) -> Result<StepFs, FsError> {
        let native_err = |source| FsError::Native {
            what: "preparing the step's root filesystem".into(),
            source,
        };
        Ok(match kind {
            Snapshotter::Overlay => StepFs::Overlay(overlay::prepare(lowers, work)?),
            Snapshotter::Native => {
                let lower = match lowers.first() {
                    Some(t) => t.clone(),
                    None => {
                        let empty = work.join("empty");
                        std::fs::create_dir_all(&empty).map_err(|source| FsError::Files {
                            what: format!("creating {}", empty.display()),
                            source,
                        })?;
                        empty
                    }
                };
                StepFs::Native(native::prepare(&lower, &work.join("native")).map_err(native_err)?)
            }
        })
    }

    pub(crate) fn root(&self) -> &Path {
        match self {
            StepFs::Overlay(m) => m.merged(),
            StepFs::Native(n) => n.rootfs(),
        }
    }

    /// End the step: the directory the layer's files are read from (overlay: the upper
    /// directory; native: the step's whole tree) and what changed. `unmounted` runs on the
    /// upper directory once the overlay is unmounted, before it is read (never on the
    /// native snapshotter's tree).
    pub(crate) fn finish_with(
        self,
        unmounted: impl FnOnce(&Path) -> Result<(), FsError>,
    ) -> Result<(PathBuf, Vec<crate::snapshot::change::Change>), FsError> {
        match self {
            StepFs::Overlay(m) => {
                let upper = m.upper().to_path_buf();
                m.unmount()?;
                unmounted(&upper)?;
                let changes = diff::overlay_changes(&upper)?;
                Ok((upper, changes))
            }
            StepFs::Native(n) => {
                let changes = n.changes().map_err(|source| FsError::Native {
                    what: "comparing the step's root filesystem with its parent".into(),
                    source,
                })?;
                Ok((n.rootfs().to_path_buf(), changes))
            }
        }
    }
}

/// A tree a step reads from: another stage's or an image's root filesystem, mounted for
/// reading (COPY --from, RUN --mount=from=) as an overlay with a throwaway upper directory
/// (so writes through a `rw` bind mount are discarded); or ADD's downloads.
pub(crate) struct Tree {
    _dir: WorkDir,
    mounted: Option<overlay::Mounted>,
    /// The tree when it is not an overlay (native snapshotter).
    path: Option<PathBuf>,
}

impl Tree {
    /// Overlay: an overlay over `lowers` with a throwaway upper directory. Native: the
    /// state's tree itself to read, or a copy of it to write into.
    pub(crate) fn open(
        kind: Snapshotter,
        state_root: &Path,
        lowers: &[PathBuf],
        writable: bool,
    ) -> Result<Tree, FsError> {
        let dir = WorkDir::create(state_root)?;
        let (mounted, path) = match (kind, lowers.first()) {
            (Snapshotter::Overlay, _) => (Some(overlay::prepare(lowers, dir.path())?), None),
            (Snapshotter::Native, Some(tree)) if !writable => (None, Some(tree.clone())),
            (Snapshotter::Native, Some(tree)) => {
                let snap = native::prepare(tree, &dir.path().join("copy")).map_err(|source| {
                    FsError::Native {
                        what: format!("copying {}", tree.display()),
                        source,
                    }
                })?;
                (None, Some(snap.rootfs().to_path_buf()))
            }
            (Snapshotter::Native, None) => {
                let empty = dir.path().join("empty");
                std::fs::create_dir(&empty).map_err(|source| FsError::Files {
                    what: format!("creating {}", empty.display()),
                    source,
                })?;
                (None, Some(empty))
            }
        };
        Ok(Tree {
            _dir: dir,
            mounted,
            path,
        })
    }

    /// A plain directory (removed with the tree).
    pub(crate) fn files(dir: WorkDir) -> Tree {
        Tree {
            _dir: dir,
            mounted: None,
            path: None,
        }
    }

    pub(crate) fn root(&self) -> &Path {
        match (&self.mounted, &self.path) {
            (Some(m), _) => m.merged(),
            (None, Some(p)) => p,
            (None, None) => self._dir.path(),
        }
    }
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tree({})", self.root().display())
    }
}
