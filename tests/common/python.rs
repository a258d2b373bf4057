//! The Python base image that build tests use in place of `python:3.10-alpine`: an OCI layout
//! made by `tests/fixtures/python-base.sh` (Debian bookworm minbase with python3, pip and
//! venv, written by mmdebstrap and umoci) and cached per machine outside the checkout, so
//! only the first run on a machine pays for the bootstrap (about 30 s). This module only runs
//! the script; it never builds or reads the image itself.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::require::{self, Need};

/// The tag of the image inside the layout, as the seed Dockerfile names it.
pub const PYTHON_BASE_TAG: &str = "3.10-alpine";

/// Exit status of the script when a prerequisite is missing (not root, no mmdebstrap or
/// umoci, no Debian mirror): the caller may skip.
const MISSING_PREREQUISITE: i32 = 3;

/// The OCI layout directory holding the Python base image at [`PYTHON_BASE_TAG`], made on
/// first use. The script runs at most once per test process; between processes its own
/// lock file makes one build and the others wait, then reuse it.
///
/// `None`, after a skip that says why (`require::skip`), when the machine cannot make it
/// (no root, mmdebstrap, umoci or network) and `RBUILD_ALLOW_SKIP=1` allows skipping; else
/// that is a failure, and so is any other failure of the script everywhere.
pub fn python_base_layout() -> Option<PathBuf> {
    static LAYOUT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = LAYOUT.get_or_init(make);
    match result {
        Ok(path) => Some(path.clone()),
        Err(reason) => {
            require::skip(
                Need::Install,
                format_args!("no Python base image: {reason}"),
            );
            None
        }
    }
}

/// Run the script; `Err` only for a missing prerequisite, a panic for anything else.
fn make() -> Result<PathBuf, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python-base.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run bash {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The script's progress (and, on failure, mmdebstrap's last lines) for the test log.
    eprint!("{stderr}");
    match out.status.code() {
        Some(0) => {
            let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            assert!(
                path.join("index.json").is_file(),
                "{} printed {}, which is not an OCI layout",
                script.display(),
                path.display()
            );
            Ok(path)
        }
        Some(MISSING_PREREQUISITE) => Err(stderr.trim().to_string()),
        _ => panic!("{} failed ({}):\n{stderr}", script.display(), out.status),
    }
}
