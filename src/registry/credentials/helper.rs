//! The docker-credential-helpers protocol: run `docker-credential-<name>` with one action
//! argument (`get`, `store`, `erase`) and talk to it over stdin/stdout
//! (docker/docker-credential-helpers `client/client.go`, `credentials/credentials.go`).
//!
//! - `get`: stdin is the server URL; stdout is `{"ServerURL","Username","Secret"}`. A
//!   `Username` of `<token>` means `Secret` is an identity token (an OAuth refresh token).
//! - `store`: stdin is `{"ServerURL","Username","Secret"}`.
//! - `erase`: stdin is the server URL.
//! - Failure: a non-zero exit with the message on stdout; `credentials not found in native
//!   keychain` (`ErrCredentialsNotFound`) means "nothing stored", which is not an error.
//!
//! Implemented here with `std::process::Command` rather than the `docker_credential` crate,
//! which only reads (no `store`/`erase`), ignores `registrytoken`, and searches the process's
//! own `PATH` (we need an injectable one so that parallel tests can each use their own fake
//! helper).
//!
//! Owns: finding the program on a given `PATH`, running it, and decoding its answer. Must not
//! log or put a secret into an error: helper output is only quoted on failure, when it is an
//! error message, and JSON errors are reported by position only.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde::{Deserialize, Serialize};

use super::{Credential, CredentialError};

/// docker-credential-helpers `credentials.errCredentialsNotFoundMessage`.
const NOT_FOUND: &str = "credentials not found";

/// The helper protocol's JSON (field names as in `credentials.Credentials`).
#[derive(Serialize, Deserialize)]
struct HelperCredentials<'a> {
    #[serde(rename = "ServerURL", default)]
    server_url: std::borrow::Cow<'a, str>,
    #[serde(rename = "Username", default)]
    username: std::borrow::Cow<'a, str>,
    #[serde(rename = "Secret", default)]
    secret: std::borrow::Cow<'a, str>,
}

/// Runs helpers found on one `PATH`.
pub(super) struct Helpers<'a> {
    pub(super) path: Option<&'a OsStr>,
}

impl Helpers<'_> {
    /// `get`: `None` when the helper has nothing for `server_url`.
    pub(super) fn get(
        &self,
        name: &str,
        server_url: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        let program = self.program(name)?;
        let output = run(&program, "get", server_url.as_bytes())?;
        if !output.status.success() {
            return match not_found(&output) {
                true => Ok(None),
                false => Err(failed(&program, "get", server_url, &output)),
            };
        }
        let answer: HelperCredentials =
            serde_json::from_slice(&output.stdout).map_err(|e| CredentialError::HelperAnswer {
                program: program.clone(),
                server_url: server_url.to_string(),
                line: e.line(),
                column: e.column(),
            })?;
        if answer.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(if answer.username == "<token>" {
            Credential::IdentityToken(answer.secret.into_owned())
        } else {
            Credential::Basic {
                username: answer.username.into_owned(),
                password: answer.secret.into_owned(),
            }
        }))
    }

    /// `store` `username`/`secret` for `server_url`.
    pub(super) fn store(
        &self,
        name: &str,
        server_url: &str,
        username: &str,
        secret: &str,
    ) -> Result<(), CredentialError> {
        let program = self.program(name)?;
        let input = serde_json::to_vec(&HelperCredentials {
            server_url: server_url.into(),
            username: username.into(),
            secret: secret.into(),
        })
        .expect("three strings serialise");
        let output = run(&program, "store", &input)?;
        if !output.status.success() {
            return Err(failed(&program, "store", server_url, &output));
        }
        Ok(())
    }

    /// `erase`: `false` when the helper had nothing for `server_url`.
    pub(super) fn erase(&self, name: &str, server_url: &str) -> Result<bool, CredentialError> {
        let program = self.program(name)?;
        let output = run(&program, "erase", server_url.as_bytes())?;
        match (output.status.success(), not_found(&output)) {
            (true, _) => Ok(true),
            (false, true) => Ok(false),
            (false, false) => Err(failed(&program, "erase", server_url, &output)),
        }
    }

    /// `docker-credential-<name>` on our `PATH`, as `exec.LookPath` finds it.
    fn program(&self, name: &str) -> Result<PathBuf, CredentialError> {
        let file = format!("docker-credential-{name}");
        if name.is_empty() || name.contains('/') {
            return Err(CredentialError::HelperName {
                name: name.to_string(),
            });
        }
        let dirs = self.path.map(std::env::split_paths).into_iter().flatten();
        for dir in dirs {
            // An empty PATH element means the current directory in POSIX; Go's LookPath
            // refuses relative results since Go 1.19, and so do we.
            if !dir.is_absolute() {
                continue;
            }
            let candidate = dir.join(&file);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
        Err(CredentialError::HelperNotFound {
            program: file,
            path: self.path.map(OsStr::to_os_string).unwrap_or_default(),
        })
    }
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn not_found(output: &Output) -> bool {
    let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).contains(NOT_FOUND);
    said(&output.stdout) || said(&output.stderr)
}

fn failed(
    program: &std::path::Path,
    action: &'static str,
    server_url: &str,
    output: &Output,
) -> CredentialError {
    let mut message = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stderr.trim().is_empty() {
        if !message.is_empty() {
            message.push_str("; ");
        }
        message.push_str(stderr.trim());
    }
    CredentialError::HelperFailed {
        program: program.to_path_buf(),
        action,
        server_url: server_url.to_string(),
        status: output.status.to_string(),
        message,
    }
}

/// Spawn `program action`, feed `input`, collect the output.
fn run(
    program: &std::path::Path,
    action: &'static str,
    input: &[u8],
) -> Result<Output, CredentialError> {
    let fail = |source| CredentialError::RunHelper {
        program: program.to_path_buf(),
        action,
        source,
    };
    let mut attempts = 0;
    let mut child = loop {
        let spawned = Command::new(program)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            // ETXTBSY: another thread of this process forked while holding the helper's file
            // open for writing (a freshly installed helper, or a test writing its fake one);
            // the fd closes at that child's exec, so retrying shortly succeeds
            // (golang/go#22315 describes the same race).
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error())
                    && attempts < 50 =>
            {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other.map_err(fail)?,
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may exit without reading its input (e.g. it fails early); its answer
        // matters, not our broken pipe. Inputs are far below the pipe buffer, so this cannot
        // block on a helper that does not read.
        match stdin.write_all(input) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            other => other.map_err(fail)?,
        }
    }
    child.wait_with_output().map_err(fail)
}
