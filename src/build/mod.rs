//! The build engine: runs a plan's steps in order against snapshots.
//!
//! Owns: the filesystem work of each step kind ([`copy`] for COPY and ADD). Must not parse
//! Dockerfiles (the `dockerfile` and `plan` modules have done that) or talk to registries.

pub mod copy;
