//! `rbuild pull` and `rbuild images` through the real binary: a short name resolved through
//! a registries.conf mirror of docker.io (the lab's shape) to a real registry holding an
//! image made by umoci.

use std::path::Path;
use std::process::Output;

use crate::common;
use crate::common::describe;
use crate::common::registry::{Registry, skopeo_push, umoci_busybox};
use crate::common::require;

fn rbuild(home: &Path, conf: &Path, args: &[&str]) -> Output {
    common::rbuild_in(home, conf, args)
}

#[test]
fn pull_short_name_through_mirror_then_list() {
    if !require::tools(&["docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start(None);
    let home = common::temp_home("cli-pull");
    umoci_busybox(&home.join("layout"), "latest");
    skopeo_push(
        &home.join("layout"),
        "latest",
        &format!("{}/library/busybox:latest", reg.addr),
        None,
    );
    let conf = common::mirror_conf(&home, &reg.addr, &[]);

    let args = ["pull", "busybox"];
    let out = rbuild(&home, &conf, &args);
    assert!(
        out.status.success(),
        "{}\n{}",
        describe(&args, &out),
        reg.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "docker.io/library/busybox:latest"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("from {}/library/busybox", reg.addr)),
        "{stderr}"
    );
    assert_eq!(stderr.matches(": downloaded").count(), 2, "{stderr}");

    let again = rbuild(&home, &conf, &args);
    assert!(again.status.success(), "{}", describe(&args, &again));
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains("downloaded"),
        "{}",
        describe(&args, &again)
    );

    let out = rbuild(&home, &conf, &["images"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY") && lines[0].contains("IMAGE ID"),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("busybox") && l.contains("latest")),
        "{stdout}"
    );

    // A single-manifest image is what it is: an explicit --platform must match it.
    let host = rbuild::oci::Platform::host().specifier();
    let same = rbuild(
        &home,
        &conf,
        &["pull", "-q", "--platform", &host, "busybox"],
    );
    assert!(
        same.status.success(),
        "{}",
        describe(&["pull", &host], &same)
    );
    let other = rbuild(
        &home,
        &conf,
        &["pull", "-q", "--platform", "linux/s390x", "busybox"],
    );
    assert_eq!(
        other.status.code(),
        Some(1),
        "{}",
        describe(&["pull", "s390x"], &other)
    );
    assert!(
        String::from_utf8_lossy(&other.stderr)
            .contains("does not match the requested platform linux/s390x"),
        "{}",
        describe(&["pull", "s390x"], &other)
    );

    let missing = rbuild(&home, &conf, &["pull", "nosuchimage"]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("MANIFEST_UNKNOWN") || err.contains("NAME_UNKNOWN") || err.contains("404"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn pull_then_push_elsewhere_keeps_the_manifest_digest() {
    if !require::tools(&["docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let src = Registry::start(None);
    let dst = Registry::start(None);
    let home = common::temp_home("cli-push");
    umoci_busybox(&home.join("layout"), "latest");
    skopeo_push(
        &home.join("layout"),
        "latest",
        &format!("{}/library/busybox:latest", src.addr),
        None,
    );
    let conf = common::mirror_conf(&home, &src.addr, &[&dst.addr]);
    let ok = |args: &[&str]| {
        let out = rbuild(&home, &conf, args);
        assert!(out.status.success(), "{}", describe(args, &out));
        out
    };
    ok(&["pull", "-q", "busybox"]);

    let inspect = ok(&["inspect", "busybox"]);
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let digest = v["digest"].as_str().unwrap().to_string();
    assert_eq!(v["config"]["config"]["Cmd"][0], "sh");

    let dest = format!("{}/copied/busybox:1", dst.addr);
    let pushed = ok(&["push", "busybox", &dest]);
    let stderr = String::from_utf8_lossy(&pushed.stderr);
    assert_eq!(stderr.matches(": uploaded").count(), 2, "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&pushed.stdout).trim(),
        format!("{dest}@{digest}")
    );
    let raw = common::registry::skopeo_raw_manifest(&dest, None);
    assert_eq!(
        rbuild::oci::digest::Digest::sha256(&raw).to_string(),
        digest,
        "skopeo sees the same digest"
    );

    // A second push sends nothing.
    let again = ok(&["push", "busybox", &dest]);
    assert_eq!(
        String::from_utf8_lossy(&again.stderr)
            .matches(": already there")
            .count(),
        2
    );

    // tag, then rmi both names.
    ok(&["tag", "busybox", "mine/box:v2"]);
    let images = String::from_utf8_lossy(&ok(&["images"]).stdout).into_owned();
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("mine/box") && l.contains("v2")),
        "{images}"
    );
    ok(&["rmi", "mine/box:v2", "busybox"]);
    let images = String::from_utf8_lossy(&ok(&["images"]).stdout).into_owned();
    assert_eq!(images.lines().count(), 1, "{images}");
    let pruned = ok(&["prune", "--grace", "0s"]);
    let out = String::from_utf8_lossy(&pruned.stdout).into_owned();
    assert_eq!(out.matches("deleted sha256:").count(), 3, "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    let gone = rbuild(&home, &conf, &["rmi", "busybox"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no such image"));
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn pull_on_a_terminal_draws_progress_bars() {
    if !require::tools(&["docker-registry", "skopeo", "umoci", "script"]) {
        return;
    }
    let reg = Registry::start(None);
    let home = common::temp_home("cli-pull-tty");
    umoci_busybox(&home.join("layout"), "latest");
    skopeo_push(
        &home.join("layout"),
        "latest",
        &format!("{}/library/busybox:latest", reg.addr),
        None,
    );
    let conf = common::mirror_conf(&home, &reg.addr, &[]);
    // `script` gives rbuild a pseudo-terminal, as a person at a shell would.
    let cmd = format!("{} pull busybox", common::rbuild_bin().display());
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("RBUILD_ROOT", home.join("root"))
        .env("HOME", &home)
        .env("CONTAINERS_REGISTRIES_CONF", &conf)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("\u{1b}["),
        "terminal escapes drawn: {screen:?}"
    );
    assert_eq!(screen.matches(": downloaded").count(), 2, "{screen:?}");
    assert!(
        screen.contains("docker.io/library/busybox:latest"),
        "{screen:?}"
    );
    let _ = std::fs::remove_dir_all(&home);
}
