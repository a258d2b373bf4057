//! The differential corpus: small Dockerfiles under `testdata/fidelity/`, each with what a
//! real `docker build` (docker 20.10, BuildKit) made of it, recorded as a canonical listing
//! of the root filesystem and a normalised config (`fidelity/expect.rs`). `corpus` builds
//! every case with rbuild and compares, naming each field or path that differs; `record`
//! (ignored; `scripts/record-fidelity.sh` runs it) builds them with docker and writes the
//! recordings. Both pull the same base image from a registry the test starts.
//!
//! As root every case runs; as another user, the cases marked `rootless` (rbuild then builds
//! in a user namespace).

mod case;
mod expect;
mod image;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use case::Case;
use expect::Base;
use image::Image;

use crate::common::busybox_image;
use crate::common::process::Process;
use crate::common::registry::Registry;
use crate::common::{describe, mirror_conf, rbuild_cmd, require, temp_home};

/// The corpus must keep at least this many cases.
const MIN_CASES: usize = 150;

/// Builds in flight at once (each with its own state root).
const WORKERS: usize = 2;

/// A started registry holding the base image, and the base as the listing needs it.
struct Lab {
    registry: Registry,
    base: Base,
}

impl Lab {
    fn start(home: &Path) -> Lab {
        let registry = Registry::start(None);
        let layout = home.join("base-oci");
        // `busybox` to the cases' Dockerfiles, through the docker.io mirror.
        let dest = format!("{}/library/busybox:latest", registry.addr);
        let mut pushed =
            busybox_image::publish(&layout, &dest, &[("amd64", Path::new("/bin/busybox"))]);
        let base = pushed.remove(0);
        let rootfs = image::apply_layers(&[base.blob]);
        Lab {
            base: Base::new(vec![base.diff_id], rootfs),
            registry,
        }
    }
}

/// Prerequisites of both tests: the tools and files the base image and registry need.
fn ready() -> bool {
    if !Path::new("/bin/busybox").exists() {
        require::skip(
            require::Need::Install,
            "/bin/busybox (Debian's busybox-static) is needed for the base image",
        );
        return false;
    }
    require::tools(&["skopeo", "docker-registry"])
}

