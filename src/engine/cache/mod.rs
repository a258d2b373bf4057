//! The build cache: what a step produced (`record`), found again by a key that names
//! everything the result depends on (`key`). Records live under
//! `<state root>/cache/steps/<key hex>.json`; `rbuild prune` removes them.
//!
//! A cache also travels (docs/cache.md): `--cache-to` writes the records a build used
//! (`export`) in an OCI artifact (`format`) to a registry or a directory (`spec`), and
//! `--cache-from` reads them back (`import`) for the build's lookups (`travel`).

pub(crate) mod export;
pub(crate) mod format;
pub(crate) mod import;
pub(crate) mod key;
pub(crate) mod record;
pub mod spec;
pub(crate) mod travel;

pub(crate) use key::{CacheKey, KeyEncoder};
pub use record::{BuildCache, CacheError, LayerRecord, Record};
pub use spec::{
    CacheSpec, Direction as CacheDirection, Location as CacheLocation, Mode as CacheMode,
};
