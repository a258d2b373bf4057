//! A real CNCF distribution registry (Debian's `docker-registry`) for integration tests: one
//! per test, on a free loopback port, storage in a temp dir, optionally behind htpasswd Basic
//! auth. Its process is a [`Process`], killed when the registry is dropped. Also: images made
//! by independent producers (`umoci`, pushed with `skopeo`) to pull from it.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::Process;

/// A running registry.
pub struct Registry {
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub dir: PathBuf,
    process: Process,
}

/// A loopback TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// Start a registry; with `auth = Some((user, password))` it requires Basic auth.
    pub fn start(auth: Option<(&str, &str)>) -> Registry {
        let dir = std::env::temp_dir().join(format!(
            "rbuild-registry-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let mut auth_yaml = String::new();
        if let Some((user, password)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(dir.join("htpasswd"), &out.stdout).unwrap();
            auth_yaml = format!(
                "auth:\n  htpasswd:\n    realm: rbuild-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        for _attempt in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: rbuild-test-secret\n{auth_yaml}",
                dir.join("data").display()
            );
            let conf = dir.join("config.yml");
            std::fs::write(&conf, config).unwrap();
            let log = std::fs::File::create(dir.join("registry.log")).unwrap();
            let mut process = Process::spawn(
                Command::new("docker-registry")
                    .arg("serve")
                    .arg(&conf)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log),
            );
            if wait_ready(&mut process, &addr, Duration::from_secs(10)) {
                return Registry { addr, dir, process };
            }
            // Dropping the process stops it; the directory is kept for the next attempt.
        }
        panic!(
            "docker-registry did not come up; see {}",
            dir.join("registry.log").display()
        );
    }

    /// The digests of every blob fetched (`GET …/blobs/DIGEST`) so far, from the access log,
    /// one entry per request.
    pub fn blob_gets(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| {
                let rest = &l[l.find("\"GET /v2/")? + 9..];
                let path = rest.split_whitespace().next()?;
                let (_, digest) = path.rsplit_once("/blobs/")?;
                Some(digest.to_string())
            })
            .collect()
    }

    /// The registry's log, for failure messages.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("registry.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Stop the registry before removing the storage it writes to.
        self.process.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the registry `process` answers on `addr` within `limit`; false if it exited.
fn wait_ready(process: &mut Process, addr: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(_)) = process.child().try_wait() {
            return false;
        }
        if TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Run a command, panicking with its output on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Make a one-layer busybox image with `umoci` (an independent producer) in an OCI layout
/// at `layout`, tagged `tag`: busybox-static at /bin/busybox with a /bin/sh link.
pub fn umoci_busybox(layout: &Path, tag: &str) {
    let bundle = layout.with_extension("bundle");
    let image = format!("{}:{tag}", layout.display());
    run(Command::new("umoci").args(["init", "--layout"]).arg(layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &image])
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::fs::write(rootfs.join("hello.txt"), "hello from umoci\n").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    run(Command::new("umoci").args(["config", "--image", &image, "--config.cmd", "sh"]));
    let _ = std::fs::remove_dir_all(&bundle);
}

/// Push an OCI layout image to the registry with `skopeo` (plain HTTP).
pub fn skopeo_push(layout: &Path, tag: &str, dest: &str, creds: Option<&str>) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "-q", "--dest-tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--dest-creds", c]);
    }
    cmd.arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}"));
    run(&mut cmd);
}

/// `skopeo inspect --raw` of a manifest in the registry: its exact bytes.
pub fn skopeo_raw_manifest(reference: &str, creds: Option<&str>) -> Vec<u8> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--creds", c]);
    }
    cmd.arg(format!("docker://{reference}"));
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
