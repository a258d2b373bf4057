//! `--ssh`: the ssh agents a build may forward to `RUN --mount=type=ssh`, by id
//! (`default` unless `id=` says otherwise). The sandbox relays to the socket chosen here
//! (`sandbox::ssh`).
//!
//! BuildKit also accepts private key files for `--ssh` and runs an agent in-process; rbuild
//! does not hold keys: it says so and asks for an agent socket (`ssh-add` the keys to one).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(
        "--ssh {spec:?}: an id is required (e.g. `--ssh default` or `--ssh id=$SSH_AUTH_SOCK`)"
    )]
    NoId { spec: String },
    #[error(
        "--ssh {id:?} names no socket and SSH_AUTH_SOCK is not set: start an agent (`eval $(ssh-agent)`, `ssh-add`) or pass `--ssh {id}=SOCKET`"
    )]
    NoAgent { id: String },
    #[error("--ssh {id:?}: {} is not an agent socket; rbuild forwards an ssh-agent and does not read key files: `ssh-add` the key to an agent and pass its socket", path.display())]
    NotASocket { id: String, path: PathBuf },
    #[error("--ssh {id:?}: only one socket per id is supported, got {count}")]
    SeveralSockets { id: String, count: usize },
    #[error("--ssh {id:?}: {}", path.display())]
    Io {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("RUN --mount=type=ssh,id={id}: no --ssh {id} was given to the build{hint}")]
    Unknown { id: String, hint: String },
}

/// The agents a build may forward, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SshAgents {
    by_id: BTreeMap<String, PathBuf>,
}

impl SshAgents {
    /// Parse `--ssh` values: `ID` (the agent at `$SSH_AUTH_SOCK`) or `ID=SOCKET`.
    pub fn parse(specs: &[String], ssh_auth_sock: Option<OsString>) -> Result<Self, SshError> {
        let mut by_id = BTreeMap::new();
        for spec in specs {
            let (id, paths) = match spec.split_once('=') {
                Some((id, paths)) => (id, paths.split(',').filter(|p| !p.is_empty()).collect()),
                None => (spec.as_str(), Vec::new()),
            };
            if id.is_empty() {
                return Err(SshError::NoId { spec: spec.clone() });
            }
            let path = match paths.as_slice() {
                [] => match &ssh_auth_sock {
                    Some(s) if !s.is_empty() => PathBuf::from(s),
                    _ => return Err(SshError::NoAgent { id: id.into() }),
                },
                [one] => PathBuf::from(one),
                more => {
                    return Err(SshError::SeveralSockets {
                        id: id.into(),
                        count: more.len(),
                    });
                }
            };
            let meta = std::fs::metadata(&path).map_err(|source| SshError::Io {
                id: id.into(),
                path: path.clone(),
                source,
            })?;
            if !meta.file_type().is_socket() {
                return Err(SshError::NotASocket {
                    id: id.into(),
                    path,
                });
            }
            by_id.insert(id.to_string(), path);
        }
        Ok(SshAgents { by_id })
    }

    /// The agent socket for a mount's id, or an error naming the ids that were given.
    pub fn agent(&self, id: &str) -> Result<&Path, SshError> {
        self.by_id.get(id).map(PathBuf::as_path).ok_or_else(|| {
            let given: Vec<&str> = self.by_id.keys().map(String::as_str).collect();
            SshError::Unknown {
                id: id.into(),
                hint: if given.is_empty() {
                    format!(" (pass `--ssh {id}`)")
                } else {
                    format!(" (given: {})", given.join(", "))
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn ids_default_to_ssh_auth_sock_and_must_be_sockets() {
        let d = tempfile::tempdir().unwrap();
        let d = d.path();
        let sock = d.join("agent");
        let _l = UnixListener::bind(&sock).unwrap();
        let file = d.join("id_ed25519");
        std::fs::write(&file, "key").unwrap();

        let a = SshAgents::parse(&["default".into()], Some(sock.clone().into())).unwrap();
        assert_eq!(a.agent("default").unwrap(), sock);
        let a = SshAgents::parse(&[format!("git={}", sock.display())], None).unwrap();
        assert_eq!(a.agent("git").unwrap(), sock);
        assert!(matches!(
            a.agent("default"),
            Err(SshError::Unknown { ref hint, .. }) if hint.contains("given: git")
        ));

        assert!(matches!(
            SshAgents::parse(&["default".into()], None),
            Err(SshError::NoAgent { .. })
        ));
        assert!(matches!(
            SshAgents::parse(&[format!("default={}", file.display())], None),
            Err(SshError::NotASocket { .. })
        ));
        assert!(matches!(
            SshAgents::parse(&["=x".into()], None),
            Err(SshError::NoId { .. })
        ));
        let two = format!("k={},{}", sock.display(), sock.display());
        assert!(matches!(
            SshAgents::parse(&[two], None),
            Err(SshError::SeveralSockets { count: 2, .. })
        ));
    }
}
