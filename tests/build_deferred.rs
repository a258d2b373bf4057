//! Deferred layers (docs/store.md): a build that only tags its image writes no layer blob;
//! a push, a save or an OCI output makes each blob once, in the compression the build asked
//! for, and later ones reuse it, even once the snapshots are gone; a push killed while it
//! compresses leaves a store that builds and pushes. Checked against a real registry and
//! skopeo.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::busybox_context::BusyboxContext;
use crate::common::describe;
use crate::common::process::Process;
use crate::common::registry::{Registry, skopeo_raw_manifest};
use crate::common::{mirror_conf, rbuild_bin};

/// The store's blobs by their first bytes: (gzip, zstd, other) counts, and the largest
/// "other" (an uncompressed tar would be large).
fn blob_kinds(root: &Path) -> (usize, usize, usize, u64) {
    let (mut gzip, mut zstd, mut other, mut largest) = (0, 0, 0, 0);
    for entry in std::fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            gzip += 1;
        } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            zstd += 1;
        } else {
            other += 1;
            largest = largest.max(bytes.len() as u64);
        }
    }
    (gzip, zstd, other, largest)
}

/// `rbuild ARGS` with the registries.conf that makes `reg` reachable over HTTP.
fn with_registry(ctx: &BusyboxContext, conf: &Path, args: &[&str]) -> Output {
    let out = ctx.rbuild_env(
        args,
        &[
            ("CONTAINERS_REGISTRIES_CONF", conf.to_str().unwrap()),
            ("DOCKER_CONFIG", ctx.home.join("docker").to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{}", describe(args, &out));
    out
}

fn layer_media_types(raw_manifest: &[u8]) -> Vec<String> {
    let m: serde_json::Value = serde_json::from_slice(raw_manifest).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn layers_are_compressed_once_when_they_leave_the_machine() {
    let Some(ctx) = BusyboxContext::new(
        "deferred-push",
        "FROM base\nRUN head -c 3000000 /dev/urandom > /random\nCOPY app /app\n",
    ) else {
        return;
    };
    ctx.write("app/main.txt", "hello\n");
    ctx.build_ok(&["-t", "deferred:1"]);
    // Tagged here only: no layer blob, compressed or not (the base stage's layers are built
    // here too).
    let (gzip, zstd, other, largest) = blob_kinds(&ctx.root);
    assert_eq!((gzip, zstd), (0, 0), "compressed blobs after a local build");
    assert_eq!(other, 2, "a config and a manifest");
    assert!(
        largest < 100_000,
        "an uncompressed layer was written ({largest} bytes)"
    );

    let reg = Registry::start(None);
    let conf = mirror_conf(&ctx.home, "127.0.0.1:1", &[reg.addr.as_str()]);
    let name = format!("{}/team/deferred:1", reg.addr);
    with_registry(&ctx, &conf, &["push", "deferred:1", &name]);
    let raw = skopeo_raw_manifest(&name, None);
    let types = layer_media_types(&raw);
    assert_eq!(types.len(), 4, "{types:?}");
    assert!(types.iter().all(|t| t.ends_with("tar+gzip")), "{types:?}");
    // The name now names what the registry serves.
    let local = ctx.inspect("deferred:1");
    assert_eq!(
        local["digest"].as_str().unwrap(),
        format!("sha256:{}", rbuild::oci::digest::Digest::sha256(&raw).hex())
    );
    let made = blob_kinds(&ctx.root);
    assert_eq!((made.0, made.1), (4, 0), "one gzip blob per layer");
    // Compressed into their uploads: each layer went up in chunks, its digest at the end.
    let log = reg.log();
    let patches = log
        .lines()
        .filter(|l| l.contains("\"PATCH /v2/team/deferred/blobs/uploads/"))
        .count();
    assert!(patches >= 4, "{patches} PATCH requests:\n{log}");

    // With every snapshot gone the blobs made stay the layers: a second push and a save
    // reuse them (nothing could be archived again).
    std::fs::remove_dir_all(ctx.root.join("snapshots")).unwrap();
    let again = format!("{}/team/again:1", reg.addr);
    with_registry(&ctx, &conf, &["push", "deferred:1", &again]);
    assert_eq!(skopeo_raw_manifest(&again, None), raw);
    let archive = ctx.home.join("deferred.tar");
    with_registry(
        &ctx,
        &conf,
        &["save", "-o", archive.to_str().unwrap(), "deferred:1"],
    );
    let out = Command::new("skopeo")
        .args(["inspect", &format!("docker-archive:{}", archive.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo inspect: {out:?}");
    assert_eq!(blob_kinds(&ctx.root).0, 4, "nothing was made twice");
}

#[test]
fn a_build_that_pushes_tags_what_it_pushed_in_its_compression() {
    let Some(ctx) = BusyboxContext::new("deferred-zstd", "FROM base\nRUN echo z > /z\n") else {
        return;
    };
    let reg = Registry::start(None);
    let conf = mirror_conf(&ctx.home, "127.0.0.1:1", &[reg.addr.as_str()]);
    let name = format!("{}/team/zstd:1", reg.addr);
    let spec = format!("type=image,name={name},push=true,compression=zstd");
    with_registry(
        &ctx,
        &conf,
        &["build", "--progress=plain", "-o", &spec, "."],
    );
    let raw = skopeo_raw_manifest(&name, None);
    let types = layer_media_types(&raw);
    assert!(types.iter().all(|t| t.ends_with("tar+zstd")), "{types:?}");
    // Compressed into the upload, in chunks.
    assert!(
        reg.log().contains("\"PATCH /v2/team/zstd/blobs/uploads/"),
        "{}",
        reg.log()
    );
    let local = ctx.inspect(&name);
    assert_eq!(
        local["digest"].as_str().unwrap(),
        format!("sha256:{}", rbuild::oci::digest::Digest::sha256(&raw).hex())
    );
}

#[test]
fn a_push_killed_while_it_compresses_leaves_a_store_that_builds_and_pushes() {
    let Some(ctx) = BusyboxContext::new(
        "deferred-kill",
        "FROM base\nRUN head -c 30000000 /dev/urandom > /big\n",
    ) else {
        return;
    };
    ctx.build_ok(&["-t", "big:1"]);
    let reg = Registry::start(None);
    let conf = mirror_conf(&ctx.home, "127.0.0.1:1", &[reg.addr.as_str()]);
    let name = format!("{}/team/big:1", reg.addr);
    let mut push = Process::spawn(
        Command::new(rbuild_bin())
            .args(["push", "big:1", &name])
            .env("RBUILD_ROOT", &ctx.root)
            .env("CONTAINERS_REGISTRIES_CONF", &conf)
            .env("DOCKER_CONFIG", ctx.home.join("docker")),
    );
    // Compressing 30 MB of random data takes seconds; kill it in the middle.
    let tmp = ctx.root.join("tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut saw_partial = false;
    while std::time::Instant::now() < deadline {
        let partial = std::fs::read_dir(&tmp)
            .map(|d| {
                d.flatten()
                    .any(|e| e.metadata().is_ok_and(|m| m.len() > 1_000_000))
            })
            .unwrap_or(false);
        if partial {
            saw_partial = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(saw_partial, "the push never started writing a blob");
    // SIGKILL to rbuild alone, as an OOM kill does.
    push.child().kill().unwrap();
    assert!(!push.wait().unwrap().success());
    // The store still builds (all cached) and pushes.
    let progress = ctx.build_ok(&["-t", "big:1"]);
    assert!(progress.contains("CACHED"), "{progress}");
    with_registry(&ctx, &conf, &["push", "big:1", &name]);
    let types = layer_media_types(&skopeo_raw_manifest(&name, None));
    assert!(types.iter().all(|t| t.ends_with("tar+gzip")), "{types:?}");
}

#[test]
fn the_native_snapshotter_keeps_the_uncompressed_tar_and_saves_it_compressed() {
    let Some(ctx) = BusyboxContext::new("deferred-native", "FROM base\nRUN echo n > /n\n") else {
        return;
    };
    ctx.build_ok(&["--snapshotter", "native", "-t", "native:1"]);
    let (gzip, zstd, other, largest) = blob_kinds(&ctx.root);
    assert_eq!((gzip, zstd), (0, 0));
    assert_eq!(other, 2 + 3, "a config, a manifest and three tars");
    assert!(largest > 500_000, "busybox's layer is a tar here");
    // Its trees are a cache: with them gone, the image still saves, compressed.
    std::fs::remove_dir_all(ctx.root.join("trees")).unwrap();
    let dir = ctx.home.join("saved");
    let args = [
        "save",
        "--format",
        "oci-dir",
        "-o",
        dir.to_str().unwrap(),
        "native:1",
    ];
    let out = ctx.rbuild(&args);
    assert!(out.status.success(), "{}", describe(&args, &out));
    assert_eq!(blob_kinds(&dir).0, 3, "three gzip layers saved");
}

#[test]
fn a_build_on_the_other_snapshotter_reuses_the_layers_built_here() {
    let Some(ctx) = BusyboxContext::new("deferred-switch", "FROM base\nRUN echo s > /s\n") else {
        return;
    };
    ctx.build_ok(&["-t", "switch:1"]);
    // The native snapshotter reads layers as tars: made from the overlay snapshots.
    let progress = ctx.build_ok(&["--snapshotter", "native", "-t", "switch:1"]);
    assert!(progress.contains("(0 step(s) run"), "{progress}");
    let files = ctx.build_files("files", &["--snapshotter", "native"]);
    assert_eq!(std::fs::read_to_string(files.join("s")).unwrap(), "s\n");
    // And an overlay build whose snapshots are gone unpacks those tars again.
    std::fs::remove_dir_all(ctx.root.join("snapshots")).unwrap();
    let files = ctx.build_files("files-overlay", &["--snapshotter", "overlay"]);
    assert_eq!(std::fs::read_to_string(files.join("s")).unwrap(), "s\n");
}

/// A reproducible build (`SOURCE_DATE_EPOCH`) gives, for each compression, the manifest
/// digests the eager commit (rbuild before deferred layers) gave for it: recorded with that
/// version from this very context.
#[test]
fn reproducible_digests_are_those_of_the_eager_commit() {
    let home = crate::common::temp_home("deferred-pinned");
    let ctx = home.join("ctx");
    std::fs::create_dir_all(ctx.join("files/sub")).unwrap();
    std::fs::write(ctx.join("files/a.txt"), "hello\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(ctx.join("files/sub/big.bin"), big).unwrap();
    std::fs::write(ctx.join("files/sub/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::os::unix::fs::symlink("a.txt", ctx.join("files/link")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [
        ("files/a.txt", 0o644),
        ("files/sub/big.bin", 0o644),
        ("files/sub/run.sh", 0o755),
        ("files", 0o755),
        ("files/sub", 0o755),
    ] {
        std::fs::set_permissions(ctx.join(path), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY files/ /files/\nCOPY --chmod=600 files/a.txt /secret\nENV A=1\n",
    )
    .unwrap();
    for (compression, want) in [
        (
            "gzip",
            "sha256:2a2467cf521bc9765b84db096f9157fa70ee6cf97f4574037e3b6d391883d1fe",
        ),
        (
            "zstd",
            "sha256:c3573cb1738e4150dde2ce2a1c652bf9743107ad1c171f5d790ce86a32ef37a8",
        ),
        (
            "uncompressed",
            "sha256:5b0946a794ba01b11135b8985e21457235c8299e7d7e6185b8637754fe4388e7",
        ),
    ] {
        let out = home.join(format!("{compression}.tar"));
        let spec = format!("type=oci,dest={},compression={compression}", out.display());
        let args = ["build", "-q", "--platform", "linux/amd64", "-o", &spec, "."];
        let run = Command::new(rbuild_bin())
            .args(args)
            .current_dir(&ctx)
            .env("RBUILD_ROOT", home.join(format!("root-{compression}")))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", describe(&args, &run));
        let index = Command::new("tar")
            .args(["-xOf", out.to_str().unwrap(), "index.json"])
            .output()
            .unwrap();
        let index: serde_json::Value = serde_json::from_slice(&index.stdout).unwrap();
        assert_eq!(index["manifests"][0]["digest"], want, "{compression}");
    }
    let _ = std::fs::remove_dir_all(&home);
}

/// A context of `n` files (some in subdirectories, one multiply linked) for COPY . /app.
fn many_files(ctx: &BusyboxContext, n: usize) {
    for i in 0..n {
        ctx.write(&format!("app/d{}/f{i}.txt", i % 7), &format!("file {i}\n"));
    }
    std::fs::hard_link(
        ctx.dir.join("app/d0/f0.txt"),
        ctx.dir.join("app/linked.txt"),
    )
    .unwrap();
}

/// The status line an incremental COPY prints: (files copied, files taken).
fn copied_and_taken(progress: &str) -> Option<(u64, u64)> {
    let line = progress
        .lines()
        .find(|l| l.contains("unchanged taken from the previous build"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let copied = words.iter().position(|w| *w == "file(s)")?;
    let taken = words.iter().position(|w| *w == "unchanged")?;
    Some((
        words[copied - 1].parse().ok()?,
        words[taken - 1].trim_end_matches(')').parse().ok()?,
    ))
}

#[test]
fn an_edit_copies_one_file_and_makes_the_layer_a_full_copy_makes() {
    let Some(ctx) = BusyboxContext::new(
        "incremental-copy",
        "FROM base\nCOPY app /app\nRUN cat /app/d3/f3.txt /app/linked.txt > /seen\n",
    ) else {
        return;
    };
    many_files(&ctx, 300);
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let build = |ctx: &BusyboxContext, root: &Path| {
        let args = ["build", "--progress=plain", "-t", "inc:1", "."];
        let out = Command::new(rbuild_bin())
            .args(args)
            .current_dir(&ctx.dir)
            .env("RBUILD_ROOT", root)
            .env("NO_COLOR", "1")
            .envs(epoch)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&args, &out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = build(&ctx, &ctx.root);
    assert_eq!(
        copied_and_taken(&first),
        None,
        "nothing to take yet: {first}"
    );
    ctx.write("app/d3/f3.txt", "edited\n");
    let second = build(&ctx, &ctx.root);
    // The edited file is read and written, and the multiply linked pair is copied as
    // always (once, and a link); the rest is taken.
    assert_eq!(copied_and_taken(&second), Some((2, 298)), "{second}");
    assert!(second.contains("(2 step(s) run"), "{second}");
    // The same image as a build from nothing.
    let fresh = ctx.home.join("fresh");
    let full = build(&ctx, &fresh);
    assert_eq!(copied_and_taken(&full), None);
    let id = |progress: &str| {
        progress
            .lines()
            .find(|l| l.starts_with("built "))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(
        id(&second),
        id(&full),
        "incremental:\n{second}\nfull:\n{full}"
    );
    let out = ctx.rbuild(&["run", "inc:1", "cat", "/seen"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "edited\nfile 0\n");
}

#[test]
fn an_incremental_copy_keeps_each_files_times_and_replaces_what_is_below() {
    // No SOURCE_DATE_EPOCH: times come from the context. The base has /app/d1/f1.txt, which
    // COPY replaces (a whiteout in the overlay, then the link).
    let Some(ctx) = BusyboxContext::new(
        "incremental-times",
        "FROM base\nRUN mkdir -p /app/d1 && echo lower > /app/d1/f1.txt\nCOPY app /app\n",
    ) else {
        return;
    };
    many_files(&ctx, 40);
    ctx.build_ok(&["-t", "times:1"]);
    ctx.write("app/d2/f2.txt", "edited\n");
    let progress = ctx.build_ok(&["-t", "times:1"]);
    assert_eq!(copied_and_taken(&progress), Some((2, 38)), "{progress}");
    let files = ctx.build_files("files", &[]);
    for i in 0..40 {
        let rel = format!("app/d{}/f{i}.txt", i % 7);
        let (src, out) = (ctx.dir.join(&rel), files.join(&rel));
        assert_eq!(
            std::fs::read(&src).unwrap(),
            std::fs::read(&out).unwrap(),
            "{rel}"
        );
        let (a, b) = (
            std::fs::metadata(&src).unwrap(),
            std::fs::metadata(&out).unwrap(),
        );
        assert_eq!(a.modified().unwrap(), b.modified().unwrap(), "{rel}");
    }
}

#[test]
fn an_incremental_copy_of_several_sources_to_one_path_keeps_the_last() {
    let Some(ctx) = BusyboxContext::new(
        "incremental-last",
        "FROM base\nCOPY a/f.txt b/f.txt other/ /dst/\n",
    ) else {
        return;
    };
    ctx.write("a/f.txt", "from a\n");
    ctx.write("b/f.txt", "from b\n");
    for i in 0..20 {
        ctx.write(&format!("other/o{i}.txt"), &format!("other {i}\n"));
    }
    ctx.build_ok(&["-t", "last:1"]);
    // a changes: b's file, unchanged, is taken again over a's, which is written first.
    ctx.write("a/f.txt", "from a, edited\n");
    let progress = ctx.build_ok(&["-t", "last:1"]);
    assert_eq!(copied_and_taken(&progress), Some((1, 21)), "{progress}");
    let out = ctx.rbuild(&["run", "last:1", "cat", "/dst/f.txt"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from b\n");
    // b changes: the new b is copied over a's.
    ctx.write("b/f.txt", "from b, edited\n");
    let progress = ctx.build_ok(&["-t", "last:1"]);
    assert_eq!(copied_and_taken(&progress), Some((2, 20)), "{progress}");
    let out = ctx.rbuild(&["run", "last:1", "cat", "/dst/f.txt"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from b, edited\n");
    // a and b the same: a's file would be taken, then b is written over it (taken files
    // are only linked at the end, so the one taken first is dropped).
    ctx.write("a/f.txt", "same\n");
    ctx.write("b/f.txt", "same\n");
    let when = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    for f in ["a/f.txt", "b/f.txt"] {
        let file = std::fs::File::options()
            .write(true)
            .open(ctx.dir.join(f))
            .unwrap();
        file.set_modified(when).unwrap();
    }
    ctx.build_ok(&["-t", "last:1"]);
    ctx.write("other/o1.txt", "edited\n");
    let progress = ctx.build_ok(&["-t", "last:1"]);
    assert!(copied_and_taken(&progress).is_some(), "{progress}");
    let out = ctx.rbuild(&["run", "last:1", "cat", "/dst/f.txt", "/dst/o1.txt"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "same\nedited\n");
}
