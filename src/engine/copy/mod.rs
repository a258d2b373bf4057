//! The filesystem half of COPY and ADD: take files from the build context or from another
//! tree and write them into a step's root filesystem, with the semantics of BuildKit's
//! Dockerfile frontend (`dockerfile2llb/convert_copy.go`) and file-op backend
//! (`solver/llbsolver/file`, tonistiigi/fsutil `copy`). Also the cache key of a COPY's inputs
//! ([`inputs_digest`]).
//!
//! The engine mounts the step's overlay, calls [`copy`] with the merged directory as
//! `dest_root`, and diffs the upper directory into a layer. This module must not mount,
//! snapshot, resolve `--from` (the engine passes the tree), expand variables (heredoc bodies
//! come expanded or not, as the planner decided) or fetch anything: ADD of a URL or a Git
//! repository is refused with [`CopyError::Unsupported`].
//!
//! Semantics, each decided by upstream's behaviour unless said otherwise:
//! - Sources are cleaned as `/` + source (a leading `/` and `..` cannot leave the source
//!   root); a directory source copies its contents; symlinks named by a source, or matched by
//!   a wildcard, are followed inside the root; symlinks inside a copied directory are copied
//!   as symlinks.
//! - From the context, what `.dockerignore` excludes does not exist; owners become 0:0. From
//!   a tree, owners are kept. With `--chown` everything written, and every directory created
//!   on the way, gets that owner.
//! - A missing source fails with BuildKit's words (`failed to compute cache key: "/x": not
//!   found`); a wildcard matching nothing copies nothing, but the directory before the first
//!   wildcard must exist.
//! - The destination is relative to the working directory; it is a directory when it ends
//!   in `/` (or is `.`) or exists as one. Otherwise each source (each wildcard match) is
//!   copied to that path in turn, so of several files the last one is left there: BuildKit
//!   does that, although Docker's documentation asks for a trailing `/`.
//! - Modes and times (access and modification) are kept unless `--chmod` (octal or
//!   symbolic, [`Chmod`]) or a fixed timestamp (`SOURCE_DATE_EPOCH`) says otherwise.
//!   Directories created on the way are 0755, or the `--chmod` mode.
//! - Hard links between files of one COPY stay hard links. Extended attributes are not
//!   copied.
//! - `--link` changes nothing here: the copy is the same, only how the engine stacks the
//!   resulting layer differs.

mod archive;
pub(crate) mod chmod;
mod chown;
mod copier;
mod error;
mod hash;
mod op;
pub(crate) mod reuse;
mod selection;
mod source;
mod target;
mod wildcard;

use std::path::Path;

pub(crate) use chown::file_op_owner;
pub(crate) use error::CopyError;
pub(crate) use hash::HashCache;
pub(crate) use op::{CopyOp, CopyStats, OpKind, SourceRoot};
pub(crate) use rustix::fs::Timespec;
pub(crate) use selection::is_git;

use crate::context::{Matcher, clean};

/// Create directory `path` (absolute in the container) and its missing parents inside
/// `root`, mode 0755, owned by `owner` (root when `None`), never following a symlink out of
/// `root` — what WORKDIR does, and RUN for a working directory the image lacks.
pub(crate) fn mkdir_in_root(
    root: &Path,
    path: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), CopyError> {
    let target = target::Target::open(root)?;
    let (uid, gid) = owner.unwrap_or((0, 0));
    let attrs = target::DirAttrs {
        mode: 0o755,
        uid,
        gid,
        times: None,
    };
    target.mkdir_all(path, &attrs, &mut Vec::new())?;
    Ok(())
}

/// Unpack the archive file `archive` (tar, maybe compressed, recognised by its content as
/// ADD recognises it) into the directory `into`, with ADD's rules for hostile archives;
/// `Ok(false)` when the file is no archive.
pub(crate) fn unpack_archive(archive: &Path, into: &Path) -> Result<bool, CopyError> {
    let open = || {
        std::fs::File::open(archive).map_err(|source| CopyError::ReadArchive {
            archive: archive.display().to_string(),
            source,
        })
    };
    if !archive::is_archive(open()?) {
        return Ok(false);
    }
    let target = target::Target::open(into)?;
    let mut stats = CopyStats::default();
    archive::extract(open()?, &archive.display().to_string(), &target, &mut stats)?;
    Ok(true)
}

/// Copy what `op` selects from `src` into the root filesystem at `dest_root`.
pub(crate) fn copy(
    src: &SourceRoot,
    dest_root: &Path,
    op: &CopyOp,
) -> Result<CopyStats, CopyError> {
    copy_reusing(src, dest_root, op, None)
}

/// [`copy`], taking unchanged files from the previous run of the same COPY where `reuse`
/// allows (`reuse.rs`).
pub(crate) fn copy_reusing(
    src: &SourceRoot,
    dest_root: &Path,
    op: &CopyOp,
    reuse: Option<&mut reuse::Reuse<'_>>,
) -> Result<CopyStats, CopyError> {
    check(op)?;
    let view = source::View::open(src)?;
    let exclude = exclude_matcher(op)?;
    let items = selection::select(&view, op)?;
    let target = target::Target::open(dest_root)?;
    let dest = destination(op);
    let mut copier = copier::Copier {
        view: &view,
        target: &target,
        op,
        exclude: exclude.as_ref(),
        links: Default::default(),
        created: Vec::new(),
        stats: CopyStats::default(),
        reuse,
    };
    for item in &items {
        copier.copy_item(item, &dest)?;
    }
    copier.finish()?;
    Ok(copier.stats)
}

/// The digest of everything `op` would take from `src`: a cache key part that changes when
/// and only when the copied content, names, modes or (for trees) owners change. File
/// contents come from `cache` when unchanged; call [`HashCache::save`] afterwards.
pub(crate) fn inputs_digest(
    src: &SourceRoot,
    op: &CopyOp,
    cache: &mut HashCache,
) -> Result<blake3::Hash, CopyError> {
    check(op)?;
    let view = source::View::open(src)?;
    let exclude = exclude_matcher(op)?;
    let items = selection::select(&view, op)?;
    hash::digest(&view, &items, exclude.as_ref(), cache)
}

/// Refusals that do not depend on the files (BuildKit's frontend checks).
fn check(op: &CopyOp) -> Result<(), CopyError> {
    if op.checksum.is_some() {
        return Err(match op.kind {
            OpKind::Copy => CopyError::ChecksumForCopy,
            // A URL or Git source with a checksum is refused as unsupported by `select`.
            OpKind::Add
                if op.sources.iter().all(|s| {
                    !s.starts_with("http://") && !s.starts_with("https://") && !selection::is_git(s)
                }) =>
            {
                CopyError::ChecksumWithoutUrl
            }
            OpKind::Add => return Ok(()),
        });
    }
    Ok(())
}

fn exclude_matcher(op: &CopyOp) -> Result<Option<Matcher>, CopyError> {
    if op.exclude.is_empty() {
        return Ok(None);
    }
    Matcher::new(&op.exclude)
        .map(Some)
        .map_err(|source| CopyError::Pattern {
            patterns: op.exclude.clone(),
            source,
        })
}

/// The destination as a clean container path (BuildKit `pathRelativeToWorkingDir`), and
/// whether it names a directory.
fn destination(op: &CopyOp) -> copier::Dest {
    let dest = op.dest.as_str();
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{}/{}", op.workdir, dest)
    };
    let dir = dest.is_empty() || dest == "." || dest.ends_with('/') || dest.ends_with("/.");
    copier::Dest {
        path: clean(&format!("/{joined}")),
        dir,
    }
}

#[cfg(test)]
mod tests;
