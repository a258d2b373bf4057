//! The fuzz targets' checks: one module per reader of untrusted bytes, each a plain
//! `check(data: &[u8])` that feeds the bytes to rbuild and panics when an invariant of that
//! reader does not hold, not only when rbuild panics. The fuzz targets (`fuzz_targets/`) call
//! them on what libFuzzer makes; the main test binary (`tests/fuzz_regressions.rs`) calls them
//! on the committed seeds and regressions, so CI runs every input the fuzzer ever failed on.
//!
//! The checks use only the main crate's public API (a few entry points are `#[doc(hidden)]`
//! for them) and crates the main crate already depends on.

pub mod add_archive;
pub mod archive_load;
pub mod auth_json;
pub mod dockerfile;
pub mod dockerignore;
pub mod jail;
pub mod layer_apply;
pub mod oci_json;
pub mod registries_conf;
pub mod registry_auth;
pub mod shell;

/// A check: panics when an invariant does not hold for the input.
pub type Check = fn(&[u8]);

/// Every check by the name of its target (and of its `corpus/` and `regressions/` directory).
pub const ALL: &[(&str, Check)] = &[
    ("add_archive", add_archive::check),
    ("archive_load", archive_load::check),
    ("auth_json", auth_json::check),
    ("dockerfile", dockerfile::check),
    ("dockerignore", dockerignore::check),
    ("layer_apply", layer_apply::check),
    ("oci_json", oci_json::check),
    ("registries_conf", registries_conf::check),
    ("registry_auth", registry_auth::check),
    ("shell", shell::check),
];

/// Split an input into the parts a check needs at NUL bytes (text formats hold none), at
/// most `n` parts.
pub fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    data.splitn(n, |b| *b == 0).collect()
}

/// The SHA-256 of `data`, in lower-case hex (a digest's encoded part).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
