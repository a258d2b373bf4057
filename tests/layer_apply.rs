//! Applying layers to directories: what a layer may do (files, dirs, links, modes, owners,
//! xattrs, whiteouts, opaque dirs, compression, diff IDs) and every escape a hostile layer
//! can try, each of which must fail, naming the layer and entry, and leave nothing outside.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rbuild::oci::digest::Digest;
use rbuild::oci::media_type::Compression;
use rbuild::snapshot::apply::{ApplyError, Whiteouts, apply};

use crate::common::require;

/// A tar built entry by entry with raw headers, so hostile names can be written.
#[derive(Default)]
struct Layer {
    buf: Vec<u8>,
}

impl Layer {
    fn raw(
        mut self,
        kind: tar::EntryType,
        name: &[u8],
        link: &[u8],
        mode: u32,
        data: &[u8],
        pax: &[(&str, &[u8])],
    ) -> Layer {
        if !pax.is_empty() {
            let mut records = Vec::new();
            for (k, v) in pax {
                let body_len = k.len() + v.len() + 3; // ' ', '=', '\n'
                let mut len = body_len + 1;
                while len.to_string().len() + body_len != len {
                    len += 1;
                }
                records.extend_from_slice(format!("{len} {k}=").as_bytes());
                records.extend_from_slice(v);
                records.push(b'\n');
            }
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::XHeader);
            h.as_ustar_mut().unwrap().name[..9].copy_from_slice(b"PaxHeader");
            h.set_size(records.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            self.push(&h, &records);
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
        h.as_ustar_mut().unwrap().linkname[..link.len()].copy_from_slice(link);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        self.push(&h, data);
        self
    }

    fn push(&mut self, h: &tar::Header, data: &[u8]) {
        self.buf.extend_from_slice(h.as_bytes());
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
    }

    fn file(self, name: &str, data: &str) -> Layer {
        self.raw(
            tar::EntryType::Regular,
            name.as_bytes(),
            b"",
            0o644,
            data.as_bytes(),
            &[],
        )
    }
    fn dir(self, name: &str) -> Layer {
        self.raw(
            tar::EntryType::Directory,
            name.as_bytes(),
            b"",
            0o755,
            b"",
            &[],
        )
    }
    fn symlink(self, name: &str, target: &str) -> Layer {
        self.raw(
            tar::EntryType::Symlink,
            name.as_bytes(),
            target.as_bytes(),
            0o777,
            b"",
            &[],
        )
    }
    fn hardlink(self, name: &str, target: &str) -> Layer {
        self.raw(
            tar::EntryType::Link,
            name.as_bytes(),
            target.as_bytes(),
            0o644,
            b"",
            &[],
        )
    }
    fn bytes(mut self) -> Vec<u8> {
        self.buf.extend(std::iter::repeat_n(0u8, 1024));
        self.buf
    }
}

struct Sandbox {
    top: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        let top = std::env::temp_dir().join(format!("rbuild-apply-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&top);
        fs::create_dir_all(top.join("root")).unwrap();
        fs::create_dir_all(top.join("outside")).unwrap();
        fs::write(top.join("outside/secret"), "untouched").unwrap();
        Sandbox { top }
    }
    fn root(&self) -> PathBuf {
        self.top.join("root")
    }
    fn apply(&self, layer: Vec<u8>) -> Result<rbuild::snapshot::apply::Applied, ApplyError> {
        apply(
            &self.root(),
            &layer[..],
            Compression::None,
            "sha256:test",
            Whiteouts::Apply,
            None,
        )
    }
    /// Nothing changed outside the target.
    fn untouched(&self) {
        let mut names: Vec<String> = fs::read_dir(&self.top)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["outside", "root"],
            "something was created beside the target"
        );
        let outside: Vec<_> = fs::read_dir(self.top.join("outside")).unwrap().collect();
        assert_eq!(outside.len(), 1);
        assert_eq!(
            fs::read_to_string(self.top.join("outside/secret")).unwrap(),
            "untouched"
        );
        assert!(!Path::new("/evil").exists() && !Path::new("/tmp/evil").exists());
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.top);
    }
}

