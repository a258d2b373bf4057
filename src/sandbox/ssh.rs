//! SSH agent forwarding for `RUN --mount=type=ssh`, as BuildKit does it: the step never sees
//! the host's agent socket. rbuild listens on a socket of its own, outside the rootfs, with
//! the mount's mode and owner, and relays each connection to the agent chosen by
//! `--ssh id=SOCKET` (`--ssh default` = `$SSH_AUTH_SOCK`). That socket is bound at the
//! mount's target, so nothing of it reaches a layer.
//!
//! BuildKit also accepts private key files for `--ssh` and runs an agent in-process; rbuild
//! does not hold keys: it says so and asks for an agent socket (`ssh-add` the keys to one).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

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

/// The agents a build may forward, by id (`default` unless `id=` says otherwise).
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

/// A relay socket in front of an agent, alive until dropped.
#[derive(Debug)]
pub struct AgentProxy {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl AgentProxy {
    /// Listen at `path` (with the mount's mode and owner, see [`super::give`]) and relay
    /// every connection to the agent at `agent`.
    pub fn start(
        agent: &Path,
        path: &Path,
        mode: u32,
        (uid, gid): (u32, u32),
    ) -> std::io::Result<AgentProxy> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        super::give(path, mode, uid, gid)?;
        let stop = Arc::new(AtomicBool::new(false));
        let agent = agent.to_path_buf();
        let flag = stop.clone();
        let accept = std::thread::Builder::new()
            .name("ssh-proxy".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = conn else { continue };
                    // A client whose agent is gone sees its connection closed, as it would
                    // if it had dialled the agent itself.
                    let Ok(upstream) = UnixStream::connect(&agent) else {
                        continue;
                    };
                    relay(client, upstream);
                }
            })?;
        Ok(AgentProxy {
            path: path.to_path_buf(),
            stop,
            accept: Some(accept),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Copy both ways on two threads; each side's end of input shuts the other's write half.
fn relay(a: UnixStream, b: UnixStream) {
    let pipe = |mut from: UnixStream, mut to: UnixStream| {
        move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
        }
    };
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("ssh-relay".into())
        .spawn(pipe(a, b));
    let _ = std::thread::Builder::new()
        .name("ssh-relay".into())
        .spawn(pipe(b2, a2));
}

impl Drop for AgentProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rbuild-ssh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn ids_default_to_ssh_auth_sock_and_must_be_sockets() {
        let d = temp("parse");
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
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn proxy_relays_both_ways_with_the_requested_mode() {
        let d = temp("relay");
        let upstream = UnixListener::bind(d.join("agent")).unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = upstream.accept().unwrap();
            let mut buf = Vec::new();
            c.read_to_end(&mut buf).unwrap();
            buf.reverse();
            c.write_all(&buf).unwrap();
        });
        let proxy = AgentProxy::start(&d.join("agent"), &d.join("proxy"), 0o600, (0, 0)).unwrap();
        let mode = std::fs::metadata(proxy.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let mut c = UnixStream::connect(proxy.path()).unwrap();
        c.write_all(b"abc").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "cba");
        server.join().unwrap();

        let path = proxy.path().to_path_buf();
        drop(proxy);
        assert!(!path.exists(), "the relay socket is removed on drop");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
