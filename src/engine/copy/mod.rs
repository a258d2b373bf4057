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
//!   in `/` (or is `.`), when it exists as one, or when more than one thing is copied.
//!   BuildKit lets the last of several sources overwrite a destination file in that last
//!   case; Docker's documentation requires a directory, which is what is done here.
//! - Modes and times (access and modification) are kept unless `--chmod` (octal or
//!   symbolic, [`Chmod`]) or a fixed timestamp (`SOURCE_DATE_EPOCH`) says otherwise.
//!   Directories created on the way are 0755, or the `--chmod` mode.
//! - Hard links between files of one COPY stay hard links. Extended attributes are not
//!   copied.
//! - `--link` changes nothing here: the copy is the same, only how the engine stacks the
//!   resulting layer differs.

mod archive;
mod chmod;
mod chown;
mod copier;
mod hash;
mod selection;
mod source;
mod target;
mod wildcard;

use std::io;
use std::path::{Path, PathBuf};

pub use chmod::{Chmod, ChmodError};
pub use chown::resolve_chown;
pub use hash::{HashCache, HashStats};
pub use rustix::fs::Timespec;
pub use selection::is_git;

use crate::context::{Matcher, PatternError, WalkError, clean};
use crate::dockerfile::instruction::InlineSource;

/// Where COPY reads from.
#[derive(Clone, Copy, Debug)]
pub enum SourceRoot<'a> {
    /// The build context directory, seen through its compiled `.dockerignore` (if any).
    Context {
        dir: &'a Path,
        ignore: Option<&'a Matcher>,
    },
    /// A root filesystem: another stage's, or an image's for `COPY --from=image`.
    Tree(&'a Path),
}

/// Which instruction a [`CopyOp`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Copy,
    Add,
}

/// One COPY or ADD, its values expanded by the planner.
#[derive(Clone, Debug)]
pub struct CopyOp {
    pub kind: OpKind,
    /// Source paths as written (wildcards allowed), in order.
    pub sources: Vec<String>,
    /// Heredoc sources, written after the others.
    pub inline: Vec<InlineSource>,
    /// The destination as written; relative to `workdir` unless absolute.
    pub dest: String,
    /// The stage's working directory (absolute).
    pub workdir: String,
    /// `--chown`, resolved (see [`resolve_chown`]).
    pub owner: Option<(u32, u32)>,
    pub chmod: Option<Chmod>,
    /// `--exclude` patterns (`.dockerignore` syntax), matched relative to each source.
    pub exclude: Vec<String>,
    /// `--parents`.
    pub parents: bool,
    /// Unpack local tar archives (ADD's default; `ADD --unpack=false` turns it off).
    pub unpack_archives: bool,
    /// `ADD --checksum`, which only URL and Git sources accept.
    pub checksum: Option<String>,
    /// `--link`; recorded for the engine, no effect on the copy itself.
    pub link: bool,
    /// Access and modification time for everything written (`SOURCE_DATE_EPOCH`).
    pub timestamp: Option<Timespec>,
}

impl CopyOp {
    /// An op of `kind` to `dest` with no sources and every option at its default; ADD
    /// unpacks archives by default.
    pub fn new(kind: OpKind, dest: &str) -> CopyOp {
        CopyOp {
            kind,
            sources: Vec::new(),
            inline: Vec::new(),
            dest: dest.to_string(),
            workdir: "/".to_string(),
            owner: None,
            chmod: None,
            exclude: Vec::new(),
            parents: false,
            unpack_archives: kind == OpKind::Add,
            checksum: None,
            link: false,
            timestamp: None,
        }
    }
}

impl CopyOp {
    /// COPY as the planner left it (words expanded), at working directory `workdir`, with
    /// `--chown` already resolved to `owner`.
    pub fn for_copy(
        c: &crate::dockerfile::instruction::Copy,
        workdir: &str,
        owner: Option<(u32, u32)>,
    ) -> Result<CopyOp, ChmodError> {
        let mut op = CopyOp::new(OpKind::Copy, &c.paths.dest.value);
        op.sources = c.paths.sources.iter().map(|a| a.value.clone()).collect();
        op.inline = c.paths.inline.clone();
        op.workdir = workdir.to_string();
        op.owner = owner;
        op.chmod = c.chmod.as_deref().map(Chmod::parse).transpose()?;
        op.exclude = c.exclude.clone();
        op.parents = c.parents;
        op.link = c.link;
        Ok(op)
    }

    /// ADD as the planner left it; see [`CopyOp::for_copy`].
    pub fn for_add(
        a: &crate::dockerfile::instruction::Add,
        workdir: &str,
        owner: Option<(u32, u32)>,
    ) -> Result<CopyOp, ChmodError> {
        let mut op = CopyOp::new(OpKind::Add, &a.paths.dest.value);
        op.sources = a.paths.sources.iter().map(|a| a.value.clone()).collect();
        op.inline = a.paths.inline.clone();
        op.workdir = workdir.to_string();
        op.owner = owner;
        op.chmod = a.chmod.as_deref().map(Chmod::parse).transpose()?;
        op.exclude = a.exclude.clone();
        op.checksum = a.checksum.clone();
        op.link = a.link;
        if let Some(unpack) = a.unpack {
            op.unpack_archives = unpack;
        }
        Ok(op)
    }

