//! `rbuild run` through the real binary: an image built by rbuild from a busybox base in a
//! real registry runs in the sandbox with its config (ENV, WORKDIR, USER, CMD) or the flags
//! that override it, passes its exit status through, publishes a port through the relay,
//! runs another architecture under emulation, and refuses what it does not do.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::busybox_image::{self, arm64_busybox, arm64_emulation};
use crate::common::process::Process;
use crate::common::registry::{Registry, free_port};
use crate::common::{describe, mirror_conf, rbuild_cmd, require, temp_home};

struct Lab {
    _registry: Registry,
    home: PathBuf,
    conf: PathBuf,
}

impl Lab {
    /// A registry with `busybox` for amd64 (and arm64 when `arm64`), as docker.io's mirror.
    fn new(name: &str, arm64: bool) -> Option<Lab> {
        if !require::root("runs mount overlays") || !require::tools(&["skopeo", "docker-registry"])
        {
            return None;
        }
        let mut platforms: Vec<(&str, PathBuf)> = vec![("amd64", PathBuf::from("/bin/busybox"))];
        if arm64 {
            if !arm64_emulation() {
                return None;
            }
            platforms.push(("arm64", arm64_busybox()?));
        }
        let registry = Registry::start(None);
        let home = temp_home(name);
        let list: Vec<(&str, &Path)> = platforms.iter().map(|(a, p)| (*a, p.as_path())).collect();
        busybox_image::publish(
            &home.join("base-oci"),
            &format!("{}/library/busybox:latest", registry.addr),
            &list,
        );
        let conf = mirror_conf(&home, &registry.addr, &[]);
        Some(Lab {
            _registry: registry,
            home,
            conf,
        })
    }

    fn rbuild(&self, args: &[&str]) -> Output {
        rbuild_cmd(&self.home, &self.conf)
            .args(args)
            .output()
            .expect("run rbuild")
    }

    /// Build `dockerfile` as `tag`.
    fn build(&self, tag: &str, dockerfile: &str) {
        let ctx = self.home.join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let args = ["build", "-q", "-t", tag, ctx.to_str().unwrap()];
        let out = self.rbuild(&args);
        assert!(out.status.success(), "{}", describe(&args, &out));
    }
}

