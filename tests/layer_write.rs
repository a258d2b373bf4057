//! `layer::write_layer` end to end: trees written as layers and applied back with
//! `snapshot::apply` (and unpacked by umoci, an independent reader), whiteouts, determinism
//! across thread counts and runs, `SOURCE_DATE_EPOCH`, and pinned golden digests.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rbuild::layer::{LayerDigests, LayerOptions, write_layer};
use rbuild::oci::digest::Digest;
use rbuild::oci::media_type::Compression;
use rbuild::snapshot::apply::{Whiteouts, apply};
use rbuild::snapshot::change::{Change, ChangeKind};
use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags};

use crate::common::process::Process;
use crate::common::require;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn set_mtime(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Pseudo-random bytes (xorshift): the same for the same seed, everywhere.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Every path below `root`, relative, sorted.
fn walk(root: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_str().unwrap().to_string());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                go(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

fn upserts(root: &Path) -> Vec<Change> {
    walk(root)
        .into_iter()
        .map(|path| Change {
            path,
            kind: ChangeKind::Upsert,
        })
        .collect()
}

fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(path, &mut names[..]).unwrap_or(0);
    let mut out = BTreeMap::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap();
        let mut value = vec![0u8; 4096];
        let len = rustix::fs::lgetxattr(path, name, &mut value[..]).unwrap();
        value.truncate(len);
        out.insert(name.to_string(), value);
    }
    out
}

/// What a tree looks like, one line per path: everything a layer must carry.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    walk(root)
        .into_iter()
        .map(|rel| {
            let p = root.join(&rel);
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = FileType::from_raw_mode(m.mode());
            let mut line = format!(
                "{ft:?} mode={:o} owner={}:{} xattrs={:?}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                xattrs(&p)
            );
            // `snapshot::apply` restores every entry's mtime, directories last.
            line += &format!(" mtime={}", m.mtime());
            match ft {
                FileType::RegularFile => {
                    let data = fs::read(&p).unwrap();
                    line += &format!(" size={} sha={}", data.len(), Digest::sha256(&data));
                    if m.nlink() > 1 {
                        let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone());
                        line += &format!(" inode-of={first}");
                    }
                }
                FileType::Symlink => {
                    line += &format!(" -> {}", fs::read_link(&p).unwrap().display());
                }
                FileType::CharacterDevice | FileType::BlockDevice => {
                    line += &format!(" rdev={}", m.rdev());
                }
                _ => {}
            }
            (rel, line)
        })
        .collect()
}

