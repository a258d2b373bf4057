//! Writing a build's result where `-o` says: an OCI layout (archive or directory), a
//! docker-archive, the final root filesystem as files or as one tar. Tagging and pushing
//! (`type=image`) are the caller's: they are store and registry operations.

use std::io::Write;
use std::path::Path;

use super::spec::{Kind, Output};
use crate::archive::save::{self, save_descriptors};
use crate::archive::{ExportError, Format};
use crate::engine::built::{Built, Images};
use crate::engine::fs::{FsError, Tree};
use crate::layer::TarOptions;
use crate::layer::tar::write_tar_dirs;
use crate::oci::reference::Reference;
use crate::snapshot::change::Change;
use crate::snapshot::{diff, native};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("writing {dest}")]
    Save { dest: String, source: ExportError },
    #[error("mounting the result's root filesystem")]
    Mount(#[source] Box<FsError>),
    #[error("writing {dest}")]
    Files {
        dest: String,
        source: std::io::Error,
    },
    #[error("writing {dest}")]
    Tar {
        dest: String,
        source: crate::layer::LayerError,
    },
    #[error("writing {dest}: reading the root filesystem")]
    Walk {
        dest: String,
        source: crate::snapshot::diff::DiffError,
    },
    #[error("writing {dest}: copying the root filesystem")]
    Copy {
        dest: String,
        source: native::NativeError,
    },
    #[error("{dest} exists and is not empty: type=local writes into a new or empty directory")]
    NotEmpty { dest: String },
}

/// Write one file-kind output (every kind but `image`) of `built`. `name` is recorded in
/// archives (RepoTags, ref.name) when the build has one. With several platforms, OCI
/// outputs hold the index, and `local` and `tar` put each platform's files in a directory
/// of its own (`linux_arm64/`), as buildx does.
pub(crate) fn write(
    store: &Store,
    state_root: &Path,
    built: &Images,
    output: &Output,
    name: Option<&Reference>,
) -> Result<(), OutputError> {
    let dest = output.dest.as_deref().expect("file outputs have a dest");
    let shown = dest.display().to_string();
    let stdout = dest == Path::new("-");
    let create = || -> Result<Box<dyn Write>, OutputError> {
        if stdout {
            return Ok(Box::new(std::io::stdout().lock()));
        }
        std::fs::File::create(dest)
            .map(|f| Box::new(std::io::BufWriter::new(f)) as Box<dyn Write>)
            .map_err(|source| OutputError::Files {
                dest: shown.clone(),
                source,
            })
    };
    let save = |format: Format, out: save::Output<'_>| {
        let named = [(name.cloned(), built.descriptor().clone())];
        save_descriptors(store, &named, None, format, out).map_err(|source| OutputError::Save {
            dest: shown.clone(),
            source,
        })
    };
    match output.kind {
        Kind::Oci { tar: false } => save(Format::OciDir, save::Output::Dir(dest)),
        Kind::Oci { tar: true } => save(Format::OciArchive, save::Output::Stream(create()?)),
        Kind::Docker => save(Format::DockerArchive, save::Output::Stream(create()?)),
        Kind::Tar => {
            let mut trees = Vec::new();
            for image in &built.images {
                let tree = Tree::open(image.snapshotter, state_root, &image.lowers, false)
                    .map_err(|e| OutputError::Mount(Box::new(e)))?;
                let changes =
                    diff::overlay_changes(tree.root()).map_err(|source| OutputError::Walk {
                        dest: shown.clone(),
                        source,
                    })?;
                let dir = if built.is_multi_platform() {
                    image.platform_dir()
                } else {
                    String::new()
                };
                trees.push((dir, tree, changes));
            }
            let parts: Vec<(&str, &Path, &[Change])> = trees
                .iter()
                .map(|(dir, tree, changes)| (dir.as_str(), tree.root(), changes.as_slice()))
                .collect();
            let mut out = create()?;
            write_tar_dirs(&parts, &TarOptions::default(), &mut out).map_err(|source| {
                OutputError::Tar {
                    dest: shown.clone(),
                    source,
                }
            })?;
            out.flush().map_err(|source| OutputError::Files {
                dest: shown.clone(),
                source,
            })
        }
        Kind::Local if built.is_multi_platform() => {
            empty_dir(dest)?;
            for image in &built.images {
                local(state_root, image, &dest.join(image.platform_dir()))?;
            }
            Ok(())
        }
        Kind::Local => local(state_root, &built.images[0], dest),
        Kind::Image { .. } => unreachable!("image outputs are tags, not files"),
    }
}

/// The root filesystem as files in `dest` (new or empty), copied as the native
/// snapshotter copies (reflinks where the filesystem has them), then moved into place.
/// A rootless build gives the files to its user: owned by the image's ids they would belong
/// to the user's subordinate ids on the host, which the user can neither read nor remove
/// (the image's owners are in its layers, and in `type=oci` and `type=tar` outputs).
fn local(state_root: &Path, built: &Built, dest: &Path) -> Result<(), OutputError> {
    let shown = dest.display().to_string();
    let io = |source| OutputError::Files {
        dest: shown.clone(),
        source,
    };
    if empty_dir(dest)? {
        std::fs::remove_dir(dest).map_err(io)?;
    }
    let tree = Tree::open(built.snapshotter, state_root, &built.lowers, false)
        .map_err(|e| OutputError::Mount(Box::new(e)))?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io)?;
    let staging = parent.join(format!(
        ".{}.rbuild-{}",
        dest.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    let owners = if crate::sandbox::unshare::is_rootless_build() {
        native::Owners::Caller
    } else {
        native::Owners::Keep
    };
    let copied =
        native::prepare_with(tree.root(), &staging, owners).map_err(|source| OutputError::Copy {
            dest: shown.clone(),
            source,
        });
    let result = copied.and_then(|snap| std::fs::rename(snap.rootfs(), dest).map_err(io));
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Check that `dest` is an empty directory (true) or missing (false): `type=local` writes
/// only into a new or empty directory.
fn empty_dir(dest: &Path) -> Result<bool, OutputError> {
    let shown = dest.display().to_string();
    match std::fs::read_dir(dest) {
        Ok(mut entries) => match entries.next() {
            Some(_) => Err(OutputError::NotEmpty { dest: shown }),
            None => Ok(true),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(OutputError::Files {
            dest: shown,
            source,
        }),
    }
}
