//! The build cache: what a step produced (`record`), found again by a key that names
//! everything the result depends on (`key`). Records live under
//! `<state root>/cache/steps/<key hex>.json`; `rbuild prune` removes them.

pub(crate) mod key;
pub(crate) mod record;

pub(crate) use key::{CacheKey, KeyEncoder};
pub use record::{BuildCache, CacheError, LayerRecord, Record};
