//! The fuzz targets' checks (`fuzz/checks/`, docs/fuzzing.md) on every committed seed
//! (`fuzz/corpus/<target>/`) and every input a fuzzer once failed on
//! (`fuzz/regressions/<target>/`): CI does not fuzz, but it runs each of these through the
//! same invariants on every change. One test per target; a failure names each input that
//! failed and why.

#[path = "../fuzz/checks/mod.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file());
    files.sort();
    files
}

fn run(target: &str) {
    let (_, check) = checks::ALL
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no check named {target}"));
    let seeds = inputs(&fuzz_dir().join("corpus").join(target));
    assert!(!seeds.is_empty(), "fuzz/corpus/{target} holds no seed");
    let regressions = inputs(&fuzz_dir().join("regressions").join(target));
    let mut failed = Vec::new();
    for path in seeds.iter().chain(&regressions) {
        let data = std::fs::read(path).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{}: {why}", path.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} input(s) failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

macro_rules! targets {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                run(stringify!($target));
            }
        )*

        /// Every check has a test here, a fuzz target and seeds.
        #[test]
        fn every_check_is_a_target() {
            let tested = [$(stringify!($target)),*];
            for (name, _) in checks::ALL {
                assert!(tested.contains(name), "{name} has no test in this module");
                let target = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
                assert!(target.is_file(), "{name} has no fuzz target");
            }
            assert_eq!(tested.len(), checks::ALL.len());
        }
    };
}

targets!(
    add_archive,
    archive_load,
    auth_json,
    dockerfile,
    dockerignore,
    layer_apply,
    oci_json,
    registries_conf,
    registry_auth,
    shell,
);
