//! SSH agent forwarding for `RUN --mount=type=ssh`, as BuildKit does it: the step never sees
//! the host's agent socket. rbuild listens on a socket of its own, outside the rootfs, with
//! the mount's mode and owner, and relays each connection to the agent chosen by
//! `--ssh id=SOCKET` (`--ssh default` = `$SSH_AUTH_SOCK`). That socket is bound at the
//! mount's target, so nothing of it reaches a layer. Which agent a mount gets is the
//! engine's decision (`engine::ssh`); this module relays to a socket it is given.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

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
