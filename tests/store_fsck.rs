//! `rbuild fsck` through the real binary: a sound store passes (exit 0); each kind of
//! damage done behind rbuild's back — a blob's byte flipped, a file of a snapshot changed,
//! a cache record or deferred-layer entry garbled, a layer lost — is reported (exit 4) and,
//! where it can be, repaired (exit 1), after which the store passes again and its images
//! still build. A pulled image whose layer was lost is pulled again by digest from a real
//! registry.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common;
use crate::common::busybox_context::BusyboxContext;
use crate::common::describe;
use crate::common::registry::{Registry, skopeo_push, umoci_busybox};
use crate::common::require;

fn fsck(ctx: &BusyboxContext, repair: bool) -> (i32, String) {
    let args: &[&str] = if repair {
        &["fsck", "--repair"]
    } else {
        &["fsck"]
    };
    let out = ctx.rbuild(args);
    report(args, &out)
}

fn report(args: &[&str], out: &Output) -> (i32, String) {
    let code = out.status.code().unwrap_or(-1);
    assert!(
        [0, 1, 4].contains(&code),
        "fsck exits 0, 1 or 4: {}",
        describe(args, out)
    );
    (code, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The one file of `dir` (a snapshot) called `name`, anywhere under `root/snapshots`.
fn in_snapshot(root: &Path, name: &str) -> PathBuf {
    std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no snapshot holds {name}"))
}

/// Flip one byte in the middle of the file at `path`.
fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

/// The blobs of `root`, largest first.
fn blobs_by_size(root: &Path) -> Vec<PathBuf> {
    let mut blobs: Vec<(u64, PathBuf)> = std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| (e.metadata().unwrap().len(), e.path()))
        .collect();
    blobs.sort();
    blobs.into_iter().rev().map(|(_, p)| p).collect()
}

#[test]
fn damage_is_reported_and_repaired_and_the_image_still_builds() {
    let Some(ctx) = BusyboxContext::new(
        "fsck-damage",
        "FROM base\nRUN echo one > /one\nRUN echo two > /two\n",
    ) else {
        return;
    };
    ctx.build_ok(&["-t", "img:1"]);
    // A save makes each layer's gzip blob; the snapshots stay as its other source.
    let saved = ctx.home.join("saved");
    let out = ctx.rbuild(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        saved.to_str().unwrap(),
        "img:1",
    ]);
    assert!(out.status.success(), "{}", describe(&["save"], &out));
    let (code, text) = fsck(&ctx, false);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(": 0 problem(s)"), "{text}");

    // Behind rbuild's back: busybox's gzip blob, /one in its snapshot, a cache record and
    // a deferred layer's entry.
    let blob = blobs_by_size(&ctx.root).remove(0);
    flip_a_byte(&blob);
    std::fs::write(in_snapshot(&ctx.root, "one"), "not one\n").unwrap();
    let record = std::fs::read_dir(ctx.root.join("cache/steps"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    std::fs::write(&record, "{ not json").unwrap();
    let (code, text) = fsck(&ctx, false);
    assert_eq!(code, 4, "{text}");
    let name = blob.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        text.contains(&format!("blob sha256:{name} is corrupt")),
        "{text}"
    );
    assert!(
        text.contains("is corrupt: its files give sha256:"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "build cache record {} cannot be read",
            record.display()
        )),
        "{text}"
    );
    assert!(text.contains(": 3 problem(s)"), "{text}");

    let (code, text) = fsck(&ctx, true);
    assert_eq!(code, 1, "every problem here can be repaired:\n{text}");
    assert!(text.contains("repaired: removed corrupt blob"), "{text}");
    assert!(
        text.contains("repaired: removed corrupt snapshot"),
        "{text}"
    );
    let (code, text) = fsck(&ctx, false);
    assert_eq!(code, 0, "{text}");

    // The image is whole again: /one comes from its gzip blob now, busybox from its
    // snapshot, and a build on it sees the files as they were built.
    ctx.write("Dockerfile", "FROM img:1\nRUN cat /one /two > /both\n");
    let files = ctx.build_files("files", &[]);
    assert_eq!(
        std::fs::read_to_string(files.join("both")).unwrap(),
        "one\ntwo\n"
    );
    let (code, text) = fsck(&ctx, false);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn a_layer_with_no_copy_left_is_reported_and_never_hidden() {
    let Some(ctx) = BusyboxContext::new("fsck-lost", "FROM base\nRUN echo lost > /lost\n") else {
        return;
    };
    ctx.build_ok(&["-t", "lost:1"]);
    // Its only copy is its snapshot (deferred, never compressed): removed, and the entry
    // that says how to remake it garbled.
    std::fs::remove_dir_all(in_snapshot(&ctx.root, "lost").parent().unwrap()).unwrap();
    let entries: Vec<PathBuf> = std::fs::read_dir(ctx.root.join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    std::fs::write(&entries[0], "garbage").unwrap();
    let (code, text) = fsck(&ctx, false);
    assert_eq!(code, 4, "{text}");
    assert!(
        text.contains("image docker.io/library/lost:1: layer sha256:"),
        "{text}"
    );
    assert!(text.contains("is missing"), "{text}");
    assert!(text.contains("deferred layer entry"), "{text}");
    // Nothing here can bring it back, and the registry has no such image: said, exit 4.
    let conf = ctx.home.join("registries.conf");
    std::fs::write(&conf, "unqualified-search-registries = []\n").unwrap();
    let out = ctx.rbuild_env(
        &["fsck", "--repair"],
        &[("CONTAINERS_REGISTRIES_CONF", conf.to_str().unwrap())],
    );
    let (code, text) = report(&["fsck", "--repair"], &out);
    assert_eq!(code, 4, "{text}");
    assert!(
        text.contains("not repaired: image docker.io/library/lost:1 lost content"),
        "{text}"
    );
}

#[test]
fn a_pulled_image_that_lost_a_layer_is_pulled_again_by_digest() {
    if !require::root("the store's snapshots are root's") {
        return;
    }
    if !require::tools(&["docker-registry", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start(None);
    let home = common::temp_home("fsck-repull");
    umoci_busybox(&home.join("layout"), "latest");
    let name = format!("{}/fsck/busybox:1", reg.addr);
    skopeo_push(&home.join("layout"), "latest", &name, None);
    let conf = common::mirror_conf(&home, &reg.addr, &[&reg.addr]);
    let run = |args: &[&str]| common::rbuild_in(&home, &conf, args);
    let out = run(&["pull", &name]);
    assert!(out.status.success(), "{}", describe(&["pull"], &out));
    // A build on it unpacks its layer: that snapshot is sound whatever befalls the blob.
    let ctx = home.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {name}\nRUN true\n")).unwrap();
    let out = run(&["build", "-q", ctx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&["build"], &out));
    let layer = blobs_by_size(&home.join("root")).remove(0);
    flip_a_byte(&layer);

    let (code, text) = report(&["fsck"], &run(&["fsck"]));
    assert_eq!(code, 4, "{text}");
    assert!(
        text.contains(&format!("image {name}: layer sha256:")),
        "{text}"
    );
    assert!(
        !text.contains("snapshot ") || !text.contains("is corrupt: its"),
        "the snapshot is not what broke: {text}"
    );
    assert!(text.contains("1 snapshot(s) not checked"), "{text}");
    let (code, text) = report(&["fsck", "--repair"], &run(&["fsck", "--repair"]));
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("repaired: pulled {name}@sha256:")),
        "{text}"
    );
    let (code, text) = report(&["fsck"], &run(&["fsck"]));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("1 image name(s)"),
        "the pull by digest left no name: {text}"
    );
    let _ = std::fs::remove_dir_all(&home);
}
