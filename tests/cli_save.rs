//! `rbuild save` and `rbuild load` through the real binary, with independent readers and
//! writers: skopeo reads our docker-archive and oci-archive, umoci unpacks our OCI layout,
//! skopeo writes a docker-archive we load; round trips keep digests; tampering is caught.

use std::process::Command;

use crate::common::podman::{PodmanCleanup, podman};
use crate::common::registry::{Registry, run, skopeo_push, umoci_busybox};
use crate::common::require;
use crate::common::{describe, mirror_conf, rbuild_in, temp_home};

#[test]
fn save_formats_are_read_by_peers_and_load_round_trips() {
    if !require::tools(&["docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start(None);
    let home = temp_home("cli-save");
    umoci_busybox(&home.join("layout"), "latest");
    skopeo_push(
        &home.join("layout"),
        "latest",
        &format!("{}/library/busybox:latest", reg.addr),
        None,
    );
    let conf = mirror_conf(&home, &reg.addr, &[]);
    let ok = |args: &[&str]| {
        let out = rbuild_in(&home, &conf, args);
        assert!(out.status.success(), "{}", describe(args, &out));
        out
    };
    ok(&["pull", "-q", "busybox"]);
    let digest = |out: std::process::Output| {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["digest"].as_str().unwrap().to_string()
    };
    let original = digest(ok(&["inspect", "busybox"]));

    // docker-archive: skopeo reads it; saving twice gives the same bytes.
    let docker_tar = home.join("busybox.tar");
    let p = docker_tar.to_str().unwrap();
    ok(&["save", "-o", p, "busybox"]);
    let first = std::fs::read(&docker_tar).unwrap();
    ok(&["save", "-o", p, "busybox"]);
    assert_eq!(
        first,
        std::fs::read(&docker_tar).unwrap(),
        "save is deterministic"
    );
    let info = run(Command::new("skopeo").args(["inspect", &format!("docker-archive:{p}")]));
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1, "{info}");
    let manifest = run(Command::new("tar").args(["-xOf", p, "manifest.json"]));
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(m[0]["RepoTags"][0], "busybox:latest", "{manifest}");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("docker-archive:{p}"),
        &format!("oci:{}:copied", home.join("from-docker").display()),
    ]));

    // oci-archive: skopeo reads it.
    let oci_tar = home.join("busybox.oci.tar");
    let o = oci_tar.to_str().unwrap();
    ok(&["save", "--format", "oci-archive", "-o", o, "busybox"]);
    run(Command::new("skopeo").args(["inspect", &format!("oci-archive:{o}")]));

    // oci-dir: umoci unpacks it and the files are there.
    let dir = home.join("busybox-oci");
    ok(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        dir.to_str().unwrap(),
        "busybox",
    ]);
    let bundle = home.join("bundle");
    run(Command::new("umoci")
        .args([
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:latest", dir.display()),
        ])
        .arg(&bundle));
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
        "hello from umoci\n"
    );

    // Round trip: remove, load our archive, same digest.
    ok(&["rmi", "busybox"]);
    let loaded = ok(&["load", "-i", p]);
    assert_eq!(
        String::from_utf8_lossy(&loaded.stdout).trim(),
        "Loaded image: docker.io/library/busybox:latest"
    );
    assert_eq!(
        digest(ok(&["inspect", "busybox"])),
        original,
        "load keeps the digest"
    );

    // A docker-archive written by skopeo (the classic shape) loads too.
    let old = home.join("old.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{}:latest", home.join("layout").display()),
        &format!("docker-archive:{}:other/box:7", old.display()),
    ]));
    let loaded = ok(&["load", "-i", old.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&loaded.stdout).trim(),
        "Loaded image: docker.io/other/box:7"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&ok(&["inspect", "other/box:7"]).stdout).unwrap();
    assert_eq!(v["config"]["config"]["Cmd"][0], "sh");
    assert_eq!(v["manifest"]["layers"].as_array().unwrap().len(), 1);

    // A blob whose content does not match its name fails the load, and tags nothing.
    let blobs = dir.join("blobs/sha256");
    let victim = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&victim, &bytes).unwrap();
    let tampered = home
        .join("root/blobs/sha256")
        .join(rbuild::oci::digest::Digest::sha256(&bytes).hex());
    let bad = home.join("bad.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&bad)
        .arg("."));
    ok(&["rmi", "busybox"]);
    let out = rbuild_in(&home, &conf, &["load", "-i", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&["load"], &out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not the digest its name says"),
        "{}",
        describe(&["load"], &out)
    );
    assert!(
        home.join("root/blobs/sha256")
            .join(victim.file_name().unwrap())
            .exists(),
        "the store keeps blobs where this test looks"
    );
    assert!(
        !tampered.exists(),
        "the mismatching content is not stored under any name"
    );
    let images = String::from_utf8_lossy(&ok(&["images"]).stdout).into_owned();
    assert!(
        !images.contains("library/busybox") && !images.lines().any(|l| l.starts_with("busybox")),
        "{images}"
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn docker_archive_is_loaded_and_run_by_podman() {
    if !require::tools(&["docker-registry", "skopeo", "umoci", "podman", "runc"]) {
        return;
    }
    let reg = Registry::start(None);
    let home = temp_home("cli-podman");
    umoci_busybox(&home.join("layout"), "latest");
    skopeo_push(
        &home.join("layout"),
        "latest",
        &format!("{}/library/busybox:latest", reg.addr),
        None,
    );
    let conf = mirror_conf(&home, &reg.addr, &[]);
    let cleanup = PodmanCleanup(&home);
    for args in [
        &["pull", "-q", "busybox"][..],
        &[
            "save",
            "-o",
            home.join("img.tar").to_str().unwrap(),
            "busybox",
        ],
    ] {
        let out = rbuild_in(&home, &conf, args);
        assert!(out.status.success(), "{}", describe(args, &out));
    }
    let out = podman(
        &home,
        &["load", "-i", home.join("img.tar").to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("docker.io/library/busybox:latest"));
    let out = podman(
        &home,
        &[
            "run",
            "--rm",
            "docker.io/library/busybox:latest",
            "/bin/busybox",
            "cat",
            "/hello.txt",
        ],
    );
    assert!(
        out.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from umoci\n");
    drop(cleanup);
    let _ = std::fs::remove_dir_all(&home);
}

/// A failure with causes renders as cargo renders it: the step, then each cause under its
/// own `Caused by:`, indented two spaces, said once.
#[test]
fn load_of_a_missing_file_prints_the_cause_under_caused_by() {
    let home = temp_home("cli-load-missing");
    let conf = mirror_conf(&home, "127.0.0.1:1", &[]);
    let missing = home.join("missing.tar");
    let args = ["load", "-i", missing.to_str().unwrap()];
    let out = rbuild_in(&home, &conf, &args);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: opening {}\n\nCaused by:\n  No such file or directory (os error 2)\n",
            missing.display()
        ),
        "{}",
        describe(&args, &out)
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn save_with_a_store_under_a_file_prints_each_cause_in_order() {
    let home = temp_home("cli-save-root-under-file");
    let conf = mirror_conf(&home, "127.0.0.1:1", &[]);
    let file = home.join("file");
    std::fs::write(&file, b"").unwrap();
    let root = file.join("root");
    let out_tar = home.join("out.tar");
    let args = [
        "--root",
        root.to_str().unwrap(),
        "save",
        "-o",
        out_tar.to_str().unwrap(),
        "busybox",
    ];
    let out = rbuild_in(&home, &conf, &args);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: opening the store at {root}\n\n\
             Caused by:\n  cannot create the store directory {root}\n\n\
             Caused by:\n  Not a directory (os error 20)\n",
            root = root.display()
        ),
        "{}",
        describe(&args, &out)
    );
    let _ = std::fs::remove_dir_all(&home);
}
