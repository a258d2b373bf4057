//! Fuzz target: the check in `checks/archive_load.rs`, on every input libFuzzer makes.

#![no_main]

// Every target compiles every check; it runs only its own.
#[allow(dead_code)]
#[path = "../checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::archive_load::check(data));
