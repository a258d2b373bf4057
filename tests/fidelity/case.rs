//! One case of the corpus: a directory under `testdata/fidelity/` with a `Dockerfile`, an
//! optional build context `ctx/`, a `case.toml` saying what it checks and how it is built,
//! and `expected.txt`, what docker built (see `testdata/fidelity/README.md`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// `case.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// What the case checks, one sentence.
    pub about: String,
    /// Flags for both builders, before the context: `--build-arg`, `--target`, `--secret`,
    /// `--network`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Shell lines run in the prepared context before the build: modes, links, empty
    /// directories, archives, what git cannot hold.
    #[serde(default)]
    pub setup: String,
    /// Set when `expected.txt` is kept by hand because docker 20.10's BuildKit (v0.8) does
    /// not do what current BuildKit does (or does not know the syntax): why, with the
    /// BuildKit source or change that says so. Recording leaves `expected.txt` alone and
    /// writes docker's result to `docker-20.10.txt`.
    #[serde(default)]
    pub pinned: Option<String>,
    /// Part of the subset that also runs as an unprivileged user.
    #[serde(default)]
    pub rootless: bool,
}

pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub meta: Meta,
}

/// The corpus directory.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fidelity")
}

/// Every case, sorted by name; `RBUILD_FIDELITY_CASES=a,b` keeps those named.
pub fn all() -> Vec<Case> {
    let only: Option<Vec<String>> = std::env::var("RBUILD_FIDELITY_CASES")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(str::to_string).collect());
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(corpus_dir()).expect("testdata/fidelity") {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if only.as_ref().is_some_and(|o| !o.contains(&name)) {
            continue;
        }
        let text = std::fs::read_to_string(dir.join("case.toml"))
            .unwrap_or_else(|e| panic!("{name}/case.toml: {e}"));
        let meta: Meta = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}/case.toml: {e}"));
        assert!(!meta.about.is_empty(), "{name}/case.toml: `about` is empty");
        cases.push(Case { name, dir, meta });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

impl Case {
    /// The recorded expectation; empty when there is none yet (a new pinned case: the
    /// comparison then fails and shows what rbuild made).
    pub fn expected(&self) -> String {
        let path = self.dir.join("expected.txt");
        match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(_) if self.meta.pinned.is_some() => String::new(),
            Err(e) => panic!(
                "{}/expected.txt: {e} (record it: scripts/record-fidelity.sh)",
                self.name
            ),
        }
    }

    /// Make the build context in `into`: `ctx/` copied with modes as git would check them
    /// out (files 0644 or 0755, directories 0755), the Dockerfile, then `setup`.
    pub fn prepare(&self, into: &Path) {
        let _ = std::fs::remove_dir_all(into);
        std::fs::create_dir_all(into).unwrap();
        let ctx = self.dir.join("ctx");
        if ctx.is_dir() {
            copy_tree(&ctx, into);
        }
        std::fs::copy(self.dir.join("Dockerfile"), into.join("Dockerfile"))
            .unwrap_or_else(|e| panic!("{}/Dockerfile: {e}", self.name));
        set_mode(&into.join("Dockerfile"), 0o644);
        if !self.meta.setup.is_empty() {
            let out = Command::new("sh")
                .args(["-euc", &self.meta.setup])
                .current_dir(into)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: setup failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&src).unwrap();
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if meta.is_dir() {
            std::fs::create_dir(&dst).unwrap();
            set_mode(&dst, 0o755);
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
            let exec = meta.permissions().mode() & 0o111 != 0;
            set_mode(&dst, if exec { 0o755 } else { 0o644 });
        }
    }
}
