//! Why a COPY or ADD failed. Every variant names the path involved.

use std::io;
use std::path::PathBuf;

use crate::context::{PatternError, WalkError};

/// Why a COPY or ADD failed. Every variant names the path involved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyError {
    #[error("failed to compute cache key: {path:?}: not found{}", if *ignored { " (excluded by .dockerignore)" } else { "" })]
    SourceNotFound { path: String, ignored: bool },
    #[error("opening source root {path}")]
    OpenSource { path: PathBuf, source: io::Error },
    #[error("reading source {path}")]
    ReadSource { path: PathBuf, source: io::Error },
    #[error(transparent)]
    WalkSource(#[from] WalkError),
    #[error("symlink target of {path} is not valid UTF-8")]
    NonUtf8Link { path: PathBuf },
    #[error("too many levels of symbolic links resolving {path}")]
    TooManySymlinks { path: String },
    #[error("invalid patterns {patterns:?}")]
    Pattern {
        patterns: Vec<String>,
        source: PatternError,
    },
    #[error("failed to match patterns against {path:?}")]
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
    #[error("opening destination {path}")]
    OpenDestination { path: PathBuf, source: io::Error },
    #[error("stat {path}")]
    StatDestination { path: String, source: io::Error },
    #[error("cannot copy to non-directory: {path}")]
    NotADirectory { path: String },
    #[error("cannot replace to directory {path} with file")]
    ReplaceDirectory { path: String },
    #[error("writing {path}: {step}{}", unmapped_hint(step, source))]
    WriteDestination {
        path: String,
        step: &'static str,
        source: io::Error,
    },
    #[error("reading archive {archive}")]
    ReadArchive { archive: String, source: io::Error },
    #[error("archive {archive}: entry {entry:?}: {reason}")]
    ArchiveEntry {
        archive: String,
        entry: String,
        reason: String,
    },
    #[error("loading content hash cache {path}")]
    LoadHashCache { path: PathBuf, source: io::Error },
    #[error("saving content hash cache {path}")]
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
