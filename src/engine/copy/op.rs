//! One COPY or ADD as the copier sees it ([`CopyOp`], its values expanded by the
//! planner), where it reads from ([`SourceRoot`]), and what it wrote ([`CopyStats`]).

use std::path::Path;

use rustix::fs::Timespec;

use super::chmod::{Chmod, ChmodError};
use crate::context::Matcher;
use crate::dockerfile::instruction::InlineSource;

/// Where COPY reads from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SourceRoot<'a> {
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
pub(crate) enum OpKind {
    Copy,
    Add,
}

/// One COPY or ADD, its values expanded by the planner.
#[derive(Clone, Debug)]
pub(crate) struct CopyOp {
    pub(crate) kind: OpKind,
    /// Source paths as written (wildcards allowed), in order.
    pub(crate) sources: Vec<String>,
    /// Heredoc sources, written after the others.
    pub(crate) inline: Vec<InlineSource>,
    /// The destination as written; relative to `workdir` unless absolute.
    pub(crate) dest: String,
    /// The stage's working directory (absolute).
    pub(crate) workdir: String,
    /// `--chown`, resolved (see [`file_op_owner`]).
    pub(crate) owner: Option<(u32, u32)>,
    pub(crate) chmod: Option<Chmod>,
    /// `--exclude` patterns (`.dockerignore` syntax), matched relative to each source.
    pub(crate) exclude: Vec<String>,
    /// `--parents`.
    pub(crate) parents: bool,
    /// Unpack local tar archives (ADD's default; `ADD --unpack=false` turns it off).
    pub(crate) unpack_archives: bool,
    /// `ADD --checksum`, which only URL and Git sources accept.
    pub(crate) checksum: Option<String>,
    /// `--link`; recorded for the engine, no effect on the copy itself.
    pub(crate) link: bool,
    /// Access and modification time for everything written (`SOURCE_DATE_EPOCH`).
    pub(crate) timestamp: Option<Timespec>,
}

impl CopyOp {
    /// An op of `kind` to `dest` with no sources and every option at its default; ADD
    /// unpacks archives by default.
    pub(crate) fn new(kind: OpKind, dest: &str) -> CopyOp {
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
    pub(crate) fn for_copy(
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
    pub(crate) fn for_add(
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
    pub(crate) fn contents_of(source: &str) -> CopyOp {
        let mut op = CopyOp::new(OpKind::Copy, "/");
        op.sources = vec![source.to_string()];
        op
    }
}

/// What a copy wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub(crate) files: u64,
    pub(crate) dirs: u64,
    pub(crate) symlinks: u64,
    /// Extra names of files already written, linked rather than copied.
    pub hardlinks: u64,
    /// Device nodes, FIFOs and sockets.
    pub(crate) specials: u64,
    /// Archives unpacked by ADD.
    pub(crate) archives: u64,
    /// File bytes written.
    pub(crate) bytes: u64,
}
