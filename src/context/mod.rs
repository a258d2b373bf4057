//! The build context: which files of the context directory a build sees, decided by
//! `.dockerignore` exactly as Docker (BuildKit, moby/patternmatcher, tonistiigi/fsutil) decides
//! it. The rules, numbered, are in `grammar/dockerignore.md`; the code cites them as `R<n>`.
//!
//! Owns: reading an ignore file ([`read_ignore_file`]), compiling and matching pattern lists
//! ([`Matcher`]), and the filtered walk of a context directory ([`Walk`]). Must not use
//! gitignore semantics (the `ignore` crate's matcher differs from Docker's in measured ways),
//! and must not send, hash or archive anything: later stages consume [`WalkEntry`] values.
//!
//! Data flows one way: ignore-file text → pattern strings → [`Matcher`] → [`Filter`] →
//! [`Walk`] over a real directory.

pub(crate) mod clean;
mod filter;
mod glob;
mod goregex;
mod ignorefile;
mod pattern;
mod syntax;
mod walk;

pub(crate) use clean::clean;
pub use filter::{Filter, FilterError, Side};
pub use ignorefile::read_ignore_file;
pub use pattern::{Matcher, ParentMatches, PatternError};
pub use walk::{EntryKind, Walk, WalkEntry, WalkError};
