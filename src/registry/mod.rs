//! The configuration half of the registry client: where an image reference is really pulled
//! from or pushed to ([`config`], containers-registries.conf(5)), and which credentials the
//! user already has for it ([`credentials`], Docker's `config.json` and containers-auth.json(5)).
//!
//! Owns: reading those files as podman, buildah and docker read them, and answering
//! "which endpoints, in which order, with which credential". Must not open a network
//! connection, speak HTTP or run a token flow: the HTTP client calls this module, never the
//! reverse. The one mapping from a registry name to the host that serves its API (Docker Hub's
//! `docker.io` → `registry-1.docker.io`) is [`config::api_host`].

pub mod config;
pub mod credentials;
