//! Multi-platform builds: `--platform linux/amd64,linux/arm64` builds each platform from a
//! base image index (served by a real registry: Debian's busybox-static for amd64 and for
//! arm64), runs arm64 steps under QEMU user emulation, shares the stages that run on the
//! build platform, and writes or pushes one image index. Checked with skopeo and through
//! the files each platform's build wrote (`uname -m`).

use std::path::{Path, PathBuf};

use crate::common::busybox_image::{self, arm64_busybox, arm64_emulation};
use crate::common::podman::{PodmanCleanup, podman};
use crate::common::registry::{Registry, run};
use crate::common::{describe, mirror_conf, rbuild_cmd, require, temp_home};

/// A home with a registry holding `library/busybox:latest` as an index of amd64 and arm64,
/// reached as docker.io's mirror.
struct Lab {
    registry: Registry,
    home: PathBuf,
    conf: PathBuf,
}

impl Lab {
    fn new(name: &str) -> Option<Lab> {
        if !require::root("builds mount overlays")
            || !require::tools(&["skopeo", "docker-registry"])
            || !arm64_emulation()
        {
            return None;
        }
        let arm64 = arm64_busybox()?;
        let registry = Registry::start(None);
        let home = temp_home(name);
        busybox_image::publish(
            &home.join("base-oci"),
            &format!("{}/library/busybox:latest", registry.addr),
            &[
                ("amd64", Path::new("/bin/busybox")),
                ("arm64", arm64.as_path()),
            ],
        );
        let conf = mirror_conf(&home, &registry.addr, &[&registry.addr]);
        Some(Lab {
            registry,
            home,
            conf,
        })
    }

    /// A context directory with `dockerfile`.
    fn context(&self, dockerfile: &str) -> PathBuf {
        let dir = self.home.join("ctx");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        dir
    }

    fn rbuild(&self, args: &[&str]) -> std::process::Output {
        rbuild_cmd(&self.home, &self.conf)
            .args(args)
            .output()
            .expect("run rbuild")
    }

    fn build_ok(&self, args: &[&str]) -> String {
        let out = self.rbuild(args);
        assert!(out.status.success(), "{}", describe(args, &out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

const CROSS: &str = "FROM --platform=$BUILDPLATFORM busybox AS tools\nRUN echo \"made on $(uname -m)\" > /tool\nFROM busybox\nARG TARGETARCH\nCOPY --from=tools /tool /tool\nRUN uname -m > /arch && echo \"$TARGETARCH\" > /targetarch\n";

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn two_platforms_make_one_index_and_run_each_architecture() {
    let Some(lab) = Lab::new("platforms-index") else {
        return;
    };
    let ctx = lab.context(CROSS);
    let oci = lab.home.join("out.tar");
    let files = lab.home.join("files");
    let tarball = lab.home.join("all.tar");
    // `--no-cache` too: nothing from earlier builds, but one platform still takes what the
    // other made in this build.
    let stderr = lab.build_ok(&[
        "build",
        "--progress=plain",
        "--no-cache",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "multi:1",
        "-o",
        &format!("type=oci,dest={}", oci.display()),
        "-o",
        &format!("type=local,dest={}", files.display()),
        "-o",
        &format!("type=tar,dest={}", tarball.display()),
        ctx.to_str().unwrap(),
    ]);
    // One tarball, each platform's files under its directory.
    let listing = run(std::process::Command::new("tar").arg("-tf").arg(&tarball));
    for entry in [
        "linux_amd64/",
        "linux_amd64/arch",
        "linux_arm64/",
        "linux_arm64/arch",
    ] {
        assert!(
            listing.lines().any(|l| l == entry),
            "{entry} in:\n{listing}"
        );
    }
    // The index, in the order the platforms were given.
    let raw = run(std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}", oci.display())));
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{raw}"
    );
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"], "{raw}");
    // Each platform ran its own architecture; the build-platform stage ran on the host.
    for (dir, uname, arch) in [
        ("linux_amd64", "x86_64", "amd64"),
        ("linux_arm64", "aarch64", "arm64"),
    ] {
        assert_eq!(read(files.join(dir).join("arch")), format!("{uname}\n"));
        assert_eq!(
            read(files.join(dir).join("targetarch")),
            format!("{arch}\n")
        );
        assert_eq!(read(files.join(dir).join("tool")), "made on x86_64\n");
    }
    // The build-platform stage is the same for both targets: built once; the other
    // platform's build waits for it and takes it from the cache. Vertex names carry the
    // target platform, as BuildKit's do.
    let vertex = |platform: &str, step: &str| {
        stderr
            .lines()
            .find(|l| l.contains(&format!("[{platform} {step}")))
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| panic!("no vertex [{platform} {step}:\n{stderr}"))
    };
    let ends = |id: &str| -> Vec<String> {
        stderr
            .lines()
            .filter(|l| {
                l.starts_with(&format!("{id} ")) && (l.ends_with(" CACHED") || l.contains(" DONE "))
            })
            .map(str::to_string)
            .collect()
    };
    let tools: Vec<Vec<String>> = ["linux/amd64", "linux/arm64"]
        .iter()
        .map(|p| ends(&vertex(p, "tools 2/2] RUN")))
        .collect();
    let cached = tools
        .iter()
        .filter(|e| e.iter().any(|l| l.ends_with(" CACHED")))
        .count();
    assert_eq!(
        cached, 1,
        "one platform ran the tools stage, the other took it: {tools:?}\n{stderr}"
    );
    vertex("linux/arm64", "stage-1 3/3] RUN");
    // The store has one name with both platforms.
    assert_listed_with_both_platforms(&lab.rbuild(&["images"]).stdout);
}

/// `rbuild images` shows `multi` once, with both platforms.
fn assert_listed_with_both_platforms(stdout: &[u8]) {
    let listing = String::from_utf8_lossy(stdout);
    let rows: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with("multi "))
        .collect();
    assert_eq!(rows.len(), 1, "{listing}");
    assert!(rows[0].ends_with("linux/amd64,linux/arm64"), "{listing}");
}

#[test]
fn a_pushed_index_serves_each_platform() {
    let Some(lab) = Lab::new("platforms-push") else {
        return;
    };
    let ctx = lab.context(CROSS);
    let name = format!("{}/multi/app:1", lab.registry.addr);
    lab.build_ok(&[
        "build",
        "--progress=plain",
        "--platform",
        "linux/arm64,linux/amd64",
        "-t",
        &name,
        "--push",
        ctx.to_str().unwrap(),
    ]);
    let raw = run(std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{name}")));
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{raw}");
    for arch in ["arm64", "amd64"] {
        let config = run(std::process::Command::new("skopeo")
            .args([
                "inspect",
                "--config",
                "--tls-verify=false",
                "--override-arch",
                arch,
            ])
            .arg(format!("docker://{name}")));
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(config["architecture"], arch, "{config}");
    }
    // podman, an independent consumer, pulls and runs each platform (arm64 emulated).
    if !require::tools(&["podman", "runc"]) {
        return;
    }
    let _cleanup = PodmanCleanup(&lab.home);
    for (arch, uname) in [("arm64", "aarch64"), ("amd64", "x86_64")] {
        let out = podman(
            &lab.home,
            &[
                "run",
                "--rm",
                "--tls-verify=false",
                "--arch",
                arch,
                &name,
                "cat",
                "/arch",
            ],
        );
        assert!(
            out.status.success(),
            "podman run --arch {arch}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{uname}\n"));
    }
}

/// `rbuild save` writes the whole index (OCI), and `rbuild load` into another state root
/// brings back one name with both platforms.
#[test]
fn an_index_saves_and_loads_whole() {
    let Some(lab) = Lab::new("platforms-save") else {
        return;
    };
    let ctx = lab.context(CROSS);
    lab.build_ok(&[
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "multi:2",
        ctx.to_str().unwrap(),
    ]);
    let archive = lab.home.join("multi.tar");
    lab.build_ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        "multi:2",
    ]);
    let raw = run(std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}", archive.display())));
    assert!(
        raw.contains("image.index") && raw.contains("arm64"),
        "{raw}"
    );
    let in_other = |args: &[&str]| {
        let out = rbuild_cmd(&lab.home, &lab.conf)
            .env("RBUILD_ROOT", lab.home.join("other"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(args, &out));
        out.stdout
    };
    in_other(&["load", "-i", archive.to_str().unwrap()]);
    assert_listed_with_both_platforms(&in_other(&["images"]));
}

