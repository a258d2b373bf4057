//! The build engine: runs a Dockerfile's plan and produces images. [`Builder`] owns a
//! whole build from a [`Request`]: plan, resolve base images, schedule stages, run steps,
//! tag, write outputs, push, report progress.
//!
//! Each stage the target needs is built in dependency order from its base (scratch, an
//! image from the store or a registry, or an earlier stage) (`scheduler`, `stage`). Each
//! RUN, COPY, ADD and WORKDIR step (`step/`, one module per kind, each with its cache key
//! and its work) mounts an overlay over the stage's snapshots, does its work in it (RUN in
//! the sandbox), and turns the overlay's upper directory into a layer in one streaming
//! pass (`commit`). That same upper directory then becomes the step's snapshot, so a layer
//! is never unpacked again on the machine that built it. Metadata steps change only the
//! image config (`stage_image`).
//!
//! Every layer step has a [`cache`] key; a hit reuses the recorded layer without running
//! anything. The engine never prints: it reports [`crate::progress::Event`]s.
//!
//! Files import their siblings directly, never through this module, and no two import
//! each other (tests/architecture.rs checks it).

mod bases;
mod builder;
mod built;
pub mod cache;
mod caches;
mod commit;
pub mod container;
pub mod context_source;
pub(crate) mod copy;
mod emulation;
mod error;
mod fs;
mod inflight;
pub mod interrupt;
pub mod isolation;
mod layout;
mod lazy;
pub use layout::layout_dir as oci_layout_dir;
pub mod output;
pub(crate) mod remote;
mod request;
mod resolve;
mod scheduler;
mod session;
mod settings;
pub mod ssh;
mod stage;
pub mod stage_image;
mod state;
mod step;

pub use builder::{Builder, Outcome, Planned, builds_lock, check_context};
pub use error::BuildError;
pub use request::Request;
pub use settings::SecretSource;

/// ADD's unpacking of a local archive file into the directory `into` (`copy::unpack_archive`);
/// `Ok(false)` when the file is no archive. Public only as the entry point of a fuzz target
/// (`fuzz/`), which feeds it hostile archives; the error comes rendered, its type being the
/// engine's own.
#[doc(hidden)]
pub fn unpack_archive(archive: &std::path::Path, into: &std::path::Path) -> Result<bool, String> {
    copy::unpack_archive(archive, into).map_err(|e| crate::diag::chain(&e))
}
