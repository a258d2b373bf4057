//! rbuild: a daemonless, rootless-capable builder of OCI container images from Dockerfiles.
//!
//! Data flows one way: Dockerfile text → [`dockerfile`] (parse, type, lint) → plan → build →
//! sandbox / snapshot → layer → store → export. Lower modules never import higher ones.
//! Only the syscall module may use `unsafe`.

#![deny(unsafe_code)]

pub mod archive;
pub mod context;
pub mod diag;
pub mod dockerfile;
pub mod engine;
pub mod fsck;
pub mod gc;
pub mod layer;
pub mod oci;
pub mod plan;
pub mod progress;
pub mod registry;
pub(crate) mod rootpath;
pub mod sandbox;
pub mod snapshot;
pub mod store;
pub mod suggest;
pub(crate) mod sys;