#[test]
fn the_image_config_runs_and_its_exit_status_is_passed_through() {
    let Some(lab) = Lab::new("run-config", false) else {
        return;
    };
    lab.build(
        "app:1",
        "FROM busybox\nENV X=1\nWORKDIR /w\nUSER app\nCMD [\"sh\", \"-c\", \"echo $X $(pwd) $(id -u) $HOME; exit 3\"]\n",
    );
    let out = lab.rbuild(&["run", "--rm", "app:1"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&["run"], &out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1 /w 1000 /home/app\n"
    );
    // Flags override the config; arguments replace CMD.
    let args = [
        "run",
        "-e",
        "X=2",
        "-w",
        "/tmp",
        "-u",
        "0",
        "app:1",
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u)",
    ];
    let out = lab.rbuild(&args);
    assert!(out.status.success(), "{}", describe(&args, &out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 /tmp 0\n");
    // A bind mount, read-only; nothing a run writes stays in the image.
    let shared = lab.home.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("in.txt"), "from the host\n").unwrap();
    let volume = format!("{}:/data:ro", shared.display());
    let args = [
        "run",
        "-v",
        &volume,
        "app:1",
        "sh",
        "-c",
        "cat /data/in.txt; touch /data/x || echo read-only; touch /tmp/left",
    ];
    let out = lab.rbuild(&args);
    assert!(out.status.success(), "{}", describe(&args, &out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from the host\nread-only\n"
    );
    let out = lab.rbuild(&["run", "app:1", "ls", "/tmp"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "each run starts from the image"
    );
}

#[test]
fn a_published_port_is_relayed_from_the_host() {
    let Some(lab) = Lab::new("run-port", false) else {
        return;
    };
    lab.build(
        "web:1",
        "FROM busybox\nRUN mkdir /www && echo hello > /www/index.html\nCMD [\"httpd\", \"-f\", \"-h\", \"/www\", \"-p\", \"127.0.0.1:8099\"]\n",
    );
    let host = free_port();
    let publish = format!("{host}:8099");
    let _run = Process::spawn(
        rbuild_cmd(&lab.home, &lab.conf)
            .args(["run", "-p", &publish, "web:1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let start = Instant::now();
    let body = loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", host)) {
            let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
            let mut got = String::new();
            let _ = s.read_to_string(&mut got);
            if got.contains("200") {
                break got;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no answer on port {host}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.ends_with("hello\n"), "{body}");
}

#[test]
fn another_architecture_runs_under_emulation() {
    let Some(lab) = Lab::new("run-arm64", true) else {
        return;
    };
    let args = ["run", "--platform", "linux/arm64", "busybox", "uname", "-m"];
    let out = lab.rbuild(&args);
    assert!(out.status.success(), "{}", describe(&args, &out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "aarch64\n");
}

#[test]
fn what_it_does_not_do_is_refused_clearly() {
    let Some(lab) = Lab::new("run-refused", false) else {
        return;
    };
    for (args, says) in [
        (
            &["run", "-t", "busybox", "sh"][..],
            "standard output is not one",
        ),
        (&["run", "-d", "busybox"][..], "does not detach"),
        (
            &["run", "--network", "none", "-p", "80", "busybox"][..],
            "--network none",
        ),
        (
            &["run", "-v", "vol:/data", "busybox"][..],
            "named volumes are not supported",
        ),
    ] {
        let out = lab.rbuild(args);
        assert_ne!(out.status.code(), Some(0), "{}", describe(args, &out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// `-i` hands the process rbuild's standard input; without it, the process reads
/// `/dev/null`. And only descriptors 0, 1 and 2 reach it, whatever rbuild's caller left
/// open (here fd 7).
#[test]
fn stdin_with_i_and_no_other_descriptor() {
    let Some(lab) = Lab::new("run-stdin", false) else {
        return;
    };
    let run = |script: &str| {
        let out = std::process::Command::new("bash")
            .args(["-c", script])
            .env("RBUILD", crate::common::rbuild_bin())
            .env("RBUILD_ROOT", lab.home.join("root"))
            .env("CONTAINERS_REGISTRIES_CONF", &lab.conf)
            .env("HOME", &lab.home)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        run("echo piped | \"$RBUILD\" run -i busybox cat"),
        "piped\n"
    );
    assert_eq!(run("echo piped | \"$RBUILD\" run busybox cat"), "");
    // `ls` lists its own directory descriptor (3) too.
    assert_eq!(
        run("exec 7</dev/null; \"$RBUILD\" run busybox ls /proc/self/fd"),
        "0\n1\n2\n3\n"
    );
}

/// The one descriptor handed down on purpose, `-i`'s standard input, cannot be a way out
/// either: a host directory as standard input and `-w /proc/self/fd/0` is refused (exit
/// 125, "outside the container"), as runc refuses since CVE-2024-21626, instead of running
/// the command in the host's directory.
#[test]
fn a_host_directory_as_input_is_no_working_directory() {
    let Some(lab) = Lab::new("run-stdin-dir", false) else {
        return;
    };
    let sentinel = lab.home.join("host-dir");
    std::fs::create_dir_all(&sentinel).unwrap();
    std::fs::write(sentinel.join("host-only"), "host\n").unwrap();
    let out = rbuild_cmd(&lab.home, &lab.conf)
        .args(["run", "-i", "-w", "/proc/self/fd/0", "busybox", "ls"])
        .stdin(std::fs::File::open(&sentinel).unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("host-only"),
        "the run saw the host: {stdout}"
    );
    assert_eq!(out.status.code(), Some(125), "{}", describe(&["run"], &out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("outside the container"),
        "{}",
        describe(&["run"], &out)
    );
}