#[test]
fn several_platforms_into_a_docker_archive_are_refused_before_building() {
    let Some(lab) = Lab::new("platforms-docker") else {
        return;
    };
    let ctx = lab.context(CROSS);
    let dest = lab.home.join("d.tar");
    let args = [
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "nope:1",
        "-o",
        &format!("type=docker,dest={}", dest.display()),
        ctx.to_str().unwrap(),
    ];
    let out = lab.rbuild(&args);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a docker-archive holds one platform")
            && stderr.contains("linux/amd64, linux/arm64"),
        "{stderr}"
    );
    assert!(!dest.exists());
    let images = lab.rbuild(&["images"]);
    assert!(!String::from_utf8_lossy(&images.stdout).contains("nope"));
}

#[test]
fn a_base_without_the_platform_names_the_platforms_it_has() {
    let Some(lab) = Lab::new("platforms-missing") else {
        return;
    };
    let ctx = lab.context("FROM busybox\nRUN true\n");
    let args = [
        "build",
        "--platform",
        "linux/amd64,linux/ppc64le",
        ctx.to_str().unwrap(),
    ];
    let out = lab.rbuild(&args);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("linux/ppc64le")
            && stderr.contains("linux/amd64")
            && stderr.contains("linux/arm64")
            && stderr.contains("1 | FROM busybox\n  |      ^^^^^^^"),
        "{stderr}"
    );
}

/// The index's digest names its platforms' images in the order `--platform` gave them:
/// with SOURCE_DATE_EPOCH two machines (two state roots) make the same index.
#[test]
fn the_index_is_reproducible() {
    let Some(lab) = Lab::new("platforms-repro") else {
        return;
    };
    let ctx = lab.context(CROSS);
    let mut ids = Vec::new();
    for root in ["a", "b"] {
        let out = rbuild_cmd(&lab.home, &lab.conf)
            .env("RBUILD_ROOT", lab.home.join(root))
            .env("SOURCE_DATE_EPOCH", "1704067200")
            .args(["build", "-q", "--platform", "linux/amd64,linux/arm64"])
            .arg(&ctx)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ids.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    assert!(ids[0].starts_with("sha256:"), "{ids:?}");
    assert_eq!(ids[0], ids[1]);
}