    /// The contents of `source` copied to the root of the destination, owners and modes
    /// kept (what a `RUN --mount=type=bind` of the context sees).
    pub fn contents_of(source: &str) -> CopyOp {
        let mut op = CopyOp::new(OpKind::Copy, "/");
        op.sources = vec![source.to_string()];
        op
    }
}

/// Create directory `path` (absolute in the container) and its missing parents inside
/// `root`, mode 0755, owned by `owner` (root when `None`), never following a symlink out of
/// `root` — what WORKDIR does, and RUN for a working directory the image lacks.
pub fn mkdir_in_root(root: &Path, path: &str, owner: Option<(u32, u32)>) -> Result<(), CopyError> {
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

/// What a copy wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Extra names of files already written, linked rather than copied.
    pub hardlinks: u64,
    /// Device nodes, FIFOs and sockets.
    pub specials: u64,
    /// Archives unpacked by ADD.
    pub archives: u64,
    /// File bytes written.
    pub bytes: u64,
}

/// Why a COPY or ADD failed. Every variant names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("failed to compute cache key: {path:?}: not found{}", if *ignored { " (excluded by .dockerignore)" } else { "" })]
    SourceNotFound { path: String, ignored: bool },
    #[error("opening source root {path}: {source}")]
    OpenSource { path: PathBuf, source: io::Error },
    #[error("reading source {path}: {source}")]
    ReadSource { path: PathBuf, source: io::Error },
    #[error(transparent)]
    WalkSource(#[from] WalkError),
    #[error("symlink target of {path} is not valid UTF-8")]
    NonUtf8Link { path: PathBuf },
    #[error("too many levels of symbolic links resolving {path}")]
    TooManySymlinks { path: String },
    #[error("invalid patterns {patterns:?}: {source}")]
    Pattern {
        patterns: Vec<String>,
        source: PatternError,
    },
    #[error("failed to match patterns against {path:?}: {source}")]
    MatchPattern { path: String, source: PatternError },
    #[error("{what} is not supported yet")]
    Unsupported { what: String },
    #[error("source can't be a URL for COPY: {url}")]
    UrlSourceForCopy { url: String },
    #[error("source can't be a git ref for COPY: {url}")]
    GitSourceForCopy { url: String },
    #[error("checksum can't be specified for COPY")]
    ChecksumForCopy,
    #[error("checksum requires HTTP(S) or Git sources")]
    ChecksumWithoutUrl,
    #[error("opening destination {path}: {source}")]
    OpenDestination { path: PathBuf, source: io::Error },
    #[error("stat {path}: {source}")]
    StatDestination { path: String, source: io::Error },
    #[error("cannot copy to non-directory: {path}")]
    NotADirectory { path: String },
    #[error("cannot replace to directory {path} with file")]
    ReplaceDirectory { path: String },
    #[error("writing {path}: {step}: {source}{}", unmapped_hint(step, source))]
    WriteDestination {
        path: String,
        step: &'static str,
        source: io::Error,
    },
    #[error("reading archive {archive}: {source}")]
    ReadArchive { archive: String, source: io::Error },
    #[error("archive {archive}: entry {entry:?}: {reason}")]
    ArchiveEntry {
        archive: String,
        entry: String,
        reason: String,
    },
    #[error("loading content hash cache {path}: {source}")]
    LoadHashCache { path: PathBuf, source: io::Error },
    #[error("saving content hash cache {path}: {source}")]
    SaveHashCache { path: PathBuf, source: io::Error },
}

/// chown(2) fails with `EINVAL` only for an id with no mapping in the caller's user
/// namespace (`chown_common` in `fs/open.c`): a rootless build whose user has no, or too
/// small, subordinate ranges.
fn unmapped_hint(step: &str, e: &io::Error) -> &'static str {
    if step == "chown" && e.raw_os_error() == Some(libc::EINVAL) {
        " (the owner is not mapped in this rootless build's user namespace: ids beyond root come from the user's ranges in /etc/subuid and /etc/subgid, see docs/build.md)"
    } else {
        ""
    }
}

/// Copy what `op` selects from `src` into the root filesystem at `dest_root`.
pub fn copy(src: &SourceRoot, dest_root: &Path, op: &CopyOp) -> Result<CopyStats, CopyError> {
    check(op)?;
    let view = source::View::open(src)?;
    let exclude = exclude_matcher(op)?;
    let items = selection::select(&view, op)?;
    let target = target::Target::open(dest_root)?;
    let dest = destination(op, items.len());
    let mut copier = copier::Copier {
        view: &view,
        target: &target,
        op,
        exclude: exclude.as_ref(),
        links: Default::default(),
        created: Vec::new(),
        stats: CopyStats::default(),
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
pub fn inputs_digest(
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
fn destination(op: &CopyOp, items: usize) -> copier::Dest {
    let dest = op.dest.as_str();
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{}/{}", op.workdir, dest)
    };
    let dir =
        dest.is_empty() || dest == "." || dest.ends_with('/') || dest.ends_with("/.") || items > 1;
    copier::Dest {
        path: clean(&format!("/{joined}")),
        dir,
    }
}

#[cfg(test)]
mod tests;