/// The tree the round trip is about: every kind of entry an image layer holds.
fn rich_tree(root: &Path) {
    let p = |s: &str| root.join(s);
    for d in ["etc", "usr/bin", "tmp", "home/user", "dev"] {
        fs::create_dir_all(p(d)).unwrap();
    }
    fs::write(p("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    fs::write(p("usr/bin/tool"), noise(300_000, 1)).unwrap();
    chmod(&p("usr/bin/tool"), 0o755);
    fs::hard_link(p("usr/bin/tool"), p("usr/bin/tool-again")).unwrap();
    fs::write(p("usr/bin/su"), b"#!/bin/sh\n").unwrap();
    chmod(&p("usr/bin/su"), 0o4755);
    symlink("tool", p("usr/bin/link")).unwrap();
    symlink("/usr/share/zoneinfo/UTC", p("etc/localtime")).unwrap();
    fs::write(p("empty"), b"").unwrap();
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
    fs::create_dir(p(&"d".repeat(120))).unwrap();
    fs::write(p(&long), b"long name").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p("tmp/fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    chmod(&p("tmp"), 0o1777);
    // ext4 and tmpfs (≥ 6.6) take user xattrs; skip the check where the filesystem will not.
    let _ = rustix::fs::setxattr(p("etc/hosts"), "user.note", b"hello", XattrFlags::empty());
    if is_root() {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p("dev/null"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        fs::write(p("usr/bin/ping"), b"ping").unwrap();
        // VFS_CAP_REVISION_2, cap_net_raw permitted + effective.
        let cap = [
            0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        rustix::fs::setxattr(
            p("usr/bin/ping"),
            "security.capability",
            &cap,
            XattrFlags::empty(),
        )
        .unwrap();
        fs::write(p("home/user/.profile"), b"export X=1\n").unwrap();
        for q in ["home/user", "home/user/.profile"] {
            std::os::unix::fs::lchown(p(q), Some(1000), Some(1000)).unwrap();
        }
    }
    for (i, rel) in walk(root).iter().rev().enumerate() {
        set_mtime(&p(rel), 1_600_000_000 + i as i64 * 3600);
    }
}

fn layer(root: &Path, changes: &[Change], opts: &LayerOptions) -> (LayerDigests, Vec<u8>) {
    let mut blob = Vec::new();
    let got = write_layer(root, changes, opts, &mut blob).unwrap();
    (got, blob)
}

fn opts(compression: Compression, threads: usize) -> LayerOptions {
    LayerOptions {
        compression,
        level: None,
        threads,
        source_date_epoch: None,
    }
}

fn apply_to(target: &Path, blob: &[u8], c: Compression, diff_id: &Digest) {
    apply(target, blob, c, "test", Whiteouts::Apply, Some(diff_id)).unwrap();
}

/// `name: compression` — write the rich tree, apply it elsewhere, compare.
macro_rules! round_trips {
    ($($name:ident: $compression:expr;)*) => {$(
        #[test]
        fn $name() {
            let src = tempfile::tempdir().unwrap();
            rich_tree(src.path());
            let (got, blob) = layer(src.path(), &upserts(src.path()), &opts($compression, 2));
            let dst = tempfile::tempdir().unwrap();
            apply_to(dst.path(), &blob, $compression, &got.diff_id);
            let (want, have) = (describe(src.path()), describe(dst.path()));
            for (path, line) in &want {
                assert_eq!(have.get(path), Some(line), "{path}");
            }
            assert_eq!(want.len(), have.len());
        }
    )*};
}

round_trips! {
    round_trip_none: Compression::None;
    round_trip_gzip: Compression::Gzip;
    round_trip_zstd: Compression::Zstd;
}

#[test]
fn whiteouts_and_opaque_directories_apply() {
    let lower = tempfile::tempdir().unwrap();
    let l = |s: &str| lower.path().join(s);
    for d in ["a", "b", "keep"] {
        fs::create_dir(l(d)).unwrap();
    }
    for f in ["a/x", "a/y", "b/z", "b/stays", "c", "keep/k"] {
        fs::write(l(f), f).unwrap();
    }
    let upper = tempfile::tempdir().unwrap();
    fs::create_dir(upper.path().join("a")).unwrap();
    fs::write(upper.path().join("a/new"), b"new").unwrap();
    let change = |path: &str, kind| Change {
        path: path.into(),
        kind,
    };
    let changes = [
        change("c", ChangeKind::Delete),
        change("a", ChangeKind::Opaque),
        change("a/new", ChangeKind::Upsert),
        change("b/z", ChangeKind::Delete),
    ];
    let target = tempfile::tempdir().unwrap();
    let o = opts(Compression::Gzip, 2);
    let (base, base_blob) = layer(lower.path(), &upserts(lower.path()), &o);
    apply_to(target.path(), &base_blob, Compression::Gzip, &base.diff_id);
    let (diff, diff_blob) = layer(upper.path(), &changes, &o);
    apply_to(target.path(), &diff_blob, Compression::Gzip, &diff.diff_id);
    assert_eq!(
        walk(target.path()),
        ["a", "a/new", "b", "b/stays", "keep", "keep/k"]
    );

    // The archive itself: sorted, whiteouts as empty files beside their siblings.
    let (_, tar) = layer(upper.path(), &changes, &opts(Compression::None, 1));
    let names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().to_vec()).unwrap())
        .collect();
    assert_eq!(names, [".wh.c", "a/", "a/.wh..wh..opq", "a/new", "b/.wh.z"]);
}

#[test]
fn same_tree_same_bytes() {
    let src = tempfile::tempdir().unwrap();
    rich_tree(src.path());
    let changes = upserts(src.path());
    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let one = layer(src.path(), &changes, &opts(c, 2));
        let two = layer(src.path(), &changes, &opts(c, 2));
        assert_eq!(one.0, two.0, "{c}");
        assert!(one.1 == two.1, "{c}: bytes differ");
    }
}

/// The stdout of `cmd` fed `input`, which must succeed.
fn pipe(cmd: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Process::spawn(
        Command::new(cmd)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let mut stdin = child.child().stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}: {}", out.status);
    out.stdout
}

#[test]
fn parallel_gzip_is_identical_for_any_thread_count_and_readable_by_peers() {
    let src = tempfile::tempdir().unwrap();
    rich_tree(src.path());
    // Several 128 KiB blocks, half compressible.
    let mut big = noise(1_500_000, 5);
    big.extend(b"compressible text ".repeat(100_000));
    fs::write(src.path().join("big"), big).unwrap();
    let changes = upserts(src.path());
    let (plain, tar) = layer(src.path(), &changes, &opts(Compression::None, 1));
    let (one, gz) = layer(src.path(), &changes, &opts(Compression::Gzip, 1));
    assert_eq!(one.diff_id, plain.diff_id);
    for threads in [2, 4, 8] {
        let (many, bytes) = layer(src.path(), &changes, &opts(Compression::Gzip, threads));
        assert_eq!(many, one, "{threads} threads");
        assert!(bytes == gz, "{threads} threads: bytes differ");
    }
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == tar, "flate2");
    for (tool, args) in [("gzip", &["-dc"]), ("pigz", &["-dc"])] {
        if require::tools(&[tool]) {
            assert!(
                pipe(tool, args, &gz) == tar,
                "{tool} decompressed something else"
            );
        }
    }
    if require::tools(&["gzip"]) {
        assert!(pipe("gzip", &["-t"], &gz).is_empty());
    }
}

#[test]
fn source_date_epoch_clamps_mtimes() {
    let src = tempfile::tempdir().unwrap();
    for (name, mtime) in [("old", 500), ("new", 2_000_000_000)] {
        fs::write(src.path().join(name), name).unwrap();
        set_mtime(&src.path().join(name), mtime);
    }
    let o = LayerOptions {
        source_date_epoch: Some(1_000),
        ..opts(Compression::None, 1)
    };
    let changes = [
        Change {
            path: "new".into(),
            kind: ChangeKind::Upsert,
        },
        Change {
            path: "gone".into(),
            kind: ChangeKind::Delete,
        },
        Change {
            path: "old".into(),
            kind: ChangeKind::Upsert,
        },
    ];
    let (_, tar) = layer(src.path(), &changes, &o);
    let times: Vec<(String, u64)> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
            (name, e.header().mtime().unwrap())
        })
        .collect();
    let want = [(".wh.gone", 1_000), ("new", 1_000), ("old", 500)];
    assert_eq!(times, want.map(|(n, t)| (n.to_string(), t)));
}

