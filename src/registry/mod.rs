//! The registry client: OCI distribution spec v1.1 over HTTP(S), authentication, and the
//! configuration users already have (registries.conf, Docker and containers credentials).

pub mod auth;
pub mod client;
pub mod pull;
