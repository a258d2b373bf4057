//! The snapshotters against real filesystems: overlayfs mounts over hand-made layers
//! (whiteout devices, opaque xattrs), the native copy-and-compare snapshotter over the
//! same tree, and the chooser. Mounting, device nodes and `trusted.*` xattrs need root:
//! those tests are skipped otherwise (`common::require`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rbuild::snapshot::change::{Change, ChangeKind};
use rbuild::snapshot::diff::overlay_changes;
use rbuild::snapshot::{native, overlay};
use rustix::fs::{FileType, Mode, XattrFlags};

use crate::common::require;

/// Whether the test can mount and make device nodes and `trusted.*` xattrs.
fn root() -> bool {
    require::root("mounts, device nodes and trusted.* xattrs")
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// The image's filesystem as a step sees it (the flattened lowers).
fn base(root: &Path) {
    write(root, "etc/passwd", "root:x:0:0::/root:/bin/sh\n");
    write(root, "etc/hosts", "127.0.0.1 localhost\n");
    write(root, "etc/motd", "hello\n");
    write(root, "usr/bin/tool", "#!/bin/sh\n");
    std::fs::set_permissions(
        root.join("usr/bin/tool"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    write(root, "usr/lib/a", "a");
    std::fs::hard_link(root.join("usr/lib/a"), root.join("usr/lib/b")).unwrap();
    write(root, "var/old/x", "x");
    write(root, "var/old/sub/y", "y");
    write(root, "data/keep", "keep");
    write(root, "opt/cfg", "cfg");
    write(root, "srv/new", "new");
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    rustix::fs::setxattr(
        root.join("etc/passwd"),
        "user.test",
        b"v",
        XattrFlags::empty(),
    )
    .unwrap();
}

/// Two overlay layers whose merged view is `base`: layer 0 also holds `etc/gone` and
/// `srv/dir/z`, which layer 1 hides with a whiteout device and an opaque `srv/`.
fn layers(dir: &Path) -> Vec<PathBuf> {
    let l0 = dir.join("layer0");
    let l1 = dir.join("layer1");
    base(&l0);
    std::fs::remove_file(l0.join("srv/new")).unwrap();
    write(&l0, "etc/gone", "gone");
    write(&l0, "srv/dir/z", "z");
    std::fs::create_dir_all(l1.join("etc")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        l1.join("etc/gone"),
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
    write(&l1, "srv/new", "new");
    rustix::fs::setxattr(
        l1.join("srv"),
        "trusted.overlay.opaque",
        b"y",
        XattrFlags::empty(),
    )
    .unwrap();
    vec![l0, l1]
}

fn c(path: &str, kind: ChangeKind) -> Change {
    Change {
        path: path.to_string(),
        kind,
    }
}

use ChangeKind::{Delete as D, Opaque as O, Upsert as U};

/// A step's filesystem operations, applied to a root (overlay `merged` or native rootfs).
type Op = fn(&Path);

/// One scenario: a name, what the step does, the changes both snapshotters must report.
struct Row {
    name: &'static str,
    op: Op,
    expected: Vec<(&'static str, ChangeKind)>,
}

macro_rules! row {
    ($name:ident, |$r:ident| $op:block, [$(($p:expr, $k:expr)),* $(,)?]) => {
        Row {
            name: stringify!($name),
            op: |$r: &Path| $op,
            expected: vec![$(($p, $k)),*],
        }
    };
}

fn rows() -> Vec<Row> {
    vec![
        row!(unchanged, |_r| {}, []),
        row!(
            create_file,
            |r| { write(r, "etc/new.conf", "n") },
            [("etc", U), ("etc/new.conf", U)]
        ),
        row!(
            modify_file,
            |r| {
                let mut s = std::fs::read_to_string(r.join("etc/hosts")).unwrap();
                s.push_str("::1 localhost\n");
                std::fs::write(r.join("etc/hosts"), s).unwrap();
            },
            [("etc", U), ("etc/hosts", U)]
        ),
        row!(
            delete_file,
            |r| { std::fs::remove_file(r.join("etc/motd")).unwrap() },
            [("etc", U), ("etc/motd", D)]
        ),
        row!(
            delete_dir,
            |r| { std::fs::remove_dir_all(r.join("var/old")).unwrap() },
            [("var", U), ("var/old", D)]
        ),
        row!(
            replace_dir_opaque,
            |r| {
                std::fs::remove_dir_all(r.join("usr/lib")).unwrap();
                std::fs::create_dir(r.join("usr/lib")).unwrap();
                write(r, "usr/lib/c", "c");
            },
            [("usr", U), ("usr/lib", O), ("usr/lib/c", U)]
        ),
        row!(
            hardlink,
            |r| { std::fs::hard_link(r.join("data/keep"), r.join("data/link")).unwrap() },
            [("data", U), ("data/keep", U), ("data/link", U)]
        ),
        row!(
            chmod,
            |r| {
                std::fs::set_permissions(
                    r.join("usr/bin/tool"),
                    std::fs::Permissions::from_mode(0o755),
                )
                .unwrap()
            },
            [("usr", U), ("usr/bin", U), ("usr/bin/tool", U)]
        ),
        row!(
            rename_file,
            |r| { std::fs::rename(r.join("opt/cfg"), r.join("opt/cfg2")).unwrap() },
            [("opt", U), ("opt/cfg", D), ("opt/cfg2", U)]
        ),
        row!(
            dir_to_file,
            |r| {
                std::fs::remove_dir_all(r.join("var/old")).unwrap();
                write(r, "var/old", "now a file");
            },
            [("var", U), ("var/old", U)]
        ),
        row!(
            file_to_dir,
            |r| {
                std::fs::remove_file(r.join("etc/motd")).unwrap();
                write(r, "etc/motd/inside", "i");
            },
            [("etc", U), ("etc/motd", O), ("etc/motd/inside", U)]
        ),
    ]
}

fn expected(row: &Row) -> Vec<Change> {
    row.expected.iter().map(|(p, k)| c(p, *k)).collect()
}

fn mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|mp| mp == p))
}

#[test]
fn overlay_honours_lower_whiteouts_and_opaque_dirs() {
    if !root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let lowers = layers(d.path());
    let m = overlay::prepare(&lowers, &d.path().join("step")).unwrap();
    assert!(!m.merged().join("etc/gone").exists());
    assert!(!m.merged().join("srv/dir").exists());
    assert_eq!(
        std::fs::read_to_string(m.merged().join("srv/new")).unwrap(),
        "new"
    );
    assert_eq!(
        std::fs::read_to_string(m.merged().join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
    assert_eq!(overlay_changes(m.upper()).unwrap(), vec![]);
}

#[test]
fn overlay_scenarios() {
    if !root() {
        return;
    }
    for row in rows() {
        let d = tempfile::tempdir().unwrap();
        let lowers = layers(d.path());
        let m = overlay::prepare(&lowers, &d.path().join("step")).unwrap();
        let merged = m.merged().to_path_buf();
        assert!(mounted(&merged), "{}: not mounted", row.name);
        (row.op)(&merged);
        let got = overlay_changes(m.upper()).unwrap();
        assert_eq!(got, expected(&row), "overlay scenario {}", row.name);
        drop(m);
        assert!(!mounted(&merged), "{}: still mounted", row.name);
    }
}

#[test]
fn overlay_from_scratch() {
    if !root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let m = overlay::prepare(&[], d.path()).unwrap();
    write(m.merged(), "hello", "hi");
    assert_eq!(overlay_changes(m.upper()).unwrap(), vec![c("hello", U)]);
    let merged = m.merged().to_path_buf();
    m.unmount().unwrap();
    assert!(!mounted(&merged));
}

#[test]
fn overlay_many_long_lowers() {
    if !root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // 200 layers at ~120-byte paths: ~24 KB of lowerdir, six pages.
    let deep = d.path().join("x".repeat(100));
    let lowers: Vec<PathBuf> = (0..200)
        .map(|i| {
            let l = deep.join(format!("layer-{i:04}"));
            write(&l, &format!("f{i}"), &i.to_string());
            write(&l, "top", &i.to_string());
            l
        })
        .collect();
    let total: usize = lowers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(total > 4096, "{total}");
    let m = overlay::prepare(&lowers, &d.path().join("step")).unwrap();
    eprintln!("200 lowers passed as {:?}", m.layer_spec());
    assert_eq!(std::fs::read_to_string(m.merged().join("f0")).unwrap(), "0");
    assert_eq!(
        std::fs::read_to_string(m.merged().join("f199")).unwrap(),
        "199"
    );
    // The highest layer wins.
    assert_eq!(
        std::fs::read_to_string(m.merged().join("top")).unwrap(),
        "199"
    );
    let merged = m.merged().to_path_buf();
    drop(m);
    assert!(!mounted(&merged));
}

#[test]
fn copied_up_files_keep_their_metadata() {
    if !root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let lowers = layers(d.path());
    let m = overlay::prepare(&lowers, &d.path().join("step")).unwrap();
    std::fs::set_permissions(
        m.merged().join("usr/bin/tool"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    // metacopy=off: the upper copy holds the data, not just metadata.
    let up = m.upper().join("usr/bin/tool");
    assert_eq!(std::fs::read_to_string(&up).unwrap(), "#!/bin/sh\n");
    assert_eq!(std::fs::metadata(&up).unwrap().mode() & 0o7777, 0o755);
    // Copy-up leaves overlay bookkeeping xattrs the layer writer must drop; the copied
    // user xattr is data and must stay.
    std::fs::write(m.merged().join("etc/passwd"), "changed").unwrap();
    let names = |p: &Path| -> Vec<String> {
        let mut buf = vec![0u8; 4096];
        let n = rustix::fs::llistxattr(p, &mut buf[..]).unwrap();
        buf[..n]
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    };
    let on_passwd = names(&m.upper().join("etc/passwd"));
    eprintln!(
        "upper etc/passwd xattrs: {on_passwd:?}; upper root: {:?}",
        names(m.upper())
    );
    assert!(on_passwd.contains(&"user.test".to_string()));
    // The layer written from the upper dir keeps the user xattr and none of overlay's.
    let changes = rbuild::snapshot::diff::overlay_changes(m.upper()).unwrap();
    let mut layer = Vec::new();
    rbuild::layer::write_tar(m.upper(), &changes, &Default::default(), &mut layer).unwrap();
    let (mut passwd_keys, mut all_keys) = (Vec::new(), Vec::new());
    for e in tar::Archive::new(&layer[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let Some(records) = e.pax_extensions().unwrap() else {
            continue;
        };
        for r in records {
            let key = r.unwrap().key().unwrap().to_string();
            if path == "etc/passwd" {
                passwd_keys.push(key.clone());
            }
            all_keys.push(key);
        }
    }
    assert!(
        passwd_keys.contains(&"SCHILY.xattr.user.test".to_string()),
        "{passwd_keys:?}"
    );
    assert!(
        !all_keys.iter().any(|k| k.contains(".overlay.")),
        "overlay bookkeeping reached the layer: {all_keys:?}"
    );
}

#[test]
fn native_scenarios_match_overlay() {
    if !root() {
        return;
    }
    for row in rows() {
        let d = tempfile::tempdir().unwrap();
        let lower = d.path().join("lower");
        base(&lower);
        let snap = native::prepare(&lower, &d.path().join("step")).unwrap();
        (row.op)(snap.rootfs());
        let got = snap.changes().unwrap();
        assert_eq!(got, expected(&row), "native scenario {}", row.name);
    }
}

#[test]
fn native_copy_preserves_everything() {
    if !root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let lower = d.path().join("lower");
    base(&lower);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        lower.join("etc/null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        lower.join("etc/fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    std::os::unix::fs::chown(lower.join("etc/hosts"), Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(
        lower.join("usr/bin/tool"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_600_000_000, 123_456_789);
    std::fs::File::options()
        .write(true)
        .open(lower.join("etc/passwd"))
        .unwrap()
        .set_modified(t)
        .unwrap();
    let snap = native::prepare(&lower, &d.path().join("step")).unwrap();
    let r = snap.rootfs();
    let md = |p: &str| std::fs::symlink_metadata(r.join(p)).unwrap();
    let lmd = |p: &str| std::fs::symlink_metadata(lower.join(p)).unwrap();
    assert_eq!(
        md("usr/lib/a").ino(),
        md("usr/lib/b").ino(),
        "hardlink kept"
    );
    assert_eq!(
        std::fs::read_link(r.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    assert_eq!(md("etc/null").rdev(), lmd("etc/null").rdev());
    assert_eq!(md("etc/null").mode(), lmd("etc/null").mode());
    assert_eq!(md("etc/fifo").mode(), lmd("etc/fifo").mode());
    assert_eq!((md("etc/hosts").uid(), md("etc/hosts").gid()), (1234, 5678));
    assert_eq!(md("usr/bin/tool").mode() & 0o7777, 0o4755);
    assert_eq!(
        (md("etc/passwd").mtime(), md("etc/passwd").mtime_nsec()),
        (1_600_000_000, 123_456_789)
    );
    assert_eq!(md("etc").mtime_nsec(), lmd("etc").mtime_nsec());
    assert_eq!(
        rustix::fs::getxattr(r.join("etc/passwd"), "user.test", &mut [0u8; 8]).unwrap(),
        1
    );
    assert_eq!(snap.stats().hardlinks, 1);
    assert_eq!(snap.changes().unwrap(), vec![]);
}

#[test]
fn native_changes_never_read_contents() {
    if !root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let lower = d.path().join("lower");
    write(&lower, "big/blob", "");
    let blob = lower.join("big/blob");
    let f = std::fs::File::options().write(true).open(&blob).unwrap();
    f.set_len(100 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"original", 50 << 20).unwrap();
    drop(f);
    let snap = native::prepare(&lower, &d.path().join("step")).unwrap();
    // Corrupt the LOWER copy's content, keeping size and mtime: a content hash would see it.
    let before = std::fs::symlink_metadata(&blob).unwrap();
    let f = std::fs::File::options().write(true).open(&blob).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"CORRUPT!", 50 << 20).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
    drop(f);
    let d_before = std::fs::symlink_metadata(lower.join("big")).unwrap();
    assert_eq!(
        before.mtime_nsec(),
        std::fs::symlink_metadata(&blob).unwrap().mtime_nsec()
    );
    assert_eq!(
        d_before.len(),
        std::fs::symlink_metadata(lower.join("big")).unwrap().len()
    );
    assert_eq!(
        snap.changes().unwrap(),
        vec![],
        "a metadata-only diff must not notice"
    );
    // A real change to the copy is seen.
    std::fs::write(snap.rootfs().join("big/blob"), "small").unwrap();
    assert_eq!(snap.changes().unwrap(), vec![c("big", U), c("big/blob", U)]);
}

#[test]
fn detect_chooses_overlay_here() {
    if !root() {
        return;
    }
    use rbuild::snapshot::snapshotter::{Kind, detect};
    let d = tempfile::tempdir().unwrap();
    assert_eq!(detect(d.path()), Kind::Overlay);
    // A second call agrees.
    assert_eq!(detect(d.path()), Kind::Overlay);
}