/// A fully synthetic tree: fixed names, contents, modes and mtimes, owned by 0:0.
fn golden_tree(root: &Path) -> Vec<Change> {
    let p = |s: &str| root.join(s);
    fs::create_dir_all(p("app/data")).unwrap();
    fs::write(p("app/README"), "golden layer\n".repeat(1000)).unwrap();
    fs::write(p("app/data/random.bin"), noise(700_000, 99)).unwrap();
    fs::write(
        p("app/data/text.txt"),
        "lorem ipsum dolor sit amet ".repeat(30_000),
    )
    .unwrap();
    symlink("data/text.txt", p("app/link")).unwrap();
    for (rel, mode) in [
        ("app", 0o755),
        ("app/data", 0o750),
        ("app/README", 0o644),
        ("app/data/random.bin", 0o600),
        ("app/data/text.txt", 0o444),
    ] {
        chmod(&p(rel), mode);
    }
    for (i, rel) in walk(root).iter().rev().enumerate() {
        set_mtime(&p(rel), 1_700_000_000 + i as i64);
    }
    let mut changes = upserts(root);
    changes.push(Change {
        path: "app/old".into(),
        kind: ChangeKind::Delete,
    });
    changes
}

/// Golden digests. These pin the exact bytes rbuild writes for a fixed tree: the tar
/// encoding and zlib-rs / libzstd's compressed output. A change here means a different
/// archive or a different compressor (a C zlib sneaking into the dependency graph through a
/// flate2 feature, a zstd upgrade changing its match finder, a tar header change): every
/// layer rbuild builds would get a new digest and every cache would miss. Never update them
/// casually; find out which dependency moved and say so in the commit.
const GOLDEN_TAR: &str = "sha256:3aea850bc9a0008e749c687a4a3869ae6fc95dab35bb2de19f2201ff9dfa5640";
const GOLDEN: [(Compression, &str, &str); 3] = [
    (Compression::None, GOLDEN_TAR, GOLDEN_TAR),
    (
        Compression::Gzip,
        GOLDEN_TAR,
        "sha256:82cc00a480312ae593379e38c46783f7511c279f6df97c7cc600d118b16bdc19",
    ),
    (
        Compression::Zstd,
        GOLDEN_TAR,
        "sha256:d12b64bae1574f7394c17c9f2b55e4e2a662940155be4f628a282a8da2aefa02",
    ),
];

#[test]
fn golden_digests() {
    if !require::root("golden digests need files owned by 0:0") {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let changes = golden_tree(src.path());
    let mut report = String::new();
    let mut ok = true;
    for (c, diff_id, digest) in GOLDEN {
        for threads in [1, 2] {
            let (got, _) = layer(src.path(), &changes, &opts(c, threads));
            report += &format!("{c} threads={threads}: {} {}\n", got.diff_id, got.digest);
            ok &= got.diff_id.as_str() == diff_id && got.digest.as_str() == digest;
        }
    }
    assert!(ok, "golden digests moved:\n{report}");
}

/// umoci, an independent reader: put the layer in an OCI layout and unpack it.
#[test]
fn umoci_unpacks_the_same_tree() {
    if !require::root("umoci unpack keeps the tree's owners") || !require::tools(&["umoci"]) {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    rich_tree(src.path());
    let (got, blob) = layer(
        src.path(),
        &upserts(src.path()),
        &opts(Compression::Gzip, 2),
    );
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("image");
    let blobs = image.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (Digest, usize) {
        let d = Digest::sha256(data);
        fs::write(blobs.join(d.hex()), data).unwrap();
        (d, data.len())
    };
    fs::write(blobs.join(got.digest.hex()), &blob).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        got.diff_id
    );
    let (cd, cs) = put(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cs}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}]}}"#,
        got.digest, got.size
    );
    let (md, ms) = put(manifest.as_bytes());
    fs::write(
        image.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":{ms},"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#
        ),
    )
    .unwrap();
    fs::write(
        image.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let bundle: PathBuf = work.path().join("bundle");
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", image.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (want, have) = (describe(src.path()), describe(&bundle.join("rootfs")));
    for (path, line) in &want {
        assert_eq!(have.get(path), Some(line), "{path}");
    }
    assert_eq!(want.len(), have.len());
}
