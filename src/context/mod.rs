//! The build context: which files of the context directory a build sees, decided by
//! `.dockerignore` exactly as Docker (BuildKit, moby/patternmatcher, tonistiigi/fsutil) decides
//! it. The rules, numbered, are in `grammar/dockerignore.md`; the code cites them as `R<n>`.
//!
//! Owns: reading an ignore file ([`read_ignore_file`]) and compiling and matching pattern lists
//! ([`Matcher`]). Must not use gitignore semantics (the `ignore` crate's matcher differs from
//! Docker's in measured ways), and must not send, hash or archive anything.
//!
//! Data flows one way: ignore-file text → pattern strings → [`Matcher`].

mod clean;
mod glob;
mod goregex;
mod ignorefile;
mod pattern;
mod syntax;

pub use ignorefile::read_ignore_file;
pub use pattern::{Matcher, ParentMatches, PatternError};