macro_rules! hostile {
    ($($name:ident: $layer:expr, $entry:expr;)*) => {$(
        #[test]
        fn $name() {
            let sb = Sandbox::new(stringify!($name));
            let err = sb.apply($layer.bytes()).expect_err("a hostile layer must fail");
            let msg = err.to_string();
            assert!(msg.contains("layer sha256:test") && msg.contains(&format!("entry {:?}", $entry)), "{msg}");
            assert!(matches!(err, ApplyError::Hostile { .. }), "{msg}");
            sb.untouched();
        }
    )*};
}

hostile! {
    dot_dot_entry: Layer::default().file("../evil", "x"), "../evil";
    dot_dot_inside_path: Layer::default().dir("a").file("a/../../evil", "x"), "a/../../evil";
    write_through_absolute_symlink: Layer::default().symlink("link", "/tmp").file("link/evil", "x"), "link/evil";
    write_through_escaping_relative_symlink: Layer::default().symlink("up", "../outside").file("up/secret", "pwned"), "up/secret";
    deep_escaping_symlink: Layer::default().dir("a").symlink("a/b", "../../outside").file("a/b/secret", "pwned"), "a/b/secret";
    hardlink_out_with_dot_dot: Layer::default().hardlink("h", "../outside/secret"), "h";
    hardlink_through_escaping_symlink: Layer::default().symlink("esc", "../outside").hardlink("h", "esc/secret"), "h";
    pax_path_override: Layer::default().raw(tar::EntryType::Regular, b"innocent", b"", 0o644, b"x", &[("path", b"../pax-evil")]), "../pax-evil";
    pax_linkpath_override: Layer::default().raw(tar::EntryType::Link, b"h", b"innocent", 0o644, b"", &[("linkpath", b"../outside/secret")]), "h";
    hardlink_to_absolute_outside_path_stays_inside_and_fails: Layer::default().hardlink("h2", "/etc/../../outside/secret"), "h2";
}

#[test]
fn file_replaces_a_symlink_instead_of_writing_through_it() {
    let sb = Sandbox::new("replace-symlink");
    let target = sb.top.join("outside/secret");
    let layer = Layer::default()
        .symlink("x", target.to_str().unwrap())
        .file("x", "inside");
    sb.apply(layer.bytes()).unwrap();
    let meta = fs::symlink_metadata(sb.root().join("x")).unwrap();
    assert!(meta.is_file(), "x became a regular file");
    assert_eq!(fs::read_to_string(sb.root().join("x")).unwrap(), "inside");
    sb.untouched();
}

