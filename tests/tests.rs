//! rbuild's integration tests, one binary (`autotests = false` in Cargo.toml): one module per
//! subject, each driving the real `rbuild` binary or the library against real peers (a
//! registry, skopeo, umoci, podman, overlayfs, namespaces). `common` holds what they share,
//! among it the one way a test is skipped (`common::require`) and the one way a test starts a
//! process (`common::process`), which stops it with the test.
//!
//! A test's name is `<module>::<test>`: `cargo nextest run build_engine::` runs one subject.

mod common;

mod architecture;
mod build_cache;
mod build_context;
mod build_deferred;
mod build_engine;
mod build_fidelity;
mod build_flask;
mod build_in_container;
mod build_kill;
mod build_outputs;
mod build_platforms;
mod build_races;
mod build_rootless;
mod build_steps;
mod cli_check;
mod cli_docker;
mod cli_login;
mod cli_pull;
mod cli_run;
mod cli_save;
mod conformance_dockerignore;
mod conformance_parser;
mod conformance_shell;
mod engine_library;
mod fidelity;
mod fuzz_regressions;
mod hardening;
mod layer_apply;
mod layer_write;
mod oci_peers;
mod registry_client;
mod registry_hostile;
mod registry_pull;
mod run_step;
mod sandbox;
mod snapshotter;
mod store;
mod store_crash;
mod store_fsck;