#[test]
fn corpus() {
    if !ready() {
        return;
    }
    let is_root = rustix::process::geteuid().is_root();
    let everything = case::all();
    if std::env::var_os("RBUILD_FIDELITY_CASES").is_none() {
        assert!(
            everything.len() >= MIN_CASES,
            "the corpus has {} cases, fewer than {MIN_CASES}",
            everything.len()
        );
    }
    let cases: Vec<Case> = everything
        .into_iter()
        .filter(|c| is_root || c.meta.rootless)
        .collect();
    assert!(!cases.is_empty(), "no case to run");
    let home = temp_home("fidelity");
    let lab = Lab::start(&home);
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let (cases, lab, next, failures, home) = (&cases, &lab, &next, &failures, &home);
            s.spawn(move || {
                let wh = home.join(format!("worker{w}"));
                std::fs::create_dir_all(&wh).unwrap();
                let conf = mirror_conf(&wh, &lab.registry.addr, &[]);
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    if let Err(report) = check_case(case, &wh, &conf, &lab.base) {
                        failures.lock().unwrap().push((case.name.clone(), report));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    let who = if is_root {
        "root"
    } else {
        "an unprivileged user"
    };
    println!(
        "fidelity corpus: {}/{} cases match docker, as {who}, in {:.0?}",
        cases.len() - failures.len(),
        cases.len(),
        started.elapsed()
    );
    if !failures.is_empty() {
        let mut report = String::new();
        for (name, why) in &failures {
            report.push_str(&format!("\n=== {name}\n{why}\n"));
        }
        panic!(
            "{} of {} cases differ from docker:{report}",
            failures.len(),
            cases.len()
        );
    }
    let _ = std::fs::remove_dir_all(&home);
}

/// Build `case` with rbuild in the worker's home and compare with its recording.
fn check_case(case: &Case, home: &Path, conf: &Path, base: &Base) -> Result<(), String> {
    let expected = case.expected();
    let scratch = home.join("case");
    let _ = std::fs::remove_dir_all(&scratch);
    let ctx = scratch.join("ctx");
    case.prepare(&ctx);
    let tar = scratch.join("image.tar");
    let dest = format!("type=docker,dest={}", tar.display());
    let tag = format!("fidelity/{}:latest", case.name);
    let mut args: Vec<&str> = vec!["build", "--progress=plain", "-t", &tag, "-o", &dest];
    args.extend(case.meta.args.iter().map(String::as_str));
    args.push(".");
    let out = rbuild_cmd(home, conf)
        .args(&args)
        .current_dir(&ctx)
        .output()
        .expect("run rbuild");
    let refused = expect::is_refused(&expected);
    let result = match (refused, out.status.success()) {
        // 1: the build failed; 2: the Dockerfile is wrong. Anything else is a crash.
        (true, false) if matches!(out.status.code(), Some(1 | 2)) => Ok(()),
        (true, false) => Err(format!(
            "docker refused it; rbuild failed, but not as a build (exit 1 or 2):\n{}",
            describe(&args, &out)
        )),
        (true, true) => Err("docker refused it; rbuild built it".to_string()),
        (false, false) => Err(format!(
            "docker built it; rbuild failed:\n{}",
            describe(&args, &out)
        )),
        (false, true) => {
            let image = Image::from_docker_archive(&tar, &scratch.join("archive"));
            let actual = expect::render(&image, base);
            let diffs = expect::differences(&expected, &actual);
            match (expected.is_empty(), diffs.is_empty()) {
                (true, _) => Err(format!("no expected.txt; rbuild made:\n{actual}")),
                (false, true) => Ok(()),
                (false, false) => Err(diffs.join("\n")),
            }
        }
    };
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// The docker client to record with: `RBUILD_DOCKER`, else Debian's 20.10 client.
fn docker_bin() -> PathBuf {
    std::env::var_os("RBUILD_DOCKER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker"))
}

/// Record every case's expectation with a real dockerd (BuildKit): run by
/// `scripts/record-fidelity.sh`, which installs docker.io first.
#[test]
#[ignore = "records the corpus with a real dockerd: scripts/record-fidelity.sh"]
fn record() {
    assert!(
        rustix::process::geteuid().is_root(),
        "recording starts dockerd: run as root"
    );
    assert!(
        ready(),
        "the base image needs busybox-static, skopeo and docker-registry"
    );
    let docker = docker_bin();
    assert!(
        docker.exists(),
        "{} not found (apt-get install docker.io)",
        docker.display()
    );
    let home = temp_home("fidelity-record");
    let lab = Lab::start(&home);
    let daemon = Dockerd::start(&home, &lab.registry.addr);
    let version = String::from_utf8_lossy(
        &daemon
            .docker(&["version", "--format", "{{.Server.Version}}"])
            .stdout,
    )
    .trim()
    .to_string();
    let cases = case::all();
    let mut changed = 0;
    for case in &cases {
        let ctx = home.join("ctx");
        case.prepare(&ctx);
        let tag = format!("rbuild-fidelity/{}", case.name);
        let mut args = vec!["build", "--network", "host", "-t", &tag];
        args.extend(case.meta.args.iter().map(String::as_str));
        args.push(".");
        let out = daemon.docker_in(&ctx, &args);
        let mut text = format!(
            "# What docker {version} (BuildKit) made of this case; re-record with scripts/record-fidelity.sh.\n"
        );
        if out.status.success() {
            let tar = home.join("image.tar");
            let saved = daemon.docker(&["save", "-o", tar.to_str().unwrap(), &tag]);
            assert!(saved.status.success(), "docker save {tag}: {saved:?}");
            let image = Image::from_docker_archive(&tar, &home.join("archive"));
            text.push_str(&expect::render(&image, &lab.base));
            let _ = std::fs::remove_dir_all(home.join("archive"));
            let _ = std::fs::remove_file(&tar);
        } else {
            for l in docker_error_lines(&String::from_utf8_lossy(&out.stderr)) {
                text.push_str(&format!("# docker: {l}\n"));
            }
            text.push_str("refused\n");
        }
        let file = if case.meta.pinned.is_some() {
            "docker-20.10.txt"
        } else {
            "expected.txt"
        };
        let path = case.dir.join(file);
        let before = std::fs::read_to_string(&path).unwrap_or_default();
        if before != text {
            changed += 1;
            println!("recorded {}/{file} (changed)", case.name);
            std::fs::write(&path, &text).unwrap();
        }
        if case.meta.pinned.is_some() {
            let same = expect::differences(&case.expected(), &text).is_empty();
            println!(
                "{}: pinned; docker {version} {} the pinned expectation",
                case.name,
                if same { "agrees with" } else { "differs from" }
            );
        }
    }
    println!(
        "recorded {} cases with docker {version}: {changed} changed",
        cases.len()
    );
}

/// The lines of a failed `docker build`'s output that say why (the last three that read
/// as an error), without the progress lines around them, whose digests and timings change
/// from run to run.
fn docker_error_lines(stderr: &str) -> Vec<String> {
    let lines: Vec<String> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            [
                "error",
                "failed",
                "invalid",
                "unknown",
                "not found",
                "exit code",
            ]
            .iter()
            .any(|w| l.contains(w))
        })
        .map(str::to_string)
        .collect();
    lines[lines.len().saturating_sub(3)..].to_vec()
}

/// A dockerd of the recording's own: data under the test's home, its own socket, the
/// test registry as the docker.io mirror, no bridge or iptables (builds use the host's
/// network). Stopped with its containerd when dropped.
struct Dockerd {
    socket: PathBuf,
    config_dir: PathBuf,
    _process: Process,
}

impl Dockerd {
    fn start(home: &Path, registry: &str) -> Dockerd {
        let dir = home.join("dockerd");
        let exec_root = PathBuf::from(format!("/run/rbuild-fidelity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&exec_root).unwrap();
        let socket = exec_root.join("docker.sock");
        let config = serde_json::json!({
            "data-root": dir.join("data"),
            "exec-root": exec_root.join("exec"),
            "pidfile": exec_root.join("dockerd.pid"),
            "registry-mirrors": [format!("http://{registry}")],
            "insecure-registries": [registry],
            "iptables": false, "ip6tables": false, "ip-masq": false, "bridge": "none",
            "features": {"buildkit": true}
        });
        let conf = dir.join("daemon.json");
        std::fs::write(&conf, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let process = Process::spawn(
            Command::new("dockerd")
                .arg("--config-file")
                .arg(&conf)
                .arg("-H")
                .arg(format!("unix://{}", socket.display()))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        );
        let d = Dockerd {
            socket,
            config_dir: dir.join("client"),
            _process: process,
        };
        let start = Instant::now();
        while !d.docker(&["version"]).status.success() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "dockerd did not come up; see {}",
                dir.join("dockerd.log").display()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        d
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(docker_bin());
        cmd.env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_BUILDKIT", "1")
            .env("DOCKER_CONFIG", &self.config_dir)
            .env("BUILDKIT_PROGRESS", "plain");
        cmd
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run docker")
    }

    fn docker_in(&self, dir: &Path, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run docker")
    }
}
