//! Registries: where an image reference is really pulled from or pushed to (`config`,
//! containers-registries.conf(5)), which credentials the user already has for it
//! ([`credentials`], Docker's `config.json` and containers-auth.json(5)), authentication
//! (`auth`), the OCI distribution v1.1 HTTP client ([`client`]) and pulling into the
//! store ([`pull`]).
//!
//! `config` and `credentials` never open a network connection; the client calls them, never
//! the reverse. The one mapping from a registry name to the host that serves its API (Docker
//! Hub's `docker.io` → `registry-1.docker.io`) is `registries_conf::api_host`.

/// Public (hidden) for the fuzz targets (`fuzz/`), which feed its parsers hostile input.
#[doc(hidden)]
pub mod auth;
pub mod client;
pub mod credentials;
mod error;
mod http;
mod origin;
pub mod publish;
pub mod pull;
pub(crate) mod push;
pub mod registries_conf;