#[test]
fn absolute_entry_paths_stay_inside() {
    let sb = Sandbox::new("absolute");
    sb.apply(
        Layer::default()
            .file("/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
            .bytes(),
    )
    .unwrap();
    assert!(sb.root().join("etc/passwd").is_file());
    sb.untouched();
}

#[test]
fn symlinks_inside_the_root_are_followed_for_parents() {
    let sb = Sandbox::new("inside-symlink");
    let layer = Layer::default()
        .dir("usr")
        .dir("usr/lib")
        .symlink("lib", "usr/lib")
        .file("lib/libx.so", "elf");
    sb.apply(layer.bytes()).unwrap();
    assert_eq!(
        fs::read_to_string(sb.root().join("usr/lib/libx.so")).unwrap(),
        "elf"
    );
    sb.untouched();
}

#[test]
fn whiteouts_and_opaque_directories() {
    let sb = Sandbox::new("whiteouts");
    let lower = Layer::default()
        .dir("a")
        .file("a/b", "1")
        .file("a/c", "2")
        .file("d", "3")
        .dir("e")
        .file("e/f", "4");
    sb.apply(lower.bytes()).unwrap();
    // Opaque marker after a same-layer sibling: the sibling survives.
    let upper = Layer::default()
        .file(".wh.d", "")
        .dir("a")
        .file("a/new", "5")
        .file("a/.wh..wh..opq", "")
        .file("e/.wh.f", "");
    sb.apply(upper.bytes()).unwrap();
    let root = sb.root();
    assert!(!root.join("d").exists());
    let mut a: Vec<String> = fs::read_dir(root.join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    a.sort();
    assert_eq!(a, vec!["new"]);
    assert!(root.join("e").is_dir() && !root.join("e/f").exists());
    assert!(
        !root.join(".wh.d").exists(),
        "whiteout markers are not files"
    );
}

#[test]
fn links_modes_owners_times_and_xattrs() {
    let sb = Sandbox::new("metadata");
    let layer = Layer::default()
        .dir("d")
        .file("d/inner", "written after its directory")
        .file("f", "data")
        .hardlink("g", "f")
        .symlink("s", "f")
        .raw(tar::EntryType::Regular, b"suid", b"", 0o4755, b"#!", &[])
        .raw(
            tar::EntryType::Regular,
            b"x",
            b"",
            0o600,
            b"x",
            &[("SCHILY.xattr.user.rbuild", b"yes")],
        )
        // 0666: a umask must not narrow a mode the layer states.
        .raw(tar::EntryType::Fifo, b"fifo", b"", 0o666, b"", &[]);
    let applied = sb.apply(layer.bytes()).unwrap();
    let root = sb.root();
    let f = fs::metadata(root.join("f")).unwrap();
    assert_eq!(
        f.ino(),
        fs::metadata(root.join("g")).unwrap().ino(),
        "hardlink shares the inode"
    );
    assert_eq!(fs::read_link(root.join("s")).unwrap(), Path::new("f"));
    assert_eq!(f.mtime(), 1_700_000_000);
    assert_eq!(
        fs::metadata(root.join("d")).unwrap().mtime(),
        1_700_000_000,
        "a directory's time is set after its children are written"
    );
    assert_eq!(
        fs::symlink_metadata(root.join("s")).unwrap().mtime(),
        1_700_000_000,
        "the symlink's own time"
    );
    assert_eq!(f.permissions().mode() & 0o7777, 0o644);
    assert_eq!(
        fs::metadata(root.join("suid"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    let fifo = fs::metadata(root.join("fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.permissions().mode() & 0o7777, 0o666, "the fifo's mode");
    let xattr_ok = rustix::fs::getxattr(root.join("x").as_path(), "user.rbuild", &mut [0u8; 8])
        .map(|n| n == 3);
    assert!(
        xattr_ok.unwrap_or(false) || applied.skipped_xattrs == 1,
        "user xattr set, or counted as skipped"
    );
}

#[test]
fn device_nodes_as_root() {
    if !require::root("device nodes") {
        return;
    }
    let sb = Sandbox::new("devices");
    let mut layer = Layer::default();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Char);
    h.set_path("null").unwrap();
    h.set_mode(0o666);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_size(0);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_cksum();
    layer.push(&h, b"");
    let applied = sb.apply(layer.bytes()).unwrap();
    assert_eq!(applied.skipped_devices, 0);
    let meta = fs::symlink_metadata(sb.root().join("null")).unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
}

#[test]
fn overlay_mode_keeps_whiteouts_for_overlayfs() {
    if !require::root("overlay whiteouts (trusted xattrs, 0:0 devices)") {
        return;
    }
    let sb = Sandbox::new("overlay");
    let layer = Layer::default()
        .dir("a")
        .file("a/.wh..wh..opq", "")
        .file(".wh.gone", "")
        .file("a/kept", "k");
    apply(
        &sb.root(),
        &layer.bytes()[..],
        Compression::None,
        "sha256:test",
        Whiteouts::Overlay { userxattr: false },
        None,
    )
    .unwrap();
    let wh = fs::symlink_metadata(sb.root().join("gone")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "0:0 whiteout device"
    );
    let mut v = [0u8; 4];
    let n = rustix::fs::getxattr(
        sb.root().join("a").as_path(),
        "trusted.overlay.opaque",
        &mut v,
    )
    .unwrap();
    assert_eq!(&v[..n], b"y");
    assert_eq!(fs::read_to_string(sb.root().join("a/kept")).unwrap(), "k");
}

#[test]
fn diff_id_is_the_uncompressed_digest_and_is_checked() {
    let tar = Layer::default().dir("d").file("d/f", "hello").bytes();
    let diff_id = Digest::sha256(&tar);
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::stream::encode_all(&tar[..], 3).unwrap();
    for (name, bytes, c) in [
        ("tar", tar.clone(), Compression::None),
        ("gzip", gz, Compression::Gzip),
        ("zstd", zst, Compression::Zstd),
    ] {
        let sb = Sandbox::new(&format!("diffid-{name}"));
        let applied = apply(
            &sb.root(),
            &bytes[..],
            c,
            "sha256:test",
            Whiteouts::Apply,
            Some(&diff_id),
        )
        .unwrap();
        assert_eq!(applied.diff_id, diff_id, "{name}");
        assert_eq!(applied.size, tar.len() as u64, "{name}");
        assert_eq!(
            fs::read_to_string(sb.root().join("d/f")).unwrap(),
            "hello",
            "{name}"
        );
    }
    let sb = Sandbox::new("diffid-wrong");
    let wrong = Digest::sha256(b"not it");
    let err = apply(
        &sb.root(),
        &tar[..],
        Compression::None,
        "sha256:test",
        Whiteouts::Apply,
        Some(&wrong),
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::DiffId { .. }), "{err}");
}

#[test]
fn pax_values_with_newlines_and_gnu_long_names() {
    let sb = Sandbox::new("pax-newline");
    // A binary xattr value holding 0x0a (as a file capability with bits 1 and 3 does).
    let value: &[u8] = b"line1\nline2\x0a\x00end";
    let long = format!("d/{}", "n".repeat(150));
    let mut layer = Layer::default().dir("d").raw(
        tar::EntryType::Regular,
        b"x",
        b"",
        0o644,
        b"data",
        &[("SCHILY.xattr.user.bin", value), ("mtime", b"1600000000.5")],
    );
    // A GNU long-name header ('L') followed by the entry it names.
    let mut name = long.clone().into_bytes();
    name.push(0);
    layer = layer.raw(
        tar::EntryType::GNULongName,
        b"././@LongLink",
        b"",
        0o644,
        &name,
        &[],
    );
    layer = layer.raw(
        tar::EntryType::Regular,
        b"truncated-in-header",
        b"",
        0o644,
        b"long",
        &[],
    );
    // A GNU long-link header ('K') for a symlink target.
    let target = format!("/{}", "t".repeat(140));
    let mut link = target.clone().into_bytes();
    link.push(0);
    layer = layer.raw(
        tar::EntryType::GNULongLink,
        b"././@LongLink",
        b"",
        0o644,
        &link,
        &[],
    );
    layer = layer.raw(tar::EntryType::Symlink, b"s", b"short", 0o777, b"", &[]);
    let applied = sb.apply(layer.bytes()).unwrap();
    let root = sb.root();
    assert_eq!(
        fs::read_to_string(root.join(&long)).unwrap(),
        "long",
        "the GNU long name applies"
    );
    assert!(!root.join("truncated-in-header").exists());
    assert_eq!(
        fs::read_link(root.join("s")).unwrap(),
        Path::new(&target),
        "the GNU long link applies"
    );
    assert_eq!(
        fs::metadata(root.join("x")).unwrap().mtime(),
        1_600_000_000,
        "PAX mtime"
    );
    let mut buf = [0u8; 64];
    match rustix::fs::getxattr(root.join("x").as_path(), "user.bin", &mut buf) {
        Ok(n) => assert_eq!(&buf[..n], value, "the newline-holding value survives"),
        Err(_) => assert_eq!(
            applied.skipped_xattrs, 1,
            "user xattrs unsupported here: counted"
        ),
    }
    sb.untouched();
}

#[test]
fn pax_size_override_is_refused_loudly() {
    let sb = Sandbox::new("pax-size");
    let layer = Layer::default().raw(
        tar::EntryType::Regular,
        b"big",
        b"",
        0o644,
        b"tiny",
        &[("size", b"9000000000")],
    );
    let err = sb.apply(layer.bytes()).unwrap_err();
    assert!(err.to_string().contains("PAX size override"), "{err}");
}
