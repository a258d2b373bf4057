//! A RUN step end to end, as the build engine will do it: an overlay on a busybox lower, the
//! command in the sandbox (creating, modifying, deleting, making a directory opaque,
//! hardlinking, symlinking, chmod, chown), the upper dir's changes, a gzip layer — and that
//! layer rebuilds exactly the tree the step saw, both through rbuild's own applier and
//! through `umoci unpack` of an OCI layout (an independent reader).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use rbuild::layer::{LayerOptions, write_layer};
use rbuild::oci::digest::Digest;
use rbuild::oci::media_type::Compression;
use rbuild::sandbox::{Network, Spec, spawn_with, standard_files};
use rbuild::snapshot::apply::{Whiteouts, apply};
use rbuild::snapshot::{diff, overlay};

use crate::common::require;

fn busybox_lower(dir: &Path) {
    for d in [
        "bin",
        "etc",
        "tmp",
        "data/keep",
        "data/gone",
        "proc",
        "dev",
        "sys",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for a in [
        "sh", "echo", "rm", "mkdir", "ln", "chmod", "chown", "mv", "touch",
    ] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    for (f, t) in [
        ("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
        ("etc/hosts", ""),
        ("etc/hostname", ""),
        ("etc/resolv.conf", ""),
        ("data/old.txt", "old\n"),
        ("data/keep/k", "k\n"),
        ("data/gone/g", "g\n"),
        ("data/modify.txt", "before\n"),
    ] {
        std::fs::write(dir.join(f), t).unwrap();
    }
}

/// Everything a layer must preserve, per path.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if ["proc", "dev", "sys"].contains(&rel.as_str()) {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let what = if ft.is_symlink() {
                format!("link->{}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_dir() {
                stack.push(p.clone());
                "dir".into()
            } else {
                format!("file {}", Digest::sha256(&std::fs::read(&p).unwrap()))
            };
            let mode = if ft.is_symlink() {
                0
            } else {
                m.mode() & 0o7777
            };
            out.insert(
                rel,
                format!(
                    "{what} mode={mode:o} owner={}:{} nlink={}",
                    m.uid(),
                    m.gid(),
                    if ft.is_dir() { 0 } else { m.nlink() }
                ),
            );
        }
    }
    out
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_step_layer_rebuilds_the_tree_in_rbuild_and_umoci() {
    if !require::root("overlay mounts") {
        return;
    }
    let work = std::env::temp_dir().join(format!("rbuild-run-step-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let lower = work.join("lower");
    busybox_lower(&lower);
    let mounted = overlay::prepare(std::slice::from_ref(&lower), &work.join("step")).unwrap();
    let script = "set -e
        echo new > /data/new.txt
        echo after > /data/modify.txt
        rm /data/old.txt
        rm -r /data/gone
        rm -r /data/keep && mkdir /data/keep && echo fresh > /data/keep/f
        ln /data/new.txt /data/hard.txt
        ln -s new.txt /data/sym
        chmod 4755 /data/modify.txt
        chown 1000:1000 /data/new.txt
        mkdir -p /app/deep && touch /app/deep/x";
    let spec = Spec {
        binds: standard_files(&work.join("files"), "rbuild", Network::None, &[]).unwrap(),
        ..Spec::new(
            mounted.merged(),
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        )
    };
    let status = spawn_with(
        Path::new(env!("CARGO_BIN_EXE_rbuild")),
        &spec,
        Stdio::null(),
        Stdio::inherit(),
    )
    .unwrap()
    .wait()
    .unwrap();
    assert!(status.success());
    let expected = snapshot(mounted.merged());

    let changes = diff::overlay_changes(mounted.upper()).unwrap();
    let layer_path = work.join("layer.tar.gz");
    let opts = LayerOptions {
        compression: Compression::Gzip,
        level: None,
        threads: 2,
        source_date_epoch: None,
    };
    let digests = write_layer(
        mounted.upper(),
        &changes,
        &opts,
        std::fs::File::create(&layer_path).unwrap(),
    )
    .unwrap();
    // The same layer uncompressed, for umoci (which compresses what it adds): same diff ID.
    let plain_path = work.join("layer.tar");
    let plain_opts = LayerOptions {
        compression: Compression::None,
        ..opts
    };
    let plain = write_layer(
        mounted.upper(),
        &changes,
        &plain_opts,
        std::fs::File::create(&plain_path).unwrap(),
    )
    .unwrap();
    assert_eq!(
        plain.diff_id, digests.diff_id,
        "the diff ID does not depend on compression"
    );
    mounted.unmount().unwrap();
    assert_eq!(
        digests.digest,
        Digest::sha256(&std::fs::read(&layer_path).unwrap())
    );

    // rbuild's applier: a copy of the lower plus the layer is the tree the step saw.
    let copy = work.join("copy");
    run(Command::new("cp").arg("-a").arg(&lower).arg(&copy));
    apply(
        &copy,
        std::fs::File::open(&layer_path).unwrap(),
        Compression::Gzip,
        digests.digest.as_str(),
        Whiteouts::Apply,
        Some(&digests.diff_id),
    )
    .unwrap();
    assert_eq!(snapshot(&copy), expected, "rbuild's applier");

    // umoci: an OCI layout of the lower (tarred by GNU tar) and our layer unpacks to the same.
    let layout = work.join("layout");
    let img = format!("{}:step", layout.display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &img]));
    let bundle = work.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image", &img])
        .arg(&bundle));
    std::fs::remove_dir_all(bundle.join("rootfs")).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(&lower)
        .arg(bundle.join("rootfs")));
    run(Command::new("umoci")
        .args(["repack", "--image", &img])
        .arg(&bundle));
    // Append our layer blob to the manifest with umoci's raw add-layer.
    run(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &img])
        .arg(&plain_path));
    let out = work.join("umoci-out");
    run(Command::new("umoci")
        .args(["unpack", "--image", &img])
        .arg(&out));
    assert_eq!(
        snapshot(&out.join("rootfs")),
        expected,
        "umoci unpack of lower + our layer"
    );
    let _ = std::fs::remove_dir_all(&work);
}
